//! The VFS's one error type. Errors from below keep their cause (shared, as one origin failure can
//! fail several reads); [`crate::errno`] turns every variant into an errno.

use colo_cache::CacheError;
use colo_connectors::ConnectorError;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error, Clone)]
#[non_exhaustive]
pub enum VfsError {
    #[error("no such file or directory: {path}")]
    NotFound { path: String },
    #[error("not a directory: {path}")]
    NotADirectory { path: String },
    #[error("is a directory: {path}")]
    IsADirectory { path: String },
    #[error("read-only file system: {operation} refused on {path}")]
    ReadOnly {
        operation: &'static str,
        path: String,
    },
    #[error("file exists: {path}")]
    Exists { path: String },
    #[error("directory not empty: {path}")]
    NotEmpty { path: String },
    #[error("{path}: {detail}; `mv` copies and deletes instead")]
    CrossDevice { path: String, detail: String },
    #[error("{path} is busy: {detail}")]
    Busy { path: String, detail: String },
    #[error("invalid request on {path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("operation not permitted on {path}: {detail}")]
    NotPermitted { path: String, detail: String },
    /// A system call on a direct volume's directory failed; its errno is the answer.
    #[error("{operation} {path}: {}", std::io::Error::from_raw_os_error(*errno))]
    Os {
        operation: &'static str,
        path: String,
        errno: i32,
    },
    #[error("file too large: {path} would be {size} bytes, over the volume's limit of {max}")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("bad file handle {handle}")]
    BadHandle { handle: u64 },
    #[error(transparent)]
    Origin(Arc<ConnectorError>),
    #[error(transparent)]
    Cache(CacheError),
    #[error(
        "/dev/fuse is missing: install FUSE with `apt-get install fuse3` (in a container, pass --device /dev/fuse)"
    )]
    NoFuseDevice,
    #[error(
        "fusermount3 is missing: a non-root mount needs it; install it with `apt-get install fuse3`"
    )]
    NoFusermount,
    #[error("mount root {root} is busy: another filesystem is mounted there (unmount it with `fusermount3 -u {root}`)", root = root.display())]
    MountRootBusy { root: PathBuf },
    #[error("cannot prepare mount root {root}: {detail}", root = root.display())]
    MountRoot { root: PathBuf, detail: String },
    #[error("mount at {root} failed: {detail}", root = root.display())]
    Mount { root: PathBuf, detail: String },
}

impl From<ConnectorError> for VfsError {
    fn from(e: ConnectorError) -> Self {
        VfsError::Origin(Arc::new(e))
    }
}

impl From<CacheError> for VfsError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Origin(c) => VfsError::Origin(c),
            other => VfsError::Cache(other),
        }
    }
}

pub type Result<T, E = VfsError> = std::result::Result<T, E>;
