//! Block keys. The identity is part of the key, so a changed object can never be served from blocks
//! of its previous version; so is the unit (the bytes per index), so blocks and the smaller pages
//! sparse reads fetch never alias, and a changed block size never reads blocks cut to another size.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub volume: Arc<str>,
    pub path: Arc<str>,
    /// The object's identity as text (`etag:"…"` or `sm:size:mtime_ns`).
    pub identity: Arc<str>,
    /// Bytes per unit of this key's grid: the unit starts at `index * unit_bytes`.
    pub unit_bytes: u32,
    pub index: u64,
}

impl BlockKey {
    /// The key's bytes as stored in a disk block's header (and hashed for its file name).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.volume.len() + self.path.len() + self.identity.len() + 28);
        for part in [&*self.volume, &*self.path, &*self.identity] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.unit_bytes.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out
    }

    /// 32-byte digest naming the block on disk.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Bytes a key holds in memory, for the memory tier's weigher.
    pub fn weight(&self) -> usize {
        self.volume.len() + self.path.len() + self.identity.len() + 64
    }
}
