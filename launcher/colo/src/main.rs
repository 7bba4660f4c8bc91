//! `colo`: mount data volumes under one root, list them, and run the sample mission.
//!
//! Commands: `colo mount` (the configured volumes, foreground), `colo volumes` (each volume, its
//! masked URL and whether it answers), `colo up` (the main job: the config given, or with none the
//! built-in sample mission prepared on first run). Errors print as one line, `colo: …`, saying what to
//! fix; anyhow lives only in this crate.

mod config;
mod hipparcos;
mod metrics;
mod run;
mod sample;
mod services;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use colo_connectors::{ObjectPath, open_volume};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "colo",
    version,
    about = "Bring the questions to the data: mission data volumes, mounted and served"
)]
struct Cli {
    /// More logging (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount the configured volumes under the mount root and serve until Ctrl-C/SIGTERM.
    Mount {
        /// The config file (default: ./colo.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Mount root (overrides `mount_root`; default /media/data).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// List the configured volumes, with credentials masked, and check that each answers.
    Volumes {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Seconds to wait for each volume to answer.
        #[arg(long, default_value_t = 15)]
        timeout: u64,
    },
    /// The main job: mount the volumes and serve TAP over the published tables (with no config:
    /// the built-in sample mission).
    Up {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        root: Option<PathBuf>,
        /// Address for the services (overrides `[services] listen`; default 127.0.0.1:8765).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Print the non-zero metrics of a running colo (FUSE operations, origin requests, cache hits).
    Stats {
        /// The metrics endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8766/metrics")]
        url: String,
    },
    /// Serve the IVOA services (TAP) over the published tables, without mounting.
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8765).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Publish data for the services.
    Ingest {
        #[command(subcommand)]
        what: IngestCommand,
    },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// Publish a catalogue (Parquet, CSV, VOTable or FITS binary table) as a TAP table,
    /// HEALPix-partitioned Parquet plus an editable descriptor.
    Catalog {
        /// The catalogue: a local file, or a path inside --volume.
        source: String,
        /// ADQL name to publish it as: schema.table.
        #[arg(long)]
        table: String,
        /// Read the source from this configured volume (needs --config).
        #[arg(long)]
        volume: Option<String>,
        /// Right ascension column (degrees, ICRS); guessed from common names when absent.
        #[arg(long, requires = "dec")]
        ra: Option<String>,
        /// Declination column (degrees, ICRS).
        #[arg(long, requires = "ra")]
        dec: Option<String>,
        /// Table description.
        #[arg(long)]
        description: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Publish the FITS images and cubes under VOLUME[/PREFIX] in ivoa.obscore (SIA, DataLink,
    /// SODA): only headers are read, and a rerun reads only new or changed files.
    Images {
        /// VOLUME or VOLUME/PREFIX, a volume of the config.
        target: String,
        /// obs_collection (default: the volume name).
        #[arg(long)]
        collection: Option<String>,
        /// calib_level of the collection (default 2).
        #[arg(long)]
        calib_level: Option<i32>,
        /// facility_name where headers have no TELESCOP.
        #[arg(long)]
        facility: Option<String>,
        /// instrument_name where headers have no INSTRUME.
        #[arg(long)]
        instrument: Option<String>,
        /// Authority of the dataset identifiers (ivo://AUTHORITY/...; default colo.local).
        #[arg(long)]
        authority: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn with_listen(
    mut settings: config::ServiceSettings,
    listen: Option<String>,
) -> Result<config::ServiceSettings> {
    if let Some(listen) = listen {
        settings.listen = listen.parse().with_context(|| {
            format!("--listen {listen:?}: expected host:port, e.g. 127.0.0.1:8765")
        })?;
    }
    Ok(settings)
}

fn config_path(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None if PathBuf::from("colo.toml").exists() => Ok(PathBuf::from("colo.toml")),
        None => anyhow::bail!(
            "no config: pass --config FILE or create ./colo.toml (see README, \"Configuration\")"
        ),
    }
}

async fn volumes(config: PathBuf, timeout: Duration) -> Result<bool> {
    let settings = config::load(&config)?;
    let mut all_ok = true;
    println!("{:<16} {:<7} {:<48} STATUS", "NAME", "BACKEND", "URL");
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
            "{:<16} {:<7} {:<48} {}",
            spec.name,
            spec.backend_name(),
            spec.display_url,
            text
        );
    }
    Ok(all_ok)
}

async fn up(config: Option<PathBuf>, root: Option<PathBuf>, listen: Option<String>) -> Result<()> {
    let (mut settings, banner) = match config
        .or_else(|| Some(PathBuf::from("colo.toml")).filter(|p| p.exists()))
    {
        Some(path) => (config::load(&path)?, String::new()),
        None => {
            let home = config::colo_home();
            let dir = sample::ensure(&home)
                .await
                .context("preparing the sample mission")?;
            let services = config::service_settings(&Default::default(), "built-in sample config")?;
            let sample_dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                services::ensure_sample_tables(&sample_dir, &services)
            })
            .await?
            .context("publishing the sample catalogue")?;
            let raw = config::ColoConfig {
                volume: vec![colo_connectors::VolumeConfig {
                    name: Some("sample".into()),
                    url: Some(format!("file://{}", dir.display())),
                    metadata_ttl_secs: Some(3600),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let root = root
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_MOUNT_ROOT));
            let banner = format!(
                "colo: the sample mission (no config given). Try:\n  ls -l {r}/sample/images\n  python -c \"from astropy.io import fits; h = fits.open('{r}/sample/images/magpis_g10.5.fits', memmap=True); print(h[0].header['NAXIS1'], h[0].data[100:102, 100:104])\"\n  python -c \"import pyarrow.parquet as pq; print(pq.read_table('{r}/sample/catalogs/hip2.parquet', columns=['hip', 'ra_deg', 'dec_deg', 'hpmag']))\"",
                r = root.display()
            );
            (config::settings(raw, "built-in sample config")?, banner)
        }
    };
    if let Some(r) = root {
        settings.mount_root = r;
    }
    let service_settings = with_listen(settings.services.clone(), listen)?;
    let stack = std::sync::Arc::new(run::build(&settings)?);
    if !banner.is_empty() {
        // The sample's images: published once, then only new or changed files are read.
        let defaults = colo_vo_services::obscore::CollectionDefaults::new("sample");
        services::ingest_images(&service_settings, &stack, "sample/images", &defaults, true)
            .await
            .context("publishing the sample images")?;
    }
    let base = services::start(&service_settings, stack.volumes()).await?;
    services::announce(&base);
    let tap = format!("{base}/tap");
    let banner = if banner.is_empty() {
        banner
    } else {
        format!(
            "{banner}\n  python -c \"import pyvo; print(pyvo.dal.TAPService('{tap}').search('SELECT TOP 5 hip, ra_deg, dec_deg, hpmag FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), CIRCLE(56.75, 24.12, 1)) ORDER BY hpmag'))\"\n  python -c \"import pyvo; print(pyvo.dal.SIA2Service('{base}/sia').search(pos=(272.2, -19.8, 1)).to_table()['obs_publisher_did', 's_ra', 's_dec'])\""
        )
    };
    run::mount_stack_and_wait(&settings, stack, &banner).await
}

async fn main_inner(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Mount { config, root } => {
            let mut settings = config::load(&config_path(config)?)?;
            if let Some(r) = root {
                settings.mount_root = r;
            }
            run::mount_and_wait(&settings, "").await?;
            Ok(0)
        }
        Command::Volumes { config, timeout } => {
            let ok = volumes(config_path(config)?, Duration::from_secs(timeout)).await?;
            Ok(if ok { 0 } else { 1 })
        }
        Command::Up {
            config,
            root,
            listen,
        } => {
            up(config, root, listen).await?;
            Ok(0)
        }
        Command::Stats { url } => {
            metrics::stats(&url).await?;
            Ok(0)
        }
        Command::Serve { config, listen } => {
            let given = config.or_else(|| Some(PathBuf::from("colo.toml")).filter(|p| p.exists()));
            let settings = with_listen(config::load_services(given.as_deref())?, listen)?;
            services::serve_and_wait(&settings, given.as_deref()).await?;
            Ok(0)
        }
        Command::Ingest {
            what:
                IngestCommand::Catalog {
                    source,
                    table,
                    volume,
                    ra,
                    dec,
                    description,
                    config,
                },
        } => {
            let given = config.or_else(|| Some(PathBuf::from("colo.toml")).filter(|p| p.exists()));
            let settings = config::load_services(given.as_deref())?;
            let position = ra
                .zip(dec)
                .map(|(ra, dec)| colo_vo_services::catalog::PositionDescriptor { ra, dec });
            services::ingest_catalog(
                &settings,
                given.as_deref(),
                services::CatalogSource {
                    path: source,
                    volume,
                },
                &table,
                position,
                description,
            )
            .await?;
            Ok(0)
        }
        Command::Ingest {
            what:
                IngestCommand::Images {
                    target,
                    collection,
                    calib_level,
                    facility,
                    instrument,
                    authority,
                    config,
                },
        } => {
            let path = config_path(config)?;
            let full = config::load(&path)?;
            let stack = run::build(&full)?;
            let volume = target.split('/').next().unwrap_or(&target).to_string();
            let mut defaults = colo_vo_services::obscore::CollectionDefaults::new(
                collection.as_deref().unwrap_or(&volume),
            );
            if let Some(level) = calib_level {
                defaults.calib_level = level;
            }
            if let Some(authority) = authority {
                defaults.authority = authority;
            }
            defaults.facility_name = facility;
            defaults.instrument_name = instrument;
            services::ingest_images(&full.services, &stack, &target, &defaults, false).await?;
            Ok(0)
        }
    }
}

/// jemalloc, not glibc's allocator. Every cache block is a fresh 1 MiB buffer: glibc (with its mmap
/// threshold fixed, which kept RSS near the budget) mapped each and took a page fault per 4 KiB —
/// half of colo's CPU on a cold sequential read. jemalloc reuses freed blocks' memory, and with
/// the settings below gives back what it no longer uses within 200 ms (one arena: freed memory is
/// reused by any thread). Measured on a cold 1 GiB read (BENCHMARKS.md, "allocator"): CPU 3.6 →
/// 2.2 s per GiB. The memory budget leaves an eighth to the allocator for what it keeps
/// (`run::split_memory_budget`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings (its `malloc_conf`, read once at start).
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: a NUL-terminated static string under the name jemalloc reads its settings from.
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &[u8; 46] = b"narenas:1,dirty_decay_ms:200,muzzy_decay_ms:0\0";

fn main() {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("colo: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(main_inner(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("colo: {}", chain.join(": "));
            1
        }
    };
    std::process::exit(code);
}
