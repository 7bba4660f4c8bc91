//! Catalogue ingest: Parquet, CSV, VOTable or FITS binary table → HEALPix-partitioned Parquet plus
//! an editable descriptor, published atomically.
//!
//! Layout (HATS-like, `astronomy-commons/hats` directory scheme): `data/Norder=<k>/Npix=<n>.parquet`,
//! one file per order-k HEALPix cell, each sorted by the order-29 index `_healpix_29` and cut into
//! small row groups (4096 rows), so a cone's index ranges prune files and row groups by their
//! min/max statistics. Rows without a valid position go to `Npix=unpositioned.parquet`.
//!
//! Publishing is atomic: the table is written into a hidden folder next to the published ones and
//! renamed into place only when complete, so an interrupted ingest never leaves a half-published
//! table (a rerun starts over). Re-ingesting keeps the operator's edits to the descriptor
//! (descriptions, units, UCDs, flags) for columns that still exist. [`write_table`] writes a
//! table's folder anywhere; [`to_store`] publishes one to a folder on an object store (a volume),
//! where nothing can be renamed into place.

mod fits;
pub mod to_store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::catalog::{
    ColumnDescriptor, DATA_DIR, DESCRIPTOR_FILE, HEALPIX_COLUMN, PositionDescriptor,
    TableDescriptor, esa_flags,
};
use crate::error::TapError;

use colo_astro::sky::{self, HEALPIX_ORDER};

/// Rows per Parquet row group: small enough that statistics prune well for small cones.
pub const ROW_GROUP_ROWS: usize = 4096;
/// Target rows per partition file when choosing the partition order.
const ROWS_PER_PARTITION: usize = 20_000;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// VOTable (TABLEDATA, BINARY, BINARY2).
    Votable,
    /// FITS binary table (first BINTABLE extension).
    Fits,
}

impl InputFormat {
    /// Guesses the format from a file name.
    pub fn from_name(name: &str) -> Option<InputFormat> {
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            Some(InputFormat::Parquet)
        } else if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Some(InputFormat::Csv)
        } else if lower.ends_with(".vot") || lower.ends_with(".xml") || lower.ends_with(".votable")
        {
            Some(InputFormat::Votable)
        } else if lower.ends_with(".fits") || lower.ends_with(".fit") || lower.ends_with(".fits.fz")
        {
            Some(InputFormat::Fits)
        } else {
            None
        }
    }
}

/// What to ingest and how to publish it.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// Name of the source, for messages and the descriptor.
    pub source_name: String,
    /// The catalogue's bytes.
    pub bytes: Bytes,
    /// Its format.
    pub format: InputFormat,
    /// ADQL schema.
    pub schema: String,
    /// ADQL table name.
    pub table: String,
    /// RA/Dec columns; guessed from common names when absent.
    pub position: Option<PositionDescriptor>,
    /// Table description for a new descriptor.
    pub description: Option<String>,
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Published folder.
    pub dir: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Partition files written.
    pub files: usize,
    /// HEALPix order of the partitions.
    pub order: u8,
    /// The position columns used.
    pub position: Option<PositionDescriptor>,
    /// The descriptor written.
    pub descriptor: TableDescriptor,
}

fn fail(request: &IngestRequest, message: impl Into<String>) -> TapError {
    TapError::Ingest {
        source_name: request.source_name.clone(),
        message: message.into(),
    }
}

