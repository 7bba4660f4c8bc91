//! The wiring, in one place: the stack from settings (connectors → cache → VFS core, the volumes'
//! read-through layers shared by the mount and the services), the VO services started on it, the
//! mount and its metrics, SIGINT/SIGTERM to unmount cleanly, SIGHUP to drop metadata, and the
//! report of what reached the origin.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use anyhow::{Context, Result};
use colo_cache::{DiskCache, FetchBudget, MemoryCache, ReadThrough, TieredCache, WriteBack};
use colo_connectors::{Backend, OriginStats, open_volume};
use colo_vfs::{MountOptions, VfsCore, VfsOptions, VolumeMount};
use colo_vo_services::volumes::Volumes;
use colo_vo_services::{AppState, obscore, router};

use crate::config::{ServiceSettings, Settings};
use crate::views::ViewSync;
use colo_catalog::Catalog;

pub struct Stack {
    pub core: Arc<VfsCore>,
    /// The volumes' read-through layers, shared by the mount and the services.
    pub readers: Vec<(String, ReadThrough)>,
    pub cache: Arc<TieredCache>,
    /// Bytes of origin fetches in flight, for every volume together.
    pub fetch_budget: Arc<FetchBudget>,
    /// The memory tier's cap: the memory budget less the fetch budget and the allocator's share.
    pub memory_tier_bytes: u64,
    /// Each volume's origin requests, by volume name (users' volumes join as they are opened).
    pub origin: Mutex<Vec<(String, Arc<OriginStats>)>>,
    /// The read-write volumes' write-back, by volume name (users' volumes join as they are
    /// opened).
    pub write_backs: Mutex<Vec<(String, Arc<WriteBack>)>>,
    /// Whole-file copies for FUSE passthrough (`None`: off, or no disk tier).
    pub whole_files: Option<Arc<colo_cache::WholeFiles>>,
}

/// The memory budget (`cache.memory_mib`) split between fetches in flight, the allocator and the
/// memory tier: an eighth for fetches, at least two blocks; an eighth left to the allocator (jemalloc
/// keeps freed blocks' memory for reuse for up to 200 ms, which is what spares colo a page fault
/// per 4 KiB of every block; measured 7–25 MiB over the budget at 64 MiB without this share); the
/// rest for the tier. Returns (fetch, tier) bytes.
pub fn split_memory_budget(memory_bytes: u64, block_bytes: u64) -> (u64, u64) {
    let fetch = (memory_bytes / 8).max(2 * block_bytes);
    let allocator = memory_bytes / 8;
    (fetch, memory_bytes.saturating_sub(fetch + allocator))
}

pub fn build(settings: &Settings) -> Result<Stack> {
    let (fetch_bytes, memory_tier_bytes) =
        split_memory_budget(settings.memory_bytes, settings.block_bytes);
    let fetch_budget = FetchBudget::new(fetch_bytes);
    let memory = (memory_tier_bytes > 0).then(|| MemoryCache::new(memory_tier_bytes));
    let disk = if settings.disk_bytes > 0 {
        Some(
            DiskCache::open(&settings.cache_dir, settings.disk_bytes).with_context(|| {
                format!("opening the disk cache in {}", settings.cache_dir.display())
            })?,
        )
    } else {
        None
    };
    let cache = Arc::new(TieredCache::new(memory, disk));
    let mut volumes = Vec::new();
    let mut origin = Vec::new();
    let mut readers = Vec::new();
    let mut write_backs = Vec::new();
    for spec in &settings.volumes {
        let opened = open_volume(spec)?;
        origin.push((spec.name.clone(), opened.stats.clone()));
        let reader = ReadThrough::new(
            opened.connector,
            cache.clone(),
            settings.block_bytes,
            8 * settings.block_bytes,
        )
        .with_fetch_budget(fetch_budget.clone());
        readers.push((spec.name.clone(), reader.clone()));
        // A local read-write volume is its directory, passed straight through (modes, owners,
        // links kept; no second copy of each byte on the cache disk): colo_vfs::direct.
        let direct_root = match &spec.backend {
            Backend::Local { root } if spec.writable => {
                Some(std::fs::canonicalize(root).with_context(|| {
                    format!("volume '{}': folder {}", spec.name, root.display())
                })?)
            }
            _ => None,
        };
        let write_back = if spec.writable && direct_root.is_none() {
            let dir = settings.cache_dir.join("write-back").join(&spec.name);
            let wb = WriteBack::open(&dir, reader.clone()).with_context(|| {
                format!(
                    "opening the write-back area {} of volume '{}'",
                    dir.display(),
                    spec.name
                )
            })?;
            wb.set_fsync_wait(settings.fsync_wait);
            let pending = wb.pending();
            if pending.changes > 0 {
                eprintln!(
                    "colo: volume '{}': {} change(s) ({} bytes) left pending by the last run; sending them now",
                    spec.name, pending.changes, pending.bytes
                );
            }
            write_backs.push((spec.name.clone(), wb.clone()));
            Some(wb)
        } else {
            None
        };
        volumes.push(VolumeMount {
            name: spec.name.clone(),
            reader,
            metadata_ttl: spec.metadata_ttl,
            write_back,
            direct_root,
            owner: None,
        });
    }
    let me = std::fs::metadata("/proc/self").ok();
    let options = VfsOptions {
        prefetch_initial_bytes: settings.block_bytes,
        prefetch_max_bytes: settings.prefetch_max_bytes,
        // A quarter of the memory budget for all prefetch windows together.
        prefetch_budget_bytes: (settings.memory_bytes / 4).max(4 * settings.block_bytes),
        uid: me.as_ref().map(|m| m.uid()).unwrap_or(0),
        gid: me.as_ref().map(|m| m.gid()).unwrap_or(0),
        random_fill_max_bytes: settings.random_fill_max_bytes,
        ..VfsOptions::default()
    };
    let whole_files = if settings.disk_bytes > 0 && settings.passthrough_bytes > 0 {
        let dir = settings.cache_dir.join("whole");
        Some(Arc::new(
            colo_cache::WholeFiles::open(&dir, settings.passthrough_bytes)
                .with_context(|| format!("preparing {}", dir.display()))?,
        ))
    } else {
        None
    };
    Ok(Stack {
        core: Arc::new(VfsCore::new(volumes, options)),
        readers,
        cache,
        fetch_budget,
        memory_tier_bytes,
        origin: Mutex::new(origin),
        write_backs: Mutex::new(write_backs),
        whole_files,
    })
}

