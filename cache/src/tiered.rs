//! Memory in front of disk. A disk hit is promoted to memory; a put goes to both. Either tier may be
//! absent (a zero-sized memory tier, or no disk directory).

use crate::block_cache::BlockCache;
use crate::disk::DiskCache;
use crate::key::BlockKey;
use crate::memory::MemoryCache;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl TieredCache {
    pub fn new(memory: Option<MemoryCache>, disk: Option<DiskCache>) -> Self {
        TieredCache {
            memory,
            disk,
            stats: TierStats::default(),
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

    async fn put_block(&self, key: &BlockKey, data: Bytes) {
        if let Some(m) = &self.memory {
            m.put_block(key, data.clone()).await;
        }
        if let Some(d) = &self.disk {
            d.put_block(key, data).await;
        }
    }
}
