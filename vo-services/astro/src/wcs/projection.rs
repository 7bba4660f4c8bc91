//! Celestial projections of FITS WCS Paper II (Calabretta & Greisen 2002, A&A 395, 1077), both
//! ways: native spherical (φ, θ) ↔ projection plane (x, y), everything in degrees.
//!
//! Zenithal: AZP (μ, γ), TAN, STG, SIN (ξ, η), ARC, ZPN, ZEA. Cylindrical: CAR, CEA (λ), MER.
//! Pseudo-cylindrical: SFL (GLS), PAR, MOL, AIT. Each `x2s` returns `None` outside the projection's
//! domain, which is how corners of all-sky maps are recognised.

use std::f64::consts::PI;

const R2D: f64 = 180.0 / PI;
const D2R: f64 = PI / 180.0;

fn sind(a: f64) -> f64 {
    (a * D2R).sin()
}
fn cosd(a: f64) -> f64 {
    (a * D2R).cos()
}
fn atan2d(y: f64, x: f64) -> f64 {
    y.atan2(x) * R2D
}
fn asind(v: f64) -> Option<f64> {
    if v.abs() > 1.0 + 1e-12 {
        None
    } else {
        Some(v.clamp(-1.0, 1.0).asin() * R2D)
    }
}

/// One projection with its parameters (PVi_m of the latitude axis).
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Azp { mu: f64, gamma_deg: f64 },
    Tan,
    Stg,
    Sin { xi: f64, eta: f64 },
    Arc,
    Zpn { coefficients: Vec<f64> },
    Zea,
    Car,
    Cea { lambda: f64 },
    Mer,
    Sfl,
    Par,
    Mol,
    Ait,
}

impl Projection {
    /// From the three-letter code and the latitude axis' `PVi_m` values (`pv[m]`).
    pub fn from_code(code: &str, pv: &[Option<f64>]) -> Result<Projection, String> {
        let p = |m: usize, default: f64| pv.get(m).copied().flatten().unwrap_or(default);
        Ok(match code {
            "AZP" => Projection::Azp {
                mu: p(1, 0.0),
                gamma_deg: p(2, 0.0),
            },
            "TAN" => Projection::Tan,
            "STG" => Projection::Stg,
            "SIN" => Projection::Sin {
                xi: p(1, 0.0),
                eta: p(2, 0.0),
            },
            "NCP" => {
                // NCP is SIN with ξ = 0, η = cot δ0; the caller passes η through pv[2].
                Projection::Sin {
                    xi: 0.0,
                    eta: p(2, 0.0),
                }
            }
            "ARC" => Projection::Arc,
            "ZPN" => {
                let coefficients: Vec<f64> = (0..30).map(|m| p(m, 0.0)).collect();
                if coefficients.iter().all(|c| *c == 0.0) {
                    return Err("ZPN without PV coefficients".into());
                }
                Projection::Zpn { coefficients }
            }
            "ZEA" => Projection::Zea,
            "CAR" => Projection::Car,
            "CEA" => {
                let lambda = p(1, 1.0);
                if !(lambda > 0.0 && lambda <= 1.0) {
                    return Err(format!("CEA with λ = {lambda} (must be in (0, 1])"));
                }
                Projection::Cea { lambda }
            }
            "MER" => Projection::Mer,
            "SFL" | "GLS" => Projection::Sfl,
            "PAR" => Projection::Par,
            "MOL" => Projection::Mol,
            "AIT" => Projection::Ait,
            other => return Err(format!("projection {other} is not supported")),
        })
    }

    /// Native latitude of the fiducial point: 90° for zenithal projections, 0° otherwise.
    pub fn theta0(&self) -> f64 {
        match self {
            Projection::Azp { .. }
            | Projection::Tan
            | Projection::Stg
            | Projection::Sin { .. }
            | Projection::Arc
            | Projection::Zpn { .. }
            | Projection::Zea => 90.0,
            _ => 0.0,
        }
    }

