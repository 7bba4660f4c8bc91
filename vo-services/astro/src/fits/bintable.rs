//! Binary tables (FITS 4.0 §7.3), both ways, on the one [`Header`] type.
//!
//! Reading: [`BinTable::first_in`] finds the first `BINTABLE` of a file held in memory and lays out
//! its columns from `TFORMn` (repeat count, type code, bytes in the row) with `TTYPEn`, `TUNITn`,
//! `TSCALn`/`TZEROn` and `TNULLn`; cells are decoded by type ([`BinColumn::int`],
//! [`BinColumn::float`], [`BinColumn::logical`], [`BinColumn::text`]). Catalogue ingest turns those
//! into Arrow columns (`colo-tap`).
//!
//! Writing: [`primary_header`] and [`table_header`] give the headers of a file with an empty
//! primary HDU and one table, as query results in FITS are written; rows are big-endian cells and
//! the data unit is padded with zeros ([`super::padded_len`]).

use super::header::{self, Header, Value};
use super::padded_len;
use crate::error::AstroError;

/// One column of a binary table as its header lays it out.
#[derive(Debug, Clone, PartialEq)]
pub struct BinColumn {
    /// `TTYPEn`, or `colN` when absent.
    pub name: String,
    /// `TFORMn` as written.
    pub tform: String,
    /// The type letter of `TFORMn` (`L`, `B`, `I`, `J`, `K`, `E`, `D`, `A`, ...).
    pub code: u8,
    /// Values per cell (string width for `A`).
    pub repeat: usize,
    /// Offset of the cell within the row, bytes.
    pub offset: usize,
    /// Bytes of the cell.
    pub size: usize,
    /// `TSCALn` (1 when absent).
    pub scale: f64,
    /// `TZEROn` (0 when absent).
    pub zero: f64,
    /// `TNULLn`: the stored integer that means null.
    pub null: Option<i64>,
    /// `TUNITn`.
    pub unit: Option<String>,
}

impl BinColumn {
    /// Whether the cell holds one value (not a vector, not a string).
    pub fn is_scalar(&self) -> bool {
        self.repeat == 1 && self.code != b'A'
    }

    /// An integer cell (`B`, `I`, `J`, `K`) as stored, before TSCAL/TZERO; `None` for other types.
    pub fn int(&self, cell: &[u8]) -> Option<i64> {
        let c = cell;
        Some(match self.code {
            b'B' => i64::from(*c.first()?),
            b'I' => i64::from(i16::from_be_bytes(c.get(..2)?.try_into().ok()?)),
            b'J' => i64::from(i32::from_be_bytes(c.get(..4)?.try_into().ok()?)),
            b'K' => i64::from_be_bytes(c.get(..8)?.try_into().ok()?),
            _ => return None,
        })
    }

    /// A real cell (`E`, `D`) as stored, before TSCAL/TZERO (NaN means null); `None` for other types.
    pub fn float(&self, cell: &[u8]) -> Option<f64> {
        Some(match self.code {
            b'E' => f64::from(f32::from_be_bytes(cell.get(..4)?.try_into().ok()?)),
            b'D' => f64::from_be_bytes(cell.get(..8)?.try_into().ok()?),
            _ => return None,
        })
    }

    /// A logical cell: `T`, `F`, or null (anything else, FITS 4.0 §7.3.3.1).
    pub fn logical(&self, cell: &[u8]) -> Option<bool> {
        match cell.first() {
            Some(b'T') => Some(true),
            Some(b'F') => Some(false),
            _ => None,
        }
    }

    /// A character cell, without trailing NULs and blanks.
    pub fn text(&self, cell: &[u8]) -> String {
        String::from_utf8_lossy(cell)
            .trim_end_matches(['\0', ' '])
            .to_string()
    }
}

/// The first binary table of a FITS file held in memory.
#[derive(Debug)]
pub struct BinTable<'a> {
    /// The table's header.
    pub header: Header,
    /// Its columns, in order.
    pub columns: Vec<BinColumn>,
    /// Rows (`NAXIS2`).
    pub rows: usize,
    /// Bytes per row (`NAXIS1`).
    pub row_bytes: usize,
    data: &'a [u8],
}

