//! Crossmatch joins (ADQL 2.1 §4.2.6 says the `DISTANCE(...) < r` forms are the ones to optimise):
//! a join condition that limits the distance between two tables' positions gets an equi-join on
//! HEALPix cells, so DataFusion plans a hash join instead of a nested-loop join.
//!
//! One side's rows are expanded to the cells their cone (the match radius around them) touches,
//! at an order whose cells are at least ~4 radii across (1–4 cells a row); the other side's rows
//! each have the one cell their position is in — for a published catalogue read off its
//! `_healpix_29` column (`_healpix_29 / 4^(29-k)`), for anything else computed. An uploaded table
//! (small, in memory) is always the side expanded to cones, whichever way the query is written;
//! its radius may then be a column of it (`DISTANCE(...) < u.radius_deg`, `u.r_arcsec / 3600`),
//! the cell order following the largest. Against a catalogue, the cells the upload's cones cover
//! are also ANDed into the join as ranges of `_healpix_29`, which prune the catalogue's files and
//! row groups by their statistics before anything is read — unless they cover so much of the sky
//! that pruning cannot pay.

use std::ops::Range;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, Join, JoinConstraint, JoinOperator, Select, TableAlias,
    TableFactor, TableWithJoins, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::{
    Geo, PositionColumns, Rewriter, Scope, ScopeTable, and, args_of, binary, call, constant,
    evaluate, ident, index_ranges_predicate, normalise, number, qualified, quote,
};
use crate::adql::AdqlError;
use crate::adql::validate::function_name;
use crate::catalog::HEALPIX_COLUMN;
use colo_astro::sky::HEALPIX_ORDER;

/// Most `_healpix_29` ranges handed to the planner for an upload's cells (more are merged across
/// their smallest gaps: still a superset). They only prune files, row groups and pages
/// (`crate::partitions`), but DataFusion evaluates a pruning predicate term by term for every file
/// and row group: against Tycho-2's 476 row groups, 512 ranges cost 0.4 s of pruning, 64 a tenth.
const MAX_PRUNING_RANGES: usize = 64;

/// Above this share of the sky an upload's cells would prune too little to pay for the pruning.
const MAX_PRUNED_SKY_FRACTION: f64 = 0.5;

/// How far apart matched positions may be. One per join condition while it is rewritten, so the
/// size of the expression variant does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Radius {
    /// Degrees.
    Constant(f64),
    /// An expression (degrees) of one table's columns: a radius per row.
    PerRow(Expr),
}

/// One side of a crossmatch: a table in scope and the columns of its position.
#[derive(Debug, Clone)]
pub(super) struct Side {
    table: ScopeTable,
    position: PositionColumns,
}

