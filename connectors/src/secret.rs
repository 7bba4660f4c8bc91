//! Credentials that never print. A [`SecretString`] shows as `*****` in `Debug` and `Display`, so a
//! stray `{:?}` in a log, an error or a panic message cannot reveal it. A [`Redactor`] holds a
//! volume's secret values and scrubs them out of any text that came from a backend (whose error
//! messages may echo a URL or a header) before that text leaves the connector.
//!
//! In `colo.toml` a secret is given inline (`password = "…"`), from the environment
//! (`password = { env = "VAR" }`) or from a file (`password = { file = "/run/secrets/x" }`).

use serde::Deserialize;
use std::fmt;

pub const MASK: &str = "*****";

#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself: only for handing to a backend's authentication.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Where a secret comes from, as written in the config.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SecretSource {
    Inline(SecretString),
    Env { env: String },
    File { file: String },
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str(MASK),
            SecretSource::Env { env } => write!(f, "{{ env = {env:?} }}"),
            SecretSource::File { file } => write!(f, "{{ file = {file:?} }}"),
        }
    }
}

impl SecretSource {
    /// Read the secret. The error says where it was looked for, never what it is.
    pub fn resolve(&self) -> Result<SecretString, String> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env { env } => std::env::var(env)
                .map(SecretString)
                .map_err(|_| format!("environment variable {env} is not set")),
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| SecretString(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("cannot read secret file {file}: {e}")),
        }
    }
}

/// Scrubs known secret values out of text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = SecretString>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.0)
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
            let encoded =
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            if encoded != *s && out.contains(encoded.as_str()) {
                out = out.replace(encoded.as_str(), MASK);
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "***** *****");
        let src = SecretSource::Inline(s);
        assert_eq!(format!("{src:?}"), "*****");
    }

    #[test]
    fn redactor_scrubs_plain_and_encoded() {
        let r = Redactor::new([SecretString::new("p@ss/word")]);
        let t = r.redact("login p@ss/word failed at ftp://u:p%40ss%2Fword@h");
        assert!(!t.contains("p@ss"), "{t}");
        assert!(!t.contains("p%40ss"), "{t}");
        assert_eq!(t.matches(MASK).count(), 2);
    }

    #[test]
    fn secret_sources_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "from-file\n").unwrap();
        let src = SecretSource::File {
            file: f.display().to_string(),
        };
        assert_eq!(src.resolve().unwrap().expose(), "from-file");
        let missing = SecretSource::Env {
            env: "COLO_TEST_SURELY_UNSET_VAR".into(),
        };
        let err = missing.resolve().unwrap_err();
        assert!(err.contains("COLO_TEST_SURELY_UNSET_VAR"));
    }
}
