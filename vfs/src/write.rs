//! Changes on writable volumes: create, write, truncate, fsync, unlink, mkdir, rmdir, rename,
//! setattr — the VFS side of [`colo_cache::WriteBack`].
//!
//! What programs see: their changes at once. The cached listing of a directory is edited in place
//! by each change (no re-listing per created file), a listing fetched again is merged with the
//! write-back overlay ([`VfsCore::merge_overlay`]), and attributes of a file with a staged copy come
//! from that copy. Attributes cached from the origin are dropped when a file is changed, so the
//! first `stat` after its upload asks the origin for the new identity.
//!
//! What reaches the origin, when: a file's bytes after `close` (flush) or `fsync` — `fsync` waits
//! for the upload (see [`colo_cache::write_back::FSYNC_WAIT`]); `unlink`, `mkdir`, `rmdir` and
//! renames of files with staged copies in order through the journal. A rename of a file that has
//! no staged copy, or of a directory, goes to the origin at once, after the queue has drained (it
//! moves what is there): a native rename where the backend has one; on object stores copies, and a
//! directory of more than `MAX_RENAME_OBJECTS` objects is refused with `EXDEV`.
//!
//! (Renames themselves: [`crate::rename`].)
//!
//! Modes, owners and times: the create mode and creator, `chmod`, `chown` and `utimens` are kept by
//! colo, across restarts ([`crate::kept`]: no backend here keeps them through an object write), and folders' times move with their entries. Sizes beyond
//! [`crate::kept::MAX_FILE_BYTES`] fail with `EFBIG`. A file unlinked while open stays with its
//! descriptors ([`crate::orphan`]).

pub use crate::change::{NewEntry, SetAttr};
use crate::core::{Attr, CachedDir, OpenFile, Opened, State, VfsCore};
use crate::error::{Result, VfsError};
use crate::inode::Node;
use crate::metrics::FsOp;
use bytes::Bytes;
use colo_cache::{FetchPlan, ObjectVersion, Pending, WriteBack};
use colo_connectors::{EntryKind, ObjectIdentity, ObjectPath};
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A handle on a writable volume that writes, or that was opened on a file with a staged copy.
pub(crate) struct WritableHandle {
    pub(crate) ino: u64,
    pub(crate) writer: bool,
    /// The origin version to read once the staged copy is uploaded and gone.
    origin: Mutex<Option<ObjectVersion>>,
}

fn placeholder_version(path: &ObjectPath) -> ObjectVersion {
    ObjectVersion {
        path: path.clone(),
        identity: ObjectIdentity::SizeMtime {
            size: 0,
            mtime_ns: 0,
        },
        size: 0,
    }
}

impl VfsCore {
    /// The node of `ino` on a writable volume, with its write-back; `EROFS` on a read-only one.
    pub(crate) fn writable_node(
        &self,
        ino: u64,
        operation: &'static str,
    ) -> Result<(Node, Arc<WriteBack>)> {
        let node = self.node(ino)?;
        match node.volume.and_then(|v| self.write_back(v)) {
            Some(wb) => Ok((node, wb.clone())),
            None => Err(VfsError::ReadOnly {
                operation,
                path: self.display(&node),
            }),
        }
    }

    /// The child `name` of directory `parent` as the listing (merged with the overlay) shows it,
    /// without counting a kernel reference.
    pub(crate) async fn child(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
    ) -> Result<Option<(u64, Node)>> {
        if pnode.kind != EntryKind::Directory {
            return Err(VfsError::NotADirectory {
                path: self.display(pnode),
            });
        }
        self.ensure_listing(parent, pnode).await?;
        let st = self.state.lock();
        let ino = st
            .dirs
            .get(&parent)
            .and_then(|d| d.position(name).ok().map(|i| d.children[i].1));
        Ok(ino.and_then(|i| st.inodes.get(i).cloned().map(|n| (i, n))))
    }

    pub(crate) fn child_path(&self, pnode: &Node, name: &str) -> Result<ObjectPath> {
        pnode.path.child(name).map_err(|e| VfsError::Invalid {
            path: format!("{}/{name}", self.display(pnode)),
            detail: e.to_string(),
        })
    }

