//! Crossmatch joins (ADQL 2.1 §4.2.6 says the `DISTANCE(...) < r` forms are the ones to optimise):
//! a join condition that limits the distance between two positioned tables to a constant gets an
//! equi-join on HEALPix cells, so DataFusion plans a hash join instead of a nested-loop join.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, Join, JoinConstraint, JoinOperator, Select, TableAlias,
    TableFactor, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::{
    Geo, Rewriter, Scope, ScopeTable, and, args_of, binary, call, constant, ident, number,
    position_table, qualified, quote,
};
use crate::adql::AdqlError;
use crate::adql::validate::function_name;

impl Rewriter<'_> {
    /// `FROM a, b WHERE DISTANCE(a, b) < r AND ...` (a crossmatch written as a comma join) becomes
    /// `FROM a JOIN b ON (the whole WHERE)`, an equivalent inner join that [`Self::join`] then turns
    /// into a hash join on HEALPix cells.
    pub(super) fn comma_crossmatch_to_join(&mut self, select: &mut Select) {
        let [first, second] = select.from.as_slice() else {
            return;
        };
        if !first.joins.is_empty() || !second.joins.is_empty() {
            return;
        }
        let mut scope = Vec::new();
        let mut probe = |factor: &TableFactor| -> Option<ScopeTable> {
            let mut one = Vec::new();
            self.table_factor(&mut factor.clone(), &mut one).ok()?;
            one.pop()
        };
        let (Some(a), Some(b)) = (probe(&first.relation), probe(&second.relation)) else {
            return;
        };
        scope.push(a);
        scope.push(b.clone());
        let Some(selection) = &select.selection else {
            return;
        };
        if self.crossmatch_radius(selection, &scope, &b).is_none() {
            return;
        }
        let Some(condition) = select.selection.take() else {
            return;
        };
        let second = select.from.remove(1);
        select.from[0].joins.push(Join {
            relation: second.relation,
            global: false,
            join_operator: JoinOperator::Inner(JoinConstraint::On(condition)),
        });
    }

    /// Rewrites a join condition; for a crossmatch, adds the HEALPix-cell equi-join.
    pub(super) fn join(
        &mut self,
        join: &mut Join,
        scope: &Scope,
        right: Option<ScopeTable>,
    ) -> Result<(), AdqlError> {
        let constraint = match &mut join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c) => c,
            _ => return Ok(()),
        };
        let JoinConstraint::On(condition) = constraint else {
            return Ok(());
        };
        let crossmatch = right
            .as_ref()
            .and_then(|right| self.crossmatch_radius(condition, scope, right));
        self.expr(condition, scope)?;
        if let (Some((left, radius_deg)), Some(right)) = (crossmatch, right) {
            self.add_cell_join(join, &left, &right, radius_deg)?;
        }
        Ok(())
    }

    /// If `condition` (or one of its AND terms) limits the distance between the positions of
    /// `right` and another table in scope to a constant, returns that table and the radius.
    pub(super) fn crossmatch_radius(
        &self,
        condition: &Expr,
        scope: &Scope,
        right: &ScopeTable,
    ) -> Option<(ScopeTable, f64)> {
        match condition {
            Expr::Nested(inner) => self.crossmatch_radius(inner, scope, right),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right: r,
            } => self
                .crossmatch_radius(left, scope, right)
                .or_else(|| self.crossmatch_radius(r, scope, right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Lt | BinaryOperator::LtEq,
                right: r,
            } => {
                let radius = constant(r)?;
                let Expr::Function(f) = left.as_ref() else {
                    return None;
                };
                if function_name(f) != "DISTANCE" {
                    return None;
                }
                let points = self.distance_points(f)?;
                self.pair_of_positions(&points, scope, right)
                    .map(|t| (t, radius))
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right: r,
            } => {
                let (call_side, one) = if constant(left) == Some(1.0) {
                    (r, left)
                } else {
                    (left, r)
                };
                if constant(one) != Some(1.0) {
                    return None;
                }
                let Expr::Function(f) = call_side.as_ref() else {
                    return None;
                };
                let name = function_name(f);
                if name != "CONTAINS" && name != "INTERSECTS" {
                    return None;
                }
                let args = args_of(f);
                let (Geo::Point(x1, y1), Geo::Circle(x2, y2, r)) =
                    (self.geo_shape(&args[0]), self.geo_shape(&args[1]))
                else {
                    return None;
                };
                let radius = constant(&r)?;
                self.pair_of_positions(&[(x1, y1), (x2, y2)], scope, right)
                    .map(|t| (t, radius))
            }
            _ => None,
        }
    }

    pub(super) fn distance_points(&self, f: &Function) -> Option<Vec<(Expr, Expr)>> {
        let args = args_of(f);
        match args.len() {
            4 => Some(vec![
                (args[0].clone(), args[1].clone()),
                (args[2].clone(), args[3].clone()),
            ]),
            2 => match (self.geo_shape(&args[0]), self.geo_shape(&args[1])) {
                (Geo::Point(a, b), Geo::Point(c, d)) => Some(vec![(a, b), (c, d)]),
                _ => None,
            },
            _ => None,
        }
    }

    /// If one of the two points is `right`'s position and the other another scope table's.
    pub(super) fn pair_of_positions(
        &self,
        points: &[(Expr, Expr)],
        scope: &Scope,
        right: &ScopeTable,
    ) -> Option<ScopeTable> {
        let tables: Vec<Option<ScopeTable>> = points
            .iter()
            .map(|(x, y)| position_table(x, y, scope).cloned())
            .collect();
        match (&tables[0], &tables[1]) {
            (Some(a), Some(b))
                if b.qualifier == right.qualifier && a.qualifier != right.qualifier =>
            {
                Some(a.clone())
            }
            (Some(a), Some(b))
                if a.qualifier == right.qualifier && b.qualifier != right.qualifier =>
            {
                Some(b.clone())
            }
            _ => None,
        }
    }

    /// Replaces the right-hand table `t AS b` by
    /// `(SELECT *, unnest(adql_cone_cells(ra, dec, r, k)) AS __xm_cell FROM t) AS b` and adds
    /// `adql_healpix_index(k, a.ra, a.dec) = b.__xm_cell` to the join condition.
    pub(super) fn add_cell_join(
        &mut self,
        join: &mut Join,
        left: &ScopeTable,
        right: &ScopeTable,
        radius_deg: f64,
    ) -> Result<(), AdqlError> {
        if !(radius_deg > 0.0 && radius_deg < 5.0) {
            return Ok(());
        }
        // Cells at least ~4 radii across keep each row's cell list short (1–4 cells).
        let order = ((58.6 / (4.0 * radius_deg)).log2().floor()).clamp(0.0, 20.0);
        self.next_id += 1;
        let cell = format!("__xm_cell{}", self.next_id);
        let TableFactor::Table { name, alias, .. } = &join.relation else {
            return Ok(());
        };
        let inner_sql = format!(
            "SELECT *, unnest(adql_cone_cells({lon}, {lat}, {r:?}, {order:?})) AS {cell} FROM {name}",
            lon = quote(&right.position.lon),
            lat = quote(&right.position.lat),
            r = radius_deg,
        );
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let subquery = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(&inner_sql)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| {
                AdqlError::new(
                    format!("internal crossmatch rewrite failed: {e}"),
                    Span::empty(),
                )
            })?;
        let alias = alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: ident(&right.qualifier),
            columns: vec![],
            at: None,
        });
        join.relation = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            sample: None,
        };
        let equi = binary(
            call(
                "adql_healpix_index",
                vec![
                    number(order),
                    qualified(&left.qualifier, &left.position.lon),
                    qualified(&left.qualifier, &left.position.lat),
                ],
            ),
            BinaryOperator::Eq,
            qualified(&right.qualifier, &cell),
        );
        if let JoinOperator::Join(JoinConstraint::On(condition))
        | JoinOperator::Inner(JoinConstraint::On(condition))
        | JoinOperator::Left(JoinConstraint::On(condition))
        | JoinOperator::LeftOuter(JoinConstraint::On(condition)) = &mut join.join_operator
        {
            let original = std::mem::replace(condition, Expr::value(Value::Null));
            *condition = and(equi, original);
        }
        Ok(())
    }
}
