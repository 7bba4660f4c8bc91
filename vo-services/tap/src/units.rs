//! Units for ADQL's `IN_UNIT` (ADQL 2.1 §4.9): unit strings as catalogues write them (VOUnits 1.0,
//! and the spellings astropy writes), parsed into a scale and the powers of base quantities, so a
//! value in one unit converts to another of the same kind by one factor.
//!
//! Understood: angles (deg, arcmin, arcsec, mas, uas, rad, mrad, hourangle), lengths (m with SI
//! prefixes, Angstrom, AU, pc, kpc, Mpc, Gpc, lyr, solRad, Rsun), times (s with prefixes, min, h, d,
//! yr, a, Myr, Gyr), frequencies (Hz with prefixes), flux densities (Jy, mJy, uJy), masses (g with
//! prefixes, solMass, Msun), magnitudes (mag, converting only to mag), and products, quotients and
//! powers of them: `km/s`, `mas/yr`, `mas.yr-1`, `m.s**-2`, `erg/s/cm2`... Dimensionless: `""`.

/// Base quantities whose powers make a unit's kind.
const BASES: usize = 6;
/// (angle, length, time, mass, flux density, magnitude)
type Powers = [i32; BASES];

/// A unit: `value [unit] × scale` is the value in the base units (rad, m, s, kg, Jy, mag).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    pub scale: f64,
    powers: Powers,
}

const DIMENSIONLESS: Unit = Unit {
    scale: 1.0,
    powers: [0; BASES],
};

fn base(index: usize, scale: f64) -> Unit {
    let mut powers = [0; BASES];
    powers[index] = 1;
    Unit { scale, powers }
}

const ANGLE: usize = 0;
const LENGTH: usize = 1;
const TIME: usize = 2;
const MASS: usize = 3;
const FLUX: usize = 4;
const MAG: usize = 5;

/// SI prefixes (VOUnits 1.0 §2.5), longest first so `da` wins over `d`.
const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("Y", 1e24),
    ("Z", 1e21),
    ("E", 1e18),
    ("P", 1e15),
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("h", 1e2),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("u", 1e-6),
    ("µ", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("f", 1e-15),
    ("a", 1e-18),
];

/// Units that take SI prefixes: (symbol, unit).
fn prefixable(symbol: &str) -> Option<Unit> {
    let year = 365.25 * 86_400.0;
    Some(match symbol {
        "m" => base(LENGTH, 1.0),
        "s" => base(TIME, 1.0),
        "g" => base(MASS, 1e-3),
        "Hz" => Unit {
            scale: 1.0,
            powers: [0, 0, -1, 0, 0, 0],
        },
        "Jy" => base(FLUX, 1.0),
        "rad" => base(ANGLE, 1.0),
        "pc" => base(LENGTH, 3.085_677_581_491_367e16),
        "yr" | "a" => base(TIME, year),
        "arcsec" => base(ANGLE, std::f64::consts::PI / 180.0 / 3600.0),
        _ => return None,
    })
}

/// Units that take no prefix.
fn plain(symbol: &str) -> Option<Unit> {
    let degree = std::f64::consts::PI / 180.0;
    Some(match symbol {
        "deg" | "degree" | "degrees" => base(ANGLE, degree),
        "arcmin" => base(ANGLE, degree / 60.0),
        "mas" => base(ANGLE, degree / 3.6e6),
        "uas" => base(ANGLE, degree / 3.6e9),
        "hourangle" => base(ANGLE, 15.0 * degree),
        "Angstrom" | "angstrom" | "AA" => base(LENGTH, 1e-10),
        "AU" | "au" => base(LENGTH, 1.495_978_707e11),
        "lyr" | "ly" => base(LENGTH, 9.460_730_472_580_8e15),
        "solRad" | "Rsun" => base(LENGTH, 6.957e8),
        "min" => base(TIME, 60.0),
        "h" => base(TIME, 3600.0),
        "d" => base(TIME, 86_400.0),
        "solMass" | "Msun" => base(MASS, 1.988_409_870_698_051e30),
        "mag" => base(MAG, 1.0),
        "erg" => Unit {
            scale: 1e-7,
            powers: [0, 2, -2, 1, 0, 0],
        },
        "W" => Unit {
            scale: 1.0,
            powers: [0, 2, -3, 1, 0, 0],
        },
        _ => return None,
    })
}

