//! The one error type of colo-astro. It says what went wrong with the data or the request, never how
//! to answer a client: the services map it to each protocol's fault in one place
//! (`colo_vo_services::fault`).
//!
//! A [`ByteSource`](crate::fits::ByteSource) that fails keeps its cause and says what kind of
//! failure it was ([`ReadFailure`]), so a file missing or replaced at the origin, or an origin that
//! is down, stays distinguishable all the way up.

/// Why a byte source could not deliver (set by the source; the numerics only pass it on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// The file is not there (any more).
    NotFound,
    /// The file changed since it was opened: open it again.
    Stale,
    /// The origin could not be reached or failed; may work later.
    Unavailable,
    /// Anything else.
    Other,
}

/// Everything that can go wrong in colo-astro.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AstroError {
    /// The file is not valid FITS, or uses something colo does not read.
    #[error("{name}: {message}")]
    Fits { name: String, message: String },
    /// The bytes of a file could not be read.
    #[error("{name}: {source}")]
    Read {
        name: String,
        kind: ReadFailure,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A request the data cannot honour (a cutout larger than allowed, a region that is not a
    /// region); `name` is the parameter to change.
    #[error("{name}: {message}")]
    BadParameter { name: String, message: String },
}

impl AstroError {
    /// A FITS problem in the file called `name`.
    pub fn fits(name: impl Into<String>, message: impl Into<String>) -> Self {
        AstroError::Fits {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Result of colo-astro.
pub type Result<T, E = AstroError> = std::result::Result<T, E>;
