//! Whole-object writes for the backends other than S3: under a temporary name renamed into place
//! where the backend renames, and a staged file sent in pieces, so an upload's memory stays
//! bounded where OpenDAL's writer streams (SFTP, FTP) and for WebDAV, whose one PUT colo streams
//! itself (`webdav_put`).

use super::OpendalConnector;
use crate::connector::{Connector, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use bytes::Bytes;
use std::path::PathBuf;

/// Bytes read from a staged file and handed to the writer at a time.
const STREAM_PIECE_BYTES: usize = 8 << 20;

/// What a whole-object write sends.
pub(super) enum Body {
    Bytes(Bytes),
    /// A local file and its size.
    File(PathBuf, u64),
}

impl Body {
    fn is_empty(&self) -> bool {
        match self {
            Body::Bytes(b) => b.is_empty(),
            Body::File(_, size) => *size == 0,
        }
    }
}

impl OpendalConnector {
    /// Writes `body` whole to `path`: under a temporary name renamed into place where the backend
    /// renames (so readers never see part of it), else directly (FTP).
    pub(super) async fn write_whole(&self, path: &ObjectPath, body: Body) -> Result<ObjectMeta> {
        if path.is_root() {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: "/".into(),
                expected: "file",
                actual: "directory",
            });
        }
        self.create_parents(path).await?;
        let target = Self::file_path(path);
        let ftp = self.ftp_login();
        if let (true, Some(login)) = (body.is_empty(), &ftp) {
            // OpenDAL's FTP writer opens its data connection on the first byte: none, no file.
            login.put_empty(path, &self.redactor).await?;
            return self.stat(path).await;
        }
        let renames = ftp.is_some() || self.op.info().capability().rename;
        if !renames {
            self.send(&target, body)
                .await
                .map_err(|e| self.convert_for(path, e, true))?;
            return self.stat(path).await;
        }
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(".{}.colo-{}-{serial}", path.name(), std::process::id());
        let parent = path.parent().unwrap_or_else(ObjectPath::root);
        let temporary = parent
            .child(&name)
            .map_err(|e| ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: path.to_string(),
                detail: format!("temporary name '{name}': {e}"),
            })?;
        let moved = async {
            match (&self.sftp, body) {
                // SFTP: several writes in flight (see `sftp_session`).
                (Some(sftp), Body::File(source, size)) => {
                    sftp.put_file(&temporary, &source, size).await?
                }
                (_, body) => self
                    .send(&Self::file_path(&temporary), body)
                    .await
                    .map_err(|e| self.convert_for(path, e, true))?,
            }
            match &ftp {
                // RNFR/RNTO: OpenDAL's FTP service has no rename.
                Some(login) => login.rename(&temporary, path, &self.redactor).await,
                None => (self.op.rename(&Self::file_path(&temporary), &target).await)
                    .map_err(|e| self.convert_for(path, e, true)),
            }
        }
        .await;
        if let Err(e) = moved {
            let _ = self.op.delete(&Self::file_path(&temporary)).await;
            return Err(e);
        }
        self.stat(path).await
    }

    /// The bytes of `source` at `path`, read and sent in pieces of [`STREAM_PIECE_BYTES`]: the
    /// memory a large upload takes stays bounded on backends whose writers stream (SFTP, FTP).
    pub(super) async fn write_file_streamed(
        &self,
        path: &ObjectPath,
        source: &std::path::Path,
    ) -> Result<ObjectMeta> {
        let io = |e: std::io::Error| ConnectorError::from_io(&self.volume, &path.to_string(), &e);
        let size = tokio::fs::metadata(source).await.map_err(io)?.len();
        self.write_whole(path, Body::File(source.to_path_buf(), size))
            .await
    }

    /// Sends `body` to `target` with one writer.
    async fn send(&self, target: &str, body: Body) -> opendal::Result<()> {
        match body {
            Body::Bytes(bytes) => self.op.write(target, bytes).await.map(|_| ()),
            Body::File(source, size) => {
                use tokio::io::AsyncReadExt;
                let failed = |e: std::io::Error| {
                    opendal::Error::new(opendal::ErrorKind::Unexpected, "reading a staged file")
                        .set_source(e)
                };
                if let Some(put) = &self.webdav_put {
                    return put.put_file(target, &source, size).await;
                }
                if !self.op.info().capability().write_can_multi {
                    // One request for the whole body: read whole.
                    let bytes = tokio::fs::read(&source).await.map_err(failed)?;
                    return self.op.write(target, bytes).await.map(|_| ());
                }
                let mut file = tokio::fs::File::open(&source).await.map_err(failed)?;
                let mut writer = self.op.writer(target).await?;
                loop {
                    let mut piece = Vec::with_capacity(STREAM_PIECE_BYTES);
                    (&mut file)
                        .take(STREAM_PIECE_BYTES as u64)
                        .read_to_end(&mut piece)
                        .await
                        .map_err(failed)?;
                    if piece.is_empty() {
                        break;
                    }
                    let piece_bytes = piece.len() as u64;
                    if let Err(e) = writer.write(piece).await {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                    crate::progress::note_sent(piece_bytes);
                }
                writer.close().await.map(|_| ())
            }
        }
    }
}
