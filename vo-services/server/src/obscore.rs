//! ObsCore 1.1 records of FITS images and cubes, derived from their headers alone.
//!
//! One record per file: the first image HDU with a usable celestial WCS (an `EXTNAME = SCI`
//! extension is preferred), with keywords missing there inherited from the primary header (the
//! INHERIT convention). Other image HDUs are kept as auxiliary parts for DataLink. The footprint is
//! the image's outline mapped through the WCS: the four outer pixel corners, or 4 points per edge
//! when the field is wider than 5° (edges of wide projections are not great circles). An image
//! whose outline leaves the projection's domain (an all-sky map) gets no polygon, and the report
//! says so. Values the headers do not carry come from the operator's [`CollectionDefaults`]; what
//! is in neither stays NULL — nothing is guessed.
//!
//! [`publish`] turns the records into the `ivoa.obscore` table; [`walk`] finds FITS files on a
//! volume and keeps the records of unchanged files between runs.

pub mod publish;
pub mod walk;

use serde::{Deserialize, Serialize};

use colo_astro::fits::{Hdu, Header, Layout, inherited};
use colo_astro::sky;
use colo_astro::wcs::Wcs;

/// What the operator says about a collection (command-line flags or the collection's TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionDefaults {
    /// `obs_collection`.
    pub collection: String,
    /// Authority part of `obs_publisher_did` (`ivo://<authority>/...`).
    #[serde(default = "default_authority")]
    pub authority: String,
    /// `calib_level` (ObsCore: 0 raw … 4 analysis product).
    #[serde(default = "default_calib_level")]
    pub calib_level: i32,
    pub facility_name: Option<String>,
    pub instrument_name: Option<String>,
    pub target_name: Option<String>,
    pub o_ucd: Option<String>,
    /// Band of 2-D images, metres (a spectral axis takes precedence).
    pub em_min_m: Option<f64>,
    pub em_max_m: Option<f64>,
}

fn default_authority() -> String {
    "colo.local".into()
}

fn default_calib_level() -> i32 {
    2
}

impl CollectionDefaults {
    pub fn new(collection: &str) -> Self {
        CollectionDefaults {
            collection: collection.to_string(),
            authority: default_authority(),
            calib_level: default_calib_level(),
            ..Default::default()
        }
    }
}

/// Another image HDU of the same file (an `#auxiliary` DataLink row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuxiliaryHdu {
    pub index: usize,
    pub extname: Option<String>,
}

/// One published image: where it is, and its ObsCore values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub volume: String,
    pub path: String,
    /// Version of the file the record was made from (ETag or size+mtime).
    pub identity: String,
    pub size: u64,
    /// The HDU the record describes.
    pub hdu: usize,
    pub gzipped: bool,
    pub auxiliary: Vec<AuxiliaryHdu>,

    pub dataproduct_type: String,
    pub calib_level: i32,
    pub obs_collection: String,
    pub obs_id: String,
    pub obs_publisher_did: String,
    pub target_name: Option<String>,
    pub s_ra: f64,
    pub s_dec: f64,
    pub s_fov: Option<f64>,
    /// Footprint vertices, (ra, dec) pairs flattened, counter-clockwise on the sky.
    pub s_region: Option<Vec<f64>>,
    pub s_resolution: Option<f64>,
    pub s_xel1: i64,
    pub s_xel2: i64,
    pub t_min: Option<f64>,
    pub t_max: Option<f64>,
    pub t_exptime: Option<f64>,
    pub t_xel: Option<i64>,
    pub em_min: Option<f64>,
    pub em_max: Option<f64>,
    pub em_xel: Option<i64>,
    pub o_ucd: Option<String>,
    pub pol_states: Option<String>,
    pub pol_xel: Option<i64>,
    pub facility_name: Option<String>,
    pub instrument_name: Option<String>,
}

