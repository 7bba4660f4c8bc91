//! Reads the first binary table of a FITS file (FITS 4.0 §7.3) into Arrow, for catalogue ingest.
//!
//! Scalar columns of the common types (L, B, I, J, K, E, D) and fixed-width strings (rA) are read;
//! TSCAL/TZERO are applied to integers (so unsigned columns come out right); TNULL marks nulls.
//! Vector columns and variable-length arrays are skipped with their names in the error if nothing
//! else is left.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};

const BLOCK: usize = 2880;

struct Header {
    cards: Vec<(String, String)>,
    /// Bytes from the header start to the data start.
    length: usize,
}

impl Header {
    fn get(&self, key: &str) -> Option<&str> {
        self.cards
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    fn float(&self, key: &str) -> Option<f64> {
        self.get(key)
            .and_then(|v| v.trim().replace('D', "E").parse().ok())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| v.trim().trim_matches('\'').trim().to_string())
    }
}

fn read_header(bytes: &[u8], start: usize) -> Result<Header, String> {
    let mut cards = Vec::new();
    let mut at = start;
    loop {
        let card = bytes
            .get(at..at + 80)
            .ok_or("the FITS header ends before END")?;
        at += 80;
        let card = String::from_utf8_lossy(card);
        let key = card[..8].trim().to_string();
        if key == "END" {
            break;
        }
        if card.get(8..10) == Some("= ") {
            let value = &card[10..];
            // Strip a comment outside quotes.
            let mut in_quote = false;
            let mut end = value.len();
            for (i, c) in value.char_indices() {
                match c {
                    '\'' => in_quote = !in_quote,
                    '/' if !in_quote => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            cards.push((key, value[..end].trim().to_string()));
        }
    }
    let length = (at - start).div_ceil(BLOCK) * BLOCK;
    Ok(Header { cards, length })
}

fn data_size(header: &Header) -> usize {
    let naxis = header.int("NAXIS").unwrap_or(0);
    if naxis == 0 {
        return 0;
    }
    let mut size: i64 = (1..=naxis)
        .map(|i| header.int(&format!("NAXIS{i}")).unwrap_or(0))
        .product();
    size = (size + header.int("PCOUNT").unwrap_or(0)) * header.int("GCOUNT").unwrap_or(1);
    let bits = header.int("BITPIX").unwrap_or(8).unsigned_abs() as i64;
    ((size * bits / 8) as usize).div_ceil(BLOCK) * BLOCK
}

/// The first BINTABLE of `bytes` as one record batch.
pub fn read_bintable(bytes: &[u8]) -> Result<RecordBatch, String> {
    let mut at = 0;
    let header = loop {
        if at >= bytes.len() {
            return Err("no binary table (XTENSION = 'BINTABLE') in the FITS file".into());
        }
        let header = read_header(bytes, at)?;
        if header.text("XTENSION").as_deref() == Some("BINTABLE") {
            break header;
        }
        at += header.length + data_size(&header);
    };
    let data = at + header.length;
    let row_bytes = header.int("NAXIS1").unwrap_or(0) as usize;
    let rows = header.int("NAXIS2").unwrap_or(0) as usize;
    let fields = header.int("TFIELDS").unwrap_or(0) as usize;
    if bytes.len() < data + row_bytes * rows {
        return Err("the FITS table is shorter than its header says".into());
    }
    let mut offset = 0usize;
    let mut out_fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut skipped = Vec::new();
    for n in 1..=fields {
        let name = header
            .text(&format!("TTYPE{n}"))
            .unwrap_or_else(|| format!("col{n}"));
        let tform = header
            .text(&format!("TFORM{n}"))
            .ok_or(format!("TFORM{n} is missing"))?;
        let split = tform
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or(format!("bad TFORM{n} {tform:?}"))?;
        let repeat: usize = if split == 0 {
            1
        } else {
            tform[..split]
                .parse()
                .map_err(|_| format!("bad TFORM{n} {tform:?}"))?
        };
        let code = tform.as_bytes()[split];
        let width = match code {
            b'L' | b'B' | b'A' | b'X' => 1,
            b'I' => 2,
            b'J' | b'E' => 4,
            b'K' | b'D' | b'C' | b'P' => 8,
            b'M' | b'Q' => 16,
            _ => return Err(format!("unknown TFORM{n} {tform:?}")),
        };
        let size = if code == b'X' {
            repeat.div_ceil(8)
        } else {
            repeat * width
        };
        let scale = header.float(&format!("TSCAL{n}")).unwrap_or(1.0);
        let zero = header.float(&format!("TZERO{n}")).unwrap_or(0.0);
        let null = header.int(&format!("TNULL{n}"));
        let cell = |row: usize| {
            &bytes[data + row * row_bytes + offset..data + row * row_bytes + offset + size]
        };
        let array: Option<ArrayRef> = match (code, repeat) {
            (b'A', _) => {
                let mut b = StringBuilder::new();
                for r in 0..rows {
                    let text = String::from_utf8_lossy(cell(r))
                        .trim_end_matches(['\0', ' '])
                        .to_string();
                    b.append_value(text);
                }
                Some(Arc::new(b.finish()))
            }
            (_, 1) => match code {
                b'L' => {
                    let mut b = BooleanBuilder::new();
                    for r in 0..rows {
                        b.append_option(match cell(r)[0] {
                            b'T' => Some(true),
                            b'F' => Some(false),
                            _ => None,
                        });
                    }
                    Some(Arc::new(b.finish()))
                }
                b'B' | b'I' | b'J' | b'K' => {
                    let raw = |r: usize| -> i64 {
                        let c = cell(r);
                        match code {
                            b'B' => i64::from(c[0]),
                            b'I' => i64::from(i16::from_be_bytes([c[0], c[1]])),
                            b'J' => i64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                            _ => {
                                i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                            }
                        }
                    };
                    let scaled = scale != 1.0 || (zero != 0.0 && zero.fract() != 0.0);
                    if scaled {
                        let mut b = Float64Builder::new();
                        for r in 0..rows {
                            let v = raw(r);
                            b.append_option((Some(v) != null).then_some(v as f64 * scale + zero));
                        }
                        Some(Arc::new(b.finish()))
                    } else {
                        let offset_zero = zero as i64;
                        let values = (0..rows).map(|r| {
                            let v = raw(r);
                            (Some(v) != null).then(|| v.wrapping_add(offset_zero))
                        });
                        match (code, offset_zero) {
                            (b'B', _) | (b'I', 0) => {
                                let mut b = Int16Builder::new();
                                values.for_each(|v| b.append_option(v.map(|v| v as i16)));
                                Some(Arc::new(b.finish()))
                            }
                            (b'I', _) | (b'J', 0) => {
                                let mut b = Int32Builder::new();
                                values.for_each(|v| b.append_option(v.map(|v| v as i32)));
                                Some(Arc::new(b.finish()))
                            }
                            _ => {
                                let mut b = Int64Builder::new();
                                values.for_each(|v| b.append_option(v));
                                Some(Arc::new(b.finish()))
                            }
                        }
                    }
                }
                b'E' => {
                    let mut b = Float32Builder::new();
                    for r in 0..rows {
                        let c = cell(r);
                        let v = f32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                        b.append_option(
                            (!v.is_nan()).then(|| (f64::from(v) * scale + zero) as f32),
                        );
                    }
                    Some(Arc::new(b.finish()))
                }
                b'D' => {
                    let mut b = Float64Builder::new();
                    for r in 0..rows {
                        let c = cell(r);
                        let v =
                            f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                        b.append_option((!v.is_nan()).then_some(v * scale + zero));
                    }
                    Some(Arc::new(b.finish()))
                }
                _ => None,
            },
            _ => None,
        };
        match array {
            Some(array) => {
                out_fields.push(Field::new(name, array.data_type().clone(), true));
                arrays.push(array);
            }
            None => skipped.push(format!("{name} ({tform})")),
        }
        offset += size;
    }
    if arrays.is_empty() {
        return Err(format!(
            "no readable columns (skipped vector or variable-length columns: {})",
            skipped.join(", ")
        ));
    }
    if !skipped.is_empty() {
        tracing::warn!(columns = %skipped.join(", "), "FITS vector columns skipped");
    }
    RecordBatch::try_new(Arc::new(Schema::new(out_fields)), arrays).map_err(|e| e.to_string())
}
