//! DALI 1.1 parameter values shared by SIA 2.0 and SODA 1.0: shapes (`CIRCLE`, `POLYGON`, `POS` with
//! `CIRCLE`/`RANGE`/`POLYGON`) and numeric intervals (`BAND`, `TIME`, ...), ICRS degrees, with
//! `-Inf`/`+Inf` open ends. Errors name the parameter and what was expected, ready to be
//! prefixed with the protocol's fault word.

use crate::error::AstroError;
use crate::sky;

/// A sky region in ICRS degrees.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle {
        ra: f64,
        dec: f64,
        radius: f64,
    },
    /// Longitude and latitude ranges (RANGE lon1 lon2 lat1 lat2); lon1 > lon2 wraps through 0.
    Range {
        lon: (f64, f64),
        lat: (f64, f64),
    },
    Polygon(Vec<(f64, f64)>),
}

fn bad(param: &str, message: impl Into<String>) -> AstroError {
    AstroError::BadParameter {
        name: param.to_string(),
        message: message.into(),
    }
}

/// Numbers of a DALI value, accepting `-Inf`, `+Inf`, `Inf`.
fn numbers(param: &str, text: &str) -> Result<Vec<f64>, AstroError> {
    text.split_whitespace()
        .map(|t| match t.to_ascii_lowercase().as_str() {
            "-inf" => Ok(f64::NEG_INFINITY),
            "+inf" | "inf" => Ok(f64::INFINITY),
            _ => t
                .parse::<f64>()
                .ok()
                .filter(|v| !v.is_nan())
                .ok_or_else(|| bad(param, format!("{t:?} is not a number"))),
        })
        .collect()
}

fn check_position(param: &str, ra: f64, dec: f64) -> Result<(), AstroError> {
    if !ra.is_finite() || !dec.is_finite() || !(-90.0..=90.0).contains(&dec) {
        return Err(bad(
            param,
            format!("position ({ra}, {dec}) is not a valid ICRS position in degrees"),
        ));
    }
    Ok(())
}

/// `CIRCLE` value: `ra dec radius`.
pub fn circle(param: &str, text: &str) -> Result<Shape, AstroError> {
    let v = numbers(param, text)?;
    let [ra, dec, radius] = v[..] else {
        return Err(bad(
            param,
            format!(
                "expected 3 numbers (ra dec radius, degrees), got {}",
                v.len()
            ),
        ));
    };
    check_position(param, ra, dec)?;
    if !(radius > 0.0 && radius <= 180.0) {
        return Err(bad(
            param,
            format!("radius {radius} must be in (0, 180] degrees"),
        ));
    }
    Ok(Shape::Circle {
        ra: ra.rem_euclid(360.0),
        dec,
        radius,
    })
}

/// `POLYGON` value: at least 3 vertices.
pub fn polygon(param: &str, text: &str) -> Result<Shape, AstroError> {
    let v = numbers(param, text)?;
    if v.len() < 6 || v.len() % 2 != 0 {
        return Err(bad(
            param,
            format!(
                "expected an even count of at least 6 numbers (ra dec of 3+ vertices), got {}",
                v.len()
            ),
        ));
    }
    let vertices: Vec<(f64, f64)> = v.chunks(2).map(|c| (c[0], c[1])).collect();
    for &(ra, dec) in &vertices {
        check_position(param, ra, dec)?;
    }
    if sky::polygon_area_deg2(&vertices) <= 0.0 {
        return Err(bad(param, "the polygon has no area"));
    }
    Ok(Shape::Polygon(
        vertices
            .into_iter()
            .map(|(ra, dec)| (ra.rem_euclid(360.0), dec))
            .collect(),
    ))
}

/// `RANGE` value: `lon1 lon2 lat1 lat2`, open ends allowed.
pub fn range(param: &str, text: &str) -> Result<Shape, AstroError> {
    let v = numbers(param, text)?;
    let [lon1, lon2, lat1, lat2] = v[..] else {
        return Err(bad(
            param,
            format!(
                "RANGE needs 4 numbers (lon1 lon2 lat1 lat2), got {}",
                v.len()
            ),
        ));
    };
    let lon = if lon1 == f64::NEG_INFINITY || lon2 == f64::INFINITY {
        (0.0, 360.0)
    } else {
        (lon1, lon2)
    };
    let lat = (lat1.max(-90.0), lat2.min(90.0));
    if lat.0 > lat.1 {
        return Err(bad(param, format!("latitude range {lat1} {lat2} is empty")));
    }
    if !(lon.0.is_finite() && lon.1.is_finite()) || lon.0 < 0.0 || lon.1 > 360.0 {
        return Err(bad(
            param,
            format!("longitude range {lon1} {lon2} must lie in [0, 360]"),
        ));
    }
    Ok(Shape::Range { lon, lat })
}

