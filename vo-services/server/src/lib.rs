//! colo-vo-services: the HTTP edge of colo's IVOA services — TAP 1.1 (with UWS 1.1 jobs and VOSI
//! 1.1), SIA 2.0 over ObsCore, DataLink 1.1 and SODA 1.0 cutouts — reading through the same
//! connectors and block cache as the mounts (never through the VFS).
//!
//! The app is [`router`]`(state) -> axum::Router`. Handlers only convert: parameters are read one
//! way ([`params`]), the protocol logic lives below this crate (`colo-tap`: ADQL, the engine,
//! writers, uploads, ingest; `colo-astro`: FITS, WCS, geometry, cutouts, previews), and every
//! failure is answered by one fault map ([`fault`]) from one error type ([`error`]).
//!
//! Modules: [`tap`], [`sia`], [`datalink`], [`soda`] (the protocols); [`uws`] (async jobs for TAP
//! and SODA); [`vosi`] (capabilities, availability, tables); [`obscore`] (image records from FITS
//! headers, published as `ivoa.obscore`); [`images`] (published images opened for DataLink, SODA
//! and previews); [`volumes`] (files on volumes as byte sources); [`table_store`] (volumes as the
//! object stores tables are read from); [`http`] (URLs and small answers); [`serve`] (the TCP
//! serving loop, bounding slow and stalled clients).

pub mod datalink;
pub mod error;
pub mod fault;
pub mod http;
pub mod images;
pub mod obscore;
pub mod params;
pub mod selection;
pub mod serve;
pub mod sia;
pub mod soda;
pub mod table_store;
pub mod tap;
pub mod uws;
pub mod volumes;
pub mod vosi;

pub use error::VoError;

use std::path::PathBuf;
use std::sync::Arc;

/// Where the services keep their data, and their limits.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Folder of published tables (`<schema>.<table>/table.toml` + `data/`).
    pub tables_dir: PathBuf,
    /// Folders on volumes holding more published tables (`VOLUME/PREFIX`, as ingest's `--to`).
    pub table_volumes: Vec<TableFolder>,
    /// Folder of async jobs and their results.
    pub jobs_dir: PathBuf,
    /// Declared and enforced limits.
    pub limits: vosi::ServiceLimits,
    /// How the URLs handed out are made (a public URL, trusted proxies).
    pub urls: http::UrlPolicy,
}

/// A folder of published tables on a volume: `VOLUME[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFolder {
    pub volume: String,
    /// The folder inside the volume (`""` for its root), without leading or trailing `/`.
    pub prefix: String,
}

impl TableFolder {
    /// Reads `VOLUME[/PREFIX]`.
    pub fn parse(text: &str) -> Option<TableFolder> {
        let text = text.trim_matches('/');
        let (volume, prefix) = text.split_once('/').unwrap_or((text, ""));
        let prefix = prefix.trim_matches('/');
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let path_ok = prefix.is_empty() || colo_connectors::ObjectPath::parse(prefix).is_ok();
        (!volume.is_empty() && volume.chars().all(plain) && path_ok).then(|| TableFolder {
            volume: volume.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The folder as the engine reaches it: `colo://<volume>/<prefix>/`.
    pub fn url(&self) -> url::Url {
        let mut url =
            table_store::VolumeStore::url(&self.volume).expect("a checked volume name makes a URL");
        if !self.prefix.is_empty() {
            url.path_segments_mut()
                .expect("a colo:// URL has a path")
                .pop_if_empty()
                .extend(self.prefix.split('/'))
                .push("");
        }
        url
    }
}

impl std::fmt::Display for TableFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "{}", self.volume),
            prefix => write!(f, "{}/{prefix}", self.volume),
        }
    }
}

/// The published tables of the local folder and of the table folders on volumes, and the stores
/// the engine reads the latter from. A folder whose volume does not answer is left out, with an
/// error in the log naming it (the services and the other tables stay up).
pub async fn published_tables(
    config: &ServiceConfig,
    volumes: &volumes::Volumes,
) -> Result<
    (
        Vec<colo_tap::catalog::PublishedTable>,
        Vec<colo_tap::engine::StoreRegistration>,
    ),
    VoError,
> {
    let mut tables = colo_tap::catalog::discover_tables(&config.tables_dir)?;
    let mut stores: Vec<colo_tap::engine::StoreRegistration> = Vec::new();
    for folder in &config.table_volumes {
        let reader = volumes
            .get(&folder.volume)
            .ok_or_else(|| VoError::UnknownVolume {
                volume: folder.volume.clone(),
            })?;
        let store = Arc::new(table_store::VolumeStore::new(reader.clone()));
        let found = match colo_tap::catalog::discover_tables_in(store.as_ref(), &folder.url()).await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(folder = %folder, error = %e, "tables on this volume are not served");
                continue;
            }
        };
        for table in found {
            let name = table.descriptor.qualified_name();
            if let Some(other) = tables
                .iter()
                .find(|t| t.descriptor.qualified_name() == name)
            {
                return Err(VoError::Tap(colo_tap::TapError::Descriptor {
                    path: PathBuf::from(table.folder.as_str()),
                    message: format!("{name} is published twice (also in {})", other.folder),
                }));
            }
            tables.push(table);
        }
        let url = table_store::VolumeStore::url(&folder.volume).expect("a checked volume name");
        if !stores.iter().any(|(u, _)| *u == url) {
            stores.push((url, store));
        }
    }
    Ok((tables, stores))
}

