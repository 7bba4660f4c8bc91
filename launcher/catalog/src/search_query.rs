//! The catalogue's search syntax, as in ESA Datalabs' search box:
//! `domain:"Space Science" type:dataset mission:Gaia free words "a phrase"`.
//!
//! `facet:value` filters (a value with spaces in double quotes; the same facet twice means either
//! value), everything else is free text matched against titles, descriptions and the facet
//! fields, every word required, each also matching as a prefix (`hippar` finds Hipparcos).
//! Facets: `type` (dataset, volume, datalab-image), `domain`, `mission`, `instrument`,
//! `wavelength`. An unknown facet, an empty value or an unclosed quote is an error that says so.

use crate::error::{CatalogError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Facet {
    Type,
    Domain,
    Mission,
    Instrument,
    Wavelength,
}

pub const FACET_NAMES: &str = "type, domain, mission, instrument, wavelength";

impl Facet {
    pub const ALL: [Facet; 5] = [
        Facet::Type,
        Facet::Domain,
        Facet::Mission,
        Facet::Instrument,
        Facet::Wavelength,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Facet::Type => "type",
            Facet::Domain => "domain",
            Facet::Mission => "mission",
            Facet::Instrument => "instrument",
            Facet::Wavelength => "wavelength",
        }
    }

    /// The column holding the facet's value.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Facet::Type => "kind",
            other => other.as_str(),
        }
    }

    pub fn parse(name: &str) -> Option<Facet> {
        Facet::ALL
            .into_iter()
            .find(|f| f.as_str() == name.to_ascii_lowercase())
    }
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Free words and phrases, all required.
    pub text: Vec<String>,
    pub filters: Vec<(Facet, String)>,
}

fn bad(detail: impl Into<String>) -> CatalogError {
    CatalogError::BadQuery {
        detail: detail.into(),
    }
}

/// Longest query text accepted (a search box, not a document).
pub const MAX_QUERY_CHARS: usize = 1000;

impl SearchQuery {
    pub fn parse(text: &str) -> Result<SearchQuery> {
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(bad(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let mut query = SearchQuery::default();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            // A token: up to whitespace, with a quoted part kept whole.
            let start = i;
            let mut colon = None;
            let mut value = String::new();
            let mut word = String::new();
            while i < chars.len() && !chars[i].is_whitespace() {
                match chars[i] {
                    '"' => {
                        let close = chars[i + 1..]
                            .iter()
                            .position(|c| *c == '"')
                            .ok_or_else(|| bad(format!("unclosed quote at character {}", i + 1)))?;
                        let quoted: String = chars[i + 1..i + 1 + close].iter().collect();
                        if colon.is_some() {
                            value.push_str(&quoted);
                        } else {
                            word.push_str(&quoted);
                        }
                        i += close + 2;
                        continue;
                    }
                    ':' if colon.is_none() && !word.is_empty() && i > start => {
                        colon = Some(word.clone())
                    }
                    c if colon.is_some() => value.push(c),
                    c => word.push(c),
                }
                i += 1;
            }
            match colon {
                Some(name) => {
                    let facet = Facet::parse(&name).ok_or_else(|| {
                        bad(format!("unknown facet '{name}' (facets: {FACET_NAMES})"))
                    })?;
                    let value = value.trim().to_string();
                    if value.is_empty() {
                        return Err(bad(format!("{name}: needs a value, e.g. {name}:\"...\"")));
                    }
                    query.filters.push((facet, value));
                }
                None if !word.trim().is_empty() => query.text.push(word.trim().to_string()),
                None => {}
            }
        }
        Ok(query)
    }

    /// The FTS5 expression of the free text: each word or phrase quoted (so no FTS5 syntax gets
    /// through from the user) and matched as a prefix.
    pub(crate) fn fts_expression(&self) -> Option<String> {
        let parts: Vec<String> = self
            .text
            .iter()
            .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_quoted_values_and_free_words() {
        let q = SearchQuery::parse(
            r#"domain:"Space Science" type:dataset mission:Gaia parallax "proper motion""#,
        )
        .expect("parses");
        assert_eq!(
            q.filters,
            vec![
                (Facet::Domain, "Space Science".into()),
                (Facet::Type, "dataset".into()),
                (Facet::Mission, "Gaia".into())
            ]
        );
        assert_eq!(q.text, vec!["parallax", "proper motion"]);
        assert_eq!(
            q.fts_expression().as_deref(),
            Some(r#""parallax"* AND "proper motion"*"#)
        );
        assert_eq!(
            SearchQuery::parse("  ").expect("empty"),
            SearchQuery::default()
        );
    }

    #[test]
    fn fts_syntax_from_the_user_is_only_text() {
        let q = SearchQuery::parse(r#"NEAR(a b) OR x* -y ^z"#).expect("parses");
        let e = q.fts_expression().expect("text");
        assert_eq!(
            e,
            r#""NEAR(a"* AND "b)"* AND "OR"* AND "x*"* AND "-y"* AND "^z"*"#
        );
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let err = |q: &str| SearchQuery::parse(q).expect_err("refused").to_string();
        assert!(err("colour:red").contains("unknown facet 'colour'"));
        assert!(err("mission:").contains("needs a value"));
        assert!(err(r#"domain:"Space"#).contains("unclosed quote"));
        assert!(err(&"x".repeat(2000)).contains("longer than"));
    }
}