impl<'a> BinTable<'a> {
    /// Finds the first `XTENSION = 'BINTABLE'` of `bytes` (a whole file) and lays out its columns.
    pub fn first_in(name: &str, bytes: &'a [u8]) -> Result<BinTable<'a>, AstroError> {
        let bad = |message: String| AstroError::fits(name, message);
        let mut at = 0usize;
        loop {
            if at >= bytes.len() {
                return Err(bad(
                    "no binary table (XTENSION = 'BINTABLE') in the FITS file".into(),
                ));
            }
            let (header, header_bytes) = match header::parse(&bytes[at..]) {
                Ok(header::Parsed::Complete(h, len)) => (h, len as usize),
                Ok(header::Parsed::NeedMore) => {
                    return Err(bad("the FITS header ends before END".into()));
                }
                Err(message) => return Err(bad(message)),
            };
            let data = at + header_bytes;
            if header.text("XTENSION").as_deref() == Some("BINTABLE") {
                return Self::lay_out(name, header, &bytes[data..]);
            }
            at = data + padded_len(header.data_bytes()) as usize;
        }
    }

    fn lay_out(name: &str, header: Header, data: &'a [u8]) -> Result<BinTable<'a>, AstroError> {
        let bad = |message: String| AstroError::fits(name, message);
        let row_bytes = header.int("NAXIS1").unwrap_or(0).max(0) as usize;
        let rows = header.int("NAXIS2").unwrap_or(0).max(0) as usize;
        let fields = header.int("TFIELDS").unwrap_or(0).max(0) as usize;
        if data.len() < row_bytes * rows {
            return Err(bad("the FITS table is shorter than its header says".into()));
        }
        let mut columns = Vec::with_capacity(fields);
        let mut offset = 0usize;
        for n in 1..=fields {
            let tform = header
                .text(&format!("TFORM{n}"))
                .ok_or_else(|| bad(format!("TFORM{n} is missing")))?;
            let (repeat, code) =
                parse_tform(&tform).ok_or_else(|| bad(format!("bad TFORM{n} {tform:?}")))?;
            let width = match code {
                b'L' | b'B' | b'A' | b'X' => 1,
                b'I' => 2,
                b'J' | b'E' => 4,
                b'K' | b'D' | b'C' | b'P' => 8,
                b'M' | b'Q' => 16,
                _ => return Err(bad(format!("unknown TFORM{n} {tform:?}"))),
            };
            let size = if code == b'X' {
                repeat.div_ceil(8)
            } else {
                repeat * width
            };
            columns.push(BinColumn {
                name: header
                    .text(&format!("TTYPE{n}"))
                    .unwrap_or_else(|| format!("col{n}")),
                tform,
                code,
                repeat,
                offset,
                size,
                scale: header.float(&format!("TSCAL{n}")).unwrap_or(1.0),
                zero: header.float(&format!("TZERO{n}")).unwrap_or(0.0),
                null: header.int(&format!("TNULL{n}")),
                unit: header.text(&format!("TUNIT{n}")),
            });
            offset += size;
        }
        if offset > row_bytes {
            return Err(bad(format!(
                "the columns need {offset} bytes per row, NAXIS1 says {row_bytes}"
            )));
        }
        Ok(BinTable {
            header,
            columns,
            rows,
            row_bytes,
            data,
        })
    }

    /// The bytes of one cell.
    pub fn cell(&self, row: usize, column: &BinColumn) -> &'a [u8] {
        let start = row * self.row_bytes + column.offset;
        &self.data[start..start + column.size]
    }
}

/// `rT` of a TFORM: the repeat count (1 when absent) and the type letter.
fn parse_tform(tform: &str) -> Option<(usize, u8)> {
    let split = tform.find(|c: char| c.is_ascii_alphabetic())?;
    let repeat = if split == 0 {
        1
    } else {
        tform[..split].parse().ok()?
    };
    Some((repeat, tform.as_bytes()[split]))
}

/// A column of a table to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    /// `TFORMn`, e.g. `D`, `K`, `12A`, `3D`.
    pub tform: String,
    pub unit: String,
    pub ucd: String,
    /// `TNULLn` for integer columns.
    pub null: Option<i64>,
}

/// The primary header of a file whose data are in extensions (no data of its own).
pub fn primary_header() -> Header {
    let mut h = Header::default();
    h.set("SIMPLE", Value::Bool(true), "conforms to FITS standard");
    h.set("BITPIX", Value::Int(8), "");
    h.set("NAXIS", Value::Int(0), "");
    h.set("EXTEND", Value::Bool(true), "");
    h
}

