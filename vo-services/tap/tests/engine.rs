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
async fn small_cones_skip_files_and_row_groups_by_statistics() {
    let c = catalogue().await;
    let metrics = c
        .engine
        .explain_analyze("SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 0.5))")
        .await
        .expect("runs");
    // 12 order-0 files; all but the one holding the cone are pruned by their min/max statistics.
    let pruned = metric(&metrics, "files_ranges_pruned_statistics")
        .or_else(|| metric(&metrics, "row_groups_pruned_statistics"));
    assert!(pruned.is_some_and(|p| p >= 10), "{metrics}");
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
    let plan = c.engine.explain(query).await.expect("plan");
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

/// An uploaded list joined to the catalogue by a 1° DISTANCE: the pairs brute force finds.
#[tokio::test]
async fn an_uploaded_list_joins_the_catalogue() {
    let c = catalogue().await;
    let targets = [(56.75, 24.12), (83.82, -5.39), (10.0, 41.0)];
    let mut votable = String::from(
        "<VOTABLE><RESOURCE><TABLE><FIELD name=\"id\" datatype=\"int\"/>\
         <FIELD name=\"RA\" datatype=\"double\"/><FIELD name=\"Dec\" datatype=\"double\"/><DATA><TABLEDATA>",
    );
    for (i, (ra, dec)) in targets.iter().enumerate() {
        votable.push_str(&format!("<TR><TD>{i}</TD><TD>{ra}</TD><TD>{dec}</TD></TR>"));
    }
    votable.push_str("</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>");
    let upload = parse_votable("targets", votable.as_bytes()).expect("upload");
    let query = "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t \
                 ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra, t.dec)) < 1";
    let got: BTreeSet<(usize, i64)> = rows(&c.engine, query, std::slice::from_ref(&upload))
        .await
        .expect("join")
        .iter()
        .map(|r| (r[0].parse().expect("id"), r[1].parse().expect("hip")))
        .collect();
    let all = positions(&c.engine).await;
    let mut expected = BTreeSet::new();
    for (i, (ra, dec)) in targets.iter().enumerate() {
        for (hip, a, d) in &all {
            if distance_deg(*ra, *dec, *a, *d) < 1.0 {
                expected.insert((i, *hip));
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
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
