//! Tests of the read-through layer against an in-memory connector.

use super::*;
use crate::{CacheError, DiskCache, MemoryCache};
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
        let got = rt.read(&obj, off, len, FetchPlan::Blocks).await.unwrap();
        let end = (off + len).min(10_500) as usize;
        assert_eq!(
            &got[..],
            &src[off as usize..end.max(off as usize)],
            "off {off} len {len}"
        );
    }
    let reads = m.reads.load(Ordering::Relaxed);
    let again = rt.read(&obj, 0, 10_500, FetchPlan::Blocks).await.unwrap();
    assert_eq!(&again[..], &src[..]);
    assert_eq!(
        m.reads.load(Ordering::Relaxed),
        reads,
        "second read is all cached"
    );
}

async fn wait_prefetched(rt: &ReadThrough, bytes: u64) {
    for _ in 0..200 {
        if rt.stats().prefetched_bytes.load(Ordering::Relaxed) >= bytes {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A stream's windows start and end anywhere; a window of at least one request (8 blocks here)
/// goes out in requests of the largest size, the span it adds rounded up, so no short request is
/// left between windows; a smaller window fetches only itself.
#[tokio::test]
async fn prefetch_windows_go_out_as_whole_requests() {
    let (m, rt, obj) = setup(40_500).await;
    // 3 blocks (exact), 9 blocks from block 3 (rounded to 16: to block 18), 10 blocks from block
    // 12 (the 3 past block 18 rounded to 8: to block 26).
    for ((offset, len), total) in [(0u64, 3000u64), (3000, 9000), (12_000, 10_000)]
        .into_iter()
        .zip([3000, 19_000, 27_000])
    {
        rt.prefetch(&obj, offset, len);
        wait_prefetched(&rt, total).await;
        assert_eq!(
            rt.stats().prefetched_bytes.load(Ordering::Relaxed),
            total,
            "window at {offset}"
        );
    }
    assert_eq!(m.reads.load(Ordering::Relaxed), 4, "1 + 2 + 1 requests");
    // The object's end bounds the rounding: 10 blocks from block 27 stop at its last, block 40.
    rt.prefetch(&obj, 27_000, 10_000);
    wait_prefetched(&rt, 40_500).await;
    assert_eq!(rt.stats().prefetched_bytes.load(Ordering::Relaxed), 40_500);
    assert_eq!(m.reads.load(Ordering::Relaxed), 6);
    let src = data(40_500);
    let got = rt.read(&obj, 0, 40_500, FetchPlan::Blocks).await.unwrap();
    assert_eq!(&got[..], &src[..]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 6, "all cached");
}

#[tokio::test]
async fn prefetched_bytes_count_until_a_reader_reads_them() {
    let (_m, rt, obj) = setup(10_500).await;
    rt.prefetch(&obj, 0, 4000);
    wait_prefetched(&rt, 4000).await;
    let stats = rt.stats();
    assert_eq!(stats.prefetched_bytes.load(Ordering::Relaxed), 4000);
    assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 0);
    // A reader reads blocks 1 and 2 (twice: counted once); block 5 was never prefetched.
    rt.read(&obj, 1500, 1000, FetchPlan::Blocks).await.unwrap();
    rt.read(&obj, 1500, 1000, FetchPlan::Blocks).await.unwrap();
    rt.read(&obj, 5000, 10, FetchPlan::Blocks).await.unwrap();
    assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 2000);
    assert_eq!(stats.prefetched_bytes.load(Ordering::Relaxed), 4000);
    // The fast memory path counts too.
    rt.read_from_memory(&obj, 0, 10).expect("in memory");
    assert_eq!(stats.prefetch_read_bytes.load(Ordering::Relaxed), 3000);
}

#[tokio::test]
async fn a_run_of_missing_blocks_is_one_request() {
    let (m, rt, obj) = setup(20_000).await;
    rt.read(&obj, 0, 8000, FetchPlan::Blocks).await.unwrap();
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    rt.read(&obj, 0, 20_000, FetchPlan::Blocks).await.unwrap();
    // 12 missing blocks, at most 8 per request.
    assert_eq!(m.reads.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_fetch_asks_only_for_the_blocks_still_missing() {
    let (m, rt, obj) = setup(8000).await;
    // Blocks 0, 1 and 5 are cached already (as if another fetch landed first).
    rt.read(&obj, 0, 2000, FetchPlan::Blocks).await.unwrap();
    rt.read(&obj, 5000, 1000, FetchPlan::Blocks).await.unwrap();
    let before = m.read_bytes.load(Ordering::Relaxed);
    let blocks = rt
        .start_fetch(&obj, 1000, 0, 8, Wanted::ByReader)
        .await
        .unwrap();
    let all: Vec<u8> = blocks.iter().flat_map(|b| b.to_vec()).collect();
    assert_eq!(all, data(8000));
    assert_eq!(
        m.read_bytes.load(Ordering::Relaxed) - before,
        6000,
        "blocks 2..=7 only"
    );
    let reads = m.reads.load(Ordering::Relaxed);
    rt.start_fetch(&obj, 1000, 0, 8, Wanted::ByReader)
        .await
        .unwrap();
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
        async move {
            rt.read(&obj, i * 100, 8000 - i * 100, FetchPlan::Blocks)
                .await
                .unwrap()
        }
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
    let e = rt.read(&obj, 0, 100, FetchPlan::Blocks).await.unwrap_err();
    assert!(
        matches!(e, CacheError::Origin(ref c) if c.is_temporary()),
        "{e}"
    );
    assert_eq!(
        &rt.read(&obj, 0, 100, FetchPlan::Blocks).await.unwrap()[..],
        &data(5000)[..100]
    );
}

#[tokio::test]
async fn a_changed_object_is_never_mixed() {
    let (m, rt, obj) = setup(5000).await;
    let first = rt.read(&obj, 0, 1000, FetchPlan::Blocks).await.unwrap();
    m.put("f.bin", vec![9u8; 5000]);
    // Cached block of the old version still serves the old version...
    assert_eq!(
        rt.read(&obj, 0, 1000, FetchPlan::Blocks).await.unwrap(),
        first
    );
    // ...but an uncached block of the old version cannot be had: Stale, not new bytes.
    let e = rt
        .read(&obj, 3000, 1000, FetchPlan::Blocks)
        .await
        .unwrap_err();
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
    assert_eq!(
        &rt.read(&new, 0, 5000, FetchPlan::Blocks).await.unwrap()[..],
        &[9u8; 5000][..]
    );
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
    rt.read(&obj, 0, 3000, FetchPlan::Blocks).await.unwrap();
    cache.flush().await;
    let block = disk.block_path(&rt.key(&obj, 1));
    let mut raw = std::fs::read(&block).unwrap();
    let n = raw.len();
    raw[n - 10] ^= 0xff;
    std::fs::write(&block, raw).unwrap();
    let before = m.reads.load(Ordering::Relaxed);
    assert_eq!(
        &rt.read(&obj, 0, 3000, FetchPlan::Blocks).await.unwrap()[..],
        &data(3000)[..]
    );
    assert_eq!(
        m.reads.load(Ordering::Relaxed),
        before + 1,
        "only the bad block is refetched"
    );
    assert_eq!(disk.stats().corrupt_blocks.load(Ordering::Relaxed), 1);
}

async fn setup_pages(size: usize) -> (Arc<MemoryConnector>, ReadThrough, ObjectVersion) {
    let (m, rt, obj) = setup(size).await;
    (m, rt.with_page_size(250), obj)
}

#[tokio::test]
async fn a_sparse_read_fetches_only_its_pages_in_one_request() {
    let (m, rt, obj) = setup_pages(10_000).await;
    let src = data(10_000);
    // 300 bytes inside block 4: pages 17..=18 (4250..4750), not the whole block.
    let got = rt.read(&obj, 4300, 300, FetchPlan::Pages).await.unwrap();
    assert_eq!(&got[..], &src[4300..4600]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 500);
    // Across a block boundary, both blocks missing: still one request, pages 19..=21.
    let got = rt.read(&obj, 4800, 500, FetchPlan::Pages).await.unwrap();
    assert_eq!(&got[..], &src[4800..5300]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 2);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 1250);
    // Everything it needs is now in pages: no request, same bytes, also from memory alone.
    let got = rt.read(&obj, 4400, 800, FetchPlan::Pages).await.unwrap();
    assert_eq!(&got[..], &src[4400..5200]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 2);
    let fast = rt
        .read_from_memory(&obj, 4400, 800)
        .expect("pages in memory");
    assert_eq!(&fast[..], &src[4400..5200]);
    // Pages 16 and 22 are missing on either side of the cached 17..=21: two runs, two requests.
    let got = rt.read(&obj, 4000, 1600, FetchPlan::Pages).await.unwrap();
    assert_eq!(&got[..], &src[4000..5600]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 4);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 1750);
}

/// A sparse read fetching ahead: one request from the read's first page to the span's end (a
/// column chunk's end), returning only the read's bytes; the rest of the span is then cached.
#[tokio::test]
async fn a_sparse_read_ahead_fetches_on_to_its_end_in_one_request() {
    let (m, rt, obj) = setup_pages(10_000).await;
    let src = data(10_000);
    let got = rt
        .read(&obj, 4300, 1000, FetchPlan::PageSpan(4300..7100))
        .await
        .unwrap();
    assert_eq!(&got[..], &src[4300..5300]);
    // Pages 17..=28 (4250..7250): one request.
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 7250 - 4250);
    let rest = rt.read(&obj, 5300, 1800, FetchPlan::Pages).await.unwrap();
    assert_eq!(&rest[..], &src[5300..7100]);
    assert_eq!(
        m.reads.load(Ordering::Relaxed),
        1,
        "the rest came from the cache"
    );
    // A span inside the read (even empty), or past the object, changes nothing but the clamp.
    let tail = rt
        .read(&obj, 9000, 500, FetchPlan::PageSpan(0..0))
        .await
        .unwrap();
    assert_eq!(&tail[..], &src[9000..9500]);
    let last = rt
        .read(&obj, 9600, 100, FetchPlan::PageSpan(9600..1 << 30))
        .await
        .unwrap();
    assert_eq!(&last[..], &src[9600..9700]);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 3000 + 500 + 500);
}

