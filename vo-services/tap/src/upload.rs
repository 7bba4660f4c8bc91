//! Table uploads (TAP 1.1 §2.5.6, DALI 1.1 §3.4.5): `UPLOAD=name,param:part` (inline multipart) or
//! `name,http(s)://...` (fetched here, [`load`]), each a VOTable (TABLEDATA, BINARY or BINARY2) read
//! into an Arrow batch that the query sees as `TAP_UPLOAD.name`.
//!
//! Names: FIELD names that are regular ADQL identifiers are folded to lower case (so `t.ra` finds a
//! FIELD called `RA`, as DataFusion folds unquoted names); others keep their spelling and are
//! queried with delimited identifiers. Arrays of numbers (DALI point/circle/polygon) become
//! `List<Float64>`; other arrays become their text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use base64::Engine as _;
use bytes::Bytes;
use quick_xml::events::Event;

use crate::catalog::{ColumnDescriptor, ColumnMeta};
use crate::error::TapError;

/// An uploaded table for one query.
#[derive(Debug, Clone)]
pub struct UploadedTable {
    /// Name as queried: `TAP_UPLOAD.<name>`.
    pub name: String,
    /// The rows.
    pub batch: RecordBatch,
    /// Column metadata from the uploaded VOTable.
    pub columns: Vec<ColumnMeta>,
}

#[derive(Debug, Clone)]
struct FieldDef {
    name: String,
    datatype: String,
    arraysize: Option<String>,
    xtype: Option<String>,
    unit: String,
    ucd: String,
    /// `<VALUES null="...">`: the value that means null.
    null: Option<String>,
}

impl FieldDef {
    fn is_array(&self) -> bool {
        self.arraysize.as_deref().is_some_and(|a| a != "1")
    }

    fn arrow_type(&self) -> DataType {
        let numeric = !matches!(self.datatype.as_str(), "char" | "unicodeChar");
        if self.is_array() && numeric {
            return DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        }
        match self.datatype.as_str() {
            "boolean" if !self.is_array() => DataType::Boolean,
            "unsignedByte" | "short" if !self.is_array() => DataType::Int16,
            "int" if !self.is_array() => DataType::Int32,
            "long" if !self.is_array() => DataType::Int64,
            "float" if !self.is_array() => DataType::Float32,
            "double" if !self.is_array() => DataType::Float64,
            _ => DataType::Utf8,
        }
    }
}

fn err(name: &str, message: impl Into<String>) -> TapError {
    TapError::Upload {
        name: name.to_string(),
        message: message.into(),
    }
}

/// True for names ADQL accepts undelimited.
fn is_regular_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The tables of a query's `UPLOAD`s, as `(name, uri)` pairs: `param:<part>` is an inline part of
/// the request (`parts`, by part name), `http(s)://...` is fetched with `http`; each at most
/// `limit_bytes`.
pub async fn load(
    http: &reqwest::Client,
    uploads: &[(String, String)],
    parts: &HashMap<String, Bytes>,
    limit_bytes: u64,
) -> Result<Vec<UploadedTable>, TapError> {
    let mut tables = Vec::new();
    for (name, uri) in uploads {
        let bytes = if let Some(part) = uri.strip_prefix("param:") {
            parts
                .get(part)
                .cloned()
                .ok_or_else(|| err(name, format!("no multipart part named {part:?}")))?
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            fetch(http, name, uri, limit_bytes).await?
        } else {
            return Err(err(
                name,
                format!("unsupported URI {uri:?}: use param:<part> or http(s)://"),
            ));
        };
        if bytes.len() as u64 > limit_bytes {
            return Err(err(
                name,
                format!("larger than the upload limit of {limit_bytes} bytes"),
            ));
        }
        tables.push(parse_votable(name, &bytes)?);
    }
    Ok(tables)
}

async fn fetch(
    http: &reqwest::Client,
    name: &str,
    uri: &str,
    limit_bytes: u64,
) -> Result<Bytes, TapError> {
    let response = http
        .get(uri)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| err(name, format!("could not fetch {uri}: {e}")))?;
    if response.content_length().is_some_and(|n| n > limit_bytes) {
        return Err(err(
            name,
            format!("larger than the upload limit of {limit_bytes} bytes"),
        ));
    }
    response
        .bytes()
        .await
        .map_err(|e| err(name, format!("could not fetch {uri}: {e}")))
}

