//! The filesystem core: async, no fuser types, tested without a mount.
//!
//! Metadata: a directory's listing is fetched with one `list` call and kept, with every child's
//! attributes, for the volume's metadata TTL — so `ls -l` costs one listing and lookups of names
//! that are not there are answered from it (negative caching for free). After the TTL the listing
//! is fetched again; a file's own attributes are refreshed with one `stat`.
//!
//! Data: `open` pins the file's current version (path + identity + size) to the handle; every read
//! of that handle asks the read-through cache for exactly that version. A file that changes at the
//! origin is therefore never seen as a mix: an open handle keeps reading its version (cached blocks)
//! or gets ESTALE; the next open after the TTL sees the new version whole.
//!
//! What a read fetches when it misses the cache is decided in [`crate::plan`] and handed to the
//! read-through cache as a fetch plan.
//!
//! Page cache: an open tells the kernel to keep the pages it cached for the file when the version
//! pinned now is the version pinned by the previous open (same identity and size); otherwise the
//! kernel drops them (FUSE `FOPEN_KEEP_CACHE`). Re-reading an unchanged file therefore costs no
//! FUSE reads at all, and a changed file is never read from stale pages.

use crate::error::{Result, VfsError};
use crate::extents::KnownExtents;
use crate::inode::{InodeTable, Node, ROOT_INO};
use crate::metrics::{FsOp, FsStats};
use crate::plan::KNOWN_EXTENTS_FILES;
use crate::prefetch::StreamSet;
use colo_cache::{ObjectVersion, Pending, ReadThrough, WriteBack};
use colo_connectors::{ConnectorError, EntryKind, ObjectMeta, ObjectPath};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// One volume as the VFS sees it.
pub struct VolumeMount {
    pub name: String,
    pub reader: ReadThrough,
    pub metadata_ttl: Duration,
    /// Read-write volumes: where writes are staged and from where they go to the origin
    /// (`None`: read-only, every change refused with `EROFS`).
    pub write_back: Option<Arc<WriteBack>>,
    /// Local read-write volumes: the directory every operation goes straight to, with its modes,
    /// owners, times, links and special files ([`crate::direct`]); then `write_back` is `None`.
    pub direct_root: Option<PathBuf>,
    /// The uid and gid its files show as owned by — a user's view: that user's, so their
    /// datalabs (which run as them) may write where the volume is writable; `None`: the mount's.
    pub owner: Option<(u32, u32)>,
}

#[derive(Debug, Clone)]
pub struct VfsOptions {
    /// First prefetch window for a sequential reader.
    pub prefetch_initial_bytes: u64,
    /// Largest prefetch window.
    pub prefetch_max_bytes: u64,
    /// Bytes all prefetch windows together may ask for at once (a share of the memory budget):
    /// each open file's window is at most this divided by the number of open files.
    pub prefetch_budget_bytes: u64,
    /// Files up to this size are fetched whole (one request) by the first read that misses.
    pub whole_file_bytes: u64,
    /// Files up to this size that a reader jumps around in are fetched whole in the background
    /// once that pays off ([`crate::plan::whole_file_pays_off`]; 0: never). Trades origin bytes
    /// for time where requests are expensive.
    pub random_fill_max_bytes: u64,
    /// Owner shown for every file.
    pub uid: u32,
    pub gid: u32,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            prefetch_initial_bytes: 1 << 20,
            prefetch_max_bytes: 64 << 20,
            prefetch_budget_bytes: 128 << 20,
            whole_file_bytes: 4 << 20,
            random_fill_max_bytes: 0,
            uid: 0,
            gid: 0,
        }
    }
}

/// Attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime: SystemTime,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// What a local file system adds (direct volumes): `None` elsewhere, where links count 1 (2
    /// for folders) and every time is the mtime.
    pub posix: Option<PosixAttr>,
}

/// The type of a file as `stat` and `readdir` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl From<EntryKind> for NodeType {
    fn from(k: EntryKind) -> Self {
        match k {
            EntryKind::File => NodeType::File,
            EntryKind::Directory => NodeType::Directory,
            EntryKind::Symlink => NodeType::Symlink,
        }
    }
}

/// The rest of a local file's `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosixAttr {
    pub node_type: NodeType,
    pub nlink: u32,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    pub rdev: u32,
    pub blocks: u64,
    pub blksize: u32,
}

/// A directory's entries as returned to `readdir`, in a stable (sorted) order.
#[derive(Debug, Clone)]
pub struct DirListing {
    pub entries: Vec<(u64, NodeType, String)>,
}

