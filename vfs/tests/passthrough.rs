//! Whole-file copies for passthrough (vfs/src/passthrough.rs) made from what a released handle left
//! in the cache, against the memory connector: blocks held only as pages count, a file read nearly
//! whole has its few missing blocks fetched, a file read partly gets no copy and costs nothing.
//! Once a copy is made, the kernel is asked to drop its cached pages of the file (here a recorder
//! stands in for the mount's FUSE notify).

use colo_cache::{MemoryCache, ReadThrough, TieredCache, WholeFiles};
use colo_connectors::MemoryConnector;
use colo_vfs::passthrough::OpenIo;
use colo_vfs::{VfsCore, VfsOptions, VolumeMount};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const BLOCK: u64 = 4096;
const PAGE: u64 = 1024;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 13 + seed as usize) % 251) as u8)
        .collect()
}

/// A core over `m` with 4 KiB blocks and 1 KiB pages whose opens may pass through to copies in
/// `whole`; no whole-file fetches, no filling of randomly read files.
fn core(m: Arc<MemoryConnector>, whole: Arc<WholeFiles>) -> VfsCore {
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(64 << 20)), None));
    let reader = ReadThrough::new(m, cache, BLOCK, 64 * 1024).with_page_size(PAGE);
    let core = VfsCore::new(
        vec![VolumeMount {
            name: "vol".into(),
            reader,
            metadata_ttl: Duration::from_secs(60),
            write_back: None,
            direct_root: None,
            owner: None,
        }],
        VfsOptions {
            prefetch_initial_bytes: 2 * BLOCK,
            prefetch_max_bytes: 8 * BLOCK,
            whole_file_bytes: 0,
            random_fill_max_bytes: 0,
            ..Default::default()
        },
    );
    core.enable_passthrough(whole);
    core
}

struct Setup {
    m: Arc<MemoryConnector>,
    whole: Arc<WholeFiles>,
    core: VfsCore,
    /// The inodes whose kernel pages the core asked to drop.
    dropped: Arc<std::sync::Mutex<Vec<u64>>>,
    _dir: tempfile::TempDir,
}

fn setup(size: usize) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = Arc::new(WholeFiles::open(&dir.path().join("whole"), 64 << 20).expect("open"));
    let m = Arc::new(MemoryConnector::new("vol"));
    m.put("f.bin", pattern(size, 3));
    let core = core(m.clone(), whole.clone());
    let dropped = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = dropped.clone();
    core.drop_kernel_pages_with(Arc::new(move |ino| {
        recorder.lock().expect("recorder").push(ino);
        true
    }));
    Setup {
        m,
        whole,
        core,
        dropped,
        _dir: dir,
    }
}

async fn file_ino(core: &VfsCore) -> u64 {
    let vol = core.lookup(1, "vol").await.expect("volume").ino;
    core.lookup(vol, "f.bin").await.expect("file").ino
}

/// Blocks apart of a scattered reader's consecutive reads: more than the 1 MiB within which reads
/// count as one stream, and prime to the files' block counts (so every block is visited).
const STRIDE_BLOCKS: u64 = 301;

/// Opens the file, reads it a block at a time in a scattered order (a reader jumping around: its
/// reads fetch pages, not blocks) except the blocks `skip` picks, checks the bytes, releases it.
async fn read_scattered_skipping(s: &Setup, size: u64, skip: impl Fn(u64) -> bool) {
    let ino = file_ino(&s.core).await;
    let opened = s.core.open(ino, false).await.expect("open");
    assert!(matches!(opened.io, OpenIo::Cached));
    let data = pattern(size as usize, 3);
    let blocks = size.div_ceil(BLOCK);
    for k in 0..blocks {
        let index = k * STRIDE_BLOCKS % blocks;
        if skip(index) {
            continue;
        }
        let offset = index * BLOCK;
        let got = s
            .core
            .read(opened.fh, offset, BLOCK as u32)
            .await
            .expect("read");
        let end = (offset + BLOCK).min(size) as usize;
        assert_eq!(&got[..], &data[offset as usize..end]);
    }
    s.core.release(opened.fh);
}

