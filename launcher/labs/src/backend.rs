//! The one trait every datalab backend keeps: start a lab from its [`LabSpec`] (its events follow
//! on the handle, PENDING to STOPPED or FAILED), and through its [`LabTable`]: status, events
//! (past and live), logs (tail and follow), stop (with a reason), notices. The local backend
//! ([`crate::LocalBackend`]) runs a lab as a child process of colo; the Kubernetes one
//! ([`crate::kube::KubeBackend`]) as a Pod. What runs above them (colo's keeper, proxy, GraphQL)
//! sees only this trait.

use crate::book::{LabHandle, LabTable};
use crate::error::Result;
use crate::http::Endpoint;
use crate::plan::LabSpec;

pub trait LabBackend: Send + Sync {
    /// Starts the lab `spec` describes; its events follow on the handle. A spec that breaks a
    /// rule is refused here (nothing starts); anything that fails later is a FAILED event with
    /// the reason.
    fn start(&self, spec: LabSpec) -> Result<LabHandle>;

    /// The backend's labs: status, events, logs, stop.
    fn labs(&self) -> &LabTable;

    /// Where the lab's web server answers now (`None`: not running, or no web interface).
    fn endpoint(&self, id: &str) -> Option<Endpoint>;

    /// How a lab's web server should listen (`home`: the lab's own folder): the local backend
    /// uses a socket there; in a Pod it is a port of the Pod.
    fn web_listen(&self, home: &std::path::Path) -> Endpoint;
}
