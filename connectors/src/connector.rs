//! The `Connector` trait and the metadata it speaks in.
//!
//! Contract for [`Connector::read_range`]: the range must lie inside the object (callers clamp to
//! the size they got from `stat`/`list`), and when `expect` is given the connector guarantees the
//! bytes belong to that identity or fails with [`crate::ErrorKind::Stale`]. Each backend keeps the
//! guarantee as cheaply as it can: a conditional GET (`If-Match`) on S3 and WebDAV, the response's own
//! validators on HTTP, `fstat` of the open file on local paths, a `stat` after the read where the
//! protocol has no validators (FTP, SFTP). This is what keeps the cache from ever mixing two versions
//! of a file.

use crate::error::Result;
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// A symbolic link, as the backend keeps it (never followed by the connector).
    Symlink,
}

/// What a backend tells about one object or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// The backend's entity tag, verbatim (quotes included), where it has one.
    pub etag: Option<String>,
}

impl ObjectMeta {
    pub fn file(size: u64, mtime: Option<SystemTime>, etag: Option<String>) -> Self {
        ObjectMeta {
            kind: EntryKind::File,
            size,
            mtime,
            etag,
        }
    }

    pub fn directory(mtime: Option<SystemTime>) -> Self {
        ObjectMeta {
            kind: EntryKind::Directory,
            size: 0,
            mtime,
            etag: None,
        }
    }

    /// A symbolic link whose target is `target_len` bytes long (its size, as `lstat` shows it).
    pub fn symlink(target_len: u64, mtime: Option<SystemTime>) -> Self {
        ObjectMeta {
            kind: EntryKind::Symlink,
            size: target_len,
            mtime,
            etag: None,
        }
    }

    /// The identity that names this version of the object: its ETag, or its size and mtime where
    /// the backend has no ETag.
    pub fn identity(&self) -> ObjectIdentity {
        match &self.etag {
            Some(e) if !e.is_empty() => ObjectIdentity::ETag(e.clone()),
            _ => ObjectIdentity::SizeMtime {
                size: self.size,
                mtime_ns: self.mtime.map(system_time_ns).unwrap_or(0),
            },
        }
    }
}

/// Nanoseconds since the epoch, saturating (times before 1970 count as 0).
pub fn system_time_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Which version of an object bytes belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectIdentity {
    ETag(String),
    SizeMtime { size: u64, mtime_ns: i128 },
}

impl ObjectIdentity {
    /// Whether `meta` describes the same version.
    pub fn matches(&self, meta: &ObjectMeta) -> bool {
        *self == meta.identity()
    }
}

impl fmt::Display for ObjectIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectIdentity::ETag(e) => write!(f, "etag:{e}"),
            ObjectIdentity::SizeMtime { size, mtime_ns } => write!(f, "sm:{size}:{mtime_ns}"),
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub meta: ObjectMeta,
}

/// What a backend can do; the layers above read this instead of guessing from the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Listings carry sizes and mtimes (so `ls -l` needs no request per entry).
    pub list_has_metadata: bool,
    /// `read_range` checks the identity within the read request itself (no extra round trip).
    pub conditional_read: bool,
    /// The backend can write whole objects, delete them, create folders and rename
    /// ([`Connector::write_object`], [`Connector::delete`], [`Connector::create_dir`],
    /// [`Connector::rename`]).
    pub write: bool,
    /// Folders are renamed in one request (local, SFTP, WebDAV); elsewhere a folder rename copies
    /// each object and is refused beyond [`MAX_RENAME_OBJECTS`].
    pub rename_dirs: bool,
    /// The backend keeps symbolic links ([`Connector::symlink`], [`Connector::read_link`]);
    /// `stat` and `list` then show links as links.
    pub symlinks: bool,
}

/// The most objects a folder rename copies one by one on a backend without native renames; a
/// larger folder is refused as cross-device (`mv` then copies and deletes on its own).
pub const MAX_RENAME_OBJECTS: usize = 1000;

/// A data source colo reads from.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The volume name this connector serves (used in errors and metrics).
    fn volume(&self) -> &str;

    fn capability(&self) -> Capability;

    /// Metadata of the object or directory at `path` (the root is always a directory).
    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta>;

    /// Bytes `range` of the file at `path`; see the module note for the `expect` contract.
    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes>;

    /// [`Connector::read_range`] in pieces of `piece_bytes` (the last may be shorter) — a cache's
    /// blocks or pages. Backends that receive the body in chunks copy it once, straight into
    /// pieces of their own (see [`crate::pieces`]); the default slices `read_range`'s bytes.
    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        let bytes = self.read_range(path, range, expect).await?;
        Ok(crate::pieces::slice_pieces(bytes, piece_bytes))
    }

    /// The direct children of the directory at `path`, never including the directory itself.
    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>>;

    /// Creates or replaces the file at `path` with `bytes`, creating missing parent directories.
    /// Readers see the old object or the new one, never a part of it (one PUT on object stores, a
    /// temporary name renamed into place where the protocol can rename). Returns the new
    /// object's metadata. Backends without writes answer `Unsupported` (this default).
    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        let _ = bytes;
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("writing '{path}'"),
        })
    }

    /// Creates or replaces the file at `path` with the bytes of the local file `source`, with the
    /// atomicity of [`Connector::write_object`]. Backends that can stream override this so a large
    /// file is sent in bounded memory; the default reads the file whole.
    async fn write_file(&self, path: &ObjectPath, source: &std::path::Path) -> Result<ObjectMeta> {
        let bytes = tokio::fs::read(source).await.map_err(|e| {
            crate::error::ConnectorError::from_io(self.volume(), &source.display().to_string(), &e)
        })?;
        self.write_object(path, Bytes::from(bytes)).await
    }

    /// Creates the folder at `path` and any missing parents (an existing folder is success).
    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("creating folder '{path}'"),
        })
    }

    /// Moves the file or folder `from` to `to`, replacing a file (or an empty folder) at `to`;
    /// `to`'s parent must exist. Without native renames a file is copied then deleted, and a
    /// folder of more than [`MAX_RENAME_OBJECTS`] objects is refused (`Unsupported`).
    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let _ = to;
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("renaming '{from}'"),
        })
    }

    /// Creates a symbolic link at `path` pointing to `target` (kept verbatim, never resolved);
    /// fails if `path` exists. Backends without links answer `Unsupported` (this default).
    async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        let _ = target;
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("making symbolic link '{path}'"),
        })
    }

    /// The target of the symbolic link at `path`.
    async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("reading symbolic link '{path}'"),
        })
    }

    /// Removes the file, the symbolic link (not what it points to) or the empty directory at
    /// `path` (`NotFound` if there is none; object stores, which cannot tell, succeed).
    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        Err(crate::error::ConnectorError::Unsupported {
            volume: self.volume().to_string(),
            operation: format!("deleting '{path}'"),
        })
    }
}