impl Stack {
    /// The volumes as the services see them.
    pub fn volumes(&self) -> Volumes {
        Volumes::new(self.readers.iter().cloned())
    }
}

/// Mount, print `banner`, serve until SIGINT/SIGTERM, unmount.
pub async fn mount_and_wait(
    settings: &Settings,
    catalog: Option<Arc<Catalog>>,
    banner: &str,
) -> Result<()> {
    mount_stack_and_wait(settings, Arc::new(build(settings)?), catalog, None, banner).await
}

/// [`mount_and_wait`] with a stack built by the caller (shared with the services). With a
/// catalog, its users' views are kept under `<root>/.users/` ([`crate::views`]). Datalabs (bound
/// from those views: while one runs, the mount cannot end) are stopped before the unmount.
pub async fn mount_stack_and_wait(
    settings: &Settings,
    stack: Arc<Stack>,
    catalog: Option<Arc<Catalog>>,
    labs: Option<Arc<crate::datalabs::LocalLabs>>,
    banner: &str,
) -> Result<()> {
    let options = MountOptions {
        root: settings.mount_root.clone(),
        readahead_kib: u32::try_from(settings.block_bytes / 1024).unwrap_or(u32::MAX),
        // Users' own volumes may be writable whatever the config's are.
        writable: catalog.is_some() || settings.volumes.iter().any(|v| v.writable),
        whole_files: stack.whole_files.clone(),
        ..MountOptions::default()
    };
    for (_, wb) in stack.write_backs.lock().iter() {
        wb.spawn_worker();
    }
    let mounted = colo_vfs::mount(
        stack.core.clone(),
        tokio::runtime::Handle::current(),
        &options,
    )?;
    eprintln!(
        "colo: mounted {} volume(s) at {}",
        settings.volumes.len(),
        settings.mount_root.display()
    );
    for v in &settings.volumes {
        eprintln!(
            "  {}/{}  ←  {}",
            settings.mount_root.display(),
            v.name,
            v.display_url
        );
    }
    if let Some(invalidator) = mounted.invalidator() {
        spawn_invalidate_on_sighup(stack.core.clone(), invalidator)?;
    }
    if let Some(catalog) = &catalog {
        let volumes: Vec<(String, String)> = settings
            .volumes
            .iter()
            .map(|v| (v.name.clone(), v.display_url.clone()))
            .collect();
        catalog
            .sync_config_volumes(&volumes)
            .context("recording the config's volumes in the catalog")?;
    }
    let _views = catalog.map(|catalog| {
        let mut sync = ViewSync::new(catalog, stack.clone(), settings);
        sync.set_invalidator(mounted.invalidator());
        eprintln!(
            "colo: users' views at {}/{}/<user>/",
            settings.mount_root.display(),
            colo_vfs::views::USERS_DIR
        );
        AbortOnDrop(sync.spawn())
    });
    if let Some(url) = crate::metrics::serve(stack.clone(), settings.metrics_listen).await {
        eprintln!("colo: metrics at {url} (`colo stats` prints them)");
        println!("metrics {url}");
    }
    if !banner.is_empty() {
        eprintln!("{banner}");
    }
    eprintln!("colo: press Ctrl-C to unmount");
    // Ready marker for scripts and tests: the mount is live once this line is printed.
    println!("ready {}", settings.mount_root.display());
    wait_for_signal().await?;
    if let Some(labs) = labs {
        labs.stop_all(std::time::Duration::from_secs(15)).await;
    }
    eprintln!("colo: unmounting {}", settings.mount_root.display());
    tokio::task::spawn_blocking(move || mounted.unmount())
        .await
        .context("unmount task")??;
    let write_backs = stack.write_backs.lock().clone();
    wait_for_uploads(&write_backs, settings.shutdown_upload_wait).await;
    // Blocks still on their way to the disk tier are written before exit, for the next run.
    stack.cache.flush().await;
    for (name, s) in stack.origin.lock().iter() {
        let [stat, read, list, bytes, errors] = s.snapshot();
        eprintln!(
            "colo: origin {name}: {read} GET ({bytes} bytes), {stat} HEAD/stat, {list} LIST, {errors} errors"
        );
    }
    let t = stack.cache.stats();
    eprintln!(
        "colo: cache: {} memory hits, {} disk hits, {} misses",
        t.memory_hits.load(std::sync::atomic::Ordering::Relaxed),
        t.disk_hits.load(std::sync::atomic::Ordering::Relaxed),
        t.misses.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// At unmount: waits up to `limit` for every volume's pending changes to reach the origin, then
/// says what is still pending (it is sent on the next start).
async fn wait_for_uploads(write_backs: &[(String, Arc<WriteBack>)], limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    for (name, wb) in write_backs {
        let pending = wb.pending();
        if pending.changes == 0 {
            continue;
        }
        eprintln!(
            "colo: volume '{name}': waiting up to {}s for {} pending change(s) ({} bytes) to reach the origin",
            limit.as_secs(),
            pending.changes,
            pending.bytes
        );
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !wb.drain(left).await {
            let p = wb.pending();
            let error = wb
                .stats()
                .last_error
                .lock()
                .clone()
                .unwrap_or_else(|| "none".into());
            eprintln!(
                "colo: volume '{name}': {} change(s) ({} bytes) still pending (last error: {error}); they are safe in {} and are sent on the next start",
                p.changes,
                p.bytes,
                wb.dir().display()
            );
        }
    }
}

/// SIGHUP drops the metadata caches of colo and of the kernel: listings and attributes are asked
/// from the origins again (for archive volumes with long TTLs, after the operator changed files).
fn spawn_invalidate_on_sighup(
    core: Arc<VfsCore>,
    invalidator: colo_vfs::KernelInvalidator,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let (entries, inodes) = core.invalidate_metadata();
            let invalidator = invalidator.clone();
            let count = entries.len();
            let _ =
                tokio::task::spawn_blocking(move || invalidator.forget(&entries, &inodes)).await;
            eprintln!(
                "colo: SIGHUP: metadata caches dropped ({count} cached names); listings are fetched again"
            );
        }
    });
    Ok(())
}

