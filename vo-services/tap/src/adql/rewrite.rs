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
//!   positioned tables — published catalogues or uploads, `r` a constant or, for an upload, a
//!   column — also gets an equi-join on HEALPix cells, so the join is a hash join instead of a
//!   cross product (see [`crossmatch`]).

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, LimitClause, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SetExpr, Spanned, TableFactor, TableWithJoins, TopQuantity, UnaryOperator, Value,
};

mod crossmatch;
mod geometry;
mod units;

use geometry::Geo;

use super::AdqlError;
use super::validate::function_name;

/// Position columns of a table that carries a HEALPix index.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionColumns {
    /// Longitude (RA) column name.
    pub lon: String,
    /// Latitude (Dec) column name.
    pub lat: String,
}

/// What the rewriter needs to know about tables (named as written: `schema.table` or `table`).
pub trait TableResolver {
    /// Position columns of a table with a HEALPix index (a published catalogue): its
    /// `_healpix_29` is computed from them.
    fn position_columns(&self, table: &[String]) -> Option<PositionColumns>;
    /// Whether the table's rows are held in memory (a query's upload): small, and known now.
    fn is_in_memory(&self, _table: &[String]) -> bool {
        false
    }
    /// The values of a numeric column of an in-memory table (`None` for nulls and non-numbers);
    /// `None` when the table is not in memory or has no such column.
    fn in_memory_column(&self, _table: &[String], _column: &str) -> Option<Vec<Option<f64>>> {
        None
    }
    /// The unit of a column (`""` when it has none); `None` when the table has no such column.
    fn column_unit(&self, _table: &[String], _column: &str) -> Option<String> {
        None
    }
}

/// Rewrites `query` in place.
pub fn rewrite(query: &mut Query, tables: &dyn TableResolver) -> Result<(), AdqlError> {
    Rewriter { tables, next_id: 0 }.query(query)
}

struct Rewriter<'a> {
    tables: &'a dyn TableResolver,
    next_id: usize,
}