/// A file's record plus what the operator should know about it.
#[derive(Debug)]
pub struct Described {
    pub record: ImageRecord,
    pub warnings: Vec<String>,
}

/// Where a file is and which version was read.
pub struct FileRef<'a> {
    pub volume: &'a str,
    pub path: &'a str,
    pub identity: &'a str,
    pub size: u64,
}

/// The dataset identifier of a file.
pub fn publisher_did(defaults: &CollectionDefaults, volume: &str, path: &str) -> String {
    format!(
        "ivo://{}/{}?{}/{}",
        defaults.authority, defaults.collection, volume, path
    )
}

/// The ObsCore record of one file from its HDU layout, or why it has none.
pub fn describe(
    file: &FileRef<'_>,
    layout: &Layout,
    defaults: &CollectionDefaults,
) -> Result<Described, String> {
    let primary = layout.hdus.first().ok_or("no HDU")?;
    let images: Vec<&Hdu> = layout.hdus.iter().filter(|h| h.is_image()).collect();
    if images.is_empty() {
        return Err("no image HDU with two or more axes".into());
    }
    let mut ordered = images.clone();
    ordered.sort_by_key(|h| (h.extname().as_deref() != Some("SCI"), h.index));
    let mut problems = Vec::new();
    let mut chosen = None;
    for hdu in ordered {
        let header = inherited(primary, hdu);
        match Wcs::from_header(&header) {
            Ok(wcs) => {
                chosen = Some((hdu, header, wcs));
                break;
            }
            Err(e) => problems.push(format!("HDU {}: {e}", hdu.index)),
        }
    }
    let Some((hdu, header, wcs)) = chosen else {
        return Err(format!("no usable celestial WCS ({})", problems.join("; ")));
    };
    let mut warnings = Vec::new();
    let cel = &wcs.celestial;
    let (n1, n2) = (wcs.axes[cel.lon_axis], wcs.axes[cel.lat_axis]);
    let centre = wcs
        .sky((n1 as f64 + 1.0) / 2.0, (n2 as f64 + 1.0) / 2.0)
        .ok_or("the image centre is outside the projection's domain")?;
    let outline = footprint(&wcs, n1, n2);
    let (s_region, s_fov) = match &outline {
        Some(vertices) => {
            let radius = vertices
                .iter()
                .map(|&(ra, dec)| sky::distance_deg(centre.0, centre.1, ra, dec))
                .fold(0.0, f64::max);
            let flat = vertices.iter().flat_map(|&(a, b)| [a, b]).collect();
            (Some(flat), Some(2.0 * radius))
        }
        None => {
            warnings.push(
                "the image's outline leaves the projection's domain (all-sky map): no s_region polygon"
                    .to_string(),
            );
            (None, Some(360.0))
        }
    };
    let s_resolution = header
        .float("BMAJ")
        .map(|bmaj_deg| bmaj_deg * 3600.0)
        .or(Some(wcs.pixel_scale_deg() * 3600.0));

    let spectral_len = wcs.spectral.as_ref().map(|s| wcs.axes[s.axis]);
    let (mut em_min, mut em_max) = (defaults.em_min_m, defaults.em_max_m);
    if let Some(problem) = &wcs.spectral_problem {
        warnings.push(problem.clone());
    }
    if let Some(axis) = &wcs.spectral {
        match wcs.wavelength_range_m() {
            Some((lo, hi)) => (em_min, em_max) = (Some(lo), Some(hi)),
            None if !axis.has_wavelengths() => warnings.push(
                "velocity axis without RESTFRQ/RESTWAV: no wavelength range (em_min/em_max NULL)"
                    .into(),
            ),
            None => warnings.push("the spectral axis has no valid wavelengths".into()),
        }
    }
    let stokes = wcs.stokes();
    let pol_states = (!stokes.is_empty()).then(|| pol_states_text(&stokes));
    let (t_min, t_max, t_exptime) = times(&header);

    let cube = spectral_len.is_some_and(|n| n > 1);
    let text = |key: &str| header.text(key);
    let record = ImageRecord {
        volume: file.volume.to_string(),
        path: file.path.to_string(),
        identity: file.identity.to_string(),
        size: file.size,
        hdu: hdu.index,
        gzipped: layout.gzipped,
        auxiliary: images
            .iter()
            .filter(|h| h.index != hdu.index)
            .map(|h| AuxiliaryHdu {
                index: h.index,
                extname: h.extname(),
            })
            .collect(),
        dataproduct_type: if cube { "cube" } else { "image" }.into(),
        calib_level: defaults.calib_level,
        obs_collection: defaults.collection.clone(),
        obs_id: obs_id(file.path),
        obs_publisher_did: publisher_did(defaults, file.volume, file.path),
        target_name: text("OBJECT").or_else(|| defaults.target_name.clone()),
        s_ra: centre.0,
        s_dec: centre.1,
        s_fov,
        s_region,
        s_resolution,
        s_xel1: n1 as i64,
        s_xel2: n2 as i64,
        t_min,
        t_max,
        t_exptime,
        t_xel: None,
        em_min,
        em_max,
        em_xel: spectral_len.map(|n| n as i64),
        o_ucd: defaults.o_ucd.clone(),
        pol_states,
        pol_xel: (!stokes.is_empty()).then_some(stokes.len() as i64),
        facility_name: text("TELESCOP").or_else(|| defaults.facility_name.clone()),
        instrument_name: text("INSTRUME").or_else(|| defaults.instrument_name.clone()),
    };
    Ok(Described { record, warnings })
}

