//! The embedded backend: each lab is a child process of colo in a mount namespace of its own
//! (`unshare --mount`, then [`crate::init`]), with its logs in `<dir>/<lab>/log`, its events
//! appended to `<dir>/<lab>/events.jsonl` (so a restarted colo knows what was running), and its
//! cgroup removed when it ends.
//!
//! The lab dies with colo: `setpriv --pdeathsig=KILL` ties it to the *thread* that spawned it.
//! A runtime worker thread is not safe for that — `block_in_place` (colo's views use it) turns a
//! worker into a blocking-pool thread, which exits when idle and takes its labs along (seen: a
//! lab SIGKILLed a few seconds after it started) — so every lab is spawned by one thread of the
//! backend's own ([`Spawner`]) that lives as long as the backend. A colo that was killed anyway leaves
//! event files whose last state is not final: [`LocalBackend::recover`] kills what is left in
//! those labs' cgroups and records them STOPPED, with the reason.

use crate::cgroup::{Hierarchy, LabCgroup};
use crate::error::{LabError, Result};
use crate::lifecycle::{LabEvent, LabState};
use crate::plan::{InitPlan, LabSpec};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How often a starting lab's status file is looked at.
const STATUS_POLL: Duration = Duration::from_millis(20);
/// How long a lab's volumes may take to appear in its user's view (see `Run::go`).
const VOLUME_WAIT: Duration = Duration::from_secs(3);

/// A running or ended lab, as the backend keeps it.
struct Lab {
    events: Mutex<Vec<LabEvent>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<LabEvent>>>,
    stop: Notify,
    /// Why it is being stopped (default: on request).
    stop_reason: Mutex<Option<String>>,
    dir: PathBuf,
}

impl Lab {
    fn state(&self) -> Option<LabState> {
        self.events.lock().ok()?.last().map(|e| e.state)
    }

    /// Records and sends the transition (if the lifecycle allows it).
    fn emit(&self, lab: &str, state: LabState, reason: impl Into<String>) {
        self.record(lab, Some(state), reason.into());
    }

    /// A transition to `state`, or (`None`) a notice in the current state — a warning before an
    /// expiry or an idle cull.
    fn record(&self, lab: &str, state: Option<LabState>, reason: String) {
        let event = {
            let Ok(mut events) = self.events.lock() else {
                return;
            };
            let last = events.last().map(|e| e.state);
            let event = match (state, last) {
                (Some(next), Some(now)) if !now.may_become(next) => return,
                (Some(next), _) => LabEvent::now(lab, next, reason),
                (None, Some(now)) if !now.is_final() => LabEvent::now(lab, now, reason),
                (None, _) => return,
            };
            events.push(event.clone());
            // Sent under the events' lock, so a subscriber ([`LocalBackend::watch`]) that took
            // the events so far misses none and sees none twice.
            if let Ok(mut subs) = self.subscribers.lock() {
                subs.retain(|s| s.send(event.clone()).is_ok());
            }
            event
        };
        let state = event.state;
        tracing::info!(lab, state = state.as_str(), reason = %event.reason, "lab");
        let path = self.dir.join("events.jsonl");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            && let Ok(line) = serde_json::to_string(&event)
        {
            let _ = writeln!(f, "{line}");
            let _ = f.sync_data();
        }
    }
}

pub struct LocalBackend {
    dir: PathBuf,
    init: Vec<OsString>,
    mount_point: PathBuf,
    hierarchy: Option<Hierarchy>,
    labs: Mutex<HashMap<String, Arc<Lab>>>,
    spawner: Spawner,
}

type SpawnRequest = (
    tokio::process::Command,
    tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
);

/// The one thread that spawns labs (see the module note), in the runtime's context so that the
/// children are reaped by it. It ends when the backend is dropped.
#[derive(Clone)]
struct Spawner(std::sync::mpsc::Sender<SpawnRequest>);

