//! The kernel's side of what it caches: `forget` (the kernel dropped its references, so the
//! inode and what is cached about it can go — see [`crate::inode`]); names it may remember as
//! absent (negative entries); and dropping every cached listing and attribute at once (SIGHUP,
//! for operators who changed an archive's files).
//!
//! Negative entries: a lookup of a name a folder's cached listing does not have tells the kernel
//! to remember its absence for as long as that listing stays fresh, no longer — the same promise
//! as the names it does have. A program creating thousands of files (`tar x`, `git clone`) then
//! pays no lookup before each `create`, and `import` probing a notebook's path no lookup per miss.
//! Names the kernel creates itself replace their negative entries in the kernel; the names given
//! out are kept with the listing so SIGHUP can make the kernel forget them too. Never outside a
//! volume (the mount root and users' views change as volumes are granted) nor in a local
//! directory (asked every time).

use crate::core::VfsCore;
use crate::inode::shrink_map;
use std::time::Duration;

/// How many absent names of one folder the kernel is told to remember; lookups of further
/// absent names are answered without a time to keep them.
const ABSENT_NAMES_MAX: usize = 4096;

impl VfsCore {
    /// How many inodes are numbered (root and volume roots included).
    pub fn inode_count(&self) -> usize {
        self.state.lock().inodes.len()
    }

    /// Takes back the count of a lookup whose answer did not reach the kernel (a READDIRPLUS
    /// entry that did not fit the reply): the inode stays numbered in its listing.
    pub fn unremember(&self, ino: u64) {
        self.state.lock().inodes.unremember(ino);
    }

    /// The kernel forgets `nlookup` references to `ino` (FUSE `forget`). When none is left the
    /// inode is dropped with what is cached about it, and with a directory its listing and the
    /// children it numbered that the kernel never looked up (`crate::inode`).
    pub fn forget(&self, ino: u64, nlookup: u64) {
        let mut st = self.state.lock();
        if !st.inodes.forget(ino, nlookup) {
            return;
        }
        let mut dropped = vec![ino];
        if let Some(dir) = st.dirs.remove(&ino) {
            for (_, child) in dir.children {
                if st.inodes.drop_unreferenced(child) {
                    dropped.push(child);
                }
            }
        }
        for child in &dropped {
            st.attrs.remove(child);
            st.opened.remove(child);
        }
        st.inodes.shrink();
        shrink_map(&mut st.attrs);
        shrink_map(&mut st.dirs);
        shrink_map(&mut st.opened);
        drop(st);
        let mut files = self.files.lock();
        for child in &dropped {
            if files
                .get(child)
                .is_some_and(|(_, weak)| weak.strong_count() == 0)
            {
                files.remove(child);
            }
        }
    }

    /// How long the kernel may remember that `parent` has no entry `name`, after a lookup found
    /// none: what is left of the freshness of the listing that said so. `None`: not to be
    /// remembered (outside volumes, in local directories, without a fresh listing).
    pub fn absent_entry_ttl(&self, parent: u64, name: &str) -> Option<Duration> {
        let pnode = self.node(parent).ok()?;
        let vol = pnode.volume?;
        if self.direct_root(&pnode).is_some() {
            return None;
        }
        let ttl = self.vol(vol).metadata_ttl;
        let mut st = self.state.lock();
        let dir = st.dirs.get_mut(&parent)?;
        let left = ttl.checked_sub(dir.at.elapsed()).filter(|t| !t.is_zero())?;
        if dir.position(name).is_ok() {
            return None; // made since the lookup looked
        }
        if !dir.absent.iter().any(|n| n == name) {
            if dir.absent.len() >= ABSENT_NAMES_MAX {
                return None;
            }
            dir.absent.push(name.to_string());
        }
        Some(left)
    }

    /// Drops every cached listing and attribute (all volumes), so the next lookup, `ls` or `stat`
    /// asks the origin again. Returns what the kernel may have cached too: the directory entries
    /// `(parent inode, name)`, absent names included, and the inodes with attributes, for [`crate::mount::KernelInvalidator`].
    pub fn invalidate_metadata(&self) -> (Vec<(u64, String)>, Vec<u64>) {
        let mut st = self.state.lock();
        let entries = st
            .dirs
            .iter()
            .flat_map(|(parent, dir)| {
                dir.children
                    .iter()
                    .map(|(name, _)| name)
                    .chain(&dir.absent)
                    .map(move |name| (*parent, name.clone()))
            })
            .collect();
        let inodes = st.attrs.keys().copied().collect();
        st.dirs.clear();
        st.attrs.clear();
        (entries, inodes)
    }
}
