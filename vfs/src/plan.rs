//! Fetch plans: what a read that misses the cache costs at the origin, decided per read from how
//! the file is being read, and handed to the cache as data ([`FetchPlan`]).
//!
//! * A file up to `whole_file_bytes` is fetched whole by its first read (one request however it is
//!   read afterwards).
//! * A sequential stream, and the first and last block of any file (FITS headers, Parquet
//!   footers: read by every client, so kept whole), get whole blocks; the stream also prefetches
//!   ([`crate::prefetch`]).
//! * A reader jumping around a large file gets only the pages it needs, one ranged request per
//!   read (the kernel's pieces of one `pread` arrive together and join one fetch). Once the time
//!   spent on those requests reaches what fetching the whole file would take on this volume
//!   ([`whole_file_pays_off`], with the volume's learned request cost), a file under
//!   `random_fill_max_bytes` is fetched whole in the background. That is the break-even rule of
//!   renting against buying: whatever the reader does next, it never waits more than about twice
//!   what the better choice in hindsight would have cost — on a slow store a small file is soon
//!   fetched whole, on a fast one its reader keeps getting exact ranges.
//! * In a Parquet file whose footer taught colo its column chunks ([`learn_chunks`]), a read of a
//!   chunk fetches the whole chunk in one request, however the kernel cut the client's read
//!   ([`chunk_plan`]); reads elsewhere fetch only their pages.

use std::ops::Range;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use colo_cache::{CostEstimate, FetchPlan, ObjectVersion, ReadThrough};

use crate::extents::{ChunkExtents, TailExtents, parquet_column_chunks};

/// Jumping reads of one handle before a file under `random_fill_max_bytes` may be filled (a
/// pattern, not one read that happened to be slow).
pub const RANDOM_FILL_AFTER_READS: u32 = 4;
/// Requests a fill keeps in flight.
pub(crate) const FILL_PARALLEL_REQUESTS: usize = 4;

/// Whether fetching a whole file of `size` bytes (in requests of `request_bytes`, `parallel` at a
/// time) now takes no longer than the `paid_secs` its reader has already spent on ranged requests
/// for it, on a volume whose requests cost `cost`.
pub fn whole_file_pays_off(
    paid_secs: f64,
    size: u64,
    request_bytes: u64,
    parallel: usize,
    cost: CostEstimate,
) -> bool {
    let requests = size.div_ceil(request_bytes.max(1));
    let rounds = requests.div_ceil(parallel.max(1) as u64);
    // Each round is as long as one request of the full size; the transfer of all the bytes is
    // no faster than one request's throughput allows (a link shared by the fill's requests).
    let whole_secs = (rounds as f64 * cost.latency_secs)
        .max(cost.latency_secs + size as f64 / cost.bytes_per_sec);
    paid_secs >= whole_secs
}

/// One handle's reads answered with the page plan: how many, the time they took, and whether the
/// file has been filled for it.
#[derive(Debug, Default)]
pub(crate) struct RandomReads {
    reads: AtomicU32,
    paid_micros: AtomicU64,
    filled: AtomicBool,
}

impl RandomReads {
    /// Count one jumping read that took `elapsed`; true (once) when the file should now be fetched
    /// whole.
    pub(crate) fn note(
        &self,
        elapsed: Duration,
        size: u64,
        request_bytes: u64,
        cost: CostEstimate,
    ) -> bool {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let paid = self.paid_micros.fetch_add(micros, Ordering::Relaxed) + micros;
        reads >= RANDOM_FILL_AFTER_READS
            && !self.filled.load(Ordering::Relaxed)
            && whole_file_pays_off(
                paid as f64 / 1e6,
                size,
                request_bytes,
                FILL_PARALLEL_REQUESTS,
                cost,
            )
            && !self.filled.swap(true, Ordering::Relaxed)
    }
}

/// Where the last block of a file of `size` bytes begins.
pub(crate) fn last_block_start(size: u64, block_bytes: u64) -> u64 {
    size.saturating_sub(1) / block_bytes * block_bytes
}

/// The kernel's page: FUSE reads start on one, so a read of a chunk starting mid-page begins in
/// the chunk before.
const KERNEL_PAGE_BYTES: u64 = 4096;

/// Files whose column chunks (or that they have none) are remembered.
pub(crate) const KNOWN_EXTENTS_FILES: usize = 4096;

/// How much a stream in a file with known column chunks reads before it is prefetched: a chunk's
/// read fetches the chunk itself, and a short stream of chunks (a few neighbouring columns) would
/// prefetch the next, usually a column nobody asked for; a long one is a copy or a whole-table read.
pub(crate) const CHUNKED_FILE_STREAM_BYTES: u64 = 16 << 20;

