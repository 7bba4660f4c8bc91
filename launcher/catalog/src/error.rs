//! The catalog crate's one error type. Every variant carries what the caller needs to fix the
//! problem (the name, the key, the rule) and never a secret or a token. [`CatalogError::kind`]
//! classifies for the adapters: the CLI prints the message; the HTTP layer (next to the GraphQL API)
//! maps kinds to 400/401/403/404/409 in one place.

use std::path::PathBuf;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong: a name, a scope, a volume definition.
    InvalidInput,
    /// No valid credential: a forged, expired or revoked token.
    Unauthenticated,
    /// A valid caller without the right (a missing scope, not an admin).
    Forbidden,
    /// Nothing of that name that the caller may see (existence is not told apart from absence).
    NotFound,
    /// The name is taken.
    Conflict,
    /// The database, the key file or the disk failed.
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("{operation}: database error: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{what} name '{name}' is not allowed: {rule}")]
    BadName {
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error("unknown scope '{scope}' (scopes: {known})")]
    BadScope { scope: String, known: &'static str },
    #[error("no {what} named '{name}'")]
    NotFound { what: &'static str, name: String },
    #[error("{what} '{name}' exists already")]
    Exists { what: &'static str, name: String },
    #[error("{detail}")]
    BadRequest { detail: String },
    #[error("search: {detail}")]
    BadQuery { detail: String },
    #[error("catalogue file {file}: {detail}")]
    BadItems { file: String, detail: String },
    #[error("not authenticated: {reason}")]
    Unauthenticated { reason: &'static str },
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    #[error("volume '{volume}': {detail}")]
    BadVolume { volume: String, detail: String },
    #[error("the secret key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error(
        "the stored credentials of volume '{volume}' cannot be opened with this secret key (was the key replaced?)"
    )]
    Unseal { volume: String },
}

impl CatalogError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::Database { .. }
            | CatalogError::Io { .. }
            | CatalogError::Key { .. }
            | CatalogError::Unseal { .. } => ErrorKind::Internal,
            CatalogError::BadName { .. }
            | CatalogError::BadScope { .. }
            | CatalogError::BadVolume { .. }
            | CatalogError::BadQuery { .. }
            | CatalogError::BadRequest { .. }
            | CatalogError::BadItems { .. } => ErrorKind::InvalidInput,
            CatalogError::NotFound { .. } => ErrorKind::NotFound,
            CatalogError::Exists { .. } => ErrorKind::Conflict,
            CatalogError::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            CatalogError::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }

    /// The message an API answers with: the error itself, or for an internal one a pointer to
    /// the server's log (where it is written, with `during` saying what failed).
    pub fn shown_message(&self, during: &str) -> String {
        if self.kind() == ErrorKind::Internal {
            tracing::error!(error = %self, "{during} failed");
            "internal error (logged on the server)".to_string()
        } else {
            self.to_string()
        }
    }

    pub(crate) fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> CatalogError {
        move |source| CatalogError::Database { operation, source }
    }
}
