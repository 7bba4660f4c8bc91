//! Runs ADQL on DataFusion: one shared catalogue of published tables (Parquet listing tables with
//! their statistics) plus TAP_SCHEMA, and a per-query session that adds the query's uploads as
//! `TAP_UPLOAD` (never visible to other queries or in TAP_SCHEMA, TAP 1.1 §4).
//!
//! Every session shares one runtime: the object stores tables live on (local files, and the stores
//! the caller registers, such as colo's volumes) and DataFusion's caches of listings, file
//! statistics and Parquet footers, so a table's footers are read once per service, not per query.
//! A table's partition files are picked by the query's HEALPix ranges ([`crate::partitions`]).
//!
//! A query is translated ([`crate::adql::translate`]), planned from the sqlparser AST, limited to
//! MAXREC+1 rows (so overflow can be told from an exact fit), and executed as a stream of record
//! batches: results are never collected whole. Result columns carry the metadata of the table
//! columns they come from (unit, UCD, description) and DALI xtypes for geometry.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{Expr as LogicalExpr, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{ObjectNamePart, SetExpr, Statement, TableFactor};

use crate::adql::udf::geometry_udfs;
use crate::adql::{FunctionCatalog, PositionColumns, TableResolver, translate};
use crate::catalog::{ColumnMeta, HEALPIX_COLUMN, PublishedTable, TableMeta};
use crate::error::TapError;
use crate::names::nearest_name;
use crate::types::implied_xtype;
use crate::upload::UploadedTable;

use crate::tap_schema;

mod executor;
mod failures;
mod tables;
mod yielding;

pub use failures::{find_store_error, running_error};
use failures::{first_batch_checked, storage_error};
use tables::partitioned_table;

/// The schema name ADQL uses for uploaded tables.
pub const UPLOAD_SCHEMA: &str = "tap_upload";
const CATALOG_NAME: &str = "datafusion";
const DEFAULT_SCHEMA: &str = "public";

/// A running query: result metadata and a stream of batches (at most `limit + 1` rows).
pub struct QueryResult {
    /// Result columns users see, with metadata.
    pub columns: Vec<ColumnMeta>,
    /// Indices of those columns in the stream's batches.
    pub keep: Vec<usize>,
    /// The batches.
    pub stream: SendableRecordBatchStream,
    /// MAXREC: rows beyond it mean overflow.
    pub limit: Option<u64>,
}

impl QueryResult {
    /// This result with its rows ending in an error saying `message` at `deadline` (the answer
    /// then closes with `QUERY_STATUS=ERROR`); the query's work stops with its dropped stream.
    pub fn until(mut self, deadline: tokio::time::Instant, message: String) -> QueryResult {
        use futures::StreamExt;
        let schema = self.stream.schema();
        let rows = futures::stream::unfold(Some(self.stream), move |inner| {
            let message = message.clone();
            async move {
                let mut inner = inner?;
                match tokio::time::timeout_at(deadline, inner.next()).await {
                    Ok(Some(item)) => Some((item, Some(inner))),
                    Ok(None) => None,
                    Err(_) => Some((Err(DataFusionError::Execution(message)), None)),
                }
            }
        });
        self.stream = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows),
        );
        self
    }
}

/// An object store tables may live on, and the URL (`scheme://name`) that reaches it.
pub type StoreRegistration = (url::Url, Arc<dyn ObjectStore>);

/// The query engine shared by all requests.
pub struct Engine {
    catalog: Arc<MemoryCatalogProvider>,
    tables: Vec<TableMeta>,
    functions: FunctionCatalog,
    runtime: Arc<RuntimeEnv>,
    query_memory_bytes: usize,
}

/// The memory one query may hold in what buffers rows (sorts, aggregations, the build side of
/// joins), unless the operator says otherwise ([`Engine::with_query_memory_limit`]). Scans and
/// results stream and are not counted.
pub const DEFAULT_QUERY_MEMORY_BYTES: usize = 1 << 30;

