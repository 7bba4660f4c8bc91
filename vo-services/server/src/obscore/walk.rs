//! `colo ingest images`: find FITS files under a volume prefix, read their headers, update the
//! manifest.
//!
//! The walk lists folders recursively (one LIST per folder). A file whose version (ETag, or size and
//! mtime) matches its manifest record is kept without a single read; new and changed files have
//! their headers read — a few KiB each through exact ranged reads — up to
//! [`CONCURRENT_FILES`] at a time. Records of files that disappeared from the walked prefix are
//! dropped. Files that are not FITS or have no usable celestial WCS are reported and skipped.

use std::collections::HashMap;

use colo_connectors::{EntryKind, ObjectPath};
use futures::StreamExt;

use super::publish::Manifest;
use super::{CollectionDefaults, FileRef, ImageRecord, describe};
use colo_astro::AstroError;
use colo_astro::fits::read_layout;

use crate::error::VoError;
use crate::volumes::Volumes;

/// Files whose headers are read at the same time.
pub const CONCURRENT_FILES: usize = 8;

/// Names treated as FITS.
pub fn is_fits_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// What one ingest run did.
#[derive(Debug, Default)]
pub struct WalkReport {
    /// Files whose headers were read and that were published.
    pub added: Vec<String>,
    /// Files kept unchanged from the manifest.
    pub unchanged: usize,
    /// Records dropped because their file is gone.
    pub removed: Vec<String>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Published files with something the operator should know.
    pub warnings: Vec<(String, String)>,
}

/// Progress: (files done, files found).
pub type Progress<'a> = &'a mut (dyn FnMut(usize, usize) + Send);

/// Walks `prefix` on `volume` and updates the manifest under `tables_dir`.
pub async fn ingest_images(
    volumes: &Volumes,
    volume: &str,
    prefix: &str,
    defaults: &CollectionDefaults,
    tables_dir: &std::path::Path,
    progress: Progress<'_>,
) -> Result<WalkReport, VoError> {
    let reader = volumes.get(volume).ok_or_else(|| VoError::UnknownVolume {
        volume: volume.to_string(),
    })?;
    let prefix = prefix.trim_matches('/');
    let files = list_fits(reader.connector().as_ref(), volume, prefix).await?;
    let mut manifest = Manifest::read(tables_dir)?;
    let mut report = WalkReport::default();

    let previous: HashMap<String, ImageRecord> = manifest
        .records
        .iter()
        .filter(|r| r.volume == volume)
        .map(|r| (r.path.clone(), r.clone()))
        .collect();
    let found: std::collections::HashSet<&str> = files.iter().map(|(p, ..)| p.as_str()).collect();
    let in_prefix = |path: &str| prefix.is_empty() || path.starts_with(&format!("{prefix}/"));
    manifest.records.retain(|r| {
        let gone = r.volume == volume && in_prefix(&r.path) && !found.contains(r.path.as_str());
        if gone {
            report.removed.push(r.path.clone());
        }
        !gone
    });

    let mut todo = Vec::new();
    for (path, identity, size) in &files {
        match previous.get(path) {
            Some(r) if &r.identity == identity && r.obs_collection == defaults.collection => {
                report.unchanged += 1;
            }
            _ => todo.push((path.clone(), identity.clone(), *size)),
        }
    }
    let total = todo.len();
    progress(0, total);
    let mut results = futures::stream::iter(todo.into_iter().map(|(path, identity, size)| {
        let volumes = volumes.clone();
        let defaults = defaults.clone();
        async move {
            let outcome = read_one(&volumes, volume, &path, &identity, size, &defaults).await;
            (path, outcome)
        }
    }))
    .buffer_unordered(CONCURRENT_FILES);
    let mut done = 0;
    let mut fresh = Vec::new();
    while let Some((path, outcome)) = results.next().await {
        done += 1;
        progress(done, total);
        match outcome {
            Ok(described) => {
                for w in described.warnings {
                    report.warnings.push((path.clone(), w));
                }
                report.added.push(path.clone());
                fresh.push(described.record);
            }
            Err(reason) => report.skipped.push((path, reason)),
        }
    }
    manifest
        .records
        .retain(|r| !(r.volume == volume && fresh.iter().any(|f| f.path == r.path)));
    // A file that is skipped now (changed into something unusable) loses its old record.
    manifest
        .records
        .retain(|r| !(r.volume == volume && report.skipped.iter().any(|(p, _)| p == &r.path)));
    manifest.records.extend(fresh);
    manifest
        .records
        .sort_by(|a, b| (&a.volume, &a.path).cmp(&(&b.volume, &b.path)));
    manifest.write(tables_dir)?;
    report.added.sort();
    report.skipped.sort();
    Ok(report)
}

async fn read_one(
    volumes: &Volumes,
    volume: &str,
    path: &str,
    identity: &str,
    size: u64,
    defaults: &CollectionDefaults,
) -> Result<super::Described, String> {
    let file = volumes
        .open(volume, path)
        .await
        .map_err(|e| e.to_string())?;
    let layout = read_layout(&file).await.map_err(|e| match e {
        AstroError::Fits { message, .. } => message,
        other => other.to_string(),
    })?;
    // The version actually read (it may have changed since the listing).
    let read_identity = file.version().identity.to_string();
    let identity = if read_identity.is_empty() {
        identity.to_string()
    } else {
        read_identity
    };
    let file_ref = FileRef {
        volume,
        path,
        identity: &identity,
        size: file.version().size.max(size),
    };
    describe(&file_ref, &layout, defaults)
}

/// Every FITS file under `prefix`: (path, identity, size).
async fn list_fits(
    connector: &dyn colo_connectors::Connector,
    volume: &str,
    prefix: &str,
) -> Result<Vec<(String, String, u64)>, VoError> {
    let mut out = Vec::new();
    let mut folders = vec![prefix.to_string()];
    while let Some(folder) = folders.pop() {
        let path = ObjectPath::parse(&folder).map_err(|e| VoError::volume(volume, e))?;
        let entries = connector
            .list(&path)
            .await
            .map_err(|e| VoError::volume(volume, e))?;
        for entry in entries {
            let child = if folder.is_empty() {
                entry.name.clone()
            } else {
                format!("{folder}/{}", entry.name)
            };
            match entry.meta.kind {
                EntryKind::Directory => folders.push(child),
                EntryKind::File if is_fits_name(&entry.name) => {
                    out.push((child, entry.meta.identity().to_string(), entry.meta.size));
                }
                // Links are not followed (a link cycle would never end the walk).
                EntryKind::File | EntryKind::Symlink => {}
            }
        }
    }
    out.sort();
    Ok(out)
}
