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

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::engine::{Engine, QueryResult, UploadedTable};
use crate::error::{VoError, votable_error_document};
use crate::output::{Format, stream_result};
use crate::upload::parse_votable;
use crate::uws::{Job, JobStore, Phase, iso8601, now_secs, parse_iso8601};
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
        .route("/async/{id}", get(job_document).post(post_to_job).delete(delete_job))
        .route("/async/{id}/phase", get(job_phase).post(post_phase))
        .route("/async/{id}/executionduration", get(job_execution_duration).post(post_execution_duration))
        .route("/async/{id}/destruction", get(job_destruction).post(post_destruction))
        .route("/async/{id}/error", get(job_error))
        .route("/async/{id}/quote", get(job_quote))
        .route("/async/{id}/owner", get(job_owner))
        .route("/async/{id}/parameters", get(job_parameters).post(post_parameters))
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
    values: Vec<(String, String)>,
    files: HashMap<String, Bytes>,
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| VoError::BadParameter { name: "body".into(), message: e.to_string() })?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| VoError::BadParameter { name: "body".into(), message: format!("unreadable multipart body: {e}") })?
        {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = field.bytes().await.map_err(|e| VoError::Upload {
                name: name.clone(),
                message: format!("could not read the part ({e}); uploads are limited to {} bytes", limits.upload_limit_bytes),
            })?;
            if is_file || data.len() > 4096 || name.eq_ignore_ascii_case("FILE") {
                params.files.insert(name, data);
            } else {
                params.values.push((name.to_ascii_uppercase(), String::from_utf8_lossy(&data).into_owned()));
                params.files.insert(name, data);
            }
        }
    } else if matches!(request.method(), &Method::POST | &Method::PUT) {
        let body = axum::body::to_bytes(request.into_body(), limits.upload_limit_bytes as usize + 1024 * 1024)
            .await
            .map_err(|e| VoError::BadParameter { name: "body".into(), message: format!("request body too large or unreadable: {e}") })?;
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
    fn from_values(values: &[(String, String)], limits: &ServiceLimits, tapplus: bool) -> Result<QuerySpec, VoError> {
        let get = |name: &str| values.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        for single in ["LANG", "QUERY", "RESPONSEFORMAT", "FORMAT", "MAXREC", "RUNID"] {
            if values.iter().filter(|(k, _)| k == single).count() > 1 {
                return Err(VoError::BadParameter { name: single.into(), message: "given more than once".into() });
            }
        }
        match get("LANG") {
            None => {}
            Some(lang) if ["ADQL", "ADQL-2.0", "ADQL-2.1"].iter().any(|l| l.eq_ignore_ascii_case(lang.trim())) => {}
            Some(other) => {
                return Err(VoError::BadParameter { name: "LANG".into(), message: format!("unknown query language {other:?}; use ADQL") });
            }
        }
        let adql = get("QUERY")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| VoError::BadParameter { name: "QUERY".into(), message: "missing: send the ADQL query in QUERY".into() })?
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
                .map_err(|_| VoError::BadParameter { name: "MAXREC".into(), message: format!("{value:?} is not a non-negative integer") })?
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
        Ok(QuerySpec { adql, format, gzip, requested_type: requested.map(String::from), maxrec, uploads })
    }
}

