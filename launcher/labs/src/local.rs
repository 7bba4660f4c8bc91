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

use crate::backend::LabBackend;
use crate::book::{Lab, LabHandle, LabTable, last_line};
use crate::cgroup::{Hierarchy, LabCgroup};
use crate::error::{LabError, Result};
use crate::lifecycle::LabState;
use crate::plan::{InitPlan, LabSpec};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often a starting lab's status file is looked at.
const STATUS_POLL: Duration = Duration::from_millis(20);
/// How long a lab's volumes may take to appear in its user's view (see `Run::go`).
const VOLUME_WAIT: Duration = Duration::from_secs(3);

pub struct LocalBackend {
    table: LabTable,
    init: Vec<OsString>,
    mount_point: PathBuf,
    hierarchy: Option<Hierarchy>,
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

impl LocalBackend {
    /// A backend keeping its labs' files under `dir`, starting each lab's first process as
    /// `init PLAN.json` (colo: `[colo, "lab-init"]`), volumes at `mount_point` inside the lab.
    pub fn new(dir: &Path, init: Vec<OsString>, mount_point: &Path) -> Result<LocalBackend> {
        Ok(LocalBackend {
            table: LabTable::new(dir)?,
            init,
            mount_point: mount_point.to_path_buf(),
            hierarchy: Hierarchy::detect(),
            spawner: Spawner::new()?,
        })
    }

    /// The cgroup hierarchy limits are written to (`None`: limits cannot be enforced here).
    pub fn hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchy.as_ref()
    }

    /// After a restart of colo: labs whose last recorded state is not final are stopped (what
    /// is left in their cgroups is killed) and recorded STOPPED. Returns their ids.
    pub async fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        for (id, lab) in self.table.unfinished()? {
            if let Some(h) = &self.hierarchy
                && let Some(group) = LabCgroup::existing(h, &id)
            {
                group.remove().await;
            }
            self.table
                .recovered(&id, lab, "the lab's processes are stopped");
            recovered.push(id);
        }
        Ok(recovered)
    }
}

impl LabBackend for LocalBackend {
    /// Starts the lab `spec` describes; its events follow on the handle. A spec that breaks a rule
    /// is refused here (nothing starts); anything that fails later is a FAILED event with the
    /// reason.
    fn start(&self, spec: LabSpec) -> Result<LabHandle> {
        let (lab, handle) = self.table.open(&spec)?;
        if let Ok(mut at) = lab.endpoint.lock() {
            *at = spec.ready.as_ref().map(|r| r.endpoint.clone());
        }
        let run = Run {
            spec,
            lab,
            init: self.init.clone(),
            mount_point: self.mount_point.clone(),
            hierarchy: self.hierarchy.clone(),
            spawner: self.spawner.clone(),
        };
        tokio::spawn(run.go());
        Ok(handle)
    }

    fn labs(&self) -> &LabTable {
        &self.table
    }

    fn web_listen(&self, home: &Path) -> crate::http::Endpoint {
        crate::http::Endpoint::Unix(home.join("jupyter.sock"))
    }

    fn endpoint(&self, id: &str) -> Option<crate::http::Endpoint> {
        // Where the spec said its server listens (a socket in its home folder), while it runs.
        let lab = self.table.lab(id).ok()?;
        (lab.state() == Some(LabState::Running))
            .then(|| lab.endpoint.lock().ok()?.clone())
            .flatten()
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
        self.lab.stop_reason()
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