impl Engine {
    /// Registers the published tables and builds TAP_SCHEMA. Tables whose folders are not local
    /// (`file://`) live on one of `stores`.
    pub async fn new(
        published: &[PublishedTable],
        stores: &[StoreRegistration],
    ) -> Result<Engine, TapError> {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(DEFAULT_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        for (url, store) in stores {
            runtime.register_object_store(url, store.clone());
        }
        let ctx = SessionContext::new_with_config_rt(session_config(), runtime.clone());
        let mut tables = Vec::new();
        for table in published {
            let (provider, meta) = partitioned_table(&ctx, table).await?;
            let schema = schema_provider(&catalog, &meta.schema)?;
            schema.register_table(meta.name.clone(), provider)?;
            tables.push(meta);
        }
        let mut all = tap_schema::table_metas();
        all.extend(tables);
        let tap = schema_provider(&catalog, tap_schema::SCHEMA)?;
        for (name, batch) in tap_schema::batches(&all)? {
            let provider = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
            tap.register_table(name.to_string(), Arc::new(provider))?;
        }
        Ok(Engine {
            catalog,
            tables: all,
            functions: FunctionCatalog::default(),
            runtime,
            query_memory_bytes: DEFAULT_QUERY_MEMORY_BYTES,
        })
    }

    /// Each query may hold at most `bytes` in sorts, aggregations and joins: sorts and
    /// aggregations spill to disk beyond it, and what cannot spill fails with
    /// [`TapError::OverLimit`] — never the whole process out of memory.
    pub fn with_query_memory_limit(mut self, bytes: usize) -> Self {
        self.query_memory_bytes = bytes;
        self
    }

    /// A session for one query: the shared stores, caches and spill folder, and a memory pool of
    /// its own (so that one query over its limit fails alone).
    fn session(&self) -> SessionContext {
        let shared = &self.runtime;
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(self.query_memory_bytes),
            NonZeroUsize::new(3).expect("3 is not zero"),
        );
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(pool),
            disk_manager: shared.disk_manager.clone(),
            cache_manager: shared.cache_manager.clone(),
            object_store_registry: shared.object_store_registry.clone(),
        });
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(session_config())
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(yielding::YieldEverywhere))
            .build();
        SessionContext::new_with_state(state)
    }

    /// Every queryable table (TAP_SCHEMA first), for `/tables`.
    pub fn tables(&self) -> &[TableMeta] {
        &self.tables
    }

    /// The functions ADQL queries may use.
    pub fn functions(&self) -> &FunctionCatalog {
        &self.functions
    }

    /// Translates and plans a query; fails fast on bad ADQL, unknown tables or columns.
    pub async fn execute(
        &self,
        adql: &str,
        limit: Option<u64>,
        uploads: &[UploadedTable],
    ) -> Result<QueryResult, TapError> {
        let (ctx, plan, aliases) = self.plan(adql, uploads).await?;
        let (columns, keep) = self.result_columns(&plan, &aliases, uploads);
        let mut frame = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.plan_error(e, uploads))?;
        if let Some(limit) = limit {
            frame = frame.limit(
                0,
                Some(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX)),
            )?;
        }
        // On the query runtime, not the caller's ([`executor`]).
        let stream = match executor::start(frame).await {
            Ok(stream) => stream,
            Err(executor::StartError::Plan(e)) => return Err(self.plan_error(e, uploads)),
            Err(executor::StartError::Running(e)) => return Err(e),
        };
        let (columns, stream) = regions_as_text(columns, &keep, stream);
        Ok(QueryResult {
            columns,
            keep,
            stream,
            limit,
        })
    }

    /// The physical plan of a query (for tests and diagnosis).
    pub async fn explain(&self, adql: &str, uploads: &[UploadedTable]) -> Result<String, TapError> {
        let (ctx, plan, _) = self.plan(adql, uploads).await?;
        let physical = ctx.state().create_physical_plan(&plan).await?;
        Ok(datafusion::physical_plan::displayable(physical.as_ref())
            .indent(true)
            .to_string())
    }

    /// Runs a query and returns its physical plan with execution metrics (pruning counts).
    pub async fn explain_analyze(
        &self,
        adql: &str,
        uploads: &[UploadedTable],
    ) -> Result<String, TapError> {
        let (ctx, plan, _) = self.plan(adql, uploads).await?;
        let physical = ctx.state().create_physical_plan(&plan).await?;
        datafusion::physical_plan::collect(physical.clone(), ctx.task_ctx()).await?;
        Ok(
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                physical.as_ref(),
            )
            .indent(true)
            .to_string(),
        )
    }

    /// Translates and plans a query in a fresh session; also returns the top-level table aliases.
    async fn plan(
        &self,
        adql: &str,
        uploads: &[UploadedTable],
    ) -> Result<(SessionContext, LogicalPlan, HashMap<String, String>), TapError> {
        let resolver = Resolver {
            tables: &self.tables,
            uploads,
        };
        let statement = translate(adql, &self.functions, &resolver)?;
        let aliases = top_level_aliases(&statement);
        let ctx = self.session();
        ctx.register_catalog(CATALOG_NAME, self.session_catalog(uploads)?);
        for udf in geometry_udfs() {
            ctx.register_udf(udf);
        }
        let plan = ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
            .map_err(|e| self.plan_error(e, uploads))?;
        Ok((ctx, plan, aliases))
    }

    fn session_catalog(
        &self,
        uploads: &[UploadedTable],
    ) -> Result<Arc<dyn CatalogProvider>, TapError> {
        if uploads.is_empty() {
            return Ok(self.catalog.clone());
        }
        let upload_schema = Arc::new(MemorySchemaProvider::new());
        for upload in uploads {
            let table = MemTable::try_new(upload.batch.schema(), vec![vec![upload.batch.clone()]])?;
            upload_schema.register_table(upload.name.to_ascii_lowercase(), Arc::new(table))?;
        }
        Ok(Arc::new(QueryCatalog {
            base: self.catalog.clone(),
            uploads: upload_schema,
        }))
    }

    /// Turns planning errors into messages that name the unknown table or column and suggest one.
    fn plan_error(&self, error: DataFusionError, uploads: &[UploadedTable]) -> TapError {
        if let Some(over) = failures::over_memory(&error) {
            return over;
        }
        if let Some(message) = find_store_error(&error) {
            return storage_error(message);
        }
        let root = error.find_root();
        if let DataFusionError::SchemaError(schema_error, _) = root
            && let datafusion::common::SchemaError::FieldNotFound {
                field,
                valid_fields,
            } = schema_error.as_ref()
        {
            let names: Vec<&str> = valid_fields
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !is_internal(n))
                .collect();
            return TapError::UnknownColumn {
                name: field.name.clone(),
                suggestion: nearest_name(&field.name, names),
            };
        }
        let text = root.to_string();
        if let Some(rest) = text.split("table '").nth(1)
            && text.contains("not found")
        {
            let name = rest.split('\'').next().unwrap_or_default();
            let name = name.strip_prefix("datafusion.").unwrap_or(name);
            let name = name.strip_prefix("public.").unwrap_or(name);
            let mut known: Vec<String> =
                self.tables.iter().map(TableMeta::qualified_name).collect();
            known.extend(uploads.iter().map(|u| format!("TAP_UPLOAD.{}", u.name)));
            let suggestion = nearest_name(name, known.iter().map(String::as_str)).or_else(|| {
                let bare = name.rsplit('.').next().unwrap_or(name);
                self.tables
                    .iter()
                    .find(|t| t.name == bare)
                    .map(TableMeta::qualified_name)
            });
            return TapError::UnknownTable {
                name: name.to_string(),
                suggestion,
            };
        }
        match root {
            DataFusionError::Plan(message) | DataFusionError::NotImplemented(message) => {
                TapError::Query {
                    message: message.clone(),
                }
            }
            DataFusionError::SchemaError(..) | DataFusionError::SQL(..) => {
                TapError::Query { message: text }
            }
            DataFusionError::Execution(message) => TapError::Query {
                message: message.clone(),
            },
            _ => TapError::Query { message: text },
        }
    }

    /// Result column metadata: names made unique, table metadata for plain columns, xtypes for
    /// geometry; internal columns left out.
    fn result_columns(
        &self,
        plan: &LogicalPlan,
        aliases: &HashMap<String, String>,
        uploads: &[UploadedTable],
    ) -> (Vec<ColumnMeta>, Vec<usize>) {
        let projection = top_projection(plan);
        let mut columns = Vec::new();
        let mut keep = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, (qualifier, field)) in plan.schema().iter().enumerate() {
            if is_internal(field.name()) {
                continue;
            }
            let expr = projection.and_then(|exprs| exprs.get(index));
            // A column renamed (`access_url AS url`) keeps the metadata of the column it is.
            let source = match expr {
                Some(LogicalExpr::Alias(alias)) => match alias.expr.as_ref() {
                    LogicalExpr::Column(c) => self.source_column(
                        c.relation.as_ref().map(|r| r.table()),
                        &c.name,
                        aliases,
                        uploads,
                    ),
                    _ => None,
                },
                _ => {
                    self.source_column(qualifier.map(|q| q.table()), field.name(), aliases, uploads)
                }
            };
            let mut meta = source.unwrap_or_default();
            meta.name = match expr {
                Some(LogicalExpr::Column(_)) | Some(LogicalExpr::Alias(_)) | None => {
                    field.name().clone()
                }
                Some(other) => generated_name(other),
            };
            let count = seen.entry(meta.name.to_ascii_lowercase()).or_default();
            *count += 1;
            if *count > 1 {
                meta.name = format!("{}_{}", meta.name, count);
            }
            meta.arrow_type = Some(field.data_type().clone());
            if meta.xtype.is_none() {
                meta.xtype = expr
                    .and_then(geometry_xtype)
                    .or_else(|| implied_xtype(field.data_type()).map(String::from));
            }
            columns.push(meta);
            keep.push(index);
        }
        (columns, keep)
    }

    fn source_column(
        &self,
        qualifier: Option<&str>,
        name: &str,
        aliases: &HashMap<String, String>,
        uploads: &[UploadedTable],
    ) -> Option<ColumnMeta> {
        let find_in = |table: &str| -> Option<ColumnMeta> {
            let table = aliases.get(table).map(String::as_str).unwrap_or(table);
            let bare = table.rsplit('.').next().unwrap_or(table);
            self.tables
                .iter()
                .filter(|t| t.qualified_name() == table || t.name == bare)
                .flat_map(|t| t.columns.iter())
                .chain(
                    uploads
                        .iter()
                        .filter(|u| u.name.eq_ignore_ascii_case(bare))
                        .flat_map(|u| u.columns.iter()),
                )
                .find(|c| unquote(&c.name) == name)
                .cloned()
        };
        match qualifier {
            Some(q) => find_in(q),
            None => {
                let found: Vec<ColumnMeta> = aliases.values().filter_map(|t| find_in(t)).collect();
                (found.len() == 1).then(|| found[0].clone())
            }
        }
    }
}

