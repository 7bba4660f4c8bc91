//! UWS 1.1 job store for TAP's and SODA's `/async` (UWS 1.1 §2; DALI 1.1 §3 for the parameters);
//! the HTTP resources over it are in [`http`], shared by both services.
//!
//! Each job lives in `<jobs>/<id>/`: `job.toml` (phase, parameters, times, error) and, once complete,
//! its results (`result.<ext>` for TAP, one file per cutout for SODA). A running job writes each
//! result to `<name>.part` through a [`ResultSink`]; all of them are renamed only when the job ended
//! well, so an aborted, failed or timed-out job never leaves a half-written result. The store is
//! reloaded at start: finished jobs and their results survive a restart; jobs that were running
//! when the service stopped are marked ERROR (their result was never published). Phase changes are
//! broadcast on a watch channel per job so `?WAIT=` blocks without polling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::error::{VoError, xml_escape};

pub mod http;
mod time;

pub use time::{iso8601, parse_iso8601};

/// UWS execution phases (UWS 1.1 §2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Phase {
    /// Created, not started.
    Pending,
    /// Accepted for execution.
    Queued,
    /// Running.
    Executing,
    /// Finished with a result.
    Completed,
    /// Failed; see the error.
    Error,
    /// Stopped by the user or the execution time limit.
    Aborted,
    /// Lost track (never set by colo).
    Unknown,
    /// Held (never set by colo).
    Held,
    /// Suspended (never set by colo).
    Suspended,
    /// Archived (never set by colo).
    Archived,
}

impl Phase {
    /// The UWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Queued => "QUEUED",
            Phase::Executing => "EXECUTING",
            Phase::Completed => "COMPLETED",
            Phase::Error => "ERROR",
            Phase::Aborted => "ABORTED",
            Phase::Unknown => "UNKNOWN",
            Phase::Held => "HELD",
            Phase::Suspended => "SUSPENDED",
            Phase::Archived => "ARCHIVED",
        }
    }

    /// Parses a UWS phase name (case-insensitive).
    pub fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Queued,
            Phase::Executing,
            Phase::Completed,
            Phase::Error,
            Phase::Aborted,
            Phase::Unknown,
            Phase::Held,
            Phase::Suspended,
            Phase::Archived,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// True while the job may still change by itself.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Pending | Phase::Queued | Phase::Executing)
    }
}

/// A stored result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// Result identifier (the last segment of its URL under `results/`).
    pub id: String,
    /// File name inside the job folder.
    pub file: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Stored gzip-compressed (served with `Content-Encoding: gzip`).
    #[serde(default)]
    pub gzip: bool,
}

/// One job's state, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Job identifier.
    pub id: String,
    /// Current phase.
    pub phase: Phase,
    /// RUNID, if given.
    pub run_id: Option<String>,
    /// Parameters (upper-case names) in the order received.
    pub parameters: Vec<(String, String)>,
    /// Creation time, seconds since the epoch.
    pub creation_secs: u64,
    /// Creation time in microseconds (orders jobs created within one second).
    #[serde(default)]
    pub creation_micros: u64,
    /// Start time.
    pub start_secs: Option<u64>,
    /// End time.
    pub end_secs: Option<u64>,
    /// Maximum run time in seconds (0 = unlimited).
    pub execution_duration_secs: u64,
    /// When the job and its results are deleted.
    pub destruction_secs: u64,
    /// Error summary, for phase ERROR.
    pub error: Option<String>,
    /// The results, for phase COMPLETED (none when a job legitimately produced nothing, such as a
    /// SODA cutout that misses the data).
    #[serde(default)]
    pub results: Vec<JobResult>,
}

