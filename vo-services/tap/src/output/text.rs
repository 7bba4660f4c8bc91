//! Text and columnar result formats: CSV and TSV (DALI 1.1 §4.4.2–3, header row), astropy's ECSV
//! 1.0, the JSON layout of ESA's TAP+ (`{"metadata": [...], "data": [[...]]}`, what astroquery's
//! `output_format="json"` parses) and Parquet.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use super::votable::cell_text;
use super::{Ending, ResultWriter, normalise};
use crate::catalog::ColumnMeta;
use crate::error::TapError;
use crate::types::canonical_type;
use crate::types::votable_type;

/// CSV (RFC 4180 quoting) or TSV.
pub struct DelimitedWriter {
    names: Vec<String>,
    delimiter: u8,
}

impl DelimitedWriter {
    /// A writer with this delimiter (`,` or tab).
    pub fn new(columns: &[ColumnMeta], delimiter: u8) -> Self {
        Self {
            names: columns
                .iter()
                .map(|c| c.name.trim_matches('"').to_string())
                .collect(),
            delimiter,
        }
    }

    fn field(&self, text: &str, out: &mut String) {
        if self.delimiter == b'\t' {
            out.push_str(&text.replace(['\t', '\n', '\r'], " "));
        } else if text.contains([',', '"', '\n', '\r'])
            || text.starts_with(' ')
            || text.ends_with(' ')
        {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    }

    fn line<'a>(&self, cells: impl Iterator<Item = &'a str>, out: &mut String) {
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push(self.delimiter as char);
            }
            self.field(cell, out);
        }
        out.push_str("\r\n");
    }
}

impl ResultWriter for DelimitedWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let mut out = String::new();
        self.line(self.names.iter().map(String::as_str), &mut out);
        Ok(out.into_bytes())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let columns = normalise(batch)?;
        let mut out = String::new();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = columns.iter().map(|c| cell_text(c, row)).collect();
            self.line(cells.iter().map(String::as_str), &mut out);
        }
        Ok(out.into_bytes())
    }

    fn footer(&mut self, _ending: &Ending) -> Result<Vec<u8>, TapError> {
        Ok(Vec::new())
    }
}

/// Astropy's Enhanced CSV 1.0 (comma-delimited, YAML header with types and units).
pub struct EcsvWriter {
    columns: Vec<ColumnMeta>,
    csv: DelimitedWriter,
}

impl EcsvWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta]) -> Self {
        Self {
            columns: columns.to_vec(),
            csv: DelimitedWriter::new(columns, b','),
        }
    }
}

fn ecsv_type(data_type: &DataType) -> &'static str {
    match canonical_type(data_type) {
        DataType::Boolean => "bool",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        _ => "string",
    }
}

fn yaml_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''").replace('\n', " "))
}

impl ResultWriter for EcsvWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let mut out = String::from("# %ECSV 1.0\n# ---\n# delimiter: ','\n# datatype:\n");
        for column in &self.columns {
            let data_type = column.arrow_type.clone().unwrap_or(DataType::Utf8);
            out.push_str(&format!(
                "# - {{name: {}, datatype: {}",
                yaml_string(column.name.trim_matches('"')),
                ecsv_type(&data_type)
            ));
            if !column.descriptor.unit.is_empty() {
                out.push_str(&format!(", unit: {}", yaml_string(&column.descriptor.unit)));
            }
            if !column.descriptor.description.is_empty() {
                out.push_str(&format!(
                    ", description: {}",
                    yaml_string(&column.descriptor.description)
                ));
            }
            out.push_str("}\n");
        }
        out.push_str("# schema: astropy-2.0\n");
        let mut bytes = out.into_bytes();
        bytes.extend(self.csv.header()?);
        Ok(bytes)
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        self.csv.rows(batch)
    }

    fn footer(&mut self, ending: &Ending) -> Result<Vec<u8>, TapError> {
        self.csv.footer(ending)
    }
}

/// ESA TAP+ JSON: `{"metadata":[{name, datatype, arraysize, unit, ucd, utype, xtype}], "data":[[...]]}`.
pub struct JsonWriter {
    columns: Vec<ColumnMeta>,
    first_row: bool,
}