/// Reads, partitions, writes and publishes one catalogue under `tables_dir`. `progress` is called
/// with (rows written, total rows).
pub fn ingest(
    tables_dir: &Path,
    request: &IngestRequest,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<IngestReport, TapError> {
    let name = format!("{}.{}", request.schema, request.table);
    std::fs::create_dir_all(tables_dir).map_err(TapError::io(tables_dir))?;
    let staging = tables_dir.join(format!(".{name}.ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let published = tables_dir.join(&name);
    let previous = TableDescriptor::read(&published.join(DESCRIPTOR_FILE)).ok();
    let written = write_table(&staging, request, DATA_DIR, previous, progress);
    let report = match written {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };

    // Publish: swap the staging folder into place.
    let retired = tables_dir.join(format!(".{name}.retired-{}", std::process::id()));
    if published.exists() {
        std::fs::rename(&published, &retired).map_err(TapError::io(&published))?;
    }
    std::fs::rename(&staging, &published).map_err(TapError::io(&published))?;
    let _ = std::fs::remove_dir_all(&retired);
    Ok(IngestReport {
        dir: published,
        ..report
    })
}

/// Reads and partitions one catalogue and writes the table's folder at `folder` (created): the
/// partitions under `folder/<data_dir>/` and the descriptor, keeping `previous`'s edits. The
/// report's `dir` is `folder`.
pub fn write_table(
    folder: &Path,
    request: &IngestRequest,
    data_dir: &str,
    previous: Option<TableDescriptor>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<IngestReport, TapError> {
    check_name(request, &request.schema)?;
    check_name(request, &request.table)?;
    let batch = read_input(request)?;
    let batch = normalise_names(request, batch)?;
    let position = match &request.position {
        Some(p) => Some(PositionDescriptor {
            ra: p.ra.to_ascii_lowercase(),
            dec: p.dec.to_ascii_lowercase(),
        }),
        None => guess_position(batch.schema().as_ref()),
    };
    let rows = batch.num_rows();
    let (batch, cells, order) = match &position {
        Some(p) => partition(request, batch, p)?,
        None => (batch, vec![(None, 0..rows)], 0),
    };

    let partitions = folder.join(data_dir).join(format!("Norder={order}"));
    std::fs::create_dir_all(&partitions).map_err(TapError::io(&partitions))?;
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut written = 0u64;
    for (cell, range) in &cells {
        let file_name = match cell {
            Some(n) => format!("Npix={n}.parquet"),
            None => "Npix=unpositioned.parquet".to_string(),
        };
        let path = partitions.join(file_name);
        let part = batch.slice(range.start, range.len());
        let file = std::fs::File::create(&path).map_err(TapError::io(&path))?;
        let mut writer = ArrowWriter::try_new(file, part.schema(), Some(properties.clone()))
            .map_err(|e| fail(request, format!("writing Parquet: {e}")))?;
        writer
            .write(&part)
            .map_err(|e| fail(request, format!("writing Parquet: {e}")))?;
        writer
            .close()
            .map_err(|e| fail(request, format!("writing Parquet: {e}")))?;
        written += part.num_rows() as u64;
        progress(written, rows as u64);
    }

    let mut descriptor = describe(
        request,
        batch.schema().as_ref(),
        position.clone(),
        rows as u64,
        previous,
    );
    descriptor.data = data_dir.to_string();
    descriptor.write(&folder.join(DESCRIPTOR_FILE))?;
    Ok(IngestReport {
        dir: folder.to_path_buf(),
        rows: rows as u64,
        files: cells.len(),
        order,
        position,
        descriptor,
    })
}

fn check_name(request: &IngestRequest, name: &str) -> Result<(), TapError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok && !crate::adql::functions::is_reserved(name) {
        Ok(())
    } else {
        Err(fail(
            request,
            format!(
                "{name:?} is not a usable ADQL name: use lower-case letters, digits and _, starting with a letter"
            ),
        ))
    }
}

fn read_input(request: &IngestRequest) -> Result<RecordBatch, TapError> {
    let batches: Vec<RecordBatch> = match request.format {
        InputFormat::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                request.bytes.clone(),
            )
            .and_then(|b| b.with_batch_size(65_536).build())
            .map_err(|e| fail(request, format!("not a readable Parquet file: {e}")))?;
            reader
                .collect::<Result<_, _>>()
                .map_err(|e| fail(request, format!("reading Parquet: {e}")))?
        }
        InputFormat::Csv => {
            use datafusion::arrow::csv;
            let delimiter = if request.source_name.to_ascii_lowercase().ends_with(".tsv") {
                b'\t'
            } else {
                b','
            };
            let format = csv::reader::Format::default()
                .with_header(true)
                .with_delimiter(delimiter);
            let (schema, _) = format
                .infer_schema(std::io::Cursor::new(&request.bytes), Some(10_000))
                .map_err(|e| fail(request, format!("not a readable CSV file: {e}")))?;
            let reader = csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(format)
                .with_batch_size(65_536)
                .build(std::io::Cursor::new(request.bytes.clone()))
                .map_err(|e| fail(request, format!("reading CSV: {e}")))?;
            reader
                .collect::<Result<_, _>>()
                .map_err(|e| fail(request, format!("reading CSV: {e}")))?
        }
        InputFormat::Votable => vec![crate::upload::parse_votable("ingest", &request.bytes)?.batch],
        InputFormat::Fits => {
            vec![
                fits::read_bintable(&request.source_name, &request.bytes)
                    .map_err(|m| fail(request, m))?,
            ]
        }
    };
    let Some(first) = batches.first() else {
        return Err(fail(request, "the catalogue has no rows"));
    };
    let schema = first.schema();
    concat_batches(&schema, &batches).map_err(|e| fail(request, e.to_string()))
}

/// Lower-cases regular names (ADQL folds unquoted names) and refuses duplicates.
fn normalise_names(request: &IngestRequest, batch: RecordBatch) -> Result<RecordBatch, TapError> {
    let mut seen = std::collections::HashSet::new();
    let mut fields = Vec::new();
    for field in batch.schema().fields() {
        let name = field
            .name()
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-', '.'], "_");
        let name = if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            name
        } else {
            format!("c_{name}")
        };
        if name == HEALPIX_COLUMN {
            continue;
        }
        if !seen.insert(name.clone()) {
            return Err(fail(
                request,
                format!(
                    "two columns are both called {name:?} (names are case-insensitive in ADQL)"
                ),
            ));
        }
        let data_type = match field.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..) => DataType::Utf8,
            other => other.clone(),
        };
        fields.push(Field::new(name, data_type, true));
    }
    let columns: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name().to_ascii_lowercase() != HEALPIX_COLUMN)
        .zip(&fields)
        .map(|((_, column), field)| {
            cast(column, field.data_type()).map_err(|e| fail(request, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| fail(request, e.to_string()))
}

/// Common RA/Dec column names, most specific first.
const POSITION_NAMES: &[(&str, &str)] = &[
    ("ra", "dec"),
    ("ra_deg", "dec_deg"),
    ("ra_icrs", "de_icrs"),
    ("raj2000", "dej2000"),
    ("radeg", "dedeg"),
    ("ra_j2000", "dec_j2000"),
    ("alpha", "delta"),
];

fn guess_position(schema: &Schema) -> Option<PositionDescriptor> {
    let numeric = |name: &str| {
        schema
            .field_with_name(name)
            .is_ok_and(|f| f.data_type().is_numeric())
    };
    POSITION_NAMES
        .iter()
        .find(|(ra, dec)| numeric(ra) && numeric(dec))
        .map(|(ra, dec)| PositionDescriptor {
            ra: ra.to_string(),
            dec: dec.to_string(),
        })
}

/// Rows of one partition file: its order-k HEALPix cell (None: no position) and the row range.
type Cells = Vec<(Option<u64>, std::ops::Range<usize>)>;

/// Adds `_healpix_29`, sorts by it and cuts the rows into order-k cells.
fn partition(
    request: &IngestRequest,
    batch: RecordBatch,
    position: &PositionDescriptor,
) -> Result<(RecordBatch, Cells, u8), TapError> {
    let column = |name: &str| -> Result<Float64Array, TapError> {
        let array = batch.column_by_name(name).ok_or_else(|| {
            fail(
                request,
                format!("no column {name:?} for the position (use --ra/--dec)"),
            )
        })?;
        let array = cast(array, &DataType::Float64)
            .map_err(|e| fail(request, format!("column {name}: {e}")))?;
        Ok(array
            .as_any()
            .downcast_ref::<Float64Array>()
            .cloned()
            .unwrap_or_else(|| Float64Array::from(Vec::<f64>::new())))
    };
    let (ra, dec) = (column(&position.ra)?, column(&position.dec)?);
    let index: Int64Array = (0..batch.num_rows())
        .map(|i| {
            if ra.is_null(i) || dec.is_null(i) {
                return None;
            }
            sky::healpix_index(HEALPIX_ORDER, ra.value(i), dec.value(i)).map(|h| h as i64)
        })
        .collect();
    let rows = batch.num_rows();
    let order = order_for(rows);
    let order_index: ArrayRef = Arc::new(index.clone());
    let sorted =
        sort_to_indices(&order_index, None, None).map_err(|e| fail(request, e.to_string()))?;
    let mut columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| take(c, &sorted, None))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(request, e.to_string()))?;
    let sorted_index =
        take(&order_index, &sorted, None).map_err(|e| fail(request, e.to_string()))?;
    columns.push(sorted_index.clone());
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(HEALPIX_COLUMN, DataType::Int64, true));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| fail(request, e.to_string()))?;

    let index = sorted_index
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .unwrap_or_else(|| Int64Array::from(Vec::<i64>::new()));
    let shift = 2 * u32::from(HEALPIX_ORDER - order);
    let cell_of =
        |i: usize| -> Option<u64> { (!index.is_null(i)).then(|| (index.value(i) as u64) >> shift) };
    let mut cells = Vec::new();
    let mut start = 0;
    for i in 1..=rows {
        if i == rows || cell_of(i) != cell_of(start) {
            cells.push((cell_of(start), start..i));
            start = i;
        }
    }
    Ok((batch, cells, order))
}

