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
//! and previews); [`volumes`] (files on volumes as byte sources); [`http`] (URLs and small answers).

pub mod datalink;
pub mod error;
pub mod fault;
pub mod http;
pub mod images;
pub mod obscore;
pub mod params;
pub mod sia;
pub mod soda;
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
    /// Folder of async jobs and their results.
    pub jobs_dir: PathBuf,
    /// Declared and enforced limits.
    pub limits: vosi::ServiceLimits,
    /// How the URLs handed out are made (a public URL, trusted proxies).
    pub urls: http::UrlPolicy,
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
        let images = images::ImageState::open(&config.tables_dir, volumes)?;
        let engine = Arc::new(colo_tap::engine::open(&config.tables_dir).await?);
        let limits = uws::JobLimits {
            retention: std::time::Duration::from_secs(config.limits.retention_secs),
            execution_duration: std::time::Duration::from_secs(
                config.limits.execution_duration_secs,
            ),
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
