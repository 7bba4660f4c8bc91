//! A catalogue published to a volume and served from it through the block cache: 60,000 generated
//! sources (12 partitions of ~200 KiB, two row groups each) written by ingest through
//! [`VolumeStore`] onto an in-memory volume that counts what reaches it, then queried over TAP (the
//! router, no socket). Answers equal the local table's; a
//! repeated query costs the origin nothing; an origin that goes down fails the query with a 503
//! naming the volume, and the service answers again when the origin is back.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::{MemoryConnector, Metered, OriginStats};
use colo_tap::ingest::to_store::{new_data_dir, publish_to_store, table_folder};
use colo_tap::ingest::{IngestRequest, InputFormat, ingest, write_table};
use colo_vo_services::table_store::VolumeStore;
use colo_vo_services::volumes::Volumes;
use colo_vo_services::{AppState, ServiceConfig, TableFolder};
use support::post;

const BLOCK_BYTES: u64 = 64 * 1024;

/// `n` sources spread over the sky (a fixed pseudo-random sequence) as CSV: id, ra, dec, mag.
fn generated_csv(n: u64) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = String::from("id,ra,dec,mag\n");
    for id in 1..=n {
        let ra = 360.0 * next();
        let dec = (2.0 * next() - 1.0).asin().to_degrees();
        let mag = 6.0 + 10.0 * next();
        csv.push_str(&format!("{id},{ra:.8},{dec:.8},{mag:.3}\n"));
    }
    csv
}

fn request() -> IngestRequest {
    IngestRequest {
        source_name: "generated.csv".into(),
        bytes: generated_csv(60_000).into_bytes().into(),
        format: InputFormat::Csv,
        schema: "sky".into(),
        table: "sources".into(),
        position: None,
        description: None,
    }
}

struct Served {
    _dir: tempfile::TempDir,
    app: axum::Router,
    local: axum::Router,
    origin: Arc<Metered<MemoryConnector>>,
    stats: Arc<OriginStats>,
}

fn config(dir: &std::path::Path, name: &str, table_volumes: Vec<TableFolder>) -> ServiceConfig {
    ServiceConfig {
        tables_dir: dir.join(name).join("tables"),
        table_volumes,
        jobs_dir: dir.join(name).join("jobs"),
        limits: Default::default(),
        urls: Default::default(),
    }
}

/// The sources published to `archive/tables` on a memory volume, and the same rows as a local
/// table, each behind its own router.
async fn served() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Arc::new(Metered::new(MemoryConnector::new("archive")));
    let stats = origin.stats();
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(64 << 20)), None));
    let reader =
        ReadThrough::new(origin.clone(), cache, BLOCK_BYTES, 16 * BLOCK_BYTES).with_page_size(4096);
    let store = VolumeStore::new(reader.clone());
    let folder = TableFolder::parse("archive/tables").expect("folder");
    let staging = tempfile::tempdir().expect("staging");
    write_table(
        staging.path(),
        &request(),
        &new_data_dir(),
        None,
        &mut |_, _| {},
    )
    .expect("written");
    let table = table_folder(&folder.url(), "sky", "sources");
    publish_to_store(&store, &table, staging.path(), None)
        .await
        .expect("published through the volume");
    assert!(stats.write_requests.load(Ordering::Relaxed) > 1);

    let volumes = Volumes::new([("archive".to_string(), reader)]);
    let remote = AppState::open(&config(dir.path(), "remote", vec![folder]), volumes)
        .await
        .expect("services over the volume");
    let local_config = config(dir.path(), "local", vec![]);
    ingest(&local_config.tables_dir, &request(), &mut |_, _| {}).expect("local ingest");
    let local = AppState::open(&local_config, Volumes::default())
        .await
        .expect("services over the local table");
    Served {
        _dir: dir,
        app: colo_vo_services::router(remote),
        local: colo_vo_services::router(local),
        origin,
        stats,
    }
}

async fn sync_csv(app: &axum::Router, adql: &str) -> (u16, String) {
    let answer = post(
        app,
        "/tap/sync",
        &[
            ("REQUEST", "doQuery"),
            ("LANG", "ADQL"),
            ("FORMAT", "csv"),
            ("QUERY", adql),
        ],
    )
    .await;
    (answer.status.as_u16(), answer.text())
}

fn origin_requests(stats: &OriginStats) -> u64 {
    stats.read_requests.load(Ordering::Relaxed)
        + stats.stat_requests.load(Ordering::Relaxed)
        + stats.list_requests.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_catalogue_on_a_volume_answers_like_the_local_one_through_the_cache() {
    let s = served().await;
    let queries = [
        "SELECT id, ra, dec FROM sky.sources WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 8)) ORDER BY id",
        "SELECT id FROM sky.sources WHERE 1=CONTAINS(POINT(ra, dec), BOX(180, -30, 20, 10)) ORDER BY id",
        "SELECT a.id, b.id FROM sky.sources AS a JOIN sky.sources AS b \
         ON 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.02)) WHERE a.id < b.id ORDER BY a.id, b.id",
        "SELECT COUNT(*), MIN(mag), MAX(id) FROM sky.sources",
    ];
    for query in queries {
        let (status, expected) = sync_csv(&s.local, query).await;
        assert_eq!(status, 200, "{expected}");
        assert!(expected.lines().count() > 1, "{query}: {expected}");
        let before = origin_requests(&s.stats);
        let (status, got) = sync_csv(&s.app, query).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got, expected, "{query}");
        let first = origin_requests(&s.stats) - before;
        // Asked again: everything comes from the cache (footers, listings, row groups).
        let (_, again) = sync_csv(&s.app, query).await;
        assert_eq!(again, expected);
        assert_eq!(
            origin_requests(&s.stats) - before,
            first,
            "{query}: a repeated query reaches the origin"
        );
    }
}

#[tokio::test]
async fn a_small_cone_reads_a_few_pages_of_one_partition() {
    let s = served().await;
    let files = s.origin.inner().len_files();
    let reads = || s.stats.read_requests.load(Ordering::Relaxed);
    let bytes = || s.stats.read_bytes.load(Ordering::Relaxed);
    let (before, before_bytes) = (reads(), bytes());
    let (status, text) = sync_csv(
        &s.app,
        "SELECT id FROM sky.sources WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 2))",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // The footers were read when the table was opened; the cone's one partition costs a few
    // pages, far less than the table.
    let cone_reads = reads() - before;
    assert!(cone_reads <= 4, "{cone_reads} origin reads for one cone");
    assert!(
        bytes() - before_bytes < s.origin.inner().total_bytes() / files as u64,
        "a cone reads less than one partition file on average"
    );
}

#[tokio::test]
async fn an_origin_that_goes_down_fails_the_query_not_the_service() {
    let s = served().await;
    let query = "SELECT id FROM sky.sources WHERE 1=CONTAINS(POINT(ra, dec), BOX(300, 40, 30, 30))";
    s.origin.inner().set_down(true);
    let (status, text) = sync_csv(&s.app, query).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("QUERY_STATUS"), "a VOTable error: {text}");
    let text = text.replace("&apos;", "'");
    assert!(
        text.contains("volume 'archive'") && text.contains("unavailable"),
        "says which storage failed: {text}"
    );
    s.origin.inner().set_down(false);
    let (status, text) = sync_csv(&s.app, query).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.lines().count() > 2);
}
