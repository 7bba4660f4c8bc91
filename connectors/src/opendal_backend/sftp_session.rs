//! What OpenDAL's SFTP service does not speak: symbolic links, `lstat`, listings that show
//! links as links — and uploads with several writes in flight.
//!
//! Design: one SSH session of colo's own per SFTP volume, through the same `openssh` and
//! `openssh-sftp-client` crates OpenDAL's service drives (no new dependency), opened on first use
//! (creating the volume's root, as OpenDAL's does) and reopened after a broken connection. It
//! answers `stat` (as `lstat`: a link is shown as a link, never followed, so the kernel resolves
//! links itself and `ELOOP`, dangling links and `lchown` behave as on a disk), `list` (one
//! `READDIR` pass whose attributes are the server's `lstat` of each entry — OpenDAL's lister
//! `stat`s entries of unknown type, which follows links and drops dangling ones), `symlink` and
//! `readlink`, and the upload of a staged file ([`SftpSession::put_file`]): OpenDAL's writer
//! waits for each `WRITE`'s answer before the next (~65 MB/s here, behind rclone), this one keeps
//! [`UPLOAD_PIECES_IN_FLIGHT`] pieces going at their own offsets, in bounded memory. Reads and
//! small writes stay OpenDAL's. A private key given as a value is kept in a 0600 file for both
//! sessions' `ssh` ([`private_key_file`]).
//!
//! Paths: the session's working directory stays empty, so a relative link target is sent
//! verbatim (the client library would otherwise prefix it), and every link path is the volume's
//! root joined with the object path. OpenSSH's server takes `SSH_FXP_SYMLINK`'s arguments in the
//! reverse of the draft's order; the client library sends them the way OpenSSH reads them.