/// A read from the middle of a span (the kernel's second piece of a column chunk, arriving
/// first) fetches the whole span in one request; the first piece is then a cache hit.
#[tokio::test]
async fn a_sparse_read_in_a_span_fetches_the_span_before_it_too() {
    let (m, rt, obj) = setup_pages(10_000).await;
    let src = data(10_000);
    let second = rt
        .read(&obj, 6000, 500, FetchPlan::PageSpan(2100..7100))
        .await
        .unwrap();
    assert_eq!(&second[..], &src[6000..6500]);
    // Pages 8..=28 (2000..7250): one request.
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 7250 - 2000);
    let first = rt
        .read(&obj, 2100, 3900, FetchPlan::PageSpan(2100..7100))
        .await
        .unwrap();
    assert_eq!(&first[..], &src[2100..6000]);
    assert_eq!(
        m.reads.load(Ordering::Relaxed),
        1,
        "the first piece was cached"
    );
}

#[tokio::test]
async fn a_sparse_read_uses_whole_cached_blocks() {
    let (m, rt, obj) = setup_pages(10_000).await;
    let src = data(10_000);
    rt.read(&obj, 2000, 1000, FetchPlan::Blocks).await.unwrap(); // block 2, whole
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    let got = rt.read(&obj, 2100, 1200, FetchPlan::Pages).await.unwrap();
    assert_eq!(&got[..], &src[2100..3300]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 2);
    assert_eq!(
        m.read_bytes.load(Ordering::Relaxed),
        1000 + 500,
        "block 2 from the cache, pages 12..=13 of block 3 from the origin"
    );
}

