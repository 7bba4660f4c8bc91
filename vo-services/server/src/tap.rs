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
use futures::StreamExt;

use colo_tap::engine::{Engine, QueryResult};
use colo_tap::output::{Format, GzipWriter, ResultWriter, stream_result};

use crate::error::VoError;
use crate::http::{Root, is_tapplus, text, xml};
use crate::params::Params;
use crate::uws::http::{JobRunner, Starter, UwsService, load_job_files};
use crate::uws::{Job, JobStore, ResultStream, iso8601, now_secs, parse_iso8601};
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
        .nest(
            "/async",
            crate::uws::http::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    jobs.clone(),
                    crate::uws::http::guard,
                ))
                .with_state(jobs),
        )
}

/// TAP's async jobs: an ADQL query each, its result written as the requested format.
struct QueryJobs {
    state: TapState,
}

impl JobRunner for QueryJobs {
    fn start(&self, jobs: &Arc<JobStore>, id: &str, starter: &Starter) -> Result<Job, VoError> {
        let job = jobs.get(id)?;
        let spec = QuerySpec::from_params(&job.params(), &self.state.limits, starter.tapplus);
        let root = starter.root.clone();
        let state = self.state.clone();
        let store = jobs.clone();
        jobs.start(id, move |job, sink| {
            Box::pin(async move {
                let spec = spec?;
                let files = load_job_files(&store, &job);
                let result = run(&state, &spec, &files).await?;
                let writer = writer_for(&spec, &result);
                let content_type = spec.format.content_type(spec.requested_type.as_deref());
                let stream: ResultStream = Box::pin(
                    stream_result(result, writer, Some(root))
                        .map(|chunk| chunk.map_err(VoError::from)),
                );
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
    fn from_params(
        params: &Params,
        limits: &ServiceLimits,
        tapplus: bool,
    ) -> Result<QuerySpec, VoError> {
        for single in [
            "LANG",
            "QUERY",
            "RESPONSEFORMAT",
            "FORMAT",
            "MAXREC",
            "RUNID",
        ] {
            params.single(single)?;
        }
        match params.get("LANG") {
            None => {}
            Some(lang)
                if ["ADQL", "ADQL-2.0", "ADQL-2.1"]
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(lang.trim())) => {}
            Some(other) => {
                return Err(VoError::bad_parameter(
                    "LANG",
                    format!("unknown query language {other:?}; use ADQL"),
                ));
            }
        }
        let adql = params
            .get("QUERY")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| {
                VoError::bad_parameter("QUERY", "missing: send the ADQL query in QUERY")
            })?
            .to_string();
        let requested = params
            .get("RESPONSEFORMAT")
            .or_else(|| params.get("FORMAT"));
        let format = match requested {
            None => Format::VotableBinary2,
            Some(value) => Format::parse(value).ok_or_else(|| {
                VoError::bad_parameter(
                    "RESPONSEFORMAT",
                    format!("unsupported format {value:?}; use votable, votable/td, csv, tsv, ecsv, json, fits or parquet"),
                )
            })?,
        };
        let maxrec = params
            .parse::<u64>("MAXREC", "a non-negative integer")?
            .map_or(limits.default_maxrec, |m| m.min(limits.hard_maxrec));
        let mut uploads = Vec::new();
        for value in params.all("UPLOAD") {
            for pair in value.split(';').filter(|p| !p.trim().is_empty()) {
                let (name, uri) = pair.split_once(',').ok_or_else(|| {
                    VoError::bad_parameter("UPLOAD", format!("{pair:?} is not name,uri"))
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

async fn run(
    state: &TapState,
    spec: &QuerySpec,
    files: &HashMap<String, Bytes>,
) -> Result<QueryResult, VoError> {
    let uploads = colo_tap::upload::load(
        &state.http,
        &spec.uploads,
        files,
        state.limits.upload_limit_bytes,
    )
    .await?;
    Ok(state
        .engine
        .execute(&spec.adql, Some(spec.maxrec), &uploads)
        .await?)
}

fn writer_for(spec: &QuerySpec, result: &QueryResult) -> Box<dyn ResultWriter> {
    let writer = spec.format.writer(&result.columns);
    if spec.gzip {
        Box::new(GzipWriter::new(writer))
    } else {
        writer
    }
}

fn streamed(result: QueryResult, spec: &QuerySpec, root: Root) -> Response {
    let content_type = spec.format.content_type(spec.requested_type.as_deref());
    let writer = writer_for(spec, &result);
    let body = Body::from_stream(stream_result(result, writer, Some(root.0)));
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
    root: Root,
    request: Request,
) -> Result<Response, VoError> {
    let params = Params::read(request, &state.limits).await?;
    let spec = QuerySpec::from_params(&params, &state.limits, is_tapplus(&headers))?;
    let secs = state.limits.sync_query_secs;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let result = tokio::time::timeout_at(deadline, run(&state, &spec, params.files()))
        .await
        .map_err(|_| {
            VoError::from(colo_tap::TapError::OverLimit {
                message: over_time(secs),
            })
        })??;
    Ok(streamed(
        result.until(deadline, over_time(secs)),
        &spec,
        root,
    ))
}

fn over_time(secs: u64) -> String {
    format!(
        "it ran longer than {secs} s, the longest a synchronous query may run; \
         submit it as an asynchronous job (…/tap/async), or narrow it"
    )
}

async fn landing(root: Root, uri: OriginalUri) -> Response {
    let base = root.service_url(&uri, "/\u{0}");
    text(format!(
        "colo TAP 1.1 service. Endpoints: {base}/sync, {base}/async, {base}/tables, {base}/capabilities\n"
    ))
}

async fn capabilities(State(state): State<TapState>, root: Root, uri: OriginalUri) -> Response {
    let base = root.service_url(&uri, "/capabilities");
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

async fn tables(State(state): State<TapState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let esa = wants_esa_attributes(&headers, &uri);
    let params = Params::from_query(&uri);
    let detail_min = params.is("DETAIL", "min") || params.is("ONLY_TABLES", "true");
    let wanted: Option<Vec<String>> = params.get("TABLES").map(|t| {
        t.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    });
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