/// A join condition that limits the distance between two tables' positions.
#[derive(Debug, Clone)]
pub(super) struct Crossmatch {
    /// A table joined before.
    left: Side,
    /// The table this join brings in.
    right: Side,
    radius: Radius,
}

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
        if self.crossmatch_of(selection, &scope, &b).is_none() {
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

    /// Rewrites a join condition; returns the crossmatch it expresses, if any (the caller adds the
    /// cell join: it may change a relation joined before this one).
    pub(super) fn join(
        &mut self,
        join: &mut Join,
        scope: &Scope,
        right: Option<ScopeTable>,
    ) -> Result<Option<Crossmatch>, AdqlError> {
        let Some(condition) = on_condition(join) else {
            return Ok(None);
        };
        let crossmatch = right
            .as_ref()
            .and_then(|right| self.crossmatch_of(condition, scope, right));
        self.expr(condition, scope)?;
        Ok(crossmatch)
    }

    /// If `condition` (or one of its AND terms) limits the distance between the position of
    /// `right` and another table's in scope, that crossmatch.
    pub(super) fn crossmatch_of(
        &self,
        condition: &Expr,
        scope: &Scope,
        right: &ScopeTable,
    ) -> Option<Crossmatch> {
        match condition {
            Expr::Nested(inner) => self.crossmatch_of(inner, scope, right),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right: r,
            } => self
                .crossmatch_of(left, scope, right)
                .or_else(|| self.crossmatch_of(r, scope, right)),
            Expr::BinaryOp { left, op, right: r } => {
                // DISTANCE(...) < r, or r > DISTANCE(...).
                let (distance, radius) = match op {
                    BinaryOperator::Lt | BinaryOperator::LtEq => (left, r),
                    BinaryOperator::Gt | BinaryOperator::GtEq => (r, left),
                    BinaryOperator::Eq => return self.contains_crossmatch(left, r, scope, right),
                    _ => return None,
                };
                let Expr::Function(f) = distance.as_ref() else {
                    return None;
                };
                if function_name(f) != "DISTANCE" {
                    return None;
                }
                let points = self.distance_points(f)?;
                let (a, b) = self.pair_of_positions(&points, scope, right)?;
                Some(Crossmatch {
                    left: a,
                    right: b,
                    radius: radius_of(radius),
                })
            }
            _ => None,
        }
    }

    /// `1 = CONTAINS(POINT(a), CIRCLE(b, r))` (either side of `=`; INTERSECTS alike).
    fn contains_crossmatch(
        &self,
        left: &Expr,
        right_expr: &Expr,
        scope: &Scope,
        right: &ScopeTable,
    ) -> Option<Crossmatch> {
        let (call_side, one) = if constant(left) == Some(1.0) {
            (right_expr, left)
        } else {
            (left, right_expr)
        };
        if constant(one) != Some(1.0) {
            return None;
        }
        let Expr::Function(f) = call_side else {
            return None;
        };
        let name = function_name(f);
        if name != "CONTAINS" && name != "INTERSECTS" {
            return None;
        }
        let args = args_of(f);
        let (point, circle) = match (self.geo_shape(&args[0]), self.geo_shape(&args[1])) {
            (Geo::Point(x1, y1), Geo::Circle(x2, y2, r)) => ((x1, y1), (x2, y2, r)),
            (Geo::Circle(x2, y2, r), Geo::Point(x1, y1)) if name == "INTERSECTS" => {
                ((x1, y1), (x2, y2, r))
            }
            _ => return None,
        };
        let (x2, y2, r) = circle;
        let (a, b) = self.pair_of_positions(&[point, (x2, y2)], scope, right)?;
        Some(Crossmatch {
            left: a,
            right: b,
            radius: radius_of(&r),
        })
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

    /// If one of the two points is `right`'s position and the other another scope table's:
    /// (the other side, `right`'s side).
    fn pair_of_positions(
        &self,
        points: &[(Expr, Expr)],
        scope: &Scope,
        right: &ScopeTable,
    ) -> Option<(Side, Side)> {
        let sides: Vec<Option<Side>> = points
            .iter()
            .map(|(x, y)| {
                self.position_of(x, y, scope)
                    .map(|(table, position)| Side { table, position })
            })
            .collect();
        let (Some(a), Some(b)) = (&sides[0], &sides[1]) else {
            return None;
        };
        if b.table.qualifier == right.qualifier && a.table.qualifier != right.qualifier {
            Some((a.clone(), b.clone()))
        } else if a.table.qualifier == right.qualifier && b.table.qualifier != right.qualifier {
            Some((b.clone(), a.clone()))
        } else {
            None
        }
    }

    /// Adds the cell equi-join of the crossmatch of join `i` of `table`: one side's relation `t AS
    /// u` becomes `(SELECT *, unnest(adql_cone_cells(ra, dec, r, k)) AS __xm_cellN FROM t) AS u`,
    /// and `<the other side's cell> = u.__xm_cellN` (with the pruning ranges, for an upload against
    /// a catalogue) is ANDed to the join's condition. Does nothing where it cannot help or does not
    /// apply (a radius of 5° or more, a per-row radius of a catalogue, a derived table).
    pub(super) fn add_cell_join(
        &mut self,
        table: &mut TableWithJoins,
        i: usize,
        crossmatch: Crossmatch,
    ) -> Result<(), AdqlError> {
        let Crossmatch {
            left,
            right,
            radius,
        } = crossmatch;
        // The cone side: an upload when one side is (small, and known now), else the joined table
        // — but never the side an outer join preserves: its rows, expanded to one per cell, would
        // each come out unmatched.
        let preserves_left = matches!(
            table.joins[i].join_operator,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_)
        );
        let preserves_right = matches!(
            table.joins[i].join_operator,
            JoinOperator::Right(_) | JoinOperator::RightOuter(_)
        );
        let full = matches!(table.joins[i].join_operator, JoinOperator::FullOuter(_));
        let upload_left = left.table.in_memory && !right.table.in_memory;
        let (cone, key) = match (full, preserves_left, preserves_right, upload_left) {
            (true, ..) => return Ok(()),
            (_, false, _, true) => (left, right),
            (_, _, true, _) => (left, right),
            _ => (right, left),
        };
        let radii = match &radius {
            Radius::Constant(_) => None,
            Radius::PerRow(expr) => {
                if !cone.table.in_memory {
                    return Ok(());
                }
                match self.per_row_values(&cone.table, expr) {
                    Some(values) => Some(values),
                    None => return Ok(()),
                }
            }
        };
        let radius_max = match (&radius, &radii) {
            (Radius::Constant(r), _) => *r,
            (_, Some(values)) => values.iter().flatten().copied().fold(0.0, f64::max),
            _ => return Ok(()),
        };
        if !(radius_max > 0.0 && radius_max < 5.0) {
            return Ok(());
        }
        // Cells at least ~4 radii across keep each row's cell list short (1–4 cells).
        let order = ((58.6 / (4.0 * radius_max)).log2().floor()).clamp(0.0, 20.0) as u8;
        let radius_sql = match &radius {
            Radius::Constant(r) => number(*r),
            Radius::PerRow(expr) => unqualified(expr),
        };
        self.next_id += 1;
        let cell = format!("__xm_cell{}", self.next_id);
        let Some(relation) = relation_of(table, i, &cone.table.qualifier) else {
            return Ok(());
        };
        let TableFactor::Table { name, alias, .. } = &*relation else {
            return Ok(());
        };
        let inner_sql = format!(
            "SELECT *, unnest(adql_cone_cells({lon}, {lat}, {r}, {order})) AS {cell} FROM {name}",
            lon = quote(&cone.position.lon),
            lat = quote(&cone.position.lat),
            r = radius_sql,
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
            name: ident(&cone.table.qualifier),
            columns: vec![],
            at: None,
        });
        *relation = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            sample: None,
        };
        let indexed = key.table.position.as_ref() == Some(&key.position);
        let key_cell = if indexed {
            // The catalogue's own index, coarsened: no position computed per row.
            binary(
                qualified(&key.table.qualifier, HEALPIX_COLUMN),
                BinaryOperator::Divide,
                Expr::value(Value::Number(
                    (1i64 << (2 * u32::from(HEALPIX_ORDER - order))).to_string(),
                    false,
                )),
            )
        } else {
            call(
                "adql_healpix_index",
                vec![
                    number(f64::from(order)),
                    qualified(&key.table.qualifier, &key.position.lon),
                    qualified(&key.table.qualifier, &key.position.lat),
                ],
            )
        };
        let mut added = binary(
            key_cell,
            BinaryOperator::Eq,
            qualified(&cone.table.qualifier, &cell),
        );
        if indexed && cone.table.in_memory {
            let pruning = self
                .cone_cells_of(&cone, &radius, radii.as_deref(), order)
                .and_then(|cells| pruning_ranges(&cells, order))
                .map(|ranges| {
                    index_ranges_predicate(
                        &qualified(&key.table.qualifier, HEALPIX_COLUMN),
                        &ranges,
                    )
                });
            if let Some(pruning) = pruning {
                added = and(pruning, added);
            }
        }
        if let Some(condition) = on_condition(&mut table.joins[i]) {
            let original = std::mem::replace(condition, Expr::value(Value::Null));
            *condition = and(added, original);
        }
        Ok(())
    }

    /// The value of `expr` (columns of `table`, an in-memory table, and numbers) for every row.
    fn per_row_values(&self, table: &ScopeTable, expr: &Expr) -> Option<Vec<Option<f64>>> {
        let mut names = Vec::new();
        collect_columns(expr, &table.qualifier, &mut names)?;
        names.sort();
        names.dedup();
        let columns: Vec<(String, Vec<Option<f64>>)> = names
            .into_iter()
            .map(|n| {
                let values = self.tables.in_memory_column(&table.name, &n)?;
                Some((n, values))
            })
            .collect::<Option<_>>()?;
        let rows = columns.first().map_or(0, |(_, v)| v.len());
        Some(
            (0..rows)
                .map(|row| {
                    evaluate(expr, &|name| {
                        columns
                            .iter()
                            .find(|(n, _)| n == name)
                            .and_then(|(_, v)| v[row])
                    })
                })
                .collect(),
        )
    }

    /// The order-`order` cells the cones of an in-memory side cover (sorted, without duplicates).
    fn cone_cells_of(
        &self,
        side: &Side,
        radius: &Radius,
        radii: Option<&[Option<f64>]>,
        order: u8,
    ) -> Option<Vec<u64>> {
        let lon = self
            .tables
            .in_memory_column(&side.table.name, &side.position.lon)?;
        let lat = self
            .tables
            .in_memory_column(&side.table.name, &side.position.lat)?;
        let mut cells = Vec::new();
        for row in 0..lon.len() {
            let r = match (radius, radii) {
                (Radius::Constant(r), _) => Some(*r),
                (_, Some(values)) => values[row],
                _ => None,
            };
            let (Some(ra), Some(dec), Some(r)) = (lon[row], lat[row], r) else {
                continue;
            };
            if !(dec.abs() <= 90.0 && r >= 0.0 && ra.is_finite()) {
                continue;
            }
            let bmoc = cdshealpix::nested::cone_coverage_approx(
                order,
                ra.rem_euclid(360.0).to_radians(),
                dec.to_radians(),
                r.max(1e-12).to_radians(),
            );
            for c in bmoc.flat_iter_cell() {
                let shift = 2 * u32::from(order - c.depth);
                let first = c.hash << shift;
                cells.extend(first..first + (1u64 << shift));
            }
        }
        cells.sort_unstable();
        cells.dedup();
        Some(cells)
    }
}

