//! The one fault map: every error of the services, as each protocol spells it.
//!
//! An error's [`FaultClass`] gives the HTTP status (400 usage, 404 not found, 409 conflict, 429
//! too many, 503 unavailable, 500 internal); the protocol gives the body:
//!
//! | protocol | body | spelling of the message |
//! |---|---|---|
//! | TAP, UWS (TAP 1.1 §3.3, DALI 1.1 §4.2) | VOTable, `INFO name="QUERY_STATUS" value="ERROR"` | the message |
//! | SIA 2.0 (§2.3) | VOTable | `UsageFault:`, `TransientFault:`, `FatalFault:` |
//! | DataLink 1.1 (§3.4) `{links}` | VOTable | `UsageFault:`, `NotFoundFault:`, `TransientFault:`, `FatalFault:` |
//! | DataLink downloads and previews | `text/plain` | as DataLink |
//! | SODA 1.0 (§5.2) | `text/plain` | `UsageError:`, `MultiValuedParamNotSupported:`, `ServiceUnavailable:`, `Error:` |
//!
//! A failed async job keeps the spelled message as its error summary, and its `/error` resource
//! renders it as its protocol does ([`job_error`]).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use colo_tap::output::votable::error_document;

use crate::error::{FaultClass, VoError};

/// Who is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TAP and the UWS resources of its jobs.
    Tap,
    /// SIA 2.0 queries.
    Sia,
    /// DataLink `{links}` documents.
    DataLink,
    /// DataLink's downloads and previews (the files `{links}` points at).
    DataLinkFile,
    /// SODA 1.0 cutouts, sync and async.
    Soda,
}

impl Protocol {
    /// The fault word that starts a message of `class` (none for TAP).
    fn prefix(self, class: FaultClass) -> Option<&'static str> {
        use FaultClass::{Conflict, Internal, MultiValued, NotFound, TooMany, Unavailable, Usage};
        Some(match (self, class) {
            (Protocol::Tap, _) => return None,
            (Protocol::Sia, Usage | MultiValued | NotFound | TooMany) => "UsageFault",
            (Protocol::DataLink | Protocol::DataLinkFile, Usage | MultiValued | TooMany) => {
                "UsageFault"
            }
            (Protocol::DataLink | Protocol::DataLinkFile, NotFound) => "NotFoundFault",
            (Protocol::Sia | Protocol::DataLink | Protocol::DataLinkFile, Unavailable) => {
                "TransientFault"
            }
            (Protocol::Sia | Protocol::DataLink | Protocol::DataLinkFile, Conflict | Internal) => {
                "FatalFault"
            }
            (Protocol::Soda, Usage | NotFound | TooMany) => "UsageError",
            (Protocol::Soda, MultiValued) => "MultiValuedParamNotSupported",
            (Protocol::Soda, Unavailable) => "ServiceUnavailable",
            (Protocol::Soda, Conflict | Internal) => "Error",
        })
    }

    /// Whether errors are VOTable documents (else `text/plain`).
    fn votable(self) -> bool {
        matches!(self, Protocol::Tap | Protocol::Sia | Protocol::DataLink)
    }
}

/// HTTP status of a fault class.
pub fn status(class: FaultClass) -> StatusCode {
    match class {
        FaultClass::Usage | FaultClass::MultiValued => StatusCode::BAD_REQUEST,
        FaultClass::NotFound => StatusCode::NOT_FOUND,
        FaultClass::Conflict => StatusCode::CONFLICT,
        FaultClass::TooMany => StatusCode::TOO_MANY_REQUESTS,
        FaultClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        FaultClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The message as `protocol` spells it (with its fault word).
pub fn message(protocol: Protocol, error: &VoError) -> String {
    let text = error.client_message();
    match protocol.prefix(error.class()) {
        Some(word) => format!("{word}: {text}"),
        None => text,
    }
}

/// The error document of `protocol` for a message already spelled, with `status`.
fn document(protocol: Protocol, status: StatusCode, message: &str) -> Response {
    if protocol.votable() {
        (
            status,
            [(header::CONTENT_TYPE, "application/x-votable+xml")],
            error_document(message),
        )
            .into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{message}\n"),
        )
            .into_response()
    }
}

/// The answer to a request that failed with `error`.
pub fn response(protocol: Protocol, error: &VoError) -> Response {
    document(protocol, status(error.class()), &message(protocol, error))
}

/// The `/error` resource of a failed job whose summary is `message` (spelled when the job failed):
/// 200, as UWS 1.1 §2.2.3.4 serves it.
pub fn job_error(protocol: Protocol, message: &str) -> Response {
    document(protocol, StatusCode::OK, message)
}

/// A result asked of a job that failed (phase ERROR): the job's error, with the status of its
/// failure. UWS lists no results for such a job; astroquery's TapPlus fetches `results/result`
/// anyway and reports only what that answer says, so it says why the job failed.
pub fn failed_job_result(protocol: Protocol, status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    document(protocol, status, message)
}

/// TAP's spelling is the default answer of a handler that fails (TAP and UWS resources).
impl IntoResponse for VoError {
    fn into_response(self) -> Response {
        response(Protocol::Tap, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colo_tap::TapError;

    fn bad() -> VoError {
        VoError::bad_parameter("BAND", "2 1: the interval is empty")
    }

    #[test]
    fn each_protocol_spells_a_usage_fault_its_way() {
        assert_eq!(
            message(Protocol::Tap, &bad()),
            "BAND: 2 1: the interval is empty"
        );
        assert!(message(Protocol::Sia, &bad()).starts_with("UsageFault: BAND"));
        assert!(message(Protocol::DataLink, &bad()).starts_with("UsageFault: "));
        assert!(message(Protocol::Soda, &bad()).starts_with("UsageError: "));
        let multi = VoError::MultiValued {
            name: "CIRCLE".into(),
            message: "give one region".into(),
        };
        assert_eq!(
            message(Protocol::Soda, &multi),
            "MultiValuedParamNotSupported: give one region"
        );
        let missing = VoError::NotFound {
            id: "ivo://x".into(),
        };
        assert!(message(Protocol::DataLinkFile, &missing).starts_with("NotFoundFault: "));
        assert!(message(Protocol::Soda, &missing).starts_with("UsageError: "));
        assert_eq!(status(missing.class()), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn tap_errors_are_votables_and_soda_errors_text() {
        let error = VoError::from(TapError::UnknownTable {
            name: "hip3".into(),
            suggestion: Some("sample.hip2".into()),
        });
        let tap = response(Protocol::Tap, &error);
        assert_eq!(tap.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            tap.headers()[header::CONTENT_TYPE],
            "application/x-votable+xml"
        );
        let body = axum::body::to_bytes(tap.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(
            "<INFO name=\"QUERY_STATUS\" value=\"ERROR\">unknown table hip3 (did you mean sample.hip2?)</INFO>"
        ));
        let soda = response(Protocol::Soda, &bad());
        assert_eq!(soda.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(soda.status(), StatusCode::BAD_REQUEST);
    }
}
