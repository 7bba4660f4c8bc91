//! SODA cutouts: from a region, a band and polarization states to pixel ranges, to the byte ranges
//! of those pixels, to a new FITS file.
//!
//! The plan works per axis: the celestial pair gets the pixel bounding box of the region's boundary
//! (and centre) mapped through the WCS, the spectral axis the channels whose edges overlap the band
//! (converted to the axis' own quantity: frequency, velocity, wavelength), the Stokes axis the
//! planes of the requested states (with a stride when they are evenly spaced, else their span), and
//! every other axis stays whole. Everything is clipped to the data; nothing left is "no overlap"
//! (SODA's HTTP 204). The pixels are then read as runs along NAXIS1, one ranged read per run (runs
//! that touch are merged, runs with small gaps read together), so a cutout of a huge remote image
//! moves only its own rows. The output header is the source's with NAXISn, CRPIXn (and CDELTn for
//! strided axes, LTVn for IRAF) changed, so every pixel keeps its world coordinates; the data bytes
//! are copied unchanged (BSCALE/BZERO/BLANK keep their meaning).

use crate::dali::Shape;
use crate::error::AstroError;
use crate::fits::{BLOCK, ByteSource, Header, Value, padded_len};
use crate::wcs::{Wcs, stokes_code};

/// Largest cutout served (the output is assembled in memory).
pub const MAX_CUTOUT_BYTES: u64 = 2 << 30;

/// What to cut.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CutoutSpec {
    pub region: Option<Shape>,
    /// Vacuum wavelengths in metres; open ends as infinities.
    pub band_m: Option<(f64, f64)>,
    /// Stokes names (`I`, `Q`, `RR`, ...).
    pub pol: Vec<String>,
}

/// Pixels kept along one axis: `count` pixels from `first` (0-based), every `stride`-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisSelection {
    pub first: u64,
    pub count: u64,
    pub stride: u64,
}

/// A cut that is possible, or none.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The constraints miss the data (SODA: 204 No Content).
    NoOverlap,
    Cut(Vec<AxisSelection>),
}

fn usage(name: &str, message: impl Into<String>) -> AstroError {
    AstroError::BadParameter {
        name: name.to_string(),
        message: message.into(),
    }
}

/// The pixel selection for `spec` on an image with `wcs`.
pub fn plan(wcs: &Wcs, spec: &CutoutSpec) -> Result<Plan, AstroError> {
    let mut selection: Vec<AxisSelection> = wcs
        .axes
        .iter()
        .map(|&n| AxisSelection {
            first: 0,
            count: n,
            stride: 1,
        })
        .collect();
    let cel = &wcs.celestial;
    if let Some(region) = &spec.region {
        let (n1, n2) = (wcs.axes[cel.lon_axis], wcs.axes[cel.lat_axis]);
        match celestial_box(wcs, region, n1, n2) {
            Some((x, y)) => {
                selection[cel.lon_axis] = x;
                selection[cel.lat_axis] = y;
            }
            None => return Ok(Plan::NoOverlap),
        }
    }
    if let Some((lo, hi)) = spec.band_m {
        let axis = wcs
            .spectral
            .as_ref()
            .ok_or_else(|| usage("BAND", "this dataset has no spectral axis"))?;
        if !axis.has_wavelengths() {
            return Err(usage(
                "BAND",
                "this dataset's velocity axis has no rest frequency, so it has no wavelengths",
            ));
        }
        let n = wcs.axes[axis.axis];
        let mut kept = Vec::new();
        for p in 1..=n {
            let a = axis.wavelength_m(wcs.linear_value(axis.axis, p as f64 - 0.5));
            let b = axis.wavelength_m(wcs.linear_value(axis.axis, p as f64 + 0.5));
            if let (Some(a), Some(b)) = (a, b)
                && a.max(b) >= lo
                && a.min(b) <= hi
            {
                kept.push(p - 1);
            }
        }
        match (kept.first(), kept.last()) {
            (Some(&first), Some(&last)) => {
                selection[axis.axis] = AxisSelection {
                    first,
                    count: last - first + 1,
                    stride: 1,
                }
            }
            _ => return Ok(Plan::NoOverlap),
        }
    }
    if !spec.pol.is_empty() {
        let axis = wcs
            .stokes_axis
            .ok_or_else(|| usage("POL", "this dataset has no polarization (Stokes) axis"))?;
        let mut wanted = Vec::new();
        for name in &spec.pol {
            wanted.push(stokes_code(name).ok_or_else(|| {
                usage(
                    "POL",
                    format!(
                        "{name:?} is not a polarization state (I Q U V RR LL RL LR XX YY XY YX)"
                    ),
                )
            })?);
        }
        let planes: Vec<u64> = (1..=wcs.axes[axis])
            .filter(|&p| wanted.contains(&(wcs.linear_value(axis, p as f64).round() as i64)))
            .map(|p| p - 1)
            .collect();
        selection[axis] = match planes.as_slice() {
            [] => return Ok(Plan::NoOverlap),
            [only] => AxisSelection {
                first: *only,
                count: 1,
                stride: 1,
            },
            [first, second, ..] => {
                let step = second - first;
                let even = planes.windows(2).all(|w| w[1] - w[0] == step);
                if even {
                    AxisSelection {
                        first: *first,
                        count: planes.len() as u64,
                        stride: step,
                    }
                } else {
                    let last = planes[planes.len() - 1];
                    AxisSelection {
                        first: *first,
                        count: last - first + 1,
                        stride: 1,
                    }
                }
            }
        };
    }
    Ok(Plan::Cut(selection))
}

