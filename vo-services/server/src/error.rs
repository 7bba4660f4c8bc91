//! The one error type of colo-vo-services, and its single mapping to HTTP: a VOTable error document
//! (DALI 1.1 §4.2, TAP 1.1 §3.3) whose status INFO is serialised byte-exactly as
//! `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>` (astroquery's TapPlus matches it
//! textually). Internal causes are logged, never shown to clients.

use std::path::PathBuf;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::adql::AdqlError;

/// Everything that can go wrong in the VO services.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoError {
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
    /// The query failed while running.
    #[error("the query failed while running: {message}")]
    Execution { message: String },
    /// A request parameter is missing or wrong.
    #[error("{name}: {message}")]
    BadParameter { name: String, message: String },
    /// An uploaded table could not be used.
    #[error("upload {name}: {message}")]
    Upload { name: String, message: String },
    /// A UWS job that does not exist.
    #[error("no job {id}")]
    JobNotFound { id: String },
    /// A UWS request that the job's phase does not allow.
    #[error("{message}")]
    JobState { message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A table descriptor is not valid TOML for [`crate::catalog::TableDescriptor`].
    #[error("{}: {message}", path.display())]
    Descriptor { path: PathBuf, message: String },
    /// A catalogue could not be ingested.
    #[error("ingest {source_name}: {message}")]
    Ingest {
        source_name: String,
        message: String,
    },
    /// A FITS file could not be understood.
    #[error("{name}: {message}")]
    Fits { name: String, message: String },
    /// A volume could not be read.
    #[error("volume {volume}: {message}")]
    Origin { volume: String, message: String },
    /// A dataset identifier that names nothing published here.
    #[error("{id}: no such dataset is published here")]
    NotFound { id: String },
    /// A SODA fault: the text starts with its standard prefix (`UsageError`,
    /// `MultiValuedParamNotSupported`, `Error`; SODA 1.0 §5.2).
    #[error("{fault}: {message}")]
    Fault {
        fault: &'static str,
        message: String,
    },
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

impl VoError {
    /// HTTP status for this error (DALI allows 4xx/5xx for sync errors; bad input is 400).
    pub fn status(&self) -> StatusCode {
        match self {
            VoError::Adql(_)
            | VoError::UnknownTable { .. }
            | VoError::UnknownColumn { .. }
            | VoError::Query { .. }
            | VoError::BadParameter { .. }
            | VoError::Upload { .. } => StatusCode::BAD_REQUEST,
            VoError::JobNotFound { .. } | VoError::NotFound { .. } => StatusCode::NOT_FOUND,
            VoError::Origin { .. } => StatusCode::SERVICE_UNAVAILABLE,
            VoError::JobState { .. } => StatusCode::CONFLICT,
            VoError::Fault { fault, .. } => match *fault {
                "UsageError" | "MultiValuedParamNotSupported" => StatusCode::BAD_REQUEST,
                "ServiceUnavailable" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            VoError::Execution { .. }
            | VoError::Io { .. }
            | VoError::Descriptor { .. }
            | VoError::Ingest { .. }
            | VoError::Fits { .. }
            | VoError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message clients see (internal details stay in the log).
    pub fn client_message(&self) -> String {
        match self {
            VoError::Io { .. } | VoError::Descriptor { .. } | VoError::Engine(_) => {
                tracing::error!(error = %self, "internal error");
                "internal error in the service (logged)".to_string()
            }
            VoError::Origin { volume, .. } => {
                tracing::error!(error = %self, "volume read failed");
                format!("volume {volume} could not be read (logged); try again later")
            }
            other => other.to_string(),
        }
    }
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A VOTable error document (TAP 1.1 §3.3).
pub fn votable_error_document(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n\
         <RESOURCE type=\"results\">\n\
         <INFO name=\"QUERY_STATUS\" value=\"ERROR\">{}</INFO>\n\
         </RESOURCE>\n\
         </VOTABLE>\n",
        xml_escape(message)
    )
}

impl IntoResponse for VoError {
    fn into_response(self) -> Response {
        let body = votable_error_document(&self.client_message());
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/x-votable+xml")],
            body,
        )
            .into_response()
    }
}

/// The closest name to `wanted` among `candidates` (edit distance ≤ 1/3 of its length).
pub fn nearest_name<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let limit = (wanted.len() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_has_the_exact_status_info() {
        let doc = votable_error_document("bad <query>");
        assert!(
            doc.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">bad &lt;query&gt;</INFO>")
        );
    }

    #[test]
    fn nearest_name_suggests_close_spellings_only() {
        assert_eq!(
            nearest_name("hip3", ["hip2", "tables"]),
            Some("hip2".into())
        );
        assert_eq!(
            nearest_name("phot_g_mean_mg", ["phot_g_mean_mag", "ra"]),
            Some("phot_g_mean_mag".into())
        );
        assert_eq!(nearest_name("zzz", ["hip2", "tables"]), None);
    }
}
