//! S3, FTP, WebDAV and SFTP volumes through Apache OpenDAL.
//!
//! Why OpenDAL for these four: it is the one Rust library with all of them behind one API (object_store
//! has S3 but no FTP, WebDAV or SFTP), so one adapter — this file — serves four protocols, with one
//! HTTP client. For S3 specifically, OpenDAL gives ranged GETs with `If-Match`, path-style addressing
//! for S3-compatible stores, and listings that carry size, mtime and ETag. Its SFTP service drives the
//! system `ssh` (key or agent authentication only); FTP is suppaftp underneath.
//!
//! FTP ranged reads use a connection of their own (see `read_range`).
//!
//! Identity checks on read (see `connector.rs`): S3 and WebDAV send `If-Match` with the ETag; FTP and
//! SFTP have no conditional reads, so a read that expects an identity is followed by a `stat`.
//!
//! Whole-object writes: one PUT on S3 (atomic by the protocol); on WebDAV and SFTP a temporary name
//! beside the target, renamed into place (MOVE, SFTP rename); OpenDAL's FTP writer uploads to a
//! temporary name and renames (RNFR/RNTO) on its own. Missing parent folders are created first
//! (object stores have none to create).

mod sftp_session;
mod upload;
mod webdav_put;
use crate::connector::{Capability, Connector, DirEntry, EntryKind, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use crate::pieces::PieceWriter;
use crate::secret::Redactor;
use crate::spec::{Backend, VolumeSpec};
use async_trait::async_trait;
use bytes::Bytes;
use opendal::{EntryMode, ErrorKind as OdKind, Operator, services};
use std::ops::Range;
use std::time::SystemTime;
use upload::Body;

#[derive(Debug)]
pub struct OpendalConnector {
    volume: String,
    op: Operator,
    /// FTP only: the spec, to open a fresh connection for each ranged read (see `read_range`).
    ftp_spec: Option<VolumeSpec>,
    capability: Capability,
    redactor: Redactor,
    /// WebDAV only: PUTs of staged files streamed in bounded memory (see `webdav_put`).
    webdav_put: Option<webdav_put::WebdavPut>,
    /// SFTP only: colo's own session for links, `lstat`, listings and uploads of staged files
    /// (see `sftp_session`).
    sftp: Option<sftp_session::SftpSession>,
}

impl OpendalConnector {
    /// The body of `range` (not empty) as OpenDAL received it, in parts: its length checked, and
    /// its identity (in the request, or by a `stat` after it where the protocol cannot).
    async fn read_body(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<opendal::Buffer> {
        let want = range.end - range.start;
        let file_path = Self::file_path(path);
        // FTP: OpenDAL returns a connection to its pool after a ranged RETR without aborting the
        // transfer, which leaves that connection unusable ("data connection already open"). A
        // ranged FTP read therefore gets a connection of its own, closed when the read is done.
        let fresh_op;
        let op = match &self.ftp_spec {
            Some(spec) => {
                fresh_op = Self::build(spec, &self.redactor, None)?.0;
                &fresh_op
            }
            None => &self.op,
        };
        let mut req = op.read_with(&file_path).range(range.clone());
        let etag = match expect {
            Some(ObjectIdentity::ETag(e)) if self.capability.conditional_read => Some(e.clone()),
            _ => None,
        };
        if let Some(e) = &etag {
            req = req.if_match(e);
        }
        let buf = req.await.map_err(|e| self.convert(path, e))?;
        if buf.len() as u64 != want {
            // Shorter than asked: the object shrank (changed) under us, or the transfer broke.
            return Err(match expect {
                Some(_) => ConnectorError::stale(&self.volume, &path.to_string()),
                None => ConnectorError::unavailable(
                    &self.volume,
                    &path.to_string(),
                    format!("short read: {} of {want} bytes", buf.len()),
                ),
            });
        }
        if let (Some(expected), None) = (expect, &etag) {
            // No conditional read on this protocol: check the object is still the one we meant.
            let now = self.stat(path).await?;
            if !expected.matches(&now) {
                return Err(ConnectorError::stale(&self.volume, &path.to_string()));
            }
        }
        Ok(buf)
    }

    /// Build the operator for an S3, FTP, WebDAV or SFTP spec.
    pub fn new(spec: &VolumeSpec, redactor: Redactor) -> Result<Self> {
        let sftp = sftp_session::SftpSession::for_spec(spec)?;
        let (op, list_has_metadata, conditional_read) =
            Self::build(spec, &redactor, sftp.as_ref())?;
        let can = op.info().capability();
        Ok(OpendalConnector {
            volume: spec.name.clone(),
            ftp_spec: matches!(spec.backend, Backend::Ftp { .. }).then(|| spec.clone()),
            capability: Capability {
                list_has_metadata,
                conditional_read,
                write: can.write && can.delete,
                // FTP renames natively through `ftp::FtpLogin` (OpenDAL's FTP has no rename).
                rename_dirs: can.rename || matches!(spec.backend, Backend::Ftp { .. }),
                symlinks: matches!(spec.backend, Backend::Sftp { .. }),
            },
            sftp,
            op,
            redactor,
            webdav_put: match &spec.backend {
                Backend::WebDav {
                    endpoint,
                    root,
                    user,
                    password,
                } => Some(
                    webdav_put::WebdavPut::new(endpoint, root, user.clone(), password.clone())
                        .map_err(|detail| ConnectorError::InvalidInput {
                            volume: spec.name.clone(),
                            path: "/".into(),
                            detail,
                        })?,
                ),
                _ => None,
            },
        })
    }

    /// How to reach the FTP server of an FTP volume (for what OpenDAL's FTP cannot do).
    fn ftp_login(&self) -> Option<crate::ftp::FtpLogin> {
        match &self.ftp_spec.as_ref()?.backend {
            Backend::Ftp {
                host,
                port,
                user,
                password,
                root,
            } => Some(crate::ftp::FtpLogin {
                volume: self.volume.clone(),
                host: host.clone(),
                port: *port,
                user: user.clone(),
                password: password.clone(),
                root: root.clone(),
            }),
            _ => None,
        }
    }

    /// Creates the folders above `path` where the backend has folders (not on S3, where a
    /// folder would be an extra marker object).
    async fn create_parents(&self, path: &ObjectPath) -> Result<()> {
        let has_folders = self.op.info().scheme() != "s3";
        match path.parent() {
            Some(parent) if !parent.is_root() && has_folders => self
                .op
                .create_dir(&Self::dir_path(&parent))
                .await
                .map_err(|e| self.convert(&parent, e)),
            _ => Ok(()),
        }
    }

    /// The operator for a spec, with (listings carry metadata, reads are conditional).
    fn build(
        spec: &VolumeSpec,
        redactor: &Redactor,
        sftp: Option<&sftp_session::SftpSession>,
    ) -> Result<(Operator, bool, bool)> {
        // OpenDAL 0.59 needs its services registered and an HTTP transport installed once per
        // process (we build it without `auto-register-services`, which would do it from a
        // constructor before main). Idempotent.
        opendal::install_default();
        install_http_transport();
        let volume = spec.name.clone();
        let built = match &spec.backend {
            Backend::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
                anonymous,
                access_key_id,
                secret_access_key,
            } => {
                // disable_config_load: never pick up AWS_* variables or ~/.aws by surprise; a volume
                // is exactly what its config says.
                let mut b = services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .disable_config_load();
                if let Some(ep) = endpoint {
                    b = b.endpoint(ep);
                }
                if !path_style {
                    b = b.enable_virtual_host_style();
                }
                if *anonymous {
                    b = b.skip_signature();
                }
                if let (Some(ak), Some(sk)) = (access_key_id, secret_access_key) {
                    b = b.access_key_id(ak).secret_access_key(sk.expose());
                }
                Operator::new(b).map(|op| (op, true, true))
            }
            Backend::Ftp {
                host,
                port,
                user,
                password,
                root,
            } => {
                let mut b = services::Ftp::default()
                    .endpoint(&format!("ftp://{host}:{port}"))
                    .root(root);
                if let Some(u) = user {
                    b = b.user(u);
                }
                if let Some(p) = password {
                    b = b.password(p.expose());
                }
                Operator::new(b).map(|op| (op, true, false))
            }
            Backend::WebDav {
                endpoint,
                root,
                user,
                password,
            } => {
                let mut b = services::Webdav::default().endpoint(endpoint).root(root);
                if let Some(u) = user {
                    b = b.username(u);
                }
                if let Some(p) = password {
                    b = b.password(p.expose());
                }
                Operator::new(b).map(|op| (op, true, true))
            }
            // The key, endpoint and root as colo's own session resolved them (one place).
            Backend::Sftp { .. } => match sftp {
                Some(session) => {
                    Operator::new(session.opendal_service()).map(|op| (op, true, false))
                }
                None => return Err(ConnectorError::internal(&volume, "/", "no SFTP session")),
            },
            Backend::Http { .. } | Backend::Local { .. } => {
                return Err(ConnectorError::internal(
                    &volume,
                    "/",
                    "not an OpenDAL backend",
                ));
            }
        };
        built.map_err(|e| ConnectorError::InvalidInput {
            volume: volume.clone(),
            path: "/".into(),
            detail: redactor.redact(&e.to_string()),
        })
    }

    fn convert(&self, path: &ObjectPath, e: opendal::Error) -> ConnectorError {
        self.convert_for(path, e, false)
    }

    /// [`Self::convert`] for the error of a write (`writing`) or of anything else.
    fn convert_for(&self, path: &ObjectPath, e: opendal::Error, writing: bool) -> ConnectorError {
        let p = path.to_string();
        // The full text (request context, headers) classifies and goes to the debug log; users get
        // the message and its cause. Both are scrubbed of the volume's secrets.
        let full = self.redactor.redact(&e.to_string());
        tracing::debug!(volume = %self.volume, path = %p, error = %full, "backend error");
        let short = match std::error::Error::source(&e) {
            Some(cause) if !e.message().is_empty() => format!("{}: {cause}", e.message()),
            Some(cause) => cause.to_string(),
            None => e.message().to_string(),
        };
        let detail = self.redactor.redact(&crate::error::one_line(&short));
        // A write can only miss its target's folder, which `write_object` creates first: what an
        // FTP server answers with 550 ("file unavailable") there is a refusal.
        if writing && e.kind() == OdKind::NotFound {
            return ConnectorError::denied(&self.volume, &p, detail);
        }
        match e.kind() {
            OdKind::NotFound => ConnectorError::not_found(&self.volume, &p),
            OdKind::PermissionDenied => ConnectorError::denied(&self.volume, &p, detail),
            OdKind::ConditionNotMatch => ConnectorError::stale(&self.volume, &p),
            OdKind::IsADirectory => ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: p,
                expected: "file",
                actual: "directory",
            },
            OdKind::NotADirectory => ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: p,
                expected: "directory",
                actual: "file",
            },
            OdKind::Unsupported => ConnectorError::Unsupported {
                volume: self.volume.clone(),
                operation: detail,
            },
            OdKind::RangeNotSatisfied | OdKind::ConfigInvalid => ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: p,
                detail,
            },
            _ if e.is_temporary() || looks_like_connection_failure(&full) => {
                ConnectorError::unavailable(&self.volume, &p, detail)
            }
            _ if looks_like_auth_failure(&full) => ConnectorError::denied(&self.volume, &p, detail),
            _ => ConnectorError::internal(&self.volume, &p, detail),
        }
    }

    fn file_path(path: &ObjectPath) -> String {
        path.as_str().to_string()
    }

    fn dir_path(path: &ObjectPath) -> String {
        if path.is_root() {
            "/".to_string()
        } else {
            format!("{}/", path.as_str())
        }
    }
}