/// Pixel ranges on the celestial axes holding the region, clipped; `None` when they miss.
fn celestial_box(
    wcs: &Wcs,
    region: &Shape,
    n1: u64,
    n2: u64,
) -> Option<(AxisSelection, AxisSelection)> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (ra, dec) in region.boundary_points() {
        if let Some((x, y)) = wcs.pixel(ra, dec) {
            xs.push(x);
            ys.push(y);
        }
    }
    // The whole image inside the region (or the region's outline off the projection): test the
    // image's own corners and centre.
    let probes = [
        (0.5, 0.5),
        (n1 as f64 + 0.5, 0.5),
        (0.5, n2 as f64 + 0.5),
        (n1 as f64 + 0.5, n2 as f64 + 0.5),
        ((n1 as f64 + 1.0) / 2.0, (n2 as f64 + 1.0) / 2.0),
    ];
    for (x, y) in probes {
        if let Some((ra, dec)) = wcs.sky(x, y)
            && region.contains(ra, dec)
        {
            xs.push(x);
            ys.push(y);
        }
    }
    if xs.is_empty() {
        return None;
    }
    let range = |values: &[f64], n: u64| -> Option<AxisSelection> {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Pixel p (1-based) covers [p − 0.5, p + 0.5).
        let first = (lo + 0.5).floor().max(1.0);
        let last = (hi + 0.5).floor().min(n as f64);
        (first <= last).then(|| AxisSelection {
            first: first as u64 - 1,
            count: (last - first) as u64 + 1,
            stride: 1,
        })
    };
    Some((range(&xs, n1)?, range(&ys, n2)?))
}

/// The cutout's header: the source's, as a primary header, with the axes moved.
pub fn output_header(source: &Header, selection: &[AxisSelection]) -> Header {
    let mut out = Header::default();
    out.set("SIMPLE", Value::Bool(true), "conforms to FITS standard");
    out.set(
        "BITPIX",
        source.get("BITPIX").cloned().unwrap_or(Value::Int(8)),
        "",
    );
    out.set("NAXIS", Value::Int(selection.len() as i64), "");
    for (i, s) in selection.iter().enumerate() {
        out.set(&format!("NAXIS{}", i + 1), Value::Int(s.count as i64), "");
    }
    for card in &source.cards {
        let structural = matches!(
            card.key.as_str(),
            "SIMPLE"
                | "XTENSION"
                | "BITPIX"
                | "NAXIS"
                | "PCOUNT"
                | "GCOUNT"
                | "EXTEND"
                | "CHECKSUM"
                | "DATASUM"
                | "END"
        ) || (card.key.starts_with("NAXIS")
            && card.key[5..].parse::<u32>().is_ok());
        if !structural {
            out.cards.push(card.clone());
        }
    }
    for (i, s) in selection.iter().enumerate() {
        let n = i + 1;
        let crpix = source.float(&format!("CRPIX{n}")).unwrap_or(0.0);
        let stride = s.stride as f64;
        out.set(
            &format!("CRPIX{n}"),
            Value::Float((crpix - (s.first as f64 + 1.0)) / stride + 1.0),
            "",
        );
        if s.stride > 1 {
            let cdelt = source.float(&format!("CDELT{n}")).unwrap_or(1.0);
            out.set(&format!("CDELT{n}"), Value::Float(cdelt * stride), "");
            for row in 1..=selection.len() {
                let key = format!("CD{row}_{n}");
                if let Some(v) = source.float(&key) {
                    out.set(&key, Value::Float(v * stride), "");
                }
            }
        }
        if let Some(ltv) = source.float(&format!("LTV{n}")) {
            out.set(&format!("LTV{n}"), Value::Float(ltv - s.first as f64), "");
        }
    }
    let ranges: Vec<String> = selection
        .iter()
        .map(|s| {
            let last = s.first + s.count * s.stride - s.stride + 1;
            format!("{}:{last}:{}", s.first + 1, s.stride)
        })
        .collect();
    out.push_commentary(
        "HISTORY",
        &format!("colo SODA cutout: {}", ranges.join(",")),
    );
    out
}