impl JsonWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta]) -> Self {
        Self {
            columns: columns.to_vec(),
            first_row: true,
        }
    }
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ResultWriter for JsonWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let metadata: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let data_type = c.arrow_type.clone().unwrap_or(DataType::Utf8);
                let (datatype, arraysize) = votable_type(&canonical_type(&data_type));
                let optional = |name: &str, value: &str| {
                    if value.is_empty() {
                        String::new()
                    } else {
                        format!(",{}:{}", json_string(name), json_string(value))
                    }
                };
                // astroquery reads `unit` and `description` unconditionally: always present, null if unknown.
                let always = |name: &str, value: &str| {
                    if value.is_empty() {
                        format!(",{}:null", json_string(name))
                    } else {
                        format!(",{}:{}", json_string(name), json_string(value))
                    }
                };
                format!(
                    "{{\"name\":{},\"datatype\":{}{}{}{}{}{}}}",
                    json_string(c.name.trim_matches('"')),
                    json_string(datatype),
                    optional("arraysize", arraysize.unwrap_or("")),
                    optional("xtype", c.xtype.as_deref().unwrap_or("")),
                    always("unit", &c.descriptor.unit),
                    optional("ucd", &c.descriptor.ucd),
                    always("description", &c.descriptor.description),
                )
            })
            .collect();
        Ok(format!("{{\"metadata\":[{}],\n\"data\":[", metadata.join(",")).into_bytes())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let columns = normalise(batch)?;
        let mut out = String::new();
        for row in 0..batch.num_rows() {
            out.push_str(if self.first_row { "\n[" } else { ",\n[" });
            self.first_row = false;
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let text = cell_text(column, row);
                if arrow_array::Array::is_null(column.as_ref(), row) {
                    out.push_str("null");
                } else {
                    match column.data_type() {
                        DataType::Int16 | DataType::Int32 | DataType::Int64 => out.push_str(&text),
                        DataType::Float32 | DataType::Float64 => {
                            if text.parse::<f64>().is_ok_and(f64::is_finite) {
                                out.push_str(&text)
                            } else {
                                out.push_str("null")
                            }
                        }
                        DataType::Boolean => {
                            out.push_str(if text == "T" { "true" } else { "false" })
                        }
                        DataType::List(_) => {
                            out.push('[');
                            out.push_str(&text.split(' ').collect::<Vec<_>>().join(","));
                            out.push(']');
                        }
                        _ => out.push_str(&json_string(&text)),
                    }
                }
            }
            out.push(']');
        }
        Ok(out.into_bytes())
    }

    fn footer(&mut self, _ending: &Ending) -> Result<Vec<u8>, TapError> {
        Ok(b"\n]}\n".to_vec())
    }
}

/// Parquet (rows are encoded as they come; the file is complete only at the footer).
pub struct ParquetWriter {
    schema: Arc<Schema>,
    writer: Option<ArrowWriter<Vec<u8>>>,
}

impl ParquetWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta]) -> Self {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| {
                Field::new(
                    c.name.trim_matches('"'),
                    canonical_type(c.arrow_type.as_ref().unwrap_or(&DataType::Utf8)),
                    true,
                )
            })
            .collect();
        Self {
            schema: Arc::new(Schema::new(fields)),
            writer: None,
        }
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> TapError {
    TapError::Execution {
        message: format!("writing Parquet: {e}"),
    }
}

/// Bytes a row group may hold in memory before it is written out (then streamed on).
const PARQUET_ROW_GROUP_BYTES: usize = 16 << 20;

impl ResultWriter for ParquetWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let writer =
            ArrowWriter::try_new(Vec::new(), self.schema.clone(), None).map_err(parquet_error)?;
        // The magic bytes are written at once; hand them on like every later byte.
        let mut writer = writer;
        let head = std::mem::take(writer.inner_mut());
        self.writer = Some(writer);
        Ok(head)
    }

    /// Rows go into the current row group; once it holds [`PARQUET_ROW_GROUP_BYTES`] it is
    /// written, and what is written is handed on at once (the writer keeps its own byte count for
    /// the footer's offsets): memory stays at one row group, however long the result.
    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let columns = normalise(batch)?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            TapError::Execution {
                message: e.to_string(),
            }
        })?;
        let Some(writer) = &mut self.writer else {
            return Ok(Vec::new());
        };
        writer.write(&batch).map_err(parquet_error)?;
        if writer.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
            writer.flush().map_err(parquet_error)?;
        }
        Ok(std::mem::take(writer.inner_mut()))
    }

    fn footer(&mut self, _ending: &Ending) -> Result<Vec<u8>, TapError> {
        match self.writer.take() {
            Some(writer) => writer.into_inner().map_err(parquet_error),
            None => Ok(Vec::new()),
        }
    }
}
