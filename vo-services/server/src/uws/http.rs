//! The UWS 1.1 HTTP resources (UWS 1.1 §2.2): the job list, jobs and their sub-resources, over a
//! [`JobStore`], for any service with async jobs (TAP's queries, SODA's cutouts). Nest
//! [`routes`] at `<service>/async`; the service supplies a [`JobRunner`] that starts a job and
//! renders a failed job's error. Handlers only convert; astroquery's TapPlus gets HTTP 200 where
//! UWS says 303 (see [`crate::tap`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Job, JobStore, Phase, iso8601, parse_iso8601};
use crate::error::VoError;
use crate::request::{base_url, is_tapplus, parse_pairs, read_params, see_other, text, xml};
use crate::vosi::ServiceLimits;

/// What a service does with its jobs.
pub trait JobRunner: Send + Sync {
    /// Starts a PENDING job through [`JobStore::start`]; its parameters are checked when it runs,
    /// so a bad request fails the job, not the HTTP request. `tapplus`: the client is astroquery.
    fn start(&self, jobs: &Arc<JobStore>, id: &str, tapplus: bool) -> Result<Job, VoError>;
    /// The `/error` resource of a failed job.
    fn error_response(&self, message: &str) -> Response;
}

/// The state of one service's `/async` resources.
#[derive(Clone)]
pub struct UwsService {
    /// The service's jobs.
    pub jobs: Arc<JobStore>,
    /// Request limits (body size).
    pub limits: ServiceLimits,
    /// Starts jobs and renders their errors.
    pub runner: Arc<dyn JobRunner>,
}

/// The UWS routes, relative to the job list (nest them at `<service>/async`).
pub fn routes() -> Router<UwsService> {
    Router::new()
        .route("/", get(list_jobs).post(create_job))
        .route(
            "/{id}",
            get(job_document).post(post_to_job).delete(delete_job),
        )
        .route("/{id}/phase", get(job_phase).post(post_phase))
        .route(
            "/{id}/executionduration",
            get(job_execution_duration).post(post_execution_duration),
        )
        .route(
            "/{id}/destruction",
            get(job_destruction).post(post_destruction),
        )
        .route("/{id}/error", get(job_error))
        .route("/{id}/quote", get(job_quote))
        .route("/{id}/owner", get(job_owner))
        .route(
            "/{id}/parameters",
            get(job_parameters).post(post_parameters),
        )
        .route("/{id}/results", get(job_results))
        .route("/{id}/results/{result}", get(job_result))
}

/// Inline upload parts saved with a job, by part name (queries run later, possibly after a restart).
pub fn load_job_files(jobs: &JobStore, job: &Job) -> HashMap<String, Bytes> {
    let mut files = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(jobs.job_dir(&job.id)) {
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

/// The job list's URL as the client sees it (the path up to the first `/async`, which is where
/// [`routes`] is nested).
fn jobs_url(headers: &HeaderMap, uri: &OriginalUri) -> String {
    format!("{}/async", base_url(headers, uri, "/async"))
}

async fn list_jobs(
    State(state): State<UwsService>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    let mut values = Vec::new();
    if let Some(query) = uri.query() {
        parse_pairs(query.as_bytes(), &mut values);
    }
    let phases: Vec<Phase> = values
        .iter()
        .filter(|(k, _)| k == "PHASE")
        .filter_map(|(_, v)| Phase::parse(v))
        .collect();
    let after = values
        .iter()
        .find(|(k, _)| k == "AFTER")
        .and_then(|(_, v)| parse_iso8601(v));
    let last = values
        .iter()
        .find(|(k, _)| k == "LAST")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut jobs: Vec<Job> = state
        .jobs
        .list()
        .into_iter()
        .filter(|j| {
            if phases.is_empty() {
                j.phase != Phase::Archived
            } else {
                phases.contains(&j.phase)
            }
        })
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
            out.push_str(&format!(
                "<uws:runId>{}</uws:runId>\n",
                crate::error::xml_escape(run_id)
            ));
        }
        out.push_str(&format!(
            "<uws:creationTime>{}</uws:creationTime>\n</uws:jobref>\n",
            iso8601(job.creation_secs)
        ));
    }
    out.push_str("</uws:jobs>\n");
    xml(out)
}

