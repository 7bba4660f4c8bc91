//! FITS binary table results (FITS 4.0 §7.3): an empty primary HDU and one BINTABLE.
//!
//! The BINTABLE header needs the row count and fixed string (and array) widths before any row, so
//! this writer spools the normalised batches to a temporary file (Arrow IPC, removed when done),
//! counting rows and measuring widths as they pass; the footer then writes the headers and reads
//! the spool back one batch at a time, so a result of millions of rows never sits in memory.
//! Nulls: TNULLn for integers, NaN for floats, `0` for logicals, empty strings. The headers are
//! `colo-astro`'s (`fits::bintable`), the same card writer every FITS colo writes goes through.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

use colo_astro::fits::bintable::{self, OutputColumn};
use colo_astro::fits::padded_len;

use super::{Chunks, Ending, NullFill, ResultWriter, normalise, write_scalar_be};
use crate::catalog::ColumnMeta;
use crate::error::TapError;
use crate::types::canonical_type;

/// Spools rows, writes the FITS file at the end.
pub struct FitsWriter {
    columns: Vec<ColumnMeta>,
    spool: Option<StreamWriter<File>>,
    /// The spool's schema (the normalised columns, named by position).
    spool_schema: Option<Arc<Schema>>,
    /// Types of the normalised columns (from the first batch).
    types: Option<Vec<DataType>>,
    rows: usize,
    /// Per column: the longest string (bytes) or array seen.
    widths: Vec<usize>,
}

impl FitsWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta]) -> Self {
        Self {
            columns: columns.to_vec(),
            spool: None,
            spool_schema: None,
            types: None,
            rows: 0,
            widths: vec![0; columns.len()],
        }
    }
}

fn spool_error(e: impl std::fmt::Display) -> TapError {
    TapError::Execution {
        message: format!("spooling the FITS result: {e}"),
    }
}

/// Per-column layout: TFORM, width in bytes, repeat count.
#[derive(Debug, Clone)]
struct Layout {
    tform: String,
    width: usize,
    repeat: usize,
}

fn layout(data_type: &DataType, widest: usize) -> Layout {
    let fixed = |tform: &str, width: usize| Layout {
        tform: tform.into(),
        width,
        repeat: 1,
    };
    match data_type {
        DataType::Boolean => fixed("L", 1),
        DataType::Int16 => fixed("I", 2),
        DataType::Int32 => fixed("J", 4),
        DataType::Int64 => fixed("K", 8),
        DataType::Float32 => fixed("E", 4),
        DataType::Float64 => fixed("D", 8),
        DataType::List(_) => {
            let n = widest.max(1);
            Layout {
                tform: format!("{n}D"),
                width: 8 * n,
                repeat: n,
            }
        }
        _ => {
            let n = widest.max(1);
            Layout {
                tform: format!("{n}A"),
                width: n,
                repeat: n,
            }
        }
    }
}