/// `POS` value: `CIRCLE ...`, `RANGE ...` or `POLYGON ...`.
pub fn pos(param: &str, text: &str) -> Result<Shape, AstroError> {
    let text = text.trim();
    let (kind, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    match kind.to_ascii_uppercase().as_str() {
        "CIRCLE" => circle(param, rest),
        "RANGE" => range(param, rest),
        "POLYGON" => polygon(param, rest),
        other => Err(bad(
            param,
            format!("unknown shape {other:?} (expected CIRCLE, RANGE or POLYGON)"),
        )),
    }
}

/// An interval `lo hi` (or one value meaning `v v`), open ends as infinities.
pub fn interval(param: &str, text: &str) -> Result<(f64, f64), AstroError> {
    let v = numbers(param, text)?;
    let (lo, hi) = match v[..] {
        [x] => (x, x),
        [lo, hi] => (lo, hi),
        _ => {
            return Err(bad(
                param,
                format!(
                    "expected one value or an interval (lo hi), got {} numbers",
                    v.len()
                ),
            ));
        }
    };
    if lo > hi {
        return Err(bad(param, format!("interval {lo} {hi} is empty (lo > hi)")));
    }
    Ok((lo, hi))
}

impl Shape {
    /// Whether the point is in the shape.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        match self {
            Shape::Circle {
                ra: cra,
                dec: cdec,
                radius,
            } => sky::distance_deg(*cra, *cdec, ra, dec) <= *radius,
            Shape::Range { lon, lat } => {
                let ra = ra.rem_euclid(360.0);
                let in_lon = if lon.0 <= lon.1 {
                    ra >= lon.0 && ra <= lon.1
                } else {
                    ra >= lon.0 || ra <= lon.1
                };
                in_lon && dec >= lat.0 && dec <= lat.1
            }
            Shape::Polygon(v) => sky::polygon_contains(v, ra, dec),
        }
    }

    /// Points on the shape's boundary (and its centre), for bounding boxes in pixel space.
    pub fn boundary_points(&self) -> Vec<(f64, f64)> {
        match self {
            Shape::Circle { ra, dec, radius } => {
                let mut out = vec![(*ra, *dec)];
                for k in 0..72 {
                    let bearing = (k as f64 * 5.0).to_radians();
                    out.push(sky::offset_deg(*ra, *dec, bearing, *radius));
                }
                out
            }
            Shape::Range { lon, lat } => {
                let width = if lon.0 <= lon.1 {
                    lon.1 - lon.0
                } else {
                    lon.1 + 360.0 - lon.0
                };
                let mut out = Vec::new();
                for i in 0..=40 {
                    let t = i as f64 / 40.0;
                    let l = (lon.0 + width * t).rem_euclid(360.0);
                    let b = lat.0 + (lat.1 - lat.0) * t;
                    out.extend([(l, lat.0), (l, lat.1), (lon.0, b), (lon.1, b)]);
                }
                out
            }
            Shape::Polygon(v) => {
                let mut out = Vec::new();
                for i in 0..v.len() {
                    let (a, b) = (v[i], v[(i + 1) % v.len()]);
                    for k in 0..16 {
                        out.push(sky::great_circle_point(a, b, k as f64 / 16.0));
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_shape_and_refuses_bad_ones() {
        assert_eq!(
            pos("POS", "CIRCLE 10 20 0.5").expect("circle"),
            Shape::Circle {
                ra: 10.0,
                dec: 20.0,
                radius: 0.5
            }
        );
        assert!(matches!(
            pos("POS", "RANGE 10 20 -5 5"),
            Ok(Shape::Range { .. })
        ));
        assert!(matches!(
            pos("POS", "RANGE -Inf +Inf -90 -80"),
            Ok(Shape::Range {
                lon: (0.0, 360.0),
                ..
            })
        ));
        assert!(matches!(
            pos("POS", "POLYGON 10 10 11 10 11 11"),
            Ok(Shape::Polygon(_))
        ));
        for (text, says) in [
            ("CIRCLE 10 20", "3 numbers"),
            ("CIRCLE 10 95 1", "valid ICRS"),
            ("CIRCLE 10 20 -1", "radius"),
            ("CIRCLE ten 20 1", "not a number"),
            ("BOX 1 2 3 4", "unknown shape"),
            ("POLYGON 1 2 3 4", "at least 6"),
            ("RANGE 1 2 5 4", "empty"),
        ] {
            let err = pos("POS", text).expect_err(text);
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn intervals_with_open_ends() {
        assert_eq!(interval("BAND", "1e-7 2e-7").ok(), Some((1e-7, 2e-7)));
        assert_eq!(
            interval("BAND", "-Inf 3").ok(),
            Some((f64::NEG_INFINITY, 3.0))
        );
        assert_eq!(interval("BAND", "5").ok(), Some((5.0, 5.0)));
        assert!(interval("BAND", "3 1").is_err());
        assert!(interval("BAND", "1 2 3").is_err());
    }

    #[test]
    fn containment_for_wrapping_ranges() {
        let r = range("POS", "350 10 -5 5").expect("range");
        assert!(r.contains(355.0, 0.0) && r.contains(5.0, 0.0) && !r.contains(180.0, 0.0));
    }
}
