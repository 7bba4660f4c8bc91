//! Published tables registered with the engine: each a [`PartitionedTable`] over its partition
//! files (listed once, through the runtime's object store), with the metadata TAP_SCHEMA, `/tables`
//! and the outputs show.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use datafusion::common::config::TableParquetOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use super::failures::find_store_error;
use super::is_internal;
use crate::adql::PositionColumns;
use crate::catalog::{ColumnMeta, HEALPIX_COLUMN, PublishedTable, TableMeta};
use crate::error::TapError;
use crate::partitions::PartitionedTable;
use crate::types::implied_xtype;

/// A published table as DataFusion sees it: its partition files listed once (and cached by the
/// runtime), its schema from their footers (cached too).
pub(super) async fn partitioned_table(
    ctx: &SessionContext,
    table: &PublishedTable,
) -> Result<(Arc<PartitionedTable>, TableMeta), TapError> {
    let name = table.descriptor.qualified_name();
    let storage = |e: DataFusionError| match find_store_error(&e) {
        Some(message) => TapError::Storage {
            location: format!("table {name}"),
            message,
        },
        None => TapError::Engine(e),
    };
    let url = ListingTableUrl::parse(table.data_url().as_str())?;
    let state = ctx.state();
    // The format reads with the session's Parquet options (filter pushdown, footer size hint):
    // a format made with `default()` would carry DataFusion's defaults instead.
    let format = ParquetFormat::default().with_options(TableParquetOptions {
        global: state.config_options().execution.parquet.clone(),
        ..Default::default()
    });
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let store = state.runtime_env().object_store(url.object_store())?;
    let files: Vec<ListingTableUrl> = url
        .list_all_files(&state, store.as_ref(), ".parquet")
        .await
        .map_err(storage)?
        .map_ok(|meta| {
            ListingTableUrl::parse(format!("{}{}", url.object_store().as_str(), meta.location))
        })
        .try_collect::<Vec<_>>()
        .await
        .map_err(storage)?
        .into_iter()
        .collect::<Result<_, _>>()?;
    if files.is_empty() {
        return Err(TapError::Storage {
            location: format!("table {name}"),
            message: format!("no Parquet files in {}", table.data_url()),
        });
    }
    let schema: SchemaRef = options.infer_schema(&state, &url).await.map_err(storage)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options.clone())
        .with_schema(schema.clone());
    let all = Arc::new(ListingTable::try_new(config)?);
    let provider = Arc::new(PartitionedTable::new(all, options, files));
    let descriptor = &table.descriptor;
    let columns = schema
        .fields()
        .iter()
        .filter(|f| !is_internal(f.name()))
        .map(|field| {
            let column = descriptor
                .columns
                .iter()
                .find(|c| &c.name == field.name())
                .cloned()
                .unwrap_or_else(|| crate::catalog::ColumnDescriptor {
                    name: field.name().clone(),
                    ..Default::default()
                });
            ColumnMeta {
                name: field.name().clone(),
                arrow_type: Some(field.data_type().clone()),
                xtype: match column.xtype.as_str() {
                    "" => None,
                    crate::catalog::REGION_XTYPE => Some("polygon".to_string()),
                    other => Some(other.to_string()),
                }
                .or_else(|| implied_xtype(field.data_type()).map(String::from)),
                descriptor: column,
            }
        })
        .collect();
    let has_index = schema.field_with_name(HEALPIX_COLUMN).is_ok();
    let meta = TableMeta {
        schema: descriptor.schema.clone(),
        name: descriptor.name.clone(),
        description: descriptor.description.clone(),
        utype: descriptor.utype.clone(),
        columns,
        position: descriptor
            .position
            .as_ref()
            .filter(|_| has_index)
            .map(|p| PositionColumns {
                lon: p.ra.clone(),
                lat: p.dec.clone(),
            }),
        rows: Some(descriptor.rows),
    };
    Ok((provider, meta))
}
