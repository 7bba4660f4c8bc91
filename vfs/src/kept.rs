//! Modes and times on writable volumes whose origin cannot keep them (S3, WebDAV, FTP and SFTP
//! through the write-back): colo keeps what programs set, by path, so that they see it — a file
//! created `0600` shows `0600` and `chmod` sticks; it belongs to whoever made it until a `chown`
//! (who may change what is the kernel's to check: the mount has `default_permissions`); `touch -d`, `cp -p`, `tar x` and `utimensat`
//! show the times they set (atime too, to the nanosecond); a folder's mtime and ctime move when an
//! entry is added, removed or renamed in it; a file's ctime moves with each change of its
//! attributes. (Direct volumes keep all of this in their own directory: [`crate::direct`].)
//!
//! What is not promised, and why: the origin has nowhere to put these (an object's mtime is the
//! moment of its upload), so they live in colo's memory and in a log in the volume's write-back
//! area, replayed when colo starts again ([`crate::kept_log`]) — not seen by other clients of the
//! origin — and a change another client makes at
//! the origin shows its bytes and size at once but keeps the mode and the times kept here until the
//! file is written, removed or renamed through colo. Entries follow renames (a folder's whole
//! subtree), go with `unlink`/`rmdir`, and are bounded ([`KEPT_MAX_ENTRIES`]: beyond it, a change
//! is not kept and the file shows the volume's defaults, as before this layer).
//!
//! Also here: the largest file a writable volume takes ([`MAX_FILE_BYTES`]), so that a `truncate`
//! or a write beyond it fails with `EFBIG` instead of staging a sparse file no origin accepts.

use crate::change::NewEntry;
use crate::core::{Attr, NodeType, PosixAttr, VfsCore};
use crate::error::{Result, VfsError};
use crate::inode::Node;
use crate::kept_log::{Change, KeptLog};
use colo_connectors::EntryKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Entries kept at most, over all volumes.
pub const KEPT_MAX_ENTRIES: usize = 200_000;

/// The largest file a writable (non-direct) volume takes: S3's largest object (5 TiB), the
/// smallest limit among the backends.
pub const MAX_FILE_BYTES: u64 = 5 << 40;

/// What programs set on one path that the origin does not keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Permission bits (`0o7777`) from the create mode or a `chmod`.
    pub perm: Option<u16>,
    /// (uid, gid): the creator's, or from a `chown`.
    pub owner: Option<(u32, u32)>,
    pub atime: Option<SystemTime>,
    /// An mtime set by `utimensat` (until the next write), or a folder's last change of entries.
    pub mtime: Option<SystemTime>,
    pub ctime: Option<SystemTime>,
}

/// The kept entries, by volume slot and path, each volume's also in its log on disk when it has
/// a write-back area ([`crate::kept_log`]).
#[derive(Debug, Default)]
pub struct KeptAttrs {
    by_volume: HashMap<usize, VolumeKept>,
    len: usize,
}

/// One volume's entries and the log that keeps them across restarts.
#[derive(Debug, Default)]
struct VolumeKept {
    paths: HashMap<String, Kept>,
    log: Option<KeptLog>,
}

impl KeptAttrs {
    /// Volume slot `volume`'s entries; the first use reads its log in `dir` (none: memory only).
    fn volume(&mut self, volume: usize, dir: Option<&Path>) -> &mut VolumeKept {
        let len = &mut self.len;
        self.by_volume.entry(volume).or_insert_with(|| {
            let mut kept = VolumeKept::default();
            if let Some(dir) = dir {
                match KeptLog::open(dir, &mut kept.paths) {
                    Ok(log) => kept.log = Some(log),
                    Err(e) => tracing::warn!(
                        dir = %dir.display(),
                        error = %e,
                        "modes and times of this volume are kept in memory only: their log cannot be opened"
                    ),
                }
                *len += kept.paths.len();
            }
            kept
        })
    }