/// Backends report a refused connection or a failed login in several ways; these catch the ones
/// OpenDAL does not classify itself (e.g. FTP `530 Login incorrect`, ssh exiting on a refused key).
fn looks_like_connection_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "connection refused",
        "connection reset",
        "broken pipe",
        "timed out",
        "connect error",
        "error sending request",
        "unexpected eof",
    ]
    .iter()
    .any(|s| d.contains(s))
}

fn looks_like_auth_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "530",
        "login incorrect",
        "authentication failed",
        "permission denied",
        "unauthorized",
        "401",
        "403",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "accessdenied",
    ]
    .iter()
    .any(|s| d.contains(s))
}

fn to_meta(m: &opendal::Metadata) -> ObjectMeta {
    let mtime = m.last_modified().map(SystemTime::from);
    match m.mode() {
        EntryMode::DIR => ObjectMeta::directory(mtime),
        _ => ObjectMeta::file(m.content_length(), mtime, m.etag().map(str::to_string)),
    }
}

#[async_trait]
impl Connector for OpendalConnector {
    fn volume(&self) -> &str {
        &self.volume
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        if path.is_root() {
            // The root is a directory by definition; listing it proves it answers.
            self.op
                .list_with("/")
                .limit(1)
                .await
                .map_err(|e| self.convert(path, e))?;
            return Ok(ObjectMeta::directory(None));
        }
        if let Some(links) = &self.sftp {
            return links.lstat(path).await;
        }
        match self.op.stat(&Self::file_path(path)).await {
            Ok(m) => Ok(to_meta(&m)),
            Err(e) if e.kind() == OdKind::NotFound => {
                // Maybe a directory (object stores only know "prefix/").
                match self.op.stat(&Self::dir_path(path)).await {
                    Ok(m) if m.mode() == EntryMode::DIR => Ok(to_meta(&m)),
                    Ok(_) => Err(ConnectorError::not_found(&self.volume, &path.to_string())),
                    Err(e) => Err(self.convert(path, e)),
                }
            }
            Err(e) => Err(self.convert(path, e)),
        }
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        Ok(self.read_body(path, range, expect).await?.to_bytes())
    }

    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let mut pieces = PieceWriter::new(range.end - range.start, piece_bytes);
        for part in self.read_body(path, range, expect).await? {
            pieces.push(&part);
        }
        Ok(pieces.finish())
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        if let Some(links) = &self.sftp {
            return links.list(path).await;
        }
        let dir = Self::dir_path(path);
        let entries = self
            .op
            .list(&dir)
            .await
            .map_err(|e| self.convert(path, e))?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = entry.name().trim_end_matches('/');
            // Some services list the directory itself ("" or "/" or the dir's own path).
            let own = entry.path().trim_end_matches('/') == dir.trim_end_matches('/');
            if name.is_empty() || own || path.child(name).is_err() {
                continue;
            }
            let mut meta = to_meta(entry.metadata());
            if entry.metadata().mode() == EntryMode::DIR {
                meta.kind = EntryKind::Directory;
            }
            out.push(DirEntry {
                name: name.to_string(),
                meta,
            });
        }
        Ok(out)
    }

    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        self.write_whole(path, Body::Bytes(bytes)).await
    }

    async fn write_file(&self, path: &ObjectPath, source: &std::path::Path) -> Result<ObjectMeta> {
        if self.op.info().scheme() != "s3" {
            return self.write_file_streamed(path, source).await;
        }
        // S3: a multipart upload in parts of UPLOAD_PART_BYTES, two in flight; the object appears
        // whole when the upload completes, or not at all.
        const UPLOAD_PART_BYTES: usize = 16 << 20;
        use tokio::io::AsyncReadExt;
        let io = |e: std::io::Error| ConnectorError::from_io(&self.volume, &path.to_string(), &e);
        let mut file = tokio::fs::File::open(source).await.map_err(io)?;
        let mut writer = self
            .op
            .writer_with(&Self::file_path(path))
            .chunk(UPLOAD_PART_BYTES)
            .concurrent(2)
            .await
            .map_err(|e| self.convert_for(path, e, true))?;
        let mut sent = async {
            loop {
                let mut part = Vec::with_capacity(UPLOAD_PART_BYTES);
                (&mut file)
                    .take(UPLOAD_PART_BYTES as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(io)?;
                if part.is_empty() {
                    return Ok(());
                }
                let part_bytes = part.len() as u64;
                writer
                    .write(part)
                    .await
                    .map_err(|e| self.convert_for(path, e, true))?;
                crate::progress::note_sent(part_bytes);
            }
        }
        .await;
        if sent.is_ok() {
            sent = writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| self.convert_for(path, e, true));
        } else {
            let _ = writer.abort().await;
        }
        sent?;
        self.stat(path).await
    }

    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        self.op
            .create_dir(&Self::dir_path(path))
            .await
            .map_err(|e| self.convert(path, e))
    }

    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let kind = self.stat(from).await?.kind;
        if let Some(login) = self.ftp_login() {
            return login.rename(from, to, &self.redactor).await;
        }
        let can = self.op.info().capability();
        if can.rename && self.ftp_spec.is_none() {
            // Folders too by their plain names: OpenDAL refuses "name/" paths in renames, and the
            // server's rename moves a folder as it moves a file.
            return self
                .op
                .rename(&Self::file_path(from), &Self::file_path(to))
                .await
                .map_err(|e| self.convert(from, e));
        }
        // No native rename (S3): copy each object, then delete the sources.
        let plan = match kind {
            EntryKind::File | EntryKind::Symlink => RenamePlan {
                files: vec![(from.clone(), to.clone())],
                folders: Vec::new(),
            },
            EntryKind::Directory => {
                let mut plan = self.tree_under(from, to).await?;
                plan.folders.insert(0, (from.clone(), to.clone()));
                plan
            }
        };
        for (_, target) in &plan.folders {
            self.create_dir(target).await?;
        }
        for (source, target) in &plan.files {
            if can.copy {
                self.op
                    .copy(&Self::file_path(source), &Self::file_path(target))
                    .await
                    .map_err(|e| self.convert(source, e))?;
            } else {
                let bytes = self
                    .op
                    .read(&Self::file_path(source))
                    .await
                    .map_err(|e| self.convert(source, e))?;
                self.write_object(target, bytes.to_bytes()).await?;
            }
        }
        for (source, _) in &plan.files {
            self.op
                .delete(&Self::file_path(source))
                .await
                .map_err(|e| self.convert(source, e))?;
        }
        // Folders deepest first; a folder an object store never had is no error.
        for (source, _) in plan.folders.iter().rev() {
            let _ = self.op.delete(&Self::dir_path(source)).await;
        }
        Ok(())
    }

    async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        match &self.sftp {
            Some(links) => links.symlink(path, target).await,
            None => Err(ConnectorError::Unsupported {
                volume: self.volume.clone(),
                operation: format!("making symbolic link '{path}'"),
            }),
        }
    }

    async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        match &self.sftp {
            Some(links) => links.read_link(path).await,
            None => Err(ConnectorError::Unsupported {
                volume: self.volume.clone(),
                operation: format!("reading symbolic link '{path}'"),
            }),
        }
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        if path.is_root() {
            return Err(ConnectorError::denied(
                &self.volume,
                "/",
                "the volume's root cannot be deleted",
            ));
        }
        let is_s3 = self.op.info().scheme() == "s3";
        let kind = match self.stat(path).await {
            Ok(meta) => meta.kind,
            // S3 has no folders to stat, but a server may keep one (SeaweedFS's filer does, or
            // a "name/" marker object): deleting "name/" removes it, and is a no-op otherwise.
            Err(e) if is_s3 && e.kind() == crate::ErrorKind::NotFound => EntryKind::Directory,
            Err(e) => return Err(e),
        };
        let name = match kind {
            EntryKind::Directory => {
                if !self.list(path).await?.is_empty() {
                    return Err(ConnectorError::InvalidInput {
                        volume: self.volume.clone(),
                        path: path.to_string(),
                        detail: "directory not empty".into(),
                    });
                }
                Self::dir_path(path)
            }
            EntryKind::File | EntryKind::Symlink => Self::file_path(path),
        };
        self.op
            .delete(&name)
            .await
            .map_err(|e| self.convert(path, e))
    }
}

