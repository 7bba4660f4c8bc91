//! The metrics endpoint (Prometheus text format 0.0.4 at `GET /metrics`) and `colo stats`.
//!
//! Every metric name is a constant here. Sources: the VFS core's operation counts and latency
//! histograms (`colo_vfs::metrics`), the cache tiers' hits and memory use, and each volume's origin
//! requests by kind and bytes (`Metered` connectors). The origin request count is the regression
//! metric for mount performance.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use colo_vfs::metrics::{FsOp, LATENCY_BUCKETS_SECS};

use crate::stack::Stack;
use colo_cache::PendingSummary;
use colo_cache::write_back::WriteBackStats;

pub const FS_OPERATION_SECONDS: &str = "colo_fs_operation_seconds";
pub const FS_OPERATION_ERRORS: &str = "colo_fs_operation_errors_total";
pub const FS_READ_BYTES: &str = "colo_fs_read_bytes_total";
pub const FS_FAST_READS: &str = "colo_fs_fast_reads_total";
pub const FS_OPENS_KEEP_CACHE: &str = "colo_fs_opens_keep_page_cache_total";
pub const FS_OPENS_PASSTHROUGH: &str = "colo_fs_opens_passthrough_total";
pub const FS_OPENS_PASSTHROUGH_OLDER: &str = "colo_fs_opens_passthrough_older_version_total";
pub const FS_KERNEL_PAGES_DROPPED: &str = "colo_fs_kernel_pages_dropped_total";
pub const FS_OPEN_HANDLES: &str = "colo_fs_open_handles";
pub const FS_INODES: &str = "colo_fs_inodes";
pub const ORIGIN_REQUESTS: &str = "colo_origin_requests_total";
pub const ORIGIN_BYTES: &str = "colo_origin_bytes_total";
pub const ORIGIN_ERRORS: &str = "colo_origin_errors_total";
pub const ORIGIN_LATENCY: &str = "colo_origin_latency_seconds";
pub const ORIGIN_THROUGHPUT: &str = "colo_origin_throughput_bytes_per_second";
pub const CACHE_RANDOM_FILLS: &str = "colo_cache_random_fills_total";
pub const CACHE_HITS: &str = "colo_cache_hits_total";
pub const PREFETCH_BYTES: &str = "colo_prefetch_bytes_total";
pub const PREFETCH_UNREAD_BYTES: &str = "colo_prefetch_unread_bytes";
pub const CACHE_MISSES: &str = "colo_cache_misses_total";
pub const CACHE_MEMORY_BYTES: &str = "colo_cache_memory_bytes";
pub const CACHE_WHOLE_FILES: &str = "colo_cache_whole_files_total";
pub const CACHE_MEMORY_BUDGET_BYTES: &str = "colo_cache_memory_budget_bytes";
pub const FETCH_IN_FLIGHT_BYTES: &str = "colo_fetch_in_flight_bytes";
pub const FETCH_BUDGET_BYTES: &str = "colo_fetch_budget_bytes";
pub const WRITE_PENDING_CHANGES: &str = "colo_write_pending_changes";
pub const WRITE_PENDING_BYTES: &str = "colo_write_pending_bytes";
pub const WRITE_OLDEST_PENDING_SECONDS: &str = "colo_write_oldest_pending_seconds";
pub const WRITE_UPLOADS: &str = "colo_write_uploads_total";
pub const WRITE_UPLOADED_BYTES: &str = "colo_write_uploaded_bytes_total";
pub const WRITE_CONFLICTS: &str = "colo_write_conflicts_total";
pub const WRITE_RETRIES: &str = "colo_write_retries_total";
pub const WRITE_FAILED: &str = "colo_write_failed_total";
pub const WRITE_LOST: &str = "colo_write_lost_total";
pub const WRITE_LAST_ERROR: &str = "colo_write_last_error";

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One metric family: its HELP and TYPE lines, then a sample per (labels, value); `labels` are
/// `key="value"` pairs already joined, empty for an unlabelled sample.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    header(out, name, kind, help);
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// What colo has learned each volume's requests cost (`colo_vfs::plan` decides with it), and
/// the files it fetched whole because of it.
fn origin_cost_metrics(out: &mut String, stack: &Stack) {
    header(
        out,
        ORIGIN_LATENCY,
        "gauge",
        "Each volume's request latency as colo has learned it from its requests (20 ms until it answers).",
    );
    for (volume, reader) in &stack.readers {
        let latency = reader.origin_cost().latency_secs;
        let _ = writeln!(
            out,
            "{ORIGIN_LATENCY}{{volume=\"{}\"}} {latency:.6}",
            label(volume)
        );
    }
    family(
        out,
        ORIGIN_THROUGHPUT,
        "gauge",
        "Each volume's throughput per request once its latency is paid, as colo has learned it.",
        stack.readers.iter().map(|(v, r)| {
            let rate = r.origin_cost().bytes_per_sec;
            (format!("volume=\"{}\"", label(v)), rate as u64)
        }),
    );
    family(
        out,
        CACHE_RANDOM_FILLS,
        "counter",
        "Files fetched whole in the background because their reader jumped around in them long enough.",
        stack.readers.iter().map(|(v, r)| {
            let fills = r.stats().fills.load(Ordering::Relaxed);
            (format!("volume=\"{}\"", label(v)), fills)
        }),
    );
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric of the write-back queue: name, help, value.
type PendingMetric = (&'static str, &'static str, fn(&PendingSummary) -> u64);
/// A counter of the write-back: name, help, value.
type WriteBackCounter = (&'static str, &'static str, fn(&WriteBackStats) -> u64);

/// Per read-write volume: what waits for the origin, and what happened to earlier changes.
fn write_back_metrics(out: &mut String, stack: &Stack) {
    let write_backs = stack.write_backs.lock().clone();
    let volumes: Vec<(
        String,
        colo_cache::PendingSummary,
        &colo_cache::write_back::WriteBackStats,
    )> = write_backs
        .iter()
        .map(|(v, wb)| (format!("volume=\"{}\"", label(v)), wb.pending(), wb.stats()))
        .collect();
    let gauges: [PendingMetric; 3] = [
        (
            WRITE_PENDING_CHANGES,
            "Changes on each read-write volume not yet applied at its origin.",
            |p| p.changes as u64,
        ),
        (
            WRITE_PENDING_BYTES,
            "Bytes of pending uploads on each read-write volume.",
            |p| p.bytes,
        ),
        (
            WRITE_OLDEST_PENDING_SECONDS,
            "Age of the oldest pending change on each read-write volume.",
            |p| p.oldest.map(|d| d.as_secs()).unwrap_or(0),
        ),
    ];
    for (name, help, get) in gauges {
        let samples = volumes.iter().map(|(l, p, _)| (l.clone(), get(p)));
        family(out, name, "gauge", help, samples);
    }
    let counters: [WriteBackCounter; 6] = [
        (
            WRITE_UPLOADS,
            "Files uploaded to each read-write volume's origin.",
            |s| s.uploads.load(Ordering::Relaxed),
        ),
        (
            WRITE_UPLOADED_BYTES,
            "Bytes uploaded to each read-write volume's origin.",
            |s| s.uploaded_bytes.load(Ordering::Relaxed),
        ),
        (
            WRITE_CONFLICTS,
            "Uploads kept beside an origin copy changed by someone else (conflict names).",
            |s| s.conflicts.load(Ordering::Relaxed),
        ),
        (
            WRITE_RETRIES,
            "Attempts to apply a change that found the origin unreachable.",
            |s| s.retries.load(Ordering::Relaxed),
        ),
        (
            WRITE_FAILED,
            "Changes the origin refused for good (their bytes are kept in the write-back area's failed/).",
            |s| s.failed.load(Ordering::Relaxed),
        ),
        (
            WRITE_LOST,
            "Closed files never fsynced whose staged bytes a power loss took before they went up (found torn at start; the origin keeps its earlier version).",
            |s| s.lost.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        let samples = volumes.iter().map(|(l, _, s)| (l.clone(), get(s)));
        family(out, name, "counter", help, samples);
    }
    let errors = volumes.iter().filter_map(|(l, _, s)| {
        let e = s.last_error.lock().clone()?;
        Some((format!("{l},error=\"{}\"", label(&e)), 1))
    });
    family(
        out,
        WRITE_LAST_ERROR,
        "gauge",
        "The last error a change on each read-write volume met at its origin (the text is the label).",
        errors,
    );
}

/// Renders every metric of a running mount.
pub async fn render(stack: &Stack) -> String {
    let mut out = String::new();
    let fs = stack.core.stats();
    header(
        &mut out,
        FS_OPERATION_SECONDS,
        "histogram",
        "Latency of filesystem operations answered by colo.",
    );
    for op in FsOp::ALL {
        let (buckets, sum, count) = fs.latency(op).snapshot();
        for (le, value) in LATENCY_BUCKETS_SECS.iter().zip(&buckets) {
            let _ = writeln!(
                out,
                "{FS_OPERATION_SECONDS}_bucket{{op=\"{}\",le=\"{le}\"}} {value}",
                op.name()
            );
        }
        let _ = writeln!(
            out,
            "{FS_OPERATION_SECONDS}_bucket{{op=\"{}\",le=\"+Inf\"}} {}",
            op.name(),
            buckets.last().copied().unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "{FS_OPERATION_SECONDS}_sum{{op=\"{}\"}} {sum}",
            op.name()
        );
        let _ = writeln!(
            out,
            "{FS_OPERATION_SECONDS}_count{{op=\"{}\"}} {count}",
            op.name()
        );
    }
    let ops = FsOp::ALL.map(|op| (format!("op=\"{}\"", op.name()), fs.errors(op)));
    family(
        &mut out,
        FS_OPERATION_ERRORS,
        "counter",
        "Filesystem operations that failed.",
        ops,
    );
    let single = |value: u64| [(String::new(), value)];
    family(
        &mut out,
        FS_READ_BYTES,
        "counter",
        "Bytes returned to readers.",
        single(fs.read_bytes.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_FAST_READS,
        "counter",
        "Reads answered from the memory tier on the FUSE thread.",
        single(fs.fast_reads.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_OPENS_KEEP_CACHE,
        "counter",
        "Opens that kept the kernel page cache (file unchanged since the last open).",
        single(fs.opens_keep_cache.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_OPENS_PASSTHROUGH,
        "counter",
        "Opens whose reads the kernel serves from a whole-file copy in the cache (FUSE passthrough).",
        single(fs.opens_passthrough.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_OPENS_PASSTHROUGH_OLDER,
        "counter",
        "Opens of a file changed at the origin that read the version a passed-through handle still had open.",
        single(fs.opens_passthrough_older.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_KERNEL_PAGES_DROPPED,
        "counter",
        "Files whose pages the kernel was told to drop once their whole-file copy was made.",
        single(fs.kernel_pages_dropped.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        FS_OPEN_HANDLES,
        "gauge",
        "Open file handles.",
        single(stack.core.open_handles() as u64),
    );
    family(
        &mut out,
        FS_INODES,
        "gauge",
        "Inodes numbered (bounded by what the kernel still references: FUSE forget).",
        single(stack.core.inode_count() as u64),
    );

    write_back_metrics(&mut out, stack);

    // Per volume: [stat, read, list, bytes, errors].
    let origin: Vec<(String, [u64; 5])> = stack
        .origin
        .lock()
        .iter()
        .map(|(v, s)| (label(v), s.snapshot()))
        .collect();
    let requests = origin
        .iter()
        .flat_map(|(volume, [stat, read, list, _, _])| {
            [("get", *read), ("head", *stat), ("list", *list)]
                .map(|(kind, value)| (format!("volume=\"{volume}\",kind=\"{kind}\""), value))
        });
    family(
        &mut out,
        ORIGIN_REQUESTS,
        "counter",
        "Requests to each volume's origin, by kind.",
        requests,
    );
    let bytes = origin
        .iter()
        .map(|(volume, s)| (format!("volume=\"{volume}\""), s[3]));
    family(
        &mut out,
        ORIGIN_BYTES,
        "counter",
        "Bytes read from each volume's origin.",
        bytes,
    );
    let errors = origin
        .iter()
        .map(|(volume, s)| (format!("volume=\"{volume}\""), s[4]));
    family(
        &mut out,
        ORIGIN_ERRORS,
        "counter",
        "Failed requests to each volume's origin.",
        errors,
    );

    let prefetch: Vec<(String, u64, u64)> = stack
        .readers
        .iter()
        .map(|(v, r)| {
            let fetched = r.stats().prefetched_bytes.load(Ordering::Relaxed);
            let read = r.stats().prefetch_read_bytes.load(Ordering::Relaxed);
            (format!("volume=\"{}\"", label(v)), fetched, read)
        })
        .collect();
    family(
        &mut out,
        PREFETCH_BYTES,
        "counter",
        "Bytes prefetch brought from each volume's origin.",
        prefetch.iter().map(|(l, fetched, _)| (l.clone(), *fetched)),
    );
    family(
        &mut out,
        PREFETCH_UNREAD_BYTES,
        "gauge",
        "Of the prefetched bytes, those no reader has read (yet): wasted once evicted.",
        prefetch
            .iter()
            .map(|(l, fetched, read)| (l.clone(), fetched.saturating_sub(*read))),
    );

    origin_cost_metrics(&mut out, stack);

    let tiers = stack.cache.stats();
    let hits = [
        (
            "tier=\"memory\"".to_string(),
            tiers.memory_hits.load(Ordering::Relaxed),
        ),
        (
            "tier=\"disk\"".to_string(),
            tiers.disk_hits.load(Ordering::Relaxed),
        ),
    ];
    family(
        &mut out,
        CACHE_HITS,
        "counter",
        "Block reads answered by a cache tier.",
        hits,
    );
    family(
        &mut out,
        CACHE_MISSES,
        "counter",
        "Block reads that went to the origin.",
        single(tiers.misses.load(Ordering::Relaxed)),
    );
    let memory = match stack.cache.memory() {
        Some(m) => m.weighted_size().await,
        None => 0,
    };
    family(
        &mut out,
        CACHE_MEMORY_BYTES,
        "gauge",
        "Bytes held by the memory tier.",
        single(memory),
    );
    family(
        &mut out,
        CACHE_MEMORY_BUDGET_BYTES,
        "gauge",
        "The memory tier's cap (the memory budget less the fetch budget).",
        single(stack.memory_tier_bytes),
    );
    if let Some(whole) = &stack.whole_files {
        let stats = whole.stats();
        family(
            &mut out,
            CACHE_WHOLE_FILES,
            "counter",
            "Whole-file copies for FUSE passthrough: made, dropped (changed on disk), evicted (cap).",
            [
                ("made", &stats.made),
                ("dropped_changed", &stats.dropped_changed),
                ("evicted", &stats.evicted),
            ]
            .into_iter()
            .map(|(what, n)| (format!("event=\"{what}\""), n.load(Ordering::Relaxed)))
            .collect::<Vec<_>>(),
        );
    }
    family(
        &mut out,
        FETCH_IN_FLIGHT_BYTES,
        "gauge",
        "Bytes of origin fetches in flight (not yet in the memory tier).",
        single(stack.fetch_budget.in_flight_bytes()),
    );
    family(
        &mut out,
        FETCH_BUDGET_BYTES,
        "gauge",
        "The most bytes fetches may hold in flight together (a share of the memory budget).",
        single(stack.fetch_budget.cap_bytes()),
    );
    out
}

/// Serves `/metrics` in the background. When the address is taken (another colo runs), a free port
/// is used instead and named on stderr: the mount matters more than a fixed metrics port.
pub async fn serve(stack: Arc<Stack>, listen: std::net::SocketAddr) -> Option<String> {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            let fallback = std::net::SocketAddr::new(listen.ip(), 0);
            match tokio::net::TcpListener::bind(fallback).await {
                Ok(listener) => {
                    eprintln!(
                        "colo: metrics address {listen} is taken ({e}); using a free port instead"
                    );
                    listener
                }
                Err(e) => {
                    eprintln!("colo: metrics endpoint not started on {listen}: {e}");
                    return None;
                }
            }
        }
    };
    let address = listener.local_addr().ok()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let stack = stack.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    render(&stack).await,
                )
            }
        }),
    );
    tokio::spawn(colo_vo_services::serve::serve(
        listener,
        app,
        colo_vo_services::serve::ClientLimits::default(),
    ));
    Some(format!("http://{address}/metrics"))
}

/// `colo stats`: the non-zero series of a running colo's endpoint, one per line.
pub async fn stats(url: &str) -> Result<()> {
    let text = fetch(url).await?;
    for line in text.lines() {
        if line.starts_with('#') || line.contains("_bucket{") {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if value.parse::<f64>().is_ok_and(|v| v != 0.0) {
            println!("{series:<70} {value}");
        }
    }
    Ok(())
}

/// `colo status`: per read-write volume, what waits for the origin and what happened (from a
/// running colo's metrics endpoint).
pub async fn status(url: &str) -> Result<()> {
    let text = fetch(url).await?;
    let mut volumes: std::collections::BTreeMap<String, std::collections::BTreeMap<&str, String>> =
        std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("colo_write_")) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let Some(volume) = labels
            .strip_prefix("volume=\"")
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let fields = volumes.entry(volume.to_string()).or_default();
        if name == WRITE_LAST_ERROR {
            let error = labels.split_once("error=\"").map_or("", |(_, e)| e);
            fields.insert("error", error.trim_end_matches("\"}").replace("\\\"", "\""));
        } else {
            fields.insert(
                match name {
                    WRITE_PENDING_CHANGES => "pending",
                    WRITE_PENDING_BYTES => "bytes",
                    WRITE_OLDEST_PENDING_SECONDS => "oldest",
                    WRITE_UPLOADS => "uploads",
                    WRITE_CONFLICTS => "conflicts",
                    WRITE_RETRIES => "retries",
                    WRITE_FAILED => "failed",
                    WRITE_LOST => "lost",
                    _ => continue,
                },
                value.to_string(),
            );
        }
    }
    if volumes.is_empty() {
        println!("no read-write volumes (mode = \"read-write\" in a volume's table makes one)");
        return Ok(());
    }
    println!(
        "{:<16} {:>8} {:>12} {:>10} {:>9} {:>9} {:>8} {:>7} {:>5}  LAST ERROR",
        "VOLUME",
        "PENDING",
        "BYTES",
        "OLDEST_S",
        "UPLOADED",
        "CONFLICTS",
        "RETRIES",
        "FAILED",
        "LOST"
    );
    for (volume, f) in &volumes {
        let get = |k: &str| f.get(k).map_or("0", String::as_str);
        println!(
            "{:<16} {:>8} {:>12} {:>10} {:>9} {:>9} {:>8} {:>7} {:>5}  {}",
            volume,
            get("pending"),
            get("bytes"),
            get("oldest"),
            get("uploads"),
            get("conflicts"),
            get("retries"),
            get("failed"),
            get("lost"),
            f.get("error").map_or("-", String::as_str)
        );
    }
    Ok(())
}

async fn fetch(url: &str) -> Result<String> {
    Ok(colo_connectors::http_client_builder()
        .build()?
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("no colo metrics at {url} (is colo mount or colo up running? --url to point elsewhere)"))?
        .text()
        .await?)
}
