//! A lab's keeper: its expiry (with a warning event before it, and renewal) and, for a Jupyter
//! lab, its idle cull — which asks the lab's server for activity and never culls a lab whose
//! kernel is computing.
//!
//! Activity, from Jupyter's own API (asked without counting as activity: `/api/status` is not
//! tracked, `/api/kernels` is asked with `no_track_activity`): any kernel `busy` is activity now;
//! otherwise the server's `last_activity` (requests, kernel messages) changing is. A long cell
//! with no output keeps its kernel `busy`, so it is never culled however long it runs; a lab
//! left alone with idle kernels is warned, then stopped, with the reason in its events.

use crate::backend::LabBackend;
use crate::http::{Upstream, get_json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// How often the keeper looks.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct KeepPolicy {
    pub expires_at: SystemTime,
    /// Cull after this long without activity (Jupyter labs).
    pub idle_timeout: Option<Duration>,
    /// The lab's Jupyter server, to ask for activity.
    pub jupyter: Option<Upstream>,
}

/// The warning comes this long before the end: a quarter of what is left at the start, at most
/// 15 minutes.
fn warn_before(span: Duration) -> Duration {
    (span / 4).min(Duration::from_secs(15 * 60))
}

/// Renews a kept lab's expiry.
#[derive(Clone)]
pub struct Keeper {
    deadline: watch::Sender<SystemTime>,
}

impl Keeper {
    pub fn expires_at(&self) -> SystemTime {
        *self.deadline.borrow()
    }

    pub fn renew(&self, until: SystemTime) {
        let _ = self.deadline.send(until);
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keeps lab `id` by `policy` until it ends.
pub fn keep(backend: Arc<dyn LabBackend>, id: String, policy: KeepPolicy) -> Keeper {
    let (tx, mut rx) = watch::channel(policy.expires_at);
    tokio::spawn(async move {
        let mut warned_for: Option<SystemTime> = None;
        // When the current deadline was set: the warning comes a quarter of that span before it.
        let mut set_at = SystemTime::now();
        let mut idle_since = Instant::now();
        let mut last_seen: Option<String> = None;
        let mut idle_warned = false;
        loop {
            let state = match backend.labs().status(&id) {
                Ok(e) => e.state,
                Err(_) => return,
            };
            if state.is_final() {
                return;
            }
            let now = SystemTime::now();
            if rx.has_changed().unwrap_or(false) {
                set_at = now;
            }
            let deadline = *rx.borrow_and_update();
            let left = deadline.duration_since(now).unwrap_or_default();
            if left.is_zero() {
                let _ = backend.labs().stop_because(
                    &id,
                    &format!(
                        "expired (its time ended at {} s since the epoch)",
                        secs(deadline)
                    ),
                );
                return;
            }
            let span = deadline.duration_since(set_at).unwrap_or_default();
            if left <= warn_before(span) && warned_for != Some(deadline) {
                warned_for = Some(deadline);
                let _ = backend.labs().notice(
                    &id,
                    &format!(
                        "expires in {} s (at {} s since the epoch): renewDatalab extends it",
                        left.as_secs(),
                        secs(deadline)
                    ),
                );
            }
            if let (Some(timeout), Some(up)) = (policy.idle_timeout, &policy.jupyter)
                && state == crate::LabState::Running
            {
                // Where it answers now (a Pod's address is known once it runs).
                let mut up = up.clone();
                if let Some(at) = backend.endpoint(&id) {
                    up.endpoint = at;
                }
                let up = &up;
                let busy = get_json(up, &kernels_path(up))
                    .await
                    .and_then(|v| {
                        v.as_array().map(|ks| {
                            ks.iter()
                                .any(|k| k["execution_state"].as_str() == Some("busy"))
                        })
                    })
                    .unwrap_or(false);
                let activity = get_json(up, &status_path(up))
                    .await
                    .and_then(|v| v["last_activity"].as_str().map(str::to_string));
                tracing::debug!(lab = %id, busy, activity = ?activity, "lab activity");
                if busy || (activity.is_some() && activity != last_seen) {
                    if idle_warned {
                        let _ = backend.labs().notice(&id, "active again: not culled");
                    }
                    idle_since = Instant::now();
                    idle_warned = false;
                    if activity.is_some() {
                        last_seen = activity;
                    }
                }
                let idle = idle_since.elapsed();
                if idle >= timeout {
                    let _ = backend.labs().stop_because(
                        &id,
                        &format!(
                            "culled: idle for {} s (no kernel busy, no activity)",
                            idle.as_secs()
                        ),
                    );
                    return;
                }
                if !idle_warned && idle >= timeout - warn_before(timeout) {
                    idle_warned = true;
                    let _ = backend.labs().notice(
                        &id,
                        &format!(
                            "idle for {} s: culled in {} s unless used",
                            idle.as_secs(),
                            (timeout - idle).as_secs()
                        ),
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = rx.changed() => {}
            }
        }
    });
    Keeper { deadline: tx }
}

fn kernels_path(up: &Upstream) -> String {
    format!("{}api/kernels?no_track_activity=1", up.base_path)
}

fn status_path(up: &Upstream) -> String {
    format!("{}api/status", up.base_path)
}
