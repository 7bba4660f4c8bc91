//! The datalabs of `colo up`: the catalog's lab records ([`colo_catalog::labs`]) run by the local
//! backend ([`colo_labs::LocalBackend`]), each volume bound from its user's folder in this colo's
//! mount (`<mount root>/.users/<user>/<view>`), so a lab reads through the same views, grants
//! and block cache as everything else. Lab files (plan, log, events) live under
//! `$COLO_HOME/labs/<id>/`; at start, labs a previous colo left running are stopped and said so.

use anyhow::{Context, Result};
use colo_catalog::graphql_labs::{Datalabs, LabStep};
use colo_catalog::labs::LabRecord;
use colo_labs::{LabSpec, LabVolume, LocalBackend, Resources};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where volumes appear inside a lab.
pub const MEDIA_DATA: &str = "/media/data";

pub struct LocalLabs {
    backend: LocalBackend,
    users_root: PathBuf,
}

impl LocalLabs {
    /// The launcher of this colo home, for a mount at `mount_root`.
    pub async fn open(home: &Path, mount_root: &Path) -> Result<Arc<LocalLabs>> {
        let exe = std::env::current_exe().context("finding colo's own binary")?;
        let backend = LocalBackend::new(
            &home.join("labs"),
            vec![exe.into_os_string(), "lab-init".into()],
            Path::new(MEDIA_DATA),
        )?;
        let stopped = backend.recover().await?;
        if !stopped.is_empty() {
            eprintln!(
                "colo: {} datalab(s) left running by the last colo were stopped: {}",
                stopped.len(),
                stopped.join(", ")
            );
        }
        if backend.hierarchy().is_none() {
            eprintln!(
                "colo: no cgroup hierarchy with cpu and memory here: datalabs run without CPU and memory limits"
            );
        }
        Ok(Arc::new(LocalLabs {
            backend,
            users_root: mount_root.join(colo_vfs::views::USERS_DIR),
        }))
    }

    fn spec(&self, lab: &LabRecord) -> LabSpec {
        let plan = &lab.plan;
        LabSpec {
            id: lab.id.clone(),
            user: plan.user.clone(),
            uid: plan.uid,
            gid: plan.uid,
            command: plan.command.clone(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("HOME".into(), "/tmp".into()),
                ("USER".into(), plan.user.clone()),
                ("LANG".into(), "C.UTF-8".into()),
                ("COLO_LAB".into(), lab.id.clone()),
                ("COLO_DATA".into(), MEDIA_DATA.into()),
            ],
            volumes: plan
                .volumes
                .iter()
                .map(|v| LabVolume {
                    name: v.view.clone(),
                    source: self.users_root.join(&plan.user).join(&v.view),
                    read_only: v.read_only,
                })
                .collect(),
            resources: Resources {
                cpu_millis: plan.cpu_millis,
                memory_bytes: plan.memory_bytes,
            },
        }
    }
}

impl Datalabs for LocalLabs {
    fn start(&self, lab: &LabRecord) -> std::result::Result<(), String> {
        self.backend
            .start(self.spec(lab))
            .map(|_events| ())
            .map_err(|e| e.to_string())
    }

    fn stop(&self, lab_id: &str) -> std::result::Result<(), String> {
        self.backend.stop(lab_id).map_err(|e| e.to_string())
    }

    fn steps(&self, lab_id: &str) -> Vec<LabStep> {
        self.backend
            .events(lab_id)
            .unwrap_or_default()
            .into_iter()
            .map(|e| LabStep {
                state: e.state.as_str().to_string(),
                reason: e.reason,
                at_secs: e.at_secs,
            })
            .collect()
    }

    fn log_tail(&self, lab_id: &str, bytes: u64) -> std::result::Result<String, String> {
        self.backend
            .log_tail(lab_id, bytes)
            .map_err(|e| e.to_string())
    }
}