async fn until_made(whole: &WholeFiles, n: u64) -> bool {
    for _ in 0..500 {
        if whole.stats().made.load(Ordering::Relaxed) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// The kernel was asked (once) to drop its pages of the file whose copy was made: its first
/// passthrough open then has none to drop.
async fn kernel_pages_dropped(s: &Setup) {
    let ino = file_ino(&s.core).await;
    for _ in 0..500 {
        if !s.dropped.lock().expect("recorder").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*s.dropped.lock().expect("recorder"), vec![ino]);
}

async fn next_open_passes_through(s: &Setup, size: u64) {
    let ino = file_ino(&s.core).await;
    let opened = s.core.open(ino, false).await.expect("open");
    let OpenIo::Passthrough(file) = &opened.io else {
        panic!("the open after the copy was made did not pass through");
    };
    let mut copy = Vec::new();
    std::io::Read::read_to_end(&mut &**file, &mut copy).expect("read the copy");
    assert_eq!(
        copy,
        pattern(size as usize, 3),
        "the copy holds the file's bytes"
    );
    s.core.release(opened.fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_read_whole_as_pages_is_copied_without_a_fetch() {
    let size = 1024 * BLOCK + 100;
    let s = setup(size as usize);
    read_scattered_skipping(&s, size, |_| false).await;
    let reads = s.m.reads.load(Ordering::Relaxed);
    assert!(
        until_made(&s.whole, 1).await,
        "no copy of a file held as pages"
    );
    assert_eq!(
        s.m.reads.load(Ordering::Relaxed),
        reads,
        "the copy fetched something"
    );
    kernel_pages_dropped(&s).await;
    next_open_passes_through(&s, size).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_read_nearly_whole_has_the_rest_fetched_for_its_copy() {
    let size = 1024 * BLOCK;
    let s = setup(size as usize);
    read_scattered_skipping(&s, size, |index| index == 300).await;
    let (reads, bytes) = (
        s.m.reads.load(Ordering::Relaxed),
        s.m.read_bytes.load(Ordering::Relaxed),
    );
    assert!(
        until_made(&s.whole, 1).await,
        "no copy of a file read but one block"
    );
    assert_eq!(
        s.m.reads.load(Ordering::Relaxed),
        reads + 1,
        "one request for the missing block"
    );
    assert_eq!(s.m.read_bytes.load(Ordering::Relaxed), bytes + BLOCK);
    kernel_pages_dropped(&s).await;
    next_open_passes_through(&s, size).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_read_partly_gets_no_copy_and_costs_nothing_more() {
    let size = 1024 * BLOCK;
    let s = setup(size as usize);
    // Its first half, as a stream: blocks ahead of the reader are prefetched, not the rest.
    let ino = file_ino(&s.core).await;
    let opened = s.core.open(ino, false).await.expect("open");
    for index in 0..512 {
        let got = s
            .core
            .read(opened.fh, index * BLOCK, BLOCK as u32)
            .await
            .expect("read");
        assert_eq!(got.len() as u64, BLOCK);
    }
    s.core.release(opened.fh);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.whole.stats().made.load(Ordering::Relaxed), 0);
    assert!(
        s.dropped.lock().expect("recorder").is_empty(),
        "no copy, so the kernel keeps its pages"
    );
    // What the reader read and the prefetch window ahead of it, not the rest of the file.
    let most = 512 * BLOCK + 8 * BLOCK;
    assert!(
        s.m.read_bytes.load(Ordering::Relaxed) <= most,
        "the rest was fetched"
    );
    let ino = file_ino(&s.core).await;
    let opened = s.core.open(ino, false).await.expect("open");
    assert!(matches!(opened.io, OpenIo::Cached));
}