pub(crate) struct CachedMeta {
    pub(crate) meta: ObjectMeta,
    pub(crate) at: Instant,
}

pub(crate) struct CachedDir {
    /// Sorted by name.
    pub(crate) children: Vec<(String, u64)>,
    pub(crate) at: Instant,
    /// Names the kernel was told this folder does not have, for as long as the listing stays
    /// fresh ([`VfsCore::absent_entry_ttl`]).
    pub(crate) absent: Vec<String>,
}

impl CachedDir {
    /// Where `name` is among the children (`Ok`), or would go (`Err`).
    pub(crate) fn position(&self, name: &str) -> std::result::Result<usize, usize> {
        self.children
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) inodes: InodeTable,
    pub(crate) attrs: HashMap<u64, CachedMeta>,
    pub(crate) dirs: HashMap<u64, CachedDir>,
    /// The version each file was last opened at (decides whether the kernel keeps its pages).
    pub(crate) opened: HashMap<u64, ObjectVersion>,
    /// The folders colo makes up (the mount root, users' views): their entries by name.
    pub(crate) virtual_dirs: HashMap<u64, std::collections::BTreeMap<String, u64>>,
    /// Volume slots detached from every view: their inodes answer `ENOENT`.
    pub(crate) retired: std::collections::HashSet<usize>,
    /// Users' views attached now, by (user, view name).
    pub(crate) views: std::collections::BTreeMap<(String, String), crate::views::AttachedView>,
}

/// An open file handle, and whether the kernel may keep the pages it has cached for the file.
#[derive(Debug, Clone)]
pub struct Opened {
    pub fh: u64,
    pub keep_cache: bool,
    /// How the handle reads ([`crate::passthrough`]).
    pub io: crate::passthrough::OpenIo,
}

/// What the handles of one open file share: its streams.
pub(crate) struct FileShared {
    pub(crate) streams: Mutex<StreamSet>,
}

pub(crate) struct OpenFile {
    pub(crate) volume: usize,
    /// The origin version read (on a writable volume: when the file had no staged copy at open).
    pub(crate) version: ObjectVersion,
    /// On a writable volume: the inode, and whether this handle writes.
    pub(crate) writable: Option<crate::write::WritableHandle>,
    /// Shared with the file's other handles.
    pub(crate) shared: Arc<FileShared>,
    /// A hash of (volume, version), naming the file's extents without a copy of its path per read.
    /// (A collision could only change how much a read fetches ahead, never the bytes it returns.)
    pub(crate) extents_key: u64,
    /// Reads answered with the page plan (a reader jumping around), and what they cost.
    pub(crate) random_reads: crate::plan::RandomReads,
    /// The inode, and how the handle reads (read-only handles; [`crate::passthrough`]).
    pub(crate) ino: u64,
    pub(crate) io: crate::passthrough::OpenIo,
}

pub struct VfsCore {
    /// Every volume slot: the operator's volumes at the mount root first, then the volumes of
    /// users' views as they are attached ([`crate::views`]). Slots are never reused; a detached
    /// one stays for the handles still open on it.
    pub(crate) volumes: RwLock<Vec<Arc<VolumeMount>>>,
    pub(crate) options: VfsOptions,
    pub(crate) state: Mutex<State>,
    pub(crate) handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Each open file's shared state by inode (the version it belongs to, and the state while a
    /// handle holds it).
    pub(crate) files: Mutex<HashMap<u64, (ObjectVersion, Weak<FileShared>)>>,
    /// Open files of direct volumes, by handle: (inode, file).
    pub(crate) direct_files: Mutex<HashMap<u64, (u64, Arc<File>)>>,
    /// Hard-linked files of direct volumes and the inode all their names share.
    pub(crate) direct_links: Mutex<crate::direct::HardLinks>,
    /// Column chunks learnt from files' footers, by [`OpenFile::extents_key`].
    pub(crate) chunks: KnownExtents<u64>,
    pub(crate) next_handle: AtomicU64,
    /// Modes and times the origins of writable volumes cannot keep ([`crate::kept`]).
    pub(crate) kept: Mutex<crate::kept::KeptAttrs>,
    /// Files unlinked while open: the bytes their handles keep, by inode ([`crate::orphan`]).
    pub(crate) orphans: Mutex<HashMap<u64, Arc<colo_cache::StagedFile>>>,
    /// Whole-file copies files may pass through to, once the kernel granted passthrough.
    pub(crate) whole: std::sync::OnceLock<Arc<colo_cache::WholeFiles>>,
    pub(crate) passthrough_on: std::sync::atomic::AtomicBool,
    /// Drops the kernel's pages of a file once its whole-file copy is made.
    pub(crate) drop_kernel_pages: std::sync::OnceLock<crate::passthrough::DropKernelPages>,
    /// The I/O mode of each inode with read-only handles open ([`crate::passthrough`]).
    pub(crate) io_modes: Mutex<HashMap<u64, crate::passthrough::InodeIo>>,
    started: SystemTime,
    pub(crate) stats: Arc<FsStats>,
}

