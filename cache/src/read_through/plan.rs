//! The fetch plans: what a read's missing bytes cost at the origin, chosen by the caller per read
//! and handed over as data ([`FetchPlan`]), and the three ways of reading they come down to —
//! whole blocks, pages of blocks that are not cached, or exactly the bytes asked for.

use std::ops::Range;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{ObjectVersion, Piece, ReadThrough, Wanted};
use crate::block_cache::BlockCache;
use crate::error::{CacheError, Result};

/// What a read fetches from the origin for the bytes the tiers do not hold. Whatever the plan, a
/// read returns exactly the bytes asked for, of exactly the version asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchPlan {
    /// The whole blocks the read covers (streams; a file's first and last block).
    Blocks,
    /// The whole blocks of this span (which should contain the read) in one request when any is
    /// missing: a small file fetched whole by its first read, however it is read.
    BlockSpan(Range<u64>),
    /// Blocks already cached (or on their way) as they are; of the others only the pages the read
    /// covers, one request per run: a reader jumping around a large file.
    Pages,
    /// As [`FetchPlan::Pages`], fetching the pages of all of this span (which may start before the
    /// read and end after it) in the same request: a whole Parquet column chunk, whichever of the
    /// pieces the kernel cut its read into arrives first (the others then come from the cache or
    /// join that fetch, not a GET of their own).
    PageSpan(Range<u64>),
    /// The cached blocks when every covering block is there, otherwise exactly the bytes of the
    /// read from the origin, not cached: a strided reader (a cutout reading image rows), for whom
    /// whole blocks would multiply what it transfers.
    Exact,
}

impl ReadThrough {
    /// The bytes `want` (within the object, not empty), where any miss fetches the whole blocks of
    /// `span` in the same request ([`FetchPlan::Blocks`] passes the read itself).
    pub(super) async fn read_blocks(
        &self,
        obj: &ObjectVersion,
        want: Range<u64>,
        span: Range<u64>,
    ) -> Result<Bytes> {
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

    /// The bytes `want` (within the object, not empty) for a reader that jumps around: blocks
    /// already cached (or on their way) serve as they are; of the others only pages are fetched,
    /// those of the read and of `span` (which may start before the read and end after it; empty
    /// adds nothing), one request per run of missing pages.
    pub(super) async fn read_pages(
        &self,
        obj: &ObjectVersion,
        want: Range<u64>,
        span: Range<u64>,
    ) -> Result<Bytes> {
        let (bs, ps) = (self.inner.block_size, self.inner.page_size);
        if ps >= bs {
            let span = if span.is_empty() { want.clone() } else { span };
            return self.read_blocks(obj, want, span).await;
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

    /// The bytes `want` (within the object, not empty): from the cached blocks when every
    /// covering block is there, otherwise exactly these bytes from the origin, not cached.
    pub(super) async fn read_exact(&self, obj: &ObjectVersion, want: Range<u64>) -> Result<Bytes> {
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
}
