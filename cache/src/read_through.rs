//! Byte ranges served from cached units, units fetched from the origin on a miss.
//!
//! Two grids of units cover an object: blocks (`block_size`, the default 1 MiB) and pages
//! (`page_size`, 64 KiB), keyed apart. A streaming or whole-object read ([`ReadThrough::read`],
//! [`ReadThrough::read_span`], prefetch) works in blocks. A sparse read
//! ([`ReadThrough::read_sparse`]: a Parquet column chunk, a random `pread`) takes the blocks that are
//! cached already and fetches only the pages it needs of the rest — bytes near the request instead of
//! whole blocks, still on a grid so that a page once fetched is reused by the next reader.
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
use crate::error::{CacheError, Result};
use crate::fetch_budget::{FetchBudget, FetchPermit};
use crate::key::BlockKey;
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
            }),
        }
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

    /// `[offset, offset + len)` clamped to the object, or `None` when empty.
    fn clamp(obj: &ObjectVersion, offset: u64, len: u64) -> Option<Range<u64>> {
        let end = offset.saturating_add(len).min(obj.size);
        (offset < end).then_some(offset..end)
    }

    /// Bytes `[offset, offset + len)` of `obj`, clamped to its size, fetching whole blocks.
    pub async fn read(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Result<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Ok(Bytes::new());
        };
        self.read_span(obj, want.start, want.end - want.start, want)
            .await
    }

    /// Bytes `[offset, offset + len)`, where any miss fetches the whole blocks of `span` (which
    /// should contain the read) in the same request: one GET for a small file read piece by piece.
    pub async fn read_span(
        &self,
        obj: &ObjectVersion,
        offset: u64,
        len: u64,
        span: Range<u64>,
    ) -> Result<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Ok(Bytes::new());
        };
        let bs = self.inner.block_size;
        let span = span.start.min(want.start)..span.end.max(want.end).min(obj.size);
        let (first, last) = (want.start / bs, (want.end - 1) / bs);
        let (span_first, span_last) = (span.start / bs, (span.end - 1) / bs);
        let mut cached = self.cached_units(obj, bs, span_first, span_last).await;
        let wanted_units = (first - span_first) as usize..=(last - span_first) as usize;
        if !cached[wanted_units.clone()].iter().all(Option::is_some) {
            cached = self
                .units_from(obj, bs, span_first, cached, Wanted::ByReader)
                .await?
                .into_iter()
                .map(Some)
                .collect();
        }
        let units = cached[wanted_units].iter().flatten().cloned().collect();
        self.note_read(obj, first, last);
        Ok(Self::assemble(
            &[Piece {
                unit: bs,
                first,
                units,
            }],
            want,
        ))
    }

    /// Bytes `[offset, offset + len)` for a reader that jumps around: blocks already cached (or on
    /// their way) serve as they are; of the others, only the pages this read covers are fetched,
    /// one request per run of missing pages.
    pub async fn read_sparse(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Result<Bytes> {
        self.read_sparse_span(obj, offset, len, offset..offset)
            .await
    }

    /// [`ReadThrough::read_sparse`], fetching the pages of all of `span` (which may start before
    /// the read and end after it) in the same request when the read misses: a whole Parquet column
    /// chunk, whichever of the pieces the kernel cut its read into arrives first (the others then
    /// come from the cache or join that fetch, not a GET of their own).
    pub async fn read_sparse_span(
        &self,
        obj: &ObjectVersion,
        offset: u64,
        len: u64,
        span: Range<u64>,
    ) -> Result<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Ok(Bytes::new());
        };
        let (bs, ps) = (self.inner.block_size, self.inner.page_size);
        if ps >= bs {
            let span = if span.is_empty() { want.clone() } else { span };
            return self
                .read_span(obj, want.start, want.end - want.start, span)
                .await;
        }
        // What to fetch: the read and the span (within the object; an empty span adds nothing).
        let fetch = if span.is_empty() {
            want.clone()
        } else {
            want.start.min(span.start)..want.end.max(span.end.min(obj.size))
        };
        let (first, last) = (fetch.start / bs, (fetch.end - 1) / bs);
        let cached = self.cached_units(obj, bs, first, last).await;
        // Each block: whole (cached or in flight), or served from pages. Runs of the latter share
        // one page fetch, so a read across a block boundary is still one request.
        let mut jobs: Vec<BoxFuture<'_, Result<Piece>>> = Vec::new();
        let mut b = first;
        while b <= last {
            let i = (b - first) as usize;
            if let Some(block) = &cached[i] {
                let block = block.clone();
                jobs.push(
                    async move {
                        Ok(Piece {
                            unit: bs,
                            first: b,
                            units: vec![block],
                        })
                    }
                    .boxed(),
                );
                b += 1;
                continue;
            }
            if self.inner.inflight.lock().contains_key(&self.key(obj, b)) {
                jobs.push(
                    async move {
                        let units = self.units(obj, bs, b, b, Wanted::ByReader).await?;
                        Ok(Piece {
                            unit: bs,
                            first: b,
                            units,
                        })
                    }
                    .boxed(),
                );
                b += 1;
                continue;
            }
            let mut e = b;
            while e < last
                && cached[(e + 1 - first) as usize].is_none()
                && !self
                    .inner
                    .inflight
                    .lock()
                    .contains_key(&self.key(obj, e + 1))
            {
                e += 1;
            }
            let from = fetch.start.max(b * bs);
            let to = fetch.end.min((e + 1) * bs);
            let (p_first, p_last) = (from / ps, (to - 1) / ps);
            jobs.push(
                async move {
                    let units = self
                        .units(obj, ps, p_first, p_last, Wanted::ByReader)
                        .await?;
                    Ok(Piece {
                        unit: ps,
                        first: p_first,
                        units,
                    })
                }
                .boxed(),
            );
            b = e + 1;
        }
        let pieces = futures::future::try_join_all(jobs).await?;
        self.note_read(obj, want.start / bs, (want.end - 1) / bs);
        Ok(Self::assemble(&pieces, want))
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

    /// Bytes `[offset, offset + len)` for a sparse reader (a cutout reading image rows): from the
    /// cached blocks when every covering block is there, otherwise exactly these bytes from the
    /// origin, which are not cached — whole blocks would multiply what a strided read transfers.
    pub async fn read_exact(&self, obj: &ObjectVersion, offset: u64, len: u64) -> Result<Bytes> {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return Ok(Bytes::new());
        };
        let bs = self.inner.block_size;
        let (first, last) = (want.start / bs, (want.end - 1) / bs);
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
            let piece = Piece {
                unit: bs,
                first,
                units: blocks,
            };
            return Ok(Self::assemble(&[piece], want));
        }
        self.inner
            .stats
            .origin_requests
            .fetch_add(1, Ordering::Relaxed);
        let _permit = self.fetch_permit(want.end - want.start).await;
        self.inner
            .connector
            .read_range(&obj.path, want, Some(&obj.identity))
            .await
            .map_err(CacheError::from)
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

    /// Make sure blocks covering `[offset, offset + len)` are cached, in the background.
    pub fn prefetch(&self, obj: &ObjectVersion, offset: u64, len: u64) {
        let Some(want) = Self::clamp(obj, offset, len) else {
            return;
        };
        let bs = self.inner.block_size;
        let this = self.clone();
        let obj = obj.clone();
        tokio::spawn(async move {
            let (first, last) = (want.start / bs, (want.end - 1) / bs);
            if let Err(e) = this.units(&obj, bs, first, last, Wanted::ByPrefetch).await {
                tracing::debug!(error = %e, "prefetch failed");
            }
        });
    }

    /// Make sure all of `obj` is cached, in the background: one request per missing run of up to
    /// `max_request_bytes`, at most `parallel` at a time (so a fill never holds more than that many
    /// requests' bytes in flight). Readers wanting a block meanwhile join its fetch.
    pub fn fill(&self, obj: &ObjectVersion, parallel: usize) {
        if obj.size == 0 {
            return;
        }
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

    /// Units `first..=last` of the `unit` grid as the cache tiers hold them now.
    async fn cached_units(
        &self,
        obj: &ObjectVersion,
        unit: u64,
        first: u64,
        last: u64,
    ) -> Vec<Option<Bytes>> {
        let mut got = Vec::with_capacity((last - first + 1) as usize);
        for index in first..=last {
            got.push(
                self.inner
                    .cache
                    .get_block(&self.unit_key(obj, unit, index))
                    .await,
            );
        }
        let hits = got.iter().filter(|b| b.is_some()).count() as u64;
        self.inner
            .stats
            .cached_blocks
            .fetch_add(hits, Ordering::Relaxed);
        got
    }

    /// Units `first..=last` of the `unit` grid, each whole (the object's last may be short).
    async fn units(
        &self,
        obj: &ObjectVersion,
        unit: u64,
        first: u64,
        last: u64,
        wanted: Wanted,
    ) -> Result<Vec<Bytes>> {
        let got = self.cached_units(obj, unit, first, last).await;
        self.units_from(obj, unit, first, got, wanted).await
    }

    /// Units from `first` on, given what the tiers held (`got`): the missing ones are joined to a
    /// fetch in flight or fetched, one request per run.
    async fn units_from(
        &self,
        obj: &ObjectVersion,
        unit: u64,
        first: u64,
        mut got: Vec<Option<Bytes>>,
        wanted: Wanted,
    ) -> Result<Vec<Bytes>> {
        let count = got.len();

        // Waits: (slot, fetch, position of the unit in that fetch).
        let mut waits: Vec<(usize, Fetch, usize)> = Vec::new();
        {
            let mut inflight = self.inner.inflight.lock();
            let max_units = (self.inner.max_request_bytes / unit).max(1) as usize;
            let mut i = 0;
            while i < count {
                if got[i].is_some() {
                    i += 1;
                    continue;
                }
                let key = self.unit_key(obj, unit, first + i as u64);
                if let Some((fetch, pos)) = inflight.get(&key) {
                    self.inner
                        .stats
                        .joined_blocks
                        .fetch_add(1, Ordering::Relaxed);
                    waits.push((i, fetch.clone(), *pos));
                    i += 1;
                    continue;
                }
                // A run of missing units nobody is fetching yet, up to the request cap.
                let mut j = i;
                while j < count
                    && j - i < max_units
                    && got[j].is_none()
                    && !inflight.contains_key(&self.unit_key(obj, unit, first + j as u64))
                {
                    j += 1;
                }
                let fetch = self.start_fetch(obj, unit, first + i as u64, (j - i) as u64, wanted);
                for (pos, slot) in (i..j).enumerate() {
                    inflight.insert(
                        self.unit_key(obj, unit, first + slot as u64),
                        (fetch.clone(), pos),
                    );
                    waits.push((slot, fetch.clone(), pos));
                }
                i = j;
            }
        }
        for (slot, fetch, pos) in waits {
            let units = fetch.await?;
            got[slot] = Some(units[pos].clone());
        }
        Ok(got.into_iter().map(|b| b.unwrap_or_default()).collect())
    }

    /// Fetch `n` units of the `unit` grid from `first` with one request, as a task of its own.
    fn start_fetch(
        &self,
        obj: &ObjectVersion,
        unit: u64,
        first: u64,
        n: u64,
        wanted: Wanted,
    ) -> Fetch {
        let this = self.clone();
        let obj = obj.clone();
        let task = tokio::spawn(async move {
            let keys: Vec<BlockKey> = (0..n)
                .map(|i| this.unit_key(&obj, unit, first + i))
                .collect();
            // A fetch that finished between the reader's cache lookup and this fetch's
            // registration may already have cached some of these units: look once more, and ask
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
                    let start = (first + lo as u64) * unit;
                    let end = ((first + hi as u64 + 1) * unit).min(obj.size);
                    // Held until the units are in the tier, which then counts them.
                    let _permit = this.fetch_permit(end - start).await;
                    this.inner
                        .stats
                        .origin_requests
                        .fetch_add(1, Ordering::Relaxed);
                    match this
                        .inner
                        .connector
                        .read_range_pieces(&obj.path, start..end, Some(&obj.identity), unit)
                        .await
                    {
                        Ok(pieces) => {
                            for (i, piece) in (lo..=hi).zip(pieces) {
                                this.inner.cache.put_block(&keys[i], piece.clone()).await;
                                got[i] = Some(piece);
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
mod tests;
