//! The Kubernetes backend: a lab is a Pod ([`super::objects`]) in its user's namespace, followed
//! by a watch on that one Pod (kube-runtime's watcher: a list, then a watch that resumes from
//! the last resource version and re-lists with backoff when the connection drops — never a poll),
//! its states mapped by [`super::objects::state_of`]; its log streamed from the API into the same
//! `<dir>/<lab>/log` file the local backend writes, so tail and follow work alike (a dropped log
//! stream is reopened and what was already written skipped).
//!
//! A lab that is not RUNNING within the start limit (unschedulable, an image that never comes, a
//! server that never listens) FAILS with the last thing the cluster said. A lab that ends
//! has its Pod and Secret deleted. After a restart of colo, labs recorded as running are stopped
//! (their Pods deleted) and recorded STOPPED, as the local backend does.

use super::objects::{self, KubeSettings};
use crate::backend::LabBackend;
use crate::book::{Lab, LabHandle, LabTable};
use crate::error::{LabError, Result};
use crate::http::Endpoint;
use crate::lifecycle::LabState;
use crate::plan::LabSpec;
use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Where a lab's Pod is, written beside its events (`pod.json`) for a restarted colo.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PodAt {
    namespace: String,
    name: String,
}

pub struct KubeBackend {
    client: kube::Client,
    settings: KubeSettings,
    mount_point: String,
    table: LabTable,
    start_limit: Duration,
}

/// The port a web lab's server listens on in its Pod.
pub const WEB_PORT: u16 = 8888;

impl KubeBackend {
    /// A backend creating labs through `client`, keeping their files under `dir`, volumes at
    /// `mount_point` in each Pod; a lab not RUNNING within `start_limit` FAILS.
    pub fn new(
        client: kube::Client,
        settings: KubeSettings,
        dir: &Path,
        mount_point: &Path,
        start_limit: Duration,
    ) -> Result<KubeBackend> {
        Ok(KubeBackend {
            client,
            settings,
            mount_point: mount_point.display().to_string(),
            table: LabTable::new(dir)?,
            start_limit,
        })
    }

    /// A backend for the cluster colo runs in (its Pod's service account) or, outside one, the
    /// cluster `KUBECONFIG` (else `~/.kube/config`) names.
    pub async fn connect(
        settings: KubeSettings,
        dir: &Path,
        mount_point: &Path,
        start_limit: Duration,
    ) -> Result<KubeBackend> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| LabError::Step {
                lab: String::new(),
                step: "connecting to Kubernetes (in-cluster, or KUBECONFIG)",
                detail: e.to_string(),
            })?;
        KubeBackend::new(client, settings, dir, mount_point, start_limit)
    }

    /// After a restart of colo: labs whose last recorded state is not final have their Pods and
    /// Secrets deleted and are recorded STOPPED. Returns their ids.
    pub async fn recover(&self) -> Result<Vec<String>> {
        let mut recovered = Vec::new();
        for (id, lab) in self.table.unfinished()? {
            if let Ok(text) = std::fs::read_to_string(lab.dir.join("pod.json"))
                && let Ok(at) = serde_json::from_str::<PodAt>(&text)
            {
                delete_lab_objects(&self.client, &at).await;
            }
            self.table.recovered(&id, lab, "the lab's Pod is deleted");
            recovered.push(id);
        }
        Ok(recovered)
    }
}

impl LabBackend for KubeBackend {
    fn start(&self, spec: LabSpec) -> Result<LabHandle> {
        let image = self
            .settings
            .images
            .get(&spec.image)
            .cloned()
            .ok_or_else(|| LabError::BadSpec {
                lab: spec.id.clone(),
                detail: format!(
                    "no container image for datalab image '{}' (add it to [labs.kubernetes.images])",
                    spec.image
                ),
            })?;
        let (lab, handle) = self.table.open(&spec)?;
        let run = PodRun {
            client: self.client.clone(),
            at: PodAt {
                namespace: objects::namespace_of(&self.settings.namespace_prefix, &spec.user),
                name: objects::pod_name(&spec.id),
            },
            image,
            settings: self.settings.clone(),
            mount_point: self.mount_point.clone(),
            start_limit: self.start_limit,
            spec,
            lab,
        };
        tokio::spawn(run.go());
        Ok(handle)
    }

    fn labs(&self) -> &LabTable {
        &self.table
    }