/// `obs_id`: the path without its FITS extensions.
fn obs_id(path: &str) -> String {
    let mut id = path;
    for ext in [".gz", ".fz", ".fits", ".fit", ".fts", ".FITS", ".FIT"] {
        id = id.strip_suffix(ext).unwrap_or(id);
    }
    id.to_string()
}

/// The outline, counter-clockwise on the sky (east to the left), or `None` for all-sky maps.
fn footprint(wcs: &Wcs, n1: u64, n2: u64) -> Option<Vec<(f64, f64)>> {
    let (x0, y0, x1, y1) = (0.5, 0.5, n1 as f64 + 0.5, n2 as f64 + 0.5);
    let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
    let corner_sky: Vec<(f64, f64)> = corners
        .iter()
        .map(|&(x, y)| wcs.sky(x, y))
        .collect::<Option<_>>()?;
    let wide = corner_sky
        .iter()
        .zip(corner_sky.iter().skip(1))
        .any(|(a, b)| sky::distance_deg(a.0, a.1, b.0, b.1) > 5.0);
    let mut vertices = Vec::new();
    let per_edge = if wide { 4 } else { 1 };
    for i in 0..4 {
        let (a, b) = (corners[i], corners[(i + 1) % 4]);
        for k in 0..per_edge {
            let t = k as f64 / per_edge as f64;
            let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            vertices.push(wcs.sky(x, y)?);
        }
    }
    if sky::polygon_area_deg2(&vertices) > 20_000.0 {
        // More than about a hemisphere: a polygon cannot say which side is inside.
        return None;
    }
    if signed_area(&vertices) < 0.0 {
        vertices.reverse();
    }
    Some(vertices)
}

/// Signed area in the tangent plane at the first vertex, with east (increasing RA) to the left.
fn signed_area(vertices: &[(f64, f64)]) -> f64 {
    let (ra0, dec0) = vertices[0];
    let c = (dec0.to_radians()).cos();
    let plane: Vec<(f64, f64)> = vertices
        .iter()
        .map(|&(ra, dec)| {
            let dra = (ra - ra0 + 540.0).rem_euclid(360.0) - 180.0;
            (dra * c, dec - dec0)
        })
        .collect();
    let mut area = 0.0;
    for i in 0..plane.len() {
        let (a, b) = (plane[i], plane[(i + 1) % plane.len()]);
        area += a.0 * b.1 - b.0 * a.1;
    }
    area / 2.0
}

