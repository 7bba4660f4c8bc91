//! Datalabs: a tool (JupyterLab, a headless runner) started beside the archive with the user's
//! chosen volumes at `/media/data/<volume>`, its own resource limits and its own logs, moving
//! through one lifecycle whose every step is an event with a reason.
//!
//! Layers: [`lifecycle`] (states and events), [`plan`] (what one launch needs, checked before
//! anything starts), [`cgroup`] (CPU and memory limits, and whether the kernel's OOM killer
//! struck), [`init`] (the steps taken inside the lab's mount namespace, then `exec` of the tool)
//! and the backends behind one trait ([`backend::LabBackend`]): [`local`] (the embedded default:
//! one child process of colo per lab) and [`kube`] (one Pod per lab, for a cluster).
//!
//! Nothing here uses `unsafe`: namespaces, mounts, the user switch and the parent-death signal
//! come from util-linux (`unshare`, `mount`, `setpriv`), which every Debian has.

pub mod backend;
pub(crate) mod book;
pub mod cgroup;
pub mod error;
pub mod http;
pub mod init;
pub mod keeper;
pub mod kube;
pub mod lifecycle;
pub mod local;
pub mod plan;
pub mod portal;

pub use backend::LabBackend;
pub use book::{LabHandle, LabTable};
pub use error::{LabError, Result};
pub use lifecycle::{LabEvent, LabState};
pub use local::LocalBackend;
pub use plan::{LabSpec, LabVolume, ReadyProbe, Resources};