#[tokio::test]
async fn concurrent_sparse_readers_share_page_fetches() {
    let (m, rt, obj) = setup_pages(10_000).await;
    m.set_delay(std::time::Duration::from_millis(50));
    let src = data(10_000);
    let reads = (0..6).map(|i| {
        let (rt, obj) = (rt.clone(), obj.clone());
        async move {
            rt.read(&obj, 3000 + i * 50, 400, FetchPlan::Pages)
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(reads).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(&r[..], &src[3000 + i * 50..3400 + i * 50]);
    }
    assert!(
        m.reads.load(Ordering::Relaxed) <= 2,
        "{} requests",
        m.reads.load(Ordering::Relaxed)
    );
    assert!(m.read_bytes.load(Ordering::Relaxed) <= 1000);
}

#[tokio::test]
async fn read_span_fetches_the_whole_span_once() {
    let (m, rt, obj) = setup(3500).await;
    let src = data(3500);
    let got = rt
        .read(&obj, 1200, 100, FetchPlan::BlockSpan(0..3500))
        .await
        .unwrap();
    assert_eq!(&got[..], &src[1200..1300]);
    assert_eq!(m.reads.load(Ordering::Relaxed), 1);
    assert_eq!(m.read_bytes.load(Ordering::Relaxed), 3500);
    for off in [0, 999, 3000] {
        let got = rt
            .read(&obj, off, 400, FetchPlan::BlockSpan(0..3500))
            .await
            .unwrap();
        assert_eq!(&got[..], &src[off as usize..(off as usize + 400).min(3500)]);
    }
    assert_eq!(
        m.reads.load(Ordering::Relaxed),
        1,
        "the rest was cached by the first"
    );
}

#[tokio::test]
async fn readers_with_different_block_sizes_never_share_units() {
    let (m, _, obj) = setup(10_000).await;
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(64 << 20)), None));
    let (a, b) = (
        ReadThrough::new(m.clone(), cache.clone(), 1000, 8000),
        ReadThrough::new(m.clone(), cache, 2000, 8000),
    );
    let src = data(10_000);
    assert_eq!(
        &a.read(&obj, 0, 10_000, FetchPlan::Blocks).await.unwrap()[..],
        &src[..]
    );
    // Block 3 of the 2000-byte grid is bytes 6000..8000, not the 1000-byte grid's 3000..4000.
    assert_eq!(
        &b.read(&obj, 6000, 2000, FetchPlan::Blocks).await.unwrap()[..],
        &src[6000..8000]
    );
    assert_eq!(
        &b.read(&obj, 0, 10_000, FetchPlan::Blocks).await.unwrap()[..],
        &src[..]
    );
}