use crate::connector::{DirEntry, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use crate::spec::{Backend, KnownHosts, VolumeSpec};
use futures::StreamExt;
use openssh_sftp_client::Sftp;
use openssh_sftp_client::error::{Error as SftpError, SftpErrorKind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long opening the SSH session may take before the request fails as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds an ssh master without channels stays before it exits.
const MASTER_IDLE_SECS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(30).unwrap();

/// An upload's piece: read from the staged file at once, sent as `WRITE`s of the server's
/// largest size one after the other.
const UPLOAD_PIECE_BYTES: u64 = 1 << 20;

/// Pieces of one upload on their way at once (so at most this many MiB of it in memory).
const UPLOAD_PIECES_IN_FLIGHT: usize = 4;

pub(super) struct SftpSession {
    volume: String,
    endpoint: String,
    root: PathBuf,
    user: Option<String>,
    key_file: Option<PathBuf>,
    known_hosts: KnownHosts,
    session: tokio::sync::Mutex<Option<Arc<Sftp>>>,
}

impl std::fmt::Debug for SftpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpSession")
            .field("endpoint", &self.endpoint)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SftpSession {
    /// The session for `spec`'s volume if it is an SFTP one (opened on first use).
    pub(super) fn for_spec(spec: &VolumeSpec) -> Result<Option<SftpSession>> {
        let Backend::Sftp {
            host,
            port,
            user,
            root,
            key_file,
            private_key,
            known_hosts,
        } = &spec.backend
        else {
            return Ok(None);
        };
        let key_file = match private_key {
            Some(k) => Some(private_key_file(k).map_err(|e| {
                ConnectorError::internal(&spec.name, "/", format!("keeping the private key: {e}"))
            })?),
            None => key_file.as_ref().map(std::path::PathBuf::from),
        };
        Ok(Some(SftpSession::new(
            &spec.name,
            format!("ssh://{host}:{port}"),
            root,
            user.clone(),
            key_file,
            known_hosts.clone(),
        )))
    }

    /// OpenDAL's SFTP service for the same server, root, user, key and host-key policy.
    pub(super) fn opendal_service(&self) -> opendal::services::Sftp {
        let mut service = opendal::services::Sftp::default()
            .endpoint(&self.endpoint)
            .root(&self.root.to_string_lossy())
            .known_hosts_strategy(match self.known_hosts {
                KnownHosts::Strict => "strict",
                KnownHosts::Accept => "accept",
                KnownHosts::Add => "add",
            });
        if let Some(u) = &self.user {
            service = service.user(u);
        }
        if let Some(k) = &self.key_file {
            service = service.key(&k.to_string_lossy());
        }
        service
    }

    fn new(
        volume: &str,
        endpoint: String,
        root: &str,
        user: Option<String>,
        key_file: Option<PathBuf>,
        known_hosts: KnownHosts,
    ) -> Self {
        SftpSession {
            volume: volume.to_string(),
            endpoint,
            root: PathBuf::from(root),
            user,
            key_file,
            known_hosts,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// The server-side path of `path` (the root itself for the volume's root).
    fn remote(&self, path: &ObjectPath) -> PathBuf {
        if path.is_root() {
            return if self.root.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                self.root.clone()
            };
        }
        self.root.join(path.as_str())
    }

    async fn sftp(&self) -> Result<Arc<Sftp>> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let mut builder = openssh::SessionBuilder::default();
        if let Some(u) = &self.user {
            builder.user(u.clone());
        }
        if let Some(k) = &self.key_file {
            builder.keyfile(k);
        }
        // The ssh master exits once no channel has used it for a while — also when colo was
        // killed and nothing closed it (the default keeps it forever).
        builder.control_persist(openssh::ControlPersist::IdleFor(MASTER_IDLE_SECS));
        builder.known_hosts_check(match self.known_hosts {
            KnownHosts::Strict => openssh::KnownHosts::Strict,
            KnownHosts::Accept => openssh::KnownHosts::Accept,
            KnownHosts::Add => openssh::KnownHosts::Add,
        });
        let connect = async {
            let session = builder
                .connect(&self.endpoint)
                .await
                .map_err(|e| self.unavailable(format!("ssh: {e}")))?;
            Sftp::from_session(session, Default::default())
                .await
                .map_err(|e| self.unavailable(format!("sftp: {e}")))
        };
        let sftp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| self.unavailable("ssh: connection timed out".into()))??;
        // The root and its parents, as OpenDAL's session makes them ("exists" is no error).
        let mut fs = sftp.fs();
        fs.set_cwd("");
        for dir in self.root.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if !dir.as_os_str().is_empty() && dir != std::path::Path::new("/") {
                let _ = fs.create_dir(dir).await;
            }
        }
        let sftp = Arc::new(sftp);
        *slot = Some(sftp.clone());
        Ok(sftp)
    }

    fn unavailable(&self, detail: String) -> ConnectorError {
        ConnectorError::unavailable(&self.volume, "/", &detail)
    }

    /// The error of a request on `path`; a broken session is dropped so the next request opens
    /// a new one.
    async fn convert(&self, path: &ObjectPath, e: SftpError) -> ConnectorError {
        let p = path.to_string();
        match &e {
            SftpError::SftpError(SftpErrorKind::NoSuchFile, _) => {
                ConnectorError::not_found(&self.volume, &p)
            }
            SftpError::SftpError(SftpErrorKind::PermDenied, msg) => {
                ConnectorError::denied(&self.volume, &p, msg.to_string())
            }
            SftpError::SftpError(SftpErrorKind::OpUnsupported, _) => ConnectorError::Unsupported {
                volume: self.volume.clone(),
                operation: format!("'{p}': {e}"),
            },
            SftpError::SftpError(_, msg) => ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: p,
                detail: msg.to_string(),
            },
            _ => {
                *self.session.lock().await = None;
                ConnectorError::unavailable(&self.volume, &p, e.to_string())
            }
        }
    }

    /// `lstat`: what is at `path` itself, a link shown as a link.
    pub(super) async fn lstat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let mut fs = self.sftp().await?.fs();
        fs.set_cwd("");
        let meta = match fs.symlink_metadata(self.remote(path)).await {
            Ok(m) => m,
            Err(e) => return Err(self.convert(path, e).await),
        };
        Ok(to_meta(&meta))
    }

    /// The entries of folder `path`, links as links.
    pub(super) async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        let mut fs = self.sftp().await?.fs();
        fs.set_cwd("");
        let dir = match fs.open_dir(self.remote(path)).await {
            Ok(dir) => dir,
            Err(e) => return Err(self.convert(path, e).await),
        };
        let mut entries = std::pin::pin!(dir.read_dir());
        let mut out = Vec::new();
        while let Some(entry) = entries.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return Err(self.convert(path, e).await),
            };
            let Some(name) = entry.filename().to_str() else {
                continue;
            };
            if name == "." || name == ".." || path.child(name).is_err() {
                continue;
            }
            out.push(DirEntry {
                name: name.to_string(),
                meta: to_meta(&entry.metadata()),
            });
        }
        Ok(out)
    }

    pub(super) async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        let mut fs = self.sftp().await?.fs();
        fs.set_cwd("");
        match fs.symlink(target, self.remote(path)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.convert(path, e).await),
        }
    }

    /// Writes the local file `source` (`size` bytes) to `path`, created or truncated.
    pub(super) async fn put_file(
        &self,
        path: &ObjectPath,
        source: &std::path::Path,
        size: u64,
    ) -> Result<()> {
        use futures::TryStreamExt;
        let sftp = self.sftp().await?;
        let opened = sftp
            .options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.remote(path))
            .await;
        let file = match opened {
            Ok(file) => file,
            Err(e) => return Err(self.convert(path, e).await),
        };
        let local = std::sync::Arc::new(std::fs::File::open(source).map_err(|e| {
            ConnectorError::from_io(&self.volume, &source.display().to_string(), &e)
        })?);
        let pieces = (0..size.div_ceil(UPLOAD_PIECE_BYTES)).map(|i| {
            let (offset, local, mut remote) = (i * UPLOAD_PIECE_BYTES, local.clone(), file.clone());
            async move {
                let len = UPLOAD_PIECE_BYTES.min(size - offset) as usize;
                let read = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut piece = vec![0u8; len];
                    local.read_exact_at(&mut piece, offset).map(|()| piece)
                });
                let piece = match read.await {
                    Ok(Ok(piece)) => bytes::Bytes::from(piece),
                    Ok(Err(e)) => return Err(Sent::Local(e)),
                    Err(e) => return Err(Sent::Local(std::io::Error::other(e))),
                };
                use tokio::io::AsyncSeekExt;
                remote
                    .seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| Sent::Local(std::io::Error::other(e)))?;
                remote
                    .write_all_zero_copy(&mut [piece])
                    .await
                    .map_err(Sent::Remote)?;
                crate::progress::note_sent(len as u64);
                Ok(())
            }
        });
        let sent = futures::stream::iter(pieces)
            .buffer_unordered(UPLOAD_PIECES_IN_FLIGHT)
            .try_collect::<()>()
            .await;
        let closed = file.close().await;
        match (sent, closed) {
            (Err(Sent::Local(e)), _) => Err(ConnectorError::from_io(
                &self.volume,
                &source.display().to_string(),
                &e,
            )),
            (Err(Sent::Remote(e)), _) | (Ok(()), Err(e)) => Err(self.convert(path, e).await),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    pub(super) async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        let mut fs = self.sftp().await?.fs();
        fs.set_cwd("");
        match fs.read_link(self.remote(path)).await {
            Ok(target) => {
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| ConnectorError::InvalidInput {
                        volume: self.volume.clone(),
                        path: path.to_string(),
                        detail: "link target is not UTF-8".into(),
                    })
            }
            Err(e) => Err(self.convert(path, e).await),
        }
    }
}