/// The longest string or array of a column (0 for scalars).
fn widest(column: &ArrayRef) -> usize {
    let valid = |r: &usize| !column.is_null(*r);
    match column.data_type() {
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            (0..column.len())
                .filter(valid)
                .map(|r| list.value(r).len())
                .max()
                .unwrap_or(0)
        }
        DataType::Utf8 => {
            let text = column.as_string::<i32>();
            (0..column.len())
                .filter(valid)
                .map(|r| text.value(r).len())
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

impl ResultWriter for FitsWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        Ok(Vec::new())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let columns = normalise(batch)?;
        if self.spool.is_none() {
            let fields: Vec<Field> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let file = tempfile::tempfile().map_err(spool_error)?;
            let writer = StreamWriter::try_new(file, &schema).map_err(spool_error)?;
            self.spool_schema = Some(schema);
            self.types = Some(columns.iter().map(|c| c.data_type().clone()).collect());
            self.spool = Some(writer);
        }
        for (width, column) in self.widths.iter_mut().zip(&columns) {
            *width = (*width).max(widest(column));
        }
        self.rows += batch.num_rows();
        if let (Some(spool), Some(schema)) = (&mut self.spool, &self.spool_schema) {
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(spool_error)?;
            spool.write(&batch).map_err(spool_error)?;
        }
        Ok(Vec::new())
    }

    fn footer(&mut self, ending: &Ending) -> Result<Vec<u8>, TapError> {
        let mut out = Vec::new();
        for chunk in self.footer_chunks(ending)? {
            out.extend(chunk?);
        }
        Ok(out)
    }

    fn footer_chunks(&mut self, _ending: &Ending) -> Result<Chunks, TapError> {
        let types: Vec<DataType> = match &self.types {
            Some(types) => types.clone(),
            None => self
                .columns
                .iter()
                .map(|c| canonical_type(c.arrow_type.as_ref().unwrap_or(&DataType::Utf8)))
                .collect(),
        };
        let layouts: Vec<Layout> = types
            .iter()
            .zip(&self.widths)
            .map(|(t, w)| layout(t, *w))
            .collect();
        let row_bytes: usize = layouts.iter().map(|l| l.width).sum();
        let output_columns: Vec<OutputColumn> = self
            .columns
            .iter()
            .zip(&layouts)
            .zip(&types)
            .map(|((column, layout), data_type)| OutputColumn {
                name: column.name.trim_matches('"').to_string(),
                tform: layout.tform.clone(),
                unit: column.descriptor.unit.clone(),
                ucd: column.descriptor.ucd.clone(),
                null: match data_type {
                    DataType::Int16 => Some(i64::from(i16::MIN)),
                    DataType::Int32 => Some(i64::from(i32::MIN)),
                    DataType::Int64 => Some(i64::MIN),
                    _ => None,
                },
            })
            .collect();
        let mut head = bintable::primary_header().to_bytes();
        head.extend(
            bintable::table_header(&output_columns, row_bytes, self.rows, "RESULTS").to_bytes(),
        );
        let data_bytes = (row_bytes * self.rows) as u64;
        let padding = (padded_len(data_bytes) - data_bytes) as usize;
        let spooled = match self.spool.take() {
            None => None,
            Some(mut writer) => {
                writer.finish().map_err(spool_error)?;
                let mut file = writer.into_inner().map_err(spool_error)?;
                file.seek(SeekFrom::Start(0)).map_err(spool_error)?;
                Some(StreamReader::try_new(file, None).map_err(spool_error)?)
            }
        };
        let layouts = Arc::new(layouts);
        let rows = spooled.into_iter().flatten().map(move |batch| {
            let batch = batch.map_err(spool_error)?;
            let mut out = Vec::with_capacity(batch.num_rows() * row_bytes);
            for row in 0..batch.num_rows() {
                for (column, layout) in batch.columns().iter().zip(layouts.iter()) {
                    write_cell(column, row, layout, &mut out);
                }
            }
            Ok(out)
        });
        Ok(Box::new(
            std::iter::once(Ok(head))
                .chain(rows)
                .chain(std::iter::once(Ok(vec![0u8; padding]))),
        ))
    }
}

/// FITS nulls: the TNULLn values written in the header, `0` for logicals.
const FITS_NULLS: NullFill = NullFill {
    boolean: 0,
    int16: i16::MIN,
    int32: i32::MIN,
    int64: i64::MIN,
};

fn write_cell(column: &ArrayRef, row: usize, layout: &Layout, out: &mut Vec<u8>) {
    let null = column.is_null(row);
    if write_scalar_be(column, row, &FITS_NULLS, out) {
        return;
    }
    match column.data_type() {
        DataType::List(_) => {
            let mut written = 0;
            if !null {
                let values = column.as_list::<i32>().value(row);
                for value in values.as_primitive::<Float64Type>().iter() {
                    out.extend_from_slice(&value.unwrap_or(f64::NAN).to_be_bytes());
                    written += 1;
                }
            }
            for _ in written..layout.repeat {
                out.extend_from_slice(&f64::NAN.to_be_bytes());
            }
        }
        _ => {
            let text = if null {
                ""
            } else {
                column.as_string::<i32>().value(row)
            };
            let bytes = &text.as_bytes()[..text.len().min(layout.repeat)];
            out.extend_from_slice(bytes);
            out.resize(out.len() + layout.repeat - bytes.len(), 0);
        }
    }
}