/// The largest read the kernel sends a FUSE filesystem (`fs.fuse.max_pages_limit`, 256 pages).
const KERNEL_MAX_READ_BYTES: u64 = 1 << 20;

/// The most a read of a column chunk fetches on to the chunk's end (in requests of at most the
/// reader's request size, in parallel).
const MAX_CHUNK_FETCH_BYTES: u64 = 64 << 20;

/// Where a chunk's first read (`len` bytes at `offset`) fetches to: the chunk's end — and, when the
/// kernel cut the read at its maximum size, on to where the kernel's readahead for the client's
/// read ends: the chunk's read slots rounded up to a power of two (seen: a 1.26 MiB chunk arrives
/// as two 1 MiB reads, a 2.55 MiB one as four, the last past the chunk). Those bytes are fetched
/// anyway; fetching them with the chunk saves the requests.
pub fn chunk_fetch_end(offset: u64, len: u64, chunk_end: u64) -> u64 {
    let end = if len + KERNEL_PAGE_BYTES > KERNEL_MAX_READ_BYTES && len > 0 {
        let slots = (chunk_end - offset).div_ceil(len).next_power_of_two();
        offset + slots * len
    } else {
        chunk_end
    };
    end.max(chunk_end).min(offset + MAX_CHUNK_FETCH_BYTES)
}

/// The largest Parquet footer read to learn a file's column chunks.
pub const MAX_FOOTER_BYTES: u64 = 16 << 20;

/// The plan of a read in a file with known column chunks (`None`: a read of its first or last
/// block — header and footer, fetched whole as in any file).
/// A client's read of a chunk fetches the chunk's pages, from the page its start is in on to the
/// chunk's end (or, when the kernel cut the read at its maximum size, on to where its pieces end:
/// [`chunk_fetch_end`]), so that the kernel's other pieces of it are cache hits — whichever piece
/// arrives first: the first (from the chunk's start, give or take the page the kernel rounded it
/// down to, within the chunk), or a further maximum-size piece (at a whole number of pieces from
/// the chunk's first page; the kernel sends them at once, and FUSE threads take them in any order).
/// Any other read fetches only its own pages: the kernel's readahead spilling past the chunk the
/// client asked for into columns it may never want.
pub fn chunk_plan(
    chunks: &ChunkExtents,
    size: u64,
    block_bytes: u64,
    offset: u64,
    len: u64,
) -> Option<FetchPlan> {
    if offset < block_bytes || offset + len > last_block_start(size, block_bytes) {
        return None;
    }
    let first_page = |c: &Range<u64>| c.start - c.start % KERNEL_PAGE_BYTES;
    let probe = (offset + KERNEL_PAGE_BYTES - 1).min(offset + len.max(1) - 1);
    if let Some(c) = chunks.extent_at(probe)
        && offset <= c.start
        && c.start - offset < KERNEL_PAGE_BYTES
        && offset + len <= c.end
    {
        let start = first_page(&c);
        return Some(FetchPlan::PageSpan(
            start..chunk_fetch_end(start, len, c.end),
        ));
    }
    // A further piece: the first was then of the maximum size, and fetches the same span.
    if let Some(c) = chunks.extent_at(offset)
        && offset > first_page(&c)
        && (offset - first_page(&c)).is_multiple_of(KERNEL_MAX_READ_BYTES)
    {
        let start = first_page(&c);
        let end = chunk_fetch_end(start, KERNEL_MAX_READ_BYTES, c.end);
        return Some(FetchPlan::PageSpan(start..end));
    }
    Some(FetchPlan::Pages)
}

/// What a read of any other file fetches on a miss: a small file whole; whole blocks for a
/// sequential stream and for the first and last block of a file; only the pages a read needs when
/// it jumps around a large file.
pub fn access_plan(
    size: u64,
    block_bytes: u64,
    whole_file_bytes: u64,
    offset: u64,
    len: u64,
    sequential: bool,
) -> FetchPlan {
    if size <= whole_file_bytes {
        FetchPlan::BlockSpan(0..size)
    } else if sequential
        || offset < block_bytes
        || offset + len > last_block_start(size, block_bytes)
    {
        FetchPlan::Blocks
    } else {
        FetchPlan::Pages
    }
}