    /// The error of opening the symbolic link at `path` itself.
    pub(crate) fn a_link(path: &str) -> VfsError {
        VfsError::Os {
            operation: "open",
            path: path.to_string(),
            errno: libc::ELOOP,
        }
    }

    /// Numbers a new `name` under `parent`, puts it in the cached listing and counts the kernel's
    /// reference (create and mkdir replies are lookups).
    pub(crate) fn add_child(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
        path: ObjectPath,
        kind: EntryKind,
    ) -> u64 {
        let mut st = self.state.lock();
        if let Some(old) = st.inodes.find(parent, name) {
            st.inodes.detach(old);
            st.attrs.remove(&old);
        }
        let ino = st.inodes.child(
            parent,
            name,
            Node {
                parent,
                volume: pnode.volume,
                path,
                kind,
            },
        );
        st.inodes.remember(ino);
        st.attrs.remove(&ino);
        if let Some(dir) = st.dirs.get_mut(&parent) {
            match dir.position(name) {
                Ok(i) => dir.children[i].1 = ino,
                Err(i) => dir.children.insert(i, (name.to_string(), ino)),
            }
        }
        ino
    }

    /// Takes `name` out of `parent`'s cached listing; its inode loses the name.
    pub(crate) fn drop_child(st: &mut State, parent: u64, name: &str, ino: u64) {
        if let Some(dir) = st.dirs.get_mut(&parent)
            && let Ok(i) = dir.position(name)
        {
            dir.children.remove(i);
        }
        st.inodes.detach(ino);
        st.attrs.remove(&ino);
        st.dirs.remove(&ino);
    }

    /// Applies the overlay's entries under `node` to a listing just fetched from the origin.
    pub(crate) fn merge_overlay(
        st: &mut State,
        wb: &WriteBack,
        ino: u64,
        node: &Node,
        children: &mut Vec<(String, u64)>,
    ) {
        for (name, pending) in wb.children(node.path.as_str()) {
            let position = children.binary_search_by(|(n, _)| n.as_str().cmp(&name));
            let kind = match pending {
                Pending::Gone => {
                    if let Ok(i) = position {
                        children.remove(i);
                    }
                    continue;
                }
                Pending::File(_) => EntryKind::File,
                Pending::Dir => EntryKind::Directory,
                Pending::Symlink(_) => EntryKind::Symlink,
            };
            let Ok(path) = node.path.child(&name) else {
                continue;
            };
            let child = st.inodes.child(
                ino,
                &name,
                Node {
                    parent: ino,
                    volume: node.volume,
                    path,
                    kind,
                },
            );
            // Its origin attributes are out of date until its change is uploaded.
            st.attrs.remove(&child);
            if let Err(i) = position {
                children.insert(i, (name, child));
            }
        }
    }