pub async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

/// Binds the listen address and serves in the background (with each peer's address, for the URL
/// policy's trusted proxies); returns the base URL (`http://host:port`).
/// The VO services, with the platform's API (`/graphql`) when there is a catalog.
pub async fn start_services(
    settings: &ServiceSettings,
    volumes: Volumes,
    catalog: Option<Arc<Catalog>>,
    labs: Option<Arc<crate::datalabs::LocalLabs>>,
) -> Result<String> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set [services] listen in colo.toml or pass --listen)",
                settings.listen
            )
        })?;
    let address = listener.local_addr()?;
    let base_url = format!("http://{address}");
    let tables_dir = settings.service.tables_dir.clone();
    tokio::task::spawn_blocking(move || republish_obscore(&tables_dir))
        .await?
        .context("publishing ivoa.obscore")?;
    let state = AppState::open(&settings.service, volumes)
        .await
        .context("opening the published tables")?;
    let published = state
        .tap
        .engine
        .tables()
        .iter()
        .filter(|t| t.schema != colo_tap::tap_schema::SCHEMA)
        .count();
    let mut places = vec![settings.service.tables_dir.display().to_string()];
    places.extend(
        settings
            .service
            .table_volumes
            .iter()
            .map(|f| format!("volume {f}")),
    );
    eprintln!(
        "colo: {published} published table(s) from {}",
        places.join(" and ")
    );
    state.spawn_sweepers();
    let clients = settings.clients;
    tokio::spawn(async move {
        let archive: Arc<dyn colo_catalog::graphql::ArchiveFiles> = Arc::new(VoArchive {
            tap: state.tap.clone(),
            images: state.images.clone(),
        });
        let app = match catalog {
            Some(catalog) => {
                let mut app = colo_vo_services::router_with_callers(
                    state,
                    Arc::new(CatalogIdentity(catalog.clone())),
                )
                .merge(colo_catalog::http::router(
                    catalog.clone(),
                    colo_catalog::graphql::Wiring {
                        archive: Some(archive),
                        labs: labs
                            .clone()
                            .map(|l| l as Arc<dyn colo_catalog::graphql_labs::Datalabs>),
                    },
                ));
                app = app.merge(colo_labs::portal::router(Arc::new(
                    crate::datalabs::CatalogLogin(catalog.clone()),
                )));
                if let Some(labs) = labs {
                    app = app.merge(
                        axum::Router::new()
                            .route("/labs/{id}", axum::routing::any(crate::datalabs::proxy))
                            // A wildcard does not match nothing: the lab's own root.
                            .route("/labs/{id}/", axum::routing::any(crate::datalabs::proxy))
                            .route(
                                "/labs/{id}/{*rest}",
                                axum::routing::any(crate::datalabs::proxy),
                            )
                            .with_state((catalog, labs)),
                    );
                }
                app
            }
            None => router(state),
        };
        colo_vo_services::serve::serve(listener, app, clients).await;
    });
    Ok(base_url)
}

