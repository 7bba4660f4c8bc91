//! FITS binary table results (FITS 4.0 §7.3): an empty primary HDU and one BINTABLE.
//!
//! The BINTABLE header needs the row count and fixed string widths before any row, so this writer
//! keeps the (normalised) batches until the footer and writes everything then. Nulls: TNULLn for
//! integers, NaN for floats, `0` for logicals, empty strings. The headers are `colo-astro`'s
//! (`fits::bintable`), the same card writer every FITS colo writes goes through.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use colo_astro::fits::bintable::{self, OutputColumn};
use colo_astro::fits::padded_len;

use super::{Ending, NullFill, ResultWriter, normalise, write_scalar_be};
use crate::catalog::ColumnMeta;
use crate::error::TapError;

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

/// Per-column layout: TFORM, width in bytes, repeat count.
struct Layout {
    tform: String,
    width: usize,
    repeat: usize,
}

impl ResultWriter for FitsWriter {
    fn header(&mut self) -> Result<Vec<u8>, TapError> {
        Ok(Vec::new())
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, TapError> {
        self.batches.push(normalise(batch)?);
        Ok(Vec::new())
    }

    fn footer(&mut self, _ending: &Ending) -> Result<Vec<u8>, TapError> {
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
                .map(|c| {
                    crate::types::canonical_type(c.arrow_type.as_ref().unwrap_or(&DataType::Utf8))
                })
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

        let output_columns: Vec<OutputColumn> = self
            .columns
            .iter()
            .zip(&layouts)
            .zip(&data_types)
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
        let mut out = bintable::primary_header().to_bytes();
        out.extend(bintable::table_header(&output_columns, row_bytes, rows, "RESULTS").to_bytes());
        for batch in &self.batches {
            let len = batch.first().map_or(0, |c| c.len());
            for row in 0..len {
                for (column, layout) in batch.iter().zip(&layouts) {
                    write_cell(column, row, layout, &mut out);
                }
            }
        }
        out.resize(padded_len(out.len() as u64) as usize, 0);
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
