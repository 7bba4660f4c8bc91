//! Volume specs: the `[[volume]]` tables of `colo.toml` and the URL-like names of sources.
//!
//! A [`VolumeConfig`] is what the operator wrote (serde, unknown keys refused); a [`VolumeSpec`] is
//! the checked result: a [`Backend`] with its options and resolved secrets. Every error names the
//! volume and the key, and says what was expected; no error or `Debug` output contains a secret.
//!
//! Schemes: `s3://bucket/prefix`, `ftp://user@host:port/path`, `webdav://host:port/path` (plain
//! HTTP) and `webdavs://…` (HTTPS), `sftp://user@host:port/path` and its alias `sshfs://…`,
//! `http://…` and `https://…` directory trees, `file:///path`.

use crate::secret::{SecretSource, SecretString};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

pub const SCHEMES: &str = "s3, ftp, webdav, webdavs, sftp, sshfs, http, https, file";
pub const DEFAULT_METADATA_TTL_SECS: u64 = 60;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_RETRIES: u32 = 3;

/// One `[[volume]]` table as written in `colo.toml`. It serializes without its secrets (the
/// platform's database stores those sealed, apart).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    pub name: Option<String>,
    pub url: Option<String>,
    /// S3: endpoint URL of an S3-compatible store (default: AWS for `region`).
    pub endpoint: Option<String>,
    /// S3: region (default `us-east-1`).
    pub region: Option<String>,
    /// S3: address buckets as `endpoint/bucket` (default true) instead of `bucket.endpoint`.
    pub path_style: Option<bool>,
    /// S3: send unsigned requests (public buckets).
    pub anonymous: Option<bool>,
    pub access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<SecretSource>,
    /// FTP, WebDAV, SFTP: user name (overrides the one in the URL).
    pub username: Option<String>,
    /// FTP, WebDAV: password (overrides the one in the URL).
    #[serde(skip_serializing)]
    pub password: Option<SecretSource>,
    /// SFTP: private key file.
    pub key_file: Option<String>,
    /// SFTP: the private key itself (OpenSSH format), for volumes added through the platform's
    /// API, which may not name files on the server; colo keeps it in a 0600 file of its own.
    #[serde(skip_serializing)]
    pub private_key: Option<SecretSource>,
    /// SFTP: host-key policy, `strict` (default), `accept` or `add`.
    pub known_hosts: Option<String>,
    /// How long listings and attributes are trusted before asking the origin again.
    pub metadata_ttl_secs: Option<u64>,
    /// Per-request timeout towards the origin.
    pub request_timeout_secs: Option<u64>,
    /// Attempts after the first for requests that failed temporarily.
    pub retries: Option<u32>,
    /// `read-only` (the default: changes are refused with EROFS) or `read-write` (changes are
    /// staged on the local disk and written back to the origin).
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownHosts {
    Strict,
    Accept,
    Add,
}

/// The backend a volume reads from, with its connection details.
#[derive(Debug, Clone)]
pub enum Backend {
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
        path_style: bool,
        anonymous: bool,
        access_key_id: Option<String>,
        secret_access_key: Option<SecretString>,
    },
    Ftp {
        host: String,
        port: u16,
        user: Option<String>,
        password: Option<SecretString>,
        root: String,
    },
    WebDav {
        endpoint: String,
        root: String,
        user: Option<String>,
        password: Option<SecretString>,
    },
    Sftp {
        host: String,
        port: u16,
        user: Option<String>,
        root: String,
        key_file: Option<String>,
        /// The key itself (kept by colo in a 0600 file when the volume is opened).
        private_key: Option<SecretString>,
        known_hosts: KnownHosts,
    },
    Http {
        base: Url,
    },
    Local {
        root: PathBuf,
    },
}

