//! Geometry in the rewrite: ADQL's constructors decoded at rewrite time ([`Geo`]), CONTAINS and
//! INTERSECTS turned into flat predicates with HEALPix pruning, DISTANCE in both forms, and the
//! scope lookup that tells a table's own position columns.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Function, Value};

use super::{
    PositionColumns, Rewriter, Scope, ScopeTable, and, args_of, binary, call, constant,
    index_ranges_predicate, is_string_literal, normalise, number, qualified, set_args,
};
use crate::adql::AdqlError;
use crate::adql::validate::function_name;
use crate::catalog::HEALPIX_COLUMN;
use colo_astro::sky::{self, Region};

/// A geometry expression with its structure known at rewrite time. Short-lived (one per geometry
/// call during a rewrite), so the size difference between variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Geo {
    Point(Expr, Expr),
    Circle(Expr, Expr, Expr),
    Box(Expr, Expr, Expr, Expr),
    Polygon(Vec<Expr>),
    /// A geometry known only at run time (a column or another function): a `List<Float64>`.
    Value(Expr),
}

impl Geo {
    pub(super) fn into_value(self) -> Expr {
        match self {
            Geo::Point(x, y) => call("adql_point", vec![x, y]),
            Geo::Circle(x, y, r) => call("adql_circle", vec![x, y, r]),
            Geo::Box(x, y, w, h) => call("adql_box", vec![x, y, w, h]),
            Geo::Polygon(coords) => call("adql_polygon", coords),
            Geo::Value(e) => e,
        }
    }

    /// The sky region of a constant shape.
    pub(super) fn region(&self) -> Option<Region> {
        match self {
            Geo::Circle(x, y, r) => Some(Region::Circle {
                lon_deg: constant(x)?,
                lat_deg: constant(y)?,
                radius_deg: constant(r)?,
            }),
            Geo::Box(x, y, w, h) => Some(Region::Box {
                lon_deg: constant(x)?,
                lat_deg: constant(y)?,
                width_deg: constant(w)?,
                height_deg: constant(h)?,
            }),
            Geo::Polygon(coords) => {
                let values: Option<Vec<f64>> = coords.iter().map(constant).collect();
                Some(Region::Polygon(
                    values?.chunks(2).map(|c| (c[0], c[1])).collect(),
                ))
            }
            _ => None,
        }
    }
}

