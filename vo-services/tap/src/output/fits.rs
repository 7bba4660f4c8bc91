//! FITS binary table results (FITS 4.0 §7.3): an empty primary HDU and one BINTABLE.
//!
//! The BINTABLE header needs the row count and fixed string widths before any row, so this writer
//! keeps the (normalised) batches until the footer and writes everything then. Nulls: TNULLn for
//! integers, NaN for floats, `0` for logicals, empty strings.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::{Ending, NullFill, ResultWriter, normalise, write_scalar_be};
use crate::catalog::ColumnMeta;
use crate::error::VoError;

const BLOCK: usize = 2880;

/// Collects rows, writes the FITS file at the end.
pub struct FitsWriter {
    columns: Vec<ColumnMeta>,
    batches: Vec<Vec<ArrayRef>>,
}

impl FitsWriter {
    /// A writer for these result columns.
    pub fn new(columns: &[ColumnMeta]) -> Self {
        Self {
            columns: columns.to_vec(),
            batches: Vec::new(),
        }
    }
}

fn card(key: &str, value: &str, comment: &str) -> String {
    let text = if value.is_empty() {
        format!("{key:<8}")
    } else if comment.is_empty() {
        format!("{key:<8}= {value:>20}")
    } else {
        format!("{key:<8}= {value:>20} / {comment}")
    };
    let mut card: String = text
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(80)
        .collect();
    while card.len() < 80 {
        card.push(' ');
    }
    card
}

fn string_value(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(66)
        .collect();
    format!("'{:<8}'", clean.replace('\'', "''"))
}

fn pad(out: &mut Vec<u8>, fill: u8) {
    let rest = out.len() % BLOCK;
    if rest != 0 {
        out.resize(out.len() + BLOCK - rest, fill);
    }
}

/// Per-column layout: TFORM, width in bytes, repeat count.
struct Layout {
    tform: String,
    width: usize,
    repeat: usize,
}

impl ResultWriter for FitsWriter {
    fn header(&mut self) -> Result<Vec<u8>, VoError> {
        Ok(Vec::new())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, VoError> {
        self.batches.push(normalise(batch)?);
        Ok(Vec::new())
    }

    fn footer(&mut self, _ending: &Ending) -> Result<Vec<u8>, VoError> {
        let rows: usize = self
            .batches
            .iter()
            .map(|b| b.first().map_or(0, |c| c.len()))
            .sum();
        let data_types: Vec<DataType> = match self.batches.first() {
            Some(batch) => batch.iter().map(|c| c.data_type().clone()).collect(),
            None => self
                .columns
                .iter()
                .map(|c| super::canonical_type(c.arrow_type.as_ref().unwrap_or(&DataType::Utf8)))
                .collect(),
        };
        let layouts: Vec<Layout> = data_types
            .iter()
            .enumerate()
            .map(|(i, data_type)| {
                let max_len = |f: &dyn Fn(&ArrayRef, usize) -> usize| {
                    self.batches
                        .iter()
                        .flat_map(|b| (0..b[i].len()).map(move |r| (b, r)))
                        .map(|(b, r)| f(&b[i], r))
                        .max()
                        .unwrap_or(0)
                };
                match data_type {
                    DataType::Boolean => Layout {
                        tform: "L".into(),
                        width: 1,
                        repeat: 1,
                    },
                    DataType::Int16 => Layout {
                        tform: "I".into(),
                        width: 2,
                        repeat: 1,
                    },
                    DataType::Int32 => Layout {
                        tform: "J".into(),
                        width: 4,
                        repeat: 1,
                    },
                    DataType::Int64 => Layout {
                        tform: "K".into(),
                        width: 8,
                        repeat: 1,
                    },
                    DataType::Float32 => Layout {
                        tform: "E".into(),
                        width: 4,
                        repeat: 1,
                    },
                    DataType::Float64 => Layout {
                        tform: "D".into(),
                        width: 8,
                        repeat: 1,
                    },
                    DataType::List(_) => {
                        let n = max_len(&|c, r| {
                            if c.is_null(r) {
                                0
                            } else {
                                c.as_list::<i32>().value(r).len()
                            }
                        })
                        .max(1);
                        Layout {
                            tform: format!("{n}D"),
                            width: 8 * n,
                            repeat: n,
                        }
                    }
                    _ => {
                        let n = max_len(&|c, r| {
                            if c.is_null(r) {
                                0
                            } else {
                                c.as_string::<i32>().value(r).len()
                            }
                        })
                        .max(1);
                        Layout {
                            tform: format!("{n}A"),
                            width: n,
                            repeat: n,
                        }
                    }
                }
            })
            .collect();
        let row_bytes: usize = layouts.iter().map(|l| l.width).sum();

        let mut out = Vec::new();
        for c in [
            card("SIMPLE", "T", "conforms to FITS standard"),
            card("BITPIX", "8", ""),
            card("NAXIS", "0", ""),
            card("EXTEND", "T", ""),
            card("END", "", ""),
        ] {
            out.extend_from_slice(c.as_bytes());
        }
        pad(&mut out, b' ');
        let mut header = vec![
            card(
                "XTENSION",
                &string_value("BINTABLE"),
                "binary table extension",
            ),
            card("BITPIX", "8", ""),
            card("NAXIS", "2", ""),
            card("NAXIS1", &row_bytes.to_string(), "bytes per row"),
            card("NAXIS2", &rows.to_string(), "rows"),
            card("PCOUNT", "0", ""),
            card("GCOUNT", "1", ""),
            card("TFIELDS", &layouts.len().to_string(), ""),
            card("EXTNAME", &string_value("RESULTS"), ""),
        ];
        for (i, (column, layout)) in self.columns.iter().zip(&layouts).enumerate() {
            let n = i + 1;
            header.push(card(
                &format!("TTYPE{n}"),
                &string_value(column.name.trim_matches('"')),
                "",
            ));
            header.push(card(&format!("TFORM{n}"), &string_value(&layout.tform), ""));
            if !column.descriptor.unit.is_empty() {
                header.push(card(
                    &format!("TUNIT{n}"),
                    &string_value(&column.descriptor.unit),
                    "",
                ));
            }
            if !column.descriptor.ucd.is_empty() {
                header.push(card(
                    &format!("TUCD{n}"),
                    &string_value(&column.descriptor.ucd),
                    "",
                ));
            }
            let null = match data_types[i] {
                DataType::Int16 => Some(i64::from(i16::MIN)),
                DataType::Int32 => Some(i64::from(i32::MIN)),
                DataType::Int64 => Some(i64::MIN),
                _ => None,
            };
            if let Some(null) = null {
                header.push(card(&format!("TNULL{n}"), &null.to_string(), ""));
            }
        }
        header.push(card("END", "", ""));
        for c in header {
            out.extend_from_slice(c.as_bytes());
        }
        pad(&mut out, b' ');

        for batch in &self.batches {
            let len = batch.first().map_or(0, |c| c.len());
            for row in 0..len {
                for (column, layout) in batch.iter().zip(&layouts) {
                    write_cell(column, row, layout, &mut out);
                }
            }
        }
        pad(&mut out, 0);
        self.batches.clear();
        Ok(out)
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
