//! The lab's first process, run by `unshare --mount` in a mount namespace of its own: it mounts
//! a fresh tmpfs at the mount point (so the lab sees no volume it was not launched with), binds
//! each volume's folder under it (read-only grants remounted read-only, so even root inside
//! could not write), joins the lab's cgroups, and becomes the tool through `setpriv` — the user's
//! uid and gid, no supplementary groups, no capabilities, SIGKILL when colo dies — with only the
//! environment the spec gives. Each step is reported in the status file (`mounted`, `exec`, or
//! `error: …`), which is how colo tells a failed mount from a failing tool.
//!
//! colo runs it as `colo lab-init PLAN.json`; the crate's tests as the `colo-lab-init` binary.

use crate::error::{LabError, Result};
use crate::plan::InitPlan;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

fn run(step: &'static str, lab: &str, cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| LabError::Step {
        lab: lab.to_string(),
        step,
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Step {
            lab: lab.to_string(),
            step,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn report(plan: &InitPlan, text: &str) {
    let _ = std::fs::write(&plan.status_file, text);
}

/// Sets the lab up and becomes its tool; returns only on failure (also reported).
pub fn run_plan(plan_file: &Path) -> LabError {
    let plan: InitPlan = match std::fs::read(plan_file)
        .map_err(LabError::io(plan_file))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| LabError::Io {
                path: plan_file.to_path_buf(),
                detail: e.to_string(),
            })
        }) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let err = match set_up(&plan) {
        Ok(()) => {
            report(&plan, "exec");
            let mut tool = Command::new("setpriv");
            tool.arg(format!("--reuid={}", plan.uid))
                .arg(format!("--regid={}", plan.gid))
                .args([
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--pdeathsig=KILL",
                    "--",
                ])
                .args(&plan.command)
                .env_clear()
                .envs(plan.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&plan.mount_point);
            let e = tool.exec();
            LabError::Step {
                lab: plan.lab.clone(),
                step: "starting the tool",
                detail: e.to_string(),
            }
        }
        Err(e) => e,
    };
    report(&plan, &format!("error: {err}"));
    err
}

fn set_up(plan: &InitPlan) -> Result<()> {
    let lab = plan.lab.as_str();
    let at = &plan.mount_point;
    std::fs::create_dir_all(at).map_err(LabError::io(at))?;
    // The new /media/data is assembled aside and moved into place last: the volumes' sources may
    // lie under the mount point itself (colo's own mount is at /media/data by default), which the
    // new tmpfs would hide.
    let stage = std::env::temp_dir().join(format!("colo-lab-stage-{lab}"));
    std::fs::create_dir_all(&stage).map_err(LabError::io(&stage))?;
    run(
        "mounting the lab's /media/data",
        lab,
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755,size=1m", "colo-lab"])
            .arg(&stage),
    )?;
    for v in &plan.volumes {
        let fail = |detail: String| LabError::Volume {
            lab: lab.to_string(),
            volume: v.name.clone(),
            detail,
        };
        if !v.source.is_dir() {
            return Err(fail(format!("{} is not a folder here", v.source.display())));
        }
        let target = stage.join(&v.name);
        std::fs::create_dir(&target).map_err(|e| fail(e.to_string()))?;
        run(
            "binding a volume",
            lab,
            Command::new("mount")
                .arg("--bind")
                .arg(&v.source)
                .arg(&target),
        )
        .map_err(|e| fail(e.to_string()))?;
        if v.read_only {
            run(
                "making a volume read-only",
                lab,
                Command::new("mount")
                    .args(["-o", "remount,bind,ro"])
                    .arg(&target),
            )
            .map_err(|e| fail(e.to_string()))?;
        }
    }
    run(
        "moving the lab's /media/data into place",
        lab,
        Command::new("mount").arg("--move").arg(&stage).arg(at),
    )?;
    let _ = std::fs::remove_dir(&stage);
    // The tmpfs holding the mount points: read-only too, so the lab cannot add folders beside
    // its volumes (they would vanish with the lab).
    run(
        "sealing the lab's /media/data",
        lab,
        Command::new("mount").args(["-o", "remount,ro"]).arg(at),
    )?;
    let me = std::process::id().to_string();
    for procs in &plan.cgroup_procs {
        std::fs::write(procs, &me).map_err(LabError::io(procs))?;
    }
    report(plan, "mounted");
    Ok(())
}
