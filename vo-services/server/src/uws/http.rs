//! The UWS 1.1 HTTP resources (UWS 1.1 §2.2): the job list, jobs and their sub-resources, over a
//! [`JobStore`], for any service with async jobs (TAP's queries, SODA's cutouts). Nest [`routes`]
//! at `<service>/async`; the service supplies a [`JobRunner`] that starts a job. Handlers only
//! convert, and a failure is answered by the fault map (TAP's VOTable for the job resources, the
//! store's protocol for a failed job's `/error`). astroquery's TapPlus gets HTTP 200 where UWS says
//! 303 (see [`crate::tap`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OriginalUri, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use colo_tap::output::votable::xml_escape;

use super::{Job, JobStore, Phase, iso8601, parse_iso8601};
use crate::error::VoError;
use crate::fault;
use crate::http::{Root, file_stream, is_tapplus, see_other, text, xml};
use crate::params::Params;
use crate::vosi::ServiceLimits;

/// Who is calling, as the platform identified them (a request extension set by
/// [`crate::identify_callers`]); `None` inside: anonymous. Without the extension (no platform),
/// every caller is anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<String>);

/// Jobs are their owner's: a request for another caller's job (its document, phase, results,
/// anything under `/{id}`) is answered as if there were no such job — 404, the job's existence not
/// told. Layer it on [`routes`] with the service's state.
pub async fn guard(
    State(state): State<UwsService>,
    caller: Option<axum::Extension<Caller>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let owner = caller.and_then(|c| c.0.0);
    let id = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    if !id.is_empty()
        && let Ok(job) = state.jobs.get(&id)
        && job.owner != owner
    {
        return fault::response(state.jobs.protocol(), &VoError::JobNotFound { id });
    }
    next.run(request).await
}

/// What a job needs to know of the client that starts it.
#[derive(Debug, Clone)]
pub struct Starter {
    /// The client is astroquery's TapPlus.
    pub tapplus: bool,
    /// The root URL the client sees the service at (for URLs in the job's results).
    pub root: String,
}

/// What a service does with its jobs.
pub trait JobRunner: Send + Sync {
    /// Starts a PENDING job through [`JobStore::start`]; its parameters are checked when it runs,
    /// so a bad request fails the job, not the HTTP request.
    fn start(&self, jobs: &Arc<JobStore>, id: &str, starter: &Starter) -> Result<Job, VoError>;
}

/// The state of one service's `/async` resources.
#[derive(Clone)]
pub struct UwsService {
    /// The service's jobs.
    pub jobs: Arc<JobStore>,
    /// Request limits (body size).
    pub limits: ServiceLimits,
    /// Starts jobs.
    pub runner: Arc<dyn JobRunner>,
}

/// What a UWS handler answers: the resource, or the error as a fault document.
type Answer = Result<Response, VoError>;

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

/// Saves inline upload parts with the job.
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
        std::fs::write(&path, data).map_err(VoError::io(path))?;
    }
    Ok(())
}

/// The job list's URL as the client sees it (the path up to the first `/async`, which is where
/// [`routes`] is nested).
fn jobs_url(root: &Root, uri: &OriginalUri) -> String {
    format!("{}/async", root.service_url(uri, "/async"))
}

/// What a job resource's handler needs to know of its request: the job, the URLs as the client
/// sees them, the query string, and whether the client is astroquery's TapPlus.
struct JobRef {
    id: String,
    jobs_url: String,
    query: Params,
    starter: Starter,
}

impl JobRef {
    /// The job's URL as the client sees it.
    fn url(&self) -> String {
        format!("{}/{}", self.jobs_url, self.id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobRef {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .cloned()
            .unwrap_or_else(|| OriginalUri(parts.uri.clone()));
        let Ok(root) = Root::from_request_parts(parts, state).await;
        Ok(JobRef {
            id,
            jobs_url: jobs_url(&root, &uri),
            query: Params::from_query(&parts.uri),
            starter: Starter {
                tapplus: is_tapplus(&parts.headers),
                root: root.0,
            },
        })
    }
}

/// The job list (UWS 1.1 §2.2.2.1), filtered by `PHASE` (repeatable), `AFTER` and `LAST`.
async fn list_jobs(
    State(state): State<UwsService>,
    caller: Option<axum::Extension<Caller>>,
    root: Root,
    uri: OriginalUri,
) -> Response {
    let owner = caller.and_then(|c| c.0.0);
    let params = Params::from_query(&uri);
    let phases: Vec<Phase> = params
        .all("PHASE")
        .into_iter()
        .filter_map(Phase::parse)
        .collect();
    let after = params.get("AFTER").and_then(parse_iso8601);
    let last = params
        .get("LAST")
        .and_then(|v| v.trim().parse::<usize>().ok());
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
        .filter(|j| j.owner == owner)
        .collect();
    if let Some(last) = last {
        // `list` is oldest first: keep the newest `last`, still oldest first.
        let skip = jobs.len().saturating_sub(last);
        jobs.drain(..skip);
    }
    let base = jobs_url(&root, &uri);
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
            out.push_str(&format!("<uws:runId>{}</uws:runId>\n", xml_escape(run_id)));
        }
        out.push_str(&format!(
            "<uws:creationTime>{}</uws:creationTime>\n</uws:jobref>\n",
            iso8601(job.creation_secs)
        ));
    }
    out.push_str("</uws:jobs>\n");
    xml(out)
}

