//! The cache crate's error type. A failing cache tier never fails a read (it is logged and treated
//! as a miss); what reaches the caller is an origin failure, or a problem opening the cache itself.

use colo_connectors::ConnectorError;
use std::path::PathBuf;
use std::sync::Arc;

/// Deliberately not `#[non_exhaustive]`: the VFS maps it to errno with an exhaustive match, so a
/// new variant must be given its errno there before anything compiles.
#[derive(Debug, thiserror::Error, Clone)]
pub enum CacheError {
    /// The origin failed; shared because one fetch may serve several readers.
    #[error(transparent)]
    Origin(Arc<ConnectorError>),
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("cache: background task failed: {detail}")]
    Task { detail: String },
}

impl From<ConnectorError> for CacheError {
    fn from(e: ConnectorError) -> Self {
        CacheError::Origin(Arc::new(e))
    }
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;
