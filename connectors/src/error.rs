//! The connectors' one error type. Variants carry the volume and path they concern; backend errors
//! (opendal, reqwest, std::io) are converted at the crate boundary into these, with their message
//! passed through the volume's [`crate::Redactor`] so no credential can leak into a log or a reply.
//!
//! Callers classify by method: [`ConnectorError::kind`] for mapping (errno, HTTP status) and
//! [`ConnectorError::is_temporary`] for the retry layer, which reads nothing else.

use std::fmt;

/// What kind of failure this is, independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object or directory does not exist.
    NotFound,
    /// Credentials were refused or the object is not readable by them.
    PermissionDenied,
    /// The object changed at the origin since its identity was taken (ETag/size/mtime mismatch).
    Stale,
    /// The origin could not be reached or answered with a server-side failure; may succeed later.
    Unavailable,
    /// The backend cannot do this operation (e.g. writing to an HTTP tree).
    Unsupported,
    /// The request itself is wrong: a path escaping the volume, a range outside the object.
    InvalidInput,
    /// A path names a directory where a file was expected, or the reverse.
    WrongKind,
    /// Anything else: a bug or an unexpected answer. Logged in full, shown briefly.
    Internal,
}

/// An error from a connector, naming the volume and path it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    #[error("volume '{volume}': '{path}' not found")]
    NotFound { volume: String, path: String },
    #[error("volume '{volume}': access to '{path}' denied: {detail}")]
    PermissionDenied {
        volume: String,
        path: String,
        detail: String,
    },
    #[error("volume '{volume}': '{path}' changed at the origin while being read")]
    Stale { volume: String, path: String },
    #[error("volume '{volume}': origin unavailable for '{path}': {detail}")]
    Unavailable {
        volume: String,
        path: String,
        detail: String,
    },
    #[error("volume '{volume}': timed out after {timeout_ms} ms on '{path}'")]
    Timeout {
        volume: String,
        path: String,
        timeout_ms: u64,
    },
    #[error("volume '{volume}': {operation} is not supported by this backend")]
    Unsupported { volume: String, operation: String },
    #[error("invalid path '{path}': {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("volume '{volume}': invalid request on '{path}': {detail}")]
    InvalidInput {
        volume: String,
        path: String,
        detail: String,
    },
    #[error("volume '{volume}': '{path}' is a {actual}, not a {expected}")]
    WrongKind {
        volume: String,
        path: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("volume '{volume}': unexpected failure on '{path}': {detail}")]
    Internal {
        volume: String,
        path: String,
        detail: String,
    },
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// A backend's message as one short line: HTML tags dropped (servers answer errors with pages),
/// whitespace collapsed, at most `MAX_DETAIL_CHARS` characters.
pub fn one_line(text: &str) -> String {
    const MAX_DETAIL_CHARS: usize = 300;
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut out = words.join(" ");
    if out.chars().count() > MAX_DETAIL_CHARS {
        out = out.chars().take(MAX_DETAIL_CHARS).collect::<String>() + "…";
    }
    out
}

impl ConnectorError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectorError::NotFound { .. } => ErrorKind::NotFound,
            ConnectorError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            ConnectorError::Stale { .. } => ErrorKind::Stale,
            ConnectorError::Unavailable { .. } | ConnectorError::Timeout { .. } => {
                ErrorKind::Unavailable
            }
            ConnectorError::Unsupported { .. } => ErrorKind::Unsupported,
            ConnectorError::InvalidPath { .. } | ConnectorError::InvalidInput { .. } => {
                ErrorKind::InvalidInput
            }
            ConnectorError::WrongKind { .. } => ErrorKind::WrongKind,
            ConnectorError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the same request may succeed if tried again (the retry layer reads only this).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ConnectorError::Unavailable { .. } | ConnectorError::Timeout { .. }
        )
    }

    pub(crate) fn unavailable(volume: &str, path: &str, detail: impl fmt::Display) -> Self {
        ConnectorError::Unavailable {
            volume: volume.to_string(),
            path: path.to_string(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn not_found(volume: &str, path: &str) -> Self {
        ConnectorError::NotFound {
            volume: volume.to_string(),
            path: path.to_string(),
        }
    }

    pub(crate) fn stale(volume: &str, path: &str) -> Self {
        ConnectorError::Stale {
            volume: volume.to_string(),
            path: path.to_string(),
        }
    }

    pub(crate) fn internal(volume: &str, path: &str, detail: impl fmt::Display) -> Self {
        ConnectorError::Internal {
            volume: volume.to_string(),
            path: path.to_string(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn denied(volume: &str, path: &str, detail: impl fmt::Display) -> Self {
        ConnectorError::PermissionDenied {
            volume: volume.to_string(),
            path: path.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Convert a std::io error met while talking to `volume` about `path`.
    pub fn from_io(volume: &str, path: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(volume, path),
            K::PermissionDenied => Self::denied(volume, path, err),
            K::NotADirectory => ConnectorError::WrongKind {
                volume: volume.to_string(),
                path: path.to_string(),
                expected: "directory",
                actual: "file",
            },
            K::IsADirectory => ConnectorError::WrongKind {
                volume: volume.to_string(),
                path: path.to_string(),
                expected: "file",
                actual: "directory",
            },
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::Interrupted
            | K::UnexpectedEof
            | K::BrokenPipe => Self::unavailable(volume, path, err),
            K::DirectoryNotEmpty => ConnectorError::InvalidInput {
                volume: volume.to_string(),
                path: path.to_string(),
                detail: "directory not empty".into(),
            },
            _ => Self::internal(volume, path, err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn details_become_one_short_line() {
        let page = "<html>\n <head><title>401 Access not authorized</title></head>\n<body><h1>401 Access not authorized</h1></body></html>\n";
        assert_eq!(
            one_line(page),
            "401 Access not authorized 401 Access not authorized"
        );
        assert_eq!(one_line("a\n\n  b"), "a b");
        assert!(one_line(&"x".repeat(1000)).chars().count() <= 301);
    }
}