impl Job {
    /// The value of a parameter (names are case-insensitive; the last one wins).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `<uws:parameters>` element (standalone: with its namespace, for `/parameters`).
    pub fn parameters_xml(&self, standalone: bool) -> String {
        let mut out = if standalone {
            String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:parameters xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\">\n",
            )
        } else {
            String::from("<uws:parameters>\n")
        };
        for (name, value) in &self.parameters {
            out.push_str(&format!(
                "<uws:parameter id=\"{}\">{}</uws:parameter>\n",
                xml_escape(&name.to_ascii_lowercase()),
                xml_escape(value)
            ));
        }
        out.push_str("</uws:parameters>\n");
        out
    }

    /// The `<uws:results>` element (standalone: with namespaces, for the `/results` resource).
    pub fn results_xml(&self, job_url: &str, standalone: bool) -> String {
        let mut out = if standalone {
            String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:results xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
                 xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n",
            )
        } else {
            String::from("<uws:results>\n")
        };
        for result in &self.results {
            out.push_str(&format!(
                "<uws:result id=\"{id}\" xlink:type=\"simple\" xlink:href=\"{url}/results/{id}\" size=\"{size}\" mime-type=\"{mime}\"/>\n",
                id = xml_escape(&result.id),
                url = xml_escape(job_url),
                size = result.size_bytes,
                mime = xml_escape(&result.content_type),
            ));
        }
        out.push_str("</uws:results>\n");
        out
    }

    /// The job document (UWS 1.1 schema, `version="1.1"`).
    pub fn to_xml(&self, job_url: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(
            "<uws:job xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.1\">\n",
        );
        out.push_str(&format!(
            "<uws:jobId>{}</uws:jobId>\n",
            xml_escape(&self.id)
        ));
        if let Some(run_id) = &self.run_id {
            out.push_str(&format!("<uws:runId>{}</uws:runId>\n", xml_escape(run_id)));
        }
        out.push_str("<uws:ownerId xsi:nil=\"true\"/>\n");
        out.push_str(&format!("<uws:phase>{}</uws:phase>\n", self.phase.as_str()));
        out.push_str("<uws:quote xsi:nil=\"true\"/>\n");
        out.push_str(&format!(
            "<uws:creationTime>{}</uws:creationTime>\n",
            iso8601(self.creation_secs)
        ));
        let time = |name: &str, secs: Option<u64>| match secs {
            Some(s) => format!("<uws:{name}>{}</uws:{name}>\n", iso8601(s)),
            None => format!("<uws:{name} xsi:nil=\"true\"/>\n"),
        };
        out.push_str(&time("startTime", self.start_secs));
        out.push_str(&time("endTime", self.end_secs));
        out.push_str(&format!(
            "<uws:executionDuration>{}</uws:executionDuration>\n",
            self.execution_duration_secs
        ));
        out.push_str(&format!(
            "<uws:destruction>{}</uws:destruction>\n",
            iso8601(self.destruction_secs)
        ));
        out.push_str(&self.parameters_xml(false));
        out.push_str(&self.results_xml(job_url, false));
        if let Some(error) = &self.error {
            out.push_str(&format!(
                "<uws:errorSummary type=\"fatal\" hasDetail=\"true\">\n<uws:message>{}</uws:message>\n</uws:errorSummary>\n",
                xml_escape(error)
            ));
        }
        out.push_str("</uws:job>\n");
        out
    }
}

/// How long jobs live, and how long they may run.
#[derive(Debug, Clone)]
pub struct JobLimits {
    /// Default time before a job is destroyed.
    pub retention: Duration,
    /// Default and maximum execution duration.
    pub execution_duration: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 24 * 3600),
            execution_duration: Duration::from_secs(3600),
        }
    }
}

/// The bytes a job's query produces.
pub type ResultStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, VoError>> + Send>>;

