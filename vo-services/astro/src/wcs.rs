//! World coordinates of FITS images (WCS Papers I–III): pixel ↔ ICRS sky position, pixel ↔ spectral
//! value, Stokes codes.
//!
//! Pixel → world runs: pixel offsets from CRPIX → SIP distortion (if `-SIP`) → linear transform
//! (CDi_j, or CDELTi·PCi_j, or legacy CROTA2) → projection plane (x, y) in degrees → native
//! spherical (φ, θ) by the projection → celestial by the spherical rotation defined by CRVAL,
//! LONPOLE and LATPOLE (Paper II §2.4) → ICRS (galactic frames are rotated; FK5 is taken as ICRS,
//! a difference of ~20 mas). World → pixel is the exact inverse, with SIP inverted by Newton
//! iteration. Pixel coordinates follow FITS: the centre of the first pixel is 1.0.
//!
//! Headers colo cannot use (no celestial axis pair, unsupported projection, FK4 or ecliptic
//! frames, singular matrices) give an error saying which, so ingest can report and skip the file.

pub mod projection;
pub mod spectral;

use crate::fits::Header;
pub use projection::Projection;
pub use spectral::SpectralAxis;

const D2R: f64 = std::f64::consts::PI / 180.0;
const R2D: f64 = 180.0 / std::f64::consts::PI;

