//! The one error type of colo-tap. Its variants tell the user's mistakes (a query that is not valid
//! ADQL, an unknown table or column, an unusable upload: [`TapError::is_user_error`]) from failures
//! of the service (files, the query engine, data that broke while a query ran). How each is spelled
//! for a client — the HTTP status, a VOTable with `QUERY_STATUS=ERROR` — is decided in one place
//! above this crate (`colo_vo_services::fault`).

use std::path::PathBuf;

use crate::adql::AdqlError;

/// Everything that can go wrong in colo-tap.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// The query is not valid ADQL (or uses something colo does not support).
    #[error("{0}")]
    Adql(#[from] AdqlError),
    /// The query names a table that does not exist.
    #[error("unknown table {name}{}", suggest(suggestion))]
    UnknownTable {
        name: String,
        suggestion: Option<String>,
    },
    /// The query names a column that does not exist.
    #[error("unknown column {name}{}", suggest(suggestion))]
    UnknownColumn {
        name: String,
        suggestion: Option<String>,
    },
    /// The query is valid ADQL but cannot be planned (types, ambiguity, ...).
    #[error("{message}")]
    Query { message: String },
    /// An uploaded table could not be used.
    #[error("upload {name}: {message}")]
    Upload { name: String, message: String },
    /// A catalogue could not be ingested (its rows, columns or format).
    #[error("ingest {source_name}: {message}")]
    Ingest {
        source_name: String,
        message: String,
    },
    /// The query needs more than a limit of the service allows (the memory one query may hold, the
    /// time a synchronous query may run): `message` says which and what to do instead.
    #[error("the query is over a limit of this service: {message}")]
    OverLimit { message: String },
    /// The query failed while running.
    #[error("the query failed while running: {message}")]
    Execution { message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A table descriptor is not valid TOML for [`crate::catalog::TableDescriptor`].
    #[error("{}: {message}", path.display())]
    Descriptor { path: PathBuf, message: String },
    /// The storage holding a table's files failed (an object store or volume that is down, a file
    /// gone): `location` names the table or file, `message` the store's redacted reason.
    #[error("reading {location} failed: {message}")]
    Storage { location: String, message: String },
    /// DataFusion failed where the query was not to blame (registration, schema inference).
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
}

fn suggest(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

impl TapError {
    /// True for what the user can fix in the request: bad ADQL, unknown names, a bad upload or a
    /// bad catalogue to ingest. Everything else is the service's failure.
    pub fn is_user_error(&self) -> bool {
        match self {
            TapError::Adql(_)
            | TapError::UnknownTable { .. }
            | TapError::UnknownColumn { .. }
            | TapError::Query { .. }
            | TapError::Upload { .. }
            | TapError::OverLimit { .. }
            | TapError::Ingest { .. } => true,
            TapError::Execution { .. }
            | TapError::Storage { .. }
            | TapError::Io { .. }
            | TapError::Descriptor { .. }
            | TapError::Engine(_) => false,
        }
    }

    /// True when the message names only the user's request and data, so a client may see it
    /// (I/O errors, descriptors and engine internals name files and internals of the service).
    pub fn is_shown_to_clients(&self) -> bool {
        !matches!(
            self,
            TapError::Io { .. } | TapError::Descriptor { .. } | TapError::Engine(_)
        )
    }

    /// An Arrow failure while a result is written (a batch that does not fit its schema).
    pub fn from_arrow(e: datafusion::arrow::error::ArrowError) -> TapError {
        TapError::Execution {
            message: e.to_string(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TapError {
        let path = path.into();
        move |source| TapError::Io { path, source }
    }
}

/// Result of colo-tap.
pub type Result<T, E = TapError> = std::result::Result<T, E>;