struct Entry {
    job: Job,
    phase_tx: watch::Sender<Phase>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// All jobs, persisted under one folder.
pub struct JobStore {
    dir: PathBuf,
    limits: JobLimits,
    jobs: Mutex<HashMap<String, Entry>>,
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JobStore {
    /// Opens (or creates) the store and reloads its jobs.
    pub fn open(dir: &Path, limits: JobLimits) -> Result<Arc<JobStore>, VoError> {
        std::fs::create_dir_all(dir).map_err(|source| VoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut jobs = HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|source| VoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let file = entry.path().join("job.toml");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let Ok(mut job) = toml::from_str::<Job>(&text) else {
                tracing::warn!(path = %file.display(), "unreadable job file skipped");
                continue;
            };
            if job.phase.is_active() && job.phase != Phase::Pending {
                job.phase = Phase::Error;
                job.error = Some(
                    "the service restarted while this job was running; please submit it again"
                        .into(),
                );
                job.end_secs = Some(now_secs());
                write_job(dir, &job)?;
            }
            let (phase_tx, _) = watch::channel(job.phase);
            jobs.insert(
                job.id.clone(),
                Entry {
                    job,
                    phase_tx,
                    task: None,
                },
            );
        }
        Ok(Arc::new(JobStore {
            dir: dir.to_path_buf(),
            limits,
            jobs: Mutex::new(jobs),
        }))
    }

    /// The folder of one job (its state, uploads and result).
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The limits jobs get by default.
    pub fn limits(&self) -> &JobLimits {
        &self.limits
    }

    /// Creates a PENDING job.
    pub fn create(&self, parameters: Vec<(String, String)>) -> Result<Job, VoError> {
        let now = now_secs();
        let id = new_job_id();
        let run_id = parameters
            .iter()
            .rev()
            .find(|(k, _)| k == "RUNID")
            .map(|(_, v)| v.chars().take(64).collect());
        let job = Job {
            id: id.clone(),
            phase: Phase::Pending,
            run_id,
            parameters: parameters
                .into_iter()
                .filter(|(k, _)| !is_control_parameter(k))
                .collect(),
            creation_secs: now,
            creation_micros: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            start_secs: None,
            end_secs: None,
            execution_duration_secs: self.limits.execution_duration.as_secs(),
            destruction_secs: now + self.limits.retention.as_secs(),
            error: None,
            results: Vec::new(),
        };
        std::fs::create_dir_all(self.dir.join(&id)).map_err(|source| VoError::Io {
            path: self.dir.join(&id),
            source,
        })?;
        write_job(&self.dir, &job)?;
        let (phase_tx, _) = watch::channel(job.phase);
        self.jobs.lock().insert(
            id,
            Entry {
                job: job.clone(),
                phase_tx,
                task: None,
            },
        );
        Ok(job)
    }

    /// A job's current state.
    pub fn get(&self, id: &str) -> Result<Job, VoError> {
        self.jobs
            .lock()
            .get(id)
            .map(|e| e.job.clone())
            .ok_or_else(|| VoError::JobNotFound { id: id.to_string() })
    }

    /// All jobs, oldest first.
    pub fn list(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.jobs.lock().values().map(|e| e.job.clone()).collect();
        jobs.sort_by(|a, b| {
            (a.creation_secs, a.creation_micros, &a.id).cmp(&(
                b.creation_secs,
                b.creation_micros,
                &b.id,
            ))
        });
        jobs
    }

    /// Changes a job under the lock and persists it.
    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Job) -> Result<(), VoError>,
    ) -> Result<Job, VoError> {
        let mut jobs = self.jobs.lock();
        let entry = jobs
            .get_mut(id)
            .ok_or_else(|| VoError::JobNotFound { id: id.to_string() })?;
        change(&mut entry.job)?;
        write_job(&self.dir, &entry.job)?;
        entry.phase_tx.send_replace(entry.job.phase);
        Ok(entry.job.clone())
    }

    /// Adds or replaces parameters (only while PENDING, UWS 1.1 §2.2.3.1).
    pub fn set_parameters(
        &self,
        id: &str,
        parameters: Vec<(String, String)>,
    ) -> Result<Job, VoError> {
        self.update(id, |job| {
            if job.phase != Phase::Pending {
                return Err(VoError::JobState {
                    message: format!(
                        "job {} is {}: parameters can only change while PENDING",
                        job.id,
                        job.phase.as_str()
                    ),
                });
            }
            // The posted values of a name replace its old ones; repeated names (SODA's ID, POL,
            // CIRCLE) keep every posted value, and UPLOADs accumulate across posts.
            let parameters: Vec<(String, String)> = parameters
                .into_iter()
                .filter(|(name, _)| !is_control_parameter(name))
                .collect();
            job.parameters
                .retain(|(k, _)| k == "UPLOAD" || !parameters.iter().any(|(name, _)| name == k));
            for (name, value) in parameters {
                if name == "RUNID" {
                    job.run_id = Some(value.chars().take(64).collect());
                }
                job.parameters.push((name, value));
            }
            Ok(())
        })
    }

    /// Sets the execution duration (capped at the service limit).
    pub fn set_execution_duration(&self, id: &str, secs: u64) -> Result<Job, VoError> {
        let cap = self.limits.execution_duration.as_secs();
        self.update(id, |job| {
            job.execution_duration_secs = if secs == 0 { cap } else { secs.min(cap) };
            Ok(())
        })
    }