/// ICRS → Galactic rotation (Hipparcos definition, ESA 1997 vol. 1 §1.5.3).
const ICRS_TO_GALACTIC: [[f64; 3]; 3] = [
    [
        -0.054_875_560_416_215_4,
        -0.873_437_090_234_885,
        -0.483_835_015_548_713_2,
    ],
    [
        0.494_109_427_875_583_7,
        -0.444_829_629_960_011_2,
        0.746_982_244_497_219,
    ],
    [
        -0.867_666_149_019_004_7,
        -0.198_076_373_431_201_5,
        0.455_983_776_175_066_9,
    ],
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame {
    Icrs,
    Galactic,
}

/// SIP distortion polynomials (Shupe et al. 2005).
#[derive(Debug, Clone, PartialEq)]
struct Sip {
    a: Vec<(i32, i32, f64)>,
    b: Vec<(i32, i32, f64)>,
}

impl Sip {
    fn from_header(h: &Header) -> Option<Sip> {
        let terms = |prefix: &str| -> Vec<(i32, i32, f64)> {
            let order = h.int(&format!("{prefix}_ORDER")).unwrap_or(0) as i32;
            let mut out = Vec::new();
            for p in 0..=order {
                for q in 0..=(order - p) {
                    if let Some(c) = h.float(&format!("{prefix}_{p}_{q}"))
                        && c != 0.0
                    {
                        out.push((p, q, c));
                    }
                }
            }
            out
        };
        h.int("A_ORDER")?;
        Some(Sip {
            a: terms("A"),
            b: terms("B"),
        })
    }

    fn apply(&self, u: f64, v: f64) -> (f64, f64) {
        let eval = |terms: &[(i32, i32, f64)]| {
            terms
                .iter()
                .map(|(p, q, c)| c * u.powi(*p) * v.powi(*q))
                .sum::<f64>()
        };
        (u + eval(&self.a), v + eval(&self.b))
    }

    /// (u, v) with `apply(u, v) = (x, y)`, by Newton iteration from (x, y).
    fn invert(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (mut u, mut v) = (x, y);
        for _ in 0..50 {
            let (fx, fy) = self.apply(u, v);
            let (ex, ey) = (fx - x, fy - y);
            if ex.abs() < 1e-10 && ey.abs() < 1e-10 {
                return Some((u, v));
            }
            let h = 1e-4;
            let (ax, ay) = self.apply(u + h, v);
            let (bx, by) = self.apply(u, v + h);
            let (j11, j21) = ((ax - fx) / h, (ay - fy) / h);
            let (j12, j22) = ((bx - fx) / h, (by - fy) / h);
            let det = j11 * j22 - j12 * j21;
            if det.abs() < 1e-15 {
                return None;
            }
            u -= (j22 * ex - j12 * ey) / det;
            v -= (-j21 * ex + j11 * ey) / det;
        }
        let (fx, fy) = self.apply(u, v);
        ((fx - x).abs() < 1e-6 && (fy - y).abs() < 1e-6).then_some((u, v))
    }
}

/// The celestial part of a WCS.
#[derive(Debug, Clone, PartialEq)]
pub struct Celestial {
    /// Axis indices (0-based) of longitude and latitude.
    pub lon_axis: usize,
    pub lat_axis: usize,
    pub frame: Frame,
    pub projection: Projection,
    /// Celestial coordinates of the native pole, and the native longitude of the celestial pole.
    alpha_p: f64,
    delta_p: f64,
    phi_p: f64,
}

/// The WCS of one image HDU.
#[derive(Debug, Clone, PartialEq)]
pub struct Wcs {
    /// Axis lengths, NAXIS1 first.
    pub axes: Vec<u64>,
    crpix: Vec<f64>,
    crval: Vec<f64>,
    /// Linear transform: intermediate_i = Σ_j matrix[i][j] · (p_j − crpix_j).
    matrix: Vec<Vec<f64>>,
    /// Inverse of the celestial 2×2 block.
    celestial_inverse: [[f64; 2]; 2],
    sip: Option<Sip>,
    pub celestial: Celestial,
    /// The spectral axis, when there is one colo can use; `spectral_problem` says why not otherwise.
    pub spectral: Option<SpectralAxis>,
    pub spectral_problem: Option<String>,
    /// The Stokes axis (0-based), if any.
    pub stokes_axis: Option<usize>,
}

impl Wcs {
    /// Reads the WCS of an image header. `Err` says why it has no usable celestial WCS.
    pub fn from_header(h: &Header) -> Result<Wcs, String> {
        let axes = h.axes();
        let n = axes.len();
        if n < 2 {
            return Err("fewer than two axes".into());
        }
        let ctypes: Vec<String> = (1..=n)
            .map(|i| h.text(&format!("CTYPE{i}")).unwrap_or_default())
            .collect();
        let lon_axis = ctypes
            .iter()
            .position(|c| c.starts_with("RA--") || c.starts_with("GLON") || c.starts_with("ELON"))
            .ok_or("no celestial longitude axis (CTYPEi RA---xxx or GLON-xxx)")?;
        let lat_axis = ctypes
            .iter()
            .position(|c| c.starts_with("DEC-") || c.starts_with("GLAT") || c.starts_with("ELAT"))
            .ok_or("no celestial latitude axis (CTYPEi DEC--xxx or GLAT-xxx)")?;
        let lon_type = &ctypes[lon_axis];
        let frame = if lon_type.starts_with("GLON") {
            Frame::Galactic
        } else if lon_type.starts_with("ELON") {
            return Err("ecliptic coordinates are not supported".into());
        } else {
            let radesys = h.text("RADESYS").or_else(|| h.text("RADECSYS"));
            let equinox = h.float("EQUINOX").or_else(|| h.float("EPOCH"));
            match radesys.as_deref() {
                Some("FK4") | Some("FK4-NO-E") => {
                    return Err("FK4 (B1950) coordinates are not supported".into());
                }
                None if equinox.is_some_and(|e| e < 1984.0) => {
                    return Err(format!(
                        "equinox {} (FK4) coordinates are not supported",
                        equinox.unwrap_or_default()
                    ));
                }
                _ => Frame::Icrs,
            }
        };
        let code = lon_type.get(5..8).unwrap_or("").trim_end_matches('-');
        let lat_code = ctypes[lat_axis].get(5..8).unwrap_or("");
        if code.is_empty() {
            return Err(format!("CTYPE {lon_type:?} names no projection"));
        }
        if code != lat_code {
            return Err(format!(
                "longitude and latitude axes use different projections ({lon_type}, {})",
                ctypes[lat_axis]
            ));
        }
        let pv: Vec<Option<f64>> = (0..30)
            .map(|m| h.float(&format!("PV{}_{m}", lat_axis + 1)))
            .collect();
        let crval: Vec<f64> = (1..=n)
            .map(|i| h.float(&format!("CRVAL{i}")).unwrap_or(0.0))
            .collect();
        let projection = if code == "NCP" {
            let d0 = crval[lat_axis];
            if d0.abs() < 1e-9 {
                return Err("NCP at the equator is undefined".into());
            }
            Projection::Sin {
                xi: 0.0,
                eta: 1.0 / (d0 * D2R).tan(),
            }
        } else {
            Projection::from_code(code, &pv)?
        };
        let crpix: Vec<f64> = (1..=n)
            .map(|i| h.float(&format!("CRPIX{i}")).unwrap_or(0.0))
            .collect();
        let matrix = linear_matrix(h, n, lon_axis, lat_axis);
        let (a, b, c, d) = (
            matrix[lon_axis][lon_axis],
            matrix[lon_axis][lat_axis],
            matrix[lat_axis][lon_axis],
            matrix[lat_axis][lat_axis],
        );
        let det = a * d - b * c;
        if !det.is_finite() || det.abs() < 1e-30 {
            return Err("the celestial CD/PC matrix is singular".into());
        }
        let celestial_inverse = [[d / det, -b / det], [-c / det, a / det]];
        let sip = lon_type
            .ends_with("-SIP")
            .then(|| Sip::from_header(h))
            .flatten();
        let (alpha_p, delta_p, phi_p) = celestial_pole(
            crval[lon_axis],
            crval[lat_axis],
            projection.theta0(),
            h.float("LONPOLE")
                .or_else(|| h.float(&format!("PV{}_3", lon_axis + 1))),
            h.float("LATPOLE")
                .or_else(|| h.float(&format!("PV{}_4", lon_axis + 1))),
        )?;
        let mut spectral = None;
        let mut spectral_problem = None;
        let mut stokes_axis = None;
        for (i, ctype) in ctypes.iter().enumerate() {
            if ctype == "STOKES" {
                stokes_axis = Some(i);
            } else if let Some(found) = SpectralAxis::from_header(h, i, ctype) {
                match found {
                    Ok(axis) => spectral = Some(axis),
                    Err(problem) => spectral_problem = Some(problem),
                }
            }
        }
        Ok(Wcs {
            axes,
            crpix,
            crval,
            matrix,
            celestial_inverse,
            sip,
            celestial: Celestial {
                lon_axis,
                lat_axis,
                frame,
                projection,
                alpha_p,
                delta_p,
                phi_p,
            },
            spectral,
            spectral_problem,
            stokes_axis,
        })
    }

    /// Reference pixel (1-based) of an axis.
    pub fn crpix(&self, axis: usize) -> f64 {
        self.crpix[axis]
    }

    /// ICRS (ra, dec) in degrees of the celestial pixel (`px` on the longitude axis, `py` on the
    /// latitude axis; other axes at their reference pixel). `None` off the projection's domain.
    pub fn sky(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let cel = &self.celestial;
        let (mut u, mut v) = (px - self.crpix[cel.lon_axis], py - self.crpix[cel.lat_axis]);
        if let Some(sip) = &self.sip {
            (u, v) = sip.apply(u, v);
        }
        let m = &self.matrix;
        let x = m[cel.lon_axis][cel.lon_axis] * u + m[cel.lon_axis][cel.lat_axis] * v;
        let y = m[cel.lat_axis][cel.lon_axis] * u + m[cel.lat_axis][cel.lat_axis] * v;
        let (phi, theta) = cel.projection.x2s(x, y)?;
        let (lon, lat) = native_to_celestial(phi, theta, cel.alpha_p, cel.delta_p, cel.phi_p);
        let (ra, dec) = match cel.frame {
            Frame::Icrs => (lon, lat),
            Frame::Galactic => galactic_to_icrs(lon, lat),
        };
        (ra.is_finite() && dec.is_finite()).then_some((ra.rem_euclid(360.0), dec))
    }

    /// Pixel (1-based, on the longitude and latitude axes) of an ICRS position; `None` when the
    /// position has no place on the projection (behind a zenithal projection's horizon, say).
    pub fn pixel(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        let cel = &self.celestial;
        let (lon, lat) = match cel.frame {
            Frame::Icrs => (ra, dec),
            Frame::Galactic => icrs_to_galactic(ra, dec),
        };
        let (phi, theta) = celestial_to_native(lon, lat, cel.alpha_p, cel.delta_p, cel.phi_p);
        let (x, y) = cel.projection.s2x(phi, theta)?;
        // Round trip through x2s: projections that fold (AZP, SIN with ξ/η) must land back.
        let (phi2, theta2) = cel.projection.x2s(x, y)?;
        let dphi = (phi - phi2 + 540.0).rem_euclid(360.0) - 180.0;
        if (theta - theta2).abs() > 1e-6 || (theta.abs() < 89.999_999 && dphi.abs() > 1e-6) {
            return None;
        }
        let inv = &self.celestial_inverse;
        let mut u = inv[0][0] * x + inv[0][1] * y;
        let mut v = inv[1][0] * x + inv[1][1] * y;
        if let Some(sip) = &self.sip {
            (u, v) = sip.invert(u, v)?;
        }
        Some((u + self.crpix[cel.lon_axis], v + self.crpix[cel.lat_axis]))
    }

    /// Mean pixel size on the sky in degrees (√|det| of the celestial matrix).
    pub fn pixel_scale_deg(&self) -> f64 {
        let inv = &self.celestial_inverse;
        (1.0 / (inv[0][0] * inv[1][1] - inv[0][1] * inv[1][0]).abs()).sqrt()
    }

    /// The world value (header units) of pixel `p` (1-based) on a linear axis, other axes at their
    /// reference pixels.
    pub fn linear_value(&self, axis: usize, p: f64) -> f64 {
        self.crval[axis] + self.matrix[axis][axis] * (p - self.crpix[axis])
    }

    /// The pixel (1-based) of a world value on a linear axis.
    pub fn linear_pixel(&self, axis: usize, value: f64) -> Option<f64> {
        let step = self.matrix[axis][axis];
        (step != 0.0).then(|| self.crpix[axis] + (value - self.crval[axis]) / step)
    }

    /// Vacuum wavelengths (m) at the outer edges of the spectral axis, smallest first.
    pub fn wavelength_range_m(&self) -> Option<(f64, f64)> {
        let s = self.spectral.as_ref()?;
        let n = self.axes[s.axis] as f64;
        let a = s.wavelength_m(self.linear_value(s.axis, 0.5))?;
        let b = s.wavelength_m(self.linear_value(s.axis, n + 0.5))?;
        Some((a.min(b), a.max(b)))
    }

    /// The Stokes parameters along the Stokes axis (`I`, `Q`, `RR`, ...), in axis order.
    pub fn stokes(&self) -> Vec<&'static str> {
        let Some(axis) = self.stokes_axis else {
            return Vec::new();
        };
        (1..=self.axes[axis])
            .filter_map(|p| stokes_name(self.linear_value(axis, p as f64).round() as i64))
            .collect()
    }
}