impl VfsCore {
    pub fn new(volumes: Vec<VolumeMount>, options: VfsOptions) -> Self {
        let mut state = State::default();
        for (i, v) in volumes.iter().enumerate() {
            state.inodes.child(
                ROOT_INO,
                &v.name,
                Node {
                    parent: ROOT_INO,
                    volume: Some(i),
                    path: ObjectPath::root(),
                    kind: EntryKind::Directory,
                },
            );
        }
        state.inodes.pin_all();
        let root_children = volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), ROOT_INO + 1 + i as u64))
            .collect();
        state.virtual_dirs.insert(ROOT_INO, root_children);
        VfsCore {
            volumes: RwLock::new(volumes.into_iter().map(Arc::new).collect()),
            options,
            state: Mutex::new(state),
            handles: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            direct_files: Mutex::new(HashMap::new()),
            direct_links: Mutex::default(),
            chunks: KnownExtents::new(KNOWN_EXTENTS_FILES),
            next_handle: AtomicU64::new(1),
            kept: Mutex::default(),
            orphans: Mutex::default(),
            whole: std::sync::OnceLock::new(),
            passthrough_on: std::sync::atomic::AtomicBool::new(false),
            drop_kernel_pages: std::sync::OnceLock::new(),
            io_modes: Mutex::default(),
            started: SystemTime::now(),
            stats: Arc::new(FsStats::default()),
        }
    }

    /// Operation counts and latencies.
    pub fn stats(&self) -> &FsStats {
        &self.stats
    }

    pub(crate) fn timed<T>(&self, op: FsOp, started: Instant, result: Result<T>) -> Result<T> {
        self.stats.record(op, started.elapsed(), result.is_ok());
        result
    }

    /// Every volume slot (the operator's volumes first, in config order).
    pub fn volumes(&self) -> Vec<Arc<VolumeMount>> {
        self.volumes.read().clone()
    }

    /// Volume slot `v`.
    pub(crate) fn vol(&self, v: usize) -> Arc<VolumeMount> {
        self.volumes.read()[v].clone()
    }

    /// The TTL the kernel may keep attributes and entries of `ino` for.
    pub fn ttl_for(&self, ino: u64) -> Duration {
        match self.node(ino).ok().and_then(|n| n.volume) {
            // A local directory answers at once, and other names of a file (hard links) or other
            // writers may change what the kernel cached: it asks every time.
            Some(v) => {
                let vol = self.vol(v);
                if vol.direct_root.is_some() {
                    Duration::ZERO
                } else {
                    vol.metadata_ttl
                }
            }
            None => Duration::from_secs(3600),
        }
    }

    pub(crate) fn node(&self, ino: u64) -> Result<Node> {
        let st = self.state.lock();
        st.inodes
            .get(ino)
            .filter(|n| n.volume.is_none_or(|v| !st.retired.contains(&v)))
            .cloned()
            .ok_or_else(|| VfsError::NotFound {
                path: format!("inode {ino}"),
            })
    }

    pub(crate) fn display(&self, node: &Node) -> String {
        match node.volume {
            Some(v) => format!("{}{}", self.vol(v).name, node.path),
            None => "/".into(),
        }
    }

    /// The write-back of volume `vol`, if it is writable.
    pub(crate) fn write_back(&self, vol: usize) -> Option<Arc<WriteBack>> {
        self.vol(vol).write_back.clone()
    }

    /// Attributes of `ino` in volume `vol` (`None`: the mount root).
    pub(crate) fn attr_of(
        &self,
        ino: u64,
        vol: Option<usize>,
        kind: EntryKind,
        meta: Option<&ObjectMeta>,
    ) -> Attr {
        let dir = kind == EntryKind::Directory;
        let writable = vol.is_some_and(|v| self.vol(v).write_back.is_some());
        let owner = vol
            .and_then(|v| self.vol(v).owner)
            .unwrap_or((self.options.uid, self.options.gid));
        let perm = match (dir, writable) {
            _ if kind == EntryKind::Symlink => 0o777,
            (true, true) => 0o755,
            (false, true) => 0o644,
            (true, false) => 0o555,
            (false, false) => 0o444,
        };
        Attr {
            ino,
            kind,
            size: meta.map(|m| m.size).unwrap_or(0),
            mtime: meta.and_then(|m| m.mtime).unwrap_or(self.started),
            perm,
            uid: owner.0,
            gid: owner.1,
            posix: None,
        }
    }

    /// Find `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr> {
        let started = Instant::now();
        let result = self.lookup_inner(parent, name).await;
        self.timed(FsOp::Lookup, started, result)
    }

    /// The attributes of entry `name` of folder `parent` for a READDIRPLUS answer: looked up as
    /// the kernel's own lookup would be (and counted the same: the kernel forgets entries it was
    /// handed this way), but not timed as a lookup; `None` when the name is gone.
    pub async fn listed_entry(&self, parent: u64, name: &str) -> Option<Attr> {
        self.lookup_inner(parent, name).await.ok()
    }

    async fn lookup_inner(&self, parent: u64, name: &str) -> Result<Attr> {
        let pnode = self.node(parent)?;
        if pnode.kind != EntryKind::Directory {
            return Err(VfsError::NotADirectory {
                path: self.display(&pnode),
            });
        }
        let not_found = || VfsError::NotFound {
            path: format!("{}/{}", self.display(&pnode).trim_end_matches('/'), name),
        };
        // A name that could not be a path segment (".." in any encoding, separators) names nothing.
        if pnode.path.child(name).is_err() {
            return Err(not_found());
        }
        if pnode.volume.is_none() {
            // The mount root and the folders of users' views: their entries are volume roots
            // and view folders, held in memory.
            let (ino, node) = self.virtual_child(parent, name).ok_or_else(not_found)?;
            self.state.lock().inodes.remember(ino);
            if let Some(vol) = node.volume
                && self.vol(vol).direct_root.is_some()
            {
                return self.direct_getattr(ino, &node);
            }
            let attr = self.attr_of(ino, node.volume, EntryKind::Directory, None);
            return Ok(self.with_kept(&node, attr));
        }
        if self.direct_root(&pnode).is_some() {
            return self.direct_lookup(parent, &pnode, name);
        }
        self.ensure_listing(parent, &pnode).await?;
        let attr = match self.remember_child(parent, name).ok_or_else(not_found)? {
            Some(attr) => attr,
            None => {
                // The kernel forgot the child while the listing stayed cached: listing again
                // numbers it anew.
                self.state.lock().dirs.remove(&parent);
                self.ensure_listing(parent, &pnode).await?;
                self.remember_child(parent, name)
                    .flatten()
                    .ok_or_else(not_found)?
            }
        };
        self.with_known_size(attr).await
    }

    /// A listed file whose attributes colo dropped when it was written through colo (they are
    /// fetched again once it is uploaded) gets them as `getattr` would, never the size 0 that
    /// stands for "not known"; if that fails, the lookup just counted is taken back.
    async fn with_known_size(&self, attr: Attr) -> Result<Attr> {
        if attr.kind != EntryKind::File || self.state.lock().attrs.contains_key(&attr.ino) {
            return Ok(attr);
        }
        self.getattr_inner(attr.ino).await.inspect_err(|_| {
            self.unremember(attr.ino);
        })
    }

    /// The attributes of `name` in the cached listing of `parent`, counted as handed to the
    /// kernel: `None` when the listing has no such name, `Some(None)` when it names an inode
    /// since forgotten.
    fn remember_child(&self, parent: u64, name: &str) -> Option<Option<Attr>> {
        let mut st = self.state.lock();
        let ino = st.dirs.get(&parent).and_then(|d| {
            // Sorted by name: a lookup in a folder of a million entries is 20 comparisons.
            d.position(name).ok().map(|i| d.children[i].1)
        })?;
        let Some(node) = st.inodes.get(ino).cloned() else {
            return Some(None);
        };
        st.inodes.remember(ino);
        Some(Some(self.attr_now(&st, ino, &node)))
    }

    /// The links of folder `ino` as a disk counts them (2, plus one per subfolder) when its
    /// listing is cached; `None` when colo does not know its entries (2 is shown then).
    pub fn folder_links(&self, ino: u64) -> Option<u32> {
        let st = self.state.lock();
        let dir = st.dirs.get(&ino)?;
        let folders = dir
            .children
            .iter()
            .filter(|(_, child)| {
                st.inodes
                    .get(*child)
                    .is_some_and(|n| n.kind == EntryKind::Directory)
            })
            .count();
        Some(2 + folders as u32)
    }

    /// What `ino` looks like now: from the write-back overlay where it has a pending change,
    /// else from the cached attributes.
    pub(crate) fn attr_now(&self, st: &State, ino: u64, node: &Node) -> Attr {
        if let Some(attr) = self.overlay_attr(ino, node) {
            return attr;
        }
        let attr = self.attr_of(
            ino,
            node.volume,
            node.kind,
            st.attrs.get(&ino).map(|c| &c.meta),
        );
        self.with_kept(node, attr)
    }

    /// The attributes the write-back overlay gives `ino`, if it has a pending change.
    pub(crate) fn overlay_attr(&self, ino: u64, node: &Node) -> Option<Attr> {
        let wb = self.write_back(node.volume?)?;
        let meta = match wb.lookup(node.path.as_str())? {
            Pending::File(staged) => ObjectMeta::file(staged.size(), Some(staged.mtime()), None),
            Pending::Dir => ObjectMeta::directory(None),
            Pending::Symlink(target) => ObjectMeta::symlink(target.len() as u64, None),
            Pending::Gone => return None,
        };
        Some(self.with_kept(node, self.attr_of(ino, node.volume, meta.kind, Some(&meta))))
    }

    /// Attributes of `ino`, refreshed from the origin once the TTL has passed.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let started = Instant::now();
        let result = self.getattr_inner(ino).await;
        self.timed(FsOp::Getattr, started, result)
    }

    pub(crate) async fn getattr_inner(&self, ino: u64) -> Result<Attr> {
        let node = self.node(ino)?;
        let Some(vol) = node.volume else {
            return Ok(self.attr_of(ino, None, EntryKind::Directory, None));
        };
        if self.direct_root(&node).is_some() {
            return self.direct_getattr(ino, &node);
        }
        if node.path.is_root() {
            let attr = self.attr_of(ino, Some(vol), EntryKind::Directory, None);
            return Ok(self.with_kept(&node, attr));
        }
        if let Some(attr) = self.orphan_attr(ino, &node) {
            return Ok(attr);
        }
        if let Some(attr) = self.overlay_attr(ino, &node) {
            return Ok(attr);
        }
        let ttl = self.vol(vol).metadata_ttl;
        {
            let st = self.state.lock();
            if let Some(c) = st.attrs.get(&ino)
                && c.at.elapsed() < ttl
            {
                let attr = self.attr_of(ino, Some(vol), c.meta.kind, Some(&c.meta));
                return Ok(self.with_kept(&node, attr));
            }
        }
        let meta = self.refresh_meta(ino, &node, vol).await?;
        let attr = self.attr_of(ino, Some(vol), meta.kind, Some(&meta));
        Ok(self.with_kept(&node, attr))
    }

    /// Keeps `meta` as the attributes of `ino`, fresh from now; returns it.
    fn remember_meta(st: &mut State, ino: u64, meta: ObjectMeta) -> ObjectMeta {
        st.attrs.insert(
            ino,
            CachedMeta {
                meta: meta.clone(),
                at: Instant::now(),
            },
        );
        meta
    }

    pub(crate) async fn refresh_meta(
        &self,
        ino: u64,
        node: &Node,
        vol: usize,
    ) -> Result<ObjectMeta> {
        let connector = self.vol(vol).reader.connector().clone();
        match connector.stat(&node.path).await {
            Ok(meta) => Ok(Self::remember_meta(&mut self.state.lock(), ino, meta)),
            Err(e @ ConnectorError::NotFound { .. }) => {
                // Gone at the origin: forget it, and the parent's listing that still shows it.
                let mut st = self.state.lock();
                st.attrs.remove(&ino);
                st.dirs.remove(&node.parent);
                Err(e.into())
            }
            Err(e) if e.is_temporary() && self.write_back(vol).is_some() => {
                // A writable volume stays usable while its origin is away: the attributes it had.
                let mut st = self.state.lock();
                match st.attrs.get_mut(&ino) {
                    Some(c) => {
                        c.at = Instant::now();
                        Ok(c.meta.clone())
                    }
                    // A directory needs nothing but its kind, known from its parent's listing.
                    None if node.kind == EntryKind::Directory => Ok(ObjectMeta::directory(None)),
                    // A file this run uploaded: what the origin said then.
                    None => match self
                        .write_back(vol)
                        .and_then(|wb| wb.uploaded_meta(node.path.as_str()))
                    {
                        Some(meta) => Ok(Self::remember_meta(&mut st, ino, meta)),
                        None => Err(e.into()),
                    },
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn ensure_listing(&self, ino: u64, node: &Node) -> Result<()> {
        let Some(vol) = node.volume else {
            return Ok(());
        };
        let ttl = self.vol(vol).metadata_ttl;
        if self
            .state
            .lock()
            .dirs
            .get(&ino)
            .is_some_and(|d| d.at.elapsed() < ttl)
        {
            return Ok(());
        }
        let connector = self.vol(vol).reader.connector().clone();
        let mut entries = match connector.list(&node.path).await {
            Ok(entries) => entries,
            // Made here and not yet at the origin: what it holds is in the overlay.
            Err(e)
                if e.kind() == colo_connectors::ErrorKind::NotFound
                    && self.write_back(vol).is_some_and(|wb| {
                        matches!(wb.lookup(node.path.as_str()), Some(Pending::Dir))
                    }) =>
            {
                Vec::new()
            }
            // A writable volume stays usable while its origin is away: the listing it had.
            Err(e) if e.is_temporary() && self.write_back(vol).is_some() => {
                let mut st = self.state.lock();
                if let Some(dir) = st.dirs.get_mut(&ino) {
                    tracing::debug!(error = %e, "origin unreachable: the cached listing is used");
                    dir.at = Instant::now();
                    return Ok(());
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let now = Instant::now();
        let mut st = self.state.lock();
        let mut children = Vec::with_capacity(entries.len());
        for e in entries {
            let Ok(path) = node.path.child(&e.name) else {
                continue;
            };
            let child = st.inodes.child(
                ino,
                &e.name,
                Node {
                    parent: ino,
                    volume: Some(vol),
                    path,
                    kind: e.meta.kind,
                },
            );
            st.attrs.insert(
                child,
                CachedMeta {
                    meta: e.meta,
                    at: now,
                },
            );
            children.push((e.name, child));
        }
        if let Some(wb) = self.write_back(vol) {
            Self::merge_overlay(&mut st, &wb, ino, node, &mut children);
        }
        st.dirs.insert(
            ino,
            CachedDir {
                children,
                at: now,
                absent: Vec::new(),
            },
        );
        Ok(())
    }

    /// The entries of directory `ino` (without `.` and `..`).
    pub async fn readdir(&self, ino: u64) -> Result<DirListing> {
        let started = Instant::now();
        let result = self.readdir_inner(ino).await;
        self.timed(FsOp::Readdir, started, result)
    }

    async fn readdir_inner(&self, ino: u64) -> Result<DirListing> {
        let node = self.node(ino)?;
        if node.kind != EntryKind::Directory {
            return Err(VfsError::NotADirectory {
                path: self.display(&node),
            });
        }
        if node.volume.is_none() {
            let st = self.state.lock();
            let entries = st
                .virtual_dirs
                .get(&ino)
                .map(|children| {
                    children
                        .iter()
                        .map(|(name, child)| (*child, NodeType::Directory, name.clone()))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(DirListing { entries });
        }
        if self.direct_root(&node).is_some() {
            let entries = self.direct_readdir(ino, &node)?;
            return Ok(DirListing { entries });
        }
        self.ensure_listing(ino, &node).await?;
        let forgotten = {
            let st = self.state.lock();
            st.dirs.get(&ino).is_some_and(|d| {
                d.children
                    .iter()
                    .any(|(_, child)| st.inodes.get(*child).is_none())
            })
        };
        if forgotten {
            // Some children were forgotten by the kernel since the listing was cached: list
            // again, so every entry carries the number a lookup will give it.
            self.state.lock().dirs.remove(&ino);
            self.ensure_listing(ino, &node).await?;
        }
        let st = self.state.lock();
        let entries = st
            .dirs
            .get(&ino)
            .map(|d| {
                d.children
                    .iter()
                    .map(|(name, child)| {
                        let kind = st
                            .inodes
                            .get(*child)
                            .map(|n| n.kind)
                            .unwrap_or(EntryKind::File);
                        (*child, kind.into(), name.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(DirListing { entries })
    }

    /// Refuse any change: these mounts are read-only.
    pub fn refuse_write(&self, ino: u64, operation: &'static str) -> VfsError {
        let path = self.node(ino).map(|n| self.display(&n)).unwrap_or_default();
        VfsError::ReadOnly { operation, path }
    }
}