/// Loads the uploads of a query: inline parts come from `files`, http(s) URIs are fetched.
async fn load_uploads(state: &TapState, spec: &QuerySpec, files: &HashMap<String, Bytes>) -> Result<Vec<UploadedTable>, VoError> {
    let mut tables = Vec::new();
    let limit = state.limits.upload_limit_bytes;
    for (name, uri) in &spec.uploads {
        let bytes = if let Some(part) = uri.strip_prefix("param:") {
            files
                .get(part)
                .cloned()
                .ok_or_else(|| VoError::Upload { name: name.clone(), message: format!("no multipart part named {part:?}") })?
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            let response = state
                .http
                .get(uri)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| VoError::Upload { name: name.clone(), message: format!("could not fetch {uri}: {e}") })?;
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(VoError::Upload { name: name.clone(), message: format!("larger than the upload limit of {limit} bytes") });
            }
            response.bytes().await.map_err(|e| VoError::Upload { name: name.clone(), message: format!("could not fetch {uri}: {e}") })?
        } else {
            return Err(VoError::Upload { name: name.clone(), message: format!("unsupported URI {uri:?}: use param:<part> or http(s)://") });
        };
        if bytes.len() as u64 > limit {
            return Err(VoError::Upload { name: name.clone(), message: format!("larger than the upload limit of {limit} bytes") });
        }
        tables.push(parse_votable(name, &bytes)?);
    }
    Ok(tables)
}

async fn run(state: &TapState, spec: &QuerySpec, files: &HashMap<String, Bytes>) -> Result<QueryResult, VoError> {
    let uploads = load_uploads(state, spec, files).await?;
    state.engine.execute(&spec.adql, Some(spec.maxrec), &uploads).await
}

fn writer_for(spec: &QuerySpec, result: &QueryResult) -> Box<dyn crate::output::ResultWriter> {
    let writer = spec.format.writer(&result.columns);
    if spec.gzip { Box::new(crate::output::GzipWriter::new(writer)) } else { writer }
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
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

async fn sync_query(State(state): State<TapState>, headers: HeaderMap, request: Request) -> Response {
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
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    let path = uri.path();
    let mount = path.find(suffix).map_or(path, |at| &path[..at]);
    format!("{scheme}://{host}{}", mount.trim_end_matches('/'))
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
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).is_some_and(|ua| ua.to_ascii_lowercase().contains("astroquery"))
}

async fn landing(headers: HeaderMap, uri: OriginalUri) -> Response {
    let base = base_url(&headers, &uri, "/\u{0}");
    text(format!("colo TAP 1.1 service. Endpoints: {base}/sync, {base}/async, {base}/tables, {base}/capabilities\n"))
}

async fn capabilities(State(state): State<TapState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let base = base_url(&headers, &uri, "/capabilities");
    let mut response = xml(vosi::capabilities(&base, state.engine.functions(), &state.limits));
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(parse_iso8601(&state.up_since).unwrap_or(0)))) {
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
    uri.path().starts_with("/tap-server/") || is_tapplus(headers) || !headers.contains_key(header::USER_AGENT)
}

async fn tables(State(state): State<TapState>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let esa = wants_esa_attributes(&headers, &uri);
    let mut values = Vec::new();
    if let Some(query) = request.uri().query() {
        parse_pairs(query.as_bytes(), &mut values);
    }
    let get = |name: &str| values.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_ascii_lowercase());
    let detail_min = get("DETAIL").as_deref() == Some("min") || get("ONLY_TABLES").as_deref() == Some("true");
    let wanted: Option<Vec<String>> = get("TABLES").map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let tables: Vec<_> = state
        .engine
        .tables()
        .iter()
        .filter(|t| wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == &t.qualified_name() || n == &t.name)))
        .cloned()
        .collect();
    xml(vosi::tableset(&tables, detail_min, esa))
}

async fn table(State(state): State<TapState>, Path(name): Path<String>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let wanted = name.to_ascii_lowercase();
    let esa = wants_esa_attributes(&headers, &uri);
    match state.engine.tables().iter().find(|t| t.qualified_name().to_ascii_lowercase() == wanted) {
        Some(table) => xml(vosi::table_document(table, esa)),
        None => (StatusCode::NOT_FOUND, text(format!("no table {name}"))).into_response(),
    }
}

async fn examples(State(state): State<TapState>) -> Response {
    ([(header::CONTENT_TYPE, "text/html")], vosi::examples(state.engine.tables())).into_response()
}

/// astroquery's ESA modules ask for notices when they start; there are none.
async fn notifications() -> Response {
    text(String::new())
}

