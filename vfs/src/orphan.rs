//! Files unlinked while open, on writable volumes that stage writes (not direct ones, where the
//! kernel's own file does this). POSIX keeps such a file for its open descriptors: they read,
//! write, truncate and `fstat` it (with a link count of 0) until the last one closes — the
//! pattern of `tempfile.TemporaryFile`, of programs that unlink their scratch files at once, and
//! of pjdfstest's unlink/14. At unlink the file's staged bytes are taken out of the write-back
//! ([`colo_cache::WriteBack::detach_open`]; a file only read keeps the staged copy it has) and
//! held here by inode; nothing uploads them, and they go with the inode's last handle. A file
//! that had no staged copy (opened only to read, straight from the origin) is read from what the
//! cache holds of it, as before.

use crate::core::{Attr, NodeType, PosixAttr, VfsCore};
use crate::error::{Result, VfsError};
use crate::inode::Node;
use colo_cache::{Pending, StagedFile, WriteBack};
use colo_connectors::ObjectMeta;
use std::sync::Arc;

impl VfsCore {
    /// Whether a handle on a writable volume has `ino` open.
    fn open_on_writable(&self, ino: u64) -> bool {
        self.handles
            .lock()
            .values()
            .any(|f| f.writable.as_ref().is_some_and(|w| w.ino == ino))
    }

    /// Before `node` (inode `ino`, a file) is unlinked: if handles have it open, its bytes stay
    /// theirs.
    pub(crate) fn orphan_before_unlink(&self, ino: u64, node: &Node, wb: &WriteBack) -> Result<()> {
        if !self.open_on_writable(ino) {
            return Ok(());
        }
        let path = node.path.as_str();
        let staged = match wb.detach_open(path)? {
            Some(detached) => Some(detached),
            None => match wb.lookup(path) {
                Some(Pending::File(staged)) => Some(staged),
                _ => None,
            },
        };
        if let Some(staged) = staged {
            self.orphans.lock().insert(ino, staged);
        }
        Ok(())
    }

    /// The bytes an unlinked, still open `ino` keeps.
    pub(crate) fn orphan(&self, ino: u64) -> Option<Arc<StagedFile>> {
        let orphans = self.orphans.lock();
        if orphans.is_empty() {
            return None;
        }
        orphans.get(&ino).cloned()
    }

    /// What `fstat` shows of an unlinked, still open `ino`: no links.
    pub(crate) fn orphan_attr(&self, ino: u64, node: &Node) -> Option<Attr> {
        let staged = self.orphan(ino)?;
        let meta = ObjectMeta::file(staged.size(), Some(staged.mtime()), None);
        let mut attr = self.attr_of(ino, node.volume, node.kind, Some(&meta));
        attr.posix = Some(PosixAttr {
            node_type: NodeType::File,
            nlink: 0,
            atime: attr.mtime,
            ctime: attr.mtime,
            rdev: 0,
            blocks: attr.size.div_ceil(512),
            blksize: 128 * 1024,
        });
        Some(attr)
    }

    /// Writes through a handle of an unlinked, still open file.
    pub(crate) fn orphan_write(staged: &StagedFile, offset: u64, data: &[u8]) -> Result<()> {
        staged
            .write_at(offset, data)
            .map_err(|e| VfsError::Cache(orphan_io(staged, e)))
    }

    pub(crate) fn orphan_set_len(staged: &StagedFile, len: u64) -> Result<()> {
        staged
            .set_len(len)
            .map_err(|e| VfsError::Cache(orphan_io(staged, e)))
    }

    /// A handle of `ino` was released: the last one lets its kept bytes go.
    pub(crate) fn orphan_released(&self, ino: u64) {
        if self.orphans.lock().is_empty() {
            return;
        }
        if !self.open_on_writable(ino) {
            self.orphans.lock().remove(&ino);
        }
    }
}

fn orphan_io(staged: &StagedFile, e: std::io::Error) -> colo_cache::CacheError {
    colo_cache::CacheError::Io {
        path: staged.path().to_path_buf(),
        source: Arc::new(e),
    }
}