/// Reads an uploaded VOTable's first table.
pub fn parse_votable(name: &str, bytes: &[u8]) -> Result<UploadedTable, TapError> {
    if !is_regular_identifier(name) {
        return Err(err(
            name,
            "the upload name must be a regular ADQL identifier (letters, digits, _)",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| err(name, "the upload is not UTF-8 XML"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut fields: Vec<FieldDef> = Vec::new();
    let mut cells: Vec<Vec<Option<String>>> = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let (
        mut in_td,
        mut td_text,
        mut in_stream,
        mut stream_text,
        mut binary2,
        mut in_table,
        mut seen_table,
    ) = (
        false,
        String::new(),
        false,
        String::new(),
        false,
        false,
        false,
    );
    loop {
        let event = reader
            .read_event()
            .map_err(|e| err(name, format!("not a valid VOTable: {e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e)
                if local(e.name().as_ref()) == b"TABLE" && !seen_table =>
            {
                in_table = true;
                seen_table = true;
            }
            Event::End(e) if local(e.name().as_ref()) == b"TABLE" => in_table = false,
            Event::Start(e) | Event::Empty(e)
                if in_table && local(e.name().as_ref()) == b"FIELD" =>
            {
                let attr = |key: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == key)
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                let field_name = attr(b"name").ok_or_else(|| err(name, "a FIELD has no name"))?;
                fields.push(FieldDef {
                    name: field_name,
                    datatype: attr(b"datatype").unwrap_or_else(|| "char".into()),
                    arraysize: attr(b"arraysize"),
                    xtype: attr(b"xtype"),
                    unit: attr(b"unit").unwrap_or_default(),
                    ucd: attr(b"ucd").unwrap_or_default(),
                    null: None,
                });
            }
            Event::Start(e) | Event::Empty(e)
                if in_table && local(e.name().as_ref()) == b"VALUES" =>
            {
                let null = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"null")
                    .and_then(|a| a.unescape_value().ok().map(|v| v.trim().to_string()));
                if let (Some(field), Some(null)) = (fields.last_mut(), null) {
                    field.null = Some(null);
                }
            }
            Event::Start(e) if in_table && local(e.name().as_ref()) == b"TR" => row.clear(),
            Event::End(e) if in_table && local(e.name().as_ref()) == b"TR" => {
                row.resize(fields.len(), None);
                cells.push(std::mem::take(&mut row));
            }
            Event::Start(e) if in_table && local(e.name().as_ref()) == b"TD" => {
                in_td = true;
                td_text.clear();
            }
            Event::Empty(e) if in_table && local(e.name().as_ref()) == b"TD" => row.push(None),
            Event::End(e) if in_table && local(e.name().as_ref()) == b"TD" => {
                in_td = false;
                row.push(if td_text.is_empty() {
                    None
                } else {
                    Some(std::mem::take(&mut td_text))
                });
            }
            Event::Start(e)
                if in_table
                    && (local(e.name().as_ref()) == b"BINARY2"
                        || local(e.name().as_ref()) == b"BINARY") =>
            {
                binary2 = local(e.name().as_ref()) == b"BINARY2";
            }
            Event::Start(e) if in_table && local(e.name().as_ref()) == b"STREAM" => {
                let encoding = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"encoding");
                if encoding.is_none_or(|a| a.value.as_ref() != b"base64") {
                    return Err(err(name, "only base64 STREAMs can be uploaded"));
                }
                in_stream = true;
            }
            Event::End(e) if local(e.name().as_ref()) == b"STREAM" => in_stream = false,
            Event::Start(e) if in_table && local(e.name().as_ref()) == b"FITS" => {
                return Err(err(
                    name,
                    "FITS-serialised VOTables cannot be uploaded; use TABLEDATA or BINARY2",
                ));
            }
            Event::Text(t) if in_td => {
                td_text.push_str(&t.xml_content().map_err(|e| err(name, e.to_string()))?)
            }
            Event::GeneralRef(r) if in_td => {
                let entity = String::from_utf8_lossy(&r).into_owned();
                let resolved = match entity.as_str() {
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "amp" => "&".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    other if other.starts_with('#') => {
                        let code = other.strip_prefix("#x").map_or_else(
                            || other[1..].parse().ok(),
                            |h| u32::from_str_radix(h, 16).ok(),
                        );
                        code.and_then(char::from_u32)
                            .map(String::from)
                            .unwrap_or_default()
                    }
                    _ => String::new(),
                };
                td_text.push_str(&resolved);
            }
            Event::CData(t) if in_td => td_text.push_str(&String::from_utf8_lossy(&t)),
            Event::Text(t) if in_stream => {
                stream_text.push_str(&String::from_utf8_lossy(t.as_ref()))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if fields.is_empty() {
        return Err(err(name, "the VOTable has no FIELDs"));
    }
    if !stream_text.is_empty() {
        let clean: String = stream_text.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map_err(|e| err(name, format!("bad base64 in STREAM: {e}")))?;
        cells = decode_binary(name, &fields, &raw, binary2)?;
    }
    build(name, &fields, &cells)
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b':').next().unwrap_or(name)
}

/// Decodes BINARY/BINARY2 rows into text cells (then parsed like TABLEDATA).
fn decode_binary(
    name: &str,
    fields: &[FieldDef],
    raw: &[u8],
    binary2: bool,
) -> Result<Vec<Vec<Option<String>>>, TapError> {
    let mut rows = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], TapError> {
        let slice = at
            .checked_add(n)
            .and_then(|end| raw.get(*at..end))
            .ok_or_else(|| err(name, "the binary stream ends in the middle of a row"))?;
        *at += n;
        Ok(slice)
    };
    while at < raw.len() {
        let row_start = at;
        let flags = if binary2 {
            take(&mut at, fields.len().div_ceil(8))?.to_vec()
        } else {
            vec![]
        };
        let mut row = Vec::with_capacity(fields.len());
        for (index, field) in fields.iter().enumerate() {
            let null = binary2 && flags[index / 8] & (0x80 >> (index % 8)) != 0;
            let width: usize = match field.datatype.as_str() {
                "boolean" | "unsignedByte" | "char" => 1,
                "short" | "unicodeChar" => 2,
                "int" | "float" => 4,
                "long" | "double" | "floatComplex" => 8,
                "doubleComplex" => 16,
                other => return Err(err(name, format!("unsupported datatype {other}"))),
            };
            let count = match field.arraysize.as_deref() {
                None | Some("1") => 1,
                Some(size) if size.ends_with('*') => {
                    let n = take(&mut at, 4)?;
                    u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize
                }
                Some(size) => size
                    .split('x')
                    .map(|d| d.parse::<usize>().unwrap_or(1))
                    .try_fold(1usize, usize::checked_mul)
                    .ok_or_else(|| err(name, format!("arraysize {size:?} is too large")))?,
            };
            let bytes = take(
                &mut at,
                width
                    .checked_mul(count)
                    .ok_or_else(|| err(name, "the binary stream ends in the middle of a row"))?,
            )?;
            if null {
                row.push(None);
                continue;
            }
            let value = match field.datatype.as_str() {
                "char" => String::from_utf8_lossy(bytes)
                    .trim_end_matches('\0')
                    .to_string(),
                "unicodeChar" => {
                    let units: Vec<u16> = bytes
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16_lossy(&units)
                        .trim_end_matches('\0')
                        .to_string()
                }
                datatype => bytes
                    .chunks(width)
                    .map(|c| match datatype {
                        "boolean" => (if c[0] == b'T' || c[0] == b't' || c[0] == b'1' {
                            "T"
                        } else {
                            "F"
                        })
                        .to_string(),
                        "unsignedByte" => c[0].to_string(),
                        "short" => i16::from_be_bytes([c[0], c[1]]).to_string(),
                        "int" => i32::from_be_bytes([c[0], c[1], c[2], c[3]]).to_string(),
                        "long" => i64::from_be_bytes(c.try_into().unwrap_or([0; 8])).to_string(),
                        "float" => format!("{:?}", f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                        "double" => {
                            format!("{:?}", f64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                        }
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            row.push(Some(value));
        }
        // FIELDs of no width (arraysize="0") would read rows of nothing forever: found by fuzzing.
        if at == row_start {
            return Err(err(
                name,
                "the FIELDs take no bytes: a BINARY row cannot be read",
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn build(
    name: &str,
    fields: &[FieldDef],
    cells: &[Vec<Option<String>>],
) -> Result<UploadedTable, TapError> {
    // (A short row indexed past its end: found by fuzzing.)
    if let Some((at, row)) = cells
        .iter()
        .enumerate()
        .find(|(_, row)| row.len() != fields.len())
    {
        return Err(err(
            name,
            format!(
                "row {} has {} cells for {} FIELDs",
                at + 1,
                row.len(),
                fields.len()
            ),
        ));
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for (index, field) in fields.iter().enumerate() {
        let null = field.null.as_deref();
        let values = cells.iter().map(|row| {
            row[index]
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty() && Some(*v) != null)
        });
        let bad = |v: &str| {
            err(
                name,
                format!(
                    "column {}: cannot read {v:?} as {}",
                    field.name, field.datatype
                ),
            )
        };
        let array: ArrayRef = match field.arrow_type() {
            DataType::Boolean => {
                let mut b = BooleanBuilder::new();
                for v in values {
                    b.append_option(v.and_then(|v| match v.to_ascii_lowercase().as_str() {
                        "t" | "true" | "1" => Some(true),
                        "f" | "false" | "0" => Some(false),
                        _ => None,
                    }));
                }
                Arc::new(b.finish())
            }
            DataType::Int16 => {
                let mut b = Int16Builder::new();
                for v in values {
                    b.append_option(
                        v.map(|v| v.parse::<i16>().map_err(|_| bad(v)))
                            .transpose()?,
                    );
                }
                Arc::new(b.finish())
            }
            DataType::Int32 => {
                let mut b = Int32Builder::new();
                for v in values {
                    b.append_option(
                        v.map(|v| v.parse::<i32>().map_err(|_| bad(v)))
                            .transpose()?,
                    );
                }
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::new();
                for v in values {
                    b.append_option(
                        v.map(|v| v.parse::<i64>().map_err(|_| bad(v)))
                            .transpose()?,
                    );
                }
                Arc::new(b.finish())
            }
            DataType::Float32 => {
                let mut b = Float32Builder::new();
                for v in values {
                    b.append_option(
                        v.map(|v| parse_float(v).map(|f| f as f32).ok_or_else(|| bad(v)))
                            .transpose()?,
                    );
                }
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::new();
                for v in values {
                    b.append_option(
                        v.map(|v| parse_float(v).ok_or_else(|| bad(v)))
                            .transpose()?,
                    );
                }
                Arc::new(b.finish())
            }
            DataType::List(_) => {
                let mut b = ListBuilder::new(Float64Builder::new());
                for v in values {
                    match v {
                        Some(v) => {
                            for number in v.split_whitespace() {
                                b.values()
                                    .append_value(parse_float(number).ok_or_else(|| bad(number))?);
                            }
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::new();
                for (row, _) in cells.iter().enumerate() {
                    b.append_option(cells[row][index].as_deref());
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            if is_regular_identifier(&f.name) {
                f.name.to_ascii_lowercase()
            } else {
                f.name.clone()
            }
        })
        .collect();
    let schema = Schema::new(
        fields
            .iter()
            .zip(&names)
            .map(|(f, n)| Field::new(n, f.arrow_type(), true))
            .collect::<Vec<_>>(),
    );
    let batch =
        RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| err(name, e.to_string()))?;
    let columns = fields
        .iter()
        .zip(&names)
        .map(|(f, n)| ColumnMeta {
            name: n.clone(),
            arrow_type: Some(f.arrow_type()),
            xtype: f.xtype.clone(),
            descriptor: ColumnDescriptor {
                name: n.clone(),
                unit: f.unit.clone(),
                ucd: f.ucd.clone(),
                ..Default::default()
            },
        })
        .collect();
    Ok(UploadedTable {
        name: name.to_ascii_lowercase(),
        batch,
        columns,
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn tabledata_with_nulls_and_arrays_is_read() {
        let votable = br#"<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
            <FIELD name="ID" datatype="long"/><FIELD name="RA" datatype="double" unit="deg"/>
            <FIELD name="Name with space" datatype="char" arraysize="*"/><FIELD name="p" datatype="double" arraysize="2" xtype="point"/>
            <DATA><TABLEDATA><TR><TD>1</TD><TD>10.5</TD><TD>a &amp; b</TD><TD>1 2</TD></TR><TR><TD/><TD>NaN</TD><TD></TD><TD></TD></TR></TABLEDATA></DATA>
            </TABLE></RESOURCE></VOTABLE>"#;
        let table = parse_votable("mine", votable).expect("parses");
        assert_eq!(table.batch.num_rows(), 2);
        assert_eq!(table.batch.schema().field(0).name(), "id");
        assert_eq!(table.batch.schema().field(2).name(), "Name with space");
        assert!(table.batch.column(0).is_null(1));
        assert_eq!(table.columns[1].descriptor.unit, "deg");
    }

    #[test]
    fn binary2_round_trips_through_the_writer_format() {
        // One row: null flags byte, long 7, double null (flag set).
        let mut raw = vec![0b0100_0000u8];
        raw.extend_from_slice(&7i64.to_be_bytes());
        raw.extend_from_slice(&f64::NAN.to_be_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let votable = format!(
            r#"<VOTABLE><RESOURCE><TABLE><FIELD name="a" datatype="long"/><FIELD name="b" datatype="double"/>
            <DATA><BINARY2><STREAM encoding="base64">{b64}</STREAM></BINARY2></DATA></TABLE></RESOURCE></VOTABLE>"#
        );
        let table = parse_votable("t", votable.as_bytes()).expect("parses");
        assert_eq!(table.batch.num_rows(), 1);
        assert!(table.batch.column(1).is_null(0));
    }

    #[test]
    fn bad_names_and_values_are_refused_with_the_column() {
        assert!(parse_votable("1bad", b"<VOTABLE/>").is_err());
        let votable = br#"<VOTABLE><RESOURCE><TABLE><FIELD name="n" datatype="int"/><DATA><TABLEDATA><TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"#;
        let e = parse_votable("t", votable)
            .expect_err("not an int")
            .to_string();
        assert!(e.contains("column n"), "{e}");
    }
}
