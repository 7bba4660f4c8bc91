//! What one launch needs ([`LabSpec`], from the caller) and what the lab's first process needs to
//! set itself up inside its namespace ([`InitPlan`], written as JSON beside the lab's log). A
//! spec is checked whole before anything starts, so a bad one fails at PENDING with a reason.

use crate::error::{LabError, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A folder the lab sees at `<mount point>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabVolume {
    pub name: String,
    /// The folder on this machine (a user's view in colo's FUSE mount, or any folder).
    pub source: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in thousandths of a core (1500 = one and a half cores).
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

/// The least memory a lab may be given (below it the tool's own start-up is OOM-killed).
pub const MIN_MEMORY_BYTES: u64 = 16 << 20;

/// A lab with a web interface is RUNNING only once its server answers `GET path` at `endpoint`
/// (with `headers`); one that does not within `timeout_secs` FAILS, saying so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyProbe {
    pub endpoint: crate::http::Endpoint,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Lower-case letters, digits and '-', 1-64 characters.
    pub id: String,
    /// The user the lab belongs to, and the account it runs as (never root).
    pub user: String,
    /// The catalogue's datalab image (`jupyterlab`): the Kubernetes backend runs the container
    /// image configured for it; the local backend runs `command` on this machine.
    pub image: String,
    pub uid: u32,
    pub gid: u32,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The lab's whole environment (nothing of colo's is passed on).
    pub env: Vec<(String, String)>,
    pub volumes: Vec<LabVolume>,
    pub resources: Resources,
    pub ready: Option<ReadyProbe>,
}

impl LabSpec {
    /// Every rule a spec must keep, each refusal naming what to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| LabError::BadSpec {
            lab: self.id.chars().take(64).collect(),
            detail,
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(bad(
                "a lab id is 1-64 lower-case letters, digits or '-'".into()
            ));
        }
        if self.uid == 0 || self.gid == 0 {
            return Err(bad(
                "a lab never runs as root: give the user's own uid and gid".into(),
            ));
        }
        if self.command.first().is_none_or(|c| c.is_empty()) {
            return Err(bad("no command to run".into()));
        }
        if self.resources.memory_bytes < MIN_MEMORY_BYTES {
            return Err(bad(format!(
                "memory {} bytes is below the least a lab may have ({} MiB)",
                self.resources.memory_bytes,
                MIN_MEMORY_BYTES >> 20
            )));
        }
        if self.resources.cpu_millis < 10 {
            return Err(bad("cpu below 0.01 core".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.volumes {
            let name_ok = !v.name.is_empty()
                && v.name.len() <= 128
                && !v.name.starts_with('.')
                && !v.name.contains(['/', '\0']);
            if !name_ok {
                return Err(bad(format!(
                    "volume name '{}': a folder name, not starting with '.'",
                    v.name.chars().take(128).collect::<String>()
                )));
            }
            if !seen.insert(v.name.as_str()) {
                return Err(bad(format!("volume '{}' given twice", v.name)));
            }
            if !v.source.is_absolute() {
                return Err(bad(format!(
                    "volume '{}': source {} is not an absolute path",
                    v.name,
                    v.source.display()
                )));
            }
        }
        Ok(())
    }
}

/// What the lab's first process does inside its new mount namespace before it becomes the tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitPlan {
    pub lab: String,
    /// Where the volumes appear (`/media/data`): a fresh tmpfs in the lab's namespace only.
    pub mount_point: PathBuf,
    pub volumes: Vec<LabVolume>,
    pub uid: u32,
    pub gid: u32,
    /// `cgroup.procs` files the process joins (its children inherit them).
    pub cgroup_procs: Vec<PathBuf>,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where it reports its steps (`mounted`, `exec`, or `error: …`).
    pub status_file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LabSpec {
        LabSpec {
            id: "lab-1".into(),
            user: "alice".into(),
            image: "headless-python".into(),
            uid: 1000,
            gid: 1000,
            command: vec!["true".into()],
            env: vec![],
            volumes: vec![LabVolume {
                name: "home".into(),
                source: "/srv/home".into(),
                read_only: false,
            }],
            resources: Resources {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
            },
            ready: None,
        }
    }

    #[test]
    fn a_spec_is_refused_with_what_to_fix() {
        assert!(spec().validate().is_ok());
        type Change = Box<dyn Fn(&mut LabSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.id = "Lab/1".into()), "lab id"),
            (Box::new(|s| s.uid = 0), "never runs as root"),
            (Box::new(|s| s.command.clear()), "no command"),
            (
                Box::new(|s| s.resources.memory_bytes = 1 << 20),
                "below the least",
            ),
            (
                Box::new(|s| s.volumes[0].name = "../etc".into()),
                "volume name",
            ),
            (
                Box::new(|s| s.volumes[0].name = ".hidden".into()),
                "volume name",
            ),
            (
                Box::new(|s| s.volumes[0].source = "rel/path".into()),
                "absolute",
            ),
            (
                Box::new(|s| s.volumes.push(s.volumes[0].clone())),
                "given twice",
            ),
        ];
        for (change, says) in cases {
            let mut s = spec();
            change(&mut s);
            let err = s.validate().expect_err(says).to_string();
            assert!(err.contains(says), "{err} (wanted: {says})");
        }
    }
}