/// A private key given as a value, in a file ssh can read: `<tmp>/colo-keys-<uid>/<hash>.key`,
/// the folder 0700 and the file 0600, named by the key's SHA-256 (the same key, the same file).
fn private_key_file(key: &crate::SecretString) -> std::io::Result<std::path::PathBuf> {
    use sha2::Digest;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self")?.uid();
    let dir = std::env::temp_dir().join(format!("colo-keys-{uid}"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut text = key.expose().trim().to_string();
    text.push('\n');
    let digest = sha2::Sha256::digest(text.as_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{name}.key"));
    if !path.exists() {
        let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// How a piece of an upload failed: reading the staged file, or at the server.
enum Sent {
    Local(std::io::Error),
    Remote(SftpError),
}

/// What the server's attributes say (an entry of another type — a FIFO, a socket — shows as an
/// empty file, as OpenDAL showed it).
fn to_meta(meta: &openssh_sftp_client::metadata::MetaData) -> ObjectMeta {
    let mtime = meta.modified().map(|t| t.as_system_time());
    let size = meta.len().unwrap_or(0);
    match meta.file_type() {
        Some(t) if t.is_dir() => ObjectMeta::directory(mtime),
        Some(t) if t.is_symlink() => ObjectMeta::symlink(size, mtime),
        Some(t) if t.is_file() => ObjectMeta::file(size, mtime, None),
        _ => ObjectMeta::file(0, mtime, None),
    }
}