/// An image HDU as a FITS file of its own (DataLink's `#auxiliary` downloads): its header as a
/// primary header (the cutout header with every pixel kept), then the data unit unchanged, then
/// zeros to a whole block. The data unit is not held: the caller streams it from the source.
#[derive(Debug, Clone, PartialEq)]
pub struct StandaloneImage {
    /// The primary header, as bytes.
    pub header_bytes: Vec<u8>,
    /// Bytes of the data unit to copy from the source HDU.
    pub data_bytes: u64,
    /// Zero bytes after the data.
    pub padding_bytes: u64,
}

impl StandaloneImage {
    /// The file for the image HDU with (image) `header`.
    pub fn new(header: &Header) -> Self {
        let whole: Vec<AxisSelection> = header
            .axes()
            .iter()
            .map(|&n| AxisSelection {
                first: 0,
                count: n,
                stride: 1,
            })
            .collect();
        let header_bytes = output_header(header, &whole).to_bytes();
        let data_bytes = header.data_bytes();
        let unpadded = header_bytes.len() as u64 + data_bytes;
        StandaloneImage {
            header_bytes,
            data_bytes,
            padding_bytes: padded_len(unpadded) - unpadded,
        }
    }

    /// Bytes of the whole file.
    pub fn size_bytes(&self) -> u64 {
        self.header_bytes.len() as u64 + self.data_bytes + self.padding_bytes
    }
}

/// One ranged read and the pieces of it that belong to the output.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    pub offset: u64,
    pub len: u64,
    /// (offset within the read, length), in output order.
    pub pieces: Vec<(u64, u64)>,
}

/// Gaps up to this many bytes between runs are read rather than split into two requests (and
/// never more than the run itself, so a strided cutout never reads twice its size).
pub const MERGE_GAP_BYTES: u64 = 8 * 1024;

/// The reads that fetch the selected pixels of a data unit at `data_offset`.
pub fn fetches(
    data_offset: u64,
    axes: &[u64],
    bytes_per_pixel: u64,
    sel: &[AxisSelection],
) -> Vec<Fetch> {
    let n = axes.len();
    let run_len = sel[0].count * bytes_per_pixel;
    let mut out: Vec<Fetch> = Vec::new();
    let mut index = vec![0u64; n];
    loop {
        // Pixel index of the run's first pixel.
        let mut linear = 0u64;
        let mut scale = 1u64;
        for axis in 0..n {
            let pixel = sel[axis].first + index[axis] * sel[axis].stride;
            linear += pixel * scale;
            scale *= axes[axis];
        }
        let offset = data_offset + linear * bytes_per_pixel;
        match out.last_mut() {
            Some(last)
                if offset >= last.offset + last.len
                    && offset - (last.offset + last.len) <= MERGE_GAP_BYTES.min(run_len) =>
            {
                let rel = offset - last.offset;
                last.pieces.push((rel, run_len));
                last.len = rel + run_len;
            }
            _ => out.push(Fetch {
                offset,
                len: run_len,
                pieces: vec![(0, run_len)],
            }),
        }
        // Next run: advance axes 1.. like an odometer.
        let mut axis = 1;
        loop {
            if axis == n {
                return out;
            }
            index[axis] += 1;
            if index[axis] < sel[axis].count {
                break;
            }
            index[axis] = 0;
            axis += 1;
        }
    }
}

