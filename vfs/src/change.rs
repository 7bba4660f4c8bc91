//! What callers ask to change: a `setattr`'s fields, and who creates a new entry with which mode.

use std::time::SystemTime;

/// What `setattr` changes: kept by direct volumes in their directory, elsewhere by colo (in memory
/// and a log that survives restarts: [`crate::kept`]).
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Who asks for a new file, folder or link, and with which mode (`mknod` puts the file type in
/// `mode` too). Kept on direct volumes ([`crate::direct`]); elsewhere the permission bits and
/// the owner are kept by colo ([`crate::kept`]).
#[derive(Debug, Clone, Copy)]
pub struct NewEntry {
    pub mode: u32,
    pub umask: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Default for NewEntry {
    fn default() -> Self {
        NewEntry {
            mode: 0o644,
            umask: 0o022,
            uid: 0,
            gid: 0,
        }
    }
}