/// The ON condition of a join, if it has one.
fn on_condition(join: &mut Join) -> Option<&mut Expr> {
    match &mut join.join_operator {
        JoinOperator::Join(JoinConstraint::On(c))
        | JoinOperator::Inner(JoinConstraint::On(c))
        | JoinOperator::Left(JoinConstraint::On(c))
        | JoinOperator::LeftOuter(JoinConstraint::On(c))
        | JoinOperator::Right(JoinConstraint::On(c))
        | JoinOperator::RightOuter(JoinConstraint::On(c))
        | JoinOperator::FullOuter(JoinConstraint::On(c)) => Some(c),
        _ => None,
    }
}

/// The relation of `table` (its first, or one of its joins up to `last`) named `qualifier`.
fn relation_of<'t>(
    table: &'t mut TableWithJoins,
    last: usize,
    qualifier: &str,
) -> Option<&'t mut TableFactor> {
    let named = |factor: &TableFactor| match factor {
        TableFactor::Table { name, alias, .. } => {
            let own = match name.0.last() {
                Some(datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i)) => {
                    Some(normalise(i))
                }
                _ => None,
            };
            alias
                .as_ref()
                .map(|a| normalise(&a.name))
                .or(own)
                .as_deref()
                == Some(qualifier)
        }
        _ => false,
    };
    if named(&table.relation) {
        return Some(&mut table.relation);
    }
    table
        .joins
        .iter_mut()
        .take(last + 1)
        .map(|j| &mut j.relation)
        .find(|r| named(r))
}

