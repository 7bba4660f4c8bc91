//! The UWS job store: every job of one service persisted under one folder, started as tasks, and
//! finished atomically (see [`super`] for the layout and guarantees).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::job::{Job, JobResult, Phase};
use crate::error::VoError;
use crate::fault::{self, Protocol};

/// How long jobs live, how long they may run, and how many run at once.
#[derive(Debug, Clone)]
pub struct JobLimits {
    /// Default time before a job is destroyed.
    pub retention: Duration,
    /// Default and maximum execution duration.
    pub execution_duration: Duration,
    /// Jobs executing at once, over all callers; more wait in QUEUED.
    pub max_running: usize,
    /// Jobs of one caller (anonymous callers together count as one) executing at once, so that
    /// one caller's flood of jobs queues behind itself and leaves room for everyone else.
    pub max_running_per_caller: usize,
    /// Jobs of one caller not finished yet (PENDING, QUEUED, EXECUTING): a creation beyond it is
    /// refused (429), so a loop that creates jobs cannot fill the job store's disk or memory.
    pub max_unfinished_per_caller: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 24 * 3600),
            execution_duration: Duration::from_secs(3600),
            max_running: 4,
            max_running_per_caller: 2,
            max_unfinished_per_caller: 100,
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
    /// Whose jobs these are: a failed job's error is spelled as this protocol spells faults.
    protocol: Protocol,
    jobs: Mutex<HashMap<String, Entry>>,
    /// Slots for executing jobs, over all callers ([`JobLimits::max_running`]).
    running: Arc<Semaphore>,
    /// Each caller's slots ([`JobLimits::max_running_per_caller`]), by owner ("" anonymous).
    running_by_caller: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JobStore {
    /// Opens (or creates) the store and reloads its jobs.
    pub fn open(
        dir: &Path,
        limits: JobLimits,
        protocol: Protocol,
    ) -> Result<Arc<JobStore>, VoError> {
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
                job.error_status = Some(503);
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
            running: Arc::new(Semaphore::new(limits.max_running.max(1))),
            running_by_caller: Mutex::default(),
            limits,
            protocol,
            jobs: Mutex::new(jobs),
        }))
    }

    /// The folder of one job (its state, uploads and result).
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Whose jobs these are.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The limits jobs get by default.
    pub fn limits(&self) -> &JobLimits {
        &self.limits
    }

    /// Waits (in QUEUED) for a slot of `owner`'s and then one of all callers'; both are held
    /// until the returned permits drop.
    async fn run_slot(&self, owner: Option<&str>) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let mine = self
            .running_by_caller
            .lock()
            .entry(owner.unwrap_or_default().to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_running_per_caller.max(1))))
            .clone();
        let mine = mine
            .acquire_owned()
            .await
            .expect("a job slot semaphore is never closed");
        let any = self
            .running
            .clone()
            .acquire_owned()
            .await
            .expect("a job slot semaphore is never closed");
        (mine, any)
    }

    /// Creates a PENDING job.
    pub fn create(&self, parameters: Vec<(String, String)>) -> Result<Job, VoError> {
        self.create_owned(parameters, None)
    }

    /// A new PENDING job of `owner` (`None`: anonymous).
    pub fn create_owned(
        &self,
        parameters: Vec<(String, String)>,
        owner: Option<String>,
    ) -> Result<Job, VoError> {
        let limit = self.limits.max_unfinished_per_caller.max(1);
        let unfinished = self
            .jobs
            .lock()
            .values()
            .filter(|e| e.job.owner == owner && e.job.phase.is_active())
            .count();
        if unfinished >= limit {
            return Err(VoError::TooManyJobs { limit });
        }
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
            error_status: None,
            results: Vec::new(),
            owner,
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
                return Err(VoError::JobPhase {
                    id: job.id.clone(),
                    phase: job.phase.as_str(),
                    refused: "parameters can only change while PENDING".into(),
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
            // QUEUED until a slot is free; the execution duration counts from EXECUTING.
            let _slots = store.run_slot(job_for_task.owner.as_deref()).await;
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
                Err(_) => Err(VoError::ExecutionDuration {
                    secs: limit.as_secs(),
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
                        job.error = Some(fault::message(store.protocol, &e));
                        job.error_status = Some(fault::status(e.class()).as_u16());
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
            None => Err(VoError::JobPhase {
                id: id.to_string(),
                phase: job.phase.as_str(),
                refused: format!("it has no result {result_id:?}"),
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
    let text = toml::to_string(job).map_err(|e| VoError::Corrupt {
        path: path.clone(),
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
        let store = JobStore::open(dir.path(), JobLimits::default(), Protocol::Tap).expect("open");
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
        let store =
            JobStore::open(dir.path(), JobLimits::default(), Protocol::Tap).expect("reopen");
        assert_eq!(store.get(&done.id).expect("kept").phase, Phase::Completed);
        let (path, _) = store.result_path(&done.id, "result").expect("result kept");
        assert_eq!(std::fs::read(path).expect("read"), b"a\r\n1\r\n");
        assert_eq!(store.get(&running.id).expect("kept").phase, Phase::Error);
    }

    /// Starts a job of `owner` that runs until `release` says so.
    fn blocking_job(
        store: &Arc<JobStore>,
        owner: Option<&str>,
        release: &tokio::sync::watch::Receiver<bool>,
    ) -> String {
        let job = store
            .create_owned(vec![], owner.map(str::to_string))
            .expect("create");
        let mut release = release.clone();
        store
            .start(&job.id, move |_, _| {
                Box::pin(async move {
                    let _ = release.wait_for(|go| *go).await;
                    Ok(())
                })
            })
            .expect("start");
        job.id
    }

    #[tokio::test]
    async fn a_caller_s_unfinished_jobs_are_capped_and_others_still_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = JobLimits {
            max_unfinished_per_caller: 3,
            ..JobLimits::default()
        };
        let store = JobStore::open(dir.path(), limits, Protocol::Tap).expect("open");
        let mallory = Some("mallory".to_string());
        let jobs: Vec<Job> = (0..3)
            .map(|_| store.create_owned(vec![], mallory.clone()).expect("create"))
            .collect();
        let refused = store.create_owned(vec![], mallory.clone());
        assert!(
            matches!(refused, Err(VoError::TooManyJobs { limit: 3 })),
            "{refused:?}"
        );
        assert_eq!(
            crate::fault::status(VoError::TooManyJobs { limit: 3 }.class()),
            axum::http::StatusCode::TOO_MANY_REQUESTS
        );
        // Others are not held by mallory's jobs; a finished job frees a place.
        store
            .create_owned(vec![], Some("alice".into()))
            .expect("alice creates");
        store.create_owned(vec![], None).expect("anonymous creates");
        store.abort(&jobs[0].id).expect("abort");
        store
            .create_owned(vec![], mallory.clone())
            .expect("a place after an abort");
        store.delete(&jobs[1].id).expect("delete");
        store
            .create_owned(vec![], mallory)
            .expect("a place after a delete");
    }

    #[tokio::test]
    async fn a_caller_s_flood_of_jobs_queues_behind_itself_and_others_still_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = JobLimits {
            max_running: 3,
            max_running_per_caller: 2,
            ..JobLimits::default()
        };
        let store = JobStore::open(dir.path(), limits, Protocol::Tap).expect("open");
        let (go, release) = tokio::sync::watch::channel(false);
        let flood: Vec<String> = (0..6)
            .map(|_| blocking_job(&store, Some("mallory"), &release))
            .collect();
        let alice = blocking_job(&store, Some("alice"), &release);
        let phases = |ids: &[String]| -> Vec<Phase> {
            ids.iter()
                .map(|id| store.get(id).expect("job").phase)
                .collect()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.get(&alice).expect("job").phase != Phase::Executing {
            assert!(
                tokio::time::Instant::now() < deadline,
                "alice's job never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let anonymous = blocking_job(&store, None, &release);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let executing = phases(&flood)
            .iter()
            .filter(|p| **p == Phase::Executing)
            .count();
        assert_eq!(executing, 2, "{:?}", phases(&flood));
        assert_eq!(
            phases(&flood)
                .iter()
                .filter(|p| **p == Phase::Queued)
                .count(),
            4
        );
        // Three slots in all: mallory's two and alice's; the anonymous job waits for one.
        assert_eq!(store.get(&anonymous).expect("job").phase, Phase::Queued);
        go.send(true).expect("release");
        for id in flood.iter().chain([&alice, &anonymous]) {
            let job = store
                .wait(id, Phase::Queued, Duration::from_secs(5))
                .await
                .expect("wait");
            let job = if job.phase == Phase::Executing {
                store
                    .wait(id, Phase::Executing, Duration::from_secs(5))
                    .await
                    .expect("wait")
            } else {
                job
            };
            assert_eq!(job.phase, Phase::Completed, "{id}");
        }
    }
}