    /// Sets the destruction time (not later than the retention limit).
    pub fn set_destruction(&self, id: &str, secs: u64) -> Result<Job, VoError> {
        let cap = now_secs() + self.limits.retention.as_secs();
        self.update(id, |job| {
            job.destruction_secs = secs.min(cap);
            Ok(())
        })
    }

    /// Starts a PENDING job: `run` writes its results through the [`ResultSink`]; they are renamed
    /// into place when it returns well, and removed when it fails, times out or is aborted. A job in
    /// any other phase is left as it is (UWS: RUN is ignored then).
    pub fn start(
        self: &Arc<Self>,
        id: &str,
        run: impl FnOnce(Job, ResultSink) -> futures::future::BoxFuture<'static, Result<(), VoError>>
        + Send
        + 'static,
    ) -> Result<Job, VoError> {
        let job = self.update(id, |job| {
            if job.phase == Phase::Pending {
                job.phase = Phase::Queued;
            }
            Ok(())
        })?;
        if job.phase != Phase::Queued {
            return Ok(job);
        }
        let store = self.clone();
        let job_for_task = job.clone();
        let task = tokio::spawn(async move {
            let id = job_for_task.id.clone();
            let limit = Duration::from_secs(job_for_task.execution_duration_secs.max(1));
            let _ = store.update(&id, |job| {
                job.phase = Phase::Executing;
                job.start_secs = Some(now_secs());
                Ok(())
            });
            let dir = store.dir.join(&id);
            let sink = ResultSink {
                dir: dir.clone(),
                written: Arc::default(),
            };
            let outcome = tokio::time::timeout(limit, run(job_for_task, sink.clone())).await;
            let outcome = match outcome {
                Ok(result) => result,
                Err(_) => Err(VoError::JobState {
                    message: format!(
                        "the job exceeded its execution duration of {} s",
                        limit.as_secs()
                    ),
                }),
            };
            let written = std::mem::take(&mut *sink.written.lock());
            let outcome = outcome.and_then(|()| publish_results(&dir, &written));
            let _ = store.update(&id, |job| {
                job.end_secs = Some(now_secs());
                match outcome {
                    Ok(()) => {
                        job.phase = Phase::Completed;
                        job.results = written;
                    }
                    Err(e) => {
                        remove_parts(&dir);
                        job.phase = Phase::Error;
                        job.error = Some(e.client_message());
                    }
                }
                Ok(())
            });
        });
        if let Some(entry) = self.jobs.lock().get_mut(id) {
            entry.task = Some(task);
        }
        Ok(job)
    }

    /// Aborts a job that is not finished; its partial result is removed.
    pub fn abort(&self, id: &str) -> Result<Job, VoError> {
        let task = self.jobs.lock().get_mut(id).and_then(|e| e.task.take());
        if let Some(task) = task {
            task.abort();
        }
        let part_dir = self.dir.join(id);
        let job = self.update(id, |job| {
            if job.phase.is_active() {
                job.phase = Phase::Aborted;
                job.end_secs = Some(now_secs());
            }
            Ok(())
        })?;
        remove_parts(&part_dir);
        Ok(job)
    }

    /// Deletes a job and its files.
    pub fn delete(&self, id: &str) -> Result<(), VoError> {
        let entry = self
            .jobs
            .lock()
            .remove(id)
            .ok_or_else(|| VoError::JobNotFound { id: id.to_string() })?;
        if let Some(task) = entry.task {
            task.abort();
        }
        let dir = self.dir.join(id);
        std::fs::remove_dir_all(&dir).map_err(|source| VoError::Io { path: dir, source })
    }

    /// Deletes jobs past their destruction time.
    pub fn sweep(&self) {
        let now = now_secs();
        let expired: Vec<String> = self
            .jobs
            .lock()
            .values()
            .filter(|e| e.job.destruction_secs <= now)
            .map(|e| e.job.id.clone())
            .collect();
        for id in expired {
            let _ = self.delete(&id);
        }
    }

