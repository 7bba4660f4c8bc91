//! Units from the tiers or the origin: the missing units of a read are joined to a fetch already
//! in flight or fetched, one ranged request per run (at most `max_request_bytes`), each fetch a
//! task of its own registered per unit so concurrent readers and prefetches share it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::FutureExt;

use super::{Fetch, ObjectVersion, ReadThrough, Wanted};
use crate::block_cache::BlockCache;
use crate::error::{CacheError, Result};
use crate::key::BlockKey;

impl ReadThrough {
    /// Units `first..=last` of the `unit` grid as the cache tiers hold them now.
    pub(super) async fn cached_units(
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
    pub(super) async fn units(
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
    pub(super) async fn units_from(
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
    pub(super) fn start_fetch(
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
                    tracing::trace!(path = %obj.path, start, end, ?wanted, "origin request");
                    let concurrent = this
                        .inner
                        .requests_in_flight
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    let asked = tokio::time::Instant::now();
                    let fetched = this
                        .inner
                        .connector
                        .read_range_pieces(&obj.path, start..end, Some(&obj.identity), unit)
                        .await;
                    let at_end = this
                        .inner
                        .requests_in_flight
                        .fetch_sub(1, Ordering::Relaxed);
                    match fetched {
                        Ok(pieces) => {
                            this.inner.cost.record(
                                end - start,
                                asked.elapsed(),
                                concurrent.max(at_end),
                            );
                            for (i, piece) in (lo..=hi).zip(pieces) {
                                got[i] = Some(piece);
                            }
                            // Noted before the units reach the tier: a reader that finds one
                            // there must find it noted too, or its read is never counted.
                            if wanted == Wanted::ByPrefetch {
                                this.note_prefetched(&keys[lo..=hi], &got[lo..=hi]);
                            }
                            for i in lo..=hi {
                                if let Some(piece) = &got[i] {
                                    this.inner.cache.put_block(&keys[i], piece.clone()).await;
                                }
                            }
                            this.inner
                                .stats
                                .fetched_blocks
                                .fetch_add((hi - lo + 1) as u64, Ordering::Relaxed);
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