impl OpendalConnector {
    /// Every file and folder under folder `from`, each with its path under `to` (folders
    /// parents first), refused beyond [`crate::connector::MAX_RENAME_OBJECTS`] files (a rename
    /// that would copy too much).
    async fn tree_under(&self, from: &ObjectPath, to: &ObjectPath) -> Result<RenamePlan> {
        let mut plan = RenamePlan::default();
        let mut folders = vec![(from.clone(), to.clone())];
        while let Some((source, target)) = folders.pop() {
            for entry in self.list(&source).await? {
                let (Ok(a), Ok(b)) = (source.child(&entry.name), target.child(&entry.name)) else {
                    continue;
                };
                match entry.meta.kind {
                    EntryKind::Directory => {
                        plan.folders.push((a.clone(), b.clone()));
                        folders.push((a, b));
                    }
                    EntryKind::File | EntryKind::Symlink => plan.files.push((a, b)),
                }
                if plan.files.len() > crate::connector::MAX_RENAME_OBJECTS {
                    return Err(ConnectorError::Unsupported {
                        volume: self.volume.clone(),
                        operation: format!(
                            "renaming folder '{from}' of more than {} objects",
                            crate::connector::MAX_RENAME_OBJECTS
                        ),
                    });
                }
            }
        }
        Ok(plan)
    }
}

