//! Spectral axes (FITS WCS Paper III, Greisen et al. 2006) as wavelengths in metres.
//!
//! Linear axes in frequency (FREQ), vacuum or air wavelength (WAVE, AWAV), radio, optical and
//! relativistic velocity (VRAD, VOPT/FELO, VELO) and redshift (ZOPT), with the classic AIPS
//! `VELO-xxx` convention read through VELREF (radio when VELREF > 256, else optical). Velocities
//! need the rest frequency (RESTFRQ/RESTFREQ) or rest wavelength (RESTWAV); without it the axis
//! has no wavelengths and the caller reports that.

use crate::fits::Header;

/// Speed of light, m/s.
pub const C_M_PER_S: f64 = 299_792_458.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpectralKind {
    Frequency,
    Wavelength,
    AirWavelength,
    RadioVelocity,
    OpticalVelocity,
    RelativisticVelocity,
    Redshift,
}

/// A spectral axis: its kind, the factor from its unit to SI, and the rest frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralAxis {
    /// Index of the axis (0-based; NAXIS1 is 0).
    pub axis: usize,
    pub kind: SpectralKind,
    /// Multiply a header value by this to get Hz, m or m/s.
    pub to_si: f64,
    pub rest_frequency_hz: Option<f64>,
}

impl SpectralAxis {
    /// The spectral axis described by CTYPE `ctype` on axis `axis`, if it is one. `Err` for a
    /// spectral axis colo cannot use (non-linear algorithm codes, unknown units).
    pub fn from_header(
        header: &Header,
        axis: usize,
        ctype: &str,
    ) -> Option<Result<SpectralAxis, String>> {
        let code = ctype.get(..4)?;
        let rest = &ctype[4.min(ctype.len())..];
        let velref = header.int("VELREF").unwrap_or(0);
        let kind = match code {
            "FREQ" => SpectralKind::Frequency,
            "WAVE" => SpectralKind::Wavelength,
            "AWAV" => SpectralKind::AirWavelength,
            "VRAD" => SpectralKind::RadioVelocity,
            "VOPT" | "FELO" => SpectralKind::OpticalVelocity,
            "ZOPT" => SpectralKind::Redshift,
            "VELO" if rest.is_empty() => SpectralKind::RelativisticVelocity,
            // AIPS convention (VELO-LSR, VELO-HEL, ...).
            "VELO" if velref > 256 => SpectralKind::RadioVelocity,
            "VELO" => SpectralKind::OpticalVelocity,
            _ => return None,
        };
        let algorithm = rest.trim_start_matches('-');
        // AIPS suffixes name a frame (LSR, HEL, OBS, ...); FITS ones (F2W, ...) a non-linear law.
        let aips_frame = matches!(
            algorithm,
            "" | "LSR" | "LSRK" | "LSRD" | "HEL" | "OBS" | "BAR" | "GEO" | "TOP"
        );
        if !aips_frame {
            return Some(Err(format!(
                "spectral axis {ctype}: non-linear algorithm {algorithm} is not supported"
            )));
        }
        let unit = header
            .text(&format!("CUNIT{}", axis + 1))
            .unwrap_or_default();
        let to_si = match unit_to_si(kind, &unit) {
            Some(f) => f,
            None => {
                return Some(Err(format!(
                    "spectral axis {ctype}: unit {unit:?} is not understood"
                )));
            }
        };
        let rest_frequency_hz = header
            .float("RESTFRQ")
            .or_else(|| header.float("RESTFREQ"))
            .filter(|f| *f > 0.0)
            .or_else(|| {
                header
                    .float("RESTWAV")
                    .filter(|w| *w > 0.0)
                    .map(|w| C_M_PER_S / w)
            });
        Some(Ok(SpectralAxis {
            axis,
            kind,
            to_si,
            rest_frequency_hz,
        }))
    }

    /// Whether values convert to wavelengths (velocities need a rest frequency).
    pub fn has_wavelengths(&self) -> bool {
        !self.needs_rest() || self.rest_frequency_hz.is_some()
    }

    fn needs_rest(&self) -> bool {
        matches!(
            self.kind,
            SpectralKind::RadioVelocity
                | SpectralKind::OpticalVelocity
                | SpectralKind::RelativisticVelocity
                | SpectralKind::Redshift
        )
    }

    /// Vacuum wavelength (m) of an axis value in header units.
    pub fn wavelength_m(&self, value: f64) -> Option<f64> {
        let v = value * self.to_si;
        let rest_hz = self.rest_frequency_hz;
        let rest_m = rest_hz.map(|f| C_M_PER_S / f);
        let lambda = match self.kind {
            SpectralKind::Frequency => (v > 0.0).then(|| C_M_PER_S / v)?,
            SpectralKind::Wavelength => v,
            // Air to vacuum is < 0.03 %: within what ObsCore bounds need, and stated in the note.
            SpectralKind::AirWavelength => v,
            SpectralKind::RadioVelocity => {
                let nu = rest_hz? * (1.0 - v / C_M_PER_S);
                (nu > 0.0).then(|| C_M_PER_S / nu)?
            }
            SpectralKind::OpticalVelocity => rest_m? * (1.0 + v / C_M_PER_S),
            SpectralKind::Redshift => rest_m? * (1.0 + v),
            SpectralKind::RelativisticVelocity => {
                let beta = v / C_M_PER_S;
                if beta.abs() >= 1.0 {
                    return None;
                }
                rest_m? * ((1.0 + beta) / (1.0 - beta)).sqrt()
            }
        };
        (lambda.is_finite() && lambda > 0.0).then_some(lambda)
    }