/// `"size"` in TAP_SCHEMA is stored quoted; columns themselves are named without quotes.
fn unquote(name: &str) -> &str {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name)
}

/// Columns the rewriter or ingest adds that users never see.
/// Columns a table declares as `adql:REGION` (ObsCore's `s_region`) are stored as DALI polygons
/// (so geometry functions work on them) but returned as STC-S text (`POLYGON ICRS ra dec ...`),
/// the type their metadata declares.
fn regions_as_text(
    mut columns: Vec<ColumnMeta>,
    keep: &[usize],
    stream: SendableRecordBatchStream,
) -> (Vec<ColumnMeta>, SendableRecordBatchStream) {
    let mut indices = Vec::new();
    for (column, &index) in columns.iter_mut().zip(keep) {
        let is_list = matches!(column.arrow_type, Some(DataType::List(_)));
        if column.descriptor.xtype == crate::catalog::REGION_XTYPE && is_list {
            column.arrow_type = Some(DataType::Utf8);
            column.xtype = Some(crate::catalog::REGION_XTYPE.to_string());
            indices.push(index);
        }
    }
    if indices.is_empty() {
        return (columns, stream);
    }
    let old = stream.schema();
    let fields: Vec<arrow_schema::Field> = old
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if indices.contains(&i) {
                arrow_schema::Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema: SchemaRef = Arc::new(arrow_schema::Schema::new(fields));
    let out_schema = schema.clone();
    let mapped = futures::StreamExt::map(stream, move |batch| {
        let batch = batch?;
        let mut arrays = batch.columns().to_vec();
        for &i in &indices {
            arrays[i] = stcs_polygons(&arrays[i]);
        }
        Ok(RecordBatch::try_new(out_schema.clone(), arrays)?)
    });
    let adapter = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, mapped);
    (columns, Box::pin(adapter))
}