/// The column chunks of a file whose last block was just read (so it is cached): from its Parquet
/// footer, reading further back when the metadata is larger than a block (up to
/// [`MAX_FOOTER_BYTES`]; the client reads it next anyway). `None` for any other file.
pub async fn learn_chunks(reader: &ReadThrough, version: &ObjectVersion) -> Option<ChunkExtents> {
    let mut tail_bytes = version.size - last_block_start(version.size, reader.block_size());
    for _ in 0..2 {
        let start = version.size - tail_bytes;
        let tail = reader
            .read(version, start, tail_bytes, FetchPlan::Blocks)
            .await
            .ok()?;
        match parquet_column_chunks(&tail, version.size) {
            TailExtents::Chunks(chunks) => return Some(chunks),
            TailExtents::NeedTail(needed) if needed <= MAX_FOOTER_BYTES => tail_bytes = needed,
            TailExtents::NeedTail(_) | TailExtents::Unknown => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use colo_cache::OriginCost;

    const MIB: u64 = 1 << 20;

    /// Jumping reads (a 64 KiB page each) of a file of `size` bytes on a store with `link`'s
    /// latency and throughput, timed on a fake clock (each read takes what the link says): the
    /// read after which the file is fetched whole, if any within `reads`. The volume's cost is
    /// learned as colo learns it, from its requests (the file's first and last block, then the
    /// pages).
    fn fill_after(link: CostEstimate, size: u64, reads: u32) -> Option<u32> {
        let cost = OriginCost::default();
        for bytes in [MIB, MIB] {
            cost.record(bytes, Duration::from_secs_f64(link.request_secs(bytes)), 1);
        }
        let random = RandomReads::default();
        (1..=reads).find(|_| {
            let page = Duration::from_secs_f64(link.request_secs(64 << 10));
            cost.record(64 << 10, page, 1);
            random.note(page, size, 8 * MIB, cost.estimate())
        })
    }

    /// The cost model's choice (issue 19): a small file read at random is fetched whole on a slow
    /// volume (a remote store: 20 ms, 1 Gbit/s) once its reader has waited as long as the whole
    /// file takes, and its reader keeps exact ranges on a fast one (loopback-like: 0.2 ms,
    /// 1 GB/s) — for a hundred reads and more.
    #[test]
    fn the_cost_model_fetches_whole_on_a_slow_volume_and_exact_ranges_on_a_fast_one() {
        let slow = CostEstimate {
            latency_secs: 0.020,
            bytes_per_sec: 125e6,
        };
        let fast = CostEstimate {
            latency_secs: 0.0002,
            bytes_per_sec: 1e9,
        };
        let size = 32 * MIB;
        // The whole file on the slow link: 4 requests of 8 MiB at once, 20 ms + 268 ms.
        let slow_fill = fill_after(slow, size, 200).expect("filled on the slow volume");
        assert!(
            (13..=16).contains(&slow_fill),
            "after {slow_fill} reads of ~20.5 ms"
        );
        assert_eq!(
            fill_after(fast, size, 100),
            None,
            "exact ranges on the fast one"
        );
        // Only once: the fill is not asked for again.
        let random = RandomReads::default();
        let asked: Vec<bool> = (0..8)
            .map(|_| random.note(Duration::from_secs(1), size, 8 * MIB, slow))
            .collect();
        assert_eq!(
            asked,
            [false, false, false, true, false, false, false, false]
        );
    }

    #[test]
    fn a_whole_file_takes_its_rounds_of_requests_or_its_transfer() {
        let link = CostEstimate {
            latency_secs: 0.050,
            bytes_per_sec: 1e12,
        };
        // 64 requests of 1 MiB, 4 at a time: 16 rounds of 50 ms.
        assert!(!whole_file_pays_off(0.79, 64 * MIB, MIB, 4, link));
        assert!(whole_file_pays_off(0.80, 64 * MIB, MIB, 4, link));
        let narrow = CostEstimate {
            latency_secs: 0.001,
            bytes_per_sec: 100e6,
        };
        // One round, but 1 GiB at 100 MB/s.
        assert!(!whole_file_pays_off(10.0, 1 << 30, 1 << 30, 4, narrow));
        assert!(whole_file_pays_off(10.8, 1 << 30, 1 << 30, 4, narrow));
    }

    #[test]
    fn small_files_are_fetched_whole_and_streams_and_ends_in_blocks() {
        let whole = 4 * MIB;
        assert_eq!(
            access_plan(3 * MIB, MIB, whole, 2 * MIB, 4096, false),
            FetchPlan::BlockSpan(0..3 * MIB)
        );
        let size = 100 * MIB;
        assert_eq!(
            access_plan(size, MIB, whole, 0, 4096, false),
            FetchPlan::Blocks,
            "first block"
        );
        assert_eq!(
            access_plan(size, MIB, whole, size - 10, 10, false),
            FetchPlan::Blocks,
            "last block"
        );
        assert_eq!(
            access_plan(size, MIB, whole, 50 * MIB, 4096, true),
            FetchPlan::Blocks,
            "a stream"
        );
        assert_eq!(
            access_plan(size, MIB, whole, 50 * MIB, 4096, false),
            FetchPlan::Pages,
            "a jump"
        );
    }
}
