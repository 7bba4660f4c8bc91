//! Column chunks of a Parquet file, learnt from its footer: one origin request per chunk however
//! the kernel cuts the chunk's read. A real file written by the parquet crate's Arrow writer.

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use bytes::Bytes;
use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::{Connector, MemoryConnector};
use colo_vfs::extents::{TailExtents, parquet_column_chunks};
use colo_vfs::{VfsCore, VfsOptions, VolumeMount};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// 3 float64 columns × 20,000 rows in 4 row groups, uncompressed: 12 chunks of about 40 KB.
fn parquet_file() -> Vec<u8> {
    parquet_file_of(5000, 4)
}

/// 3 float64 columns in `groups` row groups of `rows_per_group` rows, uncompressed: chunks of
/// about 8 bytes a row.
fn parquet_file_of(rows_per_group: usize, groups: usize) -> Vec<u8> {
    let column = |seed: f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            (0..rows_per_group * groups).map(|i| (i as f64 * seed).sin()),
        ))
    };
    let batch =
        RecordBatch::try_from_iter([("a", column(1.1)), ("b", column(2.3)), ("c", column(0.7))])
            .expect("batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_dictionary_enabled(false)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    out
}

/// Every column chunk's (start, length), as the parquet crate's own reader sees them.
fn chunks_of(file: &[u8]) -> Vec<(u64, u64)> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(file)).expect("parquet");
    let meta = reader.metadata();
    meta.row_groups()
        .iter()
        .flat_map(|rg| rg.columns().iter().map(|c| c.byte_range()))
        .collect()
}

#[test]
fn the_footer_gives_every_column_chunk() {
    let file = parquet_file();
    let chunks = chunks_of(&file);
    assert_eq!(chunks.len(), 12);
    let TailExtents::Chunks(extents) = parquet_column_chunks(&file, file.len() as u64) else {
        panic!("a whole Parquet file has known chunks");
    };
    assert_eq!(extents.len(), 12);
    for (start, len) in chunks {
        assert_eq!(extents.end_of_extent_at(start), Some(start + len));
        assert_eq!(extents.end_of_extent_at(start + len - 1), Some(start + len));
    }
    // A tail too short for the metadata asks for exactly what it needs.
    let short = &file[file.len() - 100..];
    let TailExtents::NeedTail(needed) = parquet_column_chunks(short, file.len() as u64) else {
        panic!("the metadata is longer than 92 bytes");
    };
    let tail = &file[file.len() - needed as usize..];
    assert!(matches!(
        parquet_column_chunks(tail, file.len() as u64),
        TailExtents::Chunks(_)
    ));
}

/// A core with 4 KiB blocks and 1 KiB pages over one volume holding `name` = `data`.
async fn open(name: &str, data: Vec<u8>) -> (Arc<MemoryConnector>, VfsCore, u64) {
    let reader = |m| ReadThrough::new(m, memory_cache(), 4096, 64 * 1024).with_page_size(1024);
    let options = VfsOptions {
        prefetch_initial_bytes: 8192,
        prefetch_max_bytes: 65536,
        whole_file_bytes: 0,
        ..Default::default()
    };
    open_on(name, data, reader, options).await
}

/// A core sized as `colo mount`'s defaults (1 MiB blocks, 64 KiB pages, 8 MiB requests, windows of
/// 1 to 8 MiB), for reads cut as the kernel cuts them.
async fn open_as_mounted(name: &str, data: Vec<u8>) -> (Arc<MemoryConnector>, VfsCore, u64) {
    let reader = |m| ReadThrough::new(m, memory_cache(), MIB, 8 * MIB);
    let options = VfsOptions {
        prefetch_initial_bytes: MIB,
        prefetch_max_bytes: 8 * MIB,
        whole_file_bytes: 0,
        ..Default::default()
    };
    open_on(name, data, reader, options).await
}

const MIB: u64 = 1 << 20;

fn memory_cache() -> Arc<TieredCache> {
    Arc::new(TieredCache::new(Some(MemoryCache::new(256 << 20)), None))
}