/// A checked volume: what to mount, and how.
#[derive(Debug, Clone)]
pub struct VolumeSpec {
    pub name: String,
    pub backend: Backend,
    /// The URL as written, with any password replaced by `*****`.
    pub display_url: String,
    pub metadata_ttl: Duration,
    pub request_timeout: Duration,
    pub retries: u32,
    /// `mode = "read-write"`: programs may change the volume.
    pub writable: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    #[error("volume {volume}: missing key '{key}' ({expected})")]
    MissingKey {
        volume: String,
        key: &'static str,
        expected: &'static str,
    },
    #[error("volume '{volume}': key 'url' = '{url}' is not a valid URL: {detail}")]
    BadUrl {
        volume: String,
        url: String,
        detail: String,
    },
    #[error(
        "volume '{volume}': unknown scheme '{scheme}' in key 'url' (expected one of {SCHEMES})"
    )]
    UnknownScheme { volume: String, scheme: String },
    #[error("volume '{volume}': key '{key}' {problem}")]
    BadOption {
        volume: String,
        key: &'static str,
        problem: String,
    },
    #[error("volume '{volume}': key '{key}' does not apply to {scheme} volumes")]
    NotForBackend {
        volume: String,
        key: &'static str,
        scheme: String,
    },
    #[error("volume '{volume}': key '{key}': {detail}")]
    Secret {
        volume: String,
        key: &'static str,
        detail: String,
    },
}

pub fn valid_volume_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.')
}

/// The URL with its password masked.
fn masked(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(crate::secret::MASK));
            u.to_string()
                .replace("%2A%2A%2A%2A%2A", crate::secret::MASK)
        }
        Ok(_) => url.to_string(),
        // Unparseable: mask everything between "://" and the last '@' (where userinfo would be).
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                format!("{}://{}@{}", &url[..s], crate::secret::MASK, &url[at + 1..])
            }
            _ => url.to_string(),
        },
    }
}

impl VolumeSpec {
    pub fn from_config(cfg: &VolumeConfig) -> Result<Self, SpecError> {
        let name = cfg.name.clone().ok_or(SpecError::MissingKey {
            volume: "(unnamed)".into(),
            key: "name",
            expected: "a short name for the directory under the mount root",
        })?;
        if !valid_volume_name(&name) {
            return Err(SpecError::BadOption {
                volume: name.clone(),
                key: "name",
                problem: "must be 1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'".into(),
            });
        }
        let raw_url = cfg.url.clone().ok_or(SpecError::MissingKey {
            volume: format!("'{name}'"),
            key: "url",
            expected: "e.g. s3://bucket/prefix, sftp://user@host/path, file:///data",
        })?;
        let display_url = masked(&raw_url);
        let url = Url::parse(&raw_url).map_err(|e| SpecError::BadUrl {
            volume: name.clone(),
            url: display_url.clone(),
            detail: e.to_string(),
        })?;
        let scheme = url.scheme().to_ascii_lowercase();
        let secret = |key: &'static str,
                      src: &Option<SecretSource>|
         -> Result<Option<SecretString>, SpecError> {
            src.as_ref()
                .map(|s| {
                    s.resolve().map_err(|detail| SpecError::Secret {
                        volume: name.clone(),
                        key,
                        detail,
                    })
                })
                .transpose()
        };
        let url_password = url.password().map(|p| SecretString::new(percent_decode(p)));
        let url_user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
        let host = |default_port: u16| -> Result<(String, u16), SpecError> {
            let h = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| SpecError::BadUrl {
                    volume: name.clone(),
                    url: display_url.clone(),
                    detail: "a host is required".into(),
                })?;
            Ok((h.to_string(), url.port().unwrap_or(default_port)))
        };
        let path = percent_decode(url.path());