/// Callers of the VO services as the catalog knows them (their async jobs are their own).
struct CatalogIdentity(Arc<Catalog>);

impl colo_vo_services::Identify for CatalogIdentity {
    fn identify(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> std::result::Result<Option<String>, String> {
        colo_catalog::http::caller_of(&self.0, headers)
            .map(|c| c.map(|c| c.user.name))
            .map_err(|e| e.to_string())
    }
}

/// The archive's files for the catalog's selections: chosen from the VO services' `ivoa.obscore`
/// and image records, read through the services' volumes.
struct VoArchive {
    tap: colo_vo_services::tap::TapState,
    images: colo_vo_services::images::ImageState,
}

impl colo_catalog::graphql::ArchiveFiles for VoArchive {
    fn select<'a>(
        &'a self,
        adql: Option<String>,
        dids: Vec<String>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<
                        Vec<colo_catalog::selections::SelectedFile>,
                        String,
                    >,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            use colo_vo_services::selection::{Selection, select_files};
            let selection = match adql {
                Some(q) => Selection::Adql(q),
                None => Selection::Dids(dids),
            };
            let files = select_files(&self.tap, &self.images, &selection)
                .await
                .map_err(|e| e.to_string())?;
            Ok(files
                .into_iter()
                .map(|f| colo_catalog::selections::SelectedFile {
                    volume: f.volume,
                    path: f.path,
                    did: f.did,
                })
                .collect())
        })
    }

    fn connector(&self, volume: &str) -> Option<Arc<dyn colo_connectors::Connector>> {
        self.images
            .volumes
            .get(volume)
            .map(|reader| reader.connector().clone())
    }
}

/// Rebuilds `ivoa.obscore` from the image manifest when it was published by a colo that stored
/// absolute access URLs (they now are paths, made absolute per response).
fn republish_obscore(tables_dir: &Path) -> Result<()> {
    let manifest = obscore::publish::Manifest::read(tables_dir)?;
    let descriptor = tables_dir
        .join("ivoa.obscore")
        .join(colo_tap::catalog::DESCRIPTOR_FILE);
    let current = colo_tap::catalog::TableDescriptor::read(&descriptor).is_ok_and(|d| {
        d.columns
            .iter()
            .any(|c| c.name == "access_url" && c.service_relative)
    });
    if !manifest.records.is_empty() && !current {
        obscore::publish::publish(tables_dir)?;
    }
    Ok(())
}

/// Prints where each service is.
pub fn announce(base_url: &str) {
    eprintln!("colo: TAP at {base_url}/tap (astroquery ESA modules: {base_url}/tap-server/tap)");
    eprintln!(
        "colo: SIA 2.0 at {base_url}/sia/query, DataLink at {base_url}/datalink/links, SODA at {base_url}/soda/sync and /soda/async"
    );
    println!("tap {base_url}/tap");
}