/// A table in scope: a published catalogue (with a HEALPix index, its position columns known), a
/// table held in memory (an upload: any two of its columns can be a position), or any other table
/// (for its columns' units).
#[derive(Debug, Clone)]
struct ScopeTable {
    /// The name to qualify columns with (alias, or the table's own name).
    qualifier: String,
    /// The table as written, for the resolver.
    name: Vec<String>,
    /// Position columns of an indexed table.
    position: Option<PositionColumns>,
    /// Rows held in memory.
    in_memory: bool,
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
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
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
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn and(left: Expr, right: Expr) -> Expr {
    binary(
        Expr::Nested(Box::new(left)),
        BinaryOperator::And,
        Expr::Nested(Box::new(right)),
    )
}

/// `column BETWEEN a AND b OR ...` for half-open `ranges` of `_healpix_29` (not empty), as a
/// balanced tree of ORs (hundreds of ranges stay shallow for the planner's recursion).
fn index_ranges_predicate(column: &Expr, ranges: &[std::ops::Range<i64>]) -> Expr {
    match ranges {
        [range] => Expr::Between {
            expr: Box::new(column.clone()),
            negated: false,
            low: Box::new(Expr::value(Value::Number(range.start.to_string(), false))),
            high: Box::new(Expr::value(Value::Number(
                (range.end - 1).to_string(),
                false,
            ))),
        },
        _ => {
            let (left, right) = ranges.split_at(ranges.len() / 2);
            Expr::Nested(Box::new(binary(
                index_ranges_predicate(column, left),
                BinaryOperator::Or,
                index_ranges_predicate(column, right),
            )))
        }
    }
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
    evaluate(expr, &|_| None)
}

/// `expr` as a number: literals and simple arithmetic, its columns looked up by name by `column`.
fn evaluate(expr: &Expr, column: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Identifier(i) => column(&normalise(i)),
        Expr::CompoundIdentifier(parts) => column(&normalise(parts.last()?)),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => evaluate(expr, column).map(|v| -v),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => evaluate(expr, column),
        Expr::Nested(inner) => evaluate(inner, column),
        Expr::BinaryOp { left, op, right } => {
            let (a, b) = (evaluate(left, column)?, evaluate(right, column)?);
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
            && let datafusion::sql::sqlparser::ast::OrderByKind::Expressions(exprs) =
                &mut order_by.kind
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
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(limit),
                offset,
                limit_by: vec![],
            });
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
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    self.expr(expr, &scope)?
                }
                _ => {}
            }
        }
        if let Some(selection) = &mut select.selection {
            self.expr(selection, &scope)?;
        }
        if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) =
            &mut select.group_by
        {
            for expr in exprs {
                self.expr(expr, &scope)?;
            }
        }
        if let Some(having) = &mut select.having {
            self.expr(having, &scope)?;
        }
        Ok(scope)
    }

    fn table_with_joins(
        &mut self,
        table: &mut TableWithJoins,
        scope: &mut Scope,
    ) -> Result<(), AdqlError> {
        self.table_factor(&mut table.relation, scope)?;
        for i in 0..table.joins.len() {
            let before = scope.len();
            self.table_factor(&mut table.joins[i].relation, scope)?;
            let right = (scope.len() > before).then(|| scope[scope.len() - 1].clone());
            if let Some(crossmatch) = self.join(&mut table.joins[i], scope, right)? {
                self.add_cell_join(table, i, crossmatch)?;
            }
        }
        Ok(())
    }

    fn table_factor(
        &mut self,
        factor: &mut TableFactor,
        scope: &mut Scope,
    ) -> Result<(), AdqlError> {
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
                let position = self.tables.position_columns(&parts);
                let in_memory = self.tables.is_in_memory(&parts);
                let qualifier = match alias {
                    Some(alias) => normalise(&alias.name),
                    None => parts.last().cloned().unwrap_or_default(),
                };
                scope.push(ScopeTable {
                    qualifier,
                    name: parts,
                    position,
                    in_memory,
                });
                Ok(())
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins, scope),
            _ => Ok(()),
        }
    }

    fn expr(&mut self, expr: &mut Expr, scope: &Scope) -> Result<(), AdqlError> {
        // Comparisons of CONTAINS/INTERSECTS with 0 or 1 become boolean predicates.
        if let Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq),
            right,
        } = expr
        {
            let negate = *op == BinaryOperator::NotEq;
            let (left, right) = (left.as_ref(), right.as_ref());
            let (call_side, value) = if constant(left).is_some() {
                (right, left)
            } else {
                (left, right)
            };
            if let (Expr::Function(f), Some(value)) = (call_side, constant(value)) {
                let name = function_name(f);
                if (name == "CONTAINS" || name == "INTERSECTS") && (value == 0.0 || value == 1.0) {
                    let mut predicate = self.geometry_predicate(&name, f, scope)?;
                    if (value == 0.0) != negate {
                        predicate = Expr::UnaryOp {
                            op: UnaryOperator::Not,
                            expr: Box::new(Expr::Nested(Box::new(predicate))),
                        };
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
            Expr::Ceil { expr: inner, .. } | Expr::Floor { expr: inner, .. } => {
                self.expr(inner, scope)
            }
            Expr::Cast {
                expr: inner,
                data_type: datafusion::sql::sqlparser::ast::DataType::Custom(name, _),
                ..
            } => {
                let kind = name.to_string().to_ascii_uppercase();
                let Expr::Value(v) = inner.as_ref() else {
                    return Err(AdqlError::new(
                        format!("CAST to {kind} needs a string literal"),
                        inner.span(),
                    ));
                };
                let Value::SingleQuotedString(text) = &v.value else {
                    return Err(AdqlError::new(
                        format!("CAST to {kind} needs a string literal"),
                        inner.span(),
                    ));
                };
                let numbers: Result<Vec<f64>, _> =
                    text.split_whitespace().map(str::parse::<f64>).collect();
                let numbers = numbers.map_err(|_| {
                    AdqlError::new(format!("not a DALI {kind}: '{text}'"), inner.span())
                })?;
                let ok = match kind.as_str() {
                    "POINT" => numbers.len() == 2,
                    "CIRCLE" => numbers.len() == 3,
                    _ => numbers.len() >= 6 && numbers.len() % 2 == 0,
                };
                if !ok {
                    return Err(AdqlError::new(
                        format!("not a DALI {kind}: '{text}'"),
                        inner.span(),
                    ));
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
            Expr::Between {
                expr: e, low, high, ..
            } => {
                self.expr(e, scope)?;
                self.expr(low, scope)?;
                self.expr(high, scope)
            }
            Expr::InList { expr: e, list, .. } => {
                self.expr(e, scope)?;
                list.iter_mut().try_for_each(|item| self.expr(item, scope))
            }
            Expr::InSubquery {
                expr: e, subquery, ..
            } => {
                self.expr(e, scope)?;
                self.query(subquery)
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => self.query(subquery),
            Expr::Like {
                expr: e, pattern, ..
            }
            | Expr::ILike {
                expr: e, pattern, ..
            } => {
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
                    (Some(a), Some(b)) => {
                        Some(Expr::Nested(Box::new(binary(a, BinaryOperator::Modulo, b))))
                    }
                    _ => None,
                }
            }
            "IVO_HEALPIX_INDEX" => Some(call("adql_healpix_index", args)),
            "POINT" | "CIRCLE" | "BOX" | "POLYGON" => {
                set_args(f, args);
                Some(self.geo_shape(&Expr::Function(f.clone())).into_value())
            }
            "CENTROID" => Some(call(
                "adql_centroid",
                vec![self.geo_of(&args[0]).into_value()],
            )),
            "AREA" => Some(call("adql_area", vec![self.geo_of(&args[0]).into_value()])),
            "COORD1" | "COORD2" => Some(match self.geo_of(&args[0]) {
                Geo::Point(x, y) => Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::Nested(Box::new(if name == "COORD1" { x } else { y }))),
                    data_type: datafusion::sql::sqlparser::ast::DataType::DoublePrecision,
                    format: None,
                    array: false,
                },
                other => call(
                    if name == "COORD1" {
                        "adql_coord1"
                    } else {
                        "adql_coord2"
                    },
                    vec![other.into_value()],
                ),
            }),
            "IN_UNIT" => Some(self.in_unit(f, &args, scope)?),
            "COORDSYS" => Some(Expr::value(Value::SingleQuotedString("ICRS".into()))),
            "REGION" => {
                return Err(AdqlError::new(
                    "REGION (deprecated in ADQL 2.1) is not supported",
                    f.name.span(),
                ));
            }
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
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(qualifier: &str, column: &str) -> Expr {
    Expr::CompoundIdentifier(vec![
        Ident::with_quote('"', qualifier),
        Ident::with_quote('"', column),
    ])
}