impl Rewriter<'_> {
    pub(super) fn distance(&mut self, args: &[Expr]) -> Expr {
        if args.len() == 4 {
            return call("adql_distance", args.to_vec());
        }
        match (self.geo_of(&args[0]), self.geo_of(&args[1])) {
            (Geo::Point(a, b), Geo::Point(c, d)) => call("adql_distance", vec![a, b, c, d]),
            (p, q) => call("adql_distance_geo", vec![p.into_value(), q.into_value()]),
        }
    }

    /// CONTAINS(a, b) or INTERSECTS(a, b) as a boolean expression (true where the ADQL function
    /// returns 1).
    pub(super) fn geometry_predicate(
        &mut self,
        name: &str,
        f: &Function,
        scope: &Scope,
    ) -> Result<Expr, AdqlError> {
        let mut args = args_of(f);
        for arg in &mut args {
            self.rewrite_inside_geometry(arg, scope)?;
        }
        let (a, b) = (self.geo_shape(&args[0]), self.geo_shape(&args[1]));
        // INTERSECTS with a point is CONTAINS of that point.
        let (point, shape) = match (name, a, b) {
            (_, Geo::Point(x, y), shape) => (Some((x, y)), shape),
            ("INTERSECTS", shape, Geo::Point(x, y)) => (Some((x, y)), shape),
            (_, a, b) => {
                let function = if name == "CONTAINS" {
                    "adql_contains"
                } else {
                    "adql_intersects"
                };
                return Ok(binary(
                    call(function, vec![a.into_value(), b.into_value()]),
                    BinaryOperator::Eq,
                    number(1.0),
                ));
            }
        };
        let Some((x, y)) = point else {
            unreachable!("point is Some in the arms above")
        };
        let region = shape.region();
        let predicate = match shape {
            Geo::Circle(cx, cy, r) => binary(
                call("adql_distance", vec![x.clone(), y.clone(), cx, cy]),
                BinaryOperator::LtEq,
                r,
            ),
            Geo::Box(cx, cy, w, h) => call("adql_in_box", vec![x.clone(), y.clone(), cx, cy, w, h]),
            Geo::Polygon(coords) => {
                let mut all = vec![x.clone(), y.clone()];
                all.extend(coords);
                call("adql_in_polygon", all)
            }
            other => binary(
                call(
                    "adql_contains",
                    vec![
                        Geo::Point(x.clone(), y.clone()).into_value(),
                        other.into_value(),
                    ],
                ),
                BinaryOperator::Eq,
                number(1.0),
            ),
        };
        // Spatial pruning: a constant region around an indexed table's own position columns.
        if let (Some(region), Some((table, _))) = (region, self.position_of(&x, &y, scope))
            && table.position.is_some()
            && let Some(ranges) = sky::coverage_ranges_29(&region)
            && !ranges.is_empty()
        {
            let column = qualified(&table.qualifier, HEALPIX_COLUMN);
            return Ok(and(index_ranges_predicate(&column, &ranges), predicate));
        }
        Ok(predicate)
    }

    /// Rewrites non-geometry subexpressions inside a geometry argument (e.g. arithmetic on radii).
    pub(super) fn rewrite_inside_geometry(
        &mut self,
        expr: &mut Expr,
        scope: &Scope,
    ) -> Result<(), AdqlError> {
        if let Expr::Function(f) = expr {
            let name = function_name(f);
            if matches!(name.as_str(), "POINT" | "CIRCLE" | "BOX" | "POLYGON") {
                let mut args = args_of(f);
                for arg in &mut args {
                    self.rewrite_inside_geometry(arg, scope)?;
                }
                set_args(f, args);
                return Ok(());
            }
        }
        self.expr(expr, scope)
    }

    /// A geometry argument that may already have been rewritten to its value form.
    pub(super) fn geo_of(&self, expr: &Expr) -> Geo {
        self.geo_shape(expr)
    }

    /// Decodes an ADQL geometry constructor (coordinate system dropped, POINT arguments flattened).
    pub(super) fn geo_shape(&self, expr: &Expr) -> Geo {
        let Expr::Function(f) = expr else {
            return Geo::Value(expr.clone());
        };
        let upper = function_name(f);
        let name = upper.strip_prefix("ADQL_").unwrap_or(&upper).to_string();
        let mut args = args_of(f);
        if args.first().is_some_and(|a| {
            is_string_literal(a) || matches!(a, Expr::Value(v) if v.value == Value::Null)
        }) {
            args.remove(0);
        }
        // Flatten POINT arguments into coordinates.
        let mut flat = Vec::new();
        let mut has_non_constructor_geometry = false;
        for arg in &args {
            match self.geo_shape(arg) {
                Geo::Point(x, y) => {
                    flat.push(x);
                    flat.push(y);
                }
                Geo::Value(e) => flat.push(e),
                _ => has_non_constructor_geometry = true,
            }
        }
        match (name.as_str(), flat.len()) {
            ("POINT", 2) => Geo::Point(flat[0].clone(), flat[1].clone()),
            ("CIRCLE", 3) => Geo::Circle(flat[0].clone(), flat[1].clone(), flat[2].clone()),
            ("BOX", 4) => Geo::Box(
                flat[0].clone(),
                flat[1].clone(),
                flat[2].clone(),
                flat[3].clone(),
            ),
            ("POLYGON", n) if n >= 6 && n % 2 == 0 && !has_non_constructor_geometry => {
                Geo::Polygon(flat)
            }
            _ => Geo::Value(expr.clone()),
        }
    }
}

/// A column reference: (qualifier, column), names normalised.
fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Identifier(i) => Some((None, normalise(i))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => Some((
            Some(normalise(&parts[parts.len() - 2])),
            normalise(&parts[parts.len() - 1]),
        )),
        Expr::Nested(inner) => column_ref(inner),
        _ => None,
    }
}

impl Rewriter<'_> {
    /// The scope table whose position `x`, `y` are, with those columns: an indexed table's own
    /// position columns, or two numeric columns of an in-memory table. `None` when no table or more
    /// than one fits.
    pub(super) fn position_of(
        &self,
        x: &Expr,
        y: &Expr,
        scope: &Scope,
    ) -> Option<(ScopeTable, PositionColumns)> {
        let (qx, cx) = column_ref(x)?;
        let (qy, cy) = column_ref(y)?;
        if qx != qy {
            return None;
        }
        let fits = |t: &ScopeTable| match &t.position {
            Some(p) => p.lon == cx && p.lat == cy,
            None => {
                t.in_memory
                    && self.tables.in_memory_column(&t.name, &cx).is_some()
                    && self.tables.in_memory_column(&t.name, &cy).is_some()
            }
        };
        let candidates: Vec<&ScopeTable> = scope
            .iter()
            .filter(|t| qx.as_deref().is_none_or(|q| q == t.qualifier))
            .filter(|t| fits(t))
            .collect();
        match candidates.as_slice() {
            [one] => Some((
                (*one).clone(),
                PositionColumns {
                    lon: cx.clone(),
                    lat: cy.clone(),
                },
            )),
            _ => None,
        }
    }
}
