//! Names in queries: when a table or column is unknown, the closest published name is suggested
//! ("did you mean hip2?").

/// The closest name to `wanted` among `candidates` (edit distance ≤ 1/3 of its length).
pub fn nearest_name<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let limit = (wanted.len() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_name_suggests_close_spellings_only() {
        assert_eq!(
            nearest_name("hip3", ["hip2", "tables"]),
            Some("hip2".into())
        );
        assert_eq!(
            nearest_name("phot_g_mean_mg", ["phot_g_mean_mag", "ra"]),
            Some("phot_g_mean_mag".into())
        );
        assert_eq!(nearest_name("zzz", ["hip2", "tables"]), None);
    }
}