        let reject = |key: &'static str, present: bool| -> Result<(), SpecError> {
            if present {
                Err(SpecError::NotForBackend {
                    volume: name.clone(),
                    key,
                    scheme: scheme.clone(),
                })
            } else {
                Ok(())
            }
        };
        let s3_keys = [
            ("endpoint", cfg.endpoint.is_some()),
            ("region", cfg.region.is_some()),
            ("path_style", cfg.path_style.is_some()),
            ("anonymous", cfg.anonymous.is_some()),
            ("access_key_id", cfg.access_key_id.is_some()),
            ("secret_access_key", cfg.secret_access_key.is_some()),
        ];
        let login_keys = [
            ("username", cfg.username.is_some()),
            ("password", cfg.password.is_some()),
        ];
        let ssh_keys = [
            ("key_file", cfg.key_file.is_some()),
            ("private_key", cfg.private_key.is_some()),
            ("known_hosts", cfg.known_hosts.is_some()),
        ];
        let reject_all = |keys: &[(&'static str, bool)]| -> Result<(), SpecError> {
            keys.iter().try_for_each(|(k, present)| reject(k, *present))
        };

        let backend = match scheme.as_str() {
            "s3" => {
                reject_all(&login_keys)?;
                reject_all(&ssh_keys)?;
                let bucket = url.host_str().unwrap_or("").to_string();
                if bucket.is_empty() {
                    return Err(SpecError::BadUrl {
                        volume: name.clone(),
                        url: display_url.clone(),
                        detail: "s3:// needs a bucket: s3://bucket/prefix".into(),
                    });
                }
                if let Some(ep) = &cfg.endpoint {
                    let ok = Url::parse(ep)
                        .map(|u| u.scheme() == "http" || u.scheme() == "https")
                        .unwrap_or(false);
                    if !ok {
                        return Err(SpecError::BadOption {
                            volume: name.clone(),
                            key: "endpoint",
                            problem: format!("= '{ep}' must be an http:// or https:// URL"),
                        });
                    }
                }
                let anonymous = cfg.anonymous.unwrap_or(false);
                let secret_access_key = secret("secret_access_key", &cfg.secret_access_key)?;
                if !anonymous && (cfg.access_key_id.is_some() != secret_access_key.is_some()) {
                    return Err(SpecError::MissingKey {
                        volume: format!("'{name}'"),
                        key: if cfg.access_key_id.is_some() {
                            "secret_access_key"
                        } else {
                            "access_key_id"
                        },
                        expected: "S3 keys come in pairs: access_key_id and secret_access_key",
                    });
                }
                Backend::S3 {
                    bucket,
                    prefix: path.trim_matches('/').to_string(),
                    endpoint: cfg.endpoint.clone(),
                    region: cfg.region.clone().unwrap_or_else(|| "us-east-1".into()),
                    path_style: cfg.path_style.unwrap_or(true),
                    anonymous,
                    access_key_id: cfg.access_key_id.clone(),
                    secret_access_key,
                }
            }
            "ftp" => {
                reject_all(&s3_keys)?;
                reject_all(&ssh_keys)?;
                let (host, port) = host(21)?;
                Backend::Ftp {
                    host,
                    port,
                    user: cfg.username.clone().or(url_user),
                    password: secret("password", &cfg.password)?.or(url_password),
                    root: if path.is_empty() { "/".into() } else { path },
                }
            }
            "webdav" | "webdavs" => {
                reject_all(&s3_keys)?;
                reject_all(&ssh_keys)?;
                let (h, port) = host(if scheme == "webdavs" { 443 } else { 80 })?;
                let http = if scheme == "webdavs" { "https" } else { "http" };
                let host_part = if h.contains(':') { format!("[{h}]") } else { h };
                Backend::WebDav {
                    endpoint: format!("{http}://{host_part}:{port}"),
                    root: if path.is_empty() { "/".into() } else { path },
                    user: cfg.username.clone().or(url_user),
                    password: secret("password", &cfg.password)?.or(url_password),
                }
            }
            "sftp" | "sshfs" => {
                reject_all(&s3_keys)?;
                if cfg.password.is_some() || url_password.is_some() {
                    return Err(SpecError::BadOption {
                        volume: name.clone(),
                        key: "password",
                        problem: "is not supported for sftp: use key_file (ssh key or agent authentication)".into(),
                    });
                }
                let (host, port) = host(22)?;
                let known_hosts = match cfg.known_hosts.as_deref() {
                    None | Some("strict") => KnownHosts::Strict,
                    Some("accept") => KnownHosts::Accept,
                    Some("add") => KnownHosts::Add,
                    Some(other) => {
                        return Err(SpecError::BadOption {
                            volume: name.clone(),
                            key: "known_hosts",
                            problem: format!("= '{other}' must be one of strict, accept, add"),
                        });
                    }
                };
                if cfg.key_file.is_some() && cfg.private_key.is_some() {
                    return Err(SpecError::BadOption {
                        volume: name.clone(),
                        key: "private_key",
                        problem: "give key_file or private_key, not both".into(),
                    });
                }
                Backend::Sftp {
                    host,
                    port,
                    user: cfg.username.clone().or(url_user),
                    root: if path.is_empty() { "/".into() } else { path },
                    key_file: cfg.key_file.clone(),
                    private_key: secret("private_key", &cfg.private_key)?,
                    known_hosts,
                }
            }
            "http" | "https" => {
                reject_all(&s3_keys)?;
                reject_all(&login_keys)?;
                reject_all(&ssh_keys)?;
                host(80)?;
                let mut base = url.clone();
                if !base.path().ends_with('/') {
                    let p = format!("{}/", base.path());
                    base.set_path(&p);
                }
                base.set_query(None);
                base.set_fragment(None);
                Backend::Http { base }
            }
            "file" => {
                reject_all(&s3_keys)?;
                reject_all(&login_keys)?;
                reject_all(&ssh_keys)?;
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(SpecError::BadUrl {
                        volume: name.clone(),
                        url: display_url.clone(),
                        detail: "file:// URLs take an absolute path: file:///data/dir".into(),
                    });
                }
                Backend::Local {
                    root: PathBuf::from(if path.is_empty() {
                        "/".to_string()
                    } else {
                        path
                    }),
                }
            }
            _ => {
                return Err(SpecError::UnknownScheme {
                    volume: name.clone(),
                    scheme,
                });
            }
        };
        let ttl = cfg.metadata_ttl_secs.unwrap_or(DEFAULT_METADATA_TTL_SECS);
        let timeout = cfg
            .request_timeout_secs
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
        if timeout == 0 {
            return Err(SpecError::BadOption {
                volume: name.clone(),
                key: "request_timeout_secs",
                problem: "must be at least 1".into(),
            });
        }
        let writable = match cfg.mode.as_deref() {
            None | Some("read-only") => false,
            Some("read-write") if matches!(backend, Backend::Http { .. }) => {
                return Err(SpecError::BadOption {
                    volume: name.clone(),
                    key: "mode",
                    problem: "HTTP volumes cannot be written; use \"read-only\"".into(),
                });
            }
            Some("read-write") => true,
            Some(other) => {
                return Err(SpecError::BadOption {
                    volume: name.clone(),
                    key: "mode",
                    problem: format!("'{other}' is neither \"read-only\" nor \"read-write\""),
                });
            }
        };
        Ok(VolumeSpec {
            writable,
            name,
            backend,
            display_url,
            metadata_ttl: Duration::from_secs(ttl),
            request_timeout: Duration::from_secs(timeout),
            retries: cfg.retries.unwrap_or(DEFAULT_RETRIES),
        })
    }

    /// `read-write` or `read-only`, as in the config.
    pub fn mode_name(&self) -> &'static str {
        if self.writable {
            "read-write"
        } else {
            "read-only"
        }
    }

    /// The short backend name, for listings.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::S3 { .. } => "s3",
            Backend::Ftp { .. } => "ftp",
            Backend::WebDav { .. } => "webdav",
            Backend::Sftp { .. } => "sftp",
            Backend::Http { .. } => "http",
            Backend::Local { .. } => "local",
        }
    }

    /// Every secret this volume holds, for its [`crate::Redactor`].
    pub fn secrets(&self) -> Vec<SecretString> {
        match &self.backend {
            Backend::S3 {
                secret_access_key, ..
            } => secret_access_key.iter().cloned().collect(),
            Backend::Ftp { password, .. } | Backend::WebDav { password, .. } => {
                password.iter().cloned().collect()
            }
            Backend::Sftp { private_key, .. } => private_key.iter().cloned().collect(),
            Backend::Http { .. } | Backend::Local { .. } => Vec::new(),
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, url: &str) -> VolumeConfig {
        VolumeConfig {
            name: Some(name.into()),
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_scheme_parses() {
        let s = VolumeSpec::from_config(&cfg("a", "s3://bucket/some/prefix/")).unwrap();
        assert!(
            matches!(s.backend, Backend::S3 { ref bucket, ref prefix, .. } if bucket == "bucket" && prefix == "some/prefix")
        );
        let s = VolumeSpec::from_config(&cfg("f", "ftp://bob:pw@127.0.0.1:2121/pub")).unwrap();
        match &s.backend {
            Backend::Ftp {
                host,
                port,
                user,
                password,
                root,
            } => {
                assert_eq!((host.as_str(), *port), ("127.0.0.1", 2121));
                assert_eq!(user.as_deref(), Some("bob"));
                assert_eq!(password.as_ref().unwrap().expose(), "pw");
                assert_eq!(root, "/pub");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.display_url, "ftp://bob:*****@127.0.0.1:2121/pub");
        assert!(!format!("{s:?}").contains("pw@"));
        let s =
            VolumeSpec::from_config(&cfg("w", "webdavs://dav.example.org/remote.php/dav")).unwrap();
        assert!(
            matches!(s.backend, Backend::WebDav { ref endpoint, ref root, .. } if endpoint == "https://dav.example.org:443" && root == "/remote.php/dav")
        );
        for scheme in ["sftp", "sshfs"] {
            let s = VolumeSpec::from_config(&cfg("s", &format!("{scheme}://me@host:2222/home/me")))
                .unwrap();
            assert_eq!(s.backend_name(), "sftp");
        }
        let s = VolumeSpec::from_config(&cfg("h", "https://example.org/pub/data")).unwrap();
        assert!(
            matches!(s.backend, Backend::Http { ref base } if base.as_str() == "https://example.org/pub/data/")
        );
        let s = VolumeSpec::from_config(&cfg("l", "file:///srv/data%20x")).unwrap();
        assert!(
            matches!(s.backend, Backend::Local { ref root } if root == std::path::Path::new("/srv/data x"))
        );
    }

    #[test]
    fn volumes_are_read_only_unless_configured_read_write() {
        let s = VolumeSpec::from_config(&cfg("a", "s3://bucket/p")).unwrap();
        assert!(!s.writable);
        assert_eq!(s.mode_name(), "read-only");
        let mut c = cfg("b", "sftp://me@host/home/me");
        c.mode = Some("read-write".into());
        let s = VolumeSpec::from_config(&c).unwrap();
        assert!(s.writable);
        assert_eq!(s.mode_name(), "read-write");
        c.mode = Some("rw".into());
        let e = VolumeSpec::from_config(&c).unwrap_err().to_string();
        assert!(
            e.contains("'mode'") && e.contains("'rw'") && e.contains("read-write"),
            "{e}"
        );
        let mut h = cfg("h", "https://example.org/pub");
        h.mode = Some("read-write".into());
        let e = VolumeSpec::from_config(&h).unwrap_err().to_string();
        assert!(e.contains("HTTP volumes cannot be written"), "{e}");
    }

    #[test]
    fn errors_name_volume_and_key() {
        let e = VolumeSpec::from_config(&cfg("g", "gopher://x/")).unwrap_err();
        assert!(e.to_string().contains("unknown scheme 'gopher'"), "{e}");
        assert!(e.to_string().contains("volume 'g'"), "{e}");
        let e = VolumeSpec::from_config(&VolumeConfig {
            name: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing key 'url'"), "{e}");
        let mut c = cfg("k", "ftp://h/");
        c.key_file = Some("/k".into());
        let e = VolumeSpec::from_config(&c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volume 'k': key 'key_file' does not apply to ftp volumes"
        );
        let mut c = cfg("s3", "s3://b/");
        c.access_key_id = Some("AK".into());
        let e = VolumeSpec::from_config(&c).unwrap_err();
        assert!(e.to_string().contains("secret_access_key"), "{e}");
        let e = VolumeSpec::from_config(&cfg("bad/name", "file:///x")).unwrap_err();
        assert!(e.to_string().contains("key 'name'"), "{e}");
        let e = VolumeSpec::from_config(&cfg("u", "ftp://user:sekrit@[bad")).unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
    }
}