    /// The axis value (header units) of a vacuum wavelength in metres: the inverse of
    /// [`SpectralAxis::wavelength_m`].
    pub fn value_of_wavelength(&self, lambda_m: f64) -> Option<f64> {
        if lambda_m.is_nan() || lambda_m <= 0.0 {
            return None;
        }
        let rest_hz = self.rest_frequency_hz;
        let rest_m = rest_hz.map(|f| C_M_PER_S / f);
        let si = match self.kind {
            SpectralKind::Frequency => C_M_PER_S / lambda_m,
            SpectralKind::Wavelength | SpectralKind::AirWavelength => lambda_m,
            SpectralKind::RadioVelocity => C_M_PER_S * (1.0 - (C_M_PER_S / lambda_m) / rest_hz?),
            SpectralKind::OpticalVelocity => C_M_PER_S * (lambda_m / rest_m? - 1.0),
            SpectralKind::Redshift => lambda_m / rest_m? - 1.0,
            SpectralKind::RelativisticVelocity => {
                let r2 = (lambda_m / rest_m?).powi(2);
                C_M_PER_S * (r2 - 1.0) / (r2 + 1.0)
            }
        };
        Some(si / self.to_si)
    }
}

fn unit_to_si(kind: SpectralKind, unit: &str) -> Option<f64> {
    let unit = unit.trim();
    let f = match kind {
        SpectralKind::Frequency => match unit {
            "" | "Hz" | "HZ" => 1.0,
            "kHz" => 1e3,
            "MHz" => 1e6,
            "GHz" => 1e9,
            _ => return None,
        },
        SpectralKind::Wavelength | SpectralKind::AirWavelength => match unit {
            "" | "m" => 1.0,
            "cm" => 1e-2,
            "mm" => 1e-3,
            "um" | "micron" => 1e-6,
            "nm" => 1e-9,
            "Angstrom" | "angstrom" | "ANGSTROM" | "AA" => 1e-10,
            _ => return None,
        },
        SpectralKind::RadioVelocity
        | SpectralKind::OpticalVelocity
        | SpectralKind::RelativisticVelocity => match unit {
            "" | "m/s" | "m s-1" | "M/S" => 1.0,
            "km/s" | "km s-1" | "KM/S" => 1e3,
            _ => return None,
        },
        SpectralKind::Redshift => match unit {
            "" => 1.0,
            _ => return None,
        },
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::Value;

    fn header(cards: &[(&str, Value)]) -> Header {
        let mut h = Header::default();
        for (k, v) in cards {
            h.set(k, v.clone(), "");
        }
        h
    }

    #[test]
    fn frequency_and_velocity_axes_convert_to_wavelength_and_back() {
        let h = header(&[
            ("CUNIT3", Value::Str("km/s".into())),
            ("RESTFRQ", Value::Float(88.6318e9)),
        ]);
        let vrad = SpectralAxis::from_header(&h, 2, "VRAD")
            .expect("spectral")
            .expect("usable");
        let lambda = vrad.wavelength_m(10.0).expect("wavelength");
        // ν = ν0 (1 − v/c) for radio velocity.
        let expected = C_M_PER_S / (88.6318e9 * (1.0 - 1e4 / C_M_PER_S));
        assert!((lambda - expected).abs() / expected < 1e-12);
        let back = vrad.value_of_wavelength(lambda).expect("inverse");
        assert!((back - 10.0).abs() < 1e-9);

        let freq =
            SpectralAxis::from_header(&header(&[("CUNIT4", Value::Str("GHz".into()))]), 3, "FREQ")
                .expect("spectral")
                .expect("usable");
        assert!((freq.wavelength_m(1.5).expect("λ") - C_M_PER_S / 1.5e9).abs() < 1e-12);
    }

    #[test]
    fn velocity_without_rest_frequency_has_no_wavelengths() {
        let h = header(&[("CUNIT3", Value::Str("m/s".into()))]);
        let vopt = SpectralAxis::from_header(&h, 2, "VOPT")
            .expect("spectral")
            .expect("usable");
        assert!(!vopt.has_wavelengths());
        assert_eq!(vopt.wavelength_m(1000.0), None);
    }

    #[test]
    fn non_linear_and_non_spectral_axes() {
        let h = Header::default();
        assert!(
            SpectralAxis::from_header(&h, 2, "WAVE-F2W")
                .expect("spectral")
                .is_err()
        );
        assert!(SpectralAxis::from_header(&h, 2, "STOKES").is_none());
        let aips =
            SpectralAxis::from_header(&header(&[("VELREF", Value::Int(257))]), 2, "VELO-LSR")
                .expect("spectral")
                .expect("usable");
        assert_eq!(aips.kind, SpectralKind::RadioVelocity);
    }
}
