//! Byte ranges served from blocks, blocks fetched from the origin on a miss.
//!
//! A read maps to the blocks it covers. Cached blocks come from the tiers; the missing ones are
//! grouped into contiguous runs and each run is fetched with ONE ranged request (split at
//! `max_request_bytes`), carrying the object's expected identity so the connector refuses bytes of
//! another version. Fetches run as their own tasks and are registered per block while in flight:
//! a second reader (or the prefetcher) wanting a block that is already on its way waits for that
//! fetch instead of issuing another. A fetch that fails fails only the reads that needed it; nothing
//! is cached from it.
//!
//! Prefetch usefulness: blocks a prefetch brought from the origin are remembered (up to
//! [`PREFETCH_TRACKED_BLOCKS`]) until a reader reads them; `prefetched_bytes - prefetch_read_bytes`
//! is what prefetching fetched that nobody has read (yet) — wasted bytes once those blocks are
//! evicted.

use crate::block_cache::BlockCache;
use crate::error::{CacheError, Result};
use crate::key::BlockKey;
use crate::tiered::TieredCache;
use bytes::{Bytes, BytesMut};
use colo_connectors::{Connector, ObjectIdentity, ObjectPath};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One version of one object: what a read is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub path: ObjectPath,
    pub identity: ObjectIdentity,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct ReadStats {
    /// Blocks served from a cache tier.
    pub cached_blocks: AtomicU64,
    /// Blocks fetched from the origin.
    pub fetched_blocks: AtomicU64,
    /// Blocks a reader found already being fetched, and waited for.
    pub joined_blocks: AtomicU64,
    /// Origin requests issued by this layer.
    pub origin_requests: AtomicU64,
    /// Bytes fetched from the origin by prefetches (not by a waiting reader).
    pub prefetched_bytes: AtomicU64,
    /// Of those, bytes a reader later read.
    pub prefetch_read_bytes: AtomicU64,
}

/// Prefetched blocks remembered until read; beyond this, more are counted but not tracked (they
/// then stay "unread" in the figures).
pub const PREFETCH_TRACKED_BLOCKS: usize = 65_536;

/// Who asked for blocks: a reader waiting for them, or the prefetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    ByReader,
    ByPrefetch,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Vec<Bytes>>>>>;

struct Inner {
    connector: Arc<dyn Connector>,
    cache: Arc<TieredCache>,
    volume: Arc<str>,
    block_size: u64,
    max_request_bytes: u64,
    inflight: Mutex<HashMap<BlockKey, (Fetch, usize)>>,
    /// Blocks fetched by a prefetch and not read yet, with their lengths.
    prefetched_unread: Mutex<HashMap<BlockKey, u64>>,
    stats: ReadStats,
}

#[derive(Clone)]
pub struct ReadThrough {
    inner: Arc<Inner>,
}

impl ReadThrough {
    /// `block_size`: bytes per cached block; `max_request_bytes`: the most one origin request asks for.
    pub fn new(
        connector: Arc<dyn Connector>,
        cache: Arc<TieredCache>,
        block_size: u64,
        max_request_bytes: u64,
    ) -> Self {
        assert!(block_size > 0, "block size must be positive");
        let volume: Arc<str> = connector.volume().into();
        ReadThrough {
            inner: Arc::new(Inner {
                connector,
                cache,
                volume,
                block_size,
                max_request_bytes: max_request_bytes.max(block_size),
                inflight: Mutex::new(HashMap::new()),
                prefetched_unread: Mutex::new(HashMap::new()),
                stats: ReadStats::default(),
            }),
        }
    }

    pub fn block_size(&self) -> u64 {
        self.inner.block_size
    }