    /// Creates `name` in `parent` and opens it for writing; an existing file is opened instead
    /// (emptied with `truncate`), or refused with `EEXIST` when `exclusive` (`O_EXCL`).
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        exclusive: bool,
        truncate: bool,
    ) -> Result<(Attr, Opened)> {
        self.create_as(parent, name, exclusive, truncate, None)
            .await
    }

    /// [`Self::create`] by `new`'s caller: a new file gets its mode and owner ([`crate::kept`]);
    /// `None` shows the volume's (0644, its owner).
    pub async fn create_as(
        &self,
        parent: u64,
        name: &str,
        exclusive: bool,
        truncate: bool,
        new: Option<&NewEntry>,
    ) -> Result<(Attr, Opened)> {
        let started = Instant::now();
        let result = self
            .create_inner(parent, name, exclusive, truncate, new)
            .await;
        self.timed(FsOp::Open, started, result)
    }

    async fn create_inner(
        &self,
        parent: u64,
        name: &str,
        exclusive: bool,
        truncate: bool,
        new: Option<&NewEntry>,
    ) -> Result<(Attr, Opened)> {
        let (pnode, wb) = self.writable_node(parent, "create")?;
        let path = self.child_path(&pnode, name)?;
        if let Some((ino, node)) = self.child(parent, &pnode, name).await? {
            if exclusive {
                return Err(VfsError::Exists {
                    path: self.display(&node),
                });
            }
            let opened = self.open_file(ino, true, truncate).await?;
            let mut st = self.state.lock();
            st.inodes.remember(ino);
            return Ok((self.attr_now(&st, ino, &node), opened));
        }
        wb.create(path.as_str())?;
        let ino = self.add_child(parent, &pnode, name, path.clone(), EntryKind::File);
        let opened = self.new_handle(ino, pnode.volume.unwrap_or(0), &path, true, None);
        let node = self.node(ino)?;
        self.keep_new(parent, &pnode, &node, new);
        let attr = self.attr_now(&self.state.lock(), ino, &node);
        Ok((attr, opened))
    }

    fn new_handle(
        &self,
        ino: u64,
        vol: usize,
        path: &ObjectPath,
        writer: bool,
        origin: Option<ObjectVersion>,
    ) -> Opened {
        let version = origin.clone().unwrap_or_else(|| placeholder_version(path));
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let file = OpenFile {
            writable: Some(WritableHandle {
                ino,
                writer,
                origin: Mutex::new(origin),
            }),
            volume: vol,
            shared: self.file_shared(ino, &version),
            extents_key: {
                let mut h = std::hash::DefaultHasher::new();
                (vol, &version).hash(&mut h);
                h.finish()
            },
            version,
            random_reads: Default::default(),
            ino,
            io: crate::passthrough::OpenIo::Cached,
        };
        self.handles.lock().insert(fh, Arc::new(file));
        Opened {
            fh,
            keep_cache: false,
            io: crate::passthrough::OpenIo::Cached,
        }
    }

    /// Opens a file on a writable volume (see [`VfsCore::open_file`]).
    pub(crate) async fn open_writable(
        &self,
        ino: u64,
        vol: usize,
        write: bool,
        truncate: bool,
    ) -> Result<Opened> {
        let node = self.node(ino)?;
        let wb = self.write_back(vol).expect("a writable volume").clone();
        if node.kind == EntryKind::Directory || node.path.is_root() {
            return Err(VfsError::IsADirectory {
                path: self.display(&node),
            });
        }
        let writer = write || truncate;
        let staged = match wb.lookup(node.path.as_str()) {
            Some(Pending::File(f)) => Some(f),
            Some(Pending::Dir) => {
                return Err(VfsError::IsADirectory {
                    path: self.display(&node),
                });
            }
            Some(Pending::Gone) => {
                return Err(VfsError::NotFound {
                    path: self.display(&node),
                });
            }
            // The kernel follows links before it opens; only `O_NOFOLLOW` could land here.
            Some(Pending::Symlink(_)) => return Err(Self::a_link(&self.display(&node))),
            None if node.kind == EntryKind::Symlink => {
                return Err(Self::a_link(&self.display(&node)));
            }
            None => None,
        };
        let origin = match staged {
            Some(_) => None,
            None => {
                let attr = self.getattr(ino).await?;
                if attr.kind == EntryKind::Directory {
                    return Err(VfsError::IsADirectory {
                        path: self.display(&node),
                    });
                }
                let cached = self.state.lock().attrs.get(&ino).map(|c| c.meta.clone());
                let meta = match cached {
                    Some(meta) => meta,
                    None => self.refresh_meta(ino, &node, vol).await?,
                };
                Some(ObjectVersion {
                    path: node.path.clone(),
                    identity: meta.identity(),
                    size: meta.size,
                })
            }
        };
        if writer {
            let opened = wb
                .open_write(node.path.as_str(), origin.as_ref(), truncate)
                .await?;
            if !opened {
                // Its staged copy was uploaded and dropped in between: open the origin's version.
                self.state.lock().attrs.remove(&ino);
                let meta = self.refresh_meta(ino, &node, vol).await?;
                let version = ObjectVersion {
                    path: node.path.clone(),
                    identity: meta.identity(),
                    size: meta.size,
                };
                // Still no staged copy: only this handle could have made one.
                wb.open_write(node.path.as_str(), Some(&version), truncate)
                    .await?;
            }
            self.state.lock().attrs.remove(&ino);
        }
        match (writer, staged.is_some()) {
            (false, false) => self.open_read_only(ino).await,
            _ => Ok(self.new_handle(ino, vol, &node.path, writer, origin)),
        }
    }

    /// Reads through a handle on a writable volume: the staged copy first, then the origin.
    pub(crate) async fn read_writable(
        &self,
        file: &OpenFile,
        w: &WritableHandle,
        offset: u64,
        size: u32,
    ) -> Result<Bytes> {
        let wb = self.write_back(file.volume).expect("a writable volume");
        let path = self
            .node(w.ino)
            .map(|n| n.path)
            .unwrap_or_else(|_| file.version.path.clone());
        // Unlinked while open: the bytes it keeps ([`crate::orphan`]).
        let staged = self
            .orphan(w.ino)
            .or_else(|| match wb.lookup(path.as_str()) {
                Some(Pending::File(staged)) => Some(staged),
                _ => None,
            });
        if let Some(staged) = staged {
            let bytes = staged
                .read_at(offset, size as u64)
                .map_err(|e| VfsError::Cache(io_error(staged.path(), e)))?;
            return Ok(Bytes::from(bytes));
        }
        let known = w.origin.lock().clone();
        let version = match known {
            Some(v) => v,
            None => {
                // Uploaded since: the origin's new version.
                let node = self.node(w.ino)?;
                let meta = self.refresh_meta(w.ino, &node, file.volume).await?;
                let v = ObjectVersion {
                    path: node.path.clone(),
                    identity: meta.identity(),
                    size: meta.size,
                };
                *w.origin.lock() = Some(v.clone());
                v
            }
        };
        let vol = self.vol(file.volume);
        let reader = &vol.reader;
        Ok(reader
            .read(&version, offset, size as u64, FetchPlan::Blocks)
            .await?)
    }

    /// Bytes from the staged copy of the file a read-only handle reads, if it has one now.
    pub(crate) fn read_overlay(
        &self,
        file: &OpenFile,
        offset: u64,
        size: u32,
    ) -> Option<Result<Bytes>> {
        let wb = self.write_back(file.volume)?;
        let got = wb.read(file.version.path.as_str(), offset, size as u64)?;
        Some(got.map(Bytes::from).map_err(VfsError::from))
    }

    /// The write-back path of a writing handle, checked.
    fn writer_path(&self, fh: u64) -> Result<(Arc<OpenFile>, Arc<WriteBack>, ObjectPath)> {
        let file = self.handle(fh)?;
        let Some(w) = file.writable.as_ref().filter(|w| w.writer) else {
            return Err(VfsError::BadHandle { handle: fh });
        };
        let wb = self.write_back(file.volume).expect("writable").clone();
        let path = self
            .node(w.ino)
            .map(|n| n.path)
            .unwrap_or_else(|_| file.version.path.clone());
        Ok((file, wb, path))
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let started = Instant::now();
        if let Some(file) = self.direct_handle(fh) {
            let result = Self::direct_write(&file, offset, data);
            return self.timed(FsOp::Write, started, result);
        }
        let result = self.writer_path(fh).and_then(|(file, wb, path)| {
            let end = offset.saturating_add(data.len() as u64);
            self.check_file_size(|| path.to_string(), end)?;
            if let Some(orphan) = file.writable.as_ref().and_then(|w| self.orphan(w.ino)) {
                Self::orphan_write(&orphan, offset, data)?;
                return Ok(data.len() as u32);
            }
            wb.write(path.as_str(), offset, data)?;
            self.keep_written(file.volume, path.as_str());
            Ok(data.len() as u32)
        });
        if result.is_ok() {
            self.stats
                .write_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        self.timed(FsOp::Write, started, result)
    }

    /// `close` of a descriptor: what its handle wrote is sealed and queued for upload.
    pub fn flush(&self, fh: u64) -> Result<()> {
        if self.direct_handle(fh).is_some() {
            return Ok(());
        }
        match self.writer_path(fh) {
            Ok((file, wb, path)) => {
                // An unlinked file's bytes go nowhere.
                if file
                    .writable
                    .as_ref()
                    .is_none_or(|w| self.orphan(w.ino).is_none())
                {
                    wb.commit(path.as_str())?;
                }
                Ok(())
            }
            // Read-only handles have nothing to flush.
            Err(VfsError::BadHandle { .. }) if self.handle(fh).is_ok() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `fsync`: the file's changes survive a power loss, and are at the origin unless it stays
    /// unreachable for `FSYNC_WAIT` (then they go up later; the journal has them).
    pub async fn fsync(&self, fh: u64) -> Result<()> {
        let started = Instant::now();
        if let Some(file) = self.direct_handle(fh) {
            let result = Self::direct_fsync(file).await;
            return self.timed(FsOp::Fsync, started, result);
        }
        let result = async {
            let file = self.handle(fh)?;
            let Some(wb) = self.write_back(file.volume) else {
                return Ok(());
            };
            let path = match &file.writable {
                Some(w) if self.orphan(w.ino).is_some() => return Ok(()),
                Some(w) => self.node(w.ino).map(|n| n.path)?,
                None => file.version.path.clone(),
            };
            let seq = wb.commit(path.as_str())?;
            if !wb.sync(path.as_str(), seq).await? {
                tracing::warn!(path = %path, "fsync: the origin did not take the file in time; it is safe on local disk and goes up when the origin answers");
            }
            Ok(())
        }
        .await;
        self.timed(FsOp::Fsync, started, result)
    }

    pub(crate) fn release_writable(&self, file: &OpenFile, w: &WritableHandle) {
        if self.orphan(w.ino).is_some() {
            self.orphan_released(w.ino);
            return;
        }
        if !w.writer {
            return;
        }
        let wb = self.write_back(file.volume).expect("writable");
        let path = self
            .node(w.ino)
            .map(|n| n.path)
            .unwrap_or_else(|_| file.version.path.clone());
        if let Err(e) = wb.close(path.as_str()) {
            tracing::error!(path = %path, error = %e, "closing a written file");
        }
    }

    /// `truncate`, `ftruncate`, `utimens`, `chmod`, `chown`.
    pub async fn setattr(&self, ino: u64, fh: Option<u64>, change: SetAttr) -> Result<Attr> {
        let started = Instant::now();
        let result = self.setattr_inner(ino, fh, change).await;
        self.timed(FsOp::Setattr, started, result)
    }

    async fn setattr_inner(&self, ino: u64, fh: Option<u64>, change: SetAttr) -> Result<Attr> {
        let node = self.node(ino)?;
        if self.direct_root(&node).is_some() {
            return self.direct_setattr(ino, &node, fh, &change);
        }
        let wb = node.volume.and_then(|v| self.write_back(v));
        if let Some(size) = change.size {
            let Some(wb) = &wb else {
                return Err(self.refuse_write(ino, "truncate"));
            };
            if node.kind == EntryKind::Directory {
                return Err(VfsError::IsADirectory {
                    path: self.display(&node),
                });
            }
            self.check_file_size(|| self.display(&node), size)?;
            let orphan = fh.and_then(|_| self.orphan(ino));
            match fh.and_then(|fh| self.writer_path(fh).ok()) {
                Some(_) if orphan.is_some() => {
                    Self::orphan_set_len(orphan.as_ref().expect("checked"), size)?
                }
                Some((_, wb, path)) => wb.set_len(path.as_str(), size)?,
                None => {
                    let opened = self.open_file(ino, true, size == 0).await?;
                    let done = wb.set_len(node.path.as_str(), size);
                    self.release(opened.fh);
                    done?;
                }
            }
            self.state.lock().attrs.remove(&ino);
            if let Some(vol) = node.volume {
                self.keep_written(vol, node.path.as_str());
            }
        }
        if change.mode.is_some()
            || change.atime.is_some()
            || change.mtime.is_some()
            || change.uid.is_some()
            || change.gid.is_some()
        {
            let shown = self.getattr_inner(ino).await?;
            self.keep(&node, |k| {
                k.perm = change.mode.map(|m| (m & 0o7777) as u16).or(k.perm);
                if change.uid.is_some() || change.gid.is_some() {
                    k.owner = Some((
                        change.uid.unwrap_or(shown.uid),
                        change.gid.unwrap_or(shown.gid),
                    ));
                }
                k.atime = change.atime.or(k.atime);
                k.mtime = change.mtime.or(k.mtime);
            });
        }
        if let (Some(t), Some(wb)) = (change.mtime, &wb)
            && let Some(Pending::File(staged)) = wb.lookup(node.path.as_str())
        {
            staged.set_mtime(t);
        }
        self.getattr(ino).await
    }

    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr> {
        self.mkdir_as(parent, name, None).await
    }

    /// [`Self::mkdir`] by `new`'s caller, as [`Self::create_as`].
    pub async fn mkdir_as(&self, parent: u64, name: &str, new: Option<&NewEntry>) -> Result<Attr> {
        let started = Instant::now();
        let result = async {
            let (pnode, wb) = self.writable_node(parent, "mkdir")?;
            let path = self.child_path(&pnode, name)?;
            if let Some((_, node)) = self.child(parent, &pnode, name).await? {
                return Err(VfsError::Exists {
                    path: self.display(&node),
                });
            }
            wb.mkdir(path.as_str())?;
            let ino = self.add_child(parent, &pnode, name, path, EntryKind::Directory);
            // A new directory is empty: its listing needs no request.
            self.state.lock().dirs.insert(
                ino,
                CachedDir {
                    children: Vec::new(),
                    at: Instant::now(),
                    absent: Vec::new(),
                },
            );
            let node = self.node(ino)?;
            self.keep_new(parent, &pnode, &node, new);
            Ok(self.attr_now(&self.state.lock(), ino, &node))
        }
        .await;
        self.timed(FsOp::Mkdir, started, result)
    }

    /// `unlink` (`dir` false) or `rmdir` (`dir` true) of `name` in `parent`.
    pub async fn remove(&self, parent: u64, name: &str, dir: bool) -> Result<()> {
        let started = Instant::now();
        let result = self.remove_inner(parent, name, dir).await;
        self.timed(FsOp::Remove, started, result)
    }

    async fn remove_inner(&self, parent: u64, name: &str, dir: bool) -> Result<()> {
        let pnode = self.node(parent)?;
        if self.direct_root(&pnode).is_some() {
            return self.direct_remove(parent, &pnode, name, dir);
        }
        let (pnode, wb) = self.writable_node(parent, if dir { "rmdir" } else { "unlink" })?;
        let Some((ino, node)) = self.child(parent, &pnode, name).await? else {
            return Err(VfsError::NotFound {
                path: format!("{}/{name}", self.display(&pnode)),
            });
        };
        match (node.kind, dir) {
            (EntryKind::Directory, false) => {
                return Err(VfsError::IsADirectory {
                    path: self.display(&node),
                });
            }
            (EntryKind::File | EntryKind::Symlink, true) => {
                return Err(VfsError::NotADirectory {
                    path: self.display(&node),
                });
            }
            (EntryKind::Directory, true) => {
                if !self.readdir(ino).await?.entries.is_empty() {
                    return Err(VfsError::NotEmpty {
                        path: self.display(&node),
                    });
                }
            }
            (EntryKind::File, false) => self.orphan_before_unlink(ino, &node, &wb)?,
            (EntryKind::Symlink, false) => {}
        }
        wb.remove(node.path.as_str())?;
        self.keep_removed(&node);
        self.keep_entries_changed(&pnode);
        Self::drop_child(&mut self.state.lock(), parent, name, ino);
        Ok(())
    }

    /// Free space where writes are staged (the cache disk), for `statfs`: (total, free) bytes.
    pub fn staging_space(&self) -> Option<(u64, u64)> {
        let wb = self
            .volumes
            .read()
            .iter()
            .find_map(|v| v.write_back.clone())?;
        let s = nix::sys::statvfs::statvfs(wb.dir()).ok()?;
        let unit = s.fragment_size();
        Some((s.blocks() * unit, s.blocks_available() * unit))
    }
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> colo_cache::CacheError {
    colo_cache::CacheError::Io {
        path: path.to_path_buf(),
        source: Arc::new(e),
    }
}