    /// What is kept for `path` of volume slot `volume` (its log in `dir`).
    pub fn get(&mut self, volume: usize, dir: Option<&Path>, path: &str) -> Option<Kept> {
        self.volume(volume, dir).paths.get(path).copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether volume slot `volume` is loaded and keeps nothing (unloaded: not known yet).
    pub fn holds_none(&self, volume: usize) -> bool {
        self.by_volume
            .get(&volume)
            .is_some_and(|v| v.paths.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Changes the entry of `path` (made if new, unless the table is full).
    pub fn update(
        &mut self,
        volume: usize,
        dir: Option<&Path>,
        path: &str,
        change: impl FnOnce(&mut Kept),
    ) {
        let full = self.len >= KEPT_MAX_ENTRIES;
        let vol = self.volume(volume, dir);
        let kept = match vol.paths.get_mut(path) {
            Some(kept) => {
                change(kept);
                *kept
            }
            None if full => return,
            None => {
                let mut kept = Kept::default();
                change(&mut kept);
                vol.paths.insert(path.to_string(), kept);
                self.len += 1;
                kept
            }
        };
        self.record(volume, Change::Set(path, &kept));
    }

    /// Changes the entry of `path` only if there is one (the write path: no allocation otherwise).
    pub fn update_existing(
        &mut self,
        volume: usize,
        dir: Option<&Path>,
        path: &str,
        change: impl FnOnce(&mut Kept),
    ) {
        if let Some(kept) = self.volume(volume, dir).paths.get_mut(path) {
            change(kept);
            let kept = *kept;
            self.record(volume, Change::Set(path, &kept));
        }
    }

    /// Forgets `path` and, for a folder, everything below it.
    pub fn remove(&mut self, volume: usize, dir: Option<&Path>, path: &str) {
        let removed = remove_below(&mut self.volume(volume, dir).paths, path);
        if removed > 0 {
            self.len -= removed;
            self.record(volume, Change::Remove(path));
        }
    }

    /// `from` (and, for a folder, everything below it) is now `to`; what `to` had goes.
    pub fn rename(&mut self, volume: usize, dir: Option<&Path>, from: &str, to: &str) {
        let vol = self.volume(volume, dir);
        let before = vol.paths.len();
        rename_below(&mut vol.paths, from, to);
        let after = vol.paths.len();
        self.len = self.len + after - before;
        self.record(volume, Change::Rename(from, to));
    }

    /// Writes `change` (already applied) to the volume's log; rewrites a log grown long. A log
    /// that cannot be written is dropped with a warning: the entries stay in memory.
    fn record(&mut self, volume: usize, change: Change<'_>) {
        let Some(vol) = self.by_volume.get_mut(&volume) else {
            return;
        };
        let Some(log) = vol.log.as_mut() else {
            return;
        };
        let mut written = log.append(&change);
        if written.is_ok() && log.wants_compaction(vol.paths.len()) {
            written = log.rewrite(&vol.paths);
        }
        if let Err(e) = written {
            tracing::warn!(error = %e, "modes and times of a volume are kept in memory only from now: their log cannot be written");
            vol.log = None;
        }
    }
}

/// Removes `path` and what is below it from `paths`; returns how many entries went.
pub(crate) fn remove_below(paths: &mut HashMap<String, Kept>, path: &str) -> usize {
    let before = paths.len();
    paths.remove(path);
    let below = format!("{path}/");
    paths.retain(|p, _| !p.starts_with(&below));
    before - paths.len()
}

/// Moves `from` and what is below it to `to`, replacing what `to` had; returns how many entries
/// went (those `to` and its subtree had).
pub(crate) fn rename_below(paths: &mut HashMap<String, Kept>, from: &str, to: &str) -> usize {
    let gone = remove_below(paths, to);
    let below = format!("{from}/");
    let moved: Vec<String> = paths
        .keys()
        .filter(|p| p.as_str() == from || p.starts_with(&below))
        .cloned()
        .collect();
    for old in moved {
        if let Some(kept) = paths.remove(&old) {
            paths.insert(format!("{to}{}", &old[from.len()..]), kept);
        }
    }
    gone
}

/// The permission bits a new entry gets from its `mode` and `umask`.
pub fn created_perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl VfsCore {
    /// The volume slot of `node` and its write-back area (where the log is) if its modes and
    /// times are kept here (writable, not direct).
    fn keeps(&self, node: &Node) -> Option<(usize, PathBuf)> {
        self.keeps_on(node.volume?)
    }

    fn keeps_on(&self, vol: usize) -> Option<(usize, PathBuf)> {
        let mount = self.vol(vol);
        let wb = mount
            .write_back
            .as_ref()
            .filter(|_| mount.direct_root.is_none())?;
        Some((vol, wb.dir().to_path_buf()))
    }

    /// `attr` of `node` with what is kept for it.
    pub(crate) fn with_kept(&self, node: &Node, mut attr: Attr) -> Attr {
        let Some((vol, dir)) = self.keeps(node) else {
            return attr;
        };
        let Some(kept) = self.kept.lock().get(vol, Some(&dir), node.path.as_str()) else {
            return attr;
        };
        attr.perm = kept.perm.unwrap_or(attr.perm);
        if let Some((uid, gid)) = kept.owner {
            (attr.uid, attr.gid) = (uid, gid);
        }
        attr.mtime = kept.mtime.unwrap_or(attr.mtime);
        if kept.atime.is_some() || kept.ctime.is_some() {
            let dir = attr.kind == EntryKind::Directory;
            attr.posix = Some(PosixAttr {
                node_type: NodeType::from(attr.kind),
                nlink: if dir { 2 } else { 1 },
                atime: kept.atime.unwrap_or(attr.mtime),
                ctime: kept.ctime.unwrap_or(attr.mtime),
                rdev: 0,
                blocks: attr.size.div_ceil(512),
                blksize: 128 * 1024,
            });
        }
        attr
    }

    /// Records a change of `node`'s attributes (`change` edits its entry; its ctime moves).
    pub(crate) fn keep(&self, node: &Node, change: impl FnOnce(&mut Kept)) {
        if let Some((vol, dir)) = self.keeps(node) {
            let now = SystemTime::now();
            self.kept
                .lock()
                .update(vol, Some(&dir), node.path.as_str(), |k| {
                    change(k);
                    k.ctime = Some(now);
                });
        }
    }

    /// `node` was just made in `pnode` (inode `parent`) by `new`'s caller: it gets the create
    /// mode and the caller as owner — the folder's group where the folder is set-group-ID, which
    /// new folders inherit — and `pnode`'s times move. Without a caller, the volume's defaults.
    pub(crate) fn keep_new(&self, parent: u64, pnode: &Node, node: &Node, new: Option<&NewEntry>) {
        self.keep_entries_changed(pnode);
        let Some(new) = new else {
            return;
        };
        let folder = self.attr_now(&self.state.lock(), parent, pnode);
        let mut perm = created_perm(new.mode, new.umask);
        let mut gid = new.gid;
        if folder.perm & 0o2000 != 0 {
            gid = folder.gid;
            if node.kind == EntryKind::Directory {
                perm |= 0o2000;
            }
        }
        let now = SystemTime::now();
        let folder_made = node.kind == EntryKind::Directory;
        self.keep(node, |k| {
            k.perm = Some(perm);
            k.owner = Some((new.uid, gid));
            // A new file's times are its staged copy's; a new folder has none of its own.
            if folder_made {
                (k.atime, k.mtime) = (Some(now), Some(now));
            }
        });
    }

    /// The entries of folder `node` changed: its mtime and ctime move to now.
    pub(crate) fn keep_entries_changed(&self, node: &Node) {
        let now = SystemTime::now();
        self.keep(node, |k| k.mtime = Some(now));
    }

    /// The bytes of `path` changed (a write or a truncate): its own mtime shows again.
    pub(crate) fn keep_written(&self, vol: usize, path: &str) {
        // The write path: nothing to look up on a volume whose (loaded) entries are none.
        if self.kept.lock().holds_none(vol) {
            return;
        }
        if let Some((vol, dir)) = self.keeps_on(vol) {
            self.kept
                .lock()
                .update_existing(vol, Some(&dir), path, |k| {
                    k.mtime = None;
                    k.ctime = None;
                });
        }
    }

    /// `node` is gone (with what was below it).
    pub(crate) fn keep_removed(&self, node: &Node) {
        if let Some((vol, dir)) = self.keeps(node) {
            self.kept.lock().remove(vol, Some(&dir), node.path.as_str());
        }
    }

    /// `node` moved to `to`.
    pub(crate) fn keep_renamed(&self, node: &Node, to: &str) {
        if let Some((vol, dir)) = self.keeps(node) {
            let now = SystemTime::now();
            let mut kept = self.kept.lock();
            kept.rename(vol, Some(&dir), node.path.as_str(), to);
            kept.update(vol, Some(&dir), to, |k| k.ctime = Some(now));
        }
    }

    /// `EFBIG` for a size beyond [`MAX_FILE_BYTES`].
    pub(crate) fn check_file_size(
        &self,
        node_shown: impl FnOnce() -> String,
        end: u64,
    ) -> Result<()> {
        if end > MAX_FILE_BYTES {
            return Err(VfsError::TooLarge {
                path: node_shown(),
                size: end,
                max: MAX_FILE_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_renames_of_folders_and_go_with_them() {
        let mut kept = KeptAttrs::default();
        kept.update(0, None, "a/x", |k| k.perm = Some(0o600));
        kept.update(0, None, "a/sub/y", |k| k.perm = Some(0o640));
        kept.update(0, None, "ab", |k| k.perm = Some(0o700));
        kept.update(1, None, "a/x", |k| k.perm = Some(0o611));
        kept.rename(0, None, "a", "b");
        assert_eq!(kept.get(0, None, "b/x").unwrap().perm, Some(0o600));
        assert_eq!(kept.get(0, None, "b/sub/y").unwrap().perm, Some(0o640));
        assert!(kept.get(0, None, "a/x").is_none());
        // A sibling whose name starts with the folder's is not below it, nor another volume.
        assert_eq!(kept.get(0, None, "ab").unwrap().perm, Some(0o700));
        assert_eq!(kept.get(1, None, "a/x").unwrap().perm, Some(0o611));
        assert_eq!(kept.len(), 4);
        kept.remove(0, None, "b");
        assert_eq!(kept.len(), 2);
        assert!(kept.get(0, None, "b/sub/y").is_none());
    }

    #[test]
    fn a_rename_over_a_kept_target_replaces_it() {
        let mut kept = KeptAttrs::default();
        kept.update(0, None, "old", |k| k.perm = Some(0o600));
        kept.update(0, None, "new", |k| k.perm = Some(0o644));
        kept.rename(0, None, "old", "new");
        assert_eq!(kept.get(0, None, "new").unwrap().perm, Some(0o600));
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn update_existing_never_adds_and_created_perm_applies_the_umask() {
        let mut kept = KeptAttrs::default();
        kept.update_existing(0, None, "f", |k| k.perm = Some(0o600));
        assert!(kept.is_empty());
        assert_eq!(created_perm(0o100666, 0o022), 0o644);
        assert_eq!(created_perm(0o0, 0o022), 0);
        assert_eq!(created_perm(0o4777, 0o077), 0o4700);
    }
}