// ---- async (UWS) ----

fn jobs_url(headers: &HeaderMap, uri: &OriginalUri) -> String {
    format!("{}/async", base_url(headers, uri, "/async"))
}

async fn list_jobs(State(state): State<TapState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let mut values = Vec::new();
    if let Some(query) = uri.query() {
        parse_pairs(query.as_bytes(), &mut values);
    }
    let phases: Vec<Phase> = values.iter().filter(|(k, _)| k == "PHASE").filter_map(|(_, v)| Phase::parse(v)).collect();
    let after = values.iter().find(|(k, _)| k == "AFTER").and_then(|(_, v)| parse_iso8601(v));
    let last = values.iter().find(|(k, _)| k == "LAST").and_then(|(_, v)| v.parse::<usize>().ok());
    let mut jobs: Vec<Job> = state
        .jobs
        .list()
        .into_iter()
        .filter(|j| if phases.is_empty() { j.phase != Phase::Archived } else { phases.contains(&j.phase) })
        .filter(|j| after.is_none_or(|a| j.creation_secs > a))
        .collect();
    if let Some(last) = last {
        // `list` is oldest first: keep the newest `last`, still oldest first.
        let skip = jobs.len().saturating_sub(last);
        jobs.drain(..skip);
    }
    let base = jobs_url(&headers, &uri);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:jobs xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
         xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1\">\n",
    );
    for job in jobs {
        out.push_str(&format!(
            "<uws:jobref id=\"{id}\" xlink:href=\"{base}/{id}\">\n<uws:phase>{}</uws:phase>\n",
            job.phase.as_str(),
            id = job.id
        ));
        if let Some(run_id) = &job.run_id {
            out.push_str(&format!("<uws:runId>{}</uws:runId>\n", crate::error::xml_escape(run_id)));
        }
        out.push_str(&format!("<uws:creationTime>{}</uws:creationTime>\n</uws:jobref>\n", iso8601(job.creation_secs)));
    }
    out.push_str("</uws:jobs>\n");
    xml(out)
}

/// Saves inline upload parts with the job (queries run later, possibly after a restart).
fn save_job_files(state: &TapState, job: &Job, files: &HashMap<String, Bytes>) -> Result<(), VoError> {
    for (name, data) in files {
        let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
        let path = state.jobs.job_dir(&job.id).join(format!("part-{safe}"));
        std::fs::write(&path, data).map_err(|source| VoError::Io { path, source })?;
    }
    Ok(())
}

fn load_job_files(state: &TapState, job: &Job) -> HashMap<String, Bytes> {
    let mut files = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(state.jobs.job_dir(&job.id)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(part) = name.strip_prefix("part-")
                && let Ok(data) = std::fs::read(entry.path())
            {
                files.insert(part.to_string(), Bytes::from(data));
            }
        }
    }
    files
}

/// Starts a job: checks its parameters first (a bad query fails the job, not the request).
fn start_job(state: &TapState, id: &str, tapplus: bool) -> Result<Job, VoError> {
    let job = state.jobs.get(id)?;
    let spec = QuerySpec::from_values(&job.parameters, &state.limits, tapplus);
    let (extension, content_type, gzip) = match &spec {
        Ok(spec) => (spec.format.extension(), spec.format.content_type(spec.requested_type.as_deref()), spec.gzip),
        Err(_) => ("vot", "application/x-votable+xml".to_string(), false),
    };
    let task_state = state.clone();
    state.jobs.start(id, extension, content_type, gzip, move |job| {
        Box::pin(async move {
            let spec = spec?;
            let files = load_job_files(&task_state, &job);
            let result = run(&task_state, &spec, &files).await?;
            let writer = writer_for(&spec, &result);
            Ok(Box::pin(stream_result(result, writer)) as crate::uws::ResultStream)
        })
    })
}

