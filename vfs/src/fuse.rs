//! The only fuser glue. Each callback calls the core and replies or maps the error with
//! [`crate::errno::errno`]; nothing here decides anything. A call is answered on the FUSE thread
//! that received it while it has nothing to wait for (cache hits, staged files, cached listings:
//! no hand-off to a task and back), and moves with its reply into a task on the tokio runtime
//! once it waits for an origin ([`ColoFs::run`]).
//!
//! Directory handles snapshot the listing at `opendir`, so `readdir` offsets stay consistent while a
//! listing is refreshed underneath. Changes go to the core's write path ([`crate::write`]), which
//! answers `EROFS` on read-only volumes.

use crate::backings::Backings;
use crate::core::{Attr, DirListing, NodeType, VfsCore};
use crate::direct::Made;
use crate::errno::errno;
use crate::error::VfsError;
use crate::write::{NewEntry, SetAttr};
use colo_connectors::EntryKind;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::runtime::Handle;

pub struct ColoFs {
    core: Arc<VfsCore>,
    rt: Handle,
    dirs: Arc<Mutex<HashMap<u64, Arc<DirListing>>>>,
    next_dir: AtomicU64,
    /// Whole-file copies to pass files through to, if the kernel grants it at `init`.
    whole_files: Option<Arc<colo_cache::WholeFiles>>,
    backings: Arc<Backings<fuser::BackingId>>,
}

impl ColoFs {
    pub fn new(core: Arc<VfsCore>, rt: Handle) -> Self {
        ColoFs {
            core,
            rt,
            dirs: Arc::default(),
            next_dir: AtomicU64::new(1),
            whole_files: None,
            backings: Arc::default(),
        }
    }

    /// The same file system, passing wholly cached files through to `whole` where it can.
    pub fn with_passthrough(mut self, whole: Option<Arc<colo_cache::WholeFiles>>) -> Self {
        self.whole_files = whole;
        self
    }
}

