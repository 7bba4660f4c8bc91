//! CPU and memory limits for one lab, written by colo into the kernel's cgroups — v2 where the
//! unified hierarchy has the `cpu` and `memory` controllers, v1 (`memory/`, `cpu/`) otherwise.
//! Machines without systemd as PID 1 (this one) have no `systemd-run`; colo manages a `colo/`
//! group of its own under each hierarchy, one child per lab.
//!
//! Memory: the limit and no swap beyond it, so a lab over its limit is OOM-killed rather than
//! slowed to a crawl; whether that happened is read back (`oom_kill` in `memory.events` or
//! `memory.oom_control`) so the lab's end says so. CPU: a CFS quota of `cpu_millis` per period.
//! Removal kills whatever is left in the group, then removes it.

use crate::error::{LabError, Result};
use crate::plan::Resources;
use std::path::{Path, PathBuf};

const PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy at this root, with `cpu` and `memory` available.
    V2(PathBuf),
    /// The v1 `memory` and `cpu` hierarchies.
    V1 { memory: PathBuf, cpu: PathBuf },
}

impl Hierarchy {
    /// The hierarchy this machine offers under `/sys/fs/cgroup`.
    pub fn detect() -> Option<Hierarchy> {
        Self::detect_under(Path::new("/sys/fs/cgroup"))
    }

    pub fn detect_under(root: &Path) -> Option<Hierarchy> {
        for unified in [root.to_path_buf(), root.join("unified")] {
            let controllers =
                std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if has("cpu") && has("memory") {
                return Some(Hierarchy::V2(unified));
            }
        }
        let (memory, cpu) = (root.join("memory"), root.join("cpu"));
        (memory.join("memory.limit_in_bytes").exists() && cpu.join("cpu.cfs_quota_us").exists())
            .then_some(Hierarchy::V1 { memory, cpu })
    }

    pub fn version(&self) -> u8 {
        match self {
            Hierarchy::V2(_) => 2,
            Hierarchy::V1 { .. } => 1,
        }
    }
}

/// One lab's group(s).
#[derive(Debug, Clone)]
pub struct LabCgroup {
    hierarchy: Hierarchy,
    /// The lab's directory in each hierarchy (one for v2, memory then cpu for v1).
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(LabError::io(path))
}

impl LabCgroup {
    /// Creates the group of lab `lab` with `limits`.
    pub fn create(hierarchy: &Hierarchy, lab: &str, limits: Resources) -> Result<LabCgroup> {
        let quota = u64::from(limits.cpu_millis) * PERIOD_US / 1000;
        let memory = limits.memory_bytes.to_string();
        let dirs = match hierarchy {
            Hierarchy::V2(root) => {
                let colo = root.join("colo");
                std::fs::create_dir_all(&colo).map_err(LabError::io(&colo))?;
                for dir in [root.as_path(), colo.as_path()] {
                    // A parent hands its controllers to its children; it may have them already.
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory");
                }
                let dir = colo.join(lab);
                std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
                write(&dir.join("memory.max"), &memory)?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
                vec![dir]
            }
            Hierarchy::V1 { memory: m, cpu } => {
                let mdir = m.join("colo").join(lab);
                let cdir = cpu.join("colo").join(lab);
                for d in [&mdir, &cdir] {
                    std::fs::create_dir_all(d).map_err(LabError::io(d))?;
                }
                write(&mdir.join("memory.limit_in_bytes"), &memory)?;
                // Without swap accounting this file is absent; the limit alone then holds RAM.
                let _ = std::fs::write(mdir.join("memory.memsw.limit_in_bytes"), &memory);
                write(&cdir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&cdir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                vec![mdir, cdir]
            }
        };
        Ok(LabCgroup {
            hierarchy: hierarchy.clone(),
            dirs,
        })
    }

    /// The group of lab `lab` if it exists (after a restart of colo).
    pub fn existing(hierarchy: &Hierarchy, lab: &str) -> Option<LabCgroup> {
        let dirs: Vec<PathBuf> = match hierarchy {
            Hierarchy::V2(root) => vec![root.join("colo").join(lab)],
            Hierarchy::V1 { memory, cpu } => {
                vec![memory.join("colo").join(lab), cpu.join("colo").join(lab)]
            }
        };
        dirs.iter().any(|d| d.is_dir()).then(|| LabCgroup {
            hierarchy: hierarchy.clone(),
            dirs,
        })
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The processes in the group.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Whether the kernel's OOM killer killed a process of the group.
    pub fn oom_killed(&self) -> bool {
        let file = match &self.hierarchy {
            Hierarchy::V2(_) => self.dirs[0].join("memory.events"),
            Hierarchy::V1 { .. } => self.dirs[0].join("memory.oom_control"),
        };
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    }

    /// The most memory the group used (v1: its high-water mark; v2: `memory.peak` where the
    /// kernel has it).
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let file = match &self.hierarchy {
            Hierarchy::V2(_) => self.dirs[0].join("memory.peak"),
            Hierarchy::V1 { .. } => self.dirs[0].join("memory.max_usage_in_bytes"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// How many CPU periods the group was held back in for reaching its quota.
    pub fn throttled_periods(&self) -> Option<u64> {
        let dir = self.dirs.last()?;
        std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Kills every process left in the group, then removes it.
    pub async fn remove(&self) {
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            if let Hierarchy::V2(_) = self.hierarchy {
                let _ = std::fs::write(self.dirs[0].join("cgroup.kill"), "1");
            }
            let _ = tokio::process::Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stderr(std::process::Stdio::null())
                .status()
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for d in &self.dirs {
            if let Err(e) = std::fs::remove_dir(d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(group = %d.display(), error = %e, "a lab's cgroup was not removed");
            }
        }
    }
}
