//! Credentials that never print. A [`SecretString`] shows as `*****` in `Debug` and `Display`, so a
//! stray `{:?}` in a log, an error or a panic message cannot reveal it. A [`Redactor`] holds a
//! volume's secret values and scrubs them out of any text that came from a backend (whose error
//! messages may echo a URL or a header) before that text leaves the connector.
//!
//! Every secret value a volume is opened with, or that is read from the environment or a file, is
//! also remembered process-wide ([`scrub`]): the log writer passes every line through it, so a
//! dependency that prints a credential (a request signer's debug dump, an FTP client's `PASS` at
//! trace level) prints `*****` instead, at any level. [`scrub`] also masks the password of any
//! `scheme://user:password@host` URL.
//!
//! In `colo.toml` a secret is given inline (`password = "…"`), from the environment
//! (`password = { env = "VAR" }`) or from a file (`password = { file = "/run/secrets/x" }`).

use parking_lot::RwLock;
use serde::Deserialize;
use std::collections::BTreeSet;
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
        let resolved = match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env { env } => std::env::var(env)
                .map(SecretString)
                .map_err(|_| format!("environment variable {env} is not set")),
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| SecretString(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("cannot read secret file {file}: {e}")),
        };
        if let Ok(secret) = &resolved {
            remember(secret.expose());
        }
        resolved
    }
}

/// Every secret value this process has held, longest first (see [`scrub`]).
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers `secret` for [`scrub`] (and its percent-encoded form, as it shows in a URL).
pub fn remember(secret: &str) {
    if secret.is_empty() || KNOWN.read().iter().any(|s| s == secret) {
        return;
    }
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let mut known = KNOWN.write();
    let mut all: BTreeSet<String> = known.drain(..).collect();
    all.insert(secret.to_string());
    all.insert(encoded);
    known.extend(all);
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every remembered secret and every password in a `scheme://user:password@` URL
/// replaced by `*****`.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let known = KNOWN.read();
    let has_secret = known.iter().any(|s| text.contains(s.as_str()));
    let has_url_password = url_password_spans(text).next().is_some();
    if !has_secret && !has_url_password {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in known.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    let spans: Vec<(usize, usize)> = url_password_spans(&out).collect();
    for (start, end) in spans.into_iter().rev() {
        out.replace_range(start..end, MASK);
    }
    std::borrow::Cow::Owned(out)
}

/// Byte spans of the passwords in `scheme://user:password@host` URLs in `text` (a mask already
/// there is left alone).
fn url_password_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    text.match_indices("://").filter_map(move |(i, _)| {
        let rest = &text[i + 3..];
        let authority_end = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let at = authority.rfind('@')?;
        let colon = authority[..at].find(':')?;
        let password = &authority[colon + 1..at];
        (!password.is_empty() && password != MASK).then(|| (i + 3 + colon + 1, i + 3 + at))
    })
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
        for s in &secrets {
            remember(s);
        }
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
    fn scrub_masks_remembered_secrets_and_url_passwords() {
        remember("s3cr3t-remembered");
        let t = scrub(
            "Provider { secret_access_key: \"s3cr3t-remembered\" } PASS s3cr3t-remembered \
             ftp://u:other%2Fpw@host:21/x sftp://u@h/ http://h/a:b@c",
        );
        assert!(!t.contains("s3cr3t"), "{t}");
        assert!(!t.contains("other"), "{t}");
        assert!(t.contains("ftp://u:*****@host:21/x"), "{t}");
        assert!(t.contains("sftp://u@h/"), "{t}");
        assert!(
            t.contains("http://h/a:b@c"),
            "a path is not a password: {t}"
        );
        assert!(matches!(
            scrub("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
        remember("p@ss-remembered");
        assert_eq!(scrub("login=p%40ss%2Dremembered;"), "login=*****;");
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
