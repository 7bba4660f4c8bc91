//! colo's published tables as Apache DataFusion Ballista reads them: the scale-out path of
//! README "When a catalogue outgrows one machine", checked by `tests/standalone.rs`.
//!
//! A table published by `colo ingest catalog` is a folder of HEALPix-partitioned Parquet
//! (`data/Norder=k/Npix=n.parquet`, each sorted by `_healpix_29`). Ballista reads it as any
//! Parquet folder; what colo's engine adds — the HEALPix index ranges of a region, which prune
//! partitions and row groups — is plain SQL (`_healpix_29 BETWEEN a AND b OR ...`) that Ballista's
//! scheduler plans like DataFusion does. [`cone_sql`] writes a cone that way.

use colo_astro::sky::{Region, coverage_ranges_29};

/// The SQL of a cone on `table`'s `ra`/`dec` (degrees) as colo's engine runs it: the HEALPix
/// ranges of the cone, then the exact great-circle distance (haversine, in built-in functions).
pub fn cone_sql(
    select: &str,
    table: &str,
    ra: &str,
    dec: &str,
    centre_deg: (f64, f64),
    radius_deg: f64,
) -> String {
    let region = Region::Circle {
        lon_deg: centre_deg.0,
        lat_deg: centre_deg.1,
        radius_deg,
    };
    let ranges = coverage_ranges_29(&region).expect("a cone smaller than the sky has ranges");
    let prune: Vec<String> = ranges
        .iter()
        .map(|r| format!("_healpix_29 BETWEEN {} AND {}", r.start, r.end - 1))
        .collect();
    let (ra0, dec0) = centre_deg;
    format!(
        "SELECT {select} FROM {table} WHERE ({}) AND \
         degrees(2 * asin(sqrt(power(sin(radians({dec} - {dec0}) / 2), 2) + \
         cos(radians({dec})) * cos(radians({dec0})) * power(sin(radians({ra} - {ra0}) / 2), 2)))) \
         <= {radius_deg}",
        prune.join(" OR ")
    )
}
