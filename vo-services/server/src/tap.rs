//! TAP 1.1 HTTP endpoints (axum): sync, async (UWS 1.1), capabilities, availability, tables,
//! examples — mounted at `/tap` and again at `/tap-server/tap` for astroquery's ESA modules.
//!
//! Handlers only convert: [`read_params`] turns GET query strings, form posts and multipart posts
//! into case-insensitive parameters (DALI 1.1 §3.1), [`QuerySpec`] checks them, and the engine,
//! writers and job store do the work. Two astroquery (TapPlus) expectations differ from UWS: it
//! wants HTTP 200 for `PHASE=ABORT` and for parameters POSTed to the job URL, and it reads job
//! results with `http.client` (no redirects). Requests whose User-Agent says `astroquery` get 200
//! with the job document there; every other client gets the 303 UWS requires (pyvo, taplint).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::engine::{Engine, QueryResult, UploadedTable};
use crate::error::{VoError, votable_error_document};
use crate::output::{Format, stream_result};
use crate::request::{base_url, is_tapplus, parse_pairs, read_params, text, xml};
use crate::upload::parse_votable;
use crate::uws::http::{JobRunner, UwsService, load_job_files};
use crate::uws::{Job, JobStore, iso8601, now_secs, parse_iso8601};
use crate::vosi::{self, ServiceLimits};

/// Shared state of the TAP service.
#[derive(Clone)]
pub struct TapState {
    /// The query engine.
    pub engine: Arc<Engine>,
    /// Async jobs.
    pub jobs: Arc<JobStore>,
    /// Declared and enforced limits.
    pub limits: ServiceLimits,
    /// When the service started (for /availability).
    pub up_since: String,
    /// HTTP client for `UPLOAD=name,https://...`.
    pub http: reqwest::Client,
}

/// The TAP routes (relative: nest them under a base path); `/async` is UWS over the state's jobs.
pub fn routes(state: TapState) -> Router {
    let jobs = UwsService {
        jobs: state.jobs.clone(),
        limits: state.limits.clone(),
        runner: Arc::new(QueryJobs {
            state: state.clone(),
        }),
    };
    Router::new()
        .route("/", get(landing))
        .route("/sync", get(sync_query).post(sync_query))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(availability))
        .route("/tables", get(tables))
        .route("/tables/{name}", get(table))
        .route("/examples", get(examples))
        .route("/notification", get(notifications).post(notifications))
        .with_state(state)
        .nest("/async", crate::uws::http::routes().with_state(jobs))
}

/// TAP's async jobs: an ADQL query each, its result written as the requested format.
struct QueryJobs {
    state: TapState,
}

impl JobRunner for QueryJobs {
    fn start(&self, jobs: &Arc<JobStore>, id: &str, tapplus: bool) -> Result<Job, VoError> {
        let job = jobs.get(id)?;
        let spec = QuerySpec::from_values(&job.parameters, &self.state.limits, tapplus);
        let state = self.state.clone();
        let store = jobs.clone();
        jobs.start(id, move |job, sink| {
            Box::pin(async move {
                let spec = spec?;
                let files = load_job_files(&store, &job);
                let result = run(&state, &spec, &files).await?;
                let writer = writer_for(&spec, &result);
                let content_type = spec.format.content_type(spec.requested_type.as_deref());
                let stream = Box::pin(stream_result(result, writer)) as crate::uws::ResultStream;
                sink.write(
                    "result",
                    spec.format.extension(),
                    content_type,
                    spec.gzip,
                    stream,
                )
                .await
            })
        })
    }

    fn error_response(&self, message: &str) -> Response {
        (
            [(header::CONTENT_TYPE, "application/x-votable+xml")],
            votable_error_document(message),
        )
            .into_response()
    }
}

/// A checked query request.
#[derive(Debug, Clone)]
struct QuerySpec {
    adql: String,
    format: Format,
    /// Compress the result (astroquery's `votable_gzip`, and FITS for astroquery).
    gzip: bool,
    requested_type: Option<String>,
    maxrec: u64,
    uploads: Vec<(String, String)>,
}

