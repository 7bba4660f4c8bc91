//! Requests to the router without a socket (tower `oneshot`), shared by the router-level tests.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// What came back: status, content type, body.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request, as a client at `http://localhost` would.
pub async fn send(app: &axum::Router, request: axum::http::request::Builder, body: Body) -> Answer {
    let request = request
        .header("host", "localhost")
        .body(body)
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// A GET of `path` (with its query string).
pub async fn get(app: &axum::Router, path: &str) -> Answer {
    send(app, Request::get(path), Body::empty()).await
}

/// A form POST to `path`.
pub async fn post(app: &axum::Router, path: &str, form: &[(&str, &str)]) -> Answer {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    send(app, request, Body::from(body)).await
}

/// The TAP services over the 2,000-row Hipparcos sample (`../tap/tests/fixtures`) as
/// `sample.hip2`, in a temporary folder kept as long as the returned one.
pub async fn hip2_service(
    limits: colo_vo_services::vosi::ServiceLimits,
) -> (tempfile::TempDir, axum::Router) {
    use colo_tap::ingest::{IngestRequest, InputFormat, ingest};
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tap/tests/fixtures/hip2_sample.csv"),
    )
    .expect("fixture");
    let request = IngestRequest {
        source_name: "hip2_sample.csv".into(),
        bytes: csv.into(),
        format: InputFormat::Csv,
        schema: "sample".into(),
        table: "hip2".into(),
        position: None,
        description: Some("Hipparcos sample".into()),
    };
    ingest(&dir.path().join("tables"), &request, &mut |_, _| {}).expect("ingest");
    let config = colo_vo_services::ServiceConfig {
        tables_dir: dir.path().join("tables"),
        table_volumes: Vec::new(),
        jobs_dir: dir.path().join("jobs"),
        limits,
        urls: Default::default(),
    };
    let state = colo_vo_services::AppState::open(&config, Default::default())
        .await
        .expect("open");
    (dir, colo_vo_services::router(state))
}