/// Partition order: files of about [`ROWS_PER_PARTITION`] rows on average, at most order 7.
pub fn order_for(rows: usize) -> u8 {
    let mut order = 0u8;
    while order < 7 && rows / (12 * 4usize.pow(u32::from(order) + 1)) >= ROWS_PER_PARTITION {
        order += 1;
    }
    order
}

/// A descriptor for the written table, keeping a previous one's edits.
fn describe(
    request: &IngestRequest,
    schema: &Schema,
    position: Option<PositionDescriptor>,
    rows: u64,
    previous: Option<TableDescriptor>,
) -> TableDescriptor {
    let previous_columns = previous
        .as_ref()
        .map(|p| p.columns.clone())
        .unwrap_or_default();
    let columns = schema
        .fields()
        .iter()
        .filter(|f| f.name() != HEALPIX_COLUMN)
        .map(|field| {
            if let Some(kept) = previous_columns.iter().find(|c| &c.name == field.name()) {
                return kept.clone();
            }
            let mut column = ColumnDescriptor {
                name: field.name().clone(),
                principal: true,
                ..Default::default()
            };
            if let Some(p) = &position {
                if field.name() == &p.ra {
                    column.ucd = "pos.eq.ra;meta.main".into();
                    column.unit = "deg".into();
                    column.description = "Right ascension (ICRS)".into();
                    column.flags = esa_flags::RA;
                    column.indexed = true;
                } else if field.name() == &p.dec {
                    column.ucd = "pos.eq.dec;meta.main".into();
                    column.unit = "deg".into();
                    column.description = "Declination (ICRS)".into();
                    column.flags = esa_flags::DEC;
                    column.indexed = true;
                }
            }
            let lower = field.name().to_ascii_lowercase();
            if lower.contains("mag") && column.flags == 0 {
                column.flags = esa_flags::MAG;
                column.unit = "mag".into();
            } else if (lower == "source_id" || lower == "hip" || lower == "id") && column.flags == 0
            {
                column.flags = esa_flags::PK;
                column.ucd = "meta.id;meta.main".into();
            }
            column
        })
        .collect();
    TableDescriptor {
        schema: request.schema.clone(),
        name: request.table.clone(),
        description: previous
            .as_ref()
            .map(|p| p.description.clone())
            .filter(|d| !d.is_empty())
            .or_else(|| request.description.clone())
            .unwrap_or_default(),
        utype: previous
            .as_ref()
            .map(|p| p.utype.clone())
            .unwrap_or_default(),
        rows,
        source: request.source_name.clone(),
        data: DATA_DIR.to_string(),
        position,
        columns,
    }
}