/// The fetch budget bounds the bytes in flight across readers: with room for one block, eight
/// readers of eight different blocks reach the origin one at a time (and all get their bytes);
/// with room for all, they go together.
#[tokio::test]
async fn the_fetch_budget_bounds_fetches_in_flight() {
    // Blocks of 1000 bytes; a budget of 1 KiB holds one block's fetch, 64 KiB all eight.
    for (budget_bytes, most_at_once) in [(1024u64, 1u64), (64 << 10, 8)] {
        let (m, rt, obj) = setup(8000).await;
        m.set_delay(std::time::Duration::from_millis(20));
        let budget = FetchBudget::new(budget_bytes);
        let rt = rt.with_fetch_budget(budget.clone());
        let reads = (0..8u64).map(|i| {
            let (rt, obj) = (rt.clone(), obj.clone());
            tokio::spawn(async move { rt.read(&obj, i * 1000, 1000, FetchPlan::Blocks).await })
        });
        let src = data(8000);
        for (i, read) in futures::future::join_all(reads)
            .await
            .into_iter()
            .enumerate()
        {
            let got = read.unwrap().unwrap();
            assert_eq!(&got[..], &src[i * 1000..(i + 1) * 1000]);
        }
        assert_eq!(m.reads.load(Ordering::Relaxed), 8);
        assert_eq!(
            m.most_reads_at_once.load(Ordering::SeqCst),
            most_at_once,
            "budget {budget_bytes}"
        );
        assert_eq!(budget.in_flight_bytes(), 0, "every permit is given back");
    }
}
