//! Spherical geometry and HEALPix coverage for ADQL's geometry functions and spatial pruning.
//!
//! Angles cross this module's API in degrees (ICRS lon/lat as ADQL writes them); the maths inside is
//! in radians. Distances are great-circle angles computed with the haversine formula, which stays
//! accurate for the sub-arcsecond radii of crossmatches. Polygons follow ADQL 2.1 §4.2.15 / DALI:
//! vertices joined by great circles. BOX follows pgSphere's `sbox` (a lon/lat rectangle), as the ESA
//! archives that astroquery targets interpret it.
//!
//! HEALPix (Górski et al. 2005, nested scheme) via the CDS `cdshealpix` crate: every catalogue row
//! carries its order-29 index; a cone or polygon becomes a list of index ranges (a MOC) that Parquet
//! min/max statistics can prune on.

use std::ops::Range;

/// Finest HEALPix order stored per row (`_healpix_29`).
pub const HEALPIX_ORDER: u8 = 29;
/// At most this many index ranges are handed to the query planner for one region.
const MAX_RANGES: usize = 48;

/// Great-circle distance in degrees between two lon/lat points given in degrees.
pub fn distance_deg(lon1_deg: f64, lat1_deg: f64, lon2_deg: f64, lat2_deg: f64) -> f64 {
    let (lat1, lat2) = (lat1_deg.to_radians(), lat2_deg.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (lon2_deg - lon1_deg).to_radians();
    let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    (2.0 * a.sqrt().min(1.0).asin()).to_degrees()
}

/// The point `distance_deg` away from (lon, lat) along `bearing_rad` (from north through east).
pub fn offset_deg(lon_deg: f64, lat_deg: f64, bearing_rad: f64, distance_deg: f64) -> (f64, f64) {
    let (lat1, lon1, d) = (
        lat_deg.to_radians(),
        lon_deg.to_radians(),
        distance_deg.to_radians(),
    );
    let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * bearing_rad.cos())
        .clamp(-1.0, 1.0)
        .asin();
    let lon2 =
        lon1 + (bearing_rad.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
    (lon2.to_degrees().rem_euclid(360.0), lat2.to_degrees())
}

/// The point a fraction `t` of the way from `a` to `b` along their great circle.
pub fn great_circle_point(a: (f64, f64), b: (f64, f64), t: f64) -> (f64, f64) {
    let (va, vb) = (unit_vector(a.0, a.1), unit_vector(b.0, b.1));
    let v = [
        va[0] + (vb[0] - va[0]) * t,
        va[1] + (vb[1] - va[1]) * t,
        va[2] + (vb[2] - va[2]) * t,
    ];
    let norm = dot(v, v).sqrt();
    if norm == 0.0 {
        return a;
    }
    let lon = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
    let lat = (v[2] / norm).clamp(-1.0, 1.0).asin().to_degrees();
    (lon, lat)
}

fn unit_vector(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// True if the point lies inside the spherical polygon (vertices in degrees, either winding, edges
/// are great-circle arcs, polygon smaller than a hemisphere).
pub fn polygon_contains(vertices_deg: &[(f64, f64)], lon_deg: f64, lat_deg: f64) -> bool {
    if vertices_deg.len() < 3 {
        return false;
    }
    let p = unit_vector(lon_deg, lat_deg);
    let vs: Vec<[f64; 3]> = vertices_deg
        .iter()
        .map(|&(lon, lat)| unit_vector(lon, lat))
        .collect();
    // The point is inside a convex-or-not small polygon iff the winding number about it is non-zero:
    // sum the signed angles subtended by each edge as seen from p.
    let mut total = 0.0;
    for i in 0..vs.len() {
        let (a, b) = (vs[i], vs[(i + 1) % vs.len()]);
        let ta = cross(p, a);
        let tb = cross(p, b);
        let sin = dot(cross(ta, tb), p);
        let cos = dot(ta, tb);
        total += sin.atan2(cos);
    }
    // The antipode of an inside point sees the same winding; keep the polygon's own hemisphere.
    let centre = vs.iter().fold([0.0; 3], |acc, v| {
        [acc[0] + v[0], acc[1] + v[1], acc[2] + v[2]]
    });
    total.abs() > std::f64::consts::PI && dot(centre, p) > 0.0
}

/// pgSphere-style box: centre lon/lat, full width/height in degrees, as a lon/lat rectangle.
pub fn box_contains(
    centre_lon_deg: f64,
    centre_lat_deg: f64,
    width_deg: f64,
    height_deg: f64,
    lon_deg: f64,
    lat_deg: f64,
) -> bool {
    let half_h = height_deg / 2.0;
    if lat_deg < centre_lat_deg - half_h || lat_deg > centre_lat_deg + half_h {
        return false;
    }
    if width_deg >= 360.0 {
        return true;
    }
    let dlon = (lon_deg - centre_lon_deg).rem_euclid(360.0);
    let dlon = if dlon > 180.0 { dlon - 360.0 } else { dlon };
    dlon.abs() <= width_deg / 2.0
}

/// The corners of a box, counter-clockwise, for serialising it as a DALI polygon.
pub fn box_corners(
    centre_lon_deg: f64,
    centre_lat_deg: f64,
    width_deg: f64,
    height_deg: f64,
) -> [(f64, f64); 4] {
    let (w, h) = (width_deg / 2.0, height_deg / 2.0);
    let lon = |d: f64| (centre_lon_deg + d).rem_euclid(360.0);
    let lat = |d: f64| (centre_lat_deg + d).clamp(-90.0, 90.0);
    [
        (lon(-w), lat(-h)),
        (lon(w), lat(-h)),
        (lon(w), lat(h)),
        (lon(-w), lat(h)),
    ]
}

/// Area of a spherical polygon in square degrees (Girard's theorem via the signed-angle sum).
pub fn polygon_area_deg2(vertices_deg: &[(f64, f64)]) -> f64 {
    let n = vertices_deg.len();
    if n < 3 {
        return 0.0;
    }
    let vs: Vec<[f64; 3]> = vertices_deg
        .iter()
        .map(|&(lon, lat)| unit_vector(lon, lat))
        .collect();
    let mut angle_sum = 0.0;
    for i in 0..n {
        let (prev, cur, next) = (vs[(i + n - 1) % n], vs[i], vs[(i + 1) % n]);
        let t1 = cross(cur, prev);
        let t2 = cross(cur, next);
        let angle = dot(cross(t1, t2), cur).atan2(dot(t1, t2)).abs();
        angle_sum += angle;
    }
    let excess = (angle_sum - (n as f64 - 2.0) * std::f64::consts::PI).abs();
    let excess = excess.min(4.0 * std::f64::consts::PI - excess);
    excess.to_degrees() * 180.0 / std::f64::consts::PI
}

/// Area of a circle of `radius_deg` on the unit sphere, in square degrees.
pub fn circle_area_deg2(radius_deg: f64) -> f64 {
    let r = radius_deg.to_radians();
    2.0 * std::f64::consts::PI * (1.0 - r.cos()) * (180.0 / std::f64::consts::PI).powi(2)
}

/// Centroid of polygon vertices (normalised mean of unit vectors), in degrees.
pub fn centroid_deg(vertices_deg: &[(f64, f64)]) -> (f64, f64) {
    let mut sum = [0.0; 3];
    for &(lon, lat) in vertices_deg {
        let v = unit_vector(lon, lat);
        sum = [sum[0] + v[0], sum[1] + v[1], sum[2] + v[2]];
    }
    let norm = dot(sum, sum).sqrt();
    if norm == 0.0 {
        return (0.0, 0.0);
    }
    let lat = (sum[2] / norm).clamp(-1.0, 1.0).asin().to_degrees();
    let lon = sum[1].atan2(sum[0]).to_degrees().rem_euclid(360.0);
    (lon, lat)
}

/// Nested HEALPix index of a position at `order` (lon/lat in degrees; NaN gives None).
pub fn healpix_index(order: u8, lon_deg: f64, lat_deg: f64) -> Option<u64> {
    if !lon_deg.is_finite()
        || !lat_deg.is_finite()
        || !(-90.0..=90.0).contains(&lat_deg)
        || order > HEALPIX_ORDER
    {
        return None;
    }
    Some(cdshealpix::nested::hash(
        order,
        lon_deg.rem_euclid(360.0).to_radians(),
        lat_deg.to_radians(),
    ))
}

/// A sky region whose HEALPix coverage can prune a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    /// Cone: centre lon/lat and radius, degrees.
    Circle {
        lon_deg: f64,
        lat_deg: f64,
        radius_deg: f64,
    },
    /// Spherical polygon, vertices in degrees.
    Polygon(Vec<(f64, f64)>),
    /// pgSphere box: centre, full width and height, degrees.
    Box {
        lon_deg: f64,
        lat_deg: f64,
        width_deg: f64,
        height_deg: f64,
    },
}

/// Order-29 index ranges covering `region` (a superset: every contained position's index is in one
/// of them). Coarsens the coverage until it has at most [`MAX_RANGES`] ranges; None when the region
/// covers most of the sky or is degenerate (then there is nothing to prune).
pub fn coverage_ranges_29(region: &Region) -> Option<Vec<Range<i64>>> {
    let mut depth: u8 = match region {
        Region::Circle { radius_deg, .. } => depth_for_size(*radius_deg),
        Region::Box {
            width_deg,
            height_deg,
            ..
        } => depth_for_size(width_deg.max(*height_deg) / 2.0),
        Region::Polygon(vertices) => {
            let (clon, clat) = centroid_deg(vertices);
            let r = vertices
                .iter()
                .map(|&(lon, lat)| distance_deg(clon, clat, lon, lat))
                .fold(0.0, f64::max);
            depth_for_size(r)
        }
    };
    loop {
        let ranges = coverage_at(region, depth)?;
        if ranges.len() <= MAX_RANGES || depth == 0 {
            if depth == 0 && ranges.len() >= 10 {
                return None;
            }
            return Some(ranges);
        }
        depth -= 1;
    }
}

/// Depth whose cells are about a quarter of the region's radius (a few tens of cells).
fn depth_for_size(radius_deg: f64) -> u8 {
    if radius_deg.is_nan() || radius_deg <= 0.0 {
        return 20;
    }
    let cell_deg = 58.6;
    let depth = (cell_deg / (radius_deg / 2.0)).log2().floor();
    depth.clamp(0.0, 20.0) as u8
}

fn coverage_at(region: &Region, depth: u8) -> Option<Vec<Range<i64>>> {
    let bmoc = match region {
        Region::Circle {
            lon_deg,
            lat_deg,
            radius_deg,
        } => {
            let usable_radius = radius_deg.is_finite() && *radius_deg > 0.0 && *radius_deg < 90.0;
            if !usable_radius || !(-90.0..=90.0).contains(lat_deg) {
                return None;
            }
            cdshealpix::nested::cone_coverage_approx(
                depth,
                lon_deg.rem_euclid(360.0).to_radians(),
                lat_deg.to_radians(),
                radius_deg.to_radians(),
            )
        }
        Region::Polygon(vertices) => {
            let rad: Vec<(f64, f64)> = vertices
                .iter()
                .map(|&(lon, lat)| (lon.rem_euclid(360.0).to_radians(), lat.to_radians()))
                .collect();
            if rad.len() < 3
                || rad
                    .iter()
                    .any(|&(_, lat)| !lat.is_finite() || lat.abs() > std::f64::consts::FRAC_PI_2)
            {
                return None;
            }
            cdshealpix::nested::polygon_coverage(depth, &rad, true)
        }
        Region::Box {
            lon_deg,
            lat_deg,
            width_deg,
            height_deg,
        } => {
            if !(*width_deg > 0.0 && *height_deg > 0.0 && *width_deg < 180.0) {
                return None;
            }
            // A lon/lat rectangle is inside the polygon through its corners and edge midpoints,
            // widened slightly: lon/lat edges bulge away from great circles.
            let pad = 1.0 + 1e-3;
            let (w, h) = (width_deg * pad, height_deg * pad);
            let lat_lo = (lat_deg - h / 2.0).max(-89.999_999);
            let lat_hi = (lat_deg + h / 2.0).min(89.999_999);
            let mut vertices = Vec::new();
            let steps = 8;
            for i in 0..=steps {
                vertices.push((lon_deg - w / 2.0 + w * i as f64 / steps as f64, lat_lo));
            }
            for i in 0..=steps {
                vertices.push((lon_deg + w / 2.0 - w * i as f64 / steps as f64, lat_hi));
            }
            // The cone around the box is the simpler safe cover near the poles.
            let radius = distance_deg(
                *lon_deg,
                *lat_deg,
                lon_deg + w / 2.0,
                lat_lo.abs().max(lat_hi.abs()).copysign(lat_lo + lat_hi),
            )
            .max(distance_deg(*lon_deg, *lat_deg, lon_deg + w / 2.0, lat_lo))
            .max(distance_deg(*lon_deg, *lat_deg, lon_deg + w / 2.0, lat_hi));
            if radius >= 90.0 {
                return None;
            }
            cdshealpix::nested::cone_coverage_approx(
                depth,
                lon_deg.rem_euclid(360.0).to_radians(),
                lat_deg.to_radians(),
                (radius * 1.01).to_radians(),
            )
        }
    };
    let shift = 2 * u32::from(HEALPIX_ORDER - bmoc.get_depth_max());
    let mut ranges: Vec<Range<i64>> = Vec::new();
    for range in bmoc.to_ranges().iter() {
        let (start, end) = ((range.start << shift) as i64, (range.end << shift) as i64);
        match ranges.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => ranges.push(start..end),
        }
    }
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_matches_known_separations() {
        assert!((distance_deg(0.0, 0.0, 90.0, 0.0) - 90.0).abs() < 1e-12);
        assert!((distance_deg(10.0, 89.0, 190.0, 89.0) - 2.0).abs() < 1e-9);
        let one_arcsec = 1.0 / 3600.0;
        assert!((distance_deg(120.0, -30.0, 120.0, -30.0 + one_arcsec) - one_arcsec).abs() < 1e-12);
    }

    #[test]
    fn polygon_contains_either_winding() {
        let square = [(10.0, -1.0), (12.0, -1.0), (12.0, 1.0), (10.0, 1.0)];
        let reversed: Vec<_> = square.iter().rev().copied().collect();
        for vertices in [&square[..], &reversed[..]] {
            assert!(polygon_contains(vertices, 11.0, 0.0));
            assert!(!polygon_contains(vertices, 13.0, 0.0));
            assert!(!polygon_contains(vertices, 191.0, 0.0));
        }
    }

    #[test]
    fn box_wraps_in_longitude() {
        assert!(box_contains(359.5, 0.0, 2.0, 2.0, 0.2, 0.5));
        assert!(!box_contains(359.5, 0.0, 2.0, 2.0, 1.0, 0.5));
        assert!(!box_contains(359.5, 0.0, 2.0, 2.0, 0.2, 1.5));
    }

    #[test]
    fn cone_coverage_contains_every_point_inside() {
        let region = Region::Circle {
            lon_deg: 266.4,
            lat_deg: -29.0,
            radius_deg: 0.5,
        };
        let ranges = coverage_ranges_29(&region).expect("a small cone prunes");
        assert!(ranges.len() <= MAX_RANGES);
        for i in 0..2000 {
            let angle = i as f64 * 0.37;
            let r = 0.5 * ((i % 97) as f64 / 97.0);
            let lat = -29.0 + r * angle.sin();
            let lon = 266.4 + r * angle.cos() / (-29.0f64).to_radians().cos();
            if distance_deg(266.4, -29.0, lon, lat) > 0.5 {
                continue;
            }
            let index = healpix_index(HEALPIX_ORDER, lon, lat).expect("valid position") as i64;
            assert!(
                ranges.iter().any(|range| range.contains(&index)),
                "{lon} {lat} outside the coverage"
            );
        }
    }

    #[test]
    fn whole_sky_regions_do_not_prune() {
        assert_eq!(
            coverage_ranges_29(&Region::Circle {
                lon_deg: 0.0,
                lat_deg: 0.0,
                radius_deg: 120.0
            }),
            None
        );
    }
}