/// The Stokes parameter named by a FITS Stokes code (WCS Paper I Table 7).
pub fn stokes_name(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "I",
        2 => "Q",
        3 => "U",
        4 => "V",
        -1 => "RR",
        -2 => "LL",
        -3 => "RL",
        -4 => "LR",
        -5 => "XX",
        -6 => "YY",
        -7 => "XY",
        -8 => "YX",
        _ => return None,
    })
}

/// The FITS code of a Stokes parameter name.
pub fn stokes_code(name: &str) -> Option<i64> {
    (-8..=4).find(|&c| stokes_name(c) == Some(name))
}

fn linear_matrix(h: &Header, n: usize, lon_axis: usize, lat_axis: usize) -> Vec<Vec<f64>> {
    let has_cd = (1..=n).any(|i| (1..=n).any(|j| h.contains(&format!("CD{i}_{j}"))));
    let cdelt: Vec<f64> = (1..=n)
        .map(|i| h.float(&format!("CDELT{i}")).unwrap_or(1.0))
        .collect();
    let mut m = vec![vec![0.0; n]; n];
    if has_cd {
        for (i, row) in m.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = h.float(&format!("CD{}_{}", i + 1, j + 1)).unwrap_or(0.0);
            }
        }
        // Axes without any CD card (a spectral axis beside a CD celestial pair) use CDELT.
        for (i, row) in m.iter_mut().enumerate() {
            if row.iter().all(|c| *c == 0.0) {
                row[i] = cdelt[i];
            }
        }
        return m;
    }
    // PCi_j, or the pre-standard PC00i00j form (Paper I draft) still found in old archives.
    let pc_value = |i: usize, j: usize| {
        h.float(&format!("PC{i}_{j}"))
            .or_else(|| h.float(&format!("PC{i:03}{j:03}")))
    };
    let has_pc = (1..=n).any(|i| (1..=n).any(|j| pc_value(i, j).is_some()));
    for (i, row) in m.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let pc = pc_value(i + 1, j + 1).unwrap_or(if i == j { 1.0 } else { 0.0 });
            *cell = cdelt[i] * pc;
        }
    }
    let crota = h
        .float(&format!("CROTA{}", lat_axis + 1))
        .or_else(|| h.float(&format!("CROTA{}", lon_axis + 1)));
    if !has_pc && let Some(rho) = crota.filter(|r| *r != 0.0) {
        let (s, c) = ((rho * D2R).sin(), (rho * D2R).cos());
        let (d1, d2) = (cdelt[lon_axis], cdelt[lat_axis]);
        m[lon_axis][lon_axis] = d1 * c;
        m[lon_axis][lat_axis] = -d2 * s;
        m[lat_axis][lon_axis] = d1 * s;
        m[lat_axis][lat_axis] = d2 * c;
    }
    m
}