async fn open_on(
    name: &str,
    data: Vec<u8>,
    reader: impl FnOnce(Arc<dyn Connector>) -> ReadThrough,
    options: VfsOptions,
) -> (Arc<MemoryConnector>, VfsCore, u64) {
    let m = Arc::new(MemoryConnector::new("vol"));
    m.put(name, data);
    let core = VfsCore::new(
        vec![VolumeMount {
            name: "vol".into(),
            reader: reader(m.clone()),
            metadata_ttl: Duration::from_secs(60),
            write_back: None,
            direct_root: None,
            owner: None,
        }],
        options,
    );
    let vol = core.lookup(1, "vol").await.expect("volume").ino;
    let ino = core.lookup(vol, name).await.expect("file").ino;
    let fh = core.open(ino, false).await.expect("open").fh;
    (m, core, fh)
}

/// The file opened on a core that has read its footer (as a client does first), with its chunks.
async fn opened_after_footer() -> (Vec<u8>, Vec<(u64, u64)>, Arc<MemoryConnector>, VfsCore, u64) {
    let file = parquet_file();
    let chunks = chunks_of(&file);
    let (m, core, fh) = open("t.parquet", file.clone()).await;
    let footer = core
        .read(fh, file.len() as u64 - 8, 8)
        .await
        .expect("footer");
    assert_eq!(&footer[..], &file[file.len() - 8..]);
    (file, chunks, m, core, fh)
}

/// After the footer, each chunk read in two pieces (as the kernel cuts a read over its maximum)
/// costs one request; the same bytes without a Parquet footer cost two per chunk.
#[tokio::test]
async fn a_chunk_read_in_pieces_is_one_request() {
    let file = parquet_file();
    let size = file.len() as u64;
    let chunks = chunks_of(&file);
    for parquet in [true, false] {
        let mut data = file.clone();
        if !parquet {
            let n = data.len();
            data[n - 4..].copy_from_slice(b"NOPE");
        }
        let (m, core, fh) = open("t.parquet", data.clone()).await;
        // The client reads the footer first.
        let footer = core.read(fh, size - 8, 8).await.expect("footer");
        assert_eq!(&footer[..], &data[data.len() - 8..]);
        let mut requests = 0;
        // Column b of the middle row groups: away from the file's first and last blocks.
        for &(start, len) in &chunks[4..8] {
            let before = m.reads.load(Ordering::Relaxed);
            let cut = start + len * 3 / 5;
            let first = core.read(fh, start, (cut - start) as u32).await.unwrap();
            let second = core
                .read(fh, cut, (start + len - cut) as u32)
                .await
                .unwrap();
            assert_eq!(&first[..], &data[start as usize..cut as usize]);
            assert_eq!(&second[..], &data[cut as usize..(start + len) as usize]);
            requests += m.reads.load(Ordering::Relaxed) - before;
        }
        if parquet {
            assert_eq!(requests, 4, "one request per chunk");
        } else {
            assert_eq!(requests, 8, "without chunks, one per piece");
        }
    }
}

/// A read spilling from one chunk into the next (the kernel reading ahead past the chunk a client
/// asked for) fetches only its own pages, not the rest of the next chunk.
#[tokio::test]
async fn a_read_across_chunks_does_not_fetch_the_next_chunk() {
    let (file, chunks, m, core, fh) = opened_after_footer().await;
    let (start, len) = chunks[4];
    let (next_start, next_len) = chunks[5];
    let before = m.read_bytes.load(Ordering::Relaxed);
    let spill_end = next_start + 3000;
    let got = core
        .read(fh, start, (spill_end - start) as u32)
        .await
        .unwrap();
    assert_eq!(&got[..], &file[start as usize..spill_end as usize]);
    let fetched = m.read_bytes.load(Ordering::Relaxed) - before;
    assert!(
        fetched < len + 3000 + 2048 && fetched < len + next_len,
        "{fetched} bytes fetched for a read of {} spilling 3000 into a chunk of {next_len}",
        spill_end - start
    );
}

/// The kernel starts reads on a 4 KiB page: a chunk's read then begins up to a page before the
/// chunk, in the previous one, and still fetches its chunk whole.
#[tokio::test]
async fn a_chunk_read_from_the_page_before_it_is_one_request() {
    let (file, chunks, m, core, fh) = opened_after_footer().await;
    let (start, len) = *chunks[4..8]
        .iter()
        .find(|(start, _)| start % 4096 != 0)
        .expect("a chunk not on a page boundary");
    let page = start / 4096 * 4096;
    let before = m.reads.load(Ordering::Relaxed);
    let cut = start + len / 2;
    let first = core.read(fh, page, (cut - page) as u32).await.unwrap();
    let second = core
        .read(fh, cut, (start + len - cut) as u32)
        .await
        .unwrap();
    assert_eq!(&first[..], &file[page as usize..cut as usize]);
    assert_eq!(&second[..], &file[cut as usize..(start + len) as usize]);
    assert_eq!(m.reads.load(Ordering::Relaxed) - before, 1);
}

