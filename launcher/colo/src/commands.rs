//! What each command does, once the CLI has parsed it: `up`, `mount`, `volumes`, `serve`,
//! `ingest catalog`, `ingest images`. Each one reads its settings, wires the parts through
//! [`crate::stack`], and says what it did on stderr (and on stdout the lines scripts wait for:
//! `ready ...`, `tap ...`, `metrics ...`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use colo_connectors::{ObjectPath, open_volume};
use colo_tap::catalog::PositionDescriptor;
use colo_tap::ingest::{IngestReport, IngestRequest, InputFormat, ingest, to_store, write_table};
use colo_vo_services::TableFolder;
use colo_vo_services::obscore;
use colo_vo_services::table_store::VolumeStore;

use crate::cli::{CatalogArgs, ImagesArgs, MountArgs, ServeArgs, UpArgs, VolumesArgs};
use crate::config::{self, ServiceSettings};
use crate::{sample, stack};

/// The config file given, else `./colo.toml` if there is one.
fn given_or_local(config: Option<PathBuf>) -> Option<PathBuf> {
    config.or_else(|| Some(PathBuf::from("colo.toml")).filter(|p| p.exists()))
}

/// The config file given, else `./colo.toml`; an error saying so when there is neither.
fn config_path(given: Option<PathBuf>) -> Result<PathBuf> {
    given_or_local(given).context(
        "no config: pass --config FILE or create ./colo.toml (see README, \"Configuration\")",
    )
}

/// `--listen` over the configured services address.
fn with_listen(mut settings: ServiceSettings, listen: Option<String>) -> Result<ServiceSettings> {
    if let Some(listen) = listen {
        settings.listen = listen.parse().with_context(|| {
            format!(
                "--listen {listen:?}: expected host:port, e.g. {}",
                config::DEFAULT_SERVICES_LISTEN
            )
        })?;
    }
    Ok(settings)
}

/// The catalog of this colo home if it has one (`colo up` or `colo user add` made it): then the
/// mount keeps the users' views and the services answer `/graphql`.
fn existing_catalog() -> Result<Option<Arc<colo_catalog::Catalog>>> {
    if config::colo_home()
        .join(colo_catalog::DATABASE_FILE)
        .exists()
    {
        Ok(Some(Arc::new(crate::platform::open_catalog()?)))
    } else {
        Ok(None)
    }
}

/// `colo mount`: the volumes of the config under the mount root, until SIGINT/SIGTERM.
pub async fn mount(args: MountArgs) -> Result<()> {
    let mut settings = config::load(&config_path(args.config)?)?;
    if let Some(r) = args.root {
        settings.mount_root = r;
    }
    stack::mount_and_wait(&settings, existing_catalog()?, "").await
}