/// A new job (with `PHASE=RUN`, started at once); 303 to it.
async fn create_job(
    State(state): State<UwsService>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    root: Root,
    uri: OriginalUri,
    request: Request,
) -> Answer {
    let params = Params::read(request, &state.limits).await?;
    let job = state
        .jobs
        .create_owned(params.values().to_vec(), caller.and_then(|c| c.0.0))?;
    save_job_files(&state, &job, params.files())?;
    let jobs_url = jobs_url(&root, &uri);
    if params.is("PHASE", "RUN") {
        let starter = Starter {
            tapplus: is_tapplus(&headers),
            root: root.0,
        };
        state.runner.start(&state.jobs, &job.id, &starter)?;
    }
    Ok(see_other(format!("{jobs_url}/{}", job.id)))
}

/// The job document; with `WAIT`, blocks while the job is in the given (or any active) phase
/// (UWS 1.1 §2.2.1.1).
async fn job_document(State(state): State<UwsService>, job: JobRef) -> Answer {
    let mut current = state.jobs.get(&job.id)?;
    if let Some(wait) = job
        .query
        .get("WAIT")
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        let expected = job.query.get("PHASE").and_then(Phase::parse);
        let blocks = current.phase.is_active() && expected.is_none_or(|p| p == current.phase);
        if blocks {
            let secs = if wait < 0 { 60 } else { wait.min(600) as u64 };
            current = state
                .jobs
                .wait(&job.id, current.phase, Duration::from_secs(secs))
                .await?;
        }
    }
    Ok(xml(current.to_xml(&job.url())))
}

/// Answer to a job modification: 303 to the job (UWS), or 200 with the job for TapPlus.
fn after_change(state: &UwsService, job: &JobRef) -> Answer {
    if job.starter.tapplus {
        return Ok(xml(state.jobs.get(&job.id)?.to_xml(&job.url())));
    }
    Ok(see_other(job.url()))
}

fn apply_phase(state: &UwsService, job: &JobRef, phase: &str) -> Result<(), VoError> {
    match phase.trim().to_ascii_uppercase().as_str() {
        "RUN" => state
            .runner
            .start(&state.jobs, &job.id, &job.starter)
            .map(|_| ()),
        "ABORT" => state.jobs.abort(&job.id).map(|_| ()),
        other => Err(VoError::bad_parameter(
            "PHASE",
            format!("{other:?}: use RUN or ABORT"),
        )),
    }
}

/// A POST to the job: `ACTION=DELETE`, or parameters and `PHASE` (UWS 1.1 §2.2.3).
async fn post_to_job(State(state): State<UwsService>, job: JobRef, request: Request) -> Answer {
    let params = Params::read(request, &state.limits).await?;
    if params.is("ACTION", "DELETE") {
        state.jobs.delete(&job.id)?;
        return Ok(see_other(job.jobs_url));
    }
    update_job(&state, &job, &params)
}

/// Parameters POSTed to a job (or its `/parameters`): stored while PENDING (PHASE and ACTION are
/// not parameters), uploads saved with the job, then PHASE applied.
fn update_job(state: &UwsService, job: &JobRef, params: &Params) -> Answer {
    state.jobs.get(&job.id)?;
    let values = params.values_without(&["PHASE", "ACTION"]);
    if !values.is_empty() {
        let updated = state.jobs.set_parameters(&job.id, values)?;
        save_job_files(state, &updated, params.files())?;
    }
    if let Some(phase) = params.get("PHASE") {
        apply_phase(state, job, phase)?;
    }
    after_change(state, job)
}