impl QuerySpec {
    fn from_values(
        values: &[(String, String)],
        limits: &ServiceLimits,
        tapplus: bool,
    ) -> Result<QuerySpec, VoError> {
        let get = |name: &str| {
            values
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        for single in [
            "LANG",
            "QUERY",
            "RESPONSEFORMAT",
            "FORMAT",
            "MAXREC",
            "RUNID",
        ] {
            if values.iter().filter(|(k, _)| k == single).count() > 1 {
                return Err(VoError::BadParameter {
                    name: single.into(),
                    message: "given more than once".into(),
                });
            }
        }
        match get("LANG") {
            None => {}
            Some(lang)
                if ["ADQL", "ADQL-2.0", "ADQL-2.1"]
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(lang.trim())) => {}
            Some(other) => {
                return Err(VoError::BadParameter {
                    name: "LANG".into(),
                    message: format!("unknown query language {other:?}; use ADQL"),
                });
            }
        }
        let adql = get("QUERY")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| VoError::BadParameter {
                name: "QUERY".into(),
                message: "missing: send the ADQL query in QUERY".into(),
            })?
            .to_string();
        let requested = get("RESPONSEFORMAT").or_else(|| get("FORMAT"));
        let format = match requested {
            None => Format::VotableBinary2,
            Some(value) => Format::parse(value).ok_or_else(|| VoError::BadParameter {
                name: "RESPONSEFORMAT".into(),
                message: format!("unsupported format {value:?}; use votable, votable/td, csv, tsv, ecsv, json, fits or parquet"),
            })?,
        };
        let maxrec = match get("MAXREC") {
            None => limits.default_maxrec,
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| VoError::BadParameter {
                    name: "MAXREC".into(),
                    message: format!("{value:?} is not a non-negative integer"),
                })?
                .min(limits.hard_maxrec),
        };
        let mut uploads = Vec::new();
        for value in values.iter().filter(|(k, _)| k == "UPLOAD").map(|(_, v)| v) {
            for pair in value.split(';').filter(|p| !p.trim().is_empty()) {
                let (name, uri) = pair.split_once(',').ok_or_else(|| VoError::BadParameter {
                    name: "UPLOAD".into(),
                    message: format!("{pair:?} is not name,uri"),
                })?;
                uploads.push((name.trim().to_string(), uri.trim().to_string()));
            }
        }
        let gzip = requested.is_some_and(|r| r.eq_ignore_ascii_case("votable_gzip"))
            || (tapplus && format == Format::Fits);
        Ok(QuerySpec {
            adql,
            format,
            gzip,
            requested_type: requested.map(String::from),
            maxrec,
            uploads,
        })
    }
}

/// Loads the uploads of a query: inline parts come from `files`, http(s) URIs are fetched.
async fn load_uploads(
    state: &TapState,
    spec: &QuerySpec,
    files: &HashMap<String, Bytes>,
) -> Result<Vec<UploadedTable>, VoError> {
    let mut tables = Vec::new();
    let limit = state.limits.upload_limit_bytes;
    for (name, uri) in &spec.uploads {
        let bytes = if let Some(part) = uri.strip_prefix("param:") {
            files.get(part).cloned().ok_or_else(|| VoError::Upload {
                name: name.clone(),
                message: format!("no multipart part named {part:?}"),
            })?
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            let response = state
                .http
                .get(uri)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| VoError::Upload {
                    name: name.clone(),
                    message: format!("could not fetch {uri}: {e}"),
                })?;
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(VoError::Upload {
                    name: name.clone(),
                    message: format!("larger than the upload limit of {limit} bytes"),
                });
            }
            response.bytes().await.map_err(|e| VoError::Upload {
                name: name.clone(),
                message: format!("could not fetch {uri}: {e}"),
            })?
        } else {
            return Err(VoError::Upload {
                name: name.clone(),
                message: format!("unsupported URI {uri:?}: use param:<part> or http(s)://"),
            });
        };
        if bytes.len() as u64 > limit {
            return Err(VoError::Upload {
                name: name.clone(),
                message: format!("larger than the upload limit of {limit} bytes"),
            });
        }
        tables.push(parse_votable(name, &bytes)?);
    }
    Ok(tables)
}