impl Spawner {
    fn new() -> Result<Spawner> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| LabError::Step {
            lab: String::new(),
            step: "starting the lab spawner",
            detail: e.to_string(),
        })?;
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("colo-lab-spawner".into())
            .spawn(move || {
                let _in_runtime = runtime.enter();
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|e| LabError::Step {
                lab: String::new(),
                step: "starting the lab spawner",
                detail: e.to_string(),
            })?;
        Ok(Spawner(tx))
    }

    async fn spawn(&self, cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("the lab spawner has stopped"))?;
        rx.await
            .map_err(|_| std::io::Error::other("the lab spawner has stopped"))?
    }
}

/// What [`LocalBackend::start`] gives back: the lab's events from PENDING on.
pub struct LabHandle {
    pub id: String,
    pub events: mpsc::UnboundedReceiver<LabEvent>,
}

impl LocalBackend {
    /// A backend keeping its labs' files under `dir`, starting each lab's first process as
    /// `init PLAN.json` (colo: `[colo, "lab-init"]`), volumes at `mount_point` inside the lab.
    pub fn new(dir: &Path, init: Vec<OsString>, mount_point: &Path) -> Result<LocalBackend> {
        std::fs::create_dir_all(dir).map_err(LabError::io(dir))?;
        Ok(LocalBackend {
            dir: dir.to_path_buf(),
            init,
            mount_point: mount_point.to_path_buf(),
            hierarchy: Hierarchy::detect(),
            labs: Mutex::new(HashMap::new()),
            spawner: Spawner::new()?,
        })
    }

