//! Rewrites a validated ADQL AST into SQL DataFusion plans well (ADQL 2.1 → DataFusion 55).
//!
//! - `TOP n` becomes `LIMIT n` (DataFusion refuses TOP), combined with ADQL's `OFFSET`.
//! - Functions whose DataFusion namesakes differ are renamed: LOG (natural) → `ln`, CEILING → `ceil`,
//!   TRUNCATE → `trunc`, RAND → `random`, MOD → `%`; the coordinate-system argument of geometry
//!   constructors is dropped (everything is ICRS).
//! - Geometry: `1=CONTAINS(POINT(ra,dec), CIRCLE(...))` and friends become flat predicates
//!   (`adql_distance(...) <= r`, `adql_in_box`, `adql_in_polygon`). When the point is a table's
//!   position and the shape is constant, the predicate is ANDed with ranges on the table's
//!   `_healpix_29` column, which Parquet statistics turn into file and row-group pruning.
//! - Crossmatch: a join condition `DISTANCE(a, b) < r` (any of its ADQL spellings) between two
//!   positioned tables also gets an equi-join on HEALPix cells (`b`'s cone cells unnested), so the
//!   join is a hash join instead of a cross product.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, Join, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SetExpr, Spanned, TableAlias, TableFactor, TableWithJoins, TopQuantity, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::AdqlError;
use super::validate::function_name;
use crate::sky::{self, HEALPIX_COLUMN, Region};

/// Position columns of a table that carries a HEALPix index.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionColumns {
    /// Longitude (RA) column name.
    pub lon: String,
    /// Latitude (Dec) column name.
    pub lat: String,
}

/// What the rewriter needs to know about tables.
pub trait TableResolver {
    /// Position columns of a table (by its name as written, `schema.table` or `table`), if it has a
    /// HEALPix index.
    fn position_columns(&self, table: &[String]) -> Option<PositionColumns>;
}

/// Rewrites `query` in place.
pub fn rewrite(query: &mut Query, tables: &dyn TableResolver) -> Result<(), AdqlError> {
    Rewriter { tables, next_id: 0 }.query(query)
}

struct Rewriter<'a> {
    tables: &'a dyn TableResolver,
    next_id: usize,
}

/// A table in scope: the name to qualify columns with, and its position columns.
#[derive(Debug, Clone)]
struct ScopeTable {
    qualifier: String,
    position: PositionColumns,
}

type Scope = Vec<ScopeTable>;

