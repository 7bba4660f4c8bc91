//! Every error the filesystem can return, as an errno — here and nowhere else. Exhaustive matches
//! with no catch-all arm: a new error variant does not compile until it is given its errno.
//!
//! The choices: an origin that is down or failing mid-read gives `EIO` for that request only; a file
//! that changed at the origin while open gives `ESTALE` (re-open to get the new version); refused
//! credentials give `EACCES`; writes on read-only volumes give `EROFS`; a full staging disk gives
//! `ENOSPC`; a folder rename the backend cannot do in few requests gives `EXDEV`.

use crate::error::VfsError;
use colo_cache::CacheError;
use colo_connectors::{ConnectorError, ErrorKind};

pub fn errno(e: &VfsError) -> i32 {
    match e {
        VfsError::NotFound { .. } => libc::ENOENT,
        VfsError::NotADirectory { .. } => libc::ENOTDIR,
        VfsError::IsADirectory { .. } => libc::EISDIR,
        VfsError::ReadOnly { .. } => libc::EROFS,
        VfsError::BadHandle { .. } => libc::EBADF,
        VfsError::Exists { .. } => libc::EEXIST,
        VfsError::NotEmpty { .. } => libc::ENOTEMPTY,
        VfsError::CrossDevice { .. } => libc::EXDEV,
        VfsError::Busy { .. } => libc::EBUSY,
        VfsError::Invalid { .. } => libc::EINVAL,
        VfsError::Os { errno, .. } => *errno,
        VfsError::NotPermitted { .. } => libc::EPERM,
        VfsError::TooLarge { .. } => libc::EFBIG,
        VfsError::Origin(c) => connector_errno(c),
        VfsError::Cache(c) => cache_errno(c),
        VfsError::NoFuseDevice | VfsError::NoFusermount => libc::ENODEV,
        VfsError::MountRootBusy { .. } => libc::EBUSY,
        VfsError::MountRoot { .. } | VfsError::Mount { .. } => libc::EIO,
    }
}

fn cache_errno(e: &CacheError) -> i32 {
    match e {
        CacheError::Origin(c) => connector_errno(c),
        // The staging area's disk is full: the writer gets ENOSPC, nothing staged is lost.
        CacheError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            libc::ENOSPC
        }
        CacheError::Io { .. } | CacheError::Task { .. } => libc::EIO,
    }
}

pub fn connector_errno(e: &ConnectorError) -> i32 {
    match e.kind() {
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::PermissionDenied => libc::EACCES,
        ErrorKind::Stale => libc::ESTALE,
        ErrorKind::Unavailable => libc::EIO,
        ErrorKind::Unsupported => libc::ENOTSUP,
        ErrorKind::InvalidInput => libc::EINVAL,
        ErrorKind::WrongKind => match e {
            ConnectorError::WrongKind {
                expected: "directory",
                ..
            } => libc::ENOTDIR,
            _ => libc::EISDIR,
        },
        ErrorKind::Internal => libc::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn origin(e: ConnectorError) -> VfsError {
        VfsError::Origin(Arc::new(e))
    }

    #[test]
    fn origin_errors_map_to_fitting_errnos() {
        let (v, p) = ("v".to_string(), "/p".to_string());
        assert_eq!(
            errno(&origin(ConnectorError::NotFound {
                volume: v.clone(),
                path: p.clone()
            })),
            libc::ENOENT
        );
        assert_eq!(
            errno(&origin(ConnectorError::Stale {
                volume: v.clone(),
                path: p.clone()
            })),
            libc::ESTALE
        );
        assert_eq!(
            errno(&origin(ConnectorError::Unavailable {
                volume: v.clone(),
                path: p.clone(),
                detail: "down".into()
            })),
            libc::EIO
        );
        assert_eq!(
            errno(&origin(ConnectorError::Timeout {
                volume: v.clone(),
                path: p.clone(),
                timeout_ms: 1
            })),
            libc::EIO
        );
        assert_eq!(
            errno(&origin(ConnectorError::PermissionDenied {
                volume: v.clone(),
                path: p.clone(),
                detail: "530".into()
            })),
            libc::EACCES
        );
        assert_eq!(
            errno(&origin(ConnectorError::WrongKind {
                volume: v,
                path: p,
                expected: "directory",
                actual: "file"
            })),
            libc::ENOTDIR
        );
        assert_eq!(
            errno(&VfsError::ReadOnly {
                operation: "write",
                path: "/x".into()
            }),
            libc::EROFS
        );
    }
}
