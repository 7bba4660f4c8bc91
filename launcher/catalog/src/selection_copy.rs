//! Materialising a selection: copying its files into one of the caller's writable volumes
//! (`copySelection`, `colo selection copy`), for users who want to change them or keep them
//! beside their results. The selection itself stays a lazy, read-only view; the copy is theirs.
//!
//! Rules:
//! - the target is a volume the caller sees with read-write access (their own, their team's, or
//!   granted read-write); anything else is `NotFound` or `Forbidden`, as everywhere;
//! - the files land under `folder/` (default: the selection's name) with their archive paths;
//! - nothing of the user's is overwritten: a file already there with the archive file's size is
//!   taken as copied (so a copy cut off half-way is finished by running it again), a file of
//!   another size stops the copy before anything is written, naming it;
//! - each file reaches the target whole or not at all (the connectors' `write_file` contract:
//!   one PUT, or a temporary name renamed into place), read from the archive in bounded pieces
//!   into a temporary file, so memory stays flat whatever the file's size; a file that changes
//!   at the archive during its copy fails the copy (read with the identity seen at its start).
//!
//! The copy goes from the archive volume's connector to the target's, not through the mount: the
//! mount shows the new files when its metadata of that folder next expires.

use crate::Catalog;
use crate::auth::{Caller, Scope};
use crate::error::{CatalogError, Result};
use crate::grants::{Access, VisibleVolume};
use colo_connectors::{Connector, EntryKind, ObjectPath, VolumeSpec, open_volume};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Bytes read from the archive per request while copying.
pub const PIECE_BYTES: u64 = 8 << 20;

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The target volume, as the caller names it.
    pub volume: String,
    /// The folder in it that holds the files.
    pub folder: String,
    /// Files written by this copy, and their bytes.
    pub copied: u64,
    pub bytes: u64,
    /// Files that were there already (an earlier copy).
    pub already_there: u64,
}

impl Catalog {
    /// The caller's volume `into`, if they may write to it.
    fn writable_target(&self, by: &Caller, into: &str) -> Result<VisibleVolume> {
        let target = self
            .visible_volume(by, into)?
            .ok_or_else(|| CatalogError::NotFound {
                what: "volume",
                name: into.chars().take(200).collect(),
            })?;
        if target.access != Access::ReadWrite {
            return Err(CatalogError::Forbidden {
                reason: format!(
                    "volume '{}' is read-only for you: copy into one of your writable volumes",
                    target.view_name
                ),
            });
        }
        Ok(target)
    }

    /// Copies the files of the caller's selection `name` from `archive` (the connector of the
    /// selection's archive volume) into their writable volume `into`, under `folder` (default:
    /// the selection's name). See the module note for the rules.
    pub async fn copy_selection(
        &self,
        by: &Caller,
        name: &str,
        into: &str,
        folder: Option<&str>,
        archive: Arc<dyn Connector>,
    ) -> Result<CopyReport> {
        by.require(Scope::Volumes)?;
        let selection = self
            .selections(&by.user.name)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| CatalogError::NotFound {
                what: "selection",
                name: name.chars().take(64).collect(),
            })?;
        let target = self.writable_target(by, into)?;
        let folder_text = folder.unwrap_or(&selection.name);
        let folder = ObjectPath::parse(folder_text)
            .ok()
            .filter(|p| !p.is_root())
            .ok_or_else(|| CatalogError::BadRequest {
                detail: format!(
                    "folder '{}': a relative path of names without '.' or '..' segments",
                    folder_text.chars().take(200).collect::<String>()
                ),
            })?;
        let config = self.volume_config_with_secrets(&target.record)?;
        let bad_target = |detail: String| CatalogError::BadVolume {
            volume: target.view_name.clone(),
            detail,
        };
        let spec = VolumeSpec::from_config(&config).map_err(|e| bad_target(e.to_string()))?;
        let opened = open_volume(&spec).map_err(|e| bad_target(e.to_string()))?;
        let redact = |e: colo_connectors::ConnectorError| opened.redactor.redact(&e.to_string());
        let dest = opened.connector;

        // Plan every file first: nothing is written when one would overwrite the user's data.
        let mut todo = Vec::new();
        let mut report = CopyReport {
            volume: target.view_name.clone(),
            folder: folder.as_str().to_string(),
            copied: 0,
            bytes: 0,
            already_there: 0,
        };
        for (path, _) in &selection.files {
            let from = ObjectPath::parse(path).map_err(|e| CatalogError::BadVolume {
                volume: selection.volume.clone(),
                detail: e.to_string(),
            })?;
            let to = ObjectPath::parse(&format!("{}/{}", folder.as_str(), from.as_str()))
                .map_err(|e| bad_target(e.to_string()))?;
            let source = archive
                .stat(&from)
                .await
                .map_err(|e| CatalogError::BadVolume {
                    volume: selection.volume.clone(),
                    detail: format!("reading '{from}': {e}"),
                })?;
            match dest.stat(&to).await {
                Ok(there) if there.kind == EntryKind::Directory => {
                    return Err(CatalogError::Exists {
                        what: "folder (where a selected file goes)",
                        name: format!("{}/{}", target.view_name, to.as_str()),
                    });
                }
                Ok(there) if there.size == source.size => report.already_there += 1,
                Ok(_) => {
                    return Err(CatalogError::Exists {
                        what: "different file (nothing was copied; choose another folder)",
                        name: format!("{}/{}", target.view_name, to.as_str()),
                    });
                }
                Err(e) if e.kind() == colo_connectors::ErrorKind::NotFound => {
                    todo.push((from, to, source))
                }
                Err(e) => return Err(bad_target(redact(e))),
            }
        }

        let spool = SpoolFile::new()?;
        for (from, to, source) in todo {
            let expect = source.identity();
            let mut file = tokio::fs::File::create(&spool.0)
                .await
                .map_err(|e| spool.io(e))?;
            let mut at = 0;
            while at < source.size {
                let end = (at + PIECE_BYTES).min(source.size);
                let bytes = archive
                    .read_range(&from, at..end, Some(&expect))
                    .await
                    .map_err(|e| CatalogError::BadVolume {
                        volume: selection.volume.clone(),
                        detail: format!("reading '{from}': {e}"),
                    })?;
                file.write_all(&bytes).await.map_err(|e| spool.io(e))?;
                at = end;
            }
            file.flush().await.map_err(|e| spool.io(e))?;
            drop(file);
            dest.write_file(&to, &spool.0)
                .await
                .map_err(|e| bad_target(format!("writing '{to}': {}", redact(e))))?;
            report.copied += 1;
            report.bytes += source.size;
        }
        tracing::info!(
            user = %by.user.name, selection = name, volume = %report.volume, folder = %report.folder,
            copied = report.copied, bytes = report.bytes, already_there = report.already_there,
            "selection copied"
        );
        Ok(report)
    }
}

/// A temporary file for one file's bytes on their way, removed when dropped.
struct SpoolFile(std::path::PathBuf);

impl SpoolFile {
    fn new() -> Result<SpoolFile> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "colo-copy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(SpoolFile(path))
    }

    fn io(&self, e: std::io::Error) -> CatalogError {
        CatalogError::Io {
            path: self.0.clone(),
            detail: e.to_string(),
        }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