async fn create_job(State(state): State<TapState>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        let run_now = params.get("PHASE").is_some_and(|p| p.eq_ignore_ascii_case("RUN"));
        let job = state.jobs.create(params.values.clone())?;
        save_job_files(&state, &job, &params.files)?;
        if run_now {
            start_job(&state, &job.id, is_tapplus(&headers))?;
        }
        Ok::<_, VoError>(see_other(format!("{}/{}", jobs_url(&headers, &uri), job.id)))
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn job_url(headers: &HeaderMap, uri: &OriginalUri, id: &str) -> String {
    format!("{}/{}", jobs_url(headers, uri), id)
}

async fn job_document(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let outcome = async {
        let mut values = Vec::new();
        if let Some(query) = uri.query() {
            parse_pairs(query.as_bytes(), &mut values);
        }
        let mut job = state.jobs.get(&id)?;
        if let Some(wait) = values.iter().find(|(k, _)| k == "WAIT").and_then(|(_, v)| v.trim().parse::<i64>().ok()) {
            let expected = values.iter().find(|(k, _)| k == "PHASE").and_then(|(_, v)| Phase::parse(v));
            let blocks = job.phase.is_active() && expected.is_none_or(|p| p == job.phase);
            if blocks {
                let secs = if wait < 0 { 60 } else { wait.min(600) as u64 };
                job = state.jobs.wait(&id, job.phase, Duration::from_secs(secs)).await?;
            }
        }
        Ok::<_, VoError>(xml(job.to_xml(&job_url(&headers, &uri, &id).replace("/async/async", "/async"))))
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Answer to a job modification: 303 to the job (UWS), or 200 with the job for TapPlus.
fn after_change(state: &TapState, headers: &HeaderMap, uri: &OriginalUri, id: &str, suffix: &str) -> Result<Response, VoError> {
    let jobs = format!("{}/async", base_url(headers, uri, "/async"));
    if is_tapplus(headers) {
        let job = state.jobs.get(id)?;
        return Ok(xml(job.to_xml(&format!("{jobs}/{id}"))));
    }
    let _ = suffix;
    Ok(see_other(format!("{jobs}/{id}")))
}

async fn apply_phase(state: &TapState, id: &str, phase: &str, headers: &HeaderMap) -> Result<(), VoError> {
    match phase.trim().to_ascii_uppercase().as_str() {
        "RUN" => start_job(state, id, is_tapplus(headers)).map(|_| ()),
        "ABORT" => state.jobs.abort(id).map(|_| ()),
        other => Err(VoError::BadParameter { name: "PHASE".into(), message: format!("{other:?}: use RUN or ABORT") }),
    }
}

async fn post_to_job(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        if params.get("ACTION").is_some_and(|a| a.eq_ignore_ascii_case("DELETE")) {
            state.jobs.delete(&id)?;
            return Ok(see_other(jobs_url(&headers, &uri)));
        }
        state.jobs.get(&id)?;
        let others: Vec<(String, String)> =
            params.values.iter().filter(|(k, _)| !matches!(k.as_str(), "PHASE" | "ACTION")).cloned().collect();
        if !others.is_empty() {
            state.jobs.set_parameters(&id, others)?;
            let job = state.jobs.get(&id)?;
            save_job_files(&state, &job, &params.files)?;
        }
        if let Some(phase) = params.get("PHASE") {
            apply_phase(&state, &id, phase, &headers).await?;
        }
        after_change(&state, &headers, &uri, &id, "")
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn delete_job(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri) -> Response {
    match state.jobs.delete(&id) {
        Ok(()) => see_other(format!("{}/async", base_url(&headers, &uri, "/async"))),
        Err(e) => e.into_response(),
    }
}

async fn job_phase(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => text(job.phase.as_str().to_string()),
        Err(e) => e.into_response(),
    }
}

async fn post_phase(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        state.jobs.get(&id)?;
        let phase = params.get("PHASE").ok_or_else(|| VoError::BadParameter { name: "PHASE".into(), message: "missing".into() })?;
        apply_phase(&state, &id, phase, &headers).await?;
        after_change(&state, &headers, &uri, &id, "/phase")
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_execution_duration(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => text(job.execution_duration_secs.to_string()),
        Err(e) => e.into_response(),
    }
}

async fn post_execution_duration(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        let value = params.get("EXECUTIONDURATION").unwrap_or_default();
        let secs = value.trim().parse::<u64>().map_err(|_| VoError::BadParameter {
            name: "EXECUTIONDURATION".into(),
            message: format!("{value:?} is not a number of seconds"),
        })?;
        state.jobs.set_execution_duration(&id, secs)?;
        after_change(&state, &headers, &uri, &id, "/executionduration")
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_destruction(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => text(iso8601(job.destruction_secs)),
        Err(e) => e.into_response(),
    }
}

async fn post_destruction(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        let value = params.get("DESTRUCTION").unwrap_or_default();
        let secs = parse_iso8601(value).ok_or_else(|| VoError::BadParameter {
            name: "DESTRUCTION".into(),
            message: format!("{value:?} is not an ISO 8601 time"),
        })?;
        state.jobs.set_destruction(&id, secs)?;
        after_change(&state, &headers, &uri, &id, "/destruction")
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_error(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(Job { error: Some(message), .. }) => {
            ([(header::CONTENT_TYPE, "application/x-votable+xml")], votable_error_document(&message)).into_response()
        }
        Ok(job) => (StatusCode::NOT_FOUND, text(format!("job {id} has no error (phase {})", job.phase.as_str()))).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn job_quote(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(_) => text(String::new()),
        Err(e) => e.into_response(),
    }
}

async fn job_owner(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(_) => text(String::new()),
        Err(e) => e.into_response(),
    }
}

async fn job_parameters(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => {
            let mut out = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:parameters xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\">\n",
            );
            for (name, value) in &job.parameters {
                out.push_str(&format!(
                    "<uws:parameter id=\"{}\">{}</uws:parameter>\n",
                    crate::error::xml_escape(&name.to_ascii_lowercase()),
                    crate::error::xml_escape(value)
                ));
            }
            out.push_str("</uws:parameters>\n");
            xml(out)
        }
        Err(e) => e.into_response(),
    }
}

async fn post_parameters(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri, request: Request) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        state.jobs.set_parameters(&id, params.values.clone())?;
        let job = state.jobs.get(&id)?;
        save_job_files(&state, &job, &params.files)?;
        if let Some(phase) = params.get("PHASE") {
            apply_phase(&state, &id, phase, &headers).await?;
        }
        after_change(&state, &headers, &uri, &id, "/parameters")
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_results(State(state): State<TapState>, Path(id): Path<String>, headers: HeaderMap, uri: OriginalUri) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => {
            let url = format!("{}/async/{id}", base_url(&headers, &uri, "/async"));
            let mut out = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:results xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
                 xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n",
            );
            if job.result.is_some() {
                out.push_str(&format!("<uws:result id=\"result\" xlink:type=\"simple\" xlink:href=\"{url}/results/result\"/>\n"));
            }
            out.push_str("</uws:results>\n");
            xml(out)
        }
        Err(e) => e.into_response(),
    }
}

async fn job_result(State(state): State<TapState>, Path(id): Path<String>) -> Response {
    let outcome = async {
        let (path, result) = state.jobs.result_path(&id)?;
        let file = tokio::fs::File::open(&path).await.map_err(|source| VoError::Io { path: path.clone(), source })?;
        let stream = tokio_util_stream(file);
        let mut response = Response::new(Body::from_stream(stream));
        if let Ok(value) = HeaderValue::from_str(&result.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(result.size_bytes));
        if result.gzip {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok::<_, VoError>(response)
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Reads a file as a stream of 256 KiB chunks.
fn tokio_util_stream(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
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