/// The running services' shared state.
#[derive(Clone)]
pub struct AppState {
    /// TAP.
    pub tap: tap::TapState,
    /// Published images (SIA, DataLink, SODA).
    pub images: images::ImageState,
    /// SODA's async cutout jobs (`<jobs>/soda/`).
    pub cutout_jobs: Arc<uws::JobStore>,
    /// How the URLs handed out are made.
    pub urls: Arc<http::UrlPolicy>,
}

impl AppState {
    /// Opens the published tables and images and the job store; `volumes` are where images live.
    pub async fn open(
        config: &ServiceConfig,
        volumes: volumes::Volumes,
    ) -> Result<AppState, VoError> {
        let (tables, stores) = published_tables(config, &volumes).await?;
        let engine = Arc::new(
            colo_tap::engine::Engine::new(&tables, &stores)
                .await?
                .with_query_memory_limit(
                    usize::try_from(config.limits.query_memory_bytes).unwrap_or(usize::MAX),
                ),
        );
        let images = images::ImageState::open(&config.tables_dir, volumes)?;
        let limits = uws::JobLimits {
            retention: std::time::Duration::from_secs(config.limits.retention_secs),
            execution_duration: std::time::Duration::from_secs(
                config.limits.execution_duration_secs,
            ),
            max_running: config.limits.async_jobs_running,
            max_running_per_caller: config.limits.async_jobs_per_caller,
            max_unfinished_per_caller: config.limits.async_jobs_unfinished_per_caller,
        };
        let jobs = uws::JobStore::open(&config.jobs_dir, limits.clone(), fault::Protocol::Tap)?;
        let cutout_jobs =
            uws::JobStore::open(&config.jobs_dir.join("soda"), limits, fault::Protocol::Soda)?;
        let http = colo_connectors::http_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(VoError::HttpClient)?;
        Ok(AppState {
            tap: tap::TapState {
                engine,
                jobs,
                limits: config.limits.clone(),
                up_since: tap::now_iso(),
                http,
            },
            images,
            cutout_jobs,
            urls: Arc::new(config.urls.clone()),
        })
    }

    /// Deletes expired TAP and SODA jobs once a minute.
    pub fn spawn_sweepers(&self) {
        uws::spawn_sweeper(self.tap.jobs.clone());
        uws::spawn_sweeper(self.cutout_jobs.clone());
    }
}

/// The HTTP app: TAP at `/tap` and, for astroquery's ESA modules, at `/tap-server/tap`. Serve it
/// with the peer's address (`into_make_service_with_connect_info::<SocketAddr>()`) so forwarded
/// headers are believed only from trusted proxies ([`http::UrlPolicy`]).
/// Who a request comes from, as the platform knows its callers (colo's catalog implements it):
/// `Ok(None)` for a request without credentials (anonymous), `Err` with the reason for
/// credentials that are not valid (answered 401).
pub trait Identify: Send + Sync {
    fn identify(&self, headers: &axum::http::HeaderMap) -> Result<Option<String>, String>;
}

/// The router of [`router`] with every request's caller identified by `identify`: async jobs are
/// then their creator's ([`uws::http::guard`]).
pub fn router_with_callers(
    state: AppState,
    identify: std::sync::Arc<dyn Identify>,
) -> axum::Router {
    router(state).layer(axum::middleware::from_fn(
        move |mut request: axum::extract::Request, next: axum::middleware::Next| {
            let identify = identify.clone();
            async move {
                match identify.identify(request.headers()) {
                    Ok(owner) => {
                        request.extensions_mut().insert(uws::http::Caller(owner));
                        next.run(request).await
                    }
                    Err(reason) => {
                        let mut r = fault::response(
                            fault::Protocol::Tap,
                            &VoError::Unauthorized { reason },
                        );
                        *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
                        r
                    }
                }
            }
        },
    ))
}

pub fn router(state: AppState) -> axum::Router {
    let body_limit = state.tap.limits.upload_limit_bytes as usize + 1024 * 1024;
    let urls = state.urls.clone();
    let tap = tap::routes(state.tap.clone());
    axum::Router::new()
        .nest("/tap", tap.clone())
        .nest("/tap-server/tap", tap)
        .nest("/sia", sia::routes().with_state(state.clone()))
        .nest("/datalink", datalink::routes().with_state(state.clone()))
        .nest("/soda", soda::routes(state))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(urls))
        .layer(axum::middleware::map_response(server_header))
}

/// `Server:` names the software and the VO standards it speaks (taplint checks for it).
async fn server_header(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(concat!(
            "colo/",
            env!("CARGO_PKG_VERSION"),
            " TAP/1.1 UWS/1.1 VOSI/1.1 ADQL/2.1 SIA/2.0 DataLink/1.1 SODA/1.0"
        )),
    );
    response
}