/// `colo volumes`: each volume with its masked URL and whether it answers; exit code 1 if one
/// does not.
pub async fn volumes(args: VolumesArgs) -> Result<i32> {
    let settings = config::load(&config_path(args.config)?)?;
    let timeout = Duration::from_secs(args.timeout);
    let mut all_ok = true;
    println!(
        "{:<16} {:<7} {:<10} {:<48} STATUS",
        "NAME", "BACKEND", "MODE", "URL"
    );
    for spec in &settings.volumes {
        let status = match open_volume(spec) {
            Err(e) => Err(e.to_string()),
            Ok(v) => {
                match tokio::time::timeout(timeout, v.connector.list(&ObjectPath::root())).await {
                    Ok(Ok(entries)) => Ok(format!("ok ({} entries at the top)", entries.len())),
                    Ok(Err(e)) => Err(v.redactor.redact(&e.to_string())),
                    Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
                }
            }
        };
        let text = status.unwrap_or_else(|e| {
            all_ok = false;
            format!("error: {e}")
        });
        println!(
            "{:<16} {:<7} {:<10} {:<48} {}",
            spec.name,
            spec.backend_name(),
            spec.mode_name(),
            spec.display_url,
            text
        );
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// `colo up`: the volumes of the config (with none, the sample mission) mounted, and the services.
pub async fn up(args: UpArgs) -> Result<()> {
    let given = given_or_local(args.config);
    let is_sample = given.is_none();
    let mut settings = match given {
        Some(path) => config::load(&path)?,
        None => sample::prepare(&config::colo_home()).await?,
    };
    if let Some(r) = args.root {
        settings.mount_root = r;
    }
    let service_settings = with_listen(settings.services.clone(), args.listen)?;
    let stack = std::sync::Arc::new(stack::build(&settings)?);
    let catalog = Arc::new(crate::platform::open_catalog()?);
    let first_admin = crate::platform::first_admin(&catalog)?;
    crate::platform::publish_to_catalogue(
        &catalog,
        &service_settings.service.tables_dir,
        is_sample,
    )?;
    if is_sample {
        sample::publish_images(&service_settings, &stack).await?;
    }
    let labs = crate::datalabs::LocalLabs::open(
        &config::colo_home(),
        &settings.mount_root,
        catalog.clone(),
        &settings.labs,
    )
    .await?;
    let base = stack::start_services(
        &service_settings,
        stack.volumes(),
        Some(catalog.clone()),
        Some(labs.clone()),
    )
    .await?;
    stack::announce(&base);
    let mut banner = if is_sample {
        sample::try_lines(&settings.mount_root, &base)
    } else {
        String::new()
    };
    if let Some(text) = first_admin {
        banner.push_str(&text);
    }
    stack::mount_stack_and_wait(&settings, stack, Some(catalog), Some(labs), &banner).await
}

/// `colo serve`: the services alone, until SIGINT/SIGTERM. The config's volumes are opened (not
/// mounted) so images on them can be cut out.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let given = given_or_local(args.config);
    let config = given.as_deref();
    let settings = with_listen(config::load_services(config)?, args.listen)?;
    let stack = match config {
        Some(path) => match config::load(path) {
            Ok(full) => Some(stack::build(&full)?),
            Err(config::ConfigError::Invalid { message, .. })
                if message.starts_with("no [[volume]]") =>
            {
                None
            }
            // The services do not need the volumes to serve tables: say what is missing and go on.
            Err(e) => {
                eprintln!("colo: volumes not opened ({e}); images on them cannot be served");
                None
            }
        },
        None => None,
    };
    let volumes = stack.as_ref().map(|s| s.volumes()).unwrap_or_default();
    let url = stack::start_services(&settings, volumes, existing_catalog()?, None).await?;
    stack::announce(&url);
    println!("ready {url}/tap");
    stack::wait_for_signal().await?;
    eprintln!("colo: services stopped");
    Ok(())
}

/// `colo ingest images VOLUME[/PREFIX]`.
pub async fn ingest_images(args: ImagesArgs) -> Result<()> {
    let full = config::load(&config_path(args.config)?)?;
    let stack = stack::build(&full)?;
    let volume = args.target.split('/').next().unwrap_or(&args.target);
    let mut defaults =
        obscore::CollectionDefaults::new(args.collection.as_deref().unwrap_or(volume));
    if let Some(level) = args.calib_level {
        defaults.calib_level = level;
    }
    if let Some(authority) = args.authority {
        defaults.authority = authority;
    }
    defaults.facility_name = args.facility;
    defaults.instrument_name = args.instrument;
    publish_images(&full.services, &stack, &args.target, &defaults, false).await?;
    Ok(())
}

/// Reads the headers of new or changed FITS files under `target` (VOLUME[/PREFIX]) and republishes
/// `ivoa.obscore`; `quiet`: no progress or report on stderr.
pub async fn publish_images(
    settings: &ServiceSettings,
    stack: &stack::Stack,
    target: &str,
    defaults: &obscore::CollectionDefaults,
    quiet: bool,
) -> Result<obscore::walk::WalkReport> {
    let (volume, prefix) = target.split_once('/').unwrap_or((target, ""));
    let volumes = stack.volumes();
    if volumes.get(volume).is_none() {
        let known: Vec<&str> = volumes.names().collect();
        bail!(
            "no volume {volume:?} in the config (volumes: {}); give VOLUME[/PREFIX]",
            known.join(", ")
        );
    }
    let interactive = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |done: usize, total: usize| {
        if interactive && total > 0 {
            let filled = done * 20 / total;
            eprint!(
                "\rcolo: ingest [{}{}] {done}/{total} files",
                "#".repeat(filled),
                ".".repeat(20 - filled)
            );
        }
    };
    let report = obscore::walk::ingest_images(
        &volumes,
        volume,
        prefix,
        defaults,
        &settings.service.tables_dir,
        &mut progress,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if interactive {
        eprintln!();
    }
    let tables_dir = settings.service.tables_dir.clone();
    tokio::task::spawn_blocking(move || obscore::publish::publish(&tables_dir)).await??;
    if !quiet {
        for (path, why) in &report.skipped {
            eprintln!("colo: skipped {volume}/{path}: {why}");
        }
        for (path, what) in &report.warnings {
            eprintln!("colo: note {volume}/{path}: {what}");
        }
        eprintln!(
            "colo: ivoa.obscore: {} new or changed, {} unchanged, {} removed, {} skipped",
            report.added.len(),
            report.unchanged,
            report.removed.len(),
            report.skipped.len()
        );
    }
    Ok(report)
}

/// `colo ingest catalog`: a catalogue from a local file or a path on a volume of the config.
pub async fn ingest_catalog(args: CatalogArgs) -> Result<()> {
    let given = given_or_local(args.config);
    let config = given.as_deref();
    let settings = config::load_services(config)?;
    let position = args
        .ra
        .zip(args.dec)
        .map(|(ra, dec)| PositionDescriptor { ra, dec });
    let table = args.table.as_str();
    let (schema, name) = table
        .split_once('.')
        .with_context(|| format!("--table {table:?}: give schema.table, e.g. mission.sources"))?;
    let format = InputFormat::from_name(&args.source).with_context(|| {
        format!(
            "{}: cannot tell the format from the name (use .parquet, .csv, .vot/.xml or .fits)",
            args.source
        )
    })?;
    let (bytes, source_name) = match &args.volume {
        None => {
            let path = PathBuf::from(&args.source);
            let bytes = tokio::fs::read(&path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            (bytes::Bytes::from(bytes), path.display().to_string())
        }
        Some(volume) => {
            let config =
                config.context("--volume needs a config with that volume (--config FILE)")?;
            let settings = config::load(config)?;
            let spec = settings
                .volumes
                .iter()
                .find(|v| &v.name == volume)
                .with_context(|| format!("no volume {volume:?} in {}", config.display()))?;
            let opened = open_volume(spec)?;
            let path = ObjectPath::parse(&args.source).map_err(|e| anyhow::anyhow!("{e}"))?;
            let meta = opened
                .connector
                .stat(&path)
                .await
                .map_err(|e| anyhow::anyhow!(opened.redactor.redact(&e.to_string())))?;
            let bytes = opened
                .connector
                .read_range(&path, 0..meta.size, Some(&meta.identity()))
                .await
                .map_err(|e| anyhow::anyhow!(opened.redactor.redact(&e.to_string())))?;
            (
                bytes,
                format!("{}/{}", spec.display_url.trim_end_matches('/'), args.source),
            )
        }
    };
    let request = IngestRequest {
        source_name,
        bytes,
        format,
        schema: schema.to_ascii_lowercase(),
        table: name.to_ascii_lowercase(),
        position,
        description: args.description,
    };
    if let Some(target) = &args.to {
        let config = config.context("--to needs a config with that volume (--config FILE)")?;
        return ingest_catalog_to_volume(config, target, request).await;
    }
    let tables_dir = settings.service.tables_dir.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut progress = ingest_progress();
        ingest(&tables_dir, &request, &mut progress)
    })
    .await??;
    finish_progress();
    report_published(&report);
    eprintln!(
        "colo: edit {}/table.toml to describe the columns; restart the services to publish the edits",
        report.dir.display()
    );
    Ok(())
}

/// `colo ingest catalog ... --to VOLUME[/FOLDER]`: the table written locally, then published to the
/// folder on the volume (partitions first, the descriptor last; see `colo_tap::ingest::to_store`).
async fn ingest_catalog_to_volume(
    config: &std::path::Path,
    target: &str,
    request: IngestRequest,
) -> Result<()> {
    let settings = config::load(config)?;
    let folder = TableFolder::parse(target).with_context(|| {
        format!("--to {target:?}: give VOLUME or VOLUME/FOLDER, e.g. archive/tables")
    })?;
    let spec = settings
        .volumes
        .iter()
        .find(|v| v.name == folder.volume)
        .with_context(|| {
            let names: Vec<&str> = settings.volumes.iter().map(|v| v.name.as_str()).collect();
            format!(
                "--to {target:?}: no volume {:?} in {} (volumes: {})",
                folder.volume,
                config.display(),
                names.join(", ")
            )
        })?;
    let opened = open_volume(spec)?;
    if !opened.connector.capability().write {
        bail!(
            "--to {target:?}: volume {:?} ({}) cannot be written",
            spec.name,
            spec.backend_name()
        );
    }
    // Writes need no cache; a small memory tier serves the reads of the old descriptor.
    let cache = std::sync::Arc::new(colo_cache::TieredCache::new(
        Some(colo_cache::MemoryCache::new(8 << 20)),
        None,
    ));
    let reader = colo_cache::ReadThrough::new(opened.connector, cache, 1 << 20, 1 << 20);
    let store = VolumeStore::new(reader);
    let table = to_store::table_folder(&folder.url(), &request.schema, &request.table);
    let redact = |e: colo_tap::TapError| anyhow::anyhow!(opened.redactor.redact(&e.to_string()));
    let replaced = to_store::published_descriptor(&store, &table)
        .await
        .map_err(redact)?;
    let staging = tempfile::Builder::new()
        .prefix("colo-ingest-")
        .tempdir()
        .context("a temporary folder for the table")?;
    let folder_path = staging.path().to_path_buf();
    let previous = replaced.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut progress = ingest_progress();
        write_table(
            &folder_path,
            &request,
            &to_store::new_data_dir(),
            previous,
            &mut progress,
        )
    })
    .await??;
    finish_progress();
    let published = to_store::publish_to_store(&store, &table, staging.path(), replaced.as_ref())
        .await
        .map_err(redact)?;
    report_published(&report);
    eprintln!(
        "colo: uploaded {} file(s), {:.1} MiB, to {folder}/{}.{}/{}{}",
        published.files,
        published.bytes as f64 / f64::from(1 << 20),
        report.descriptor.schema,
        report.descriptor.name,
        report.descriptor.data,
        if published.removed.is_empty() {
            String::new()
        } else {
            format!(" (removed old {})", published.removed.join(", "))
        }
    );
    if settings.services.service.table_volumes.contains(&folder) {
        eprintln!("colo: restart the services to serve the new version");
    } else {
        eprintln!(
            "colo: to serve it, add table_volumes = [\"{folder}\"] to [services] in {} and restart the services",
            config.display()
        );
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal: (rows written, total rows).
fn ingest_progress() -> impl FnMut(u64, u64) {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_percent = 101;
    move |done, total| {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        if interactive && percent != last_percent {
            last_percent = percent;
            let filled = (percent / 5) as usize;
            eprint!(
                "\rcolo: ingest [{}{}] {percent:>3}% {done}/{total} rows",
                "#".repeat(filled),
                ".".repeat(20 - filled)
            );
        }
    }
}

/// Ends the progress bar's line.
fn finish_progress() {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
}

fn report_published(report: &IngestReport) {
    let (schema, name) = (&report.descriptor.schema, &report.descriptor.name);
    match &report.position {
        Some(p) => eprintln!(
            "colo: published {schema}.{name}: {} rows in {} HEALPix order-{} partition(s), position ({}, {})",
            report.rows, report.files, report.order, p.ra, p.dec
        ),
        None => eprintln!(
            "colo: published {schema}.{name}: {} rows (no position columns found: no spatial index; use --ra/--dec)",
            report.rows
        ),
    }
}