async fn delete_job(State(state): State<UwsService>, job: JobRef) -> Answer {
    state.jobs.delete(&job.id)?;
    Ok(see_other(job.jobs_url))
}

async fn post_phase(State(state): State<UwsService>, job: JobRef, request: Request) -> Answer {
    let params = Params::read(request, &state.limits).await?;
    state.jobs.get(&job.id)?;
    let phase = params
        .get("PHASE")
        .ok_or_else(|| VoError::bad_parameter("PHASE", "missing"))?;
    apply_phase(&state, &job, phase)?;
    after_change(&state, &job)
}

/// A failed job's error, as its service spells faults; 404 for a job that has none.
async fn job_error(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    let job = state.jobs.get(&id)?;
    Ok(match &job.error {
        Some(message) => fault::job_error(state.jobs.protocol(), message),
        None => (
            StatusCode::NOT_FOUND,
            text(format!(
                "job {id} has no error (phase {})",
                job.phase.as_str()
            )),
        )
            .into_response(),
    })
}

async fn job_parameters(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    Ok(xml(state.jobs.get(&id)?.parameters_xml(true)))
}

async fn post_parameters(State(state): State<UwsService>, job: JobRef, request: Request) -> Answer {
    let params = Params::read(request, &state.limits).await?;
    update_job(&state, &job, &params)
}

async fn job_results(State(state): State<UwsService>, job: JobRef) -> Answer {
    Ok(xml(state.jobs.get(&job.id)?.results_xml(&job.url(), true)))
}

/// One result file, streamed (gzip-stored results are served with `Content-Encoding: gzip`). Of a
/// failed job, its error (see [`fault::failed_job_result`]).
async fn job_result(
    State(state): State<UwsService>,
    Path((id, result_id)): Path<(String, String)>,
) -> Answer {
    let job = state.jobs.get(&id)?;
    if let (Phase::Error, Some(message)) = (job.phase, &job.error) {
        let status = job.error_status.unwrap_or(500);
        return Ok(fault::failed_job_result(
            state.jobs.protocol(),
            status,
            message,
        ));
    }
    let (path, result) = state.jobs.result_path(&id, &result_id)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(VoError::io(&path))?;
    let mut response = Response::new(Body::from_stream(file_stream(file)));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&result.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(result.size_bytes));
    if result.gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// A job's value as plain text (UWS 1.1 §2.2.3: phase, executionduration, destruction, quote, owner).
fn job_text(state: &UwsService, id: &str, value: impl FnOnce(&Job) -> String) -> Answer {
    Ok(text(value(&state.jobs.get(id)?)))
}

async fn job_phase(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    job_text(&state, &id, |job| job.phase.as_str().to_string())
}

async fn job_execution_duration(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    job_text(&state, &id, |job| job.execution_duration_secs.to_string())
}

async fn job_destruction(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    job_text(&state, &id, |job| iso8601(job.destruction_secs))
}

async fn job_quote(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    job_text(&state, &id, |_| String::new())
}

async fn job_owner(State(state): State<UwsService>, Path(id): Path<String>) -> Answer {
    job_text(&state, &id, |j| j.owner.clone().unwrap_or_default())
}

/// A POST of one job setting (`EXECUTIONDURATION`, `DESTRUCTION`): its value, read from the body.
async fn setting(state: &UwsService, request: Request, name: &str) -> Result<String, VoError> {
    let params = Params::read(request, &state.limits).await?;
    Ok(params.get(name).unwrap_or_default().to_string())
}

async fn post_execution_duration(
    State(state): State<UwsService>,
    job: JobRef,
    request: Request,
) -> Answer {
    let value = setting(&state, request, "EXECUTIONDURATION").await?;
    let secs = value.trim().parse::<u64>().map_err(|_| {
        VoError::bad_parameter(
            "EXECUTIONDURATION",
            format!("{value:?} is not a number of seconds"),
        )
    })?;
    state.jobs.set_execution_duration(&job.id, secs)?;
    after_change(&state, &job)
}

async fn post_destruction(
    State(state): State<UwsService>,
    job: JobRef,
    request: Request,
) -> Answer {
    let value = setting(&state, request, "DESTRUCTION").await?;
    let secs = parse_iso8601(&value).ok_or_else(|| {
        VoError::bad_parameter("DESTRUCTION", format!("{value:?} is not an ISO 8601 time"))
    })?;
    state.jobs.set_destruction(&job.id, secs)?;
    after_change(&state, &job)
}
