//! VOTable 1.4 results (VOTable 1.4 §5; TAP 1.1 §3.3 for the QUERY_STATUS INFOs): TABLEDATA or
//! BINARY2 (null flags per row, big-endian values, base64 streamed across batches).
//!
//! The header says `QUERY_STATUS=OK`; an overflow or a failure after the header is reported by a
//! trailing INFO after `</TABLE>`, which TAP 1.1 allows precisely so results can stream.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use base64::Engine as _;

use super::{Ending, NullFill, ResultWriter, normalise, write_scalar_be};
use crate::catalog::ColumnMeta;
use crate::error::TapError;
use crate::types::votable_type;
use crate::types::{canonical_type, format_float};

/// Writes a VOTable in TABLEDATA or BINARY2.
pub struct VotableWriter {
    columns: Vec<ColumnMeta>,
    binary2: bool,
    /// BINARY2 bytes not yet base64-encoded (fewer than 3 between batches).
    carry: Vec<u8>,
    /// Base64 characters on the current output line.
    line_len: usize,
}

impl VotableWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta], binary2: bool) -> Self {
        Self {
            columns: columns.to_vec(),
            binary2,
            carry: Vec::new(),
            line_len: 0,
        }
    }
}

/// The FIELD element of one column.
pub fn field_element(column: &ColumnMeta, id: Option<&str>) -> String {
    let data_type = column
        .arrow_type
        .as_ref()
        .map(canonical_type)
        .unwrap_or(DataType::Utf8);
    let (datatype, arraysize) = votable_type(&data_type);
    let mut out = format!(
        "<FIELD name=\"{}\" datatype=\"{datatype}\"",
        xml_escape(column.name.trim_matches('"'))
    );
    if let Some(id) = id {
        out.push_str(&format!(" ID=\"{}\"", xml_escape(id)));
    }
    let arraysize = match column.xtype.as_deref() {
        Some("point") => Some("2"),
        Some("circle") => Some("3"),
        _ => arraysize,
    };
    if let Some(arraysize) = arraysize {
        out.push_str(&format!(" arraysize=\"{arraysize}\""));
    }
    if let Some(xtype) = &column.xtype {
        out.push_str(&format!(" xtype=\"{}\"", xml_escape(xtype)));
    }
    let d = &column.descriptor;
    for (name, value) in [("unit", &d.unit), ("ucd", &d.ucd), ("utype", &d.utype)] {
        if !value.is_empty() {
            out.push_str(&format!(" {name}=\"{}\"", xml_escape(value)));
        }
    }
    if d.description.is_empty() {
        out.push_str("/>\n");
    } else {
        out.push_str(&format!(
            ">\n<DESCRIPTION>{}</DESCRIPTION>\n</FIELD>\n",
            xml_escape(&d.description)
        ));
    }
    out
}

/// Opening of a results VOTable up to (and including) the FIELDs.
pub fn results_head(columns: &[ColumnMeta], infos: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n\
         <RESOURCE type=\"results\">\n\
         <INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n",
    );
    out.push_str(infos);
    out.push_str("<TABLE>\n");
    for column in columns {
        out.push_str(&field_element(column, None));
    }
    out
}

impl ResultWriter for VotableWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        let mut out = results_head(&self.columns, "");
        out.push_str(if self.binary2 {
            "<DATA><BINARY2><STREAM encoding=\"base64\">\n"
        } else {
            "<DATA><TABLEDATA>\n"
        });
        Ok(out.into_bytes())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        let columns = normalise(batch)?;
        if self.binary2 {
            let mut raw = std::mem::take(&mut self.carry);
            for row in 0..batch.num_rows() {
                binary2_row(&columns, row, &mut raw);
            }
            let whole = raw.len() / 3 * 3;
            self.carry = raw.split_off(whole);
            Ok(self.base64_lines(&raw))
        } else {
            let mut out = String::new();
            for row in 0..batch.num_rows() {
                out.push_str("<TR>");
                for column in &columns {
                    out.push_str("<TD>");
                    out.push_str(&xml_escape(&cell_text(column, row)));
                    out.push_str("</TD>");
                }
                out.push_str("</TR>\n");
            }
            Ok(out.into_bytes())
        }
    }

    fn footer(&mut self, ending: &Ending) -> Result<Vec<u8>, TapError> {
        let mut out = Vec::new();
        if self.binary2 {
            let rest = std::mem::take(&mut self.carry);
            out.extend(self.base64_lines(&rest));
            if self.line_len > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(b"</STREAM></BINARY2></DATA>\n</TABLE>\n");
        } else {
            out.extend_from_slice(b"</TABLEDATA></DATA>\n</TABLE>\n");
        }
        match ending {
            Ending::Complete => {}
            Ending::Overflow => {
                out.extend_from_slice(b"<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n")
            }
            Ending::Error(message) => out.extend_from_slice(
                format!(
                    "<INFO name=\"QUERY_STATUS\" value=\"ERROR\">{}</INFO>\n",
                    xml_escape(message)
                )
                .as_bytes(),
            ),
        }
        out.extend_from_slice(b"</RESOURCE>\n</VOTABLE>\n");
        Ok(out)
    }
}

