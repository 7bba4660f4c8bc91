//! Fetch plans: what a read that misses the cache costs at the origin, decided per read from how
//! the file is being read, and handed to the cache as data ([`FetchPlan`]).
//!
//! * A file up to `whole_file_bytes` is fetched whole by its first read (one request however it is
//!   read afterwards).
//! * A sequential stream, and the first and last block of any file (FITS headers, Parquet
//!   footers: read by every client, so kept whole), get whole blocks; the stream also prefetches
//!   ([`crate::prefetch`]).
//! * A reader jumping around a large file gets only the pages it needs, one ranged request per
//!   read; after [`RANDOM_FILL_AFTER_READS`] such reads a file under `random_fill_max_bytes` is
//!   fetched whole in the background.
//! * In a Parquet file whose footer taught colo its column chunks ([`learn_chunks`]), a read of a
//!   chunk fetches the whole chunk in one request, however the kernel cut the client's read
//!   ([`chunk_plan`]); reads elsewhere fetch only their pages.

use std::ops::Range;

use colo_cache::{FetchPlan, ObjectVersion, ReadThrough};

use crate::extents::{ChunkExtents, TailExtents, parquet_column_chunks};

/// Jumping reads of one handle after which a file under `random_fill_max_bytes` is filled.
pub const RANDOM_FILL_AFTER_READS: u32 = 4;
/// Requests a fill keeps in flight.
pub(crate) const FILL_PARALLEL_REQUESTS: usize = 4;

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

    const MIB: u64 = 1 << 20;

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