fn radius_of(expr: &Expr) -> Radius {
    match constant(expr) {
        Some(r) => Radius::Constant(r),
        None => Radius::PerRow(expr.clone()),
    }
}

/// The column names `expr` uses, all of them of the table `qualifier` (or unqualified); `None`
/// for anything but columns, numbers and arithmetic.
fn collect_columns(expr: &Expr, qualifier: &str, out: &mut Vec<String>) -> Option<()> {
    match expr {
        Expr::Identifier(i) => out.push(normalise(i)),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            if normalise(&parts[parts.len() - 2]) != qualifier {
                return None;
            }
            out.push(normalise(&parts[parts.len() - 1]));
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => {
            collect_columns(inner, qualifier, out)?
        }
        Expr::BinaryOp { left, op, right } => {
            if !matches!(
                op,
                BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
            ) {
                return None;
            }
            collect_columns(left, qualifier, out)?;
            collect_columns(right, qualifier, out)?;
        }
        other if constant(other).is_some() => {}
        _ => return None,
    }
    Some(())
}

/// `expr` with its column references unqualified (for the derived table of the same table).
fn unqualified(expr: &Expr) -> Expr {
    match expr {
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(column) => Expr::Identifier(column.clone()),
            None => expr.clone(),
        },
        Expr::Nested(inner) => Expr::Nested(Box::new(unqualified(inner))),
        Expr::UnaryOp { op, expr } => Expr::UnaryOp {
            op: *op,
            expr: Box::new(unqualified(expr)),
        },
        Expr::BinaryOp { left, op, right } => Expr::BinaryOp {
            left: Box::new(unqualified(left)),
            op: op.clone(),
            right: Box::new(unqualified(right)),
        },
        other => other.clone(),
    }
}

