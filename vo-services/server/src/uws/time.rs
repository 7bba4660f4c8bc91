//! UWS times: ISO 8601 UTC with `Z` (UWS 1.1 §2.2.3.5), written and read without a date crate.

/// ISO 8601 UTC with `Z` (UWS 1.1 §2.2.3.5).
pub fn iso8601(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Parses `YYYY-MM-DD[Thh:mm:ss[.sss]][Z]` (UTC) into seconds since the epoch.
pub fn parse_iso8601(text: &str) -> Option<u64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00:00"));
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let time = time.split('.').next()?;
    let mut time_parts = time.split(':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (
        time_parts.next()??,
        time_parts.next().flatten().unwrap_or(0),
        time_parts.next().flatten().unwrap_or(0),
    );
    // Years past 9999 are not ISO 8601's basic form (and overflowed the seconds: found by
    // fuzzing a UWS DESTRUCTION).
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + hh * 3600 + mm * 60 + ss)
}

// Howard Hinnant's civil-date algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_round_trips() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_iso8601("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_iso8601("2026-11-18T11:06:40.123"),
            Some(1_795_000_000)
        );
        assert_eq!(parse_iso8601("2026-13-18"), None);
        assert_eq!(parse_iso8601("9999-12-31T23:59:59Z"), Some(253_402_300_799));
        assert_eq!(parse_iso8601("99999999999999-01-01"), None);
    }
}
