//! HEALPix partitions picked before any byte is read: a [`TableProvider`] over a table's
//! `Norder=<k>/Npix=<n>.parquet` files that reads only the files a query's `_healpix_29` ranges can
//! touch.
//!
//! Why: DataFusion prunes a Parquet file by the min/max statistics in its footer — which it must
//! first fetch. For a table on an object store that is one or two requests per partition for every
//! query that has not seen them yet. A partition's file name already says which cells it holds
//! (cell `n` of order `k` holds the order-29 indices `n·4^(29-k) .. (n+1)·4^(29-k)`), and the ADQL
//! rewrite puts the cells of every cone, box, polygon and crossmatch into the query as
//! `_healpix_29 BETWEEN a AND b OR ...` filters, so the files to read are known at planning time.
//! The scan is then DataFusion's own listing scan over those files (row groups and pages pruned by
//! their statistics and page indexes as usual); a query without such a filter scans every file.
//!
//! Files whose names are not partition names (`Npix=unpositioned.parquet`: rows without a position,
//! whose index is NULL and so never in a range) are read only when nothing constrains the index.
//!
//! The index ranges only ever narrow what the query's exact conditions (a distance, a crossmatch's
//! join) then decide, so they are used for pruning alone: picking files here, and row groups and
//! pages by their statistics in the scan — not evaluated row by row, which for a crossmatch's
//! hundreds of ranges cost more than the scan (100 uploaded positions against Tycho-2: 84 ms of
//! row filtering in a 100 ms query). They are declared `Exact` to DataFusion, so no filter is
//! planned above the scan — and DataFusion 55 hands a Parquet scan its predicate only through
//! such a filter — and are set here as the scan's predicate with row filtering off. Filters the
//! query adds (a cone's distance) reach the scan through DataFusion's filter pushdown as usual and
//! turn row filtering back on for the whole predicate, which for a few cone ranges is cheap.
//! Users cannot write `_healpix_29` in ADQL: every such filter is the rewrite's.

use std::ops::Range;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::catalog::HEALPIX_COLUMN;
use colo_astro::sky::HEALPIX_ORDER;

/// One partition file and the order-29 indices it can hold (`None`: not a partition file).
#[derive(Debug, Clone)]
struct PartitionFile {
    url: ListingTableUrl,
    cells: Option<Range<i64>>,
}

/// A HEALPix-partitioned table: the listing table over all its files, and the files by cell.
#[derive(Debug)]
pub struct PartitionedTable {
    all: Arc<ListingTable>,
    files: Vec<PartitionFile>,
    options: ListingOptions,
    schema: SchemaRef,
}

impl PartitionedTable {
    /// The table over `all` whose files (full URLs, as listed) are `files`.
    pub fn new(
        all: Arc<ListingTable>,
        options: ListingOptions,
        files: Vec<ListingTableUrl>,
    ) -> PartitionedTable {
        let files = files
            .into_iter()
            .map(|url| PartitionFile {
                cells: partition_cells(url.as_str()),
                url,
            })
            .collect();
        PartitionedTable {
            schema: all.schema(),
            all,
            files,
            options,
        }
    }

    /// How many files a scan with `filters` reads (for tests and diagnosis).
    pub fn files_for(&self, filters: &[Expr]) -> usize {
        match index_ranges(filters) {
            None => self.files.len(),
            Some(ranges) => self.pick(&ranges).len(),
        }
    }

    /// The files that can hold an index in `ranges`.
    fn pick(&self, ranges: &[Range<i64>]) -> Vec<ListingTableUrl> {
        self.files
            .iter()
            .filter(|f| {
                f.cells.as_ref().is_some_and(|cells| {
                    ranges
                        .iter()
                        .any(|r| r.start < cells.end && cells.start < r.end)
                })
            })
            .map(|f| f.url.clone())
            .collect()
    }

    /// The listing table to scan for `filters`: all files, or a table over the picked ones
    /// (`None` when no file can match).
    fn table_for(&self, filters: &[Expr]) -> DfResult<Option<Arc<ListingTable>>> {
        let Some(ranges) = index_ranges(filters) else {
            return Ok(Some(self.all.clone()));
        };
        let picked = self.pick(&ranges);
        if picked.is_empty() {
            return Ok(None);
        }
        if picked.len() == self.files.len() {
            return Ok(Some(self.all.clone()));
        }
        let config = ListingTableConfig::new_with_multi_paths(picked)
            .with_listing_options(self.options.clone())
            .with_schema(self.schema.clone());
        Ok(Some(Arc::new(ListingTable::try_new(config)?)))
    }
}