    /// Waits up to `timeout` for the phase to change from `from` (UWS 1.1 §2.2.1.1).
    pub async fn wait(&self, id: &str, from: Phase, timeout: Duration) -> Result<Job, VoError> {
        let mut rx = {
            let jobs = self.jobs.lock();
            let entry = jobs
                .get(id)
                .ok_or_else(|| VoError::JobNotFound { id: id.to_string() })?;
            entry.phase_tx.subscribe()
        };
        let _ = tokio::time::timeout(timeout, async {
            loop {
                if *rx.borrow_and_update() != from {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.get(id)
    }

    /// A result file of a completed job.
    pub fn result_path(&self, id: &str, result_id: &str) -> Result<(PathBuf, JobResult), VoError> {
        let job = self.get(id)?;
        match job.results.into_iter().find(|r| r.id == result_id) {
            Some(result) => Ok((self.dir.join(id).join(&result.file), result)),
            None => Err(VoError::JobState {
                message: format!(
                    "job {id} has no result {result_id:?} (phase {})",
                    job.phase.as_str()
                ),
            }),
        }
    }
}

/// PHASE and ACTION steer the job; they are not query parameters.
fn is_control_parameter(name: &str) -> bool {
    matches!(name, "PHASE" | "ACTION" | "WAIT")
}

fn write_job(dir: &Path, job: &Job) -> Result<(), VoError> {
    let path = dir.join(&job.id).join("job.toml");
    let tmp = path.with_extension("toml.tmp");
    let text = toml::to_string(job).map_err(|e| VoError::JobState {
        message: format!("cannot store job {}: {e}", job.id),
    })?;
    std::fs::write(&tmp, text).map_err(|source| VoError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| VoError::Io { path, source })
}

/// Where a running job writes its results (see [`JobStore::start`]).
#[derive(Clone)]
pub struct ResultSink {
    dir: PathBuf,
    written: Arc<Mutex<Vec<JobResult>>>,
}

impl ResultSink {
    /// Writes one result, `<id>.<extension>`, from a stream of bytes.
    pub async fn write(
        &self,
        id: &str,
        extension: &str,
        content_type: String,
        gzip: bool,
        mut stream: ResultStream,
    ) -> Result<(), VoError> {
        let file = format!("{id}.{extension}");
        let part = self.dir.join(format!("{file}.part"));
        let io = |source| VoError::Io {
            path: part.clone(),
            source,
        };
        let mut out = tokio::fs::File::create(&part).await.map_err(io)?;
        let mut size_bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size_bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        out.sync_all().await.map_err(io)?;
        self.written.lock().push(JobResult {
            id: id.to_string(),
            file,
            content_type,
            size_bytes,
            gzip,
        });
        Ok(())
    }
}

/// Renames every written `.part` into place.
fn publish_results(dir: &Path, written: &[JobResult]) -> Result<(), VoError> {
    for result in written {
        let path = dir.join(&result.file);
        let part = dir.join(format!("{}.part", result.file));
        std::fs::rename(&part, &path).map_err(|source| VoError::Io { path, source })?;
    }
    Ok(())
}

/// Removes half-written results.
fn remove_parts(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
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

fn new_job_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{:?}{}{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_survive_a_reopen_and_running_ones_become_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = JobStore::open(dir.path(), JobLimits::default()).expect("open");
        let done = store
            .create(vec![("QUERY".into(), "SELECT 1".into())])
            .expect("create");
        store
            .start(&done.id, |_, sink| {
                Box::pin(async move {
                    let bytes = bytes::Bytes::from_static(b"a\r\n1\r\n");
                    let stream = Box::pin(futures::stream::iter([Ok(bytes)])) as ResultStream;
                    sink.write("result", "csv", "text/csv".into(), false, stream)
                        .await
                })
            })
            .expect("start");
        let done = store
            .wait(&done.id, Phase::Queued, Duration::from_secs(5))
            .await
            .expect("wait");
        let done = if done.phase == Phase::Executing {
            store
                .wait(&done.id, Phase::Executing, Duration::from_secs(5))
                .await
                .expect("wait")
        } else {
            done
        };
        assert_eq!(done.phase, Phase::Completed);
        let running = store.create(vec![]).expect("create");
        store
            .update(&running.id, |job| {
                job.phase = Phase::Executing;
                Ok(())
            })
            .expect("update");
        drop(store);
        let store = JobStore::open(dir.path(), JobLimits::default()).expect("reopen");
        assert_eq!(store.get(&done.id).expect("kept").phase, Phase::Completed);
        let (path, _) = store.result_path(&done.id, "result").expect("result kept");
        assert_eq!(std::fs::read(path).expect("read"), b"a\r\n1\r\n");
        assert_eq!(store.get(&running.id).expect("kept").phase, Phase::Error);
    }
}