/// The header of a binary table with these columns, `row_bytes` per row and `rows` rows.
pub fn table_header(
    columns: &[OutputColumn],
    row_bytes: usize,
    rows: usize,
    extname: &str,
) -> Header {
    let mut h = Header::default();
    h.set(
        "XTENSION",
        Value::Str("BINTABLE".into()),
        "binary table extension",
    );
    h.set("BITPIX", Value::Int(8), "");
    h.set("NAXIS", Value::Int(2), "");
    h.set("NAXIS1", Value::Int(row_bytes as i64), "bytes per row");
    h.set("NAXIS2", Value::Int(rows as i64), "rows");
    h.set("PCOUNT", Value::Int(0), "");
    h.set("GCOUNT", Value::Int(1), "");
    h.set("TFIELDS", Value::Int(columns.len() as i64), "");
    h.set("EXTNAME", Value::Str(extname.into()), "");
    for (i, column) in columns.iter().enumerate() {
        let n = i + 1;
        h.set(&format!("TTYPE{n}"), Value::Str(column.name.clone()), "");
        h.set(&format!("TFORM{n}"), Value::Str(column.tform.clone()), "");
        if !column.unit.is_empty() {
            h.set(&format!("TUNIT{n}"), Value::Str(column.unit.clone()), "");
        }
        if !column.ucd.is_empty() {
            h.set(&format!("TUCD{n}"), Value::Str(column.ucd.clone()), "");
        }
        if let Some(null) = column.null {
            h.set(&format!("TNULL{n}"), Value::Int(null), "");
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table written with [`table_header`] reads back with the same layout and cells.
    #[test]
    fn a_written_table_reads_back() {
        let columns = [
            OutputColumn {
                name: "id".into(),
                tform: "K".into(),
                null: Some(i64::MIN),
                ..Default::default()
            },
            OutputColumn {
                name: "ra".into(),
                tform: "D".into(),
                unit: "deg".into(),
                ..Default::default()
            },
            OutputColumn {
                name: "name".into(),
                tform: "5A".into(),
                ..Default::default()
            },
            OutputColumn {
                name: "ok".into(),
                tform: "L".into(),
                ..Default::default()
            },
        ];
        let mut file = primary_header().to_bytes();
        file.extend(table_header(&columns, 8 + 8 + 5 + 1, 2, "RESULTS").to_bytes());
        let mut data = Vec::new();
        for (id, ra, name, ok) in [(7i64, 10.5f64, "ab", b'T'), (i64::MIN, -1.25, "vega", b'F')] {
            data.extend(id.to_be_bytes());
            data.extend(ra.to_be_bytes());
            let mut text = name.as_bytes().to_vec();
            text.resize(5, 0);
            data.extend(text);
            data.push(ok);
        }
        data.resize(padded_len(data.len() as u64) as usize, 0);
        assert_eq!(data.len() % 2880, 0);
        file.extend(data);

        let table = BinTable::first_in("t.fits", &file).expect("a table");
        assert_eq!((table.rows, table.row_bytes), (2, 22));
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "ra", "name", "ok"]);
        let [id, ra, name, ok] = &table.columns[..] else {
            panic!("four columns")
        };
        assert_eq!(id.int(table.cell(0, id)), Some(7));
        assert_eq!(id.null, Some(i64::MIN));
        assert_eq!(ra.float(table.cell(1, ra)), Some(-1.25));
        assert_eq!(ra.unit.as_deref(), Some("deg"));
        assert_eq!(name.text(table.cell(1, name)), "vega");
        assert_eq!((name.repeat, name.offset), (5, 16));
        assert_eq!(ok.logical(table.cell(0, ok)), Some(true));
        assert!(ra.is_scalar() && !name.is_scalar());
    }

    #[test]
    fn files_without_a_table_or_with_short_data_are_refused() {
        let image_only = primary_header().to_bytes();
        let e = BinTable::first_in("i.fits", &image_only).expect_err("no table");
        assert!(e.to_string().contains("no binary table"), "{e}");
        let mut short = primary_header().to_bytes();
        let columns = [OutputColumn {
            name: "x".into(),
            tform: "D".into(),
            ..Default::default()
        }];
        short.extend(table_header(&columns, 8, 1000, "T").to_bytes());
        short.extend([0u8; 2880]);
        let e = BinTable::first_in("s.fits", &short).expect_err("short");
        assert!(e.to_string().contains("shorter than its header"), "{e}");
    }
}