#[async_trait]
impl TableProvider for PartitionedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        filters
            .iter()
            .map(|filter| {
                if is_index_filter(filter) {
                    Ok(TableProviderFilterPushDown::Exact)
                } else {
                    Ok(self.all.supports_filters_pushdown(&[filter])?[0].clone())
                }
            })
            .collect()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.table_for(filters)? {
            Some(table) => {
                let plan = table.scan(state, projection, filters, limit).await?;
                self.prune_by_index(state, plan, filters)
            }
            None => Ok(Arc::new(EmptyExec::new(project(&self.schema, projection)?))),
        }
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> DfResult<ScanResult> {
        let filters = args.filters().unwrap_or(&[]);
        match self.table_for(filters)? {
            Some(table) => {
                let plan = table.scan_with_args(state, args).await?.into_inner();
                Ok(ScanResult::new(self.prune_by_index(state, plan, filters)?))
            }
            None => {
                let projection = args.projection().map(<[usize]>::to_vec);
                let schema = project(&self.schema, projection.as_ref())?;
                Ok(ScanResult::new(Arc::new(EmptyExec::new(schema))))
            }
        }
    }
}

impl PartitionedTable {
    /// `plan` (a listing scan) with the index filters among `filters` as its Parquet predicate,
    /// rows not filtered by them (see the module's notes); other plans are returned as they are.
    fn prune_by_index(
        &self,
        state: &dyn Session,
        plan: Arc<dyn ExecutionPlan>,
        filters: &[Expr],
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let index_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| is_index_filter(f))
            .cloned()
            .collect();
        let Some(predicate) = conjunction(index_filters) else {
            return Ok(plan);
        };
        let Some(scan) = plan.downcast_ref::<DataSourceExec>() else {
            return Ok(plan);
        };
        let Some((config, parquet)) = scan.downcast_to_file_source::<ParquetSource>() else {
            return Ok(plan);
        };
        let schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        let predicate = state.create_physical_expr(predicate, &schema)?;
        let source = parquet
            .with_predicate(predicate)
            .with_pushdown_filters(false);
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

fn project(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> DfResult<SchemaRef> {
    Ok(match projection {
        Some(columns) => Arc::new(schema.project(columns)?),
        None => schema.clone(),
    })
}

/// The order-29 indices a partition file holds, from its path's `Norder=<k>/Npix=<n>.parquet`.
fn partition_cells(path: &str) -> Option<Range<i64>> {
    let mut parts = path.rsplit('/');
    let file = parts.next()?;
    let folder = parts.next()?;
    let order: u32 = folder.strip_prefix("Norder=")?.parse().ok()?;
    let pixel: i64 = file
        .strip_prefix("Npix=")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()?;
    let order29 = u32::from(HEALPIX_ORDER);
    if order > order29 || pixel < 0 || pixel >= 12i64 << (2 * order) {
        return None;
    }
    let shift = 2 * (order29 - order);
    Some(pixel << shift..(pixel + 1) << shift)
}

/// The `_healpix_29` values the conjunction `filters` allows, as sorted disjoint half-open ranges;
/// `None` when they do not constrain the index.
pub fn index_ranges(filters: &[Expr]) -> Option<Vec<Range<i64>>> {
    filters
        .iter()
        .filter_map(ranges_of)
        .reduce(|a, b| intersect(&a, &b))
}

/// Whether `expr` is a condition on the index alone (the rewrite's ranges), which the scan's
/// pruning answers.
fn is_index_filter(expr: &Expr) -> bool {
    ranges_of(expr).is_some() && expr.column_refs().iter().all(|c| c.name == HEALPIX_COLUMN)
}

/// The values `expr` (true) allows, or `None` when it does not constrain the index.
fn ranges_of(expr: &Expr) -> Option<Vec<Range<i64>>> {
    match expr {
        Expr::Between(between) if !between.negated && is_index(&between.expr) => {
            let low = integer(&between.low)?;
            let high = integer(&between.high)?;
            Some(normalise(
                std::iter::once(low..high.saturating_add(1)).collect(),
            ))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (ranges_of(left), ranges_of(right)) {
                (Some(a), Some(b)) => Some(intersect(&a, &b)),
                (one, None) | (None, one) => one,
            },
            Operator::Or => {
                let mut both = ranges_of(left)?;
                both.extend(ranges_of(right)?);
                Some(normalise(both))
            }
            _ => comparison(left, *op, right),
        },
        Expr::InList(list) if !list.negated && is_index(&list.expr) => {
            let values: Option<Vec<Range<i64>>> = list
                .list
                .iter()
                .map(|e| integer(e).map(|v| v..v.saturating_add(1)))
                .collect();
            Some(normalise(values?))
        }
        _ => None,
    }
}

/// `index op value` or `value op index`.
fn comparison(left: &Expr, op: Operator, right: &Expr) -> Option<Vec<Range<i64>>> {
    let (op, value) = if is_index(left) {
        (op, integer(right)?)
    } else if is_index(right) {
        (op.swap()?, integer(left)?)
    } else {
        return None;
    };
    let range = match op {
        Operator::Eq => value..value.saturating_add(1),
        Operator::Lt => i64::MIN..value,
        Operator::LtEq => i64::MIN..value.saturating_add(1),
        Operator::Gt => value.saturating_add(1)..i64::MAX,
        Operator::GtEq => value..i64::MAX,
        _ => return None,
    };
    Some(normalise(std::iter::once(range).collect()))
}

fn is_index(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == HEALPIX_COLUMN,
        Expr::Cast(c) => is_index(&c.expr),
        Expr::TryCast(c) => is_index(&c.expr),
        _ => false,
    }
}

fn integer(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value.cast_to(&arrow_schema::DataType::Int64).ok()? {
            ScalarValue::Int64(Some(v)) => Some(v),
            _ => None,
        },
        Expr::Cast(c) => integer(&c.expr),
        Expr::TryCast(c) => integer(&c.expr),
        _ => None,
    }
}