/// Saves inline upload parts with the job (queries run later, possibly after a restart).
fn save_job_files(
    state: &UwsService,
    job: &Job,
    files: &HashMap<String, Bytes>,
) -> Result<(), VoError> {
    for (name, data) in files {
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let path = state.jobs.job_dir(&job.id).join(format!("part-{safe}"));
        std::fs::write(&path, data).map_err(|source| VoError::Io { path, source })?;
    }
    Ok(())
}

async fn create_job(
    State(state): State<UwsService>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        let run_now = params
            .get("PHASE")
            .is_some_and(|p| p.eq_ignore_ascii_case("RUN"));
        let job = state.jobs.create(params.values.clone())?;
        save_job_files(&state, &job, &params.files)?;
        if run_now {
            state
                .runner
                .start(&state.jobs, &job.id, is_tapplus(&headers))?;
        }
        Ok::<_, VoError>(see_other(format!(
            "{}/{}",
            jobs_url(&headers, &uri),
            job.id
        )))
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn job_url(headers: &HeaderMap, uri: &OriginalUri, id: &str) -> String {
    format!("{}/{}", jobs_url(headers, uri), id)
}

async fn job_document(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    let outcome = async {
        let mut values = Vec::new();
        if let Some(query) = uri.query() {
            parse_pairs(query.as_bytes(), &mut values);
        }
        let mut job = state.jobs.get(&id)?;
        if let Some(wait) = values
            .iter()
            .find(|(k, _)| k == "WAIT")
            .and_then(|(_, v)| v.trim().parse::<i64>().ok())
        {
            let expected = values
                .iter()
                .find(|(k, _)| k == "PHASE")
                .and_then(|(_, v)| Phase::parse(v));
            let blocks = job.phase.is_active() && expected.is_none_or(|p| p == job.phase);
            if blocks {
                let secs = if wait < 0 { 60 } else { wait.min(600) as u64 };
                job = state
                    .jobs
                    .wait(&id, job.phase, Duration::from_secs(secs))
                    .await?;
            }
        }
        Ok::<_, VoError>(xml(job.to_xml(&job_url(&headers, &uri, &id))))
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Answer to a job modification: 303 to the job (UWS), or 200 with the job for TapPlus.
fn after_change(
    state: &UwsService,
    headers: &HeaderMap,
    uri: &OriginalUri,
    id: &str,
) -> Result<Response, VoError> {
    let url = job_url(headers, uri, id);
    if is_tapplus(headers) {
        return Ok(xml(state.jobs.get(id)?.to_xml(&url)));
    }
    Ok(see_other(url))
}

async fn apply_phase(
    state: &UwsService,
    id: &str,
    phase: &str,
    headers: &HeaderMap,
) -> Result<(), VoError> {
    match phase.trim().to_ascii_uppercase().as_str() {
        "RUN" => state
            .runner
            .start(&state.jobs, id, is_tapplus(headers))
            .map(|_| ()),
        "ABORT" => state.jobs.abort(id).map(|_| ()),
        other => Err(VoError::BadParameter {
            name: "PHASE".into(),
            message: format!("{other:?}: use RUN or ABORT"),
        }),
    }
}

async fn post_to_job(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        if params
            .get("ACTION")
            .is_some_and(|a| a.eq_ignore_ascii_case("DELETE"))
        {
            state.jobs.delete(&id)?;
            return Ok(see_other(jobs_url(&headers, &uri)));
        }
        update_job(&state, &id, &params, &headers, &uri).await
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Parameters POSTed to a job (or its `/parameters`): stored while PENDING (PHASE and ACTION are
/// not parameters), uploads saved with the job, then PHASE applied.
async fn update_job(
    state: &UwsService,
    id: &str,
    params: &crate::request::Params,
    headers: &HeaderMap,
    uri: &OriginalUri,
) -> Result<Response, VoError> {
    state.jobs.get(id)?;
    let values: Vec<(String, String)> = params
        .values
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PHASE" | "ACTION"))
        .cloned()
        .collect();
    if !values.is_empty() {
        state.jobs.set_parameters(id, values)?;
        let job = state.jobs.get(id)?;
        save_job_files(state, &job, &params.files)?;
    }
    if let Some(phase) = params.get("PHASE") {
        apply_phase(state, id, phase, headers).await?;
    }
    after_change(state, headers, uri, id)
}

async fn delete_job(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    match state.jobs.delete(&id) {
        Ok(()) => see_other(jobs_url(&headers, &uri)),
        Err(e) => e.into_response(),
    }
}

async fn post_phase(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        state.jobs.get(&id)?;
        let phase = params.get("PHASE").ok_or_else(|| VoError::BadParameter {
            name: "PHASE".into(),
            message: "missing".into(),
        })?;
        apply_phase(&state, &id, phase, &headers).await?;
        after_change(&state, &headers, &uri, &id)
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_error(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(Job {
            error: Some(message),
            ..
        }) => state.runner.error_response(&message),
        Ok(job) => (
            StatusCode::NOT_FOUND,
            text(format!(
                "job {id} has no error (phase {})",
                job.phase.as_str()
            )),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn job_parameters(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => xml(job.parameters_xml(true)),
        Err(e) => e.into_response(),
    }
}

async fn post_parameters(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        update_job(&state, &id, &params, &headers, &uri).await
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn job_results(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Response {
    match state.jobs.get(&id) {
        Ok(job) => xml(job.results_xml(&job_url(&headers, &uri, &id), true)),
        Err(e) => e.into_response(),
    }
}

async fn job_result(
    State(state): State<UwsService>,
    Path((id, result_id)): Path<(String, String)>,
) -> Response {
    let outcome = async {
        let (path, result) = state.jobs.result_path(&id, &result_id)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| VoError::Io {
                path: path.clone(),
                source,
            })?;
        let mut response = Response::new(Body::from_stream(file_stream(file)));
        if let Ok(value) = HeaderValue::from_str(&result.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(result.size_bytes));
        if result.gzip {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok::<_, VoError>(response)
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Reads a file as a stream of 256 KiB chunks.
pub fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
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

/// A job's value as plain text (UWS 1.1 §2.2.3: phase, executionduration, destruction, quote, owner).
async fn job_text(state: &UwsService, id: &str, value: impl FnOnce(&Job) -> String) -> Response {
    match state.jobs.get(id) {
        Ok(job) => text(value(&job)),
        Err(e) => e.into_response(),
    }
}

async fn job_phase(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    job_text(&state, &id, |job| job.phase.as_str().to_string()).await
}

async fn job_execution_duration(
    State(state): State<UwsService>,
    Path(id): Path<String>,
) -> Response {
    job_text(&state, &id, |job| job.execution_duration_secs.to_string()).await
}

async fn job_destruction(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    job_text(&state, &id, |job| iso8601(job.destruction_secs)).await
}

async fn job_quote(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    job_text(&state, &id, |_| String::new()).await
}

async fn job_owner(State(state): State<UwsService>, Path(id): Path<String>) -> Response {
    job_text(&state, &id, |_| String::new()).await
}

/// A POST of one job setting (`EXECUTIONDURATION`, `DESTRUCTION`): read the value, apply it, answer
/// like every job change.
async fn set_job_value(
    state: UwsService,
    id: String,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
    name: &'static str,
    apply: impl FnOnce(&UwsService, &str, &str) -> Result<Job, VoError>,
) -> Response {
    let outcome = async {
        let params = read_params(request, &state.limits).await?;
        apply(&state, &id, params.get(name).unwrap_or_default())?;
        after_change(&state, &headers, &uri, &id)
    }
    .await;
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn post_execution_duration(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    set_job_value(
        state,
        id,
        headers,
        uri,
        request,
        "EXECUTIONDURATION",
        |state, id, value| {
            let secs = value
                .trim()
                .parse::<u64>()
                .map_err(|_| VoError::BadParameter {
                    name: "EXECUTIONDURATION".into(),
                    message: format!("{value:?} is not a number of seconds"),
                })?;
            state.jobs.set_execution_duration(id, secs)
        },
    )
    .await
}

async fn post_destruction(
    State(state): State<UwsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    request: Request,
) -> Response {
    set_job_value(
        state,
        id,
        headers,
        uri,
        request,
        "DESTRUCTION",
        |state, id, value| {
            let secs = parse_iso8601(value).ok_or_else(|| VoError::BadParameter {
                name: "DESTRUCTION".into(),
                message: format!("{value:?} is not an ISO 8601 time"),
            })?;
            state.jobs.set_destruction(id, secs)
        },
    )
    .await
}