/// A chunk's first read cut at the kernel's maximum (1 MiB) fetches on to where the kernel's
/// readahead for the whole chunk ends (its slots rounded up to a power of two); a read shorter than
/// that fetches exactly to the chunk's end.
#[test]
fn a_maximum_size_read_fetches_as_far_as_the_kernel_will_read() {
    use colo_vfs::plan::chunk_fetch_end;
    const MIB: u64 = 1 << 20;
    // A 1.26 MiB chunk read as two 1 MiB reads.
    assert_eq!(chunk_fetch_end(4096, MIB, 4096 + 1_318_027), 4096 + 2 * MIB);
    // A 2.55 MiB chunk: three slots, read as four.
    assert_eq!(chunk_fetch_end(0, MIB, 2_671_868), 4 * MIB);
    // A read under the maximum: just the chunk.
    assert_eq!(chunk_fetch_end(8192, 800_000, 808_192), 808_192);
}

/// Chunks of 1.3 MB, read as the kernel reads them: two 1 MiB pieces from the chunk's first page,
/// sent at once. Whichever piece colo takes first fetches the whole span in one request — here the
/// second piece first (before, it fetched its own pages and the first piece the rest: two GETs),
/// and both at once.
#[tokio::test]
async fn a_chunk_read_in_maximum_pieces_is_one_request_in_any_order() {
    let file = parquet_file_of(170_000, 4);
    let size = file.len() as u64;
    let chunks = chunks_of(&file);
    assert!(chunks.iter().all(|(_, len)| *len > MIB && *len < 2 * MIB));
    let (m, core, fh) = open_as_mounted("big.parquet", file.clone()).await;
    core.read(fh, size - 8, 8).await.expect("footer");
    let expect = |at: u64| &file[at as usize..(at + MIB).min(size) as usize];
    let before = m.reads.load(Ordering::Relaxed);
    // Row groups 1 and 2, away from the file's first and last blocks.
    for (i, &(start, _)) in chunks[3..9].iter().enumerate() {
        let page = start / 4096 * 4096;
        if i % 2 == 0 {
            let second = core.read(fh, page + MIB, MIB as u32).await.unwrap();
            let first = core.read(fh, page, MIB as u32).await.unwrap();
            assert_eq!(&second[..], expect(page + MIB));
            assert_eq!(&first[..], expect(page));
        } else {
            let (first, second) = tokio::join!(
                core.read(fh, page, MIB as u32),
                core.read(fh, page + MIB, MIB as u32)
            );
            assert_eq!(&first.unwrap()[..], expect(page));
            assert_eq!(&second.unwrap()[..], expect(page + MIB));
        }
    }
    assert_eq!(m.reads.load(Ordering::Relaxed) - before, 6, "one per chunk");
}

/// A copy of a Parquet file (1 MiB reads from its start) is prefetched once it has read 16 MiB:
/// far fewer requests than reads, where a few neighbouring chunks are not (one request each).
#[tokio::test]
async fn a_long_stream_through_a_parquet_file_is_prefetched() {
    let file = parquet_file_of(170_000, 10);
    let size = file.len() as u64;
    let (m, core, fh) = open_as_mounted("copy.parquet", file.clone()).await;
    core.read(fh, size - 8, 8).await.expect("footer");
    let before = m.reads.load(Ordering::Relaxed);
    let mut reads = 0;
    for at in (0..size).step_by(MIB as usize) {
        let got = core.read(fh, at, MIB as u32).await.unwrap();
        assert_eq!(&got[..], &file[at as usize..(at + MIB).min(size) as usize]);
        reads += 1;
    }
    let requests = m.reads.load(Ordering::Relaxed) - before;
    assert!(reads >= 38, "{reads} reads");
    assert!(
        requests <= 16 + 8,
        "{requests} requests for {reads} reads: at most one per MiB up to 16 MiB, then windows"
    );
}
