//! Parsers called directly: the ADQL front end, the DALI shapes and intervals with the SIA and
//! SODA parameter readers, VOTable uploads, FITS files (headers, layout, tile-compressed images,
//! cutouts and previews) and `colo.toml`.

use bytes::Bytes;
use colo_astro::cutout::{CutoutSpec, cut};
use colo_astro::dali::{self, Shape};
use colo_astro::fits::tiled::TiledImage;
use colo_astro::fits::{ByteSource, MemorySource, gunzip, inherited, read_layout};
use colo_tap::adql::{FunctionCatalog, PositionColumns, TableResolver, translate};
use colo_vo_services::params::Params;
use colo_vo_services::{sia, soda};
use std::sync::Arc;

use crate::{runtime, text};

/// Tables as the engine resolves them: catalogues named like the published ones carry positions.
struct SampleTables;

impl TableResolver for SampleTables {
    fn position_columns(&self, table: &[String]) -> Option<PositionColumns> {
        let name = table.last()?.to_ascii_lowercase();
        ["hip2", "gaia_source", "obscore"]
            .contains(&name.as_str())
            .then(|| PositionColumns {
                lon: "ra".into(),
                lat: "dec".into(),
            })
    }
}

/// ADQL text → parse, validate, rewrite for DataFusion, print as SQL.
pub fn adql(data: &[u8]) {
    let query = text(data);
    if let Ok(statement) = translate(&query, &FunctionCatalog::default(), &SampleTables) {
        let _ = statement.to_string();
    }
}

/// A query string of DALI parameters → every DALI shape and interval parser on every value, and
/// the SIA and SODA readers of the whole set.
pub fn dali_params(data: &[u8]) {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    for (name, value) in &pairs {
        let shapes = [
            dali::circle(name, value),
            dali::polygon(name, value),
            dali::range(name, value),
            dali::pos(name, value),
        ];
        for shape in shapes.into_iter().flatten() {
            exercise(&shape);
        }
        let _ = dali::interval(name, value);
    }
    let params = Params::from_pairs(pairs);
    let _ = sia::to_adql(&params);
    if let Ok(constraints) = soda::Constraints::parse(&params) {
        let _ = constraints.single();
        let _ = constraints.specs();
    }
}

fn exercise(shape: &Shape) {
    let _ = shape.contains(10.0, -20.0);
    let _ = shape.boundary_points();
}

/// An uploaded VOTable (TAP UPLOAD) → its table.
pub fn votable_upload(data: &[u8]) {
    let _ = colo_tap::upload::parse_votable("fuzz", data);
}

/// Image HDUs of one file that are cut and previewed (keeps an iteration short).
const FITS_HDUS_CUT: usize = 4;

/// A FITS file (plain or gzip) → its layout, then for up to four image HDUs: the tile-compressed
/// reader where compressed, a cutout around the reference pixel's sky position and a preview.
pub fn fits(data: &[u8]) {
    runtime().block_on(async {
        let source: Arc<dyn ByteSource> = if data.starts_with(&[0x1f, 0x8b]) {
            match gunzip("fuzz.fits.gz", data) {
                Ok(plain) => Arc::new(memory(Bytes::from(plain))),
                Err(_) => return,
            }
        } else {
            Arc::new(memory(Bytes::copy_from_slice(data)))
        };
        let Ok(layout) = read_layout(source.as_ref()).await else {
            return;
        };
        let Some(primary) = layout.hdus.first() else {
            return;
        };
        for hdu in layout
            .hdus
            .iter()
            .filter(|h| h.is_image())
            .take(FITS_HDUS_CUT)
        {
            let header = inherited(primary, hdu);
            let (image, data_offset): (Arc<dyn ByteSource>, u64) = if hdu.is_compressed_image() {
                match TiledImage::open(source.clone(), hdu) {
                    Ok(tiled) => (Arc::new(tiled), 0),
                    Err(_) => continue,
                }
            } else {
                (source.clone(), hdu.data_offset)
            };
            let spec = CutoutSpec {
                region: Some(Shape::Circle {
                    ra: header.float("CRVAL1").unwrap_or(0.0),
                    dec: header.float("CRVAL2").unwrap_or(0.0),
                    radius: 0.01,
                }),
                band_m: None,
                pol: Vec::new(),
            };
            let _ = cut(image.as_ref(), &header, data_offset, &spec).await;
            let _ = colo_astro::preview::render(image.as_ref(), &header, data_offset).await;
        }
    });
}

fn memory(bytes: Bytes) -> MemorySource {
    MemorySource {
        name: "fuzz.fits".into(),
        bytes,
    }
}

/// `colo.toml` text → settings (volumes, cache, services), or the one-line error naming the line.
pub fn config_toml(data: &[u8]) {
    let source = text(data);
    let _ = colo::config::parse(&source, "colo.toml");
}
