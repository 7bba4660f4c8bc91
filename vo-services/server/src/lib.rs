//! colo-vo-services: the IVOA services — TAP 1.1 with ADQL 2.1 over Parquet (DataFusion), SIA 2.0
//! over ObsCore, DataLink 1.1 and SODA 1.0 cutouts — reading through the same connectors and
//! block cache as the mounts (never through the VFS).
//!
//! The app is `router(state) -> axum::Router`; protocol logic lives in plain modules (ADQL
//! translation in [`adql`], query execution in [`engine`], serialisations in [`output`], jobs in
//! [`uws`]) and the handlers in [`tap`] only convert.

pub mod adql;
pub mod catalog;
pub mod cutout;
pub mod dali;
pub mod datalink;
pub mod engine;
pub mod error;
pub mod fits;
pub mod fits_table;
pub mod images;
pub mod ingest;
pub mod obscore;
pub mod output;
pub mod preview;
pub mod request;
pub mod sia;
pub mod sky;
pub mod soda;
pub mod tap_schema;
pub mod wcs;

pub use error::VoError;
pub mod tap;
pub mod upload;
pub mod uws;
pub mod vosi;

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
}

impl AppState {
    /// Opens the published tables and images and the job store; `volumes` are where images live.
    pub async fn open(
        config: &ServiceConfig,
        volumes: fits::source::Volumes,
    ) -> Result<AppState, VoError> {
        let images = images::ImageState::open(&config.tables_dir, volumes)?;
        let engine = Arc::new(engine::open(&config.tables_dir).await?);
        let limits = uws::JobLimits {
            retention: std::time::Duration::from_secs(config.limits.retention_secs),
            execution_duration: std::time::Duration::from_secs(
                config.limits.execution_duration_secs,
            ),
        };
        let jobs = uws::JobStore::open(&config.jobs_dir, limits.clone())?;
        let cutout_jobs = uws::JobStore::open(&config.jobs_dir.join("soda"), limits)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| VoError::BadParameter {
                name: "http client".into(),
                message: e.to_string(),
            })?;
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
        })
    }

    /// Deletes expired TAP and SODA jobs once a minute.
    pub fn spawn_sweepers(&self) {
        uws::spawn_sweeper(self.tap.jobs.clone());
        uws::spawn_sweeper(self.cutout_jobs.clone());
    }
}

/// The HTTP app: TAP at `/tap` and, for astroquery's ESA modules, at `/tap-server/tap`.
pub fn router(state: AppState) -> axum::Router {
    let body_limit = state.tap.limits.upload_limit_bytes as usize + 1024 * 1024;
    let tap = tap::routes(state.tap.clone());
    axum::Router::new()
        .nest("/tap", tap.clone())
        .nest("/tap-server/tap", tap)
        .nest("/sia", sia::routes().with_state(state.clone()))
        .nest("/datalink", datalink::routes().with_state(state.clone()))
        .nest("/soda", soda::routes(state))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
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