    fn endpoint(&self, id: &str) -> Option<Endpoint> {
        let lab = self.table.lab(id).ok()?;
        (lab.state() == Some(LabState::Running))
            .then(|| lab.endpoint.lock().ok()?.clone())
            .flatten()
    }

    fn web_listen(&self, _home: &Path) -> Endpoint {
        Endpoint::Tcp(WEB_PORT)
    }
}

/// Deletes a lab's Pod and Secret (either may be gone already).
async fn delete_lab_objects(client: &kube::Client, at: &PodAt) {
    let params = DeleteParams {
        grace_period_seconds: Some(10),
        ..Default::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &at.namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &at.namespace);
    for result in [
        pods.delete(&at.name, &params).await.map(|_| ()),
        secrets.delete(&at.name, &params).await.map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => tracing::warn!(pod = %at.name, error = %e, "deleting a lab's objects"),
        }
    }
}

/// Creates `object`; one that already exists is replaced when `replace` (a Secret left by an
/// earlier run), else refused.
async fn create<K>(api: &Api<K>, name: &str, object: &K, replace: bool) -> kube::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() && replace => {
            api.delete(name, &DeleteParams::default()).await?;
            api.create(&PostParams::default(), object).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// One lab from its Pod's creation to its end.
struct PodRun {
    client: kube::Client,
    at: PodAt,
    image: String,
    settings: KubeSettings,
    mount_point: String,
    start_limit: Duration,
    spec: LabSpec,
    lab: Arc<Lab>,
}

impl PodRun {
    async fn go(self) {
        let id = self.spec.id.clone();
        if let Err(why) = self.create().await {
            self.lab.emit(&id, LabState::Failed, why);
            delete_lab_objects(&self.client, &self.at).await;
            return;
        }
        let (state, reason) = self.follow().await;
        delete_lab_objects(&self.client, &self.at).await;
        if let Ok(mut at) = self.lab.endpoint.lock() {
            *at = None;
        }
        self.lab.emit(&id, state, reason);
    }

    /// The namespace (if new), the Secret and the Pod.
    async fn create(&self) -> std::result::Result<(), String> {
        let ns = &self.at.namespace;
        let said = |what: &str| {
            let what = what.to_string();
            move |e: kube::Error| format!("{what}: {e}")
        };
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces
            .get_opt(ns)
            .await
            .map_err(said("reading the user's namespace"))?
            .is_none()
        {
            match namespaces
                .create(
                    &PostParams::default(),
                    &objects::namespace(ns, &self.spec.user),
                )
                .await
            {
                Ok(_) => {}
                // Another lab of the same user created it meanwhile.
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => return Err(said("creating the user's namespace")(e)),
            }
        }
        if let Some(secret) = objects::secret(&self.spec, ns) {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            create(&secrets, &self.at.name, &secret, true)
                .await
                .map_err(said("creating the lab's Secret"))?;
        }
        let pod = objects::pod(
            &self.spec,
            &self.image,
            ns,
            &self.mount_point,
            &self.settings,
        );
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        create(&pods, &self.at.name, &pod, false)
            .await
            .map_err(said("creating the lab's Pod"))?;
        if let Ok(text) = serde_json::to_string(&self.at) {
            let _ = std::fs::write(self.lab.dir.join("pod.json"), text);
        }
        Ok(())
    }

    /// Follows the Pod to its end: the state it ended in and why.
    async fn follow(&self) -> (LabState, String) {
        let id = self.spec.id.as_str();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.at.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.at.name));
        let mut changes = watcher(pods.clone(), config).default_backoff().boxed();
        let deadline = tokio::time::sleep(self.start_limit);
        tokio::pin!(deadline);
        let mut said = String::new();
        let mut stopping = false;
        let mut listed = false;
        let mut log: Option<tokio::task::JoinHandle<()>> = None;
        let outcome = loop {
            tokio::select! {
                change = changes.next() => {
                    let pod = match change {
                        None => break (LabState::Failed, "the watch on its Pod ended".into()),
                        Some(Err(e)) => {
                            tracing::debug!(lab = id, error = %e, "watch on a lab's Pod (resuming)");
                            continue;
                        }
                        Some(Ok(watcher::Event::Init)) => { listed = false; continue; }
                        Some(Ok(watcher::Event::InitDone)) if listed => continue,
                        // Re-listed without it (deleted while the watch was down), or deleted.
                        Some(Ok(watcher::Event::InitDone | watcher::Event::Delete(_))) => {
                            break self.gone(stopping);
                        }
                        Some(Ok(watcher::Event::InitApply(pod))) => { listed = true; pod }
                        Some(Ok(watcher::Event::Apply(pod))) => pod,
                    };
                    let Some((state, reason)) = objects::state_of(&pod, self.spec.resources.memory_bytes) else {
                        continue;
                    };
                    if state == LabState::Running {
                        let port = match self.spec.ready.as_ref().map(|r| &r.endpoint) {
                            Some(Endpoint::Tcp(port)) => Some(*port),
                            _ => None,
                        };
                        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
                        if let (Some(port), Some(ip), Ok(mut at)) = (port, ip, self.lab.endpoint.lock()) {
                            *at = Some(Endpoint::Addr(std::net::SocketAddr::new(ip, port)));
                        }
                    }
                    if matches!(state, LabState::Starting | LabState::Running) || state.is_final() {
                        log.get_or_insert_with(|| tokio::spawn(stream_log(pods.clone(), self.at.name.clone(), self.lab.dir.join("log"))));
                    }
                    if state.is_final() {
                        break (state, reason);
                    }
                    // Each step once; a new word from the cluster in the same step is a notice.
                    if self.lab.state() == Some(state) {
                        if reason != said {
                            self.lab.record(id, None, reason.clone());
                        }
                    } else {
                        // Steps the Pod passed between two looks are still steps.
                        for before in [LabState::Mounting, LabState::Starting] {
                            if state_rank(before) < state_rank(state) && self.lab.state().is_some_and(|now| state_rank(now) < state_rank(before)) {
                                self.lab.emit(id, before, reason.clone());
                            }
                        }
                        self.lab.emit(id, state, reason.clone());
                    }
                    said = reason;
                }
                _ = self.lab.stop.notified(), if !stopping => {
                    stopping = true;
                    let why = self.lab.stop_reason().unwrap_or_else(|| "stop requested".into());
                    self.lab.emit(id, LabState::Stopping, why);
                    let params = DeleteParams { grace_period_seconds: Some(10), ..Default::default() };
                    if let Err(e) = pods.delete(&self.at.name, &params).await {
                        let gone = matches!(&e, kube::Error::Api(s) if s.is_not_found());
                        if gone {
                            break self.gone(true);
                        }
                        tracing::warn!(lab = id, error = %e, "deleting a lab's Pod");
                    }
                }
                _ = &mut deadline, if self.lab.state().is_some_and(|s| state_rank(s) < state_rank(LabState::Running)) && !stopping => {
                    break (LabState::Failed, format!(
                        "not running within {} s; the cluster said: {}",
                        self.start_limit.as_secs(),
                        if said.is_empty() { "nothing" } else { &said }
                    ));
                }
            }
        };
        // What the tool wrote last is kept: the log stream ends with the container.
        if let Some(log) = log {
            let _ = tokio::time::timeout(Duration::from_secs(5), log).await;
        }
        outcome
    }

    fn gone(&self, stopping: bool) -> (LabState, String) {
        if stopping {
            let why = self
                .lab
                .stop_reason()
                .unwrap_or_else(|| "stopped on request".into());
            (LabState::Stopped, why)
        } else {
            (
                LabState::Failed,
                "its Pod was deleted by someone other than colo".into(),
            )
        }
    }
}

fn state_rank(state: LabState) -> u8 {
    match state {
        LabState::Pending => 0,
        LabState::Mounting => 1,
        LabState::Starting => 2,
        LabState::Running => 3,
        LabState::Stopping => 4,
        LabState::Stopped | LabState::Failed => 5,
    }
}

/// The lab's log from the API into `path`, until the container ends; a stream that drops is
/// reopened (up to a few times) and the bytes already written are skipped.
async fn stream_log(pods: Api<Pod>, name: String, path: std::path::PathBuf) {
    let params = LogParams {
        container: Some(objects::CONTAINER.into()),
        follow: true,
        ..Default::default()
    };
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(log = %path.display(), error = %e, "a lab's log file");
            return;
        }
    };
    let mut written: u64 = 0;
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(4))).await;
        }
        let mut reader = match pods.log_stream(&name, &params).await {
            Ok(r) => Box::pin(r),
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, "a lab's log stream");
                continue;
            }
        };
        let mut seen: u64 = 0;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(_) => break,
            };
            let skip = written.saturating_sub(seen).min(n as u64) as usize;
            seen += n as u64;
            if skip < n {
                if file.write_all(&buf[skip..n]).is_err() {
                    return;
                }
                written += (n - skip) as u64;
            }
        }
    }
}