/// One symbol, possibly prefixed.
fn symbol(text: &str) -> Option<Unit> {
    if let Some(unit) = plain(text).or_else(|| prefixable(text)) {
        return Some(unit);
    }
    PREFIXES.iter().find_map(|(prefix, factor)| {
        let rest = text.strip_prefix(prefix)?;
        let unit = prefixable(rest)?;
        Some(Unit {
            scale: unit.scale * factor,
            ..unit
        })
    })
}

impl Unit {
    /// Parses a unit string; `None` when it is not understood.
    pub fn parse(text: &str) -> Option<Unit> {
        let text = text.trim();
        if text.is_empty() {
            return Some(DIMENSIONLESS);
        }
        let mut unit = DIMENSIONLESS;
        // Factors joined by `.`, `*` or ` ` multiply; each `/` divides the factor after it.
        let mut sign = 1;
        let mut token = String::new();
        let mut factors: Vec<(i32, String)> = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let power_marker = c == '*' && chars.get(i + 1) == Some(&'*');
            if power_marker {
                token.push_str("**");
                i += 2;
                continue;
            }
            if matches!(c, '.' | '*' | ' ' | '/') {
                if !token.is_empty() {
                    factors.push((sign, std::mem::take(&mut token)));
                }
                sign = if c == '/' { -1 } else { 1 };
            } else {
                token.push(c);
            }
            i += 1;
        }
        if !token.is_empty() {
            factors.push((sign, token));
        }
        for (sign, factor) in factors {
            let (name, power) = split_power(&factor)?;
            let one = symbol(name)?;
            let power = sign * power;
            unit.scale *= one.scale.powi(power);
            for (p, q) in unit.powers.iter_mut().zip(one.powers) {
                *p += q * power;
            }
        }
        Some(unit)
    }

    /// The factor that turns a value in `self` into one in `to`; `None` when they measure
    /// different kinds of quantity.
    pub fn factor_to(&self, to: &Unit) -> Option<f64> {
        (self.powers == to.powers).then(|| self.scale / to.scale)
    }
}

/// `name` and its power: `m2`, `s-1`, `m**2`, `m^2` (a bare name is power 1).
fn split_power(factor: &str) -> Option<(&str, i32)> {
    if let Some((name, power)) = factor.split_once("**").or_else(|| factor.split_once('^')) {
        let power = power.trim_matches(|c| c == '(' || c == ')');
        return Some((name, power.parse().ok()?));
    }
    let digits = factor
        .char_indices()
        .find(|&(_, c)| c == '-' || c == '+' || c.is_ascii_digit())
        .map(|(at, _)| at);
    match digits {
        Some(at) if at > 0 => Some((&factor[..at], factor[at..].parse().ok()?)),
        _ => Some((factor, 1)),
    }
}

/// The factor from `from` to `to`, or a message naming what is wrong.
pub fn conversion(from: &str, to: &str) -> Result<f64, String> {
    let source = Unit::parse(from).ok_or_else(|| format!("unit {from:?} is not understood"))?;
    let target = Unit::parse(to).ok_or_else(|| format!("unit {to:?} is not understood"))?;
    source.factor_to(&target).ok_or_else(|| {
        format!("{from:?} cannot be converted to {to:?}: not the same kind of quantity")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn common_catalogue_units_convert_like_astropy() {
        // Factors as astropy's Unit(from).to(to) gives them.
        for (from, to, factor) in [
            ("deg", "arcsec", 3600.0),
            ("mas", "deg", 1.0 / 3.6e6),
            ("mas/yr", "arcsec/yr", 1e-3),
            ("mas.yr-1", "deg/d", 1.0 / 3.6e6 / 365.25),
            ("km/s", "m.s**-1", 1e3),
            ("pc", "lyr", 3.261_563_777_167_433_6),
            ("kpc", "AU", 206_264_806.247_096_37),
            ("Angstrom", "nm", 0.1),
            ("GHz", "MHz", 1e3),
            ("mJy", "Jy", 1e-3),
            ("h", "min", 60.0),
            ("yr", "d", 365.25),
            ("mag", "mag", 1.0),
            ("erg/s/cm2", "W/m2", 1e-3),
            ("", "", 1.0),
        ] {
            let got = conversion(from, to).unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
            assert!(close(got, factor), "{from} -> {to}: {got} != {factor}");
        }
    }

    #[test]
    fn different_kinds_and_unknown_units_are_refused() {
        assert!(
            conversion("mas", "km")
                .unwrap_err()
                .contains("not the same kind")
        );
        assert!(conversion("mag", "Jy").is_err());
        assert!(conversion("Hz", "s").is_err(), "frequency is not time");
        assert!(
            conversion("furlong", "m")
                .unwrap_err()
                .contains("\"furlong\"")
        );
    }
}