    /// The cgroup hierarchy limits are written to (`None`: limits cannot be enforced here).
    pub fn hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchy.as_ref()
    }

    fn lab(&self, id: &str) -> Result<Arc<Lab>> {
        self.labs
            .lock()
            .ok()
            .and_then(|l| l.get(id).cloned())
            .ok_or_else(|| LabError::NoSuchLab {
                lab: id.to_string(),
            })
    }

    /// Starts the lab `spec` describes; its events follow on the handle. A spec that breaks a rule
    /// is refused here (nothing starts); anything that fails later is a FAILED event with the
    /// reason.
    pub fn start(&self, spec: LabSpec) -> Result<LabHandle> {
        spec.validate()?;
        let dir = self.dir.join(&spec.id);
        {
            let labs = self.labs.lock().map_err(|_| LabError::NoSuchLab {
                lab: spec.id.clone(),
            })?;
            if labs
                .get(&spec.id)
                .is_some_and(|l| l.state().is_some_and(|s| !s.is_final()))
            {
                return Err(LabError::BadSpec {
                    lab: spec.id.clone(),
                    detail: "a lab of that id is running".into(),
                });
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(LabError::io(&dir))?;
        }
        // The plan holds the lab's environment (a web lab's private token): colo's alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(LabError::io(&dir))?;
        let lab = Arc::new(Lab {
            events: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            stop: Notify::new(),
            stop_reason: Mutex::new(None),
            dir: dir.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = lab.subscribers.lock() {
            subs.push(tx);
        }
        if let Ok(mut labs) = self.labs.lock() {
            labs.insert(spec.id.clone(), lab.clone());
        }
        lab.emit(
            &spec.id,
            LabState::Pending,
            format!(
                "{} volume(s), {} millicores, {} MiB",
                spec.volumes.len(),
                spec.resources.cpu_millis,
                spec.resources.memory_bytes >> 20
            ),
        );
        let id = spec.id.clone();
        let run = Run {
            spec,
            lab,
            init: self.init.clone(),
            mount_point: self.mount_point.clone(),
            hierarchy: self.hierarchy.clone(),
            spawner: self.spawner.clone(),
        };
        tokio::spawn(run.go());
        Ok(LabHandle { id, events: rx })
    }

    /// The labs that have not ended.
    pub fn running(&self) -> Vec<String> {
        let labs = match self.labs.lock() {
            Ok(l) => l,
            Err(_) => return Vec::new(),
        };
        labs.iter()
            .filter(|(_, l)| l.state().is_some_and(|s| !s.is_final()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every event of the lab so far.
    pub fn events(&self, id: &str) -> Result<Vec<LabEvent>> {
        Ok(self
            .lab(id)?
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default())
    }

    /// Every event of the lab so far, and each later one as it happens (the receiver ends when
    /// the backend forgets the lab).
    pub fn watch(&self, id: &str) -> Result<(Vec<LabEvent>, mpsc::UnboundedReceiver<LabEvent>)> {
        let lab = self.lab(id)?;
        let events = lab.events.lock().map_err(|_| LabError::NoSuchLab {
            lab: id.to_string(),
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = lab.subscribers.lock() {
            subs.push(tx);
        }
        Ok((events.clone(), rx))
    }

    /// At most `max_bytes` of the lab's log from byte `offset` on, and the log's length now.
    pub fn log_from(&self, id: &str, offset: u64, max_bytes: u64) -> Result<(Vec<u8>, u64)> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.lab(id)?.dir.join("log");
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Not started yet: an empty log.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(LabError::io(&path)(e)),
        };
        let len = file.metadata().map_err(LabError::io(&path))?.len();
        let mut piece = Vec::new();
        if offset < len && max_bytes > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(LabError::io(&path))?;
            file.take(max_bytes.min(len - offset))
                .read_to_end(&mut piece)
                .map_err(LabError::io(&path))?;
        }
        Ok((piece, len))
    }

    /// The lab's current state and why.
    pub fn status(&self, id: &str) -> Result<LabEvent> {
        self.events(id)?.pop().ok_or_else(|| LabError::NoSuchLab {
            lab: id.to_string(),
        })
    }

    /// The last `bytes` of the lab's log (its stdout and stderr together).
    pub fn log_tail(&self, id: &str, bytes: u64) -> Result<String> {
        let path = self.lab(id)?.dir.join("log");
        let all = std::fs::read(&path).map_err(LabError::io(&path))?;
        let from = all.len().saturating_sub(bytes as usize);
        Ok(String::from_utf8_lossy(&all[from..]).into_owned())
    }

    /// Asks the lab to stop: SIGTERM to its first process, SIGKILL 10 s later, and whatever is
    /// left in its cgroup killed when it ends.
    pub fn stop(&self, id: &str) -> Result<()> {
        let lab = self.lab(id)?;
        lab.stop.notify_one();
        Ok(())
    }

    /// [`LocalBackend::stop`], with the reason its events give ("expired", "culled: idle").
    pub fn stop_because(&self, id: &str, reason: &str) -> Result<()> {
        let lab = self.lab(id)?;
        if let Ok(mut r) = lab.stop_reason.lock() {
            *r = Some(reason.to_string());
        }
        lab.stop.notify_one();
        Ok(())
    }

    /// An event in the lab's current state: a warning the user should see.
    pub fn notice(&self, id: &str, reason: &str) -> Result<()> {
        self.lab(id)?.record(id, None, reason.to_string());
        Ok(())
    }

    /// After a restart of colo: labs whose last recorded state is not final are stopped (what
    /// is left in their cgroups is killed) and recorded STOPPED. Returns their ids.
    pub async fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(LabError::io(&self.dir))?;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let events_file = entry.path().join("events.jsonl");
            let Ok(text) = std::fs::read_to_string(&events_file) else {
                continue;
            };
            let events: Vec<LabEvent> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let Some(last) = events.last() else {
                continue;
            };
            if last.state.is_final() || self.lab(&id).is_ok() {
                continue;
            }
            if let Some(h) = &self.hierarchy
                && let Some(group) = LabCgroup::existing(h, &id)
            {
                group.remove().await;
            }
            let lab = Arc::new(Lab {
                events: Mutex::new(events),
                subscribers: Mutex::new(Vec::new()),
                stop: Notify::new(),
                stop_reason: Mutex::new(None),
                dir: entry.path(),
            });
            lab.emit(
                &id,
                LabState::Stopping,
                "colo restarted: the lab's processes are stopped",
            );
            lab.emit(&id, LabState::Stopped, "colo restarted while the lab ran");
            if let Ok(mut labs) = self.labs.lock() {
                labs.insert(id.clone(), lab);
            }
            recovered.push(id);
        }
        Ok(recovered)
    }
}

/// One lab from spawn to end.
struct Run {
    spec: LabSpec,
    lab: Arc<Lab>,
    init: Vec<OsString>,
    mount_point: PathBuf,
    hierarchy: Option<Hierarchy>,
    spawner: Spawner,
}

impl Run {
    async fn go(self) {
        let id = self.spec.id.clone();
        let group = match &self.hierarchy {
            Some(h) => match LabCgroup::create(h, &id, self.spec.resources) {
                Ok(g) => Some(g),
                Err(e) => {
                    self.lab
                        .emit(&id, LabState::Failed, format!("resource limits: {e}"));
                    return;
                }
            },
            None => None,
        };
        let outcome = self.supervise(group.as_ref()).await;
        if let Some(g) = &group {
            g.remove().await;
        }
        let (state, reason) = outcome;
        self.lab.emit(&id, state, reason);
    }

    fn stop_reason(&self) -> Option<String> {
        self.lab.stop_reason.lock().ok()?.clone()
    }

    /// The events of the steps the status file shows (each once: the lifecycle refuses repeats),
    /// including those passed between two looks.
    fn report_steps(&self, status: &str, pid: u32) {
        let id = self.spec.id.as_str();
        if status == "mounted" || status == "exec" {
            self.lab
                .emit(id, LabState::Starting, "volumes mounted; starting the tool");
        }
        // A lab with a web interface is running once it answers (see the probe in `supervise`).
        if status == "exec" && self.spec.ready.is_none() {
            self.lab.emit(
                id,
                LabState::Running,
                format!("pid {pid}, as uid {}", self.spec.uid),
            );
        }
    }

    async fn supervise(&self, group: Option<&LabCgroup>) -> (LabState, String) {
        let id = self.spec.id.as_str();
        let dir = &self.lab.dir;
        let status_file = dir.join("status");
        let plan = InitPlan {
            lab: id.to_string(),
            mount_point: self.mount_point.clone(),
            volumes: self.spec.volumes.clone(),
            uid: self.spec.uid,
            gid: self.spec.gid,
            cgroup_procs: group.map(LabCgroup::procs_files).unwrap_or_default(),
            command: self.spec.command.clone(),
            env: self.spec.env.clone(),
            status_file: status_file.clone(),
        };
        let plan_file = dir.join("plan.json");
        let written = serde_json::to_vec_pretty(&plan)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                private_file(&plan_file)?
                    .write_all(&b)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            return (
                LabState::Failed,
                format!("writing {}: {e}", plan_file.display()),
            );
        }
        let log_path = dir.join("log");
        let log = match private_file(&log_path) {
            Ok(f) => f,
            Err(e) => return (LabState::Failed, format!("{}: {e}", log_path.display())),
        };
        let log2 = match log.try_clone() {
            Ok(f) => f,
            Err(e) => return (LabState::Failed, format!("{}: {e}", log_path.display())),
        };
        self.lab.emit(
            id,
            LabState::Mounting,
            format!(
                "binding {} volume(s) at {}",
                self.spec.volumes.len(),
                self.mount_point.display()
            ),
        );
        // A volume added just before the launch may not be in the user's view yet (the views
        // follow the catalog within a poll): its folder gets a moment to appear. One still
        // missing then is the lab's FAILED reason, from lab-init.
        let deadline = tokio::time::Instant::now() + VOLUME_WAIT;
        for v in &self.spec.volumes {
            while !tokio::fs::metadata(&v.source)
                .await
                .is_ok_and(|m| m.is_dir())
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(STATUS_POLL).await;
            }
        }
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--"])
            .args(&self.init)
            .arg(&plan_file)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true);
        let mut child = match self.spawner.spawn(cmd).await {
            Ok(c) => c,
            Err(e) => return (LabState::Failed, format!("cannot run unshare: {e}")),
        };
        let pid = child.id().unwrap_or(0);
        let mut reported = String::new();
        let mut started: Option<std::time::Instant> = None;
        let probe_headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)> = self
            .spec
            .ready
            .iter()
            .flat_map(|p| p.headers.iter())
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
            .collect();
        let mut stopping = false;
        let exit = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = self.lab.stop.notified(), if !stopping => {
                    stopping = true;
                    let why = self.stop_reason().unwrap_or_else(|| "stop requested".into());
                    self.lab.emit(id, LabState::Stopping, why);
                    let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
                    let grace = tokio::time::sleep(Duration::from_secs(10));
                    tokio::pin!(grace);
                    tokio::select! {
                        status = child.wait() => break status,
                        _ = &mut grace => { let _ = child.start_kill(); }
                    }
                }
                _ = tokio::time::sleep(STATUS_POLL) => {
                    let now = std::fs::read_to_string(&status_file).unwrap_or_default();
                    if now != reported {
                        if now == "exec" {
                            started = Some(std::time::Instant::now());
                        }
                        self.report_steps(&now, pid);
                        reported = now;
                    }
                    if let (Some(since), Some(probe)) = (started, &self.spec.ready)
                        && self.lab.state() == Some(LabState::Starting)
                    {
                        if crate::http::answers(&probe.endpoint, &probe.path, &probe_headers).await {
                            self.lab.emit(id, LabState::Running, format!("pid {pid}, as uid {}; answering on {}", self.spec.uid, probe.endpoint));
                        } else if since.elapsed() > Duration::from_secs(probe.timeout_secs) {
                            let _ = child.start_kill();
                            let _ = child.wait().await;
                            return (LabState::Failed, format!(
                                "its server never answered on {} within {} s; last log line: {}",
                                probe.endpoint, probe.timeout_secs, last_line(&log_path)
                            ));
                        }
                    }
                }
            }
        };
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        // A tool that ended between two looks at the status file still went through its steps.
        self.report_steps(&status, pid);
        if let Some(err) = status.strip_prefix("error: ") {
            return (LabState::Failed, err.to_string());
        }
        let oom = group.is_some_and(LabCgroup::oom_killed);
        match exit {
            Err(e) => (LabState::Failed, format!("waiting for the lab: {e}")),
            Ok(_) if oom => (
                LabState::Failed,
                format!(
                    "OOM-killed: the lab used all of its {} MiB memory limit",
                    self.spec.resources.memory_bytes >> 20
                ),
            ),
            Ok(_) if stopping => (
                LabState::Stopped,
                self.stop_reason()
                    .unwrap_or_else(|| "stopped on request".into()),
            ),
            Ok(s) if self.spec.ready.is_some() && self.lab.state() != Some(LabState::Running) => (
                LabState::Failed,
                format!(
                    "it ended ({s}) before its server answered; last log line: {}",
                    last_line(&log_path)
                ),
            ),
            Ok(s) if s.success() => (LabState::Stopped, "the tool exited (code 0)".into()),
            Ok(s) => {
                let last = last_line(&log_path);
                let what = match (s.code(), s.signal()) {
                    (Some(code), _) => format!("exit code {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "ended".into(),
                };
                (LabState::Failed, format!("{what}; last log line: {last}"))
            }
        }
    }
}

/// A new file only colo may read.
fn private_file(path: &Path) -> std::result::Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn last_line(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = text.len().saturating_sub(4096);
    String::from_utf8_lossy(&text[from..])
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(empty)")
        .chars()
        .take(300)
        .collect()
}
