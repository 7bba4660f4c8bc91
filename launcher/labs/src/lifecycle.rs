//! A lab's lifecycle: PENDING → MOUNTING → STARTING → RUNNING → STOPPING → STOPPED, or FAILED from
//! any step before STOPPED. Every transition is an event carrying a reason a person can act on
//! ("volume 'home': no such folder", "OOM-killed at the 64 MiB memory limit", "exit code 3").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LabState {
    Pending,
    Mounting,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
}

impl LabState {
    pub fn as_str(self) -> &'static str {
        match self {
            LabState::Pending => "PENDING",
            LabState::Mounting => "MOUNTING",
            LabState::Starting => "STARTING",
            LabState::Running => "RUNNING",
            LabState::Stopping => "STOPPING",
            LabState::Stopped => "STOPPED",
            LabState::Failed => "FAILED",
        }
    }

    /// STOPPED and FAILED: nothing runs, nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, LabState::Stopped | LabState::Failed)
    }

    /// Whether a lab in this state may move to `next`.
    pub fn may_become(self, next: LabState) -> bool {
        use LabState::*;
        match (self, next) {
            (s, _) if s.is_final() => false,
            // A lab may end at any step (stopped before it started, or its tool done at once).
            (_, Failed | Stopped) => true,
            (Pending, Mounting) | (Mounting, Starting) | (Starting, Running) => true,
            (Pending | Mounting | Starting | Running, Stopping) => true,
            _ => false,
        }
    }
}

/// One transition of one lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabEvent {
    pub lab: String,
    pub state: LabState,
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub at_secs: u64,
}

impl LabEvent {
    pub fn now(lab: &str, state: LabState, reason: impl Into<String>) -> LabEvent {
        LabEvent {
            lab: lab.to_string(),
            state,
            reason: reason.into(),
            at_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LabState::*;

    #[test]
    fn the_lifecycle_moves_forward_only_and_ends_in_stopped_or_failed() {
        let happy = [Pending, Mounting, Starting, Running, Stopping, Stopped];
        for pair in happy.windows(2) {
            assert!(
                pair[0].may_become(pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(Running.may_become(Stopped), "a tool that exits on its own");
        assert!(Pending.may_become(Stopped), "stopped before it started");
        for s in [Pending, Mounting, Starting, Running, Stopping] {
            assert!(s.may_become(Failed));
        }
        assert!(!Running.may_become(Mounting));
        assert!(!Pending.may_become(Running));
        assert!(!Stopped.may_become(Running));
        assert!(!Failed.may_become(Stopped));
    }
}
