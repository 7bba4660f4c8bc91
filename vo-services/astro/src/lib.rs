//! colo-astro: the astronomy numerics under colo's VO services, with no HTTP, no query engine and no
//! cache in sight.
//!
//! * [`fits`]: FITS files read in ranges through a small [`fits::ByteSource`] trait (one header
//!   type for reading and writing, HDU layouts, gzip, tile-compressed images, binary tables).
//! * [`wcs`]: world coordinates of image pixels (celestial projections, spectral and Stokes axes).
//! * [`sky`]: spherical geometry in degrees (distances, polygons, boxes, HEALPix indices and cone
//!   coverage).
//! * [`dali`]: DALI 1.1 shapes and intervals as request parameters spell them.
//! * [`cutout`]: SODA cutouts planned per axis and read as byte runs.
//! * [`preview`]: PNG quick-looks.
//!
//! The layers above: `colo-tap` (ADQL on DataFusion) uses [`sky`] and [`fits`]; the services
//! (`colo-vo-services`) use everything and supply byte sources over colo's cache. Nothing here
//! depends on them.

pub mod cutout;
pub mod dali;
pub mod error;
pub mod fits;
pub mod preview;
pub mod sky;
pub mod wcs;

pub use error::{AstroError, ReadFailure};