/// `POLYGON ICRS ra1 dec1 ...` for each list of coordinates (NULL stays NULL).
fn stcs_polygons(array: &arrow_array::ArrayRef) -> arrow_array::ArrayRef {
    use arrow_array::Array;
    let mut out = arrow_array::builder::StringBuilder::new();
    let Some(lists) = array.as_any().downcast_ref::<arrow_array::ListArray>() else {
        return array.clone();
    };
    for row in 0..lists.len() {
        if lists.is_null(row) {
            out.append_null();
            continue;
        }
        let values = lists.value(row);
        let Some(values) = values.as_any().downcast_ref::<arrow_array::Float64Array>() else {
            out.append_null();
            continue;
        };
        let mut text = String::from("POLYGON ICRS");
        for v in values.iter().flatten() {
            text.push(' ');
            text.push_str(&crate::types::format_float(v, false));
        }
        out.append_value(text);
    }
    Arc::new(out.finish())
}

pub fn is_internal(name: &str) -> bool {
    name == HEALPIX_COLUMN || name.starts_with("__xm_cell")
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false)
        .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_SCHEMA);
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = true;
    // A partition's footer (schema, row-group statistics) is a few KiB: ask for 64 KiB of the
    // file's end, not DataFusion's 512 KiB, which on a store would fetch most of a small file.
    options.execution.parquet.metadata_size_hint = Some(64 * 1024);
    options.execution.parquet.reorder_filters = true;
    options.execution.collect_statistics = true;
    // A hash join's dynamic filter (its build side's keys, pushed into the probe side's scan)
    // would be evaluated on every catalogue row a crossmatch reads: against Tycho-2 with 1,000
    // uploaded positions, 90 ms of a 100 ms query, pruning nothing the HEALPix ranges had not.
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    // Partitions are written without Bloom filters (`crate::ingest`); checking for them cost
    // 6 ms per row group for a crossmatch's ranges.
    options.execution.parquet.bloom_filter_on_read = false;
    // Hash joins build their (first, usually smaller: an upload) side once and stream the other
    // through it, instead of hash-repartitioning both: a crossmatch of 1,000 uploaded positions
    // otherwise repartitioned all 1.87 M rows of Tycho-2 it read (117 ms against 95).
    options.optimizer.repartition_joins = false;
    config
}

