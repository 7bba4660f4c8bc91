//! The datalabs of `colo up`: the catalog's lab records ([`colo_catalog::labs`]) run by the local
//! backend ([`colo_labs::LocalBackend`]), each volume bound from its user's folder in this colo's
//! mount (`<mount root>/.users/<user>/<view>`), so a lab reads through the same views, grants
//! and block cache as everything else. Lab files (plan, log, events) live under
//! `$COLO_HOME/labs/<id>/`; at start, labs a previous colo left running are stopped and said so.
//!
//! Labs with a web interface (`interface = "jupyter"`: JupyterLab from `$COLO_LAB_VENV`, default
//! `/opt/colo/lab-venv`, made by `scripts/setup.sh`) listen on a Unix socket in the lab's own
//! 0700 home folder (labs share this machine's network, so a port of 127.0.0.1 would be open to
//! every other lab; the socket is reachable by the lab's account and colo only) under
//! `/labs/<id>/`, with a private secret given in their environment (`COLO_LAB_SECRET`: not on the
//! command line, where `ps` would show it to every account) that the proxy adds to each request
//! and that Jupyter checks ([`JUPYTER_CONFIG`]; the page Jupyter serves carries no token, so users
//! never see it); they are RUNNING once they answer.
//! [`proxy`] serves them: every request is checked against the catalog (owner, a share, an
//! admin) and forwarded with the lab's token, which users never see.

use anyhow::{Context, Result};
use colo_catalog::graphql_labs::{Datalabs, LabStep, LabStepStream};
use colo_catalog::labs::LabRecord;
use colo_labs::http::{Endpoint, Upstream};
use colo_labs::keeper::{KeepPolicy, Keeper, keep};
use colo_labs::{LabBackend, LabSpec, LabVolume, LocalBackend, ReadyProbe, Resources};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where volumes appear inside a lab.
pub const MEDIA_DATA: &str = "/media/data";

/// Where JupyterLab is installed for labs (readable by every account).
pub fn lab_venv() -> PathBuf {
    std::env::var_os("COLO_LAB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/colo/lab-venv"))
}

/// The Jupyter settings of a JupyterLab lab: it trusts only requests carrying its secret in
/// [`LAB_SECRET_HEADER`] (added by the proxy), and its page carries no token.
const JUPYTER_CONFIG: &str = include_str!("lab/jupyter_config.py");
const LAB_SECRET_HEADER: &str = "x-colo-lab-secret";

/// How long a web lab may take to answer before it FAILS.
const READY_TIMEOUT_SECS: u64 = 120;

pub struct LocalLabs {
    backend: Arc<dyn LabBackend>,
    catalog: Arc<colo_catalog::Catalog>,
    /// Running labs' expiries and idle culls.
    keepers: Arc<Mutex<HashMap<String, Keeper>>>,
    users_root: PathBuf,
    venv: PathBuf,
    /// Web labs' servers, by lab id.
    servers: Arc<Mutex<HashMap<String, Upstream>>>,
}

