//! Byte ranges served from cached units, units fetched from the origin on a miss.
//!
//! One read, [`ReadThrough::read`], takes what a miss should fetch as data, a [`FetchPlan`] chosen
//! by the caller (the VFS by access pattern, the services per use; the plans are in [`plan`]).
//! Two grids of units cover an object: blocks (`block_size`, the default 1 MiB) and pages
//! (`page_size`, 64 KiB), keyed apart. A streaming or whole-object read (plans `Blocks`,
//! `BlockSpan`; prefetch) works in blocks. A sparse read (plans `Pages`, `PageSpan`: a Parquet
//! column chunk, a random `pread`) takes the blocks that are cached already and fetches only the
//! pages it needs of the rest — bytes near the request instead of whole blocks, still on a grid so
//! that a page once fetched is reused by the next reader. The fetching itself, shared by every
//! plan, is in [`fetch`].
//!
//! A read maps to the units it covers. Cached units come from the tiers; the missing ones are grouped
//! into contiguous runs and each run is fetched with ONE ranged request (split at
//! `max_request_bytes`), carrying the object's expected identity so the connector refuses bytes of
//! another version. Fetches run as their own tasks and are registered per unit while in flight: a
//! second reader (or the prefetcher) wanting a unit that is already on its way waits for that fetch
//! instead of issuing another. A fetch that fails fails only the reads that needed it; nothing is
//! cached from it.
//!
//! Every fetch holds permits for its bytes from the process's [`FetchBudget`] (when given one) from
//! before its request until its units are in the tier, so bytes in flight stay within their share of
//! the memory budget however many readers there are.
//!
//! Prefetch usefulness: blocks a prefetch brought from the origin are remembered (up to
//! [`PREFETCH_TRACKED_BLOCKS`]) until a reader reads them; `prefetched_bytes - prefetch_read_bytes`
//! is what prefetching fetched that nobody has read (yet) — wasted bytes once those blocks are
//! evicted.

use crate::block_cache::BlockCache;
use crate::error::Result;
use crate::fetch_budget::{FetchBudget, FetchPermit};
use crate::key::BlockKey;
use crate::origin_cost::{CostEstimate, OriginCost};
use crate::tiered::TieredCache;
use bytes::{Bytes, BytesMut};
use colo_connectors::{Connector, ObjectIdentity, ObjectPath};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes per page, the grid of sparse reads (when the block size is a multiple of it).
pub const DEFAULT_PAGE_BYTES: u64 = 64 * 1024;

/// One version of one object: what a read is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Objects fetched whole in the background ([`ReadThrough::fill`]).
    pub fills: AtomicU64,
}

/// Prefetched blocks remembered until read; beyond this, more are counted but not tracked (they
/// then stay "unread" in the figures).
pub const PREFETCH_TRACKED_BLOCKS: usize = 65_536;

/// Who asked for units: a reader waiting for them, or the prefetcher.
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
    page_size: u64,
    max_request_bytes: u64,
    fetch_budget: Option<Arc<FetchBudget>>,
    inflight: Mutex<HashMap<BlockKey, (Fetch, usize)>>,
    /// Blocks fetched by a prefetch and not read yet, with their lengths.
    prefetched_unread: Mutex<HashMap<BlockKey, u64>>,
    stats: ReadStats,
    /// What a request to this volume's origin costs, learned from every fetch.
    cost: OriginCost,
    /// Origin requests of this reader in flight now.
    requests_in_flight: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
pub struct ReadThrough {
    inner: Arc<Inner>,
}

/// Consecutive units of one grid, as fetched or found: unit `first + i` is `units[i]`.
struct Piece {
    unit: u64,
    first: u64,
    units: Vec<Bytes>,
}

impl ReadThrough {
    /// `block_size`: bytes per cached block; `max_request_bytes`: the most one origin request asks
    /// for. Pages are [`DEFAULT_PAGE_BYTES`] when that divides the block size, else blocks (sparse
    /// reads then fetch whole blocks).
    pub fn new(
        connector: Arc<dyn Connector>,
        cache: Arc<TieredCache>,
        block_size: u64,
        max_request_bytes: u64,
    ) -> Self {
        assert!(block_size > 0, "block size must be positive");
        assert!(block_size <= u32::MAX as u64, "block size must fit a key");
        let page_size =
            if block_size > DEFAULT_PAGE_BYTES && block_size.is_multiple_of(DEFAULT_PAGE_BYTES) {
                DEFAULT_PAGE_BYTES
            } else {
                block_size
            };
        let volume: Arc<str> = connector.volume().into();
        ReadThrough {
            inner: Arc::new(Inner {
                connector,
                cache,
                volume,
                block_size,
                page_size,
                max_request_bytes: max_request_bytes.max(block_size),
                fetch_budget: None,
                inflight: Mutex::new(HashMap::new()),
                prefetched_unread: Mutex::new(HashMap::new()),
                stats: ReadStats::default(),
                cost: OriginCost::default(),
                requests_in_flight: Default::default(),
            }),
        }
    }