async fn run(
    state: &TapState,
    spec: &QuerySpec,
    files: &HashMap<String, Bytes>,
) -> Result<QueryResult, VoError> {
    let uploads = load_uploads(state, spec, files).await?;
    state
        .engine
        .execute(&spec.adql, Some(spec.maxrec), &uploads)
        .await
}

fn writer_for(spec: &QuerySpec, result: &QueryResult) -> Box<dyn crate::output::ResultWriter> {
    let writer = spec.format.writer(&result.columns);
    if spec.gzip {
        Box::new(crate::output::GzipWriter::new(writer))
    } else {
        writer
    }
}

fn streamed(result: QueryResult, spec: &QuerySpec) -> Response {
    let content_type = spec.format.content_type(spec.requested_type.as_deref());
    let writer = writer_for(spec, &result);
    let body = Body::from_stream(stream_result(result, writer));
    let mut response = Response::new(body);
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if spec.gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

async fn sync_query(
    State(state): State<TapState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        let spec = QuerySpec::from_values(&params.values, &state.limits, is_tapplus(&headers))?;
        let result = run(&state, &spec, &params.files).await?;
        Ok::<_, VoError>(streamed(result, &spec))
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn landing(headers: HeaderMap, uri: OriginalUri) -> Response {
    let base = base_url(&headers, &uri, "/\u{0}");
    text(format!(
        "colo TAP 1.1 service. Endpoints: {base}/sync, {base}/async, {base}/tables, {base}/capabilities\n"
    ))
}

async fn capabilities(
    State(state): State<TapState>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    let base = base_url(&headers, &uri, "/capabilities");
    let mut response = xml(vosi::capabilities(
        &base,
        state.engine.functions(),
        &state.limits,
        state
            .engine
            .tables()
            .iter()
            .any(|t| t.qualified_name() == "ivoa.obscore"),
    ));
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(
        std::time::SystemTime::UNIX_EPOCH
            + Duration::from_secs(parse_iso8601(&state.up_since).unwrap_or(0)),
    )) {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    response
}

async fn availability(State(state): State<TapState>) -> Response {
    xml(vosi::availability(&state.up_since))
}

/// Whether to add ESA TAP+ attributes to `/tables`: on the `/tap-server/tap` mount, for astroquery,
/// and for clients that send no User-Agent at all (astroquery's `http.client` GETs send none).
fn wants_esa_attributes(headers: &HeaderMap, uri: &OriginalUri) -> bool {
    uri.path().starts_with("/tap-server/")
        || is_tapplus(headers)
        || !headers.contains_key(header::USER_AGENT)
}

async fn tables(
    State(state): State<TapState>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let esa = wants_esa_attributes(&headers, &uri);
    let mut values = Vec::new();
    if let Some(query) = request.uri().query() {
        parse_pairs(query.as_bytes(), &mut values);
    }
    let get = |name: &str| {
        values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let detail_min =
        get("DETAIL").as_deref() == Some("min") || get("ONLY_TABLES").as_deref() == Some("true");
    let wanted: Option<Vec<String>> =
        get("TABLES").map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let tables: Vec<_> = state
        .engine
        .tables()
        .iter()
        .filter(|t| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|n| n == &t.qualified_name() || n == &t.name))
        })
        .cloned()
        .collect();
    xml(vosi::tableset(&tables, detail_min, esa))
}

async fn table(
    State(state): State<TapState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    let wanted = name.to_ascii_lowercase();
    let esa = wants_esa_attributes(&headers, &uri);
    match state
        .engine
        .tables()
        .iter()
        .find(|t| t.qualified_name().to_ascii_lowercase() == wanted)
    {
        Some(table) => xml(vosi::table_document(table, esa)),
        None => (StatusCode::NOT_FOUND, text(format!("no table {name}"))).into_response(),
    }
}

async fn examples(State(state): State<TapState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        vosi::examples(state.engine.tables()),
    )
        .into_response()
}

/// astroquery's ESA modules ask for notices when they start; there are none.
async fn notifications() -> Response {
    text(String::new())
}

/// Now, as an ISO 8601 string (for `up_since`).
pub fn now_iso() -> String {
    iso8601(now_secs())
}