impl LocalLabs {
    /// The launcher of this colo home, for a mount at `mount_root`.
    pub async fn open(
        home: &Path,
        mount_root: &Path,
        catalog: Arc<colo_catalog::Catalog>,
        labs: &crate::config::LabsBackend,
    ) -> Result<Arc<LocalLabs>> {
        let stopped;
        let backend: Arc<dyn LabBackend> = match labs {
            crate::config::LabsBackend::Local => {
                let exe = std::env::current_exe().context("finding colo's own binary")?;
                let backend = LocalBackend::new(
                    &home.join("labs"),
                    vec![exe.into_os_string(), "lab-init".into()],
                    Path::new(MEDIA_DATA),
                )?;
                stopped = backend.recover().await?;
                // No lab of this home runs now: home folders its labs left (a colo stopped while
                // they ended) go.
                if let Ok(entries) = std::fs::read_dir(home.join("labs")) {
                    for e in entries.flatten() {
                        let _ = std::fs::remove_dir_all(home_of(&e.file_name().to_string_lossy()));
                    }
                }
                if backend.hierarchy().is_none() {
                    eprintln!(
                        "colo: no cgroup hierarchy with cpu and memory here: datalabs run without CPU and memory limits"
                    );
                }
                Arc::new(backend)
            }
            crate::config::LabsBackend::Kubernetes {
                settings,
                start_limit,
            } => {
                let backend = colo_labs::kube::KubeBackend::connect(
                    settings.clone(),
                    &home.join("kube-labs"),
                    Path::new(MEDIA_DATA),
                    *start_limit,
                )
                .await?;
                stopped = backend.recover().await?;
                Arc::new(backend)
            }
        };
        if !stopped.is_empty() {
            eprintln!(
                "colo: {} datalab(s) left running by the last colo were stopped: {}",
                stopped.len(),
                stopped.join(", ")
            );
        }
        Ok(Arc::new(LocalLabs {
            backend,
            catalog,
            keepers: Arc::new(Mutex::new(HashMap::new())),
            users_root: mount_root.join(colo_vfs::views::USERS_DIR),
            venv: lab_venv(),
            servers: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    /// Stops every running lab (colo is stopping), waiting up to `grace` for them to end.
    pub async fn stop_all(&self, grace: std::time::Duration) {
        let running = self.backend.labs().running();
        if running.is_empty() {
            return;
        }
        eprintln!("colo: stopping {} datalab(s)", running.len());
        for id in &running {
            let _ = self.backend.labs().stop_because(id, "colo is stopping");
        }
        let deadline = std::time::Instant::now() + grace;
        while !self.backend.labs().running().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The lab's server, if it is a web lab this colo started.
    pub fn upstream(&self, lab_id: &str) -> Option<Upstream> {
        self.servers.lock().get(lab_id).cloned()
    }

    fn spec(&self, lab: &LabRecord) -> Result<LabSpec> {
        let plan = &lab.plan;
        let home = home_of(&lab.id);
        // Local labs listen on a socket in their home folder on this machine; labs in Pods on a
        // port of the Pod, with the image's own PATH and JupyterLab (whose image carries colo's
        // Jupyter settings: `deploy/kubernetes/images/jupyterlab`).
        let listen = self.backend.web_listen(&home);
        let in_pod = !matches!(listen, Endpoint::Unix(_));
        let mut command = plan.command.clone();
        let mut env = Vec::new();
        if in_pod {
            env.push(("HOME".to_string(), "/tmp".to_string()));
        } else {
            make_home(&home, plan.uid)?;
            env.extend([
                (
                    "PATH".to_string(),
                    format!("{}/bin:/usr/local/bin:/usr/bin:/bin", self.venv.display()),
                ),
                ("HOME".into(), home.display().to_string()),
            ]);
        }
        env.extend([
            ("USER".to_string(), plan.user.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("COLO_LAB".into(), lab.id.clone()),
            ("COLO_DATA".into(), MEDIA_DATA.into()),
        ]);
        let mut ready = None;
        match plan.interface.as_deref() {
            None => {}
            Some("jupyter") => {
                let secret = random_hex(32)?;
                let base = format!("/labs/{}/", lab.id);
                command.push("--no-browser".to_string());
                match &listen {
                    Endpoint::Unix(socket) => {
                        let jupyter = self.venv.join("bin").join("jupyter-lab");
                        anyhow::ensure!(
                            jupyter.exists(),
                            "JupyterLab is not installed at {} (run scripts/setup.sh, or set COLO_LAB_VENV)",
                            jupyter.display()
                        );
                        let config = home.join("colo_jupyter_config.py");
                        std::fs::write(&config, JUPYTER_CONFIG)
                            .with_context(|| format!("writing {}", config.display()))?;
                        std::os::unix::fs::chown(&config, Some(plan.uid), Some(plan.uid))?;
                        command.extend([
                            format!("--ServerApp.sock={}", socket.display()),
                            "--ServerApp.sock_mode=0600".into(),
                            format!("--config={}", config.display()),
                        ]);
                    }
                    Endpoint::Tcp(port) => command.extend([
                        "--ServerApp.ip=0.0.0.0".to_string(),
                        format!("--ServerApp.port={port}"),
                    ]),
                    Endpoint::Addr(addr) => anyhow::bail!("a lab cannot listen on {addr}"),
                }
                command.extend([
                    format!("--ServerApp.base_url={base}"),
                    format!("--ServerApp.root_dir={MEDIA_DATA}"),
                ]);
                env.push(("COLO_LAB_SECRET".into(), secret.clone()));
                ready = Some(ReadyProbe {
                    endpoint: listen.clone(),
                    path: format!("{base}api/status"),
                    headers: vec![(LAB_SECRET_HEADER.into(), secret.clone())],
                    timeout_secs: READY_TIMEOUT_SECS,
                });
                self.servers.lock().insert(
                    lab.id.clone(),
                    Upstream {
                        endpoint: listen,
                        base_path: base.clone(),
                        headers: vec![(
                            axum::http::HeaderName::from_static(LAB_SECRET_HEADER),
                            axum::http::HeaderValue::from_str(&secret)?,
                        )],
                    },
                );
            }
            Some(other) => anyhow::bail!(
                "image '{}': unknown interface '{other}' (colo serves 'jupyter')",
                lab.image
            ),
        }
        Ok(LabSpec {
            id: lab.id.clone(),
            user: plan.user.clone(),
            image: lab.image.clone(),
            uid: plan.uid,
            gid: plan.uid,
            command,
            env,
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
            ready,
        })
    }
}

/// A lab's home folder (outside any user's home: the lab's account must reach it).
fn home_of(lab_id: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/colo-lab-{lab_id}"))
}

/// The lab's own home folder (Jupyter keeps its runtime files there): the user's, 0700.
fn make_home(home: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(home, Some(uid), Some(uid))
        .with_context(|| format!("giving {} to uid {uid}", home.display()))?;
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `/labs/<id>/…`: the lab's web interface, for its owner, the users it is shared with and
/// admins — checked on every request (a revoked share is refused at once). No caller: 401;
/// anyone else, or a lab that does not exist: 403; a lab that is not serving: 503.
pub async fn proxy(
    axum::extract::State((catalog, labs)): axum::extract::State<(
        Arc<colo_catalog::Catalog>,
        Arc<LocalLabs>,
    )>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let id = req
        .uri()
        .path()
        .trim_start_matches("/labs/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let refuse = |status: StatusCode, text: &str| (status, format!("{text}\n")).into_response();
    let caller = match colo_catalog::http::caller_of(&catalog, req.headers()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "log in first (a token or a session)",
            );
        }
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    match catalog.lab_role(&caller, &id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "this lab is not yours nor shared with you",
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.shown_message("the lab proxy"),
            );
        }
    }
    // Where it answers now (a Pod's address is known only once it runs).
    let at = labs.backend.endpoint(&id);
    match (labs.upstream(&id), at) {
        (Some(mut up), Some(at)) => {
            up.endpoint = at;
            colo_labs::http::forward(req, up).await
        }
        _ => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this lab is not serving now (see its state and events)",
        ),
    }
}

fn step_of(event: colo_labs::LabEvent) -> LabStep {
    LabStep {
        state: event.state.as_str().to_string(),
        reason: event.reason,
        at_secs: event.at_secs,
    }
}

impl Datalabs for LocalLabs {
    fn start(&self, lab: &LabRecord) -> std::result::Result<(), String> {
        let spec = self.spec(lab).map_err(|e| format!("{e:#}"))?;
        let mut handle = self.backend.start(spec).map_err(|e| e.to_string())?;
        let policy = KeepPolicy {
            expires_at: std::time::SystemTime::now()
                + std::time::Duration::from_secs(lab.plan.lifetime_secs),
            idle_timeout: lab
                .plan
                .idle_timeout_secs
                .map(std::time::Duration::from_secs),
            jupyter: self.upstream(&lab.id),
        };
        let keeper = keep(self.backend.clone(), lab.id.clone(), policy);
        self.keepers.lock().insert(lab.id.clone(), keeper);
        // When the lab ends: its server is gone, and so is its home folder (Jupyter's runtime
        // files; what the user keeps is on their volumes); a lab to be removed when finished
        // leaves the catalog.
        let servers = self.servers.clone();
        let keepers = self.keepers.clone();
        let catalog = self.catalog.clone();
        let forget = lab.plan.remove_when_finished;
        let home = home_of(&lab.id);
        tokio::spawn(async move {
            while let Some(event) = handle.events.recv().await {
                if event.state.is_final() {
                    break;
                }
            }
            servers.lock().remove(&handle.id);
            keepers.lock().remove(&handle.id);
            if forget && let Err(e) = catalog.forget_lab(&handle.id) {
                tracing::warn!(lab = %handle.id, error = %e, "a finished lab was not removed");
            }
            if let Err(e) = std::fs::remove_dir_all(&home)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(lab = %handle.id, error = %e, "a lab's home folder was not removed");
            }
        });
        Ok(())
    }

    fn stop(&self, lab_id: &str) -> std::result::Result<(), String> {
        self.backend.labs().stop(lab_id).map_err(|e| e.to_string())
    }

    fn steps(&self, lab_id: &str) -> Vec<LabStep> {
        self.backend
            .labs()
            .events(lab_id)
            .unwrap_or_default()
            .into_iter()
            .map(step_of)
            .collect()
    }

    fn watch(&self, lab_id: &str) -> Option<(Vec<LabStep>, LabStepStream)> {
        let (past, live) = self.backend.labs().watch(lab_id).ok()?;
        let live = futures::stream::unfold(live, |mut live| async move {
            let event = live.recv().await?;
            Some((step_of(event), live))
        });
        Some((past.into_iter().map(step_of).collect(), Box::pin(live)))
    }

    fn log_from(
        &self,
        lab_id: &str,
        offset: u64,
        max_bytes: u64,
    ) -> std::result::Result<(Vec<u8>, u64), String> {
        self.backend
            .labs()
            .log_from(lab_id, offset, max_bytes)
            .map_err(|e| e.to_string())
    }

    fn log_tail(&self, lab_id: &str, bytes: u64) -> std::result::Result<String, String> {
        self.backend
            .labs()
            .log_tail(lab_id, bytes)
            .map_err(|e| e.to_string())
    }

    fn expires_at(&self, lab_id: &str) -> Option<u64> {
        let at = self.keepers.lock().get(lab_id)?.expires_at();
        at.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }

    fn renew(&self, lab_id: &str, secs: u64) -> std::result::Result<u64, String> {
        let keepers = self.keepers.lock();
        let keeper = keepers
            .get(lab_id)
            .ok_or_else(|| format!("lab '{lab_id}' is not running: nothing to renew"))?;
        let until = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
        keeper.renew(until);
        Ok(until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()))
    }
}

/// Portal sessions from the catalog: an API token in, a session with the token's scopes out.
pub struct CatalogLogin(pub Arc<colo_catalog::Catalog>);

/// How long a portal session lasts.
const SESSION_HOURS: i64 = 12;

impl colo_labs::portal::PortalLogin for CatalogLogin {
    fn login(&self, api_token: &str) -> std::result::Result<(String, String, String, i64), String> {
        let caller = self.0.authenticate(api_token).map_err(|e| e.to_string())?;
        if caller.kind != colo_catalog::TokenKind::Api {
            return Err("log in with an API token (colo_…), not a session".into());
        }
        let session = self
            .0
            .create_session_for(&caller, SESSION_HOURS)
            .map_err(|e| e.shown_message("logging in"))?;
        let csrf = session.csrf.ok_or("a session without its CSRF token")?;
        Ok((caller.user.name, session.token, csrf, SESSION_HOURS * 3600))
    }

    fn logout(&self, headers: &axum::http::HeaderMap) {
        if let Ok(Some(c)) = colo_catalog::http::caller_of(&self.0, headers)
            && c.kind == colo_catalog::TokenKind::Session
        {
            let _ = self.0.revoke_token(c.token_id, None);
        }
    }
}
