//! Local read-write volumes, passed straight through: every operation is the same system call on
//! the volume's directory, so modes, owners, times, hard and symbolic links, FIFOs and device
//! nodes are kept, and `stat` shows what the local file system has.
//!
//! Why not the write-back of the other backends: the origin here *is* a local (or NFS) file
//! system, so staging a copy on the cache disk would write every byte twice, and it could keep
//! only what an object store keeps. Crash safety is the local file system's own: a write is in
//! its page cache when `write` returns, `fsync` is `fsync` of the file.
//!
//! Who does what: the kernel checks permissions (the mount has `default_permissions`) before it
//! calls colo, and colo (root on a platform) carries out the call, then gives a new file to the
//! caller: owner = the caller, group = the caller's or, in a set-group-ID folder, the folder's
//! (which a new folder inherits with the bit), mode = exactly what the caller asked for (colo's
//! own umask does not apply). The kernel is told to keep nothing (TTL 0, no kept pages): another
//! name of the same file (a hard link) or another writer on the same directory may change it.
//!
//! Paths: a node's path is joined under the volume root; the final component is never followed
//! (`lstat`, `O_NOFOLLOW`, `lchown`, `AT_SYMLINK_NOFOLLOW`) — the kernel resolves symbolic links
//! itself, with the caller's rights.

use crate::core::{Attr, CachedDir, NodeType, Opened, PosixAttr, State, VfsCore};
use crate::error::{Result, VfsError};
use crate::inode::Node;
use crate::write::{NewEntry, SetAttr};
use bytes::Bytes;
use colo_connectors::EntryKind;
use nix::fcntl::{AT_FDCWD, OFlag, RenameFlags, renameat2};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A time from `stat`'s seconds and nanoseconds (before 1970 too).
fn stat_time(secs: i64, nsec: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nsec.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

fn timespec(t: SystemTime) -> TimeSpec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => TimeSpec::from_duration(d),
        Err(e) => TimeSpec::from_duration(Duration::ZERO) - TimeSpec::from_duration(e.duration()),
    }
}

fn node_type(mode: u32) -> NodeType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => NodeType::Directory,
        libc::S_IFLNK => NodeType::Symlink,
        libc::S_IFIFO => NodeType::Fifo,
        libc::S_IFSOCK => NodeType::Socket,
        libc::S_IFCHR => NodeType::CharDevice,
        libc::S_IFBLK => NodeType::BlockDevice,
        _ => NodeType::File,
    }
}

fn entry_kind(t: NodeType) -> EntryKind {
    if t == NodeType::Directory {
        EntryKind::Directory
    } else {
        EntryKind::File
    }
}

/// `stat` as the VFS shows it.
pub(crate) fn attr_from(ino: u64, m: &Metadata) -> Attr {
    let node_type = node_type(m.mode());
    Attr {
        ino,
        kind: entry_kind(node_type),
        size: m.size(),
        mtime: stat_time(m.mtime(), m.mtime_nsec()),
        perm: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        posix: Some(PosixAttr {
            node_type,
            nlink: m.nlink() as u32,
            atime: stat_time(m.atime(), m.atime_nsec()),
            ctime: stat_time(m.ctime(), m.ctime_nsec()),
            rdev: m.rdev() as u32,
            blocks: m.blocks(),
            blksize: m.blksize() as u32,
        }),
    }
}

fn is_root_user() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chmod(real: &Path, mode: u32) -> std::io::Result<()> {
    fs::set_permissions(real, fs::Permissions::from_mode(mode & 0o7777))
}

/// Who gets a new entry in `parent`: the caller, with the folder's group in a set-group-ID folder.
fn owner_in(parent: &Metadata, new: &NewEntry) -> (u32, u32, bool) {
    let setgid = parent.mode() & libc::S_ISGID != 0;
    (new.uid, if setgid { parent.gid() } else { new.gid }, setgid)
}