fn schema_provider(
    catalog: &MemoryCatalogProvider,
    name: &str,
) -> Result<Arc<dyn SchemaProvider>, TapError> {
    if let Some(schema) = catalog.schema(name) {
        return Ok(schema);
    }
    let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema(name, schema.clone())?;
    Ok(schema)
}

/// Published tables under `tables_root`, registered.
pub async fn open(tables_root: &Path) -> Result<Engine, TapError> {
    let published = crate::catalog::discover_tables(tables_root)?;
    Engine::new(&published, &[]).await
}

struct Resolver<'a> {
    tables: &'a [TableMeta],
    uploads: &'a [UploadedTable],
}

impl Resolver<'_> {
    /// The upload a name as written refers to (`TAP_UPLOAD.name`).
    /// The one published table `table` (`[schema, name]` or an unambiguous `[name]`) names.
    fn published(&self, table: &[String]) -> Option<&TableMeta> {
        let mut found = self.tables.iter().filter(|t| match table {
            [schema, name] => &t.schema == schema && &t.name == name,
            [name] => &t.name == name,
            _ => false,
        });
        let one = found.next()?;
        found.next().is_none().then_some(one)
    }

    fn upload(&self, table: &[String]) -> Option<&UploadedTable> {
        match table {
            [schema, name] if schema.eq_ignore_ascii_case(UPLOAD_SCHEMA) => self
                .uploads
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(name)),
            _ => None,
        }
    }
}

