//! Where a file's natural read units begin and end, learnt from its own footer: the column chunks
//! of a Parquet file.
//!
//! Why: a Parquet reader reads a column chunk with one `pread` of the chunk's size, but the kernel
//! hands a FUSE filesystem at most 1 MiB per read (`fs.fuse.max_pages_limit`), so a 1.05 MiB chunk
//! arrives as a 1 MiB read and, after it completes, a 50 KiB one — two origin requests for one
//! chunk, and more for bigger chunks. Knowing the chunks, the core fetches from a read's start to
//! its chunk's end in one request, and the rest of the chunk is then served from the cache: one GET
//! per column chunk, whatever its size, without fetching columns nobody asked for.
//!
//! The footer is read by every Parquet client first (the file's last block, which colo fetches
//! whole), so learning the chunks costs nothing extra unless the metadata is larger than a block.
//! Nothing here trusts the file: a footer that does not parse, or chunks outside the file, just
//! mean no extents.

use parking_lot::Mutex;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;

/// Bytes of a Parquet footer tail: metadata length (u32 LE) and the magic.
const FOOTER_TAIL_BYTES: usize = 8;

/// What a file's tail says about its extents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailExtents {
    /// The file's read units, sorted by start, not overlapping.
    Chunks(ChunkExtents),
    /// A Parquet footer whose metadata needs the last this-many bytes (more than were given).
    NeedTail(u64),
    /// Not a Parquet file, an encrypted footer, or metadata that does not parse.
    Unknown,
}

/// Sorted, non-overlapping byte ranges of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkExtents {
    chunks: Vec<Range<u64>>,
}

impl ChunkExtents {
    /// The extent that holds byte `offset`, if one does.
    pub fn extent_at(&self, offset: u64) -> Option<Range<u64>> {
        let after = self.chunks.partition_point(|c| c.start <= offset);
        let chunk = self.chunks.get(after.checked_sub(1)?)?;
        (offset < chunk.end).then(|| chunk.clone())
    }

    /// The end of the extent that holds byte `offset`, if one does.
    pub fn end_of_extent_at(&self, offset: u64) -> Option<u64> {
        self.extent_at(offset).map(|c| c.end)
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// What was learnt of each file version's extents (`None`: nothing to know), kept past the file's
/// handles — a client opens a Parquet file once for its footer and again for its data — and
/// forgotten oldest first past `capacity` versions.
/// Learnt extents by key, and the keys oldest first.
type Learnt<K> = (HashMap<K, Option<Arc<ChunkExtents>>>, VecDeque<K>);

pub struct KnownExtents<K> {
    inner: Mutex<Learnt<K>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> KnownExtents<K> {
    pub fn new(capacity: usize) -> Self {
        KnownExtents {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity: capacity.max(1),
        }
    }

    /// `None` when not learnt yet; `Some(None)` when learnt there is nothing to know.
    pub fn get(&self, key: &K) -> Option<Option<Arc<ChunkExtents>>> {
        self.inner.lock().0.get(key).cloned()
    }

    pub fn insert(&self, key: K, extents: Option<ChunkExtents>) {
        let mut guard = self.inner.lock();
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), extents.map(Arc::new)).is_none() {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

/// The column chunks of a Parquet file of `file_size` bytes whose last `tail.len()` bytes are
/// `tail`.
pub fn parquet_column_chunks(tail: &[u8], file_size: u64) -> TailExtents {
    let Some(footer) = tail
        .len()
        .checked_sub(FOOTER_TAIL_BYTES)
        .and_then(|at| <&[u8; FOOTER_TAIL_BYTES]>::try_from(&tail[at..]).ok())
    else {
        return TailExtents::Unknown;
    };
    let Ok(footer) = FooterTail::try_new(footer) else {
        return TailExtents::Unknown;
    };
    if footer.is_encrypted_footer() {
        return TailExtents::Unknown;
    }
    let needed = footer.metadata_length() + FOOTER_TAIL_BYTES;
    if needed as u64 > file_size {
        return TailExtents::Unknown;
    }
    if needed > tail.len() {
        return TailExtents::NeedTail(needed as u64);
    }
    let metadata = &tail[tail.len() - needed..tail.len() - FOOTER_TAIL_BYTES];
    let Ok(metadata) = ParquetMetaDataReader::decode_metadata(metadata) else {
        return TailExtents::Unknown;
    };
    let mut chunks: Vec<Range<u64>> = metadata
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .map(|c| {
            let (start, len) = c.byte_range();
            start..start.saturating_add(len)
        })
        .filter(|c| !c.is_empty())
        .collect();
    chunks.sort_by_key(|c| c.start);
    let sane = chunks.iter().all(|c| c.end <= file_size)
        && chunks.windows(2).all(|w| w[0].end <= w[1].start);
    if !sane {
        return TailExtents::Unknown;
    }
    TailExtents::Chunks(ChunkExtents { chunks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_answer_for_the_byte_they_hold() {
        let e = ChunkExtents {
            chunks: vec![4..100, 100..250, 300..400],
        };
        assert_eq!(e.end_of_extent_at(3), None);
        assert_eq!(e.end_of_extent_at(4), Some(100));
        assert_eq!(e.end_of_extent_at(99), Some(100));
        assert_eq!(e.end_of_extent_at(100), Some(250));
        assert_eq!(e.end_of_extent_at(260), None, "a gap between chunks");
        assert_eq!(e.end_of_extent_at(399), Some(400));
        assert_eq!(e.end_of_extent_at(400), None);
    }

    #[test]
    fn known_extents_forget_the_oldest_past_their_capacity() {
        let known = KnownExtents::new(2);
        let chunks = ChunkExtents {
            chunks: vec![0..10, 20..30],
        };
        known.insert("a", Some(chunks.clone()));
        known.insert("b", None);
        assert_eq!(known.get(&"a").flatten().as_deref(), Some(&chunks));
        assert_eq!(known.get(&"b"), Some(None), "learnt: nothing to know");
        assert_eq!(known.get(&"c"), None, "not learnt yet");
        known.insert("c", None);
        assert_eq!(known.get(&"a"), None, "the oldest is forgotten");
        assert_eq!(known.get(&"b"), Some(None));
    }

    #[test]
    fn tails_that_are_not_parquet_say_nothing() {
        assert_eq!(parquet_column_chunks(b"", 0), TailExtents::Unknown);
        assert_eq!(parquet_column_chunks(b"SIMPLE  =", 9), TailExtents::Unknown);
        // The magic, but a metadata length larger than the file.
        let mut tail = 1_000_000u32.to_le_bytes().to_vec();
        tail.extend_from_slice(b"PAR1");
        assert_eq!(parquet_column_chunks(&tail, 5000), TailExtents::Unknown);
        // The magic and a plausible length: more tail is needed.
        let mut tail = 3000u32.to_le_bytes().to_vec();
        tail.extend_from_slice(b"PAR1");
        assert_eq!(
            parquet_column_chunks(&tail, 5000),
            TailExtents::NeedTail(3008)
        );
        // Garbage metadata of the stated length.
        let mut tail = vec![0xAB; 100];
        tail.extend_from_slice(&100u32.to_le_bytes());
        tail.extend_from_slice(b"PAR1");
        assert_eq!(parquet_column_chunks(&tail, 5000), TailExtents::Unknown);
    }
}