/// How a handle opened with `flags` on a file of mode `perm` does its I/O besides passthrough: a
/// write-only handle writes around the page cache (`FOPEN_DIRECT_IO`). Through the page cache the
/// kernel ends a write request at the first page it fills only in part, so `tar`'s 10 KiB
/// records at offsets that are not page-aligned arrived as two requests each; around it, one
/// `write(2)` is one request. A write-only handle cannot be mapped, and the kernel drops the
/// cached pages of the range a direct write covers, so readers with other handles see the new
/// bytes. A file with a set-user-ID or set-group-ID bit keeps the page cache: there the kernel
/// clears those bits when someone without `CAP_FSETID` writes, which it does not for direct
/// writes.
fn io_flags(flags: i32, perm: u16) -> FopenFlags {
    if flags & libc::O_ACCMODE == libc::O_WRONLY && perm & 0o6000 == 0 {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

/// Replies to an open: through the page cache, or with the inode's backing file.
fn reply_opened(
    core: &VfsCore,
    backings: &Backings<fuser::BackingId>,
    ino: u64,
    io: FopenFlags,
    opened: crate::core::Opened,
    reply: ReplyOpen,
) {
    use crate::passthrough::OpenIo;
    let keep = if opened.keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    };
    match &opened.io {
        OpenIo::Cached => reply.opened(FileHandle(opened.fh), keep | io),
        OpenIo::Passthrough(file) => {
            let id = backings.attach(ino, opened.fh, || reply.open_backing(file.as_ref()));
            match id {
                Ok(id) => {
                    reply.opened_passthrough(FileHandle(opened.fh), FopenFlags::empty(), &id);
                }
                Err(e) => {
                    // The inode has no backing file and no other passed-through handle (this
                    // is its first): reads of this handle go through FUSE, with direct I/O
                    // (which takes no inode mode, so later ordinary opens cannot clash with
                    // it); no more passthrough.
                    tracing::warn!(error = %e, "the kernel refused a backing file: passthrough is off");
                    core.disable_passthrough();
                    reply.opened(FileHandle(opened.fh), FopenFlags::FOPEN_DIRECT_IO);
                }
            }
        }
    }
}

/// Replies to a call that makes an entry.
fn entry(core: &VfsCore, result: crate::error::Result<Attr>, reply: ReplyEntry) {
    match result {
        Ok(a) => reply.entry(&core.ttl_for(a.ino), &attr_shown(core, &a), Generation(0)),
        Err(e) => reply.error(to_errno(&e)),
    }
}

fn to_errno(e: &VfsError) -> Errno {
    Errno::from_i32(errno(e))
}

/// What the kernel is told of `a`: [`file_attr`], with a folder's link count — 2 plus one per
/// subfolder, as on a disk (`find` and pjdfstest's rename/24 read it) — where colo knows its
/// entries; a direct volume's attributes already carry the disk's own count.
fn attr_shown(core: &VfsCore, a: &Attr) -> FileAttr {
    let mut shown = file_attr(a);
    if a.kind == EntryKind::Directory
        && !core.is_direct(a.ino)
        && let Some(links) = core.folder_links(a.ino)
    {
        shown.nlink = links;
    }
    shown
}

fn file_attr(a: &Attr) -> FileAttr {
    let dir = a.kind == EntryKind::Directory;
    let (kind, nlink, atime, ctime, rdev, blocks, blksize) = match &a.posix {
        Some(p) => (
            file_type(p.node_type),
            p.nlink,
            p.atime,
            p.ctime,
            p.rdev,
            p.blocks,
            p.blksize,
        ),
        None => (
            file_type(a.kind.into()),
            if dir { 2 } else { 1 },
            a.mtime,
            a.mtime,
            0,
            a.size.div_ceil(512),
            128 * 1024,
        ),
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks,
        atime,
        mtime: a.mtime,
        ctime,
        crtime: a.mtime,
        kind,
        perm: a.perm,
        nlink,
        uid: a.uid,
        gid: a.gid,
        rdev,
        blksize,
        flags: 0,
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel the name does not exist.
fn absent_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn file_type(t: NodeType) -> FileType {
    match t {
        NodeType::Directory => FileType::Directory,
        NodeType::File => FileType::RegularFile,
        NodeType::Symlink => FileType::Symlink,
        NodeType::Fifo => FileType::NamedPipe,
        NodeType::Socket => FileType::Socket,
        NodeType::CharDevice => FileType::CharDevice,
        NodeType::BlockDevice => FileType::BlockDevice,
    }
}

/// Who asks for a new entry, and with which mode.
fn new_entry(req: &Request, mode: u32, umask: u32) -> NewEntry {
    NewEntry {
        mode,
        umask,
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_or_now(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for ColoFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Let the kernel keep more readahead requests in flight; our core answers them in parallel.
        let _ = config.set_max_background(64);
        // `O_TRUNC` arrives with `open` instead of as a separate truncate after it: a rewrite of a
        // file starts from an empty staged copy, without fetching the origin's bytes first.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        // Entries with their attributes on every readdir (not only the first, as READDIRPLUS_AUTO
        // would: `ls -l` reads a whole folder before it stats any of it).
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS);
        // Passthrough of wholly cached files (kernel 6.9 on); the copies may live on a stacked
        // file system (overlayfs) themselves.
        if let Some(whole) = &self.whole_files {
            match config.add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH) {
                Ok(()) => {
                    let _ = config.set_max_stack_depth(2);
                    self.core.enable_passthrough(whole.clone());
                }
                Err(_) => tracing::info!(
                    "this kernel has no FUSE passthrough: every read goes through colo"
                ),
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let core = self.core.clone();
        let Some(name) = name.to_str().map(str::to_string) else {
            reply.error(Errno::ENOENT);
            return;
        };
        self.run(parent.0, async move {
            match core.lookup(parent.0, &name).await {
                Ok(a) => reply.entry(&core.ttl_for(a.ino), &attr_shown(&core, &a), Generation(0)),
                Err(e @ VfsError::NotFound { .. }) => {
                    match core.absent_entry_ttl(parent.0, &name) {
                        // Inode 0: the kernel keeps a negative entry for the time given.
                        Some(ttl) => reply.entry(&ttl, &absent_attr(), Generation(0)),
                        None => reply.error(to_errno(&e)),
                    }
                }
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    /// (`batch_forget`'s default calls this for each inode.)
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.core.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let core = self.core.clone();
        self.run(ino.0, async move {
            match core.getattr_handle(ino.0, fh.map(|f| f.0)).await {
                Ok(a) => reply.attr(&core.ttl_for(ino.0), &attr_shown(&core, &a)),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let core = self.core.clone();
        let backings = self.backings.clone();
        self.run(ino.0, async move {
            match core.open_flags(ino.0, flags.0).await {
                Ok(opened) => {
                    // Only a write-only handle's I/O depends on the mode (colo has it at hand
                    // after the open).
                    let perm = if flags.0 & libc::O_ACCMODE == libc::O_WRONLY {
                        core.getattr_inner(ino.0).await.map_or(0o7777, |a| a.perm)
                    } else {
                        0
                    };
                    let io = io_flags(flags.0, perm);
                    reply_opened(&core, &backings, ino.0, io, opened, reply)
                }
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Cache hits are answered here, on the FUSE thread: no hand-off to a task and back.
        let _runtime = self.rt.enter();
        if let Some(bytes) = self.core.read_from_memory(fh.0, offset, size) {
            reply.data(&bytes);
            return;
        }
        let core = self.core.clone();
        self.rt.spawn(async move {
            match core.read(fh.0, offset, size).await {
                Ok(bytes) => reply.data(&bytes),
                Err(e) => {
                    tracing::warn!(error = %e, "read failed");
                    reply.error(to_errno(&e))
                }
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // The core may start making a whole-file copy in the background.
        let _runtime = self.rt.enter();
        self.core.release(fh.0);
        self.backings.detach(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let core = self.core.clone();
        let dirs = self.dirs.clone();
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.run(ino.0, async move {
            match core.readdir(ino.0).await {
                Ok(listing) => {
                    dirs.lock().insert(fh, Arc::new(listing));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(listing) = self.dirs.lock().get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        // Offsets: 1 = ".", 2 = "..", 3.. = entries.
        let dots = [
            (ino.0, NodeType::Directory, "."),
            (ino.0, NodeType::Directory, ".."),
        ];
        let all = dots
            .iter()
            .map(|(i, k, n)| (*i, *k, *n))
            .chain(listing.entries.iter().map(|(i, k, n)| (*i, *k, n.as_str())));
        for (pos, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), pos as u64 + 1, file_type(kind), name) {
                break;
            }
        }
        reply.ok();
    }

    /// `readdir` with each entry's attributes (asked for at `init`): `ls -l` and `find -printf`
    /// of a folder get their entries and attributes in a few calls instead of a lookup per entry.
    /// Every entry but `.` and `..` counts as a lookup (the kernel forgets it the same way); one
    /// that does not fit the reply is taken back ([`VfsCore::unremember`]).
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(listing) = self.dirs.lock().get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        let core = self.core.clone();
        self.run(ino.0, async move {
            let dir = attr_shown(
                &core,
                &core.attr_of(ino.0, None, EntryKind::Directory, None),
            );
            let ttl = core.ttl_for(ino.0);
            // Offsets as in `readdir`: 1 = ".", 2 = "..", 3.. = entries.
            for pos in (offset as usize)..listing.entries.len() + 2 {
                let full = match pos {
                    0 | 1 => {
                        let name = if pos == 0 { "." } else { ".." };
                        reply.add(ino, pos as u64 + 1, name, &ttl, &dir, Generation(0))
                    }
                    _ => {
                        let name = listing.entries[pos - 2].2.as_str();
                        let Some(a) = core.listed_entry(ino.0, name).await else {
                            continue; // gone since the folder was opened
                        };
                        let added = !reply.add(
                            INodeNo(a.ino),
                            pos as u64 + 1,
                            name,
                            &core.ttl_for(a.ino),
                            &attr_shown(&core, &a),
                            Generation(0),
                        );
                        if !added {
                            core.unremember(a.ino);
                        }
                        !added
                    }
                };
                if full {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        if let Some((blocks, bfree, bavail, files, ffree, bsize)) = self.core.direct_space(ino.0) {
            reply.statfs(blocks, bfree, bavail, files, ffree, bsize, 255, bsize);
            return;
        }
        // Remote volumes have no meaningful capacity. With writable volumes: the space left where
        // writes are staged (a full staging disk is what makes a write fail with ENOSPC).
        const BLOCK: u64 = 4096;
        let (total, free) = self.core.staging_space().unwrap_or((0, 0));
        let (blocks, bfree) = (total / BLOCK, free / BLOCK);
        reply.statfs(blocks, bfree, bfree, 0, 0, BLOCK as u32, 255, BLOCK as u32);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let core = self.core.clone();
        let Some(name) = name.to_str().map(str::to_string) else {
            reply.error(Errno::EINVAL);
            return;
        };
        let new = new_entry(req, mode, umask);
        self.run(parent.0, async move {
            match core.create_entry(parent.0, &name, flags, &new).await {
                Ok((a, opened)) => reply.created(
                    &core.ttl_for(a.ino),
                    &attr_shown(&core, &a),
                    Generation(0),
                    FileHandle(opened.fh),
                    io_flags(flags, a.perm),
                ),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Positioned writes to a local file: answered on the FUSE thread.
        match self.rt.block_on(self.core.write(fh.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.core.flush(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let core = self.core.clone();
        self.rt.spawn(async move {
            match core.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are in the journal as they happen.
        reply.ok();
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let core = self.core.clone();
        let change = SetAttr {
            size,
            mtime: mtime.map(time_or_now),
            atime: atime.map(time_or_now),
            mode,
            uid,
            gid,
        };
        self.run(ino.0, async move {
            match core.setattr(ino.0, fh.map(|f| f.0), change).await {
                Ok(a) => reply.attr(&core.ttl_for(ino.0), &attr_shown(&core, &a)),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, false, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, true, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let core = self.core.clone();
        let Some(name) = name.to_str().map(str::to_string) else {
            reply.error(Errno::EINVAL);
            return;
        };
        let new = new_entry(req, mode, umask);
        self.run(parent.0, async move {
            match core.mkdir_entry(parent.0, &name, &new).await {
                Ok(a) => reply.entry(&core.ttl_for(a.ino), &attr_shown(&core, &a), Generation(0)),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name.to_str(), newname.to_str()) else {
            reply.error(Errno::EINVAL);
            return;
        };
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::EINVAL);
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (core, name, newname) = (self.core.clone(), name.to_string(), newname.to_string());
        self.run(parent.0, async move {
            match core
                .rename(parent.0, &name, newparent.0, &newname, noreplace)
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let Some(name) = name.to_str().map(str::to_string) else {
            reply.error(Errno::EINVAL);
            return;
        };
        let new = new_entry(req, mode, umask);
        let core = self.core.clone();
        self.run(parent.0, async move {
            let made = Made::Node { rdev };
            let result = core.make_node(parent.0, &name, made, &new).await;
            entry(&core, result, reply);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let Some(name) = link_name.to_str().map(str::to_string) else {
            reply.error(Errno::EINVAL);
            return;
        };
        let new = new_entry(req, 0o777, 0);
        let (core, target) = (self.core.clone(), target.to_path_buf());
        self.run(parent.0, async move {
            let made = Made::Symlink { target: &target };
            let result = core.make_node(parent.0, &name, made, &new).await;
            entry(&core, result, reply);
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let core = self.core.clone();
        self.run(ino.0, async move {
            match core.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let Some(name) = newname.to_str() else {
            reply.error(Errno::EINVAL);
            return;
        };
        self.entry(self.core.link(ino.0, newparent.0, name), reply);
    }
}

impl ColoFs {
    /// Runs a callback's work: on this FUSE thread when `ino` is on a direct volume (local
    /// system calls that never wait on a network: no hand-off to a task and back), else as a
    /// task on the runtime.
    /// Answers a call: a local directory's on this FUSE thread; any other's here too when it
    /// needs nothing it must wait for (a cached listing, a staged file), and in a task on the
    /// runtime once it waits (the origin), so a slow origin never holds a FUSE thread.
    fn run(&self, ino: u64, work: impl std::future::Future<Output = ()> + Send + 'static) {
        if self.core.is_direct(ino) {
            self.rt.block_on(work);
            return;
        }
        // Polled once in the runtime's context (timers and sockets register with it); a future
        // that is pending goes on as a task, which polls it again with its own waker.
        let _runtime = self.rt.enter();
        let mut work = Box::pin(work);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if std::future::Future::poll(work.as_mut(), &mut cx).is_pending() {
            self.rt.spawn(work);
        }
    }

    fn entry(&self, result: crate::error::Result<Attr>, reply: ReplyEntry) {
        entry(&self.core, result, reply);
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let core = self.core.clone();
        let Some(name) = name.to_str().map(str::to_string) else {
            reply.error(Errno::ENOENT);
            return;
        };
        self.run(parent.0, async move {
            match core.remove(parent.0, &name, dir).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_only_handles_of_files_without_set_id_bits_write_around_the_page_cache() {
        let direct = FopenFlags::FOPEN_DIRECT_IO;
        assert_eq!(io_flags(libc::O_WRONLY | libc::O_CREAT, 0o644), direct);
        assert_eq!(io_flags(libc::O_RDWR, 0o644), FopenFlags::empty());
        assert_eq!(io_flags(libc::O_RDONLY, 0o644), FopenFlags::empty());
        assert_eq!(io_flags(libc::O_WRONLY, 0o4755), FopenFlags::empty());
        assert_eq!(io_flags(libc::O_WRONLY, 0o2775), FopenFlags::empty());
    }
}
