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
use axum::extract::{FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod jobs;

use jobs::{
    create_job, delete_job, job_destruction, job_document, job_error, job_execution_duration,
    job_owner, job_parameters, job_phase, job_quote, job_result, job_results, list_jobs,
    post_destruction, post_execution_duration, post_parameters, post_phase, post_to_job,
};

use crate::engine::{Engine, QueryResult, UploadedTable};
use crate::error::VoError;
use crate::output::{Format, stream_result};
use crate::upload::parse_votable;
use crate::uws::{JobStore, iso8601, now_secs, parse_iso8601};
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

/// The TAP routes (relative: nest them under a base path).
pub fn routes() -> Router<TapState> {
    Router::new()
        .route("/", get(landing))
        .route("/sync", get(sync_query).post(sync_query))
        .route("/async", get(list_jobs).post(create_job))
        .route(
            "/async/{id}",
            get(job_document).post(post_to_job).delete(delete_job),
        )
        .route("/async/{id}/phase", get(job_phase).post(post_phase))
        .route(
            "/async/{id}/executionduration",
            get(job_execution_duration).post(post_execution_duration),
        )
        .route(
            "/async/{id}/destruction",
            get(job_destruction).post(post_destruction),
        )
        .route("/async/{id}/error", get(job_error))
        .route("/async/{id}/quote", get(job_quote))
        .route("/async/{id}/owner", get(job_owner))
        .route(
            "/async/{id}/parameters",
            get(job_parameters).post(post_parameters),
        )
        .route("/async/{id}/results", get(job_results))
        .route("/async/{id}/results/result", get(job_result))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(availability))
        .route("/tables", get(tables))
        .route("/tables/{name}", get(table))
        .route("/examples", get(examples))
        .route("/notification", get(notifications).post(notifications))
}

/// Request parameters: upper-case names in order, plus multipart file parts by name.
#[derive(Debug, Default)]
pub struct Params {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) files: HashMap<String, Bytes>,
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_pairs(text: &[u8], into: &mut Vec<(String, String)>) {
    for (key, value) in url::form_urlencoded::parse(text) {
        into.push((key.to_ascii_uppercase(), value.into_owned()));
    }
}

/// Reads parameters from the query string and a form or multipart body.
pub async fn read_params(request: Request, limits: &ServiceLimits) -> Result<Params, VoError> {
    let mut params = Params::default();
    if let Some(query) = request.uri().query() {
        parse_pairs(query.as_bytes(), &mut params.values);
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| VoError::BadParameter {
                name: "body".into(),
                message: e.to_string(),
            })?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| VoError::BadParameter {
                name: "body".into(),
                message: format!("unreadable multipart body: {e}"),
            })?
        {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = field.bytes().await.map_err(|e| VoError::Upload {
                name: name.clone(),
                message: format!(
                    "could not read the part ({e}); uploads are limited to {} bytes",
                    limits.upload_limit_bytes
                ),
            })?;
            if is_file || data.len() > 4096 || name.eq_ignore_ascii_case("FILE") {
                params.files.insert(name, data);
            } else {
                params.values.push((
                    name.to_ascii_uppercase(),
                    String::from_utf8_lossy(&data).into_owned(),
                ));
                params.files.insert(name, data);
            }
        }
    } else if matches!(request.method(), &Method::POST | &Method::PUT) {
        let body = axum::body::to_bytes(
            request.into_body(),
            limits.upload_limit_bytes as usize + 1024 * 1024,
        )
        .await
        .map_err(|e| VoError::BadParameter {
            name: "body".into(),
            message: format!("request body too large or unreadable: {e}"),
        })?;
        parse_pairs(&body, &mut params.values);
    }
    Ok(params)
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

/// The TAP base URL as the client sees it (scheme, host and the mount path).
fn base_url(headers: &HeaderMap, uri: &OriginalUri, suffix: &str) -> String {
    let path = uri.path();
    let mount = path.find(suffix).map_or(path, |at| &path[..at]);
    format!(
        "{}{}",
        crate::images::root_url(headers),
        mount.trim_end_matches('/')
    )
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn see_other(location: String) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn is_tapplus(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.to_ascii_lowercase().contains("astroquery"))
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

/// Deletes expired jobs once a minute.
pub fn spawn_sweeper(jobs: Arc<JobStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            jobs.sweep();
        }
    })
}

/// Now, as an ISO 8601 string (for `up_since`).
pub fn now_iso() -> String {
    iso8601(now_secs())
}
