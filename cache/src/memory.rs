//! The memory tier: a moka cache weighted by bytes (data plus key), so its cap is a byte budget.
//!
//! Eviction is LRU, not moka's default TinyLFU: TinyLFU refuses to admit a new block while the
//! blocks it would evict have been read more often, and a sequential reader's freshly prefetched
//! blocks (never read yet) then never get in — the reader misses its own prefetch (measured: 20%
//! of a 1 GiB stream went to the disk tier or the origin again).
//!
//! Moka evicts in batches: an insert is logged and applied (evicting what it displaces) by a later
//! maintenance pass, which moka runs after 64 logged writes or 300 ms. With 1 MiB blocks that let
//! the tier hold up to 64 MiB over its cap between passes (measured with a 64 MiB budget: RSS
//! peaked 80–96 MiB over idle). So `put_block` runs the pass itself once the bytes inserted since
//! the last pass reach `overshoot_bytes` (1/128 of the cap, at most 4 MiB): the tier stays within
//! its budget plus that much (RSS now peaks at budget + 8 MiB in the same test).

use crate::block_cache::BlockCache;
use crate::key::BlockKey;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most the tier may hold over its cap before `put_block` runs moka's maintenance itself.
const MAX_OVERSHOOT_BYTES: u64 = 4 << 20;

#[derive(Clone)]
pub struct MemoryCache {
    inner: moka::future::Cache<BlockKey, Bytes>,
    /// Bytes inserted since the last maintenance pass.
    unmaintained_bytes: Arc<AtomicU64>,
    overshoot_bytes: u64,
}

impl MemoryCache {
    pub fn new(capacity_bytes: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|k: &BlockKey, v: &Bytes| {
                u32::try_from(v.len() + k.weight()).unwrap_or(u32::MAX)
            })
            .build();
        MemoryCache {
            inner,
            unmaintained_bytes: Arc::new(AtomicU64::new(0)),
            overshoot_bytes: (capacity_bytes / 128).min(MAX_OVERSHOOT_BYTES),
        }
    }

    /// Bytes currently held (after pending maintenance).
    pub async fn weighted_size(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.weighted_size()
    }

    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// Whether the block is held now (without counting as a use).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.inner.contains_key(key)
    }
}

#[async_trait]
impl BlockCache for MemoryCache {
    async fn get_block(&self, key: &BlockKey) -> Option<Bytes> {
        self.inner.get(key).await
    }

    async fn remove_block(&self, key: &BlockKey) {
        self.inner.invalidate(key).await;
    }

    async fn put_block(&self, key: &BlockKey, data: Bytes) {
        let len = data.len() as u64;
        self.inner.insert(key.clone(), data).await;
        let since = self.unmaintained_bytes.fetch_add(len, Ordering::Relaxed) + len;
        if since >= self.overshoot_bytes {
            self.unmaintained_bytes.store(0, Ordering::Relaxed);
            self.inner.run_pending_tasks().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> BlockKey {
        BlockKey {
            volume: "v".into(),
            path: "p".into(),
            identity: "etag:1".into(),
            unit_bytes: 1 << 20,
            index: i,
        }
    }

    #[tokio::test]
    async fn stays_under_its_byte_budget() {
        let m = MemoryCache::new(1 << 20);
        for i in 0..64 {
            m.put_block(&key(i), Bytes::from(vec![i as u8; 64 * 1024]))
                .await;
        }
        assert!(m.weighted_size().await <= 1 << 20);
        let held = futures::future::join_all((0..64).map(|i| {
            let m = m.clone();
            async move { m.get_block(&key(i)).await.is_some() }
        }))
        .await;
        let n = held.iter().filter(|h| **h).count();
        assert!(n > 0 && n <= 16, "{n} blocks of 64 KiB held in 1 MiB");
    }

    /// Between moka's own maintenance passes (every 64 writes), 1 MiB blocks would pile up over the
    /// cap; `put_block` keeps what is held (still retrievable, not yet evicted) within the cap plus
    /// its overshoot at every moment, not only after a pass.
    #[tokio::test]
    async fn holds_no_more_than_its_cap_between_maintenance_passes() {
        let cap = 16u64 << 20;
        let m = MemoryCache::new(cap);
        let most_held = (cap + MAX_OVERSHOOT_BYTES.min(cap / 128)) / (1 << 20) + 1;
        for i in 0..60 {
            m.put_block(&key(i), Bytes::from(vec![i as u8; 1 << 20]))
                .await;
            let held = (0..=i).filter(|j| m.inner.contains_key(&key(*j))).count() as u64;
            assert!(
                held <= most_held,
                "{held} blocks of 1 MiB held after {} puts",
                i + 1
            );
        }
    }
}
