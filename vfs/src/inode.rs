//! Inode numbers and their lifetimes. Root is 1, the volume roots follow and stay for the life of
//! the mount; every other (parent, name) gets a number on first sight (a listing or a lookup).
//! Numbers are never reused, so a stale kernel reference cannot alias a new file.
//!
//! The kernel holds references: each successful lookup answered adds one, and a FUSE `forget`
//! gives `n` back. An inode whose references reach zero is dropped, and with a directory the
//! children its listing numbered that the kernel never looked up (they hold no reference) — so
//! the table follows the kernel's own cache and stays bounded however many paths a `find` visits.
//! A name seen again after that gets a new number.

use colo_connectors::{EntryKind, ObjectPath};
use std::collections::HashMap;

pub const ROOT_INO: u64 = 1;

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: u64,
    /// Index of the volume; `None` only for the mount root.
    pub volume: Option<usize>,
    pub path: ObjectPath,
    pub kind: EntryKind,
}

#[derive(Debug)]
pub struct InodeTable {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    /// References the kernel holds (lookups answered minus forgotten), for inodes with any.
    lookups: HashMap<u64, u64>,
    /// Inodes at or below this number (root, volume roots) are never dropped.
    pinned_through: u64,
    /// Inodes pinned one by one (users' view folders and the volume roots in them) until unpinned.
    pinned: std::collections::HashSet<u64>,
    next: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node {
                parent: ROOT_INO,
                volume: None,
                path: ObjectPath::root(),
                kind: EntryKind::Directory,
            },
        );
        InodeTable {
            nodes,
            by_name: HashMap::new(),
            lookups: HashMap::new(),
            pinned_through: ROOT_INO,
            pinned: Default::default(),
            next: ROOT_INO + 1,
        }
    }
}

impl InodeTable {
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// The inode of `name` under `parent`, created if new; its kind is updated if it changed.
    pub fn child(&mut self, parent: u64, name: &str, node: Node) -> u64 {
        if let Some(&ino) = self.by_name.get(&(parent, name.to_string()))
            && let Some(existing) = self.nodes.get_mut(&ino)
        {
            existing.kind = node.kind;
            return ino;
        }
        // (A name left behind by an inode since dropped — another name of a hard link — is
        // numbered anew.)
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        self.by_name.insert((parent, name.to_string()), ino);
        ino
    }

    /// Keeps every inode numbered so far for the life of the table (the volume roots).
    pub fn pin_all(&mut self) {
        self.pinned_through = self.next - 1;
    }

    /// How many inodes the table holds.
    /// Keeps `ino` until [`Self::unpin`] (whatever the kernel forgets).
    pub fn pin(&mut self, ino: u64) {
        self.pinned.insert(ino);
    }

    /// `ino` follows the kernel's references again, and goes now if it holds none.
    pub fn unpin(&mut self, ino: u64) {
        self.pinned.remove(&ino);
        self.drop_unreferenced(ino);
    }