/// What a folder rename copies on a backend without native renames.
#[derive(Default)]
struct RenamePlan {
    files: Vec<(ObjectPath, ObjectPath)>,
    folders: Vec<(ObjectPath, ObjectPath)>,
}

/// OpenDAL's process-wide HTTP transport: reqwest with colo's TLS set-up (`crate::tls`; opendal's
/// own default would build a client before a crypto provider is installed). Once per process.
fn install_http_transport() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| match crate::tls::http_client_builder().build() {
        Ok(client) => opendal::HttpTransporter::install_default(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        ),
        // Requests then fail with opendal's "transport is not installed", which names the cause.
        Err(e) => tracing::error!(error = %e, "no HTTP client for the S3 and WebDAV backends"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::VolumeConfig;

    /// An S3 volume whose endpoint refuses connections: the request reaches the network (the
    /// HTTP transport and TLS are set up) and fails as an unreachable origin.
    #[tokio::test]
    async fn requests_go_out_through_the_installed_transport() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let spec = VolumeSpec::from_config(&VolumeConfig {
            name: Some("down".into()),
            url: Some("s3://bucket/prefix".into()),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            anonymous: Some(true),
            ..Default::default()
        })
        .expect("a valid spec");
        let connector = OpendalConnector::new(&spec, Redactor::new(vec![])).expect("built");
        let error = connector
            .stat(&ObjectPath::parse("a.fits").expect("path"))
            .await
            .expect_err("nothing listens there");
        assert_eq!(error.kind(), crate::ErrorKind::Unavailable, "{error}");
        assert!(!error.to_string().contains("not installed"), "{error}");
    }
}
