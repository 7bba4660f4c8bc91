//! One catalogue, two engines: the Hipparcos sample published by colo's ingest, queried through
//! colo's engine (ADQL) and through Ballista's standalone mode (a scheduler and an executor in this
//! process, talking gRPC on loopback). Counts agree for a cone and a full scan, and Ballista's plan
//! carries the HEALPix pruning predicate into the Parquet scan.

use ballista::prelude::SessionContextExt;
use colo_ballista_check::cone_sql;
use colo_tap::ingest::{IngestRequest, InputFormat, ingest};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../vo-services/tap/tests/fixtures/hip2_sample.csv"
);

async fn colo_answer(engine: &colo_tap::engine::Engine, adql: &str) -> Vec<String> {
    let result = engine.execute(adql, Some(10), &[]).await.expect(adql);
    let keep = result.keep.clone();
    let mut stream = result.stream;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("batch").project(&keep).expect("project");
        for column in batch.columns() {
            out.push(array_value_to_string(column, 0).expect("text"));
        }
    }
    out
}

async fn ballista_answer(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.expect(sql).collect().await.expect(sql);
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    batch
        .columns()
        .iter()
        .map(|c| array_value_to_string(c, 0).expect("text"))
        .collect()
}

/// Every row of `EXPLAIN sql`, as text.
async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain")
        .collect()
        .await
        .expect("explain");
    let mut text = String::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            for column in batch.columns() {
                text.push_str(&array_value_to_string(column, row).expect("text"));
                text.push('\n');
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_table_answers_the_same_through_ballista() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let request = IngestRequest {
        source_name: "hip2_sample.csv".into(),
        bytes: std::fs::read(SAMPLE).expect("fixture").into(),
        format: InputFormat::Csv,
        schema: "sample".into(),
        table: "hip2".into(),
        position: None,
        description: None,
    };
    let report = ingest(&tables, &request, &mut |_, _| {}).expect("ingest");
    let engine = colo_tap::engine::open(&tables)
        .await
        .expect("colo's engine");

    let ctx = SessionContext::standalone()
        .await
        .expect("scheduler and executor");
    let data = report.dir.join("data");
    ctx.register_parquet(
        "hip2",
        &format!("{}/", data.display()),
        ParquetReadOptions::default(),
    )
    .await
    .expect("the published partitions");

    let full_adql = "SELECT COUNT(*), MAX(hip), MIN(ra) FROM sample.hip2";
    let full_sql = "SELECT COUNT(*), MAX(hip), MIN(ra) FROM hip2";
    let full = colo_answer(&engine, full_adql).await;
    assert_eq!(full[0], "2000");
    assert_eq!(ballista_answer(&ctx, full_sql).await, full);

    let (centre, radius) = ((56.75, 24.12), 12.0);
    let adql = format!(
        "SELECT COUNT(*), MIN(hip), MAX(hip) FROM sample.hip2 \
         WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE({}, {}, {radius}))",
        centre.0, centre.1
    );
    let cone = colo_answer(&engine, &adql).await;
    assert_ne!(cone[0], "0", "the cone holds stars");
    let sql = cone_sql(
        "COUNT(*), MIN(hip), MAX(hip)",
        "hip2",
        "ra",
        "dec",
        centre,
        radius,
    );
    assert_eq!(ballista_answer(&ctx, &sql).await, cone);

    // The HEALPix ranges reach the Parquet scan as a pruning predicate.
    // The plan is Ballista's: stages whose partial aggregates run in the executor and are shuffled
    // to the final one; the HEALPix ranges reach each Parquet scan as a pruning predicate.
    let plan = explain(&ctx, &sql).await;
    assert!(
        plan.contains("distributed_plan") && plan.contains("ShuffleWriterExec"),
        "{plan}"
    );
    assert!(
        plan.contains("pruning_predicate") && plan.contains("_healpix_29_max"),
        "{plan}"
    );
}
