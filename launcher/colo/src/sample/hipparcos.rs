//! Hipparcos new reduction (van Leeuwen 2007, CDS I/311 `hip2.dat`) → Parquet, for the sample volume.
//! Each line holds 41 whitespace-separated values; the first 26 are named below (CDS ReadMe of I/311),
//! the last 15 are the upper-triangular weight matrix (kept out). RA/Dec come in radians; `ra_deg` and
//! `dec_deg` are added in degrees (ICRS, epoch J1991.25).

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::Arc;

/// (column name, integer?) for the first 26 values of a line.
const COLUMNS: [(&str, bool); 26] = [
    ("hip", true),
    ("sn", true),
    ("so", true),
    ("nc", true),
    ("ra_rad", false),
    ("dec_rad", false),
    ("plx_mas", false),
    ("pmra_mas_yr", false),
    ("pmdec_mas_yr", false),
    ("e_ra_mas", false),
    ("e_dec_mas", false),
    ("e_plx_mas", false),
    ("e_pmra_mas_yr", false),
    ("e_pmdec_mas_yr", false),
    ("ntr", true),
    ("f2", false),
    ("f1", true),
    ("var", false),
    ("ic", true),
    ("hpmag", false),
    ("e_hpmag", false),
    ("s_hp", false),
    ("va", true),
    ("b_v", false),
    ("e_b_v", false),
    ("v_i", false),
];

pub const VALUES_PER_LINE: usize = 41;

/// Convert the text of `hip2.dat` to Parquet, written to `out`. Returns the number of rows.
pub fn convert(text: &str, out: impl Write + Send) -> Result<usize, String> {
    let mut ints: Vec<Vec<i32>> = vec![Vec::new(); COLUMNS.len()];
    let mut floats: Vec<Vec<f64>> = vec![Vec::new(); COLUMNS.len()];
    let (mut ra_deg, mut dec_deg) = (Vec::new(), Vec::new());
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let values: Vec<&str> = line.split_whitespace().collect();
        if values.len() != VALUES_PER_LINE {
            return Err(format!(
                "hip2.dat line {}: {} values, expected {VALUES_PER_LINE}",
                n + 1,
                values.len()
            ));
        }
        for (i, (name, is_int)) in COLUMNS.iter().enumerate() {
            let bad = || {
                format!(
                    "hip2.dat line {}: column {name}: not a number: {:?}",
                    n + 1,
                    values[i]
                )
            };
            if *is_int {
                ints[i].push(values[i].parse::<i32>().map_err(|_| bad())?);
            } else {
                floats[i].push(values[i].parse::<f64>().map_err(|_| bad())?);
            }
        }
        ra_deg.push(floats[4].last().copied().unwrap_or(0.0).to_degrees());
        dec_deg.push(floats[5].last().copied().unwrap_or(0.0).to_degrees());
    }
    let rows = ra_deg.len();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, (name, is_int)) in COLUMNS.iter().enumerate() {
        if *is_int {
            fields.push(Field::new(*name, DataType::Int32, false));
            arrays.push(Arc::new(Int32Array::from(std::mem::take(&mut ints[i]))));
        } else {
            fields.push(Field::new(*name, DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from(std::mem::take(&mut floats[i]))));
        }
    }
    fields.push(Field::new("ra_deg", DataType::Float64, false));
    arrays.push(Arc::new(Float64Array::from(ra_deg)));
    fields.push(Field::new("dec_deg", DataType::Float64, false));
    arrays.push(Arc::new(Float64Array::from(dec_deg)));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(32_768))
        .build();
    let mut w = ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    Ok(rows)
}

