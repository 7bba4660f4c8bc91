//! Users' views: one folder per user under `<mount root>/.users/`, holding exactly the volumes
//! that user may see, each under its view name, attached and detached while the mount serves.
//!
//! Why per user and not per datalab: every lab of a user reads through the same folder (one set of
//! listings and attributes per user, one block cache for all users), and a lab launched with a few
//! volumes gets just those bound from its user's folder into its private `/media/data` — the
//! choice of volumes costs nothing here. `.users` starts with a dot because no volume name can,
//! so it never collides with the operator's volumes at the root; plain `ls` does not show it.
//!
//! Each attached volume is its own slot ([`crate::core::VolumeMount`]) sharing the volume's
//! read-through layer (so the second user's read of a file the first one read costs the origin
//! nothing) and, for read-write access, its write-back; a read-only grant of a writable volume is a
//! slot without write-back, so every change through it is `EROFS`. Detaching (a revoked grant, a
//! removed volume or user) retires the slot: its inodes answer `ENOENT` from then on, and the
//! caller tells the kernel to drop the entry ([`crate::mount::KernelInvalidator`]).

use crate::core::{VfsCore, VolumeMount};
use crate::error::{Result, VfsError};
use crate::inode::{Node, ROOT_INO};
use colo_connectors::{EntryKind, ObjectPath};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The folder under the mount root that holds the users' views.
pub const USERS_DIR: &str = ".users";

/// One attached view entry: what it was built from (the caller's key, e.g. volume id and access),
/// and its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachedView {
    pub(crate) key: String,
    pub(crate) slot: usize,
    pub(crate) ino: u64,
}

fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        Err(VfsError::Invalid {
            path: name.chars().take(80).collect(),
            detail: format!("not a {what} name for a view"),
        })
    }
}

impl VfsCore {
    /// The entry `name` of a folder colo makes up (the root, `.users`, a user's folder).
    pub(crate) fn virtual_child(&self, parent: u64, name: &str) -> Option<(u64, Node)> {
        let st = self.state.lock();
        let ino = *st.virtual_dirs.get(&parent)?.get(name)?;
        let node = st.inodes.get(ino)?.clone();
        node.volume
            .is_none_or(|v| !st.retired.contains(&v))
            .then_some((ino, node))
    }

    /// The made-up folder `name` under `parent`, created (and pinned) if absent.
    fn virtual_dir(&self, parent: u64, name: &str) -> u64 {
        let mut st = self.state.lock();
        if let Some(ino) = st.virtual_dirs.get(&parent).and_then(|d| d.get(name)) {
            return *ino;
        }
        let ino = st.inodes.child(
            parent,
            name,
            Node {
                parent,
                volume: None,
                path: ObjectPath::root(),
                kind: EntryKind::Directory,
            },
        );
        st.inodes.pin(ino);
        st.virtual_dirs.entry(ino).or_default();
        st.virtual_dirs
            .entry(parent)
            .or_default()
            .insert(name.to_string(), ino);
        ino
    }

    fn users_dir(&self) -> u64 {
        self.virtual_dir(ROOT_INO, USERS_DIR)
    }

    /// The views attached now: (user, view name) → the key they were attached with.
    pub fn views(&self) -> BTreeMap<(String, String), String> {
        self.state
            .lock()
            .views
            .iter()
            .map(|(k, v)| (k.clone(), v.key.clone()))
            .collect()
    }

    /// The users with a folder under `.users`.
    pub fn view_users(&self) -> Vec<String> {
        let users = self.users_dir();
        let st = self.state.lock();
        st.virtual_dirs
            .get(&users)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes `user`'s folder (empty until views are attached).
    pub fn add_view_user(&self, user: &str) -> Result<()> {
        check_name("user", user)?;
        let users = self.users_dir();
        self.virtual_dir(users, user);
        Ok(())
    }

    /// Removes `user`'s folder and detaches every view in it. Returns the kernel entries to drop.
    pub fn remove_view_user(&self, user: &str) -> Vec<(u64, String)> {
        let views: Vec<String> = self
            .state
            .lock()
            .views
            .keys()
            .filter(|(u, _)| u == user)
            .map(|(_, v)| v.clone())
            .collect();
        let mut dropped: Vec<(u64, String)> = views
            .iter()
            .filter_map(|v| self.detach_view(user, v))
            .collect();
        let users = self.users_dir();
        let mut st = self.state.lock();
        if let Some(ino) = st.virtual_dirs.get_mut(&users).and_then(|d| d.remove(user)) {
            st.virtual_dirs.remove(&ino);
            st.inodes.forget_name(users, user);
            st.inodes.unpin(ino);
            dropped.push((users, user.to_string()));
        }
        dropped
    }

    /// Attaches `mount` as `view` in `user`'s folder (made if absent); `key` says what it was
    /// built from, so the caller can tell later whether it still matches. An entry of that name
    /// must be detached first.
    pub fn attach_view(&self, user: &str, view: &str, key: &str, mount: VolumeMount) -> Result<()> {
        check_name("user", user)?;
        check_name("volume", view)?;
        let users = self.users_dir();
        let folder = self.virtual_dir(users, user);
        let slot = {
            let mut volumes = self.volumes.write();
            volumes.push(Arc::new(mount));
            volumes.len() - 1
        };
        let mut st = self.state.lock();
        if st.views.contains_key(&(user.to_string(), view.to_string())) {
            st.retired.insert(slot);
            return Err(VfsError::Exists {
                path: format!("{USERS_DIR}/{user}/{view}"),
            });
        }
        let ino = st.inodes.child(
            folder,
            view,
            Node {
                parent: folder,
                volume: Some(slot),
                path: ObjectPath::root(),
                kind: EntryKind::Directory,
            },
        );
        st.inodes.pin(ino);
        st.virtual_dirs
            .entry(folder)
            .or_default()
            .insert(view.to_string(), ino);
        st.views.insert(
            (user.to_string(), view.to_string()),
            AttachedView {
                key: key.to_string(),
                slot,
                ino,
            },
        );
        tracing::info!(user, view, key, slot, "view attached");
        Ok(())
    }

    /// Detaches `view` from `user`'s folder: its inodes answer `ENOENT` from now on. Returns the
    /// kernel entry to drop, `None` if there was no such view.
    pub fn detach_view(&self, user: &str, view: &str) -> Option<(u64, String)> {
        let mut st = self.state.lock();
        let attached = st.views.remove(&(user.to_string(), view.to_string()))?;
        st.retired.insert(attached.slot);
        let folder = st.inodes.get(attached.ino).map(|n| n.parent)?;
        if let Some(d) = st.virtual_dirs.get_mut(&folder) {
            d.remove(view);
        }
        st.inodes.forget_name(folder, view);
        st.inodes.unpin(attached.ino);
        tracing::info!(user, view, "view detached");
        Some((folder, view.to_string()))
    }
}
