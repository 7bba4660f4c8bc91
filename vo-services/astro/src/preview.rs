//! DataLink `#preview`: a PNG quick-look of an image's first plane.
//!
//! At most [`PREVIEW_PIXELS`] on the long side: every k-th row is read (one ranged read each, so a
//! huge remote image costs a few hundred rows, not the file) and every k-th pixel of it kept. The
//! stretch is what people use to look at astronomical images: limits at the 0.5 and 99.5
//! percentiles of the finite values, then an asinh curve that lifts faint structure without
//! burning out bright sources. North is up (FITS rows run bottom to top). The PNG is written here
//! (8-bit greyscale, zlib via flate2, CRC-32 per chunk): no image crate needed.

use std::io::Write;

use crate::error::AstroError;
use crate::fits::{ByteSource, Header};

/// Longest side of a preview, pixels.
pub const PREVIEW_PIXELS: u64 = 512;

/// Physical pixel values of some pixels, NaN for blanks.
fn decode(bytes: &[u8], bitpix: i64, scale: f64, zero: f64, blank: Option<i64>) -> Vec<f64> {
    let width = bitpix.unsigned_abs() as usize / 8;
    bytes
        .chunks_exact(width)
        .map(|b| {
            let raw_int = |v: i64| {
                if blank == Some(v) {
                    f64::NAN
                } else {
                    zero + scale * v as f64
                }
            };
            match bitpix {
                8 => raw_int(b[0] as i64),
                16 => raw_int(i16::from_be_bytes([b[0], b[1]]) as i64),
                32 => raw_int(i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64),
                64 => raw_int(i64::from_be_bytes([
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                ])),
                -32 => zero + scale * f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
                -64 => {
                    zero + scale
                        * f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                }
                _ => f64::NAN,
            }
        })
        .collect()
}

/// The preview PNG of the image HDU at `data_offset` with (image) `header`: plane 1 of every axis
/// beyond the second.
pub async fn render(
    source: &dyn ByteSource,
    header: &Header,
    data_offset: u64,
) -> Result<Vec<u8>, AstroError> {
    let axes = header.axes();
    if axes.len() < 2 {
        return Err(AstroError::Fits {
            name: source.name().to_string(),
            message: "not an image".into(),
        });
    }
    let bitpix = header.int("BITPIX").unwrap_or(8);
    // (A BITPIX of 0 made pixels of no bytes and a panic: found by fuzzing.)
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(AstroError::Fits {
            name: source.name().to_string(),
            message: format!("BITPIX = {bitpix} is not a FITS pixel type"),
        });
    }
    let bpp = bitpix.unsigned_abs() / 8;
    let (nx, ny) = (axes[0], axes[1]);
    let plane_end = nx
        .checked_mul(ny)
        .and_then(|pixels| pixels.checked_mul(bpp))
        .and_then(|bytes| bytes.checked_add(data_offset));
    if plane_end.is_none_or(|end| end > source.size()) {
        return Err(AstroError::Fits {
            name: source.name().to_string(),
            message: format!("the file ends before the {nx} × {ny} image its header describes"),
        });
    }
    let step = nx.max(ny).div_ceil(PREVIEW_PIXELS).max(1);
    let rows: Vec<u64> = (0..ny).step_by(step as usize).collect();
    let ranges: Vec<(u64, u64)> = rows
        .iter()
        .map(|&y| (data_offset + y * nx * bpp, nx * bpp))
        .collect();
    let got = source.read_many(&ranges).await?;
    let (scale, zero) = (
        header.float("BSCALE").unwrap_or(1.0),
        header.float("BZERO").unwrap_or(0.0),
    );
    let blank = header.int("BLANK");
    let width = nx.div_ceil(step) as usize;
    let mut values = Vec::with_capacity(width * rows.len());
    for row in &got {
        let decoded = decode(row, bitpix, scale, zero, blank);
        values.extend(decoded.iter().step_by(step as usize).take(width));
    }
    let grey = stretch(&values);
    // FITS rows go up; PNG rows go down.
    let mut flipped = Vec::with_capacity(grey.len());
    for row in grey.chunks(width).rev() {
        flipped.extend_from_slice(row);
    }
    Ok(encode_png(width as u32, rows.len() as u32, &flipped))
}

/// 8-bit grey levels: 0.5–99.5 percentile limits, asinh curve; NaN is black.
pub fn stretch(values: &[f64]) -> Vec<u8> {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return vec![0; values.len()];
    }
    finite.sort_by(f64::total_cmp);
    let at = |q: f64| finite[((finite.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.005), at(0.995));
    let span = if hi > lo { hi - lo } else { 1.0 };
    const SOFTENING: f64 = 10.0;
    let norm = SOFTENING.asinh();
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                return 0;
            }
            let t = ((v - lo) / span).clamp(0.0, 1.0);
            ((SOFTENING * t).asinh() / norm * 255.0).round() as u8
        })
        .collect()
}

/// A greyscale 8-bit PNG (PNG spec §11: IHDR, IDAT, IEND).
pub fn encode_png(width: u32, height: u32, grey: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(grey.len() + height as usize);
    for row in grey.chunks(width.max(1) as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(&raw);
    let idat = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit, greyscale, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_spans_the_grey_range_and_blanks_are_black() {
        let values: Vec<f64> = (0..1000).map(|i| i as f64).chain([f64::NAN]).collect();
        let grey = stretch(&values);
        assert_eq!(grey[0], 0);
        assert_eq!(grey[999], 255);
        assert_eq!(grey[1000], 0);
        // asinh lifts the faint end: the median is brighter than linear mid-grey.
        assert!(grey[500] > 128);
    }

    #[test]
    fn png_has_signature_and_chunks() {
        let png = encode_png(3, 2, &[0, 128, 255, 1, 2, 3]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes([png[16], png[17], png[18], png[19]]), 3);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }

    #[test]
    fn decode_applies_scaling_and_blank() {
        let bytes = [0x00, 0x02, 0xff, 0xff];
        let v = decode(&bytes, 16, 2.0, 10.0, Some(-1));
        assert_eq!(v[0], 14.0);
        assert!(v[1].is_nan());
    }
}
