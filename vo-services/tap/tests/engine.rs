//! The TAP engine without HTTP: a real catalogue (2,000 Hipparcos-2 rows, `fixtures/`) ingested into
//! a temporary folder, queried through `Engine` directly. Results are checked against brute force
//! over the same rows; plans are checked for what makes the engine fast (HEALPix pruning by
//! statistics, crossmatches as hash joins, also with an uploaded table).

use std::collections::BTreeSet;
use std::path::Path;

use arrow_array::RecordBatch;
use colo_astro::sky::distance_deg;
use colo_tap::TapError;
use colo_tap::engine::{self, Engine};
use colo_tap::ingest::{IngestRequest, InputFormat, ingest};
use colo_tap::upload::parse_votable;
use datafusion::arrow::util::display::array_value_to_string;
use futures::StreamExt;

struct Catalogue {
    _dir: tempfile::TempDir,
    engine: Engine,
}

async fn catalogue() -> Catalogue {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hip2_sample.csv"))
            .expect("fixture");
    let request = IngestRequest {
        source_name: "hip2_sample.csv".into(),
        bytes: csv.into(),
        format: InputFormat::Csv,
        schema: "sample".into(),
        table: "hip2".into(),
        position: None,
        description: None,
    };
    ingest(&dir.path().join("tables"), &request, &mut |_, _| {}).expect("ingest");
    let engine = engine::open(&dir.path().join("tables"))
        .await
        .expect("engine");
    Catalogue { _dir: dir, engine }
}

/// Every row of a query's result as text, the columns users see.
async fn rows(
    engine: &Engine,
    adql: &str,
    uploads: &[colo_tap::upload::UploadedTable],
) -> Result<Vec<Vec<String>>, TapError> {
    let result = engine.execute(adql, Some(1_000_000), uploads).await?;
    let keep = result.keep.clone();
    let mut stream = result.stream;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch.expect("batch").project(&keep).expect("project");
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, row).expect("text"))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// (hip, ra, dec) of every row.
async fn positions(engine: &Engine) -> Vec<(i64, f64, f64)> {
    rows(engine, "SELECT hip, ra, dec FROM sample.hip2", &[])
        .await
        .expect("all rows")
        .iter()
        .map(|r| {
            (
                r[0].parse().expect("hip"),
                r[1].parse().expect("ra"),
                r[2].parse().expect("dec"),
            )
        })
        .collect()
}

#[tokio::test]
async fn cones_equal_a_brute_force_filter() {
    let c = catalogue().await;
    let all = positions(&c.engine).await;
    assert_eq!(all.len(), 2000);
    for (ra, dec, radius) in [(56.75, 24.12, 10.0), (0.5, 0.0, 12.0), (180.0, 88.0, 6.0)] {
        let expected: BTreeSet<i64> = all
            .iter()
            .filter(|(_, a, d)| distance_deg(*a, *d, ra, dec) <= radius)
            .map(|(hip, ..)| *hip)
            .collect();
        let query = format!(
            "SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {radius}))"
        );
        let got: BTreeSet<i64> = rows(&c.engine, &query, &[])
            .await
            .expect("cone")
            .iter()
            .map(|r| r[0].parse().expect("hip"))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "cone {ra} {dec} {radius}");
    }
}

#[tokio::test]
async fn small_cones_read_only_the_partition_holding_them() {
    let c = catalogue().await;
    let metrics = c
        .engine
        .explain_analyze(
            "SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 0.5))",
            &[],
        )
        .await
        .expect("runs");
    // 12 order-0 files; the one holding the cone is picked by its name before any is opened.
    assert_eq!(scanned_files(&metrics), ["Npix=0.parquet"], "{metrics}");
    assert_eq!(metric(&metrics, "files_opened"), Some(1), "{metrics}");
    // Without a position constraint every file is read.
    let all = c
        .engine
        .explain_analyze("SELECT COUNT(*) FROM sample.hip2 WHERE hpmag < 3", &[])
        .await
        .expect("runs");
    assert_eq!(scanned_files(&all).len(), 12, "{all}");
}