/// (α_p, δ_p, φ_p) from CRVAL, θ0 and LONPOLE/LATPOLE (Paper II §2.4, eqs. 8–11).
fn celestial_pole(
    alpha0: f64,
    delta0: f64,
    theta0: f64,
    lonpole: Option<f64>,
    latpole: Option<f64>,
) -> Result<(f64, f64, f64), String> {
    let phi0 = 0.0;
    let phi_p = lonpole.unwrap_or(if delta0 >= theta0 { 0.0 } else { 180.0 });
    if theta0 == 90.0 {
        return Ok((alpha0, delta0, phi_p));
    }
    let latpole = latpole.unwrap_or(90.0);
    let dphi = (phi_p - phi0) * D2R;
    let (st0, ct0) = ((theta0 * D2R).sin(), (theta0 * D2R).cos());
    let a = st0.atan2(ct0 * dphi.cos()) * R2D;
    let denom = (1.0 - ct0 * ct0 * dphi.sin().powi(2)).sqrt();
    let ratio = (delta0 * D2R).sin() / denom;
    if ratio.abs() > 1.0 + 1e-12 {
        return Err("no celestial pole satisfies CRVAL and LONPOLE".into());
    }
    let b = ratio.clamp(-1.0, 1.0).acos() * R2D;
    let fold = |d: f64| {
        if d > 180.0 {
            d - 360.0
        } else if d < -180.0 {
            d + 360.0
        } else {
            d
        }
    };
    let candidates: Vec<f64> = [fold(a + b), fold(a - b)]
        .into_iter()
        .filter(|d| d.abs() <= 90.0 + 1e-10)
        .map(|d| d.clamp(-90.0, 90.0))
        .collect();
    let delta_p = candidates
        .iter()
        .copied()
        .min_by(|x, y| (x - latpole).abs().total_cmp(&(y - latpole).abs()))
        .ok_or("no celestial pole within ±90°")?;
    let alpha_p = if (delta_p - 90.0).abs() < 1e-12 {
        alpha0 + phi_p - phi0 - 180.0
    } else if (delta_p + 90.0).abs() < 1e-12 {
        alpha0 - phi_p + phi0
    } else {
        let (sd0, cd0) = ((delta0 * D2R).sin(), (delta0 * D2R).cos());
        let (sdp, cdp) = ((delta_p * D2R).sin(), (delta_p * D2R).cos());
        if cd0.abs() < 1e-15 {
            alpha0
        } else {
            let y = dphi.sin() * ct0 / cd0;
            let x = (st0 - sdp * sd0) / (cdp * cd0);
            alpha0 - y.atan2(x) * R2D
        }
    };
    Ok((alpha_p, delta_p, phi_p))
}

