//! The TAP service driven through `router()` without a socket (tower `oneshot`): a real catalogue
//! ingested into a temporary folder, then sync and async queries, errors, TAP_SCHEMA and VOSI.
//!
//! Data: 2,000 rows of the Hipparcos-2 sample committed in `fixtures/hip2_sample.csv` (CDS I/311,
//! see `fixtures/PROVENANCE.md`).

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use colo_vo_services::ingest::{IngestRequest, InputFormat, ingest};
use colo_vo_services::vosi::ServiceLimits;
use colo_vo_services::{AppState, ServiceConfig, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Service {
    _dir: tempfile::TempDir,
    app: axum::Router,
}

async fn service() -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hip2_sample.csv")).expect("fixture");
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
    let config = ServiceConfig {
        tables_dir: dir.path().join("tables"),
        jobs_dir: dir.path().join("jobs"),
        limits: ServiceLimits { default_maxrec: 1000, ..Default::default() },
    };
    let state = AppState::open(&config).await.expect("open");
    Service { _dir: dir, app: router(state) }
}

async fn post(app: &axum::Router, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "localhost")
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn sync_csv(app: &axum::Router, query: &str) -> (StatusCode, String) {
    post(app, "/tap/sync", &[("LANG", "ADQL"), ("QUERY", query), ("RESPONSEFORMAT", "csv")]).await
}

#[tokio::test]
async fn unknown_names_are_reported_with_suggestions() {
    let s = service().await;
    let (status, body) = sync_csv(&s.app, "SELECT TOP 1 hip FROM sample.hip3").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">unknown table sample.hip3 (did you mean sample.hip2?)</INFO>"), "{body}");
    let (status, body) = sync_csv(&s.app, "SELECT TOP 1 hpmagg FROM sample.hip2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown column hpmagg (did you mean hpmag?)"), "{body}");
}