/// The partition files the plan's scans read, by name.
fn scanned_files(plan: &str) -> Vec<String> {
    plan.lines()
        .filter(|line| line.contains("DataSourceExec") && line.contains("file_groups"))
        .flat_map(|line| {
            let groups = line.split("file_groups=").nth(1).unwrap_or_default();
            let groups = groups.split("]]}").next().unwrap_or_default();
            groups
                .split([',', '[', ']', ' '])
                .filter(|part| part.ends_with(".parquet"))
                .map(|part| part.rsplit('/').next().unwrap_or(part).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn metric(text: &str, name: &str) -> Option<u64> {
    let at = text.find(&format!("{name}="))?;
    let digits: String = text[at + name.len() + 1..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[tokio::test]
async fn a_crossmatch_is_a_hash_join_with_the_brute_force_result() {
    let c = catalogue().await;
    let query = "SELECT a.hip, b.hip FROM sample.hip2 AS a JOIN sample.hip2 AS b \
                 ON DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 2 WHERE a.hip < b.hip";
    let plan = c.engine.explain(query, &[]).await.expect("plan");
    assert!(plan.contains("HashJoinExec"), "{plan}");
    assert!(!plan.contains("NestedLoopJoinExec"), "{plan}");
    let got: BTreeSet<(i64, i64)> = rows(&c.engine, query, &[])
        .await
        .expect("crossmatch")
        .iter()
        .map(|r| (r[0].parse().expect("a"), r[1].parse().expect("b")))
        .collect();
    let all = positions(&c.engine).await;
    let mut expected = BTreeSet::new();
    for a in &all {
        for b in &all {
            if a.0 < b.0 && distance_deg(a.1, a.2, b.1, b.2) < 2.0 {
                expected.insert((a.0, b.0));
            }
        }
    }
    assert!(expected.len() > 10);
    assert_eq!(got, expected);
}

/// An uploaded list of `n` positions near catalogue stars (a few arcseconds off, so most match),
/// each with its own radius in arcseconds, as a VOTable.
fn upload_near(all: &[(i64, f64, f64)], n: usize) -> colo_tap::upload::UploadedTable {
    let mut votable = String::from(
        "<VOTABLE><RESOURCE><TABLE><FIELD name=\"id\" datatype=\"int\"/>\
         <FIELD name=\"RA\" datatype=\"double\" ucd=\"pos.eq.ra;meta.main\"/>\
         <FIELD name=\"Dec\" datatype=\"double\" ucd=\"pos.eq.dec;meta.main\"/>\
         <FIELD name=\"r_arcsec\" datatype=\"double\"/><DATA><TABLEDATA>",
    );
    for i in 0..n {
        let (_, ra, dec) = all[(i * 7919) % all.len()];
        // Alternately 2″ and 12″ away, radii 5″ and 20″: some pairs match only by the larger.
        let off = if i % 2 == 0 { 2.0 } else { 12.0 } / 3600.0;
        let r = if i % 3 == 0 { 20.0 } else { 5.0 };
        votable.push_str(&format!(
            "<TR><TD>{i}</TD><TD>{}</TD><TD>{}</TD><TD>{r}</TD></TR>",
            ra + off,
            (dec - off).clamp(-90.0, 90.0)
        ));
    }
    votable.push_str("</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>");
    parse_votable("targets", votable.as_bytes()).expect("upload")
}

/// (upload id, hip) pairs within `radius_deg(row)` of each other, by brute force.
fn brute_force(
    upload: &colo_tap::upload::UploadedTable,
    all: &[(i64, f64, f64)],
    radius_deg: &dyn Fn(f64) -> f64,
) -> BTreeSet<(i64, i64)> {
    let column = |name: &str| {
        let array = upload.batch.column_by_name(name).expect("column");
        (0..upload.batch.num_rows())
            .map(|i| {
                array_value_to_string(array, i)
                    .expect("text")
                    .parse::<f64>()
                    .expect("number")
            })
            .collect::<Vec<f64>>()
    };
    let (ids, ras, decs, radii) = (
        column("id"),
        column("ra"),
        column("dec"),
        column("r_arcsec"),
    );
    let mut pairs = BTreeSet::new();
    for row in 0..ids.len() {
        for (hip, ra, dec) in all {
            if distance_deg(ras[row], decs[row], *ra, *dec) < radius_deg(radii[row]) {
                pairs.insert((ids[row] as i64, *hip));
            }
        }
    }
    pairs
}

/// Every way of writing an upload crossmatch becomes a hash join on HEALPix cells — whichever
/// side the upload is on, with a constant or a per-row radius — and finds what brute force finds.
#[tokio::test]
async fn upload_crossmatches_are_hash_joins_with_the_brute_force_result() {
    let c = catalogue().await;
    let all = positions(&c.engine).await;
    let upload = upload_near(&all, 300);
    let uploads = std::slice::from_ref(&upload);
    let fixed = brute_force(&upload, &all, &|_| 10.0 / 3600.0);
    let per_row = brute_force(&upload, &all, &|r| r / 3600.0);
    assert!(fixed.len() > 100 && fixed.len() < 300, "{}", fixed.len());
    assert!(per_row != fixed, "the per-row radius matters");
    let forms = [
        (
            "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t \
          ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra, t.dec)) < 10.0/3600",
            &fixed,
        ),
        (
            "SELECT u.id, t.hip FROM sample.hip2 AS t JOIN TAP_UPLOAD.targets AS u \
          ON DISTANCE(POINT(t.ra, t.dec), POINT(u.ra, u.dec)) < 10.0/3600",
            &fixed,
        ),
        (
            "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u, sample.hip2 AS t \
          WHERE DISTANCE(u.ra, u.dec, t.ra, t.dec) < 10.0/3600",
            &fixed,
        ),
        (
            "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t \
          ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, 10.0/3600))",
            &fixed,
        ),
        (
            "SELECT u.id, t.hip FROM sample.hip2 AS t, TAP_UPLOAD.targets AS u \
          WHERE CONTAINS(POINT(u.ra, u.dec), CIRCLE(t.ra, t.dec, 10.0/3600)) = 1",
            &fixed,
        ),
        (
            "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t \
          ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra, t.dec)) < u.r_arcsec / 3600",
            &per_row,
        ),
        (
            "SELECT u.id, t.hip FROM sample.hip2 AS t JOIN TAP_UPLOAD.targets AS u \
          ON 1 = CONTAINS(POINT(t.ra, t.dec), CIRCLE(u.ra, u.dec, u.r_arcsec / 3600))",
            &per_row,
        ),
    ];
    for (query, expected) in forms {
        let plan = c.engine.explain(query, uploads).await.expect("plan");
        assert!(plan.contains("HashJoinExec"), "{query}\n{plan}");
        assert!(!plan.contains("NestedLoopJoinExec"), "{query}\n{plan}");
        let got: BTreeSet<(i64, i64)> = rows(&c.engine, query, uploads)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .iter()
            .map(|r| (r[0].parse().expect("id"), r[1].parse().expect("hip")))
            .collect();
        assert_eq!(&got, expected, "{query}");
    }
    // A LEFT JOIN keeps the targets without a match.
    let left = rows(
        &c.engine,
        "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u LEFT JOIN sample.hip2 AS t \
         ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra, t.dec)) < 10.0/3600",
        uploads,
    )
    .await
    .expect("left join");
    let unmatched = left.iter().filter(|r| r[1].is_empty()).count();
    let matched_ids: BTreeSet<i64> = fixed.iter().map(|(id, _)| *id).collect();
    assert_eq!(unmatched, 300 - matched_ids.len());
}

/// A clustered upload (one field) reads only the partitions and row groups its cells are in.
#[tokio::test]
async fn a_clustered_upload_prunes_the_catalogue() {
    let c = catalogue().await;
    let all = positions(&c.engine).await;
    let near: Vec<(i64, f64, f64)> = all
        .iter()
        .filter(|(_, ra, dec)| distance_deg(*ra, *dec, 56.75, 24.12) < 15.0)
        .copied()
        .collect();
    assert!(near.len() > 10);
    let upload = upload_near(&near, 40);
    let metrics = c
        .engine
        .explain_analyze(
            "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t \
             ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra, t.dec)) < 10.0/3600",
            std::slice::from_ref(&upload),
        )
        .await
        .expect("runs");
    let files = scanned_files(&metrics);
    assert!(
        !files.is_empty() && files.len() <= 3,
        "{files:?}\n{metrics}"
    );
    // Within those files the cells' ranges are the scan's predicate, pruning row groups and pages
    // by their statistics, and are not evaluated row by row (the join's distance decides): no
    // rows are filtered in the scan, and no hash-join filter is pushed into it.
    assert!(metrics.contains("predicate=_healpix_29@"), "{metrics}");
    assert!(
        metric(&metrics, "page_index_pages_pruned").is_some(),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "pushdown_rows_pruned"),
        Some(0),
        "{metrics}"
    );
    assert!(!metrics.contains("DynamicFilter"), "{metrics}");
}

#[tokio::test]
async fn mistakes_are_the_users_and_say_what_to_fix() {
    let c = catalogue().await;
    let e = rows(&c.engine, "SELECT hpmagg FROM sample.hip2", &[])
        .await
        .expect_err("unknown column");
    assert!(e.is_user_error());
    assert_eq!(e.to_string(), "unknown column hpmagg (did you mean hpmag?)");
    let e = rows(&c.engine, "SELECT hip FROM sample.hip3", &[])
        .await
        .expect_err("unknown table");
    assert!(e.to_string().contains("did you mean sample.hip2?"), "{e}");
    let e = rows(&c.engine, "SELECT hip FROM sample.hip2 WHERE", &[])
        .await
        .expect_err("syntax");
    assert!(
        matches!(e, TapError::Adql(_)) && e.to_string().contains("line 1"),
        "{e}"
    );
}

/// IN_UNIT converts by the column's unit from the table's metadata (the sample's `ra` is `deg`,
/// as ingest describes it) and an upload's FIELD unit; what cannot be converted says why.
#[tokio::test]
async fn in_unit_converts_by_the_columns_units() {
    let c = catalogue().await;
    let row = rows(
        &c.engine,
        "SELECT ra, IN_UNIT(ra, 'arcsec'), IN_UNIT(t.ra, 'rad') FROM sample.hip2 AS t WHERE hip = 60",
        &[],
    )
    .await
    .expect("in_unit");
    let (deg, arcsec, rad): (f64, f64, f64) = (
        row[0][0].parse().expect("deg"),
        row[0][1].parse().expect("arcsec"),
        row[0][2].parse().expect("rad"),
    );
    assert!((arcsec - deg * 3600.0).abs() < 1e-9 * arcsec);
    assert!((rad - deg.to_radians()).abs() < 1e-12);
    let upload = parse_votable(
        "speeds",
        b"<VOTABLE><RESOURCE><TABLE><FIELD name=\"v\" datatype=\"double\" unit=\"km/s\"/>\
          <DATA><TABLEDATA><TR><TD>2.5</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>",
    )
    .expect("upload");
    let v = rows(
        &c.engine,
        "SELECT IN_UNIT(v, 'm.s**-1') FROM TAP_UPLOAD.speeds",
        std::slice::from_ref(&upload),
    )
    .await
    .expect("upload unit");
    assert_eq!(v[0][0], "2500.0");
    for (query, says) in [
        (
            "SELECT IN_UNIT(ra, 'km') FROM sample.hip2",
            "not the same kind",
        ),
        (
            "SELECT IN_UNIT(ra, 'parsnips') FROM sample.hip2",
            "\"parsnips\" is not understood",
        ),
        (
            "SELECT IN_UNIT(hip, 'deg') FROM sample.hip2",
            "unit is known",
        ),
    ] {
        let e = rows(&c.engine, query, &[]).await.expect_err(query);
        assert!(
            e.is_user_error() && e.to_string().contains(says),
            "{query}: {e}"
        );
    }
}

#[tokio::test]
async fn tap_schema_describes_the_published_table() {
    let c = catalogue().await;
    let columns = rows(
        &c.engine,
        "SELECT column_name, datatype, indexed FROM TAP_SCHEMA.columns WHERE table_name = 'sample.hip2' ORDER BY column_index",
        &[],
    )
    .await
    .expect("tap_schema");
    let names: Vec<&str> = columns.iter().map(|r| r[0].as_str()).collect();
    assert!(names.contains(&"hip") && names.contains(&"ra") && !names.contains(&"_healpix_29"));
    let ra = columns.iter().find(|r| r[0] == "ra").expect("ra");
    assert_eq!(
        (ra[1].as_str(), ra[2].as_str()),
        ("double", "1"),
        "position columns are indexed"
    );
}

#[tokio::test]
async fn a_query_over_its_memory_fails_alone_and_names_the_limit() {
    let Catalogue { _dir, engine } = catalogue().await;
    let engine = engine.with_query_memory_limit(4 * 1024);
    let join = "SELECT COUNT(*) FROM sample.hip2 AS a JOIN sample.hip2 AS b ON a.hip = b.hip";
    match rows(&engine, join, &[]).await {
        Err(e @ TapError::OverLimit { .. }) => {
            assert!(e.is_user_error());
            let text = e.to_string();
            assert!(
                text.contains("more memory than one query may use"),
                "{text}"
            );
            assert!(text.contains("WHERE or TOP"), "{text}");
        }
        other => panic!("a join whose build side is over the limit must fail: {other:?}"),
    }
    // Scans stream and are not counted: a small query on the same engine answers.
    let top = rows(&engine, "SELECT TOP 5 hip FROM sample.hip2", &[])
        .await
        .expect("a streaming query under the limit");
    assert_eq!(top.len(), 5);
    // With the default limit the join answers: each of the 2,000 rows matches itself.
    let Catalogue { _dir: _d2, engine } = catalogue().await;
    let count = rows(&engine, join, &[])
        .await
        .expect("the join at the default limit");
    assert_eq!(count, vec![vec!["2000".to_string()]]);
}
