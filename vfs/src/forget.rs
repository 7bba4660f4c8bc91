//! The kernel's side of the inode lifecycle: `forget` (the kernel dropped its references, so the
//! inode and what is cached about it can go — see [`crate::inode`]) and dropping every cached
//! listing and attribute at once (SIGHUP, for operators who changed an archive's files).

use crate::core::VfsCore;
use crate::inode::shrink_map;

impl VfsCore {
    /// How many inodes are numbered (root and volume roots included).
    pub fn inode_count(&self) -> usize {
        self.state.lock().inodes.len()
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

    /// Drops every cached listing and attribute (all volumes), so the next lookup, `ls` or `stat`
    /// asks the origin again. Returns what the kernel may have cached too: the directory entries
    /// `(parent inode, name)` and the inodes with attributes, for [`crate::mount::KernelInvalidator`].
    pub fn invalidate_metadata(&self) -> (Vec<(u64, String)>, Vec<u64>) {
        let mut st = self.state.lock();
        let entries = st
            .dirs
            .iter()
            .flat_map(|(parent, dir)| {
                dir.children
                    .iter()
                    .map(move |(name, _)| (*parent, name.clone()))
            })
            .collect();
        let inodes = st.attrs.keys().copied().collect();
        st.dirs.clear();
        st.attrs.clear();
        (entries, inodes)
    }
}