/// The `_healpix_29` ranges of sorted order-`order` cells, merged, at most
/// [`MAX_PRUNING_RANGES`]; `None` when they cover too much of the sky to prune.
fn pruning_ranges(cells: &[u64], order: u8) -> Option<Vec<Range<i64>>> {
    let shift = 2 * u32::from(HEALPIX_ORDER - order);
    let mut ranges: Vec<Range<i64>> = Vec::new();
    for &c in cells {
        let (start, end) = ((c << shift) as i64, ((c + 1) << shift) as i64);
        match ranges.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => ranges.push(start..end),
        }
    }
    if ranges.is_empty() {
        return None;
    }
    if ranges.len() > MAX_PRUNING_RANGES {
        // Close the smallest gaps, as many as there are ranges too many.
        let mut gaps: Vec<(i64, usize)> = (1..ranges.len())
            .map(|i| (ranges[i].start - ranges[i - 1].end, i))
            .collect();
        gaps.sort_unstable();
        let mut close = vec![false; ranges.len()];
        for &(_, i) in &gaps[..ranges.len() - MAX_PRUNING_RANGES] {
            close[i] = true;
        }
        let mut merged: Vec<Range<i64>> = Vec::with_capacity(MAX_PRUNING_RANGES);
        for (range, close) in ranges.into_iter().zip(close) {
            match merged.last_mut() {
                Some(last) if close => last.end = range.end,
                _ => merged.push(range),
            }
        }
        ranges = merged;
    }
    let covered: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    let sky = 12i64 << (2 * u32::from(HEALPIX_ORDER));
    (covered as f64 <= MAX_PRUNED_SKY_FRACTION * sky as f64).then_some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_ranges_merge_and_give_up_on_most_of_the_sky() {
        let ranges = pruning_ranges(&[5, 6, 9], 10).expect("a few cells");
        let cell = 1i64 << 38;
        assert_eq!(ranges, vec![5 * cell..7 * cell, 9 * cell..10 * cell]);
        let many: Vec<u64> = (0..1000).map(|c| c * 100).collect();
        let merged = pruning_ranges(&many, 10).expect("merged");
        assert_eq!(merged.len(), MAX_PRUNING_RANGES);
        assert_eq!(merged[0].start, 0);
        assert_eq!(merged.last().map(|r| r.end), Some((99_900 + 1) * cell));
        let all: Vec<u64> = (0..12 * 4u64.pow(3)).collect();
        assert!(
            pruning_ranges(&all, 3).is_none(),
            "the whole sky prunes nothing"
        );
    }
}
