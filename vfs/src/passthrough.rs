//! FUSE passthrough for warm reads: a file of a read-only volume that is wholly in the cache, at
//! the version open pins, is opened with a backing file (the cache's whole-file copy,
//! [`colo_cache::WholeFiles`]) and the kernel reads that file directly — no FUSE request per read.
//!
//! When: the volume is read-only (files of writable volumes never pass through: their bytes may
//! be staged and changing), passthrough was granted by the kernel at `init`, and a whole-file
//! copy of exactly this version exists (named by the identity open just checked: a file changed at
//! the origin opens the ordinary way, and its blocks are fetched anew). Copies are made in the
//! background when a handle is released and every block of its version is cached (whole or as all
//! of its pages); a file read nearly whole has its few missing blocks fetched first (a read that
//! jumped ahead fetched pages, and pages the kernel still held were never asked for).
//!
//! Once a copy is made, the kernel is told (off the reader's path) to drop the pages it caches of
//! the file ([`DropKernelPages`], a FUSE notify the mount provides): a passthrough open drops them
//! anyway, and did so inside the program's `open` — 177 ms for a 1 GiB file read just before, a
//! third of the first warm pass.
//!
//! The kernel keeps one I/O mode per inode: once a handle of a file is open through the page
//! cache, a passthrough open of the same file fails (and the other way round), every open of an
//! inode with a backing file must pass through to that same file, and a failure reaches the
//! program as `EIO`. So the core keeps each inode's mode while handles are open: a file already
//! open the ordinary way opens the ordinary way (its copy is used once those handles are closed);
//! a file open through passthrough opens through the same backing file — also when it changed at
//! the origin meanwhile: then the new open reads the version being read, whole, until the last
//! handle closes (as the kernel's kept page cache would), and the next open reads the new one.

use crate::core::VfsCore;
use colo_cache::{FetchPlan, ObjectVersion, WholeFiles};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A released file with blocks missing from the cache has them fetched for its copy when they are
/// at most one in this many of its blocks: a file read (nearly) whole whose reads jumped ahead
/// (fetched as pages) or whose pages the kernel still had (never asked for).
const NEARLY_WHOLE_ONE_MISSING_IN: u64 = 16;

/// Drops what the kernel's page cache holds of an inode, whether the kernel took the request (the
/// mount's FUSE notify; it may take a while for a large file, so it is called on a blocking
/// thread).
pub type DropKernelPages = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// How a handle reads.
#[derive(Debug, Clone)]
pub enum OpenIo {
    /// Through FUSE and the kernel's page cache (the ordinary way).
    Cached,
    /// The kernel reads this file directly (the backing file of the inode's passthrough).
    Passthrough(Arc<File>),
}

/// The I/O mode of an inode while handles are open on it.
pub(crate) enum InodeIo {
    Cached {
        handles: usize,
    },
    Passthrough {
        version: ObjectVersion,
        file: Arc<File>,
        handles: usize,
    },
}

impl VfsCore {
    /// Lets files pass through to whole-file copies in `whole` (the FUSE glue calls this once
    /// the kernel granted passthrough). Without it every open is the ordinary kind.
    pub fn enable_passthrough(&self, whole: Arc<WholeFiles>) {
        let _ = self.whole.set(whole);
        self.passthrough_on.store(true, Ordering::SeqCst);
    }

    /// Has the kernel's cached pages of a file dropped once its whole-file copy is made (the
    /// mount calls this with its FUSE notifier).
    pub fn drop_kernel_pages_with(&self, drop_pages: DropKernelPages) {
        let _ = self.drop_kernel_pages.set(drop_pages);
    }

    /// Stops passing files through (the kernel refused a backing file): later opens are the
    /// ordinary kind.
    pub fn disable_passthrough(&self) {
        self.passthrough_on.store(false, Ordering::SeqCst);
    }

    fn passes_through(&self, vol: usize) -> bool {
        let v = self.vol(vol);
        self.passthrough_on.load(Ordering::Relaxed)
            && v.write_back.is_none()
            && v.direct_root.is_none()
    }

    /// How a new read-only handle of `ino` at `version` reads (and the inode's mode counts it).
    pub(crate) fn io_for_open(&self, ino: u64, vol: usize, version: &ObjectVersion) -> OpenIo {
        let mut modes = self.io_modes.lock();
        match modes.get_mut(&ino) {
            Some(InodeIo::Cached { handles }) => {
                *handles += 1;
                OpenIo::Cached
            }
            Some(InodeIo::Passthrough {
                version: v,
                file,
                handles,
            }) => {
                // The kernel allows no other backing file, nor an ordinary open, beside it.
                if v != version {
                    self.stats
                        .opens_passthrough_older
                        .fetch_add(1, Ordering::Relaxed);
                }
                *handles += 1;
                OpenIo::Passthrough(file.clone())
            }
            None => {
                let copy = if self.passes_through(vol) {
                    let name = self.vol(vol).reader.connector().volume().to_string();
                    self.whole.get().and_then(|w| w.get(&name, version))
                } else {
                    None
                };
                match copy {
                    Some(file) => {
                        let file = Arc::new(file);
                        modes.insert(
                            ino,
                            InodeIo::Passthrough {
                                version: version.clone(),
                                file: file.clone(),
                                handles: 1,
                            },
                        );
                        self.stats.opens_passthrough.fetch_add(1, Ordering::Relaxed);
                        OpenIo::Passthrough(file)
                    }
                    None => {
                        modes.insert(ino, InodeIo::Cached { handles: 1 });
                        OpenIo::Cached
                    }
                }
            }
        }
    }

    /// A handle of `ino` that read by `io` was released: the inode's mode loses it; and when
    /// every block of the version it read is cached — or at most one block in
    /// [`NEARLY_WHOLE_ONE_MISSING_IN`] is missing, and those are fetched first — its whole-file
    /// copy is made in the background, so the next open passes through.
    pub(crate) fn io_released(&self, ino: u64, vol: usize, io: &OpenIo, version: &ObjectVersion) {
        {
            let mut modes = self.io_modes.lock();
            let empty = match modes.get_mut(&ino) {
                Some(InodeIo::Cached { handles } | InodeIo::Passthrough { handles, .. }) => {
                    *handles = handles.saturating_sub(1);
                    *handles == 0
                }
                None => false,
            };
            if empty {
                modes.remove(&ino);
            }
        }
        if matches!(io, OpenIo::Passthrough(_)) || !self.passes_through(vol) {
            return;
        }
        let (Some(whole), Ok(rt)) = (
            self.whole.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        if !whole.fits(version.size) {
            return;
        }
        let reader = self.vol(vol).reader.clone();
        if whole.has(reader.connector().volume(), version) {
            return;
        }
        let version = version.clone();
        let drop_pages = self.drop_kernel_pages.get().cloned();
        let stats = self.stats.clone();
        rt.spawn(async move {
            let block = reader.block_size();
            let at_most = version.size.div_ceil(block) / NEARLY_WHOLE_ONE_MISSING_IN;
            let Some(missing) = reader.missing_blocks(&version, at_most as usize) else {
                return;
            };
            for index in missing {
                let read = reader.read(&version, index * block, block, FetchPlan::Blocks);
                if read.await.is_err() {
                    return;
                }
            }
            if whole.make(&reader, &version).await
                && let Some(drop_pages) = drop_pages
            {
                let dropped = tokio::task::spawn_blocking(move || drop_pages(ino)).await;
                if dropped.unwrap_or(false) {
                    stats.kernel_pages_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}
