//! The kernel's backing ids of passed-through inodes, for the FUSE glue: one per inode, shared by
//! all of its passed-through handles (the kernel allows one backing file per open inode), closed
//! with the inode's last such handle.
//!
//! Both maps — an inode's id with its handle count, and each handle's inode — sit behind one lock,
//! so an open attaching a handle and a release detaching one can never wait on each other in
//! opposite orders (two locks taken in opposite orders by `open` and `release` once hung a mount).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The backing ids (`Id`: the kernel's `fuser::BackingId`) of passed-through inodes.
pub(crate) struct Backings<Id> {
    maps: Mutex<Maps<Id>>,
}

struct Maps<Id> {
    /// Inode → its backing id and how many passed-through handles use it.
    by_inode: HashMap<u64, (Arc<Id>, usize)>,
    /// Passed-through handle → its inode.
    inode_of_handle: HashMap<u64, u64>,
}

impl<Id> Default for Backings<Id> {
    fn default() -> Self {
        Backings {
            maps: Mutex::new(Maps {
                by_inode: HashMap::new(),
                inode_of_handle: HashMap::new(),
            }),
        }
    }
}

impl<Id> Backings<Id> {
    /// The backing id for handle `fh` of inode `ino`: the one the inode's other passed-through
    /// handles share, or a new one from `open` (called under the lock, so two first opens of one
    /// inode cannot both make one). An `open` that fails attaches nothing.
    pub(crate) fn attach<E>(
        &self,
        ino: u64,
        fh: u64,
        open: impl FnOnce() -> Result<Id, E>,
    ) -> Result<Arc<Id>, E> {
        let mut maps = self.maps.lock();
        let id = match maps.by_inode.get_mut(&ino) {
            Some((id, handles)) => {
                *handles += 1;
                id.clone()
            }
            None => {
                let id = Arc::new(open()?);
                maps.by_inode.insert(ino, (id.clone(), 1));
                id
            }
        };
        maps.inode_of_handle.insert(fh, ino);
        Ok(id)
    }

    /// Handle `fh` was released: if it was passed through, its inode loses it, and the inode's
    /// backing id is dropped (closed) with its last handle.
    pub(crate) fn detach(&self, fh: u64) {
        let mut maps = self.maps.lock();
        let Some(ino) = maps.inode_of_handle.remove(&fh) else {
            return;
        };
        if let Some((_, handles)) = maps.by_inode.get_mut(&ino) {
            *handles -= 1;
            if *handles == 0 {
                maps.by_inode.remove(&ino);
            }
        }
    }

    #[cfg(test)]
    fn inodes(&self) -> usize {
        self.maps.lock().by_inode.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn handles_of_one_inode_share_its_id_until_the_last_is_released() {
        let b = Backings::<u32>::default();
        let opens = AtomicU32::new(0);
        let open = || Ok::<_, ()>(opens.fetch_add(1, Ordering::Relaxed) + 7);
        let first = b.attach(5, 1, open).expect("attach");
        let second = b.attach(5, 2, open).expect("attach");
        assert!(Arc::ptr_eq(&first, &second), "one backing id per inode");
        assert_eq!(opens.load(Ordering::Relaxed), 1);
        b.detach(1);
        assert_eq!(b.inodes(), 1, "still used by handle 2");
        b.detach(2);
        assert_eq!(b.inodes(), 0, "closed with the last handle");
        b.detach(99); // a handle that never passed through: nothing happens
        let again = b.attach(5, 3, open).expect("attach");
        assert_eq!(*again, 8, "a new id once the old one was closed");
    }

    #[test]
    fn a_refused_backing_file_attaches_nothing() {
        let b = Backings::<u32>::default();
        assert_eq!(b.attach(5, 1, || Err("refused")), Err("refused"));
        assert_eq!(b.inodes(), 0);
        b.detach(1);
        assert_eq!(*b.attach(5, 2, || Ok::<_, ()>(1)).expect("attach"), 1);
    }

    /// Opens and releases of one inode's handles racing on several threads (as the FUSE threads
    /// do) all finish, and leave nothing attached.
    #[test]
    fn racing_opens_and_releases_finish_and_balance() {
        let b = Arc::new(Backings::<u32>::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let fh = t * 1_000_000 + i;
                        b.attach(i % 3, fh, || Ok::<_, ()>(0)).expect("attach");
                        b.detach(fh);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(b.inodes(), 0);
    }
}