/// Sorted, merged, without empty ranges.
fn normalise(mut ranges: Vec<Range<i64>>) -> Vec<Range<i64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<i64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn intersect(a: &[Range<i64>], b: &[Range<i64>]) -> Vec<Range<i64>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn index() -> Expr {
        col(HEALPIX_COLUMN)
    }

    #[test]
    fn file_names_give_their_cells() {
        let shift = 2 * (29 - 3);
        assert_eq!(
            partition_cells("colo://v/t/data-1/Norder=3/Npix=17.parquet"),
            Some(17i64 << shift..18i64 << shift)
        );
        assert_eq!(
            partition_cells("file:///x/data/Norder=0/Npix=11.parquet"),
            Some(11i64 << 58..12i64 << 58)
        );
        assert_eq!(
            partition_cells("file:///x/data/Norder=0/Npix=unpositioned.parquet"),
            None
        );
        assert_eq!(
            partition_cells("file:///x/data/Norder=0/Npix=12.parquet"),
            None
        );
        assert_eq!(partition_cells("file:///x/data/part-0.parquet"), None);
    }

    #[test]
    fn filters_become_index_ranges() {
        let cone = index()
            .between(lit(10i64), lit(19i64))
            .or(index().between(lit(40i64), lit(49i64)));
        assert_eq!(
            index_ranges(std::slice::from_ref(&cone)),
            Some(vec![10..20, 40..50])
        );
        // A conjunction with another constraint on the index narrows it; others are ignored.
        let narrower = index().gt_eq(lit(15i64)).and(col("mag").lt(lit(9.0)));
        assert_eq!(
            index_ranges(&[cone.clone(), narrower]),
            Some(vec![15..20, 40..50])
        );
        // Literal first, IN lists, overlapping ranges merged.
        assert_eq!(
            index_ranges(&[lit(30i64).gt(index())]),
            Some(std::iter::once(i64::MIN..30).collect())
        );
        assert_eq!(
            index_ranges(&[index().in_list(vec![lit(5i64), lit(6i64)], false)]),
            Some(std::iter::once(5..7).collect())
        );
        // What cannot be read as a constraint constrains nothing: all files are read.
        assert_eq!(index_ranges(&[col("mag").lt(lit(9.0))]), None);
        assert_eq!(
            index_ranges(&[index()
                .between(lit(1i64), lit(2i64))
                .or(col("mag").lt(lit(9.0)))]),
            None
        );
        assert_eq!(
            index_ranges(&[index().not_between(lit(1i64), lit(2i64))]),
            None
        );
        // Contradictions allow nothing.
        assert_eq!(
            index_ranges(&[index().lt(lit(5i64)), index().gt(lit(10i64))]),
            Some(vec![])
        );
    }
}
