//! A FITS binary table (its first BINTABLE, laid out by `colo-astro`) as one Arrow record batch,
//! for catalogue ingest.
//!
//! Scalar columns of the common types (L, B, I, J, K, E, D) and fixed-width strings (rA) are read;
//! TSCAL/TZERO are applied to integers (so unsigned columns come out right: `TZERO = 32768` on `I`
//! is a `uint16`); TNULL marks integer nulls, NaN real ones. Vector columns and variable-length
//! arrays are skipped, named in a warning, and in the error when nothing else is left.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use colo_astro::AstroError;
use colo_astro::fits::bintable::{BinColumn, BinTable};

/// The first binary table of the FITS file `bytes` as one batch; errors are messages for the
/// operator.
pub fn read_bintable(name: &str, bytes: &[u8]) -> Result<RecordBatch, String> {
    // The caller names the file in its own message: keep only what is wrong.
    let table = BinTable::first_in(name, bytes).map_err(|e| match e {
        AstroError::Fits { message, .. } => message,
        other => other.to_string(),
    })?;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut skipped = Vec::new();
    for column in &table.columns {
        match column_array(&table, column) {
            Some(array) => {
                fields.push(Field::new(&column.name, array.data_type().clone(), true));
                arrays.push(array);
            }
            None => skipped.push(format!("{} ({})", column.name, column.tform)),
        }
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
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// One column as an Arrow array, or `None` for what is not read (vectors, bits, complex, arrays).
fn column_array(table: &BinTable<'_>, column: &BinColumn) -> Option<ArrayRef> {
    let rows = 0..table.rows;
    let cell = |row: usize| table.cell(row, column);
    if column.code == b'A' {
        let mut b = StringBuilder::new();
        rows.for_each(|r| b.append_value(column.text(cell(r))));
        return Some(Arc::new(b.finish()));
    }
    if !column.is_scalar() {
        return None;
    }
    let (scale, zero) = (column.scale, column.zero);
    Some(match column.code {
        b'L' => {
            let mut b = BooleanBuilder::new();
            rows.for_each(|r| b.append_option(column.logical(cell(r))));
            Arc::new(b.finish())
        }
        b'B' | b'I' | b'J' | b'K' => {
            let raw = |r: usize| column.int(cell(r)).filter(|v| Some(*v) != column.null);
            let scaled = scale != 1.0 || (zero != 0.0 && zero.fract() != 0.0);
            if scaled {
                let mut b = Float64Builder::new();
                rows.for_each(|r| b.append_option(raw(r).map(|v| v as f64 * scale + zero)));
                return Some(Arc::new(b.finish()));
            }
            // An integer TZERO shifts the stored values (FITS 4.0 Table 19: unsigned integers).
            let offset = zero as i64;
            let values = rows.map(|r| raw(r).map(|v| v.wrapping_add(offset)));
            match (column.code, offset) {
                (b'B', _) | (b'I', 0) => {
                    let mut b = Int16Builder::new();
                    values.for_each(|v| b.append_option(v.map(|v| v as i16)));
                    Arc::new(b.finish())
                }
                (b'I', _) | (b'J', 0) => {
                    let mut b = Int32Builder::new();
                    values.for_each(|v| b.append_option(v.map(|v| v as i32)));
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = Int64Builder::new();
                    values.for_each(|v| b.append_option(v));
                    Arc::new(b.finish())
                }
            }
        }
        b'E' => {
            let mut b = Float32Builder::new();
            rows.for_each(|r| {
                let v = column.float(cell(r)).filter(|v| !v.is_nan());
                b.append_option(v.map(|v| (v * scale + zero) as f32));
            });
            Arc::new(b.finish())
        }
        b'D' => {
            let mut b = Float64Builder::new();
            rows.for_each(|r| {
                let v = column.float(cell(r)).filter(|v| !v.is_nan());
                b.append_option(v.map(|v| v * scale + zero));
            });
            Arc::new(b.finish())
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int32Type, Int64Type};
    use colo_astro::fits::bintable::{OutputColumn, primary_header, table_header};
    use colo_astro::fits::padded_len;

    fn column(name: &str, tform: &str) -> OutputColumn {
        OutputColumn {
            name: name.into(),
            tform: tform.into(),
            ..Default::default()
        }
    }

    /// A file with an unsigned 16-bit column (I + TZERO 32768), a nullable 64-bit one, a real,
    /// a string and a vector column that is skipped.
    #[test]
    fn scalar_columns_become_arrow_and_vectors_are_skipped() {
        let mut header = table_header(
            &[
                column("u16", "I"),
                OutputColumn {
                    null: Some(-1),
                    ..column("id", "K")
                },
                column("mag", "E"),
                column("name", "4A"),
                column("vec", "2D"),
            ],
            2 + 8 + 4 + 4 + 16,
            2,
            "T",
        );
        header.set("TZERO1", colo_astro::fits::Value::Int(32768), "");
        let mut file = primary_header().to_bytes();
        file.extend(header.to_bytes());
        for (raw_u16, id, mag, name) in [
            (-32768i16, 5i64, 1.5f32, "ab"),
            (32767, -1, f32::NAN, "cdef"),
        ] {
            file.extend(raw_u16.to_be_bytes());
            file.extend(id.to_be_bytes());
            file.extend(mag.to_be_bytes());
            let mut text = name.as_bytes().to_vec();
            text.resize(4, b' ');
            file.extend(text);
            file.extend([0u8; 16]);
        }
        file.resize(padded_len(file.len() as u64) as usize, 0);

        let batch = read_bintable("t.fits", &file).expect("a table");
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["u16", "id", "mag", "name"]);
        let u16s = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!((u16s.value(0), u16s.value(1)), (0, 65535));
        let ids = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), 5);
        assert!(ids.is_null(1), "TNULL marks a null");
        let mags = batch.column(2).as_primitive::<Float32Type>();
        assert_eq!(mags.value(0), 1.5);
        assert!(mags.is_null(1), "NaN is null");
        assert_eq!(batch.column(3).as_string::<i32>().value(1), "cdef");
    }

    #[test]
    fn a_table_of_vectors_only_is_refused_with_their_names() {
        let mut file = primary_header().to_bytes();
        file.extend(table_header(&[column("spectrum", "100E")], 400, 0, "T").to_bytes());
        let e = read_bintable("v.fits", &file).expect_err("nothing readable");
        assert!(e.contains("spectrum (100E)"), "{e}");
    }
}
