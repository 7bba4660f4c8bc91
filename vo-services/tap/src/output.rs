//! Result serialisations (DALI 1.1 §4.4, TAP 1.1 §2.7.1) and the streaming driver.
//!
//! Every format implements [`ResultWriter`]: a header from the column metadata, bytes per record
//! batch, and a footer that can still say "overflow" or "error" (VOTable's trailing QUERY_STATUS
//! INFO; TAP 1.1 §3.3). [`stream_result`] drives a query's batches through a writer, stops at MAXREC
//! and yields byte chunks for an HTTP body or a job's result file, so a million-row result never
//! sits whole in memory. FITS and Parquet need their row count or footer before the rows, so those
//! two writers hold their encoded rows until the footer.

pub mod fits;
pub mod text;
pub mod votable;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use datafusion::arrow::compute::cast;
use futures::{Stream, StreamExt};

use crate::catalog::ColumnMeta;
use crate::engine::QueryResult;
use crate::error::TapError;
use crate::types::canonical_type;

/// A result format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// VOTable 1.4, TABLEDATA serialisation.
    VotableTabledata,
    /// VOTable 1.4, BINARY2 serialisation (the default: compact and exact).
    VotableBinary2,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// Astropy's Enhanced CSV.
    Ecsv,
    /// ESA TAP+ JSON (`metadata` + `data`).
    Json,
    /// FITS binary table.
    Fits,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Parses RESPONSEFORMAT / FORMAT: DALI short forms, media types and astroquery's names.
    pub fn parse(value: &str) -> Option<Format> {
        let lower = value.trim().to_ascii_lowercase();
        let base = lower.split(';').next().unwrap_or("").trim();
        Some(match base {
            ""
            | "votable"
            | "votable_gzip"
            | "application/x-votable+xml"
            | "text/xml"
            | "application/xml"
            | "votable/b2"
            | "votable_binary2" => {
                if lower.contains("serialization=tabledata") {
                    Format::VotableTabledata
                } else {
                    Format::VotableBinary2
                }
            }
            "votable_plain" | "votable/td" | "votable_td" | "votabletd" => Format::VotableTabledata,
            "csv" | "text/csv" => Format::Csv,
            "tsv" | "text/tab-separated-values" | "text" | "text/plain" => Format::Tsv,
            "ecsv" | "text/x-ecsv" => Format::Ecsv,
            "json" | "application/json" => Format::Json,
            "fits" | "application/fits" | "image/fits" => Format::Fits,
            "parquet" | "application/vnd.apache.parquet" | "application/x-parquet" => {
                Format::Parquet
            }
            _ => return None,
        })
    }

    /// The Content-Type of results in this format; a full media type the client asked for is
    /// echoed (DALI 1.1 §3.3.1).
    pub fn content_type(self, requested: Option<&str>) -> String {
        if let Some(requested) = requested
            && requested.contains('/')
        {
            return requested.to_string();
        }
        match self {
            Format::VotableTabledata | Format::VotableBinary2 => "application/x-votable+xml",
            Format::Csv => "text/csv;header=present",
            Format::Tsv => "text/tab-separated-values",
            Format::Ecsv => "text/x-ecsv",
            Format::Json => "application/json",
            Format::Fits => "application/fits",
            Format::Parquet => "application/vnd.apache.parquet",
        }
        .to_string()
    }

    /// File extension for job result files.
    pub fn extension(self) -> &'static str {
        match self {
            Format::VotableTabledata | Format::VotableBinary2 => "vot",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Ecsv => "ecsv",
            Format::Json => "json",
            Format::Fits => "fits",
            Format::Parquet => "parquet",
        }
    }

    /// All formats, for `/capabilities`: (media type, DALI short name, extra aliases).
    pub fn declared() -> &'static [(&'static str, &'static str, &'static [&'static str])] {
        &[
            (
                "application/x-votable+xml",
                "votable",
                &["votable_gzip", "votable_plain"],
            ),
            (
                "application/x-votable+xml;serialization=tabledata",
                "votable/td",
                &["votable_plain"],
            ),
            ("text/csv;header=present", "csv", &[]),
            ("text/tab-separated-values", "tsv", &["text"]),
            ("text/x-ecsv", "ecsv", &[]),
            ("application/json", "json", &[]),
            ("application/fits", "fits", &[]),
            ("application/vnd.apache.parquet", "parquet", &[]),
        ]
    }

    /// A writer for this format.
    pub fn writer(self, columns: &[ColumnMeta]) -> Box<dyn ResultWriter> {
        match self {
            Format::VotableTabledata => Box::new(votable::VotableWriter::new(columns, false)),
            Format::VotableBinary2 => Box::new(votable::VotableWriter::new(columns, true)),
            Format::Csv => Box::new(text::DelimitedWriter::new(columns, b',')),
            Format::Tsv => Box::new(text::DelimitedWriter::new(columns, b'\t')),
            Format::Ecsv => Box::new(text::EcsvWriter::new(columns)),
            Format::Json => Box::new(text::JsonWriter::new(columns)),
            Format::Fits => Box::new(fits::FitsWriter::new(columns)),
            Format::Parquet => Box::new(text::ParquetWriter::new(columns)),
        }
    }
}