/// Cuts `spec` out of the image HDU at `data_offset` with `header` (its image header, with
/// inherited keywords). `None` when the constraints miss the data.
pub async fn cut(
    source: &dyn ByteSource,
    header: &Header,
    data_offset: u64,
    spec: &CutoutSpec,
) -> Result<Option<Vec<u8>>, AstroError> {
    let wcs = Wcs::from_header(header).map_err(|e| AstroError::Fits {
        name: source.name().to_string(),
        message: format!("no usable WCS: {e}"),
    })?;
    let selection = match plan(&wcs, spec)? {
        Plan::NoOverlap => return Ok(None),
        Plan::Cut(selection) => selection,
    };
    let bytes_per_pixel = header.int("BITPIX").unwrap_or(8).unsigned_abs() / 8;
    let pixels: u64 = selection.iter().map(|s| s.count).product();
    let data_bytes = pixels * bytes_per_pixel;
    if data_bytes > MAX_CUTOUT_BYTES {
        return Err(usage(
            "POS",
            format!(
                "the cutout would be {} MiB; this service returns at most {} MiB: ask for a smaller region",
                data_bytes >> 20,
                MAX_CUTOUT_BYTES >> 20
            ),
        ));
    }
    let plan = fetches(data_offset, &wcs.axes, bytes_per_pixel, &selection);
    let ranges: Vec<(u64, u64)> = plan.iter().map(|f| (f.offset, f.len)).collect();
    let got = source.read_many(&ranges).await?;
    let mut out = output_header(header, &selection).to_bytes();
    out.reserve(data_bytes as usize + BLOCK as usize);
    for (fetch, bytes) in plan.iter().zip(&got) {
        if (bytes.len() as u64) < fetch.len {
            return Err(AstroError::Fits {
                name: source.name().to_string(),
                message: "the file is shorter than its header says".into(),
            });
        }
        for &(rel, len) in &fetch.pieces {
            out.extend_from_slice(&bytes[rel as usize..(rel + len) as usize]);
        }
    }
    out.resize(padded_len(out.len() as u64) as usize, 0);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_merge_touching_runs_and_close_gaps_only() {
        let axes = [100, 50];
        // Full rows 10..12: one read of 3 rows.
        let sel = [
            AxisSelection {
                first: 0,
                count: 100,
                stride: 1,
            },
            AxisSelection {
                first: 10,
                count: 3,
                stride: 1,
            },
        ];
        let f = fetches(2880, &axes, 4, &sel);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].offset, f[0].len), (2880 + 10 * 400, 1200));
        // 10 px of each row: gaps of 360 bytes > the 40-byte run, so one read per row.
        let sel = [
            AxisSelection {
                first: 5,
                count: 10,
                stride: 1,
            },
            AxisSelection {
                first: 0,
                count: 3,
                stride: 1,
            },
        ];
        let f = fetches(0, &axes, 4, &sel);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].offset, 400 + 20);
        let total: u64 = f.iter().map(|x| x.len).sum();
        assert_eq!(total, 3 * 40);
    }

    #[test]
    fn a_standalone_image_is_whole_blocks_with_the_data_unchanged() {
        let mut h = Header::default();
        h.set("XTENSION", Value::Str("IMAGE".into()), "");
        h.set("BITPIX", Value::Int(16), "");
        h.set("NAXIS", Value::Int(2), "");
        h.set("NAXIS1", Value::Int(3), "");
        h.set("NAXIS2", Value::Int(2), "");
        h.set("PCOUNT", Value::Int(0), "");
        h.set("GCOUNT", Value::Int(1), "");
        h.set("EXTNAME", Value::Str("ERR".into()), "");
        let file = StandaloneImage::new(&h);
        assert_eq!(file.data_bytes, 12);
        assert_eq!(file.size_bytes() % BLOCK, 0);
        assert_eq!(
            file.header_bytes.len() as u64 + 12 + file.padding_bytes,
            2 * BLOCK
        );
        let crate::fits::header::Parsed::Complete(primary, _) =
            crate::fits::header::parse(&file.header_bytes).expect("a header")
        else {
            panic!("END not found")
        };
        assert_eq!(
            primary.cards[0].key, "SIMPLE",
            "a primary header, not an extension"
        );
        assert!(!primary.contains("XTENSION") && !primary.contains("PCOUNT"));
        assert_eq!(primary.axes(), [3, 2]);
        assert_eq!(primary.text("EXTNAME").as_deref(), Some("ERR"));
    }

    #[test]
    fn header_keeps_world_coordinates_of_pixels() {
        let mut h = Header::default();
        h.set("SIMPLE", Value::Bool(true), "");
        h.set("BITPIX", Value::Int(-32), "");
        h.set("NAXIS", Value::Int(3), "");
        h.set("NAXIS1", Value::Int(100), "");
        h.set("NAXIS2", Value::Int(100), "");
        h.set("NAXIS3", Value::Int(4), "");
        h.set("CRPIX1", Value::Float(50.0), "");
        h.set("CRPIX3", Value::Float(1.0), "");
        h.set("CDELT3", Value::Float(1.0), "");
        h.set("OBJECT", Value::Str("W51".into()), "");
        let sel = [
            AxisSelection {
                first: 10,
                count: 20,
                stride: 1,
            },
            AxisSelection {
                first: 0,
                count: 100,
                stride: 1,
            },
            AxisSelection {
                first: 0,
                count: 2,
                stride: 3,
            },
        ];
        let out = output_header(&h, &sel);
        // Old pixel 50 (the reference) is new pixel 40.
        assert_eq!(out.float("CRPIX1"), Some(40.0));
        assert_eq!(out.int("NAXIS1"), Some(20));
        assert_eq!(out.float("CDELT3"), Some(3.0));
        assert_eq!(out.float("CRPIX3"), Some(1.0));
        assert_eq!(out.text("OBJECT").as_deref(), Some("W51"));
        assert_eq!(out.cards[0].key, "SIMPLE");
        assert_eq!(out.cards[2].key, "NAXIS");
    }
}