    /// Projection plane → native spherical.
    pub fn x2s(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let r = x.hypot(y);
        let phi_zenithal = if r == 0.0 { 0.0 } else { atan2d(x, -y) };
        match self {
            Projection::Tan => Some((phi_zenithal, atan2d(R2D, r))),
            Projection::Stg => Some((phi_zenithal, 90.0 - 2.0 * (r / (2.0 * R2D)).atan() * R2D)),
            Projection::Arc => (r <= 180.0).then_some((phi_zenithal, 90.0 - r)),
            Projection::Zea => {
                let s = r / (2.0 * R2D);
                Some((phi_zenithal, 90.0 - 2.0 * asind(s)?))
            }
            Projection::Sin { xi, eta } => sin_x2s(x, y, *xi, *eta),
            Projection::Azp { mu, gamma_deg } => azp_x2s(x, y, *mu, *gamma_deg),
            Projection::Zpn { coefficients } => {
                let zeta = zpn_solve(coefficients, r * D2R)?;
                Some((phi_zenithal, 90.0 - zeta * R2D))
            }
            Projection::Car => (y.abs() <= 90.0).then_some((x, y)),
            Projection::Cea { lambda } => Some((x, asind(lambda * y / R2D)?)),
            Projection::Mer => Some((x, 2.0 * (y / R2D).exp().atan() * R2D - 90.0)),
            Projection::Sfl => {
                if y.abs() > 90.0 {
                    return None;
                }
                let c = cosd(y);
                if c == 0.0 {
                    return (x == 0.0).then_some((0.0, y));
                }
                let phi = x / c;
                (phi.abs() <= 180.0 + 1e-9).then_some((phi, y))
            }
            Projection::Par => {
                let s = y / 180.0;
                let theta = 3.0 * asind(s)?;
                let d = 1.0 - 4.0 * s * s;
                if d == 0.0 {
                    return (x == 0.0).then_some((0.0, theta));
                }
                let phi = x / d;
                (phi.abs() <= 180.0 + 1e-9).then_some((phi, theta))
            }
            Projection::Mol => {
                let s = y / (2f64.sqrt() * R2D);
                let gamma = s.abs().le(&1.0).then(|| s.asin())?;
                let c = gamma.cos();
                let phi = if c == 0.0 {
                    0.0
                } else {
                    PI * x / (2.0 * 2f64.sqrt() * c)
                };
                if phi.abs() > 180.0 + 1e-9 {
                    return None;
                }
                Some((phi, asind((2.0 * gamma + (2.0 * gamma).sin()) / PI)?))
            }
            Projection::Ait => {
                let u = x * D2R / 4.0;
                let v = y * D2R / 2.0;
                let z2 = 1.0 - u * u - v * v;
                if z2 < 0.5 - 1e-12 {
                    return None;
                }
                let z = z2.sqrt();
                let phi = 2.0 * atan2d(z * x * D2R / 2.0, 2.0 * z2 - 1.0);
                Some((phi, asind(y * D2R * z)?))
            }
        }
    }