/// Gzip around another writer, for astroquery's `votable_gzip` and its FITS reader (which only
/// reads gzip-compressed FITS). Sent with `Content-Encoding: gzip`, so HTTP clients that decode
/// (requests, pyvo) see the plain format.
pub struct GzipWriter {
    inner: Box<dyn ResultWriter>,
    encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl GzipWriter {
    /// Compresses what `inner` writes.
    pub fn new(inner: Box<dyn ResultWriter>) -> Self {
        Self {
            inner,
            encoder: Some(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
        }
    }

    fn compress(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TapError> {
        use std::io::Write;
        let encoder = self.encoder.as_mut().ok_or_else(|| TapError::Execution {
            message: "gzip stream already finished".into(),
        })?;
        encoder.write_all(bytes).map_err(|e| TapError::Execution {
            message: format!("gzip: {e}"),
        })?;
        encoder.flush().map_err(|e| TapError::Execution {
            message: format!("gzip: {e}"),
        })?;
        Ok(std::mem::take(encoder.get_mut()))
    }
}

impl ResultWriter for GzipWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let bytes = self.inner.header()?;
        self.compress(&bytes)
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let bytes = self.inner.rows(batch)?;
        self.compress(&bytes)
    }

    fn footer(&mut self, ending: &Ending) -> Result<Vec<u8>, TapError> {
        let mut out = Vec::new();
        for chunk in self.footer_chunks(ending)? {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// The inner writer's footer chunks compressed as they come, then the end of the gzip stream.
    fn footer_chunks(&mut self, ending: &Ending) -> Result<Chunks, TapError> {
        let inner = self.inner.footer_chunks(ending)?;
        let Some(encoder) = self.encoder.take() else {
            return Ok(Box::new(std::iter::empty()));
        };
        let gzip = |e: std::io::Error| TapError::Execution {
            message: format!("gzip: {e}"),
        };
        let mut encoder = Some(encoder);
        let mut inner = inner.fuse();
        Ok(Box::new(std::iter::from_fn(move || {
            use std::io::Write;
            let active = encoder.as_mut()?;
            match inner.next() {
                Some(Ok(bytes)) => Some(
                    active
                        .write_all(&bytes)
                        .and_then(|()| active.flush())
                        .map(|()| std::mem::take(active.get_mut()))
                        .map_err(gzip),
                ),
                Some(Err(e)) => Some(Err(e)),
                None => encoder.take().map(|e| e.finish().map_err(gzip)),
            }
        })))
    }
}

/// How a result ended, for the writer's footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// All rows written.
    Complete,
    /// Truncated at MAXREC.
    Overflow,
    /// The query failed after the header was sent.
    Error(String),
}

/// One result serialisation.
pub trait ResultWriter: Send {
    /// Bytes before the rows.
    fn header(&mut self) -> Result<Vec<u8>, TapError>;
    /// Bytes for these rows (columns already normalised by [`normalise`]).
    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError>;
    /// Bytes after the rows.
    fn footer(&mut self, ending: &Ending) -> Result<Vec<u8>, TapError>;
    /// The bytes after the rows as chunks, for a writer that holds its rows until the end (FITS
    /// spools them): handed on chunk by chunk, never whole. By default, the footer.
    fn footer_chunks(&mut self, ending: &Ending) -> Result<Chunks, TapError> {
        let footer = self.footer(ending)?;
        Ok(Box::new(std::iter::once(Ok(footer))))
    }
}

/// Bytes in chunks, as a writer hands them on.
pub type Chunks = Box<dyn Iterator<Item = Result<Vec<u8>, TapError>> + Send>;

/// What a big-endian binary encoding writes in place of a null scalar (FITS: TNULL values and `0`
/// for logicals; VOTable BINARY2: anything, with the null flag set, so zeros and `?`). Floats are
/// NaN in both.
pub struct NullFill {
    pub boolean: u8,
    pub int16: i16,
    pub int32: i32,
    pub int64: i64,
}

/// Appends one canonical scalar cell (boolean, short, int, long, float, double) big-endian, as
/// FITS binary tables and VOTable BINARY2 both store them. Returns false, writing nothing, for
/// other types (strings, arrays), which each format lays out its own way.
pub fn write_scalar_be(column: &ArrayRef, row: usize, fill: &NullFill, out: &mut Vec<u8>) -> bool {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
    let null = column.is_null(row);
    match column.data_type() {
        DataType::Boolean => out.push(if null {
            fill.boolean
        } else if column.as_boolean().value(row) {
            b'T'
        } else {
            b'F'
        }),
        DataType::Int16 => {
            let v = if null {
                fill.int16
            } else {
                column.as_primitive::<Int16Type>().value(row)
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataType::Int32 => {
            let v = if null {
                fill.int32
            } else {
                column.as_primitive::<Int32Type>().value(row)
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataType::Int64 => {
            let v = if null {
                fill.int64
            } else {
                column.as_primitive::<Int64Type>().value(row)
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataType::Float32 => {
            let v = if null {
                f32::NAN
            } else {
                column.as_primitive::<Float32Type>().value(row)
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataType::Float64 => {
            let v = if null {
                f64::NAN
            } else {
                column.as_primitive::<Float64Type>().value(row)
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        _ => return false,
    }
    true
}

/// Casts every column to its canonical type (timestamps become DALI strings).
pub fn normalise(batch: &RecordBatch) -> Result<Vec<ArrayRef>, TapError> {
    batch
        .columns()
        .iter()
        .map(|column| {
            let target = canonical_type(column.data_type());
            if column.data_type() == &target {
                return Ok(column.clone());
            }
            let column = match column.data_type() {
                DataType::Timestamp(..) => {
                    let formatted: arrow_array::StringArray = (0..column.len())
                        .map(|i| {
                            (!column.is_null(i)).then(|| {
                                datafusion::arrow::util::display::array_value_to_string(column, i)
                                    .unwrap_or_default()
                                    .trim_end_matches('Z')
                                    .to_string()
                            })
                        })
                        .collect();
                    return Ok(Arc::new(formatted) as ArrayRef);
                }
                _ => column.clone(),
            };
            cast(&column, &target).map_err(|e| TapError::Execution {
                message: e.to_string(),
            })
        })
        .collect()
}

/// Streams a query result through `writer`, stopping after `result.limit` rows.
/// `service_root` (`scheme://host[/prefix]` as the client sees the service) makes the values of
/// service-relative columns absolute URLs.
pub fn stream_result(
    result: QueryResult,
    mut writer: Box<dyn ResultWriter>,
    service_root: Option<String>,
) -> impl Stream<Item = Result<Bytes, TapError>> + Send {
    let relative = service_relative_columns(&result.columns);
    let QueryResult {
        keep,
        stream,
        limit,
        ..
    } = result;
    async_stream(move |tx| async move {
        tx.send(writer.header().map(Bytes::from)).await;
        let mut stream = stream;
        let mut written: u64 = 0;
        let mut ending = Ending::Complete;
        while let Some(next) = stream.next().await {
            let batch = match next {
                Ok(batch) => batch,
                Err(e) => {
                    ending = Ending::Error(crate::engine::running_error(e).to_string());
                    break;
                }
            };
            let batch = match batch
                .project(&keep)
                .map_err(TapError::from_arrow)
                .and_then(|b| absolute_urls(b, &relative, service_root.as_deref()))
            {
                Ok(batch) => batch,
                Err(e) => {
                    ending = Ending::Error(e.to_string());
                    break;
                }
            };
            let mut rows = batch.num_rows() as u64;
            let mut batch = batch;
            if let Some(limit) = limit
                && written + rows > limit
            {
                rows = limit - written;
                batch = batch.slice(0, rows as usize);
                ending = Ending::Overflow;
            }
            if rows > 0 {
                match writer.rows(&batch) {
                    Ok(bytes) => {
                        if !tx.send(Ok(Bytes::from(bytes))).await {
                            return;
                        }
                    }
                    Err(e) => {
                        ending = Ending::Error(e.to_string());
                        break;
                    }
                }
            }
            written += rows;
            if ending == Ending::Overflow {
                break;
            }
        }
        match writer.footer_chunks(&ending) {
            Ok(chunks) => {
                for chunk in chunks {
                    let failed = chunk.is_err();
                    if !tx.send(chunk.map(Bytes::from)).await || failed {
                        return;
                    }
                }
            }
            Err(e) => {
                tx.send(Err(e)).await;
            }
        }
    })
}

/// Indices of the columns whose values are paths on this service.
pub fn service_relative_columns(columns: &[ColumnMeta]) -> Vec<usize> {
    columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.descriptor.service_relative)
        .map(|(i, _)| i)
        .collect()
}

/// `batch` with the values of `columns` (service paths, `/...`) prefixed by `root`; as it is without
/// a root or such columns.
pub fn absolute_urls(
    batch: RecordBatch,
    columns: &[usize],
    root: Option<&str>,
) -> Result<RecordBatch, TapError> {
    let Some(root) = root.filter(|_| !columns.is_empty()) else {
        return Ok(batch);
    };
    let root = root.trim_end_matches('/');
    let mut arrays = batch.columns().to_vec();
    for &i in columns {
        // Parquet strings arrive as views; any string type is read as plain UTF-8.
        let Ok(text) = cast(&arrays[i], &DataType::Utf8) else {
            continue;
        };
        let Some(paths) = text.as_any().downcast_ref::<arrow_array::StringArray>() else {
            continue;
        };
        let absolute: arrow_array::StringArray = paths
            .iter()
            .map(|v| {
                v.map(|p| match p.starts_with('/') {
                    true => format!("{root}{p}"),
                    false => p.to_string(),
                })
            })
            .collect();
        arrays[i] = Arc::new(absolute);
    }
    let fields: Vec<arrow_schema::Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(&arrays)
        .map(|(f, a)| f.as_ref().clone().with_data_type(a.data_type().clone()))
        .collect();
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays)
        .map_err(TapError::from_arrow)
}

/// A tiny channel-backed stream builder (keeps the async code linear without extra crates).
struct Sender(tokio::sync::mpsc::Sender<Result<Bytes, TapError>>);

impl Sender {
    /// Sends an item; false when the receiver is gone (client hung up).
    async fn send(&self, item: Result<Bytes, TapError>) -> bool {
        self.0.send(item).await.is_ok()
    }
}

fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<Bytes, TapError>> + Send
where
    F: FnOnce(Sender) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(Sender(tx)));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, TapError>>,
) -> impl Stream<Item = Result<Bytes, TapError>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_short_forms_media_types_and_astroquery_names() {
        assert_eq!(Format::parse("votable"), Some(Format::VotableBinary2));
        assert_eq!(
            Format::parse("votable_plain"),
            Some(Format::VotableTabledata)
        );
        assert_eq!(
            Format::parse("application/x-votable+xml;serialization=TABLEDATA"),
            Some(Format::VotableTabledata)
        );
        assert_eq!(Format::parse("text/csv"), Some(Format::Csv));
        assert_eq!(Format::parse("ecsv"), Some(Format::Ecsv));
        assert_eq!(Format::parse("fits"), Some(Format::Fits));
        assert_eq!(Format::parse("application/x-hdf5"), None);
    }
}