impl VotableWriter {
    /// Base64 of `raw` (a multiple of 3 bytes, or the final rest) in 76-character lines.
    fn base64_lines(&mut self, raw: &[u8]) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 + 1);
        for byte in encoded.bytes() {
            out.push(byte);
            self.line_len += 1;
            if self.line_len == 76 {
                out.push(b'\n');
                self.line_len = 0;
            }
        }
        out
    }
}

/// BINARY2 marks nulls with flags; the value bytes of a null are zeros (`?` for booleans).
const BINARY2_NULLS: NullFill = NullFill {
    boolean: b'?',
    int16: 0,
    int32: 0,
    int64: 0,
};

/// One row in BINARY2: null flags, then each value big-endian (VOTable 1.4 §5.5).
fn binary2_row(columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) {
    let flags_at = out.len();
    out.resize(flags_at + columns.len().div_ceil(8), 0);
    for (index, column) in columns.iter().enumerate() {
        let null = column.is_null(row);
        if null {
            out[flags_at + index / 8] |= 0x80 >> (index % 8);
        }
        if write_scalar_be(column, row, &BINARY2_NULLS, out) {
            continue;
        }
        match column.data_type() {
            DataType::List(_) => {
                if null {
                    out.extend_from_slice(&0i32.to_be_bytes());
                } else {
                    let values = column.as_list::<i32>().value(row);
                    let values = values.as_primitive::<Float64Type>();
                    out.extend_from_slice(&(values.len() as i32).to_be_bytes());
                    for value in values.iter() {
                        out.extend_from_slice(&value.unwrap_or(f64::NAN).to_be_bytes());
                    }
                }
            }
            _ => {
                let text = if null {
                    ""
                } else {
                    column.as_string::<i32>().value(row)
                };
                out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// The text of one cell (TABLEDATA, CSV): empty for null, DALI syntax for geometry arrays.
pub fn cell_text(column: &ArrayRef, row: usize) -> String {
    if column.is_null(row) {
        return String::new();
    }
    match column.data_type() {
        DataType::Boolean => (if column.as_boolean().value(row) {
            "T"
        } else {
            "F"
        })
        .to_string(),
        DataType::Int16 => column.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float32 => format_float(
            f64::from(column.as_primitive::<Float32Type>().value(row)),
            true,
        ),
        DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(row), false),
        DataType::List(_) => {
            let values = column.as_list::<i32>().value(row);
            let values = values.as_primitive::<Float64Type>();
            values
                .iter()
                .map(|v| format_float(v.unwrap_or(f64::NAN), false))
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => column.as_string::<i32>().value(row).to_string(),
    }
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A VOTable error document (TAP 1.1 §3.3, DALI 1.1 §4.2), its status INFO serialised byte-exactly as
/// `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>` (astroquery's TapPlus matches it as text).
pub fn error_document(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
         <RESOURCE type=\"results\">\n\
         <INFO name=\"QUERY_STATUS\" value=\"ERROR\">{}</INFO>\n\
         </RESOURCE>\n\
         </VOTABLE>\n",
        xml_escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_has_the_exact_status_info() {
        let doc = error_document("bad <query>");
        assert!(
            doc.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">bad &lt;query&gt;</INFO>")
        );
    }
}