/// Hands a new entry to its owner (as root; an unprivileged colo keeps its own) and sets its mode
/// (`None` for symbolic links, which have none).
fn give(real: &Path, owner: (u32, u32), mode: Option<u32>) -> std::io::Result<()> {
    if is_root_user() {
        std::os::unix::fs::lchown(real, Some(owner.0), Some(owner.1))?;
    }
    if let Some(mode) = mode {
        chmod(real, mode)?;
    }
    Ok(())
}

/// Paths longer than this (the volume root in front of a mount path near `PATH_MAX`) are reached
/// through a descriptor of their folder.
const LONG_PATH_BYTES: usize = 3800;

/// A node's place in the volume's directory: a path, and the folder descriptor it goes through
/// when the whole path would be too long (kept open as long as the path is used).
struct Real {
    path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl std::ops::Deref for Real {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Real {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl VfsCore {
    /// The directory of `node`'s volume if it is a direct volume.
    pub(crate) fn direct_root(&self, node: &Node) -> Option<PathBuf> {
        self.vol(node.volume?).direct_root.clone()
    }

    fn real(&self, node: &Node) -> Real {
        let root = self.direct_root(node).expect("a direct volume");
        let mut path = root.to_path_buf();
        path.extend(node.path.segments());
        if path.as_os_str().len() < LONG_PATH_BYTES {
            return Real { path, _dir: None };
        }
        // Too long for one system call with the root in front: walk to the parent folder and
        // name the entry through the folder's descriptor (each step refuses symbolic links).
        let segments: Vec<&str> = node.path.segments().collect();
        let Some((name, parents)) = segments.split_last() else {
            return Real { path, _dir: None };
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let walked = nix::fcntl::open(&root, flags, Mode::empty()).and_then(|top| {
            parents.iter().try_fold(top, |dir, segment| {
                nix::fcntl::openat(&dir, *segment, flags | OFlag::O_NOFOLLOW, Mode::empty())
            })
        });
        match walked {
            Ok(dir) => Real {
                path: PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd())),
                _dir: Some(dir),
            },
            Err(_) => Real { path, _dir: None },
        }
    }

    fn os_error(&self, operation: &'static str, node: &Node, e: std::io::Error) -> VfsError {
        VfsError::Os {
            operation,
            path: self.display(node),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The node `name` in `pnode` would have (not numbered).
    fn direct_child_node(&self, parent: u64, pnode: &Node, name: &str) -> Result<Node> {
        let path = pnode.path.child(name).map_err(|e| VfsError::Invalid {
            path: format!("{}/{name}", self.display(pnode)),
            detail: e.to_string(),
        })?;
        Ok(Node {
            parent,
            volume: pnode.volume,
            path,
            kind: EntryKind::File,
        })
    }

    /// Numbers `node` (kind from `meta`), counting the kernel's reference. An inode whose kind or
    /// file changed underneath gets a new number; every name of a hard-linked file gets the
    /// number its first name got, so `stat` shows one inode and a change through one name shows
    /// through the others.
    fn number(&self, mut node: Node, meta: &Metadata) -> Attr {
        node.kind = entry_kind(node_type(meta.mode()));
        let file = (meta.dev(), meta.ino());
        let linked = node.kind == EntryKind::File && meta.nlink() > 1;
        let mut st = self.state.lock();
        let mut links = self.direct_links.lock();
        let name = node.path.name().to_string();
        if let Some(old) = st.inodes.find(node.parent, &name) {
            let kind_changed = st.inodes.get(old).is_some_and(|n| n.kind != node.kind);
            let other_file = links.by_ino.get(&old).is_some_and(|f| *f != file);
            if kind_changed || other_file {
                st.inodes.detach(old);
                st.inodes.forget_name(node.parent, &name);
            }
        }
        if linked
            && let Some(&ino) = links.by_file.get(&file)
            && st.inodes.alias(ino, node.parent, &name, node.path.clone())
        {
            st.inodes.remember(ino);
            return attr_from(ino, meta);
        }
        let ino = match st.inodes.find(node.parent, &name) {
            // Known by this name: its path follows the name just used (a hard-linked file's
            // other name may be gone).
            Some(ino) => {
                st.inodes.alias(ino, node.parent, &name, node.path);
                ino
            }
            None => st.inodes.child(node.parent, &name, node),
        };
        if linked {
            links.by_file.insert(file, ino);
            links.by_ino.insert(ino, file);
        }
        st.inodes.remember(ino);
        attr_from(ino, meta)
    }

    pub(crate) fn direct_lookup(&self, parent: u64, pnode: &Node, name: &str) -> Result<Attr> {
        let node = self
            .direct_child_node(parent, pnode, name)
            .map_err(|_| VfsError::NotFound {
                path: format!("{}/{name}", self.display(pnode)),
            })?;
        let meta = fs::symlink_metadata(self.real(&node))
            .map_err(|e| self.os_error("lookup", &node, e))?;
        Ok(self.number(node, &meta))
    }

    pub(crate) fn direct_getattr(&self, ino: u64, node: &Node) -> Result<Attr> {
        let named = node.path.is_root()
            || self.state.lock().inodes.find(node.parent, node.path.name()) == Some(ino);
        if !named {
            // Unlinked (or replaced) while open: its path may name another file now; `fstat`
            // of an open handle is the truth (nlink 0).
            let open = (self.direct_files.lock().values())
                .find(|(i, _)| *i == ino)
                .map(|(_, f)| f.clone());
            if let Some(file) = open {
                return file
                    .metadata()
                    .map(|m| attr_from(ino, &m))
                    .map_err(|e| self.os_error("fstat", node, e));
            }
        }
        let meta =
            fs::symlink_metadata(self.real(node)).map_err(|e| self.os_error("stat", node, e))?;
        Ok(attr_from(ino, &meta))
    }

    /// Lists the folder; its entries are numbered without a kernel reference and kept as its
    /// listing, so that forgetting the folder drops those the kernel never looked up.
    pub(crate) fn direct_readdir(
        &self,
        ino: u64,
        node: &Node,
    ) -> Result<Vec<(u64, NodeType, String)>> {
        let read = fs::read_dir(self.real(node)).map_err(|e| self.os_error("list", node, e))?;
        let mut found = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| self.os_error("list", node, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let Ok(path) = node.path.child(&name) else {
                continue;
            };
            use std::os::unix::fs::FileTypeExt;
            let t = if file_type.is_dir() {
                NodeType::Directory
            } else if file_type.is_symlink() {
                NodeType::Symlink
            } else if file_type.is_fifo() {
                NodeType::Fifo
            } else if file_type.is_socket() {
                NodeType::Socket
            } else if file_type.is_char_device() {
                NodeType::CharDevice
            } else if file_type.is_block_device() {
                NodeType::BlockDevice
            } else {
                NodeType::File
            };
            found.push((name, t, path));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let mut st = self.state.lock();
        let mut entries = Vec::with_capacity(found.len());
        let mut children = Vec::with_capacity(found.len());
        for (name, t, path) in found {
            let kind = entry_kind(t);
            if let Some(old) = st.inodes.find(ino, &name)
                && st.inodes.get(old).is_some_and(|n| n.kind != kind)
            {
                st.inodes.detach(old);
            }
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
            children.push((name.clone(), child));
            entries.push((child, t, name));
        }
        st.dirs.insert(
            ino,
            CachedDir {
                children,
                at: Instant::now(),
                absent: Vec::new(),
            },
        );
        Ok(entries)
    }

    fn keep_handle(&self, ino: u64, file: File) -> Opened {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.direct_files.lock().insert(fh, (ino, Arc::new(file)));
        Opened {
            fh,
            keep_cache: false,
            io: crate::passthrough::OpenIo::Cached,
        }
    }

    pub(crate) fn direct_handle(&self, fh: u64) -> Option<Arc<File>> {
        self.direct_files.lock().get(&fh).map(|(_, f)| f.clone())
    }

    /// Drops a direct handle; false if `fh` is not one.
    pub(crate) fn direct_release(&self, fh: u64) -> bool {
        self.direct_files.lock().remove(&fh).is_some()
    }

    /// `open(2)` flags as `OpenOptions`: the access mode, then what passes through unchanged.
    fn open_options(flags: i32) -> fs::OpenOptions {
        let mut options = fs::OpenOptions::new();
        match flags & libc::O_ACCMODE {
            libc::O_RDONLY => options.read(true),
            libc::O_WRONLY => options.write(true),
            _ => options.read(true).write(true),
        };
        let passed = libc::O_TRUNC | libc::O_APPEND | libc::O_SYNC | libc::O_DSYNC;
        options.custom_flags((flags & passed) | libc::O_NOFOLLOW | libc::O_CLOEXEC);
        options
    }

    pub(crate) fn direct_open(&self, ino: u64, node: &Node, flags: i32) -> Result<Opened> {
        let file = Self::open_options(flags)
            .open(self.real(node))
            .map_err(|e| self.os_error("open", node, e))?;
        Ok(self.keep_handle(ino, file))
    }

    pub(crate) fn direct_create(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
        flags: i32,
        new: &NewEntry,
    ) -> Result<(Attr, Opened)> {
        let node = self.direct_child_node(parent, pnode, name)?;
        let real = self.real(&node);
        let mode = new.mode & !new.umask & 0o7777;
        let open = |extra: i32| {
            let mut options = Self::open_options(flags);
            let passed = libc::O_TRUNC | libc::O_APPEND | libc::O_SYNC | libc::O_DSYNC;
            options
                .custom_flags(
                    (flags & passed) | extra | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
                .mode(mode);
            options.open(&real)
        };
        let (file, created) = match open(libc::O_EXCL) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => (
                open(0).map_err(|e| self.os_error("create", &node, e))?,
                false,
            ),
            Err(e) => return Err(self.os_error("create", &node, e)),
        };
        if created {
            let pmeta =
                fs::metadata(self.real(pnode)).map_err(|e| self.os_error("create", pnode, e))?;
            let (uid, gid, _) = owner_in(&pmeta, new);
            give(&real, (uid, gid), Some(mode)).map_err(|e| self.os_error("create", &node, e))?;
        }
        let meta = file
            .metadata()
            .map_err(|e| self.os_error("create", &node, e))?;
        let attr = self.number(node, &meta);
        let opened = self.keep_handle(attr.ino, file);
        Ok((attr, opened))
    }

    /// `mkdir`, `mknod` (files, FIFOs, sockets, devices) and `symlink`.
    pub(crate) fn direct_make(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
        made: Made<'_>,
        new: &NewEntry,
    ) -> Result<Attr> {
        let node = self.direct_child_node(parent, pnode, name)?;
        let real = self.real(&node);
        let pmeta =
            fs::metadata(self.real(pnode)).map_err(|e| self.os_error("create", pnode, e))?;
        let (uid, gid, setgid) = owner_in(&pmeta, new);
        let perm = new.mode & !new.umask & 0o7777;
        let result = match made {
            Made::Directory => {
                let mode = perm | if setgid { libc::S_ISGID } else { 0 };
                fs::create_dir(&real).and_then(|()| give(&real, (uid, gid), Some(mode)))
            }
            Made::Node { rdev } => {
                let file_type = new.mode & libc::S_IFMT;
                stat::mknod(
                    &*real,
                    SFlag::from_bits_truncate(file_type),
                    Mode::from_bits_truncate(perm),
                    rdev as libc::dev_t,
                )
                .map_err(std::io::Error::from)
                .and_then(|()| give(&real, (uid, gid), Some(perm)))
            }
            Made::Symlink { target } => std::os::unix::fs::symlink(target, &real)
                .and_then(|()| give(&real, (uid, gid), None)),
        };
        result.map_err(|e| self.os_error("create", &node, e))?;
        let meta = fs::symlink_metadata(&real).map_err(|e| self.os_error("create", &node, e))?;
        Ok(self.number(node, &meta))
    }

    pub(crate) fn direct_readlink(&self, node: &Node) -> Result<Vec<u8>> {
        let target =
            fs::read_link(self.real(node)).map_err(|e| self.os_error("readlink", node, e))?;
        Ok(target.into_os_string().into_vec())
    }

    pub(crate) fn direct_link(
        &self,
        ino: u64,
        node: &Node,
        newparent: u64,
        pnode: &Node,
        newname: &str,
    ) -> Result<Attr> {
        let new = self.direct_child_node(newparent, pnode, newname)?;
        let real = self.real(&new);
        fs::hard_link(self.real(node), &real).map_err(|e| self.os_error("link", &new, e))?;
        let meta = fs::symlink_metadata(&real).map_err(|e| self.os_error("link", &new, e))?;
        // The new name is the linked inode's (the kernel then shows one file under two names).
        let file = (meta.dev(), meta.ino());
        let mut links = self.direct_links.lock();
        links.by_file.insert(file, ino);
        links.by_ino.insert(ino, file);
        drop(links);
        Ok(self.number(new, &meta))
    }

    pub(crate) fn direct_remove(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
        dir: bool,
    ) -> Result<()> {
        let node = self.direct_child_node(parent, pnode, name)?;
        let real = self.real(&node);
        let removed = if dir {
            fs::remove_dir(&real)
        } else {
            fs::remove_file(&real)
        };
        removed.map_err(|e| self.os_error("remove", &node, e))?;
        self.drop_name(&mut self.state.lock(), parent, name);
        Ok(())
    }

    /// `name` in `parent` is gone. Its inode loses that name only: a hard-linked file whose
    /// path follows another name keeps it.
    fn drop_name(&self, st: &mut State, parent: u64, name: &str) {
        if let Some(ino) = st.inodes.find(parent, name) {
            let mut primary =
                (st.inodes.get(ino)).is_some_and(|n| n.parent == parent && n.path.name() == name);
            if primary && self.direct_links.lock().by_ino.contains_key(&ino) {
                // A hard-linked file: its path now follows one of its other names.
                let other = st
                    .inodes
                    .other_name(ino, (parent, name))
                    .and_then(|(p, n)| {
                        let path = st.inodes.get(p)?.path.child(&n).ok()?;
                        Some((p, n, path))
                    });
                if let Some((p, n, path)) = other {
                    st.inodes.alias(ino, p, &n, path);
                    primary = false;
                }
            }
            if primary {
                Self::drop_child(st, parent, name, ino);
            } else if let Some(dir) = st.dirs.get_mut(&parent)
                && let Ok(i) = dir.position(name)
            {
                dir.children.remove(i);
            }
        }
        st.inodes.forget_name(parent, name);
    }

    pub(crate) fn direct_rename(
        &self,
        from: (u64, &Node, &str),
        to: (u64, &Node, &str),
        noreplace: bool,
    ) -> Result<()> {
        let source = self.direct_child_node(from.0, from.1, from.2)?;
        let target = self.direct_child_node(to.0, to.1, to.2)?;
        let flags = if noreplace {
            RenameFlags::RENAME_NOREPLACE
        } else {
            RenameFlags::empty()
        };
        let (from_real, to_real) = (self.real(&source), self.real(&target));
        renameat2(AT_FDCWD, &*from_real, AT_FDCWD, &*to_real, flags)
            .map_err(std::io::Error::from)
            .map_err(|e| self.os_error("rename", &source, e))?;
        let mut st = self.state.lock();
        let moved = st.inodes.find(from.0, from.2);
        if st.inodes.find(to.0, to.2).is_some_and(|r| Some(r) != moved) {
            self.drop_name(&mut st, to.0, to.2);
        }
        if let Some(ino) = moved {
            if let Some(dir) = st.dirs.get_mut(&from.0)
                && let Ok(i) = dir.position(from.2)
            {
                dir.children.remove(i);
            }
            let primary = st
                .inodes
                .get(ino)
                .is_some_and(|n| n.parent == from.0 && n.path.name() == from.2);
            if primary {
                st.inodes.rename(ino, to.0, to.2, target.path.clone());
            } else {
                // Another name of a hard-linked file moves; the inode keeps the rest.
                st.inodes.forget_name(from.0, from.2);
                st.inodes.alias(ino, to.0, to.2, target.path.clone());
            }
            if let Some(dir) = st.dirs.get_mut(&to.0)
                && let Err(i) = dir.position(to.2)
            {
                dir.children.insert(i, (to.2.to_string(), ino));
            }
        }
        Ok(())
    }

    /// `chown`, `chmod`, `truncate`, `utimensat`, in that order (a `chown` clears set-user-ID
    /// bits, which the kernel's mode change in the same call then states exactly).
    pub(crate) fn direct_setattr(
        &self,
        ino: u64,
        node: &Node,
        fh: Option<u64>,
        change: &SetAttr,
    ) -> Result<Attr> {
        let real = self.real(node);
        let fail = |e| self.os_error("setattr", node, e);
        if change.uid.is_some() || change.gid.is_some() {
            std::os::unix::fs::lchown(&real, change.uid, change.gid).map_err(fail)?;
        }
        if let Some(mode) = change.mode {
            chmod(&real, mode).map_err(fail)?;
        }
        if let Some(size) = change.size {
            match fh.and_then(|fh| self.direct_handle(fh)) {
                Some(file) => file.set_len(size).map_err(fail)?,
                None => nix::unistd::truncate(&*real, size as libc::off_t)
                    .map_err(|e| fail(e.into()))?,
            }
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let atime = change.atime.map(timespec).unwrap_or(TimeSpec::UTIME_OMIT);
            let mtime = change.mtime.map(timespec).unwrap_or(TimeSpec::UTIME_OMIT);
            stat::utimensat(
                AT_FDCWD,
                &*real,
                &atime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| fail(e.into()))?;
        }
        self.direct_getattr(ino, node)
    }

    pub(crate) async fn direct_read(
        &self,
        file: Arc<File>,
        offset: u64,
        size: u32,
    ) -> Result<Bytes> {
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| VfsError::Os {
            operation: "read",
            path: e.to_string(),
            errno: libc::EIO,
        })?;
        read.map_err(|e| VfsError::Os {
            operation: "read",
            path: format!("handle at offset {offset}"),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })
    }

    pub(crate) fn direct_write(file: &File, offset: u64, data: &[u8]) -> Result<u32> {
        file.write_all_at(data, offset).map_err(|e| VfsError::Os {
            operation: "write",
            path: format!("handle at offset {offset}"),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        Ok(data.len() as u32)
    }

    pub(crate) async fn direct_fsync(file: Arc<File>) -> Result<()> {
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| VfsError::Os {
                operation: "fsync",
                path: e.to_string(),
                errno: libc::EIO,
            })?
            .map_err(|e| VfsError::Os {
                operation: "fsync",
                path: "an open file".into(),
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })
    }

    /// Size and free space of the file system under the direct volume of `ino`, in 4 KiB blocks:
    /// (blocks, free, available to users, files, free files).
    pub fn direct_space(&self, ino: u64) -> Option<(u64, u64, u64, u64, u64, u32)> {
        let node = self.node(ino).ok()?;
        let root = self.direct_root(&node)?;
        let s = nix::sys::statvfs::statvfs(&root).ok()?;
        Some((
            s.blocks(),
            s.blocks_free(),
            s.blocks_available(),
            s.files(),
            s.files_free(),
            s.fragment_size() as u32,
        ))
    }
}

/// Files with more than one name, by (device, inode) at the origin, and back: the table's
/// number all their names share. Only hard-linked files are kept, so it grows with those alone.
#[derive(Default)]
pub(crate) struct HardLinks {
    by_file: HashMap<(u64, u64), u64>,
    by_ino: HashMap<u64, (u64, u64)>,
}

/// What [`VfsCore::direct_make`] creates.
pub enum Made<'a> {
    Directory,
    /// `mknod`: the type is in [`NewEntry::mode`].
    Node {
        rdev: u32,
    },
    Symlink {
        target: &'a Path,
    },
}