fn ident(name: &str) -> Ident {
    Ident::new(name)
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(ident(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn number(value: f64) -> Expr {
    Expr::value(Value::Number(format!("{value:?}"), false))
}

fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(left), op, right: Box::new(right) }
}

fn and(left: Expr, right: Expr) -> Expr {
    binary(Expr::Nested(Box::new(left)), BinaryOperator::And, Expr::Nested(Box::new(right)))
}

/// The plain expression arguments of a function call.
fn args_of(function: &Function) -> Vec<Expr> {
    match &function.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// A numeric constant, if `expr` is one (literals, unary minus, parentheses, simple arithmetic).
fn constant(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => constant(expr).map(|v| -v),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => constant(expr),
        Expr::Nested(inner) => constant(inner),
        Expr::BinaryOp { left, op, right } => {
            let (a, b) = (constant(left)?, constant(right)?);
            match op {
                BinaryOperator::Plus => Some(a + b),
                BinaryOperator::Minus => Some(a - b),
                BinaryOperator::Multiply => Some(a * b),
                BinaryOperator::Divide if b != 0.0 => Some(a / b),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A geometry expression with its structure known at rewrite time. Short-lived (one per geometry
/// call during a rewrite), so the size difference between variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Geo {
    Point(Expr, Expr),
    Circle(Expr, Expr, Expr),
    Box(Expr, Expr, Expr, Expr),
    Polygon(Vec<Expr>),
    /// A geometry known only at run time (a column or another function): a `List<Float64>`.
    Value(Expr),
}

impl Geo {
    fn into_value(self) -> Expr {
        match self {
            Geo::Point(x, y) => call("adql_point", vec![x, y]),
            Geo::Circle(x, y, r) => call("adql_circle", vec![x, y, r]),
            Geo::Box(x, y, w, h) => call("adql_box", vec![x, y, w, h]),
            Geo::Polygon(coords) => call("adql_polygon", coords),
            Geo::Value(e) => e,
        }
    }

    /// The sky region of a constant shape.
    fn region(&self) -> Option<Region> {
        match self {
            Geo::Circle(x, y, r) => Some(Region::Circle { lon_deg: constant(x)?, lat_deg: constant(y)?, radius_deg: constant(r)? }),
            Geo::Box(x, y, w, h) => Some(Region::Box {
                lon_deg: constant(x)?,
                lat_deg: constant(y)?,
                width_deg: constant(w)?,
                height_deg: constant(h)?,
            }),
            Geo::Polygon(coords) => {
                let values: Option<Vec<f64>> = coords.iter().map(constant).collect();
                Some(Region::Polygon(values?.chunks(2).map(|c| (c[0], c[1])).collect()))
            }
            _ => None,
        }
    }
}

fn is_string_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

impl Rewriter<'_> {
    fn query(&mut self, query: &mut Query) -> Result<(), AdqlError> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                self.query(&mut cte.query)?;
            }
        }
        let scope = self.set_expr(&mut query.body)?;
        if let Some(order_by) = &mut query.order_by
            && let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) = &mut order_by.kind
        {
            for item in exprs {
                self.expr(&mut item.expr, &scope)?;
            }
        }
        // TOP n → LIMIT n (keeping ADQL's OFFSET).
        let top = match query.body.as_mut() {
            SetExpr::Select(select) => select.top.take(),
            _ => None,
        };
        if let Some(top) = top {
            let limit = match top.quantity {
                Some(TopQuantity::Constant(n)) => Expr::value(Value::Number(n.to_string(), false)),
                Some(TopQuantity::Expr(e)) => e,
                None => return Err(AdqlError::new("TOP needs a number", query.span())),
            };
            let offset = match query.limit_clause.take() {
                Some(LimitClause::LimitOffset { offset, .. }) => offset,
                _ => None,
            };
            query.limit_clause = Some(LimitClause::LimitOffset { limit: Some(limit), offset, limit_by: vec![] });
        }
        Ok(())
    }

    fn set_expr(&mut self, body: &mut SetExpr) -> Result<Scope, AdqlError> {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(query) => {
                self.query(query)?;
                Ok(vec![])
            }
            SetExpr::SetOperation { left, right, .. } => {
                for side in [left, right] {
                    if let SetExpr::Select(select) = side.as_mut()
                        && select.top.is_some()
                    {
                        // TOP inside a set operand: make the operand a parenthesised query.
                        let inner = std::mem::replace(
                            side.as_mut(),
                            SetExpr::Values(datafusion::sql::sqlparser::ast::Values {
                                explicit_row: false,
                                value_keyword: false,
                                rows: vec![],
                            }),
                        );
                        let mut query = Query {
                            with: None,
                            body: Box::new(inner),
                            order_by: None,
                            limit_clause: None,
                            fetch: None,
                            locks: vec![],
                            for_clause: None,
                            settings: None,
                            format_clause: None,
                            pipe_operators: vec![],
                        };
                        self.query(&mut query)?;
                        **side = SetExpr::Query(Box::new(query));
                    } else {
                        self.set_expr(side)?;
                    }
                }
                Ok(vec![])
            }
            _ => Ok(vec![]),
        }
    }

    fn select(&mut self, select: &mut Select) -> Result<Scope, AdqlError> {
        self.comma_crossmatch_to_join(select);
        let mut scope = Vec::new();
        for table in &mut select.from {
            self.table_with_joins(table, &mut scope)?;
        }
        for item in &mut select.projection {
            match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => self.expr(expr, &scope)?,
                _ => {}
            }
        }
        if let Some(selection) = &mut select.selection {
            self.expr(selection, &scope)?;
        }
        if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            for expr in exprs {
                self.expr(expr, &scope)?;
            }
        }
        if let Some(having) = &mut select.having {
            self.expr(having, &scope)?;
        }
        Ok(scope)
    }

    fn table_with_joins(&mut self, table: &mut TableWithJoins, scope: &mut Scope) -> Result<(), AdqlError> {
        self.table_factor(&mut table.relation, scope)?;
        for join in &mut table.joins {
            let before = scope.len();
            self.table_factor(&mut join.relation, scope)?;
            let right = (scope.len() > before).then(|| scope[scope.len() - 1].clone());
            self.join(join, scope, right)?;
        }
        Ok(())
    }

    fn table_factor(&mut self, factor: &mut TableFactor, scope: &mut Scope) -> Result<(), AdqlError> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| match p {
                        ObjectNamePart::Identifier(i) => Some(normalise(i)),
                        _ => None,
                    })
                    .collect();
                if let Some(position) = self.tables.position_columns(&parts) {
                    let qualifier = match alias {
                        Some(alias) => normalise(&alias.name),
                        None => parts.last().cloned().unwrap_or_default(),
                    };
                    scope.push(ScopeTable { qualifier, position });
                }
                Ok(())
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin { table_with_joins, .. } => self.table_with_joins(table_with_joins, scope),
            _ => Ok(()),
        }
    }

    /// `FROM a, b WHERE DISTANCE(a, b) < r AND ...` (a crossmatch written as a comma join) becomes
    /// `FROM a JOIN b ON (the whole WHERE)`, an equivalent inner join that [`Self::join`] then turns
    /// into a hash join on HEALPix cells.
    fn comma_crossmatch_to_join(&mut self, select: &mut Select) {
        let [first, second] = select.from.as_slice() else { return };
        if !first.joins.is_empty() || !second.joins.is_empty() {
            return;
        }
        let mut scope = Vec::new();
        let mut probe = |factor: &TableFactor| -> Option<ScopeTable> {
            let mut one = Vec::new();
            self.table_factor(&mut factor.clone(), &mut one).ok()?;
            one.pop()
        };
        let (Some(a), Some(b)) = (probe(&first.relation), probe(&second.relation)) else { return };
        scope.push(a);
        scope.push(b.clone());
        let Some(selection) = &select.selection else { return };
        if self.crossmatch_radius(selection, &scope, &b).is_none() {
            return;
        }
        let Some(condition) = select.selection.take() else { return };
        let second = select.from.remove(1);
        select.from[0].joins.push(Join {
            relation: second.relation,
            global: false,
            join_operator: JoinOperator::Inner(JoinConstraint::On(condition)),
        });
    }

    /// Rewrites a join condition; for a crossmatch, adds the HEALPix-cell equi-join.
    fn join(&mut self, join: &mut Join, scope: &Scope, right: Option<ScopeTable>) -> Result<(), AdqlError> {
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
        let JoinConstraint::On(condition) = constraint else { return Ok(()) };
        let crossmatch = right.as_ref().and_then(|right| self.crossmatch_radius(condition, scope, right));
        self.expr(condition, scope)?;
        if let (Some((left, radius_deg)), Some(right)) = (crossmatch, right) {
            self.add_cell_join(join, &left, &right, radius_deg)?;
        }
        Ok(())
    }

    /// If `condition` (or one of its AND terms) limits the distance between the positions of
    /// `right` and another table in scope to a constant, returns that table and the radius.
    fn crossmatch_radius(&self, condition: &Expr, scope: &Scope, right: &ScopeTable) -> Option<(ScopeTable, f64)> {
        match condition {
            Expr::Nested(inner) => self.crossmatch_radius(inner, scope, right),
            Expr::BinaryOp { left, op: BinaryOperator::And, right: r } => self
                .crossmatch_radius(left, scope, right)
                .or_else(|| self.crossmatch_radius(r, scope, right)),
            Expr::BinaryOp { left, op: BinaryOperator::Lt | BinaryOperator::LtEq, right: r } => {
                let radius = constant(r)?;
                let Expr::Function(f) = left.as_ref() else { return None };
                if function_name(f) != "DISTANCE" {
                    return None;
                }
                let points = self.distance_points(f)?;
                self.pair_of_positions(&points, scope, right).map(|t| (t, radius))
            }
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right: r } => {
                let (call_side, one) = if constant(left) == Some(1.0) { (r, left) } else { (left, r) };
                if constant(one) != Some(1.0) {
                    return None;
                }
                let Expr::Function(f) = call_side.as_ref() else { return None };
                let name = function_name(f);
                if name != "CONTAINS" && name != "INTERSECTS" {
                    return None;
                }
                let args = args_of(f);
                let (Geo::Point(x1, y1), Geo::Circle(x2, y2, r)) = (self.geo_shape(&args[0]), self.geo_shape(&args[1])) else {
                    return None;
                };
                let radius = constant(&r)?;
                self.pair_of_positions(&[(x1, y1), (x2, y2)], scope, right).map(|t| (t, radius))
            }
            _ => None,
        }
    }

    fn distance_points(&self, f: &Function) -> Option<Vec<(Expr, Expr)>> {
        let args = args_of(f);
        match args.len() {
            4 => Some(vec![(args[0].clone(), args[1].clone()), (args[2].clone(), args[3].clone())]),
            2 => match (self.geo_shape(&args[0]), self.geo_shape(&args[1])) {
                (Geo::Point(a, b), Geo::Point(c, d)) => Some(vec![(a, b), (c, d)]),
                _ => None,
            },
            _ => None,
        }
    }

    /// If one of the two points is `right`'s position and the other another scope table's.
    fn pair_of_positions(&self, points: &[(Expr, Expr)], scope: &Scope, right: &ScopeTable) -> Option<ScopeTable> {
        let tables: Vec<Option<ScopeTable>> = points.iter().map(|(x, y)| position_table(x, y, scope).cloned()).collect();
        match (&tables[0], &tables[1]) {
            (Some(a), Some(b)) if b.qualifier == right.qualifier && a.qualifier != right.qualifier => Some(a.clone()),
            (Some(a), Some(b)) if a.qualifier == right.qualifier && b.qualifier != right.qualifier => Some(b.clone()),
            _ => None,
        }
    }

    /// Replaces the right-hand table `t AS b` by
    /// `(SELECT *, unnest(adql_cone_cells(ra, dec, r, k)) AS __xm_cell FROM t) AS b` and adds
    /// `adql_healpix_index(k, a.ra, a.dec) = b.__xm_cell` to the join condition.
    fn add_cell_join(&mut self, join: &mut Join, left: &ScopeTable, right: &ScopeTable, radius_deg: f64) -> Result<(), AdqlError> {
        if !(radius_deg > 0.0 && radius_deg < 5.0) {
            return Ok(());
        }
        // Cells at least ~4 radii across keep each row's cell list short (1–4 cells).
        let order = ((58.6 / (4.0 * radius_deg)).log2().floor()).clamp(0.0, 20.0);
        self.next_id += 1;
        let cell = format!("__xm_cell{}", self.next_id);
        let TableFactor::Table { name, alias, .. } = &join.relation else { return Ok(()) };
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
            .map_err(|e| AdqlError::new(format!("internal crossmatch rewrite failed: {e}"), Span::empty()))?;
        let alias = alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: ident(&right.qualifier),
            columns: vec![],
            at: None,
        });
        join.relation = TableFactor::Derived { lateral: false, subquery, alias: Some(alias), sample: None };
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

    fn expr(&mut self, expr: &mut Expr, scope: &Scope) -> Result<(), AdqlError> {
        // Comparisons of CONTAINS/INTERSECTS with 0 or 1 become boolean predicates.
        if let Expr::BinaryOp { left, op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq), right } = expr {
            let negate = *op == BinaryOperator::NotEq;
            let (left, right) = (left.as_ref(), right.as_ref());
            let (call_side, value) = if constant(left).is_some() { (right, left) } else { (left, right) };
            if let (Expr::Function(f), Some(value)) = (call_side, constant(value)) {
                let name = function_name(f);
                if (name == "CONTAINS" || name == "INTERSECTS") && (value == 0.0 || value == 1.0) {
                    let mut predicate = self.geometry_predicate(&name, f, scope)?;
                    if (value == 0.0) != negate {
                        predicate = Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(Expr::Nested(Box::new(predicate))) };
                    }
                    *expr = Expr::Nested(Box::new(predicate));
                    return Ok(());
                }
            }
        }
        match expr {
            Expr::Function(f) => {
                if let Some(replacement) = self.function(f, scope)? {
                    *expr = replacement;
                }
                Ok(())
            }
            Expr::Ceil { expr: inner, .. } | Expr::Floor { expr: inner, .. } => self.expr(inner, scope),
            Expr::Cast { expr: inner, data_type: datafusion::sql::sqlparser::ast::DataType::Custom(name, _), .. } => {
                let kind = name.to_string().to_ascii_uppercase();
                let Expr::Value(v) = inner.as_ref() else {
                    return Err(AdqlError::new(format!("CAST to {kind} needs a string literal"), inner.span()));
                };
                let Value::SingleQuotedString(text) = &v.value else {
                    return Err(AdqlError::new(format!("CAST to {kind} needs a string literal"), inner.span()));
                };
                let numbers: Result<Vec<f64>, _> = text.split_whitespace().map(str::parse::<f64>).collect();
                let numbers = numbers.map_err(|_| AdqlError::new(format!("not a DALI {kind}: '{text}'"), inner.span()))?;
                let ok = match kind.as_str() {
                    "POINT" => numbers.len() == 2,
                    "CIRCLE" => numbers.len() == 3,
                    _ => numbers.len() >= 6 && numbers.len() % 2 == 0,
                };
                if !ok {
                    return Err(AdqlError::new(format!("not a DALI {kind}: '{text}'"), inner.span()));
                }
                let function = match kind.as_str() {
                    "POINT" => "adql_point",
                    "CIRCLE" => "adql_circle",
                    _ => "adql_polygon",
                };
                *expr = call(function, numbers.into_iter().map(number).collect());
                Ok(())
            }
            Expr::Nested(inner)
            | Expr::UnaryOp { expr: inner, .. }
            | Expr::IsNull(inner)
            | Expr::IsNotNull(inner)
            | Expr::Cast { expr: inner, .. } => self.expr(inner, scope),
            Expr::BinaryOp { left, right, .. } => {
                self.expr(left, scope)?;
                self.expr(right, scope)
            }
            Expr::Between { expr: e, low, high, .. } => {
                self.expr(e, scope)?;
                self.expr(low, scope)?;
                self.expr(high, scope)
            }
            Expr::InList { expr: e, list, .. } => {
                self.expr(e, scope)?;
                list.iter_mut().try_for_each(|item| self.expr(item, scope))
            }
            Expr::InSubquery { expr: e, subquery, .. } => {
                self.expr(e, scope)?;
                self.query(subquery)
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => self.query(subquery),
            Expr::Like { expr: e, pattern, .. } | Expr::ILike { expr: e, pattern, .. } => {
                self.expr(e, scope)?;
                self.expr(pattern, scope)
            }
            _ => Ok(()),
        }
    }

    /// Rewrites one function call; returns the replacement expression.
    fn function(&mut self, f: &mut Function, scope: &Scope) -> Result<Option<Expr>, AdqlError> {
        let name = function_name(f);
        let mut args = args_of(f);
        for arg in &mut args {
            self.expr(arg, scope)?;
        }
        let rename = |f: &mut Function, to: &str| {
            f.name = ObjectName(vec![ObjectNamePart::Identifier(ident(to))]);
        };
        Ok(match name.as_str() {
            "LOG" => {
                rename(f, "ln");
                set_args(f, args);
                None
            }
            "CEILING" => Some(call("ceil", args)),
            "TRUNCATE" => Some(call("trunc", args)),
            "RAND" => Some(call("random", vec![])),
            "MOD" => {
                let mut it = args.into_iter();
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Some(Expr::Nested(Box::new(binary(a, BinaryOperator::Modulo, b)))),
                    _ => None,
                }
            }
            "IVO_HEALPIX_INDEX" => Some(call("adql_healpix_index", args)),
            "POINT" | "CIRCLE" | "BOX" | "POLYGON" => {
                set_args(f, args);
                Some(self.geo_shape(&Expr::Function(f.clone())).into_value())
            }
            "CENTROID" => Some(call("adql_centroid", vec![self.geo_of(&args[0]).into_value()])),
            "AREA" => Some(call("adql_area", vec![self.geo_of(&args[0]).into_value()])),
            "COORD1" | "COORD2" => Some(match self.geo_of(&args[0]) {
                Geo::Point(x, y) => Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::Nested(Box::new(if name == "COORD1" { x } else { y }))),
                    data_type: datafusion::sql::sqlparser::ast::DataType::DoublePrecision,
                    format: None,
                    array: false,
                },
                other => call(if name == "COORD1" { "adql_coord1" } else { "adql_coord2" }, vec![other.into_value()]),
            }),
            "IN_UNIT" => {
                return Err(AdqlError::new("IN_UNIT is not supported by this service yet", f.name.span()));
            }
            "COORDSYS" => Some(Expr::value(Value::SingleQuotedString("ICRS".into()))),
            "REGION" => return Err(AdqlError::new("REGION (deprecated in ADQL 2.1) is not supported", f.name.span())),
            "DISTANCE" => Some(self.distance(&args)),
            "CONTAINS" | "INTERSECTS" => {
                let predicate = self.geometry_predicate(&name, f, scope)?;
                Some(Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::Nested(Box::new(predicate))),
                    data_type: datafusion::sql::sqlparser::ast::DataType::Integer(None),
                    format: None,
                    array: false,
                })
            }
            _ => {
                set_args(f, args);
                None
            }
        })
    }

    fn distance(&mut self, args: &[Expr]) -> Expr {
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
    fn geometry_predicate(&mut self, name: &str, f: &Function, scope: &Scope) -> Result<Expr, AdqlError> {
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
                let function = if name == "CONTAINS" { "adql_contains" } else { "adql_intersects" };
                return Ok(binary(call(function, vec![a.into_value(), b.into_value()]), BinaryOperator::Eq, number(1.0)));
            }
        };
        let Some((x, y)) = point else { unreachable!("point is Some in the arms above") };
        let region = shape.region();
        let predicate = match shape {
            Geo::Circle(cx, cy, r) => binary(call("adql_distance", vec![x.clone(), y.clone(), cx, cy]), BinaryOperator::LtEq, r),
            Geo::Box(cx, cy, w, h) => call("adql_in_box", vec![x.clone(), y.clone(), cx, cy, w, h]),
            Geo::Polygon(coords) => {
                let mut all = vec![x.clone(), y.clone()];
                all.extend(coords);
                call("adql_in_polygon", all)
            }
            other => binary(
                call("adql_contains", vec![Geo::Point(x.clone(), y.clone()).into_value(), other.into_value()]),
                BinaryOperator::Eq,
                number(1.0),
            ),
        };
        // Spatial pruning: a constant region around a positioned table's own columns.
        if let (Some(region), Some(table)) = (region, position_table(&x, &y, scope))
            && let Some(ranges) = sky::coverage_ranges_29(&region)
        {
            let column = qualified(&table.qualifier, HEALPIX_COLUMN);
            let mut prune: Option<Expr> = None;
            for range in ranges {
                let term = Expr::Between {
                    expr: Box::new(column.clone()),
                    negated: false,
                    low: Box::new(Expr::value(Value::Number(range.start.to_string(), false))),
                    high: Box::new(Expr::value(Value::Number((range.end - 1).to_string(), false))),
                };
                prune = Some(match prune {
                    None => term,
                    Some(p) => binary(p, BinaryOperator::Or, term),
                });
            }
            if let Some(prune) = prune {
                return Ok(and(prune, predicate));
            }
        }
        Ok(predicate)
    }

    /// Rewrites non-geometry subexpressions inside a geometry argument (e.g. arithmetic on radii).
    fn rewrite_inside_geometry(&mut self, expr: &mut Expr, scope: &Scope) -> Result<(), AdqlError> {
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
    fn geo_of(&self, expr: &Expr) -> Geo {
        self.geo_shape(expr)
    }

    /// Decodes an ADQL geometry constructor (coordinate system dropped, POINT arguments flattened).
    fn geo_shape(&self, expr: &Expr) -> Geo {
        let Expr::Function(f) = expr else { return Geo::Value(expr.clone()) };
        let upper = function_name(f);
        let name = upper.strip_prefix("ADQL_").unwrap_or(&upper).to_string();
        let mut args = args_of(f);
        if args.first().is_some_and(|a| is_string_literal(a) || matches!(a, Expr::Value(v) if v.value == Value::Null)) {
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
            ("BOX", 4) => Geo::Box(flat[0].clone(), flat[1].clone(), flat[2].clone(), flat[3].clone()),
            ("POLYGON", n) if n >= 6 && n % 2 == 0 && !has_non_constructor_geometry => Geo::Polygon(flat),
            _ => Geo::Value(expr.clone()),
        }
    }
}