/// ObsCore `pol_states`: the states in the standard order, delimited by `/` (`/I/Q/U/V/`).
pub fn pol_states_text(states: &[&str]) -> String {
    const ORDER: [&str; 12] = [
        "I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX",
    ];
    let mut out = String::from("/");
    for s in ORDER.iter().filter(|s| states.contains(s)) {
        out.push_str(s);
        out.push('/');
    }
    out
}

/// (t_min, t_max, t_exptime) in MJD and seconds from the usual keywords.
fn times(h: &Header) -> (Option<f64>, Option<f64>, Option<f64>) {
    let exptime = [
        "XPOSURE", "EXPTIME", "EXPOSURE", "TELAPSE", "ITIME", "INTTIME",
    ]
    .iter()
    .find_map(|k| h.float(k))
    .filter(|t| *t >= 0.0);
    let start = h
        .float("MJD-BEG")
        .or_else(|| h.float("MJD-OBS"))
        .or_else(|| h.text("DATE-BEG").and_then(|d| mjd_from_date(&d)))
        .or_else(|| {
            let date = h.text("DATE-OBS")?;
            // Old headers put the time of day in TIME-OBS / UT.
            let time = h.text("TIME-OBS").or_else(|| h.text("UT"));
            match time {
                Some(t) if !date.contains('T') => mjd_from_date(&format!("{date}T{t}")),
                _ => mjd_from_date(&date),
            }
        });
    let end = h
        .float("MJD-END")
        .or_else(|| h.text("DATE-END").and_then(|d| mjd_from_date(&d)))
        .or_else(|| Some(start? + exptime? / 86_400.0));
    let end = end.or(start);
    (start, end, exptime)
}

/// MJD of an ISO-8601 date (`2011-03-04`, `2011-03-04T05:06:07.5`) or an old `dd/mm/yy` date.
pub fn mjd_from_date(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let (year, month, day) = if date.contains('/') {
        let mut parts = date.split('/').map(|p| p.trim().parse::<i64>().ok());
        let (d, m, y) = (parts.next()??, parts.next()??, parts.next()??);
        (if y < 100 { 1900 + y } else { y }, m, d)
    } else {
        let mut parts = date.split('-').map(|p| p.trim().parse::<i64>().ok());
        (parts.next()??, parts.next()??, parts.next()??)
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut fraction = 0.0;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let m: f64 = parts.next().unwrap_or("0").parse().ok()?;
        let s: f64 = parts.next().unwrap_or("0").parse().ok()?;
        fraction = (h * 3600.0 + m * 60.0 + s) / 86_400.0;
    }
    // Days from the civil date (Fliegel & Van Flandern), then JD → MJD.
    let a = (14 - month) / 12;
    let y = year + 4800 - a;
    let m = month + 12 * a - 3;
    let jdn = day + (153 * m + 2) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 32045;
    Some(jdn as f64 - 2_400_001.0 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mjd_of_known_dates() {
        assert_eq!(mjd_from_date("1858-11-17"), Some(0.0));
        assert_eq!(mjd_from_date("2000-01-01T12:00:00"), Some(51_544.5));
        assert_eq!(mjd_from_date("01/01/00"), Some(15_020.0));
        assert_eq!(mjd_from_date("not a date"), None);
    }

    #[test]
    fn pol_states_in_standard_order() {
        assert_eq!(pol_states_text(&["V", "I"]), "/I/V/");
        assert_eq!(pol_states_text(&["LL", "RR"]), "/RR/LL/");
    }

    #[test]
    fn obs_id_drops_fits_extensions() {
        assert_eq!(obs_id("a/b/img.fits.gz"), "a/b/img");
        assert_eq!(obs_id("x.fit"), "x");
    }
}