    pub fn stats(&self) -> &ReadStats {
        &self.inner.stats
    }

    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.inner.connector
    }

    pub fn key(&self, obj: &ObjectVersion, index: u64) -> BlockKey {
        BlockKey {
            volume: self.inner.volume.clone(),
            path: obj.path.as_str().into(),
            identity: obj.identity.to_string().into(),
            index,
        }
    }

    /// Bytes `[offset, offset + len)` of `obj`, clamped to its size.
    pub async fn read(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.saturating_add(len).min(obj.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let bs = self.inner.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        let blocks = self.blocks(obj, first, last, Wanted::ByReader).await?;
        self.note_read(obj, first, last);
        Ok(self.assemble(&blocks, first, offset, end))
    }

    /// Remembers blocks a prefetch fetched, until a reader reads them.
    fn note_prefetched(&self, keys: &[BlockKey], blocks: &[Option<Bytes>]) {
        let mut unread = self.inner.prefetched_unread.lock();
        for (key, block) in keys.iter().zip(blocks) {
            let len = block.as_ref().map_or(0, |b| b.len() as u64);
            self.inner
                .stats
                .prefetched_bytes
                .fetch_add(len, Ordering::Relaxed);
            if unread.len() < PREFETCH_TRACKED_BLOCKS {
                unread.insert(key.clone(), len);
            }
        }
    }

    /// Counts a reader's read of blocks a prefetch brought in.
    fn note_read(&self, obj: &ObjectVersion, first: u64, last: u64) {
        let mut unread = self.inner.prefetched_unread.lock();
        if unread.is_empty() {
            return;
        }
        for index in first..=last {
            if let Some(len) = unread.remove(&self.key(obj, index)) {
                self.inner
                    .stats
                    .prefetch_read_bytes
                    .fetch_add(len, Ordering::Relaxed);
            }
        }
    }

    /// The same bytes as [`ReadThrough::read`], but only if every block is in the memory tier right
    /// now; never waits, never fetches. Lets a caller that is not on the runtime (a FUSE thread)
    /// answer cache hits at once instead of handing them to a task.
    pub fn read_from_memory(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Option<Bytes> {
        let end = offset.saturating_add(len).min(obj.size);
        if offset >= end {
            return Some(Bytes::new());
        }
        let memory = self.inner.cache.memory()?;
        let bs = self.inner.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        let mut blocks = Vec::with_capacity((last - first + 1) as usize);
        for index in first..=last {
            // moka's lookup completes without waiting; anything else counts as a miss here.
            blocks.push(
                memory
                    .get_block(&self.key(obj, index))
                    .now_or_never()
                    .flatten()?,
            );
        }
        self.inner
            .stats
            .cached_blocks
            .fetch_add(blocks.len() as u64, Ordering::Relaxed);
        self.note_read(obj, first, last);
        Some(self.assemble(&blocks, first, offset, end))
    }

    /// Bytes `[offset, offset + len)` for a sparse reader (a cutout reading image rows): from the
    /// cache tiers when every covering block is there, otherwise exactly these bytes from the
    /// origin, which are not cached — whole blocks would multiply what a strided read transfers.
    pub async fn read_exact(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.saturating_add(len).min(obj.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let bs = self.inner.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        let mut blocks = Vec::with_capacity((last - first + 1) as usize);
        for index in first..=last {
            match self.inner.cache.get_block(&self.key(obj, index)).await {
                Some(block) => blocks.push(block),
                None => break,
            }
        }
        if blocks.len() as u64 == last - first + 1 {
            self.inner
                .stats
                .cached_blocks
                .fetch_add(blocks.len() as u64, Ordering::Relaxed);
            self.note_read(obj, first, last);
            return Ok(self.assemble(&blocks, first, offset, end));
        }
        self.inner
            .stats
            .origin_requests
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .connector
            .read_range(&obj.path, offset..end, Some(&obj.identity))
            .await
            .map_err(CacheError::from)
    }

    /// Bytes `[offset, end)` out of whole blocks starting at block `first`.
    fn assemble(&self, blocks: &[Bytes], first: u64, offset: u64, end: u64) -> Bytes {
        let bs = self.inner.block_size;
        if blocks.len() == 1 {
            let start = (offset - first * bs) as usize;
            return blocks[0].slice(start..start + (end - offset) as usize);
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (i, b) in blocks.iter().enumerate() {
            let block_start = (first + i as u64) * bs;
            let from = offset.saturating_sub(block_start) as usize;
            let to = ((end - block_start) as usize).min(b.len());
            out.extend_from_slice(&b[from..to]);
        }
        out.freeze()
    }

    /// Make sure blocks covering `[offset, offset + len)` are cached, in the background.
    pub fn prefetch(&self, obj: &ObjectVersion, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(obj.size);
        if offset >= end {
            return;
        }
        let bs = self.inner.block_size;
        let this = self.clone();
        let obj = obj.clone();
        tokio::spawn(async move {
            let (first, last) = (offset / bs, (end - 1) / bs);
            if let Err(e) = this.blocks(&obj, first, last, Wanted::ByPrefetch).await {
                tracing::debug!(error = %e, "prefetch failed");
            }
        });
    }

    /// Blocks `first..=last`, each whole (the last one of the object may be short).
    async fn blocks(
        &self,
        obj: &ObjectVersion,
        first: u64,
        last: u64,
        wanted: Wanted,
    ) -> Result<Vec<Bytes>> {
        let count = (last - first + 1) as usize;
        let mut got: Vec<Option<Bytes>> = vec![None; count];
        for (i, slot) in got.iter_mut().enumerate() {
            *slot = self
                .inner
                .cache
                .get_block(&self.key(obj, first + i as u64))
                .await;
        }
        let cached = got.iter().filter(|b| b.is_some()).count() as u64;
        self.inner
            .stats
            .cached_blocks
            .fetch_add(cached, Ordering::Relaxed);

        // Waits: (slot, fetch, position of the block in that fetch).
        let mut waits: Vec<(usize, Fetch, usize)> = Vec::new();
        {
            let mut inflight = self.inner.inflight.lock();
            let mut i = 0;
            while i < count {
                if got[i].is_some() {
                    i += 1;
                    continue;
                }
                let key = self.key(obj, first + i as u64);
                if let Some((fetch, pos)) = inflight.get(&key) {
                    self.inner
                        .stats
                        .joined_blocks
                        .fetch_add(1, Ordering::Relaxed);
                    waits.push((i, fetch.clone(), *pos));
                    i += 1;
                    continue;
                }
                // A run of missing blocks nobody is fetching yet, up to the request cap.
                let max_blocks =
                    (self.inner.max_request_bytes / self.inner.block_size).max(1) as usize;
                let mut j = i;
                while j < count
                    && j - i < max_blocks
                    && got[j].is_none()
                    && !inflight.contains_key(&self.key(obj, first + j as u64))
                {
                    j += 1;
                }
                let fetch = self.start_fetch(obj, first + i as u64, (j - i) as u64, wanted);
                for (pos, slot) in (i..j).enumerate() {
                    inflight.insert(self.key(obj, first + slot as u64), (fetch.clone(), pos));
                    waits.push((slot, fetch.clone(), pos));
                }
                i = j;
            }
        }
        for (slot, fetch, pos) in waits {
            let blocks = fetch.await?;
            got[slot] = Some(blocks[pos].clone());
        }
        Ok(got.into_iter().map(|b| b.unwrap_or_default()).collect())
    }

    /// Fetch `n` blocks from `first` with one request, as a task of its own.
    fn start_fetch(&self, obj: &ObjectVersion, first: u64, n: u64, wanted: Wanted) -> Fetch {
        let this = self.clone();
        let obj = obj.clone();
        let task = tokio::spawn(async move {
            let bs = this.inner.block_size;
            let keys: Vec<BlockKey> = (0..n).map(|i| this.key(&obj, first + i)).collect();
            // A fetch that finished between the reader's cache lookup and this fetch's
            // registration may already have cached some of these blocks: look once more, and ask
            // the origin only for the span that is still missing.
            let mut got: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
            for key in &keys {
                got.push(this.inner.cache.get_block(key).await);
            }
            let outcome = match (
                got.iter().position(Option::is_none),
                got.iter().rposition(Option::is_none),
            ) {
                (Some(lo), Some(hi)) => {
                    let start = (first + lo as u64) * bs;
                    let end = ((first + hi as u64 + 1) * bs).min(obj.size);
                    this.inner
                        .stats
                        .origin_requests
                        .fetch_add(1, Ordering::Relaxed);
                    match this
                        .inner
                        .connector
                        .read_range(&obj.path, start..end, Some(&obj.identity))
                        .await
                    {
                        Ok(bytes) => {
                            for (i, slot) in got.iter_mut().enumerate().take(hi + 1).skip(lo) {
                                let from = (i - lo) * bs as usize;
                                let to = (from + bs as usize).min(bytes.len());
                                let block = bytes.slice(from..to);
                                this.inner.cache.put_block(&keys[i], block.clone()).await;
                                *slot = Some(block);
                            }
                            this.inner
                                .stats
                                .fetched_blocks
                                .fetch_add((hi - lo + 1) as u64, Ordering::Relaxed);
                            if wanted == Wanted::ByPrefetch {
                                this.note_prefetched(&keys[lo..=hi], &got[lo..=hi]);
                            }
                            Ok(Arc::new(
                                got.into_iter().map(Option::unwrap_or_default).collect(),
                            ))
                        }
                        Err(e) => Err(CacheError::from(e)),
                    }
                }
                _ => Ok(Arc::new(
                    got.into_iter().map(Option::unwrap_or_default).collect(),
                )),
            };
            let mut inflight = this.inner.inflight.lock();
            for key in &keys {
                inflight.remove(key);
            }
            outcome
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(CacheError::Task {
                    detail: e.to_string(),
                })
            })
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DiskCache, MemoryCache};
    use colo_connectors::{MemoryConnector, ObjectMeta};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn setup(size: usize) -> (Arc<MemoryConnector>, ReadThrough, ObjectVersion) {
        let m = Arc::new(MemoryConnector::new("mem"));
        m.put("f.bin", data(size));
        let meta: ObjectMeta = m.stat(&ObjectPath::parse("f.bin").unwrap()).await.unwrap();
        let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(64 << 20)), None));
        let rt = ReadThrough::new(m.clone(), cache, 1000, 8000);
        let obj = ObjectVersion {
            path: ObjectPath::parse("f.bin").unwrap(),
            identity: meta.identity(),
            size: meta.size,
        };
        (m, rt, obj)
    }

    #[tokio::test]
    async fn ranges_match_the_source_at_every_alignment() {
        let (m, rt, obj) = setup(10_500).await;
        let src = data(10_500);
        for (off, len) in [
            (0, 1),
            (0, 1000),
            (999, 2),
            (1000, 1000),
            (2500, 5001),
            (10_000, 9999),
            (0, 10_500),
            (10_499, 1),
            (10_500, 10),
        ] {
            let got = rt.read(&obj, off, len).await.unwrap();
            let end = (off + len).min(10_500) as usize;
            assert_eq!(
                &got[..],
                &src[off as usize..end.max(off as usize)],
                "off {off} len {len}"
            );
        }
        let reads = m.reads.load(Ordering::Relaxed);
        let again = rt.read(&obj, 0, 10_500).await.unwrap();
        assert_eq!(&again[..], &src[..]);
        assert_eq!(
            m.reads.load(Ordering::Relaxed),
            reads,
            "second read is all cached"
        );
    }

    #[tokio::test]
    async fn prefetched_bytes_count_until_a_reader_reads_them() {
        let (_m, rt, obj) = setup(10_500).await;
        rt.prefetch(&obj, 0, 4000);
        for _ in 0..200 {
            if rt.stats().prefetched_bytes.load(Ordering::Relaxed) == 4000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let stats = rt.stats();
        assert_eq!(stats.prefetched_bytes.load(Ordering::Relaxed), 4000);
        assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 0);
        // A reader reads blocks 1 and 2 (twice: counted once); block 5 was never prefetched.
        rt.read(&obj, 1500, 1000).await.unwrap();
        rt.read(&obj, 1500, 1000).await.unwrap();
        rt.read(&obj, 5000, 10).await.unwrap();
        assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 2000);
        assert_eq!(stats.prefetched_bytes.load(Ordering::Relaxed), 4000);
        // The fast memory path counts too.
        rt.read_from_memory(&obj, 0, 10).expect("in memory");
        assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 3000);
    }

    #[tokio::test]
    async fn a_run_of_missing_blocks_is_one_request() {
        let (m, rt, obj) = setup(20_000).await;
        rt.read(&obj, 0, 8000).await.unwrap();
        assert_eq!(m.reads.load(Ordering::Relaxed), 1);
        rt.read(&obj, 0, 20_000).await.unwrap();
        // 12 missing blocks, at most 8 per request.
        assert_eq!(m.reads.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_fetch_asks_only_for_the_blocks_still_missing() {
        let (m, rt, obj) = setup(8000).await;
        // Blocks 0, 1 and 5 are cached already (as if another fetch landed first).
        rt.read(&obj, 0, 2000).await.unwrap();
        rt.read(&obj, 5000, 1000).await.unwrap();
        let before = m.read_bytes.load(Ordering::Relaxed);
        let blocks = rt.start_fetch(&obj, 0, 8, Wanted::ByReader).await.unwrap();
        let all: Vec<u8> = blocks.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(all, data(8000));
        assert_eq!(
            m.read_bytes.load(Ordering::Relaxed) - before,
            6000,
            "blocks 2..=7 only"
        );
        let reads = m.reads.load(Ordering::Relaxed);
        rt.start_fetch(&obj, 0, 8, Wanted::ByReader).await.unwrap();
        assert_eq!(
            m.reads.load(Ordering::Relaxed),
            reads,
            "a fully cached run asks nothing"
        );
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch() {
        let (m, rt, obj) = setup(8000).await;
        m.set_delay(std::time::Duration::from_millis(50));
        let reads = (0..8).map(|i| {
            let (rt, obj) = (rt.clone(), obj.clone());
            async move { rt.read(&obj, i * 100, 8000 - i * 100).await.unwrap() }
        });
        let results = futures::future::join_all(reads).await;
        let src = data(8000);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(&r[..], &src[i * 100..]);
        }
        assert_eq!(
            m.reads.load(Ordering::Relaxed),
            1,
            "one origin request for all readers"
        );
        assert!(rt.stats().joined_blocks.load(Ordering::Relaxed) > 0);
    }

    #[tokio::test]
    async fn an_origin_failure_fails_that_read_only() {
        let (m, rt, obj) = setup(5000).await;
        m.fail_next(1);
        let e = rt.read(&obj, 0, 100).await.unwrap_err();
        assert!(
            matches!(e, CacheError::Origin(ref c) if c.is_temporary()),
            "{e}"
        );
        assert_eq!(
            &rt.read(&obj, 0, 100).await.unwrap()[..],
            &data(5000)[..100]
        );
    }

    #[tokio::test]
    async fn a_changed_object_is_never_mixed() {
        let (m, rt, obj) = setup(5000).await;
        let first = rt.read(&obj, 0, 1000).await.unwrap();
        m.put("f.bin", vec![9u8; 5000]);
        // Cached block of the old version still serves the old version...
        assert_eq!(rt.read(&obj, 0, 1000).await.unwrap(), first);
        // ...but an uncached block of the old version cannot be had: Stale, not new bytes.
        let e = rt.read(&obj, 3000, 1000).await.unwrap_err();
        assert!(
            matches!(e, CacheError::Origin(ref c) if c.kind() == colo_connectors::ErrorKind::Stale),
            "{e}"
        );
        // The new version has a new identity and reads the new bytes only.
        let meta = m.stat(&obj.path).await.unwrap();
        let new = ObjectVersion {
            identity: meta.identity(),
            ..obj.clone()
        };
        assert_eq!(&rt.read(&new, 0, 5000).await.unwrap()[..], &[9u8; 5000][..]);
    }

    #[tokio::test]
    async fn disk_tier_refetches_a_corrupted_block() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(MemoryConnector::new("mem"));
        m.put("f", data(3000));
        let meta = m.stat(&ObjectPath::parse("f").unwrap()).await.unwrap();
        let disk = DiskCache::open(dir.path(), 1 << 20).unwrap();
        let cache = Arc::new(TieredCache::new(None, Some(disk.clone())));
        let rt = ReadThrough::new(m.clone(), cache.clone(), 1000, 8000);
        let obj = ObjectVersion {
            path: ObjectPath::parse("f").unwrap(),
            identity: meta.identity(),
            size: 3000,
        };
        rt.read(&obj, 0, 3000).await.unwrap();
        cache.flush().await;
        let block = disk.block_path(&rt.key(&obj, 1));
        let mut raw = std::fs::read(&block).unwrap();
        let n = raw.len();
        raw[n - 10] ^= 0xff;
        std::fs::write(&block, raw).unwrap();
        let before = m.reads.load(Ordering::Relaxed);
        assert_eq!(&rt.read(&obj, 0, 3000).await.unwrap()[..], &data(3000)[..]);
        assert_eq!(
            m.reads.load(Ordering::Relaxed),
            before + 1,
            "only the bad block is refetched"
        );
        assert_eq!(disk.stats().corrupt_blocks.load(Ordering::Relaxed), 1);
    }
}