fn native_to_celestial(phi: f64, theta: f64, ap: f64, dp: f64, pp: f64) -> (f64, f64) {
    let (st, ct) = ((theta * D2R).sin(), (theta * D2R).cos());
    let (sdp, cdp) = ((dp * D2R).sin(), (dp * D2R).cos());
    let dphi = (phi - pp) * D2R;
    let lon = ap + (-ct * dphi.sin()).atan2(st * cdp - ct * sdp * dphi.cos()) * R2D;
    let lat = (st * sdp + ct * cdp * dphi.cos()).clamp(-1.0, 1.0).asin() * R2D;
    (lon, lat)
}

fn celestial_to_native(lon: f64, lat: f64, ap: f64, dp: f64, pp: f64) -> (f64, f64) {
    let (sd, cd) = ((lat * D2R).sin(), (lat * D2R).cos());
    let (sdp, cdp) = ((dp * D2R).sin(), (dp * D2R).cos());
    let da = (lon - ap) * D2R;
    let phi = pp + (-cd * da.sin()).atan2(sd * cdp - cd * sdp * da.cos()) * R2D;
    let theta = (sd * sdp + cd * cdp * da.cos()).clamp(-1.0, 1.0).asin() * R2D;
    let phi = (phi + 180.0).rem_euclid(360.0) - 180.0;
    (phi, theta)
}

