//! The VO services in the `colo` binary: `colo serve` (services alone), the services half of
//! `colo up`, and `colo ingest catalog` (publish a catalogue from a local file or any volume).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use colo_connectors::{ObjectPath, open_volume};
use colo_vo_services::catalog::PositionDescriptor;
use colo_vo_services::fits::source::Volumes;
use colo_vo_services::ingest::{IngestRequest, InputFormat, ingest};
use colo_vo_services::obscore;
use colo_vo_services::{AppState, router};

use crate::config::ServiceSettings;

/// Binds the listen address, republishes `ivoa.obscore` with this address in its links, and serves
/// in the background; returns the base URL (`http://host:port`).
pub async fn start(settings: &ServiceSettings, volumes: Volumes) -> Result<String> {
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
    let base = base_url.clone();
    tokio::task::spawn_blocking(move || republish_obscore(&tables_dir, &base))
        .await?
        .context("publishing ivoa.obscore")?;
    let state = AppState::open(&settings.service, volumes)
        .await
        .context("opening the published tables")?;
    state.spawn_sweepers();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "the services stopped");
        }
    });
    Ok(base_url)
}

/// Rebuilds `ivoa.obscore` from the image manifest, if any images were ingested.
fn republish_obscore(tables_dir: &Path, base_url: &str) -> Result<()> {
    let manifest = obscore::publish::Manifest::read(tables_dir)?;
    if !manifest.records.is_empty() {
        obscore::publish::publish(tables_dir, base_url)?;
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

/// `colo serve`: the services alone, until SIGINT/SIGTERM. The config's volumes are opened (not
/// mounted) so images on them can be cut out.
pub async fn serve_and_wait(settings: &ServiceSettings, config: Option<&Path>) -> Result<()> {
    let stack = match config {
        Some(path) => match crate::config::load(path) {
            Ok(full) => Some(crate::run::build(&full)?),
            Err(crate::config::ConfigError::Invalid { message, .. })
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
    let url = start(settings, volumes).await?;
    let tables = colo_vo_services::catalog::discover_tables(&settings.service.tables_dir)?;
    eprintln!(
        "colo: {} published table(s) from {}",
        tables.len(),
        settings.service.tables_dir.display()
    );
    announce(&url);
    println!("ready {url}/tap");
    crate::run::wait_for_signal().await?;
    eprintln!("colo: services stopped");
    Ok(())
}

/// `colo ingest images VOLUME[/PREFIX]`: reads the headers of new or changed FITS files and
/// republishes `ivoa.obscore`.
pub async fn ingest_images(
    settings: &ServiceSettings,
    stack: &crate::run::Stack,
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
    let base_url = format!("http://{}", settings.listen);
    tokio::task::spawn_blocking(move || obscore::publish::publish(&tables_dir, &base_url))
        .await??;
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

/// Where a catalogue to ingest comes from.
pub struct CatalogSource {
    /// A local path, or a path inside `volume`.
    pub path: String,
    /// The volume (from the config), if not local.
    pub volume: Option<String>,
}

/// `colo ingest catalog`.
pub async fn ingest_catalog(
    settings: &ServiceSettings,
    config: Option<&Path>,
    source: CatalogSource,
    table: &str,
    position: Option<PositionDescriptor>,
    description: Option<String>,
) -> Result<()> {
    let (schema, name) = table
        .split_once('.')
        .with_context(|| format!("--table {table:?}: give schema.table, e.g. mission.sources"))?;
    let format = InputFormat::from_name(&source.path).with_context(|| {
        format!(
            "{}: cannot tell the format from the name (use .parquet, .csv, .vot/.xml or .fits)",
            source.path
        )
    })?;
    let (bytes, source_name) = match &source.volume {
        None => {
            let path = PathBuf::from(&source.path);
            let bytes = tokio::fs::read(&path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            (bytes::Bytes::from(bytes), path.display().to_string())
        }
        Some(volume) => {
            let config =
                config.context("--volume needs a config with that volume (--config FILE)")?;
            let settings = crate::config::load(config)?;
            let spec = settings
                .volumes
                .iter()
                .find(|v| &v.name == volume)
                .with_context(|| format!("no volume {volume:?} in {}", config.display()))?;
            let opened = open_volume(spec)?;
            let path = ObjectPath::parse(&source.path).map_err(|e| anyhow::anyhow!("{e}"))?;
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
                format!("{}/{}", spec.display_url.trim_end_matches('/'), source.path),
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
        description,
    };
    let tables_dir = settings.service.tables_dir.clone();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = tokio::task::spawn_blocking(move || {
        let mut last_percent = 101;
        ingest(&tables_dir, &request, &mut |done, total| {
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
        })
    })
    .await??;
    if interactive {
        eprintln!();
    }
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
    eprintln!(
        "colo: edit {}/table.toml to describe the columns; restart the services to publish the edits",
        report.dir.display()
    );
    Ok(())
}

/// Publishes the sample mission's catalogues as TAP tables (once; again if the source changed).
pub fn ensure_sample_tables(sample_dir: &Path, settings: &ServiceSettings) -> Result<()> {
    let source = sample_dir.join("catalogs/hip2.parquet");
    let published = settings.service.tables_dir.join("sample.hip2");
    let descriptor = published.join(colo_vo_services::catalog::DESCRIPTOR_FILE);
    let source_name = source.display().to_string();
    if let Ok(existing) = colo_vo_services::catalog::TableDescriptor::read(&descriptor)
        && existing.source == source_name
    {
        return Ok(());
    }
    eprintln!("colo: publishing the sample catalogue sample.hip2 (first run)");
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let request = IngestRequest {
        source_name,
        bytes: bytes::Bytes::from(bytes),
        format: InputFormat::Parquet,
        schema: "sample".into(),
        table: "hip2".into(),
        position: Some(PositionDescriptor { ra: "ra_deg".into(), dec: "dec_deg".into() }),
        description: Some(
            "Hipparcos, the new reduction (van Leeuwen 2007, CDS I/311): astrometry and photometry of 117,955 stars, epoch J1991.25"
                .into(),
        ),
    };
    let report = ingest(&settings.service.tables_dir, &request, &mut |_, _| {})?;
    let mut descriptor = colo_vo_services::catalog::TableDescriptor::read(
        &report.dir.join(colo_vo_services::catalog::DESCRIPTOR_FILE),
    )?;
    crate::hipparcos::describe(&mut descriptor);
    descriptor.write(&report.dir.join(colo_vo_services::catalog::DESCRIPTOR_FILE))?;
    Ok(())
}
