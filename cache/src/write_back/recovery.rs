//! After a power loss: which of the journal's pending changes still stand.
//!
//! The journal and the staged copies reach the disk independently; `fsync` syncs both, but a
//! change only closed may have its record on disk (a later `fsync` of another file synced the
//! journal, or the kernel wrote its page) while its staged bytes are not. Each upload record
//! carries the size and CRC-32 of its staged bytes; a copy that is missing, short or different is
//! *torn*, and its uploads are dropped: the origin keeps its earlier version, never a torn one.
//!
//! A rename of a file with a staged copy is an upload under the new name and a delete of the old
//! one; when that copy is torn the delete is dropped too, so the origin keeps the earlier version
//! under the old name instead of losing both. (A user's own unlink of a name whose last upload
//! was torn is still applied: that name's earlier version was meant to go.)

use super::journal::Change;
use super::staged::StagedFile;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

pub(super) struct Recovery {
    staged_dir: PathBuf,
    /// Staged copies checked so far: `Some` intact (not yet handed out), or torn.
    checked: HashMap<u64, Option<StagedFile>>,
    torn: HashSet<u64>,
    /// The torn copy last uploaded under each path, and the paths each torn copy went under.
    torn_at: HashMap<String, u64>,
    torn_names: HashMap<u64, HashSet<String>>,
    /// The changes dropped, with their sequence numbers.
    pub dropped: Vec<(u64, Change)>,
}

impl Recovery {
    pub fn new(staged_dir: &Path) -> Recovery {
        Recovery {
            staged_dir: staged_dir.to_path_buf(),
            checked: HashMap::new(),
            torn: HashSet::new(),
            torn_at: HashMap::new(),
            torn_names: HashMap::new(),
            dropped: Vec::new(),
        }
    }

    /// Whether pending change `seq` stands (changes come in journal order). An intact upload's
    /// staged copy is then available from [`Recovery::take`].
    pub fn keep(&mut self, seq: u64, change: &Change) -> io::Result<bool> {
        let stands = match change {
            Change::Upload {
                path,
                staged,
                size,
                crc32,
                ..
            } => {
                if !self.checked.contains_key(staged) && !self.torn.contains(staged) {
                    match self.check(*staged, *size, *crc32)? {
                        Some(file) => {
                            self.checked.insert(*staged, Some(file));
                        }
                        None => {
                            self.torn.insert(*staged);
                        }
                    }
                }
                if self.torn.contains(staged) {
                    self.torn_at.insert(path.clone(), *staged);
                    self.torn_names
                        .entry(*staged)
                        .or_default()
                        .insert(path.clone());
                    false
                } else {
                    self.torn_at.remove(path);
                    true
                }
            }
            // The delete half of a rename that moved a torn copy away from `path`.
            Change::Delete { path } => !self.torn_at.get(path).is_some_and(|staged| {
                self.torn_names
                    .get(staged)
                    .is_some_and(|names| names.iter().any(|n| n != path))
            }),
            Change::Mkdir { .. } | Change::Symlink { .. } => true,
        };
        if !stands {
            self.dropped.push((seq, change.clone()));
        }
        Ok(stands)
    }

    /// The intact staged copy `id`, the first time it is asked for.
    pub fn take(&mut self, id: u64) -> Option<StagedFile> {
        self.checked.get_mut(&id).and_then(Option::take)
    }

    /// The staged copy `id` if it holds `size` bytes with CRC-32 `crc32`; `None` if torn.
    fn check(&self, id: u64, size: u64, crc32: Option<u32>) -> io::Result<Option<StagedFile>> {
        let file = match StagedFile::reopen(&self.staged_dir, id) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.intact(size, crc32) {
            Ok(true) => Ok(Some(file)),
            Ok(false) => Ok(None),
            // Shorter than its size says: torn. Any other error stops the start.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}