fn set_args(f: &mut Function, args: Vec<Expr>) {
    if let FunctionArguments::List(list) = &mut f.args {
        let mut replacements = args.into_iter();
        for arg in &mut list.args {
            if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg
                && let Some(new) = replacements.next()
            {
                *e = new;
            }
        }
    }
}

/// ADQL identifiers fold to lower case unless delimited (as DataFusion normalises them).
fn normalise(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_ascii_lowercase() }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(qualifier: &str, column: &str) -> Expr {
    Expr::CompoundIdentifier(vec![Ident::with_quote('"', qualifier), Ident::with_quote('"', column)])
}

/// The scope table whose position columns `x`, `y` are.
fn position_table<'s>(x: &Expr, y: &Expr, scope: &'s Scope) -> Option<&'s ScopeTable> {
    fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
        match e {
            Expr::Identifier(i) => Some((None, normalise(i))),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                Some((Some(normalise(&parts[parts.len() - 2])), normalise(&parts[parts.len() - 1])))
            }
            Expr::Nested(inner) => column_ref(inner),
            _ => None,
        }
    }
    let (qx, cx) = column_ref(x)?;
    let (qy, cy) = column_ref(y)?;
    if qx != qy {
        return None;
    }
    let candidates: Vec<&ScopeTable> = scope
        .iter()
        .filter(|t| t.position.lon == cx && t.position.lat == cy)
        .filter(|t| qx.as_deref().is_none_or(|q| q == t.qualifier))
        .collect();
    if candidates.len() == 1 { Some(candidates[0]) } else { None }
}