    fn is_pinned(&self, ino: u64) -> bool {
        ino <= self.pinned_through || self.pinned.contains(&ino)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The kernel was handed `ino` once more (a successful lookup).
    pub fn remember(&mut self, ino: u64) {
        if self.nodes.contains_key(&ino) {
            *self.lookups.entry(ino).or_default() += 1;
        }
    }

    /// Takes back one [`Self::remember`] whose answer never reached the kernel: the inode stays
    /// numbered, as it was before (unlike [`Self::forget`], which drops it at zero).
    pub fn unremember(&mut self, ino: u64) {
        if let Some(count) = self.lookups.get_mut(&ino) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.lookups.remove(&ino);
            }
        }
    }

    /// The kernel gives back `n` references to `ino`; true when they reached zero and the inode
    /// was dropped (the caller then drops the children its listing numbered:
    /// [`Self::drop_unreferenced`]).
    pub fn forget(&mut self, ino: u64, n: u64) -> bool {
        let Some(count) = self.lookups.get_mut(&ino) else {
            return false;
        };
        *count = count.saturating_sub(n);
        if *count > 0 {
            return false;
        }
        self.lookups.remove(&ino);
        if self.is_pinned(ino) {
            return false;
        }
        self.remove(ino);
        true
    }

    /// Drops `ino` if the kernel holds no reference to it; true if dropped.
    pub fn drop_unreferenced(&mut self, ino: u64) -> bool {
        if self.is_pinned(ino) || self.lookups.contains_key(&ino) {
            return false;
        }
        self.nodes.contains_key(&ino) && {
            self.remove(ino);
            true
        }
    }

    /// Gives back the maps' room once they hold under a quarter of it (after a walk over millions
    /// of paths was forgotten: HashMaps never shrink by themselves).
    pub fn shrink(&mut self) {
        shrink_map(&mut self.nodes);
        shrink_map(&mut self.by_name);
        shrink_map(&mut self.lookups);
    }

    /// The inode of `name` under `parent`, if numbered.
    pub fn find(&self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.by_name.get(&(parent, name.to_string())).copied()?;
        self.nodes.contains_key(&ino).then_some(ino)
    }

    /// `name` under `parent` is another name of `ino` (a hard link on a direct volume), and the
    /// one its path follows from now on (just used, so it exists). False if `ino` is gone.
    pub fn alias(&mut self, ino: u64, parent: u64, name: &str, path: ObjectPath) -> bool {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return false;
        };
        node.parent = parent;
        node.path = path;
        if let Some(old) = self.by_name.insert((parent, name.to_string()), ino)
            && old != ino
            && !self.lookups.contains_key(&old)
            && !self.is_pinned(old)
        {
            self.nodes.remove(&old);
        }
        true
    }

    /// A name of `ino` other than `except`, with its parent (a scan: for hard-linked files only).
    pub fn other_name(&self, ino: u64, except: (u64, &str)) -> Option<(u64, String)> {
        self.by_name
            .iter()
            .find(|((p, n), i)| **i == ino && (*p, n.as_str()) != except)
            .map(|((p, n), _)| (*p, n.clone()))
    }

    /// `name` under `parent` names nothing any more (the inode keeps its other names).
    pub fn forget_name(&mut self, parent: u64, name: &str) {
        self.by_name.remove(&(parent, name.to_string()));
    }

    /// `ino` no longer has a name (unlinked or replaced); it stays numbered while the kernel
    /// holds it (an open file), and a new file of the same name gets a new number.
    pub fn detach(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get(&ino) {
            let key = (node.parent, node.path.name().to_string());
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
        if !self.lookups.contains_key(&ino) && !self.is_pinned(ino) {
            self.nodes.remove(&ino);
        }
    }

    /// `ino` moves to `name` under `parent` at `path`; inodes below a moved directory follow.
    pub fn rename(&mut self, ino: u64, parent: u64, name: &str, path: ObjectPath) {
        let Some(node) = self.nodes.get(&ino).cloned() else {
            return;
        };
        let old_key = (node.parent, node.path.name().to_string());
        if self.by_name.get(&old_key) == Some(&ino) {
            self.by_name.remove(&old_key);
        }
        if let Some(replaced) = self.by_name.insert((parent, name.to_string()), ino)
            && replaced != ino
            && !self.lookups.contains_key(&replaced)
        {
            self.nodes.remove(&replaced);
        }
        if node.kind == EntryKind::Directory {
            let (old, new) = (
                format!("{}/", node.path.as_str()),
                path.as_str().to_string(),
            );
            for other in self.nodes.values_mut() {
                if other.volume == node.volume
                    && let Some(rest) = other.path.as_str().strip_prefix(&old)
                    && let Ok(moved) = ObjectPath::parse(&format!("{new}/{rest}"))
                {
                    other.path = moved;
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = parent;
            n.path = path;
        }
    }

    fn remove(&mut self, ino: u64) {
        if let Some(node) = self.nodes.remove(&ino) {
            let name = node.path.name().to_string();
            if self.by_name.get(&(node.parent, name.clone())) == Some(&ino) {
                self.by_name.remove(&(node.parent, name));
            }
        }
    }
}

/// Shrinks `map` to twice its length when it uses under a quarter of its capacity (amortised: a
/// map shrunk to 2n needs n more removals before the next shrink).
pub fn shrink_map<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}
