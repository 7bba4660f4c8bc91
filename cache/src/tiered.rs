//! Memory in front of disk. A disk hit is promoted to memory; a put goes to both. Either tier may be
//! absent (a zero-sized memory tier, or no disk directory).
//!
//! Disk writes are off the reader's critical path: a put returns once the block is in memory, and
//! the disk write runs in the background. At most `MAX_PENDING_DISK_WRITES` blocks wait to be
//! written; past that a put waits for a slot (back-pressure, so a slow disk cannot make memory grow
//! without bound). [`TieredCache::flush`] waits for every pending write.

use crate::block_cache::BlockCache;
use crate::disk::DiskCache;
use crate::key::BlockKey;
use crate::memory::MemoryCache;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// Blocks that may wait for their disk write at once.
pub const MAX_PENDING_DISK_WRITES: u32 = 64;

#[derive(Debug, Default)]
pub struct TierStats {
    pub memory_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub misses: AtomicU64,
}

pub struct TieredCache {
    memory: Option<MemoryCache>,
    disk: Option<DiskCache>,
    stats: TierStats,
    disk_slots: Arc<Semaphore>,
}

impl TieredCache {
    pub fn new(memory: Option<MemoryCache>, disk: Option<DiskCache>) -> Self {
        TieredCache {
            memory,
            disk,
            stats: TierStats::default(),
            disk_slots: Arc::new(Semaphore::new(MAX_PENDING_DISK_WRITES as usize)),
        }
    }

    /// Wait until every disk write started so far has finished.
    pub async fn flush(&self) {
        if let Ok(all) = self.disk_slots.acquire_many(MAX_PENDING_DISK_WRITES).await {
            drop(all);
        }
    }

    pub fn stats(&self) -> &TierStats {
        &self.stats
    }

    pub fn disk(&self) -> Option<&DiskCache> {
        self.disk.as_ref()
    }

    pub fn memory(&self) -> Option<&MemoryCache> {
        self.memory.as_ref()
    }

    /// Whether a tier holds the block (memory, or a block file on disk; a damaged file is found
    /// out when it is read). Nothing is read and nothing counts as a use.
    pub fn holds(&self, key: &BlockKey) -> bool {
        self.memory.as_ref().is_some_and(|m| m.contains(key))
            || self
                .disk
                .as_ref()
                .is_some_and(|d| d.block_path(key).exists())
    }
}

#[async_trait]
impl BlockCache for TieredCache {
    async fn get_block(&self, key: &BlockKey) -> Option<Bytes> {
        if let Some(m) = &self.memory
            && let Some(b) = m.get_block(key).await
        {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(b);
        }
        if let Some(d) = &self.disk
            && let Some(b) = d.get_block(key).await
        {
            self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.memory {
                m.put_block(key, b.clone()).await;
            }
            return Some(b);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    async fn remove_block(&self, key: &BlockKey) {
        if let Some(m) = &self.memory {
            m.remove_block(key).await;
        }
        if let Some(d) = &self.disk {
            d.remove_block(key).await;
        }
    }

    async fn put_block(&self, key: &BlockKey, data: Bytes) {
        if let Some(m) = &self.memory {
            m.put_block(key, data.clone()).await;
        }
        if let Some(d) = &self.disk {
            let Ok(slot) = self.disk_slots.clone().acquire_owned().await else {
                return;
            };
            let (d, key) = (d.clone(), key.clone());
            tokio::spawn(async move {
                d.put_block(&key, data).await;
                drop(slot);
            });
        }
    }
}