fn to_vector(lon: f64, lat: f64) -> [f64; 3] {
    let (l, b) = (lon * D2R, lat * D2R);
    [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
}

fn from_vector(v: [f64; 3]) -> (f64, f64) {
    let lon = v[1].atan2(v[0]) * R2D;
    let lat = v[2].clamp(-1.0, 1.0).asin() * R2D;
    (lon.rem_euclid(360.0), lat)
}

/// Galactic (l, b) → ICRS (ra, dec), degrees.
pub fn galactic_to_icrs(l: f64, b: f64) -> (f64, f64) {
    let g = to_vector(l, b);
    let m = &ICRS_TO_GALACTIC;
    from_vector([
        m[0][0] * g[0] + m[1][0] * g[1] + m[2][0] * g[2],
        m[0][1] * g[0] + m[1][1] * g[1] + m[2][1] * g[2],
        m[0][2] * g[0] + m[1][2] * g[1] + m[2][2] * g[2],
    ])
}

/// ICRS (ra, dec) → Galactic (l, b), degrees.
pub fn icrs_to_galactic(ra: f64, dec: f64) -> (f64, f64) {
    let e = to_vector(ra, dec);
    let m = &ICRS_TO_GALACTIC;
    from_vector([
        m[0][0] * e[0] + m[0][1] * e[1] + m[0][2] * e[2],
        m[1][0] * e[0] + m[1][1] * e[1] + m[1][2] * e[2],
        m[2][0] * e[0] + m[2][1] * e[1] + m[2][2] * e[2],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::Value;

    fn tan_header() -> Header {
        let mut h = Header::default();
        for (k, v) in [
            ("NAXIS", Value::Int(2)),
            ("NAXIS1", Value::Int(100)),
            ("NAXIS2", Value::Int(100)),
            ("CTYPE1", Value::Str("RA---TAN".into())),
            ("CTYPE2", Value::Str("DEC--TAN".into())),
            ("CRVAL1", Value::Float(150.0)),
            ("CRVAL2", Value::Float(2.0)),
            ("CRPIX1", Value::Float(50.5)),
            ("CRPIX2", Value::Float(50.5)),
            ("CDELT1", Value::Float(-0.001)),
            ("CDELT2", Value::Float(0.001)),
        ] {
            h.set(k, v, "");
        }
        h
    }

    #[test]
    fn reference_pixel_maps_to_crval_and_back() {
        let wcs = Wcs::from_header(&tan_header()).expect("wcs");
        let (ra, dec) = wcs.sky(50.5, 50.5).expect("on sky");
        assert!((ra - 150.0).abs() < 1e-12 && (dec - 2.0).abs() < 1e-12);
        // RA grows to the left (CDELT1 < 0).
        let (ra_left, _) = wcs.sky(40.5, 50.5).expect("on sky");
        assert!(ra_left > 150.0);
        for (px, py) in [(1.0, 1.0), (100.0, 3.0), (77.25, 99.5)] {
            let (ra, dec) = wcs.sky(px, py).expect("on sky");
            let (qx, qy) = wcs.pixel(ra, dec).expect("on image");
            assert!((px - qx).abs() < 1e-8 && (py - qy).abs() < 1e-8);
        }
    }

    #[test]
    fn galactic_round_trip_and_known_point() {
        // The galactic centre is at ICRS (266.405, −28.936).
        let (ra, dec) = galactic_to_icrs(0.0, 0.0);
        assert!((ra - 266.405).abs() < 1e-3 && (dec + 28.936).abs() < 1e-3);
        let (l, b) = icrs_to_galactic(ra, dec);
        assert!((l.rem_euclid(360.0)).min(360.0 - l) < 1e-9 && b.abs() < 1e-9);
    }

    #[test]
    fn unusable_headers_say_why() {
        let mut h = tan_header();
        h.set("CTYPE1", Value::Str("PIXEL".into()), "");
        assert!(
            Wcs::from_header(&h)
                .expect_err("no lon")
                .contains("longitude")
        );
        let mut h = tan_header();
        h.set("CTYPE1", Value::Str("RA---XYZ".into()), "");
        h.set("CTYPE2", Value::Str("DEC--XYZ".into()), "");
        assert!(Wcs::from_header(&h).expect_err("bad proj").contains("XYZ"));
        let mut h = tan_header();
        h.set("RADESYS", Value::Str("FK4".into()), "");
        assert!(Wcs::from_header(&h).expect_err("fk4").contains("FK4"));
    }
}
