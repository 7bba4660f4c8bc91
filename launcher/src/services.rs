//! The VO services in the `colo` binary: `colo serve` (services alone), the services half of
//! `colo up`, and `colo ingest catalog` (publish a catalogue from a local file or any volume).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use colo_connectors::{ObjectPath, open_volume};
use colo_vo_services::catalog::PositionDescriptor;
use colo_vo_services::ingest::{IngestRequest, InputFormat, ingest};
use colo_vo_services::{AppState, router};

use crate::config::ServiceSettings;

/// Binds the listen address and serves in the background; returns the TAP URL.
pub async fn start(settings: &ServiceSettings) -> Result<String> {
    let state = AppState::open(&settings.service)
        .await
        .context("opening the published tables")?;
    colo_vo_services::tap::spawn_sweeper(state.tap.jobs.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set [services] listen in colo.toml or pass --listen)",
                settings.listen
            )
        })?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "the services stopped");
        }
    });
    Ok(format!("http://{address}/tap"))
}

/// `colo serve`: the services alone, until SIGINT/SIGTERM.
pub async fn serve_and_wait(settings: &ServiceSettings) -> Result<()> {
    let url = start(settings).await?;
    let tables = colo_vo_services::catalog::discover_tables(&settings.service.tables_dir)?;
    eprintln!(
        "colo: TAP at {url} ({} published table(s) from {})",
        tables.len(),
        settings.service.tables_dir.display()
    );
    eprintln!(
        "colo: astroquery's ESA modules can use {}",
        url.replace("/tap", "/tap-server/tap")
    );
    println!("tap {url}");
    println!("ready {url}");
    crate::run::wait_for_signal().await?;
    eprintln!("colo: services stopped");
    Ok(())
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