    /// The most one origin request asks for.
    pub fn max_request_bytes(&self) -> u64 {
        self.inner.max_request_bytes
    }

    /// What a request to this volume's origin costs, as learned so far
    /// ([`crate::origin_cost`]).
    pub fn origin_cost(&self) -> CostEstimate {
        self.inner.cost.estimate()
    }

    /// The same reader with pages of `page_size` bytes (a divisor of the block size); before the
    /// reader is shared.
    pub fn with_page_size(mut self, page_size: u64) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("page size is set before sharing");
        assert!(
            page_size > 0 && inner.block_size.is_multiple_of(page_size),
            "pages must divide blocks"
        );
        inner.page_size = page_size;
        self
    }

    /// The same reader with its fetches bounded by `budget` (shared with the process's other
    /// readers); before the reader is shared.
    pub fn with_fetch_budget(mut self, budget: Arc<FetchBudget>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("fetch budget is set before sharing");
        inner.fetch_budget = Some(budget);
        self
    }

    async fn fetch_permit(&self, bytes: u64) -> Option<FetchPermit> {
        match &self.inner.fetch_budget {
            Some(budget) => Some(budget.acquire(bytes).await),
            None => None,
        }
    }

    pub fn block_size(&self) -> u64 {
        self.inner.block_size
    }

    pub fn page_size(&self) -> u64 {
        self.inner.page_size
    }

    pub fn stats(&self) -> &ReadStats {
        &self.inner.stats
    }

    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.inner.connector
    }

    /// The tiers this reader caches in.
    pub fn cache(&self) -> &Arc<TieredCache> {
        &self.inner.cache
    }

    /// The blocks of `obj` a cache tier holds neither whole nor as all of their pages (a reader
    /// jumping ahead fetches pages, and pages the kernel's cache still had are never asked for),
    /// if there are at most `at_most` of them (`None` as soon as there are more: a partly read
    /// large file costs a look at its blocks only up to there).
    pub fn missing_blocks(&self, obj: &ObjectVersion, at_most: usize) -> Option<Vec<u64>> {
        let mut missing = Vec::new();
        for index in 0..obj.size.div_ceil(self.inner.block_size) {
            if !self.holds_block(obj, index) {
                if missing.len() == at_most {
                    return None;
                }
                missing.push(index);
            }
        }
        Some(missing)
    }

    fn holds_block(&self, obj: &ObjectVersion, index: u64) -> bool {
        let cache = &self.inner.cache;
        cache.holds(&self.key(obj, index))
            || self.pages_of_block(obj, index).is_some_and(|mut pages| {
                pages.all(|p| cache.holds(&self.unit_key(obj, self.inner.page_size, p)))
            })
    }

    /// The pages block `index` of `obj` is made of (`None` where pages are blocks).
    fn pages_of_block(&self, obj: &ObjectVersion, index: u64) -> Option<Range<u64>> {
        let (bs, ps) = (self.inner.block_size, self.inner.page_size);
        if ps >= bs {
            return None;
        }
        let end = ((index + 1) * bs).min(obj.size);
        Some(index * bs / ps..end.div_ceil(ps))
    }

    /// Block `index` of `obj` from the cache tiers only: held whole, or put together from all of
    /// its pages; `None` if any part is missing. Nothing is fetched.
    pub async fn cached_block(&self, obj: &ObjectVersion, index: u64) -> Option<Bytes> {
        let cache = &self.inner.cache;
        if let Some(block) = cache.get_block(&self.key(obj, index)).await {
            return Some(block);
        }
        let ps = self.inner.page_size;
        let mut block = Vec::new();
        for p in self.pages_of_block(obj, index)? {
            block.extend_from_slice(&cache.get_block(&self.unit_key(obj, ps, p)).await?);
        }
        Some(Bytes::from(block))
    }

    /// The key of block `index` of `obj`.
    pub fn key(&self, obj: &ObjectVersion, index: u64) -> BlockKey {
        self.unit_key(obj, self.inner.block_size, index)
    }

    fn unit_key(&self, obj: &ObjectVersion, unit: u64, index: u64) -> BlockKey {
        BlockKey {
            volume: self.inner.volume.clone(),
            path: obj.path.as_str().into(),
            identity: obj.identity.to_string().into(),
            unit_bytes: unit as u32,
            index,
        }
    }

    /// Drops every block and page of `obj` from the cache tiers: for a version whose identity a
    /// newer one shares (a rewrite of the same size in the same second, where the backend knows
    /// versions only by size and mtime in seconds), so its bytes are never served for the newer.
    pub async fn forget_version(&self, obj: &ObjectVersion) {
        for unit in [self.inner.block_size, self.inner.page_size] {
            for index in 0..obj.size.div_ceil(unit) {
                self.inner
                    .cache
                    .remove_block(&self.unit_key(obj, unit, index))
                    .await;
            }
        }
    }

    /// Puts the bytes of the local file `source` in the cache tiers as the blocks of `obj` (the
    /// version an upload of that file just made): reading the file back after its upload costs
    /// no request, and works while the origin is away. `source` must hold exactly `obj`'s bytes.
    pub async fn adopt_file(&self, obj: &ObjectVersion, source: &std::path::Path) -> Result<()> {
        let block = self.inner.block_size;
        let source = source.to_path_buf();
        let io = |e: std::io::Error| crate::error::CacheError::Io {
            path: source.clone(),
            source: Arc::new(e),
        };
        let mut file = tokio::fs::File::open(&source).await.map_err(io)?;
        for index in 0..obj.size.div_ceil(block) {
            let len = block.min(obj.size - index * block) as usize;
            let mut buf = vec![0u8; len];
            tokio::io::AsyncReadExt::read_exact(&mut file, &mut buf)
                .await
                .map_err(io)?;
            let key = self.key(obj, index);
            self.inner.cache.put_block(&key, Bytes::from(buf)).await;
        }
        Ok(())
    }

    /// `[offset, offset + len)` clamped to the object, or `None` when empty.
    pub(crate) fn clamp(obj: &ObjectVersion, offset: u64, len: u64) -> Option<Range<u64>> {
        let end = offset.saturating_add(len).min(obj.size);
        (offset < end).then_some(offset..end)
    }

    /// Bytes `[offset, offset + len)` of `obj`, clamped to its size; what a miss fetches from the
    /// origin is `plan` (see [`FetchPlan`]).
    pub async fn read(
        &self,
        obj: &ObjectVersion,
        offset: u64,
        len: u64,
        plan: FetchPlan,
    ) -> Result<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Ok(Bytes::new());
        };
        match plan {
            FetchPlan::Blocks => self.read_blocks(obj, want.clone(), want).await,
            FetchPlan::BlockSpan(span) => self.read_blocks(obj, want, span).await,
            FetchPlan::Pages => self.read_pages(obj, want.clone(), want).await,
            FetchPlan::PageSpan(span) => self.read_pages(obj, want, span).await,
            FetchPlan::Exact => self.read_exact(obj, want).await,
        }
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

    /// The same bytes as [`ReadThrough::read`], but only if every block (or, for a block not held
    /// whole, every page the read needs of it) is in the memory tier right now; never waits, never
    /// fetches. Lets a caller that is not on the runtime (a FUSE thread) answer cache hits at once
    /// instead of handing them to a task.
    pub fn read_from_memory(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Option<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Some(Bytes::new());
        };
        let memory = self.inner.cache.memory()?;
        // moka's lookup completes without waiting; anything else counts as a miss here.
        let get = |key: BlockKey| memory.get_block(&key).now_or_never().flatten();
        let (bs, ps) = (self.inner.block_size, self.inner.page_size);
        let (first, last) = (want.start / bs, (want.end - 1) / bs);
        let mut pieces = Vec::with_capacity((last - first + 1) as usize);
        for b in first..=last {
            if let Some(block) = get(self.key(obj, b)) {
                pieces.push(Piece {
                    unit: bs,
                    first: b,
                    units: vec![block],
                });
                continue;
            }
            if ps >= bs {
                return None;
            }
            let from = want.start.max(b * bs);
            let to = want.end.min((b + 1) * bs);
            let (p_first, p_last) = (from / ps, (to - 1) / ps);
            let units = (p_first..=p_last)
                .map(|p| get(self.unit_key(obj, ps, p)))
                .collect::<Option<Vec<_>>>()?;
            pieces.push(Piece {
                unit: ps,
                first: p_first,
                units,
            });
        }
        let found: usize = pieces.iter().map(|p| p.units.len()).sum();
        self.inner
            .stats
            .cached_blocks
            .fetch_add(found as u64, Ordering::Relaxed);
        self.note_read(obj, first, last);
        Some(Self::assemble(&pieces, want))
    }

    /// Bytes `want` out of pieces that cover it in order. A read within one unit is a slice of
    /// it (no copy, no allocation); only a read across units is copied together.
    fn assemble(pieces: &[Piece], want: Range<u64>) -> Bytes {
        let mut slices = pieces
            .iter()
            .flat_map(|p| {
                let starts = (p.first..).map(move |index| index * p.unit);
                starts.zip(p.units.iter())
            })
            .filter_map(|(unit_start, unit)| {
                let unit_end = unit_start + unit.len() as u64;
                let (from, to) = (want.start.max(unit_start), want.end.min(unit_end));
                (from < to)
                    .then(|| unit.slice((from - unit_start) as usize..(to - unit_start) as usize))
            });
        let Some(first) = slices.next() else {
            return Bytes::new();
        };
        let Some(second) = slices.next() else {
            return first;
        };
        let mut out = BytesMut::with_capacity((want.end - want.start) as usize);
        for part in [first, second].into_iter().chain(slices) {
            out.extend_from_slice(&part);
        }
        out.freeze()
    }

    /// Make sure blocks covering `[offset, offset + len)` are cached, in the background. A window
    /// of at least one request (a stream past its first few windows) goes out in whole requests:
    /// the span not yet cached or in flight is extended to a multiple of `max_request_bytes`, so
    /// windows that start and end anywhere go out as requests of the largest size instead of each
    /// leaving a short one behind. Smaller windows (a stream's first, which may be all it reads)
    /// fetch only what they ask for.
    pub fn prefetch(&self, obj: &ObjectVersion, offset: u64, len: u64) {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return;
        };
        let bs = self.inner.block_size;
        let (first, last) = (want.start / bs, (want.end - 1) / bs);
        let (first, last) = if want.end - want.start >= self.inner.max_request_bytes {
            self.whole_requests(obj, first, last)
        } else {
            (first, last)
        };
        let this = self.clone();
        let obj = obj.clone();
        tokio::spawn(async move {
            if let Err(e) = this.units(&obj, bs, first, last, Wanted::ByPrefetch).await {
                tracing::debug!(error = %e, "prefetch failed");
            }
        });
    }

    /// Blocks `first..=last` with the part after the blocks already cached or in flight extended
    /// to a whole number of requests (within the object).
    fn whole_requests(&self, obj: &ObjectVersion, first: u64, last: u64) -> (u64, u64) {
        let bs = self.inner.block_size;
        let per_request = (self.inner.max_request_bytes / bs).max(1);
        let object_last = obj.size.saturating_sub(1) / bs;
        let inflight = self.inner.inflight.lock();
        let missing_from = (first..=last)
            .find(|&i| {
                let key = self.unit_key(obj, bs, i);
                !inflight.contains_key(&key) && !self.inner.cache.holds(&key)
            })
            .unwrap_or(last + 1);
        let blocks = (last + 1).saturating_sub(missing_from);
        let rounded = blocks.div_ceil(per_request) * per_request;
        (
            first,
            (missing_from + rounded)
                .saturating_sub(1)
                .clamp(last, object_last),
        )
    }

    /// Make sure all of `obj` is cached, in the background: one request per missing run of up to
    /// `max_request_bytes`, at most `parallel` at a time (so a fill never holds more than that many
    /// requests' bytes in flight). Readers wanting a block meanwhile join its fetch.
    pub fn fill(&self, obj: &ObjectVersion, parallel: usize) {
        if obj.size == 0 {
            return;
        }
        self.inner.stats.fills.fetch_add(1, Ordering::Relaxed);
        let bs = self.inner.block_size;
        let per_request = (self.inner.max_request_bytes / bs).max(1);
        let last = (obj.size - 1) / bs;
        let this = self.clone();
        let obj = obj.clone();
        tokio::spawn(async move {
            let chunks = (0..=last).step_by(per_request as usize).map(|first| {
                let (this, obj) = (&this, &obj);
                async move {
                    let end = (first + per_request - 1).min(last);
                    this.units(obj, bs, first, end, Wanted::ByPrefetch).await
                }
            });
            let mut running = futures::stream::iter(chunks).buffer_unordered(parallel.max(1));
            while let Some(result) = running.next().await {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "fill stopped");
                    return;
                }
            }
        });
    }
}

pub mod fetch;
pub mod plan;

pub use plan::FetchPlan;

#[cfg(test)]
mod tests;