/// Column metadata of the Hipparcos table (descriptions, units and UCDs from the CDS ReadMe of
/// I/311), written into the published table's descriptor.
pub fn describe(descriptor: &mut colo_tap::catalog::TableDescriptor) {
    use colo_tap::catalog::esa_flags;
    const META: &[(&str, &str, &str, &str, u32)] = &[
        (
            "hip",
            "Hipparcos identifier",
            "",
            "meta.id;meta.main",
            esa_flags::PK,
        ),
        ("sn", "Solution type, new reduction", "", "meta.code", 0),
        ("so", "Solution type, old reduction", "", "meta.code", 0),
        ("nc", "Number of components", "", "meta.number", 0),
        (
            "ra_rad",
            "Right ascension (ICRS, epoch J1991.25)",
            "rad",
            "pos.eq.ra",
            0,
        ),
        (
            "dec_rad",
            "Declination (ICRS, epoch J1991.25)",
            "rad",
            "pos.eq.dec",
            0,
        ),
        ("plx_mas", "Parallax", "mas", "pos.parallax.trig", 0),
        (
            "pmra_mas_yr",
            "Proper motion in right ascension (times cos dec)",
            "mas/yr",
            "pos.pm;pos.eq.ra",
            0,
        ),
        (
            "pmdec_mas_yr",
            "Proper motion in declination",
            "mas/yr",
            "pos.pm;pos.eq.dec",
            0,
        ),
        (
            "e_ra_mas",
            "Formal error on ra_rad",
            "mas",
            "stat.error;pos.eq.ra",
            0,
        ),
        (
            "e_dec_mas",
            "Formal error on dec_rad",
            "mas",
            "stat.error;pos.eq.dec",
            0,
        ),
        (
            "e_plx_mas",
            "Formal error on the parallax",
            "mas",
            "stat.error;pos.parallax.trig",
            0,
        ),
        (
            "e_pmra_mas_yr",
            "Formal error on pmra_mas_yr",
            "mas/yr",
            "stat.error;pos.pm;pos.eq.ra",
            0,
        ),
        (
            "e_pmdec_mas_yr",
            "Formal error on pmdec_mas_yr",
            "mas/yr",
            "stat.error;pos.pm;pos.eq.dec",
            0,
        ),
        ("ntr", "Number of field transits used", "", "meta.number", 0),
        ("f2", "Goodness of fit", "", "stat.fit.goodness", 0),
        ("f1", "Percentage of rejected data", "%", "stat.value", 0),
        (
            "var",
            "Cosmic dispersion added (stochastic solution)",
            "mas",
            "stat.stdev",
            0,
        ),
        (
            "ic",
            "Entry in one of the supplementary catalogues",
            "",
            "meta.code",
            0,
        ),
        (
            "hpmag",
            "Hipparcos magnitude",
            "mag",
            "phot.mag;em.opt",
            esa_flags::MAG,
        ),
        (
            "e_hpmag",
            "Error on the mean Hipparcos magnitude",
            "mag",
            "stat.error;phot.mag",
            0,
        ),
        (
            "s_hp",
            "Scatter of the Hipparcos magnitude",
            "mag",
            "stat.stdev;phot.mag",
            0,
        ),
        (
            "va",
            "Reference to the variability annex",
            "",
            "meta.code",
            0,
        ),
        (
            "b_v",
            "Colour index B-V",
            "mag",
            "phot.color;em.opt.B;em.opt.V",
            0,
        ),
        (
            "e_b_v",
            "Formal error on the B-V colour",
            "mag",
            "stat.error;phot.color",
            0,
        ),
        (
            "v_i",
            "Colour index V-I",
            "mag",
            "phot.color;em.opt.V;em.opt.I",
            0,
        ),
        (
            "ra_deg",
            "Right ascension (ICRS, epoch J1991.25), from ra_rad",
            "deg",
            "pos.eq.ra;meta.main",
            esa_flags::RA,
        ),
        (
            "dec_deg",
            "Declination (ICRS, epoch J1991.25), from dec_rad",
            "deg",
            "pos.eq.dec;meta.main",
            esa_flags::DEC,
        ),
    ];
    for column in &mut descriptor.columns {
        if let Some((_, description, unit, ucd, flags)) = META.iter().find(|m| m.0 == column.name) {
            column.description = description.to_string();
            column.unit = unit.to_string();
            column.ucd = ucd.to_string();
            column.flags = *flags;
            column.principal = matches!(
                column.name.as_str(),
                "hip"
                    | "ra_deg"
                    | "dec_deg"
                    | "plx_mas"
                    | "pmra_mas_yr"
                    | "pmdec_mas_yr"
                    | "hpmag"
                    | "b_v"
            );
            column.indexed = matches!(column.name.as_str(), "ra_deg" | "dec_deg");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn real_lines_convert() {
        // The first two records of hip2.dat (I/311), verbatim.
        let text = "     1   5 0 1  0.0000159148  0.0190068680    4.55    -4.55    -1.19   1.29   0.66   1.33   1.25   0.75  90  0.91  0    0.0    0  9.2043 0.0020 0.017 0  0.482 0.025  0.550   1.19  -0.71   1.00  -0.02   0.02   1.00   0.45  -0.05   0.03   1.09  -0.41   0.09   0.08  -0.60   1.00\n     2  75 4 1  0.0000662767 -0.3403189126   20.85   182.88    -1.31   0.95   0.53   1.13   1.22   0.66 121  0.06  0    0.0    0  9.4017 0.0017 0.015 0  0.999 0.002  1.040   1.11  -0.33   1.03   0.19  -0.01   1.08   0.27  -0.04  -0.34   1.00  -0.14   0.38   0.04  -0.10   1.00\n";
        let mut buf = Vec::new();
        assert_eq!(convert(text, &mut buf).unwrap(), 2);
        let r = SerializedFileReader::new(bytes::Bytes::from(buf)).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 2);
        assert_eq!(
            r.metadata().file_metadata().schema_descr().num_columns(),
            28
        );
        assert!(
            convert("1 2 3\n", Vec::new())
                .unwrap_err()
                .contains("line 1")
        );
    }
}
