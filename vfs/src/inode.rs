//! Inode numbers. Root is 1; every (parent, name) gets a number on first sight and keeps it for the
//! life of the mount (numbers are never reused, so a stale kernel reference cannot alias a new file).

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
        if let Some(&ino) = self.by_name.get(&(parent, name.to_string())) {
            if let Some(existing) = self.nodes.get_mut(&ino) {
                existing.kind = node.kind;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        self.by_name.insert((parent, name.to_string()), ino);
        ino
    }
}