    /// Native spherical → projection plane.
    pub fn s2x(&self, phi: f64, theta: f64) -> Option<(f64, f64)> {
        let zenithal = |r: f64| (r * sind(phi), -r * cosd(phi));
        match self {
            Projection::Tan => (theta > 0.0).then(|| zenithal(R2D * cosd(theta) / sind(theta))),
            Projection::Stg => {
                (theta > -90.0).then(|| zenithal(2.0 * R2D * ((90.0 - theta) / 2.0 * D2R).tan()))
            }
            Projection::Arc => Some(zenithal(90.0 - theta)),
            Projection::Zea => Some(zenithal(2.0 * R2D * sind((90.0 - theta) / 2.0))),
            Projection::Sin { xi, eta } => {
                let t = 1.0 - sind(theta);
                if *xi == 0.0 && *eta == 0.0 && theta < 0.0 {
                    return None;
                }
                Some((
                    R2D * (cosd(theta) * sind(phi) + xi * t),
                    -R2D * (cosd(theta) * cosd(phi) - eta * t),
                ))
            }
            Projection::Azp { mu, gamma_deg } => {
                let denom = mu + sind(theta) + cosd(theta) * cosd(phi) * (gamma_deg * D2R).tan();
                if denom <= 0.0 {
                    return None;
                }
                let r = R2D * (mu + 1.0) * cosd(theta) / denom;
                Some((r * sind(phi), -r * cosd(phi) / cosd(*gamma_deg)))
            }
            Projection::Zpn { coefficients } => {
                let zeta = (90.0 - theta) * D2R;
                Some(zenithal(R2D * polynomial(coefficients, zeta)))
            }
            Projection::Car => Some((phi, theta)),
            Projection::Cea { lambda } => Some((phi, R2D * sind(theta) / lambda)),
            Projection::Mer => {
                (theta.abs() < 90.0).then(|| (phi, R2D * (((90.0 + theta) / 2.0) * D2R).tan().ln()))
            }
            Projection::Sfl => Some((phi * cosd(theta), theta)),
            Projection::Par => Some((
                phi * (2.0 * cosd(2.0 * theta / 3.0) - 1.0),
                180.0 * sind(theta / 3.0),
            )),
            Projection::Mol => {
                let gamma = mollweide_gamma(theta * D2R);
                Some((
                    2.0 * 2f64.sqrt() / PI * phi * gamma.cos(),
                    2f64.sqrt() * R2D * gamma.sin(),
                ))
            }
            Projection::Ait => {
                let g = R2D * (2.0 / (1.0 + cosd(theta) * cosd(phi / 2.0))).sqrt();
                Some((2.0 * g * cosd(theta) * sind(phi / 2.0), g * sind(theta)))
            }
        }
    }
}

fn polynomial(coefficients: &[f64], x: f64) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

/// The ζ in [0, π] with Σ P_m ζ^m = `target` on the polynomial's first rising stretch.
fn zpn_solve(coefficients: &[f64], target: f64) -> Option<f64> {
    // Where the polynomial stops rising (or π).
    let steps = 1800;
    let mut hi = PI;
    let mut prev = polynomial(coefficients, 0.0);
    for i in 1..=steps {
        let z = PI * i as f64 / steps as f64;
        let v = polynomial(coefficients, z);
        if v < prev {
            hi = PI * (i - 1) as f64 / steps as f64;
            break;
        }
        prev = v;
    }
    let (mut a, mut b) = (0.0, hi);
    if target < polynomial(coefficients, a) - 1e-12 || target > polynomial(coefficients, b) + 1e-12
    {
        return None;
    }
    for _ in 0..100 {
        let m = 0.5 * (a + b);
        if polynomial(coefficients, m) < target {
            a = m;
        } else {
            b = m;
        }
    }
    Some(0.5 * (a + b))
}

fn mollweide_gamma(theta: f64) -> f64 {
    if (theta.abs() - PI / 2.0).abs() < 1e-12 {
        return theta;
    }
    let target = PI * theta.sin();
    let mut g = theta;
    for _ in 0..50 {
        let f = 2.0 * g + (2.0 * g).sin() - target;
        let d = 2.0 + 2.0 * (2.0 * g).cos();
        if d.abs() < 1e-15 {
            break;
        }
        let step = f / d;
        g -= step;
        if step.abs() < 1e-15 {
            break;
        }
    }
    g
}

fn sin_x2s(x: f64, y: f64, xi: f64, eta: f64) -> Option<(f64, f64)> {
    let (xx, yy) = (x * D2R, y * D2R);
    if xi == 0.0 && eta == 0.0 {
        let r2 = xx * xx + yy * yy;
        if r2 > 1.0 + 1e-12 {
            return None;
        }
        let theta = r2.min(1.0).sqrt().acos() * R2D;
        let phi = if r2 == 0.0 { 0.0 } else { atan2d(x, -y) };
        return Some((phi, theta));
    }
    // Paper II eqs. 40–43.
    let a = xi * xi + eta * eta + 1.0;
    let b = xi * (xx - xi) + eta * (yy - eta);
    let c = (xx - xi).powi(2) + (yy - eta).powi(2) - 1.0;
    let disc = b * b - a * c;
    if disc < 0.0 {
        return None;
    }
    let candidates = [(-b + disc.sqrt()) / a, (-b - disc.sqrt()) / a];
    let sin_theta = candidates
        .into_iter()
        .filter(|s| s.abs() <= 1.0 + 1e-12)
        .max_by(|p, q| p.total_cmp(q))?
        .clamp(-1.0, 1.0);
    let t = 1.0 - sin_theta;
    let phi = atan2d(xx - xi * t, -(yy - eta * t));
    Some((phi, sin_theta.asin() * R2D))
}

