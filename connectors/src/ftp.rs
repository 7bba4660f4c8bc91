//! What OpenDAL's FTP service cannot do, over a control connection of its own per call:
//! - rename (`RNFR`/`RNTO`), so a file or a whole folder moves in one request instead of a copy
//!   and delete of every object;
//! - write an empty file: OpenDAL's FTP writer opens its data connection on the first byte, so
//!   with none it creates nothing (and `touch`, `__init__.py`, lock files would vanish).
//!
//! Paths are the volume's root joined with the object path, absolute, as the server's `RNFR`
//! takes them. Replies map to connector errors here: 550 (file unavailable) to not found for the
//! source, 553/552/532/530 to a refusal, a lost connection to an unavailable origin.

use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use crate::secret::{Redactor, SecretString};
use std::time::Duration;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::{FtpError, Status};

/// How to reach and log in to the FTP server of a volume.
#[derive(Clone)]
pub struct FtpLogin {
    pub volume: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// The volume's folder on the server ("/" for the whole server).
    pub root: String,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl FtpLogin {
    /// The server's absolute path of `path` under the volume's root.
    pub fn server_path(&self, path: &ObjectPath) -> String {
        let root = self.root.trim_end_matches('/');
        if path.is_root() {
            if root.is_empty() {
                "/".into()
            } else {
                root.into()
            }
        } else {
            format!("{root}/{}", path.as_str())
        }
    }

    /// Renames `from` to `to` at the server (`RNFR`, `RNTO`); a folder moves whole.
    pub async fn rename(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        redactor: &Redactor,
    ) -> Result<()> {
        let mut ftp = self.session(from, redactor).await?;
        let moved = ftp
            .rename(self.server_path(from), self.server_path(to))
            .await
            .map_err(|e| self.convert(from, e, redactor));
        let _ = ftp.quit().await;
        moved
    }

    /// Makes `path` an empty file (`STOR` with no bytes), replacing what was there.
    pub async fn put_empty(&self, path: &ObjectPath, redactor: &Redactor) -> Result<()> {
        let mut ftp = self.session(path, redactor).await?;
        let stored = ftp
            .put_file(self.server_path(path), &mut tokio::io::empty())
            .await
            .map(|_| ())
            .map_err(|e| self.convert(path, e, redactor));
        let _ = ftp.quit().await;
        stored
    }

    /// A logged-in control connection (errors name `path`, the request's subject).
    async fn session(&self, path: &ObjectPath, redactor: &Redactor) -> Result<AsyncFtpStream> {
        let convert = |e: FtpError| self.convert(path, e, redactor);
        let address = format!("{}:{}", self.host, self.port);
        let mut ftp =
            tokio::time::timeout(CONNECT_TIMEOUT, AsyncFtpStream::connect(address.as_str()))
                .await
                .map_err(|_| ConnectorError::Timeout {
                    volume: self.volume.clone(),
                    path: path.to_string(),
                    timeout_ms: CONNECT_TIMEOUT.as_millis() as u64,
                })?
                .map_err(convert)?;
        let user = self.user.as_deref().unwrap_or("anonymous");
        let password = self.password.as_ref().map(|p| p.expose()).unwrap_or("");
        ftp.login(user, password).await.map_err(convert)?;
        Ok(ftp)
    }

    fn convert(&self, path: &ObjectPath, e: FtpError, redactor: &Redactor) -> ConnectorError {
        let detail = redactor.redact(&crate::error::one_line(&e.to_string()));
        let (volume, path) = (self.volume.as_str(), path.as_str());
        match &e {
            FtpError::ConnectionError(io) => ConnectorError::from_io(volume, path, io),
            FtpError::UnexpectedResponse(r) => match r.status {
                Status::FileUnavailable => ConnectorError::not_found(volume, path),
                Status::NotLoggedIn
                | Status::StoringNeedAccount
                | Status::BadFilename
                | Status::ExceededStorage => ConnectorError::denied(volume, path, detail),
                Status::NotAvailable => ConnectorError::Unavailable {
                    volume: volume.into(),
                    path: path.into(),
                    detail,
                },
                _ => ConnectorError::Internal {
                    volume: volume.into(),
                    path: path.into(),
                    detail,
                },
            },
            _ => ConnectorError::Internal {
                volume: volume.into(),
                path: path.into(),
                detail,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(root: &str) -> FtpLogin {
        FtpLogin {
            volume: "v".into(),
            host: "127.0.0.1".into(),
            port: 21,
            user: None,
            password: None,
            root: root.into(),
        }
    }

    #[test]
    fn server_paths_join_the_root_and_the_object_path() {
        let p = |s: &str| ObjectPath::parse(s).expect("path");
        assert_eq!(login("/").server_path(&p("a/b.fits")), "/a/b.fits");
        assert_eq!(
            login("/pub/data/").server_path(&p("a/b.fits")),
            "/pub/data/a/b.fits"
        );
        assert_eq!(login("/pub/data").server_path(&p("")), "/pub/data");
        assert_eq!(login("/").server_path(&p("")), "/");
    }
}
