//! What every backend keeps of a lab: its events (in memory for watchers, appended to
//! `<dir>/<lab>/events.jsonl` so a restarted colo knows what was running), the watchers to send
//! each new one to, and the stop request with its reason. The lab's log is `<dir>/<lab>/log`.

use crate::error::{LabError, Result};
use crate::lifecycle::{LabEvent, LabState};
use crate::plan::LabSpec;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};

/// A running or ended lab, as the backend keeps it.
pub(crate) struct Lab {
    pub(crate) events: Mutex<Vec<LabEvent>>,
    pub(crate) subscribers: Mutex<Vec<mpsc::UnboundedSender<LabEvent>>>,
    pub(crate) stop: Notify,
    /// Why it is being stopped (default: on request).
    pub(crate) stop_reason: Mutex<Option<String>>,
    pub(crate) dir: PathBuf,
    /// Where its web server answers (set by the backend once known).
    pub(crate) endpoint: Mutex<Option<crate::http::Endpoint>>,
}

impl Lab {
    pub(crate) fn state(&self) -> Option<LabState> {
        self.events.lock().ok()?.last().map(|e| e.state)
    }

    /// Records and sends the transition (if the lifecycle allows it).
    pub(crate) fn emit(&self, lab: &str, state: LabState, reason: impl Into<String>) {
        self.record(lab, Some(state), reason.into());
    }

    /// A transition to `state`, or (`None`) a notice in the current state — a warning before an
    /// expiry or an idle cull.
    pub(crate) fn record(&self, lab: &str, state: Option<LabState>, reason: String) {
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

impl Lab {
    /// A new lab's book in `dir` (which exists).
    pub(crate) fn new(dir: PathBuf) -> Lab {
        Lab {
            events: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            stop: Notify::new(),
            stop_reason: Mutex::new(None),
            dir,
            endpoint: Mutex::new(None),
        }
    }

    /// A new watcher of the lab's events: every event so far, and each later one as it happens.
    pub(crate) fn watch(&self) -> (Vec<LabEvent>, mpsc::UnboundedReceiver<LabEvent>) {
        let events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        (events, rx)
    }

    /// Why it is being stopped, if someone said.
    pub(crate) fn stop_reason(&self) -> Option<String> {
        self.stop_reason.lock().ok()?.clone()
    }
}

/// What [`crate::LabBackend::start`] gives back: the lab's events from PENDING on.
pub struct LabHandle {
    pub id: String,
    pub events: mpsc::UnboundedReceiver<LabEvent>,
}

/// A backend's labs, by id, with their files under one folder.
pub struct LabTable {
    dir: PathBuf,
    labs: Mutex<HashMap<String, Arc<Lab>>>,
}

impl LabTable {
    pub(crate) fn new(dir: &Path) -> Result<LabTable> {
        std::fs::create_dir_all(dir).map_err(LabError::io(dir))?;
        Ok(LabTable {
            dir: dir.to_path_buf(),
            labs: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn lab(&self, id: &str) -> Result<Arc<Lab>> {
        self.labs
            .lock()
            .ok()
            .and_then(|l| l.get(id).cloned())
            .ok_or_else(|| LabError::NoSuchLab {
                lab: id.to_string(),
            })
    }

    /// A new lab's book for `spec` (checked first), with a fresh 0700 folder — refused while a
    /// lab of that id runs — and PENDING recorded; the handle gets its events.
    pub(crate) fn open(&self, spec: &LabSpec) -> Result<(Arc<Lab>, LabHandle)> {
        spec.validate()?;
        let dir = self.dir.join(&spec.id);
        if self
            .lab(&spec.id)
            .is_ok_and(|l| l.state().is_some_and(|s| !s.is_final()))
        {
            return Err(LabError::BadSpec {
                lab: spec.id.clone(),
                detail: "a lab of that id is running".into(),
            });
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(LabError::io(&dir))?;
        }
        // The lab's files hold its environment (a web lab's private token): colo's alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(LabError::io(&dir))?;
        let lab = Arc::new(Lab::new(dir));
        let (_, events) = lab.watch();
        self.insert(&spec.id, lab.clone());
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
        Ok((
            lab,
            LabHandle {
                id: spec.id.clone(),
                events,
            },
        ))
    }

    /// After a restart of colo: the labs of this table's folder whose last recorded state is not
    /// final (and that this table does not run), each with its events so far — for the backend
    /// to clean up what is left of them and then [`LabTable::recovered`].
    pub(crate) fn unfinished(&self) -> Result<Vec<(String, Arc<Lab>)>> {
        let entries = std::fs::read_dir(&self.dir).map_err(LabError::io(&self.dir))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(entry.path().join("events.jsonl")) else {
                continue;
            };
            let events: Vec<LabEvent> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if events.last().is_none_or(|e| e.state.is_final()) || self.lab(&id).is_ok() {
                continue;
            }
            let lab = Arc::new(Lab::new(entry.path()));
            if let Ok(mut past) = lab.events.lock() {
                *past = events;
            }
            found.push((id, lab));
        }
        Ok(found)
    }

    /// Records an unfinished lab's end after a restart (`what`: what was done about it) and keeps
    /// it in the table, so its events and log can still be read.
    pub(crate) fn recovered(&self, id: &str, lab: Arc<Lab>, what: &str) {
        lab.emit(id, LabState::Stopping, format!("colo restarted: {what}"));
        lab.emit(id, LabState::Stopped, "colo restarted while the lab ran");
        self.insert(id, lab);
    }

    pub(crate) fn insert(&self, id: &str, lab: Arc<Lab>) {
        if let Ok(mut labs) = self.labs.lock() {
            labs.insert(id.to_string(), lab);
        }
    }

    /// The labs that have not ended.
    pub fn running(&self) -> Vec<String> {
        let Ok(labs) = self.labs.lock() else {
            return Vec::new();
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
        Ok(self.lab(id)?.watch())
    }

    /// The lab's current state and why.
    pub fn status(&self, id: &str) -> Result<LabEvent> {
        self.events(id)?.pop().ok_or_else(|| LabError::NoSuchLab {
            lab: id.to_string(),
        })
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

    /// The last `bytes` of the lab's log (its stdout and stderr together).
    pub fn log_tail(&self, id: &str, bytes: u64) -> Result<String> {
        let path = self.lab(id)?.dir.join("log");
        let all = match std::fs::read(&path) {
            Ok(all) => all,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LabError::io(&path)(e)),
        };
        let from = all.len().saturating_sub(bytes as usize);
        Ok(String::from_utf8_lossy(&all[from..]).into_owned())
    }

    /// Asks the lab to stop, on request.
    pub fn stop(&self, id: &str) -> Result<()> {
        self.lab(id)?.stop.notify_one();
        Ok(())
    }

    /// Asks the lab to stop, with the reason its events give ("expired", "culled: idle").
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
}

/// The last non-empty line of a log (at most 300 characters), for a FAILED reason.
pub(crate) fn last_line(log: &Path) -> String {
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