fn azp_x2s(x: f64, y: f64, mu: f64, gamma_deg: f64) -> Option<(f64, f64)> {
    let cg = cosd(gamma_deg);
    let r = (x * x + y * y * cg * cg).sqrt();
    if r == 0.0 {
        return Some((0.0, 90.0));
    }
    let phi = atan2d(x, -y * cg);
    let rho = r / (R2D * (mu + 1.0) + y * sind(gamma_deg));
    let psi = atan2d(1.0, rho);
    let s = rho * mu / (rho * rho + 1.0).sqrt();
    let omega = asind(s)?;
    let t1 = psi - omega;
    let t2 = psi + omega + 180.0;
    let norm = |t: f64| if t > 180.0 { t - 360.0 } else { t };
    let (t1, t2) = (norm(t1), norm(t2));
    let valid = |t: f64| (-90.0 - 1e-9..=90.0 + 1e-9).contains(&t);
    let theta = match (valid(t1), valid(t2)) {
        (true, true) => {
            if (t1 - 90.0).abs() < (t2 - 90.0).abs() {
                t1
            } else {
                t2
            }
        }
        (true, false) => t1,
        (false, true) => t2,
        (false, false) => return None,
    };
    Some((phi, theta.clamp(-90.0, 90.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Projection> {
        vec![
            Projection::Azp {
                mu: 2.0,
                gamma_deg: 30.0,
            },
            Projection::Tan,
            Projection::Stg,
            Projection::Sin { xi: 0.0, eta: 0.0 },
            Projection::Sin { xi: 0.1, eta: 0.2 },
            Projection::Arc,
            Projection::Zpn {
                coefficients: vec![0.05, 0.975, -0.807, 0.337, -0.065, 0.01, 0.003, -0.001],
            },
            Projection::Zea,
            Projection::Car,
            Projection::Cea { lambda: 0.75 },
            Projection::Mer,
            Projection::Sfl,
            Projection::Par,
            Projection::Mol,
            Projection::Ait,
        ]
    }

    #[test]
    fn every_projection_round_trips_near_its_reference_point() {
        for p in all() {
            let t0 = p.theta0();
            for (dphi, dtheta) in [(0.0, 0.0), (10.0, -5.0), (-30.0, -20.0), (120.0, -40.0)] {
                let (phi, theta) = if t0 == 90.0 {
                    (dphi, 90.0 + dtheta)
                } else {
                    (dphi, dtheta)
                };
                let Some((x, y)) = p.s2x(phi, theta) else {
                    continue;
                };
                let (phi2, theta2) = p.x2s(x, y).unwrap_or_else(|| panic!("{p:?} at {x},{y}"));
                // The oblique SIN solves a quadratic whose discriminant vanishes at the pole:
                // there its precision is ~1e-6° (4 mas).
                let tolerance = if matches!(p, Projection::Sin { xi, .. } if xi != 0.0) {
                    1e-5
                } else {
                    1e-8
                };
                assert!(
                    (theta - theta2).abs() < tolerance,
                    "{p:?}: θ {theta} → {theta2}"
                );
                if (theta - 90.0).abs() > 1e-9 {
                    let d = ((phi - phi2 + 540.0) % 360.0) - 180.0;
                    assert!(d.abs() < 1e-8, "{p:?}: φ {phi} → {phi2}");
                }
            }
        }
    }

    #[test]
    fn all_sky_projections_refuse_points_off_the_map() {
        assert!(Projection::Ait.x2s(400.0, 0.0).is_none());
        assert!(
            Projection::Sin { xi: 0.0, eta: 0.0 }
                .x2s(60.0, 60.0)
                .is_none()
        );
        assert!(Projection::Tan.s2x(0.0, -10.0).is_none());
    }
}