impl TableResolver for Resolver<'_> {
    fn position_columns(&self, table: &[String]) -> Option<PositionColumns> {
        self.published(table)?.position.clone()
    }

    fn column_unit(&self, table: &[String], column: &str) -> Option<String> {
        let unquoted = |name: &str| name.trim_matches('"').to_string();
        if let Some(upload) = self.upload(table) {
            return upload
                .columns
                .iter()
                .find(|c| unquoted(&c.name) == column)
                .map(|c| c.descriptor.unit.clone());
        }
        self.published(table)?
            .columns
            .iter()
            .find(|c| unquoted(&c.name) == column)
            .map(|c| c.descriptor.unit.clone())
    }

    fn is_in_memory(&self, table: &[String]) -> bool {
        self.upload(table).is_some()
    }

    fn in_memory_column(&self, table: &[String], column: &str) -> Option<Vec<Option<f64>>> {
        let batch = &self.upload(table)?.batch;
        let array = batch.column_by_name(column)?;
        if !array.data_type().is_numeric() {
            return None;
        }
        let values = datafusion::arrow::compute::cast(array, &DataType::Float64).ok()?;
        let values = values
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()?;
        Some(values.iter().collect())
    }
}

/// Table aliases of the top-level SELECT: alias (or bare table name) → `schema.table` as written.
fn top_level_aliases(statement: &Statement) -> HashMap<String, String> {
    let mut aliases = HashMap::new();
    let Statement::Query(query) = statement else {
        return aliases;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return aliases;
    };
    let mut add = |factor: &TableFactor| {
        if let TableFactor::Table { name, alias, .. } = factor {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_ascii_lowercase()
                    }),
                    _ => None,
                })
                .collect();
            let full = parts.join(".");
            let key = match alias {
                Some(a) => {
                    if a.name.quote_style.is_some() {
                        a.name.value.clone()
                    } else {
                        a.name.value.to_ascii_lowercase()
                    }
                }
                None => parts.last().cloned().unwrap_or_default(),
            };
            aliases.insert(key, full.clone());
            aliases.insert(full.clone(), full);
        }
    };
    for table in &select.from {
        add(&table.relation);
        for join in &table.joins {
            add(&join.relation);
        }
    }
    aliases
}

/// The expressions of the plan's output projection, if its top is one (under sorts and limits).
fn top_projection(plan: &LogicalPlan) -> Option<&Vec<LogicalExpr>> {
    match plan {
        LogicalPlan::Projection(p) => Some(&p.expr),
        LogicalPlan::Limit(l) => top_projection(&l.input),
        LogicalPlan::Sort(s) => top_projection(&s.input),
        LogicalPlan::Distinct(d) => top_projection(d.input()),
        _ => None,
    }
}

/// A readable, ADQL-ish name for an unnamed expression (`distance`, `count`, `expr`).
fn generated_name(expr: &LogicalExpr) -> String {
    match expr {
        LogicalExpr::ScalarFunction(f) => {
            let name = f.name();
            name.strip_prefix("adql_").unwrap_or(name).to_string()
        }
        LogicalExpr::AggregateFunction(f) => f.func.name().to_string(),
        LogicalExpr::Cast(c) => generated_name(&c.expr),
        LogicalExpr::Literal(..) => "literal".into(),
        _ => "expr".into(),
    }
}

fn geometry_xtype(expr: &LogicalExpr) -> Option<String> {
    let inner = match expr {
        LogicalExpr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    let LogicalExpr::ScalarFunction(f) = inner else {
        return None;
    };
    Some(
        match f.name() {
            "adql_point" | "adql_centroid" => "point",
            "adql_circle" => "circle",
            "adql_polygon" | "adql_box" => "polygon",
            _ => return None,
        }
        .to_string(),
    )
}

/// The session catalogue of a query with uploads: the shared schemas plus `tap_upload`.
#[derive(Debug)]
struct QueryCatalog {
    base: Arc<MemoryCatalogProvider>,
    uploads: Arc<MemorySchemaProvider>,
}

impl CatalogProvider for QueryCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.base.schema_names();
        names.push(UPLOAD_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == UPLOAD_SCHEMA {
            Some(self.uploads.clone())
        } else {
            self.base.schema(name)
        }
    }
}

/// True if the type is a DALI geometry list.
pub fn is_geometry(data_type: &DataType) -> bool {
    matches!(data_type, DataType::List(_))
}
