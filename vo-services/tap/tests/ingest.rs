//! Catalogue ingest without the CLI: the committed Hipparcos sample (CSV) and the same rows as a
//! VOTable and as a FITS binary table become HEALPix-partitioned Parquet plus a descriptor; files are
//! sorted by the order-29 index; re-ingesting keeps the operator's edits; bad input is refused with
//! a message naming the problem; a folder being written is never published.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use colo_astro::fits::Value;
use colo_astro::fits::bintable::{OutputColumn, primary_header, table_header};
use colo_astro::fits::padded_len;
use colo_astro::sky::{HEALPIX_ORDER, healpix_index};
use colo_tap::catalog::{DESCRIPTOR_FILE, HEALPIX_COLUMN, TableDescriptor, discover_tables};
use colo_tap::ingest::{IngestRequest, InputFormat, ingest, order_for};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hip2_sample.csv"))
        .expect("fixture")
}

fn request(bytes: Vec<u8>, format: InputFormat, table: &str) -> IngestRequest {
    IngestRequest {
        source_name: format!("{table}.input"),
        bytes: bytes.into(),
        format,
        schema: "sample".into(),
        table: table.into(),
        position: None,
        description: Some("Hipparcos sample".into()),
    }
}

/// The committed sample published as `sample.hip2` under `tables`.
fn ingest_fixture(tables: &Path) -> colo_tap::ingest::IngestReport {
    let request = request(fixture(), InputFormat::Csv, "hip2");
    ingest(tables, &request, &mut |_, _| {}).expect("ingest")
}

/// Every Parquet file under a published table's `data/`.
fn partition_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.join("data")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .expect("a Parquet file")
        .collect::<Result<_, _>>()
        .expect("batches")
}

#[test]
fn a_csv_catalogue_is_partitioned_sorted_and_described() {
    let tables = tempfile::tempdir().expect("tempdir");
    let report = ingest_fixture(tables.path());
    assert_eq!(report.rows, 2000);
    assert_eq!(report.order, order_for(2000));
    let position = report.position.as_ref().expect("ra/dec found by name");
    assert_eq!((position.ra.as_str(), position.dec.as_str()), ("ra", "dec"));

    let files = partition_files(&report.dir);
    assert_eq!(files.len(), report.files);
    let mut rows = 0;
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let cell: u64 = name
            .trim_start_matches("Npix=")
            .trim_end_matches(".parquet")
            .parse()
            .expect("a cell number");
        for batch in read_parquet(file) {
            let index = batch
                .column_by_name(HEALPIX_COLUMN)
                .expect("index column")
                .as_primitive::<Int64Type>();
            let ra = batch
                .column_by_name("ra")
                .expect("ra")
                .as_primitive::<arrow_array::types::Float64Type>();
            let dec = batch
                .column_by_name("dec")
                .expect("dec")
                .as_primitive::<arrow_array::types::Float64Type>();
            for row in 0..batch.num_rows() {
                let expected =
                    healpix_index(HEALPIX_ORDER, ra.value(row), dec.value(row)).expect("index");
                assert_eq!(index.value(row) as u64, expected);
                assert_eq!(
                    expected >> (2 * u32::from(HEALPIX_ORDER - report.order)),
                    cell
                );
                if row > 0 {
                    assert!(
                        index.value(row - 1) <= index.value(row),
                        "sorted by the index"
                    );
                }
            }
            rows += batch.num_rows();
        }
    }
    assert_eq!(rows, 2000);

    let descriptor = TableDescriptor::read(&report.dir.join(DESCRIPTOR_FILE)).expect("descriptor");
    assert_eq!(descriptor.qualified_name(), "sample.hip2");
    assert_eq!(descriptor.rows, 2000);
    let ra = descriptor
        .columns
        .iter()
        .find(|c| c.name == "ra")
        .expect("ra");
    assert_eq!(
        (ra.ucd.as_str(), ra.unit.as_str(), ra.indexed),
        ("pos.eq.ra;meta.main", "deg", true)
    );
    assert!(descriptor.columns.iter().all(|c| c.name != HEALPIX_COLUMN));
    assert!(
        descriptor.columns.iter().any(|c| c.name == "hip"),
        "names are lower-cased"
    );
}

#[test]
fn reingesting_keeps_the_operators_edits() {
    let tables = tempfile::tempdir().expect("tempdir");
    let report = ingest_fixture(tables.path());
    let path = report.dir.join(DESCRIPTOR_FILE);
    let mut descriptor = TableDescriptor::read(&path).expect("descriptor");
    descriptor.description = "edited by the operator".into();
    let hpmag = descriptor
        .columns
        .iter_mut()
        .find(|c| c.name == "hpmag")
        .expect("hpmag");
    hpmag.ucd = "phot.mag;em.opt".into();
    descriptor.write(&path).expect("write");
    ingest_fixture(tables.path());
    let again = TableDescriptor::read(&path).expect("descriptor");
    assert_eq!(again.description, "edited by the operator");
    let hpmag = again
        .columns
        .iter()
        .find(|c| c.name == "hpmag")
        .expect("hpmag");
    assert_eq!(hpmag.ucd, "phot.mag;em.opt");
    let published = discover_tables(tables.path()).expect("tables");
    assert_eq!(
        published.len(),
        1,
        "the previous version was replaced, not kept beside"
    );
}

/// The first rows of the fixture as (hip, ra, dec).
fn sample_rows(n: usize) -> Vec<(i64, f64, f64)> {
    String::from_utf8(fixture())
        .expect("text")
        .lines()
        .skip(1)
        .take(n)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].parse().expect("hip"),
                f[1].parse().expect("ra"),
                f[2].parse().expect("dec"),
            )
        })
        .collect()
}

#[test]
fn votable_and_fits_tables_publish_the_same_rows() {
    let rows = sample_rows(50);
    let mut votable = String::from(
        "<VOTABLE><RESOURCE><TABLE><FIELD name=\"HIP\" datatype=\"long\"/><FIELD name=\"RAJ2000\" datatype=\"double\"/>\
         <FIELD name=\"DEJ2000\" datatype=\"double\"/><DATA><TABLEDATA>",
    );
    for (hip, ra, dec) in &rows {
        votable.push_str(&format!(
            "<TR><TD>{hip}</TD><TD>{ra}</TD><TD>{dec}</TD></TR>"
        ));
    }
    votable.push_str("</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>");

    let columns =
        [("HIP", "K"), ("RAJ2000", "D"), ("DEJ2000", "D")].map(|(name, tform)| OutputColumn {
            name: name.into(),
            tform: tform.into(),
            ..Default::default()
        });
    let mut header = table_header(&columns, 24, rows.len(), "HIP2");
    header.set("TUNIT2", Value::Str("deg".into()), "");
    let mut fits = primary_header().to_bytes();
    fits.extend(header.to_bytes());
    for (hip, ra, dec) in &rows {
        fits.extend(hip.to_be_bytes());
        fits.extend(ra.to_be_bytes());
        fits.extend(dec.to_be_bytes());
    }
    fits.resize(padded_len(fits.len() as u64) as usize, 0);

    let tables = tempfile::tempdir().expect("tempdir");
    for (bytes, format, table) in [
        (votable.into_bytes(), InputFormat::Votable, "from_votable"),
        (fits, InputFormat::Fits, "from_fits"),
    ] {
        let report = ingest(
            tables.path(),
            &request(bytes, format, table),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(report.rows, 50, "{table}");
        let position = report.position.expect("RAJ2000/DEJ2000 found");
        assert_eq!(
            (position.ra.as_str(), position.dec.as_str()),
            ("raj2000", "dej2000")
        );
        let mut hips: Vec<i64> = partition_files(&report.dir)
            .iter()
            .flat_map(|f| read_parquet(f))
            .flat_map(|b| {
                let hip = b.column_by_name("hip").expect("hip").clone();
                let hip = datafusion::arrow::compute::cast(&hip, &arrow_schema::DataType::Int64)
                    .expect("cast");
                hip.as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .collect();
        hips.sort();
        let mut expected: Vec<i64> = rows.iter().map(|r| r.0).collect();
        expected.sort();
        assert_eq!(hips, expected, "{table}");
    }
}

#[test]
fn bad_input_is_refused_naming_the_problem() {
    let tables = tempfile::tempdir().expect("tempdir");
    let bad_name = ingest(
        tables.path(),
        &request(fixture(), InputFormat::Csv, "Select"),
        &mut |_, _| {},
    )
    .expect_err("not a usable ADQL name");
    assert!(
        bad_name.to_string().contains("not a usable ADQL name"),
        "{bad_name}"
    );
    let reserved = ingest(
        tables.path(),
        &request(fixture(), InputFormat::Csv, "distance"),
        &mut |_, _| {},
    )
    .expect_err("reserved");
    assert!(reserved.to_string().contains("\"distance\""), "{reserved}");
    let not_parquet = ingest(
        tables.path(),
        &request(
            b"PAR1 but not really".to_vec(),
            InputFormat::Parquet,
            "broken",
        ),
        &mut |_, _| {},
    )
    .expect_err("not Parquet");
    assert!(not_parquet.is_user_error());
    assert!(
        not_parquet
            .to_string()
            .contains("not a readable Parquet file"),
        "{not_parquet}"
    );
    let mut wrong = request(fixture(), InputFormat::Csv, "hip2");
    wrong.position = Some(colo_tap::catalog::PositionDescriptor {
        ra: "alpha".into(),
        dec: "delta".into(),
    });
    let e = ingest(tables.path(), &wrong, &mut |_, _| {}).expect_err("no such columns");
    assert!(e.to_string().contains("no column \"alpha\""), "{e}");
    assert!(
        discover_tables(tables.path()).expect("tables").is_empty(),
        "nothing half-published"
    );
}

#[test]
fn a_folder_being_written_is_not_published() {
    let tables = tempfile::tempdir().expect("tempdir");
    ingest_fixture(tables.path());
    // What an interrupted ingest leaves: a hidden staging folder with a complete-looking descriptor.
    let staging = tables.path().join(".sample.other.ingest-12345");
    std::fs::create_dir_all(staging.join("data")).expect("mkdir");
    std::fs::copy(
        tables.path().join("sample.hip2").join(DESCRIPTOR_FILE),
        staging.join(DESCRIPTOR_FILE),
    )
    .expect("copy");
    let names: Vec<String> = discover_tables(tables.path())
        .expect("tables")
        .iter()
        .map(|t| t.descriptor.qualified_name())
        .collect();
    assert_eq!(names, ["sample.hip2"]);
}

/// A table published to an object store (object_store's in-memory one here; colo's volumes in
/// `colo-vo-services`' tests): partitions in a versioned folder, the descriptor last; found by
/// discovery; queried like the local table; re-publishing keeps the operator's edits and the
/// replaced version, and deletes older ones.
#[tokio::test]
async fn a_table_published_to_a_store_answers_like_the_local_one() {
    use colo_tap::catalog::discover_tables_in;
    use colo_tap::engine::Engine;
    use colo_tap::ingest::to_store::{
        new_data_dir, publish_to_store, published_descriptor, table_folder,
    };
    use colo_tap::ingest::write_table;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    use std::sync::Arc;

    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let root = url::Url::parse("colo://archive/").expect("url");
    let base = url::Url::parse("colo://archive/tables/").expect("url");
    let folder = table_folder(&base, "sample", "hip2");
    let request = request(fixture(), InputFormat::Csv, "hip2");
    let publish = |data_dir: String| {
        let store = store.clone();
        let folder = folder.clone();
        let request = request.clone();
        async move {
            let previous = published_descriptor(store.as_ref(), &folder)
                .await
                .expect("readable");
            let staging = tempfile::tempdir().expect("tempdir");
            write_table(
                staging.path(),
                &request,
                &data_dir,
                previous.clone(),
                &mut |_, _| {},
            )
            .expect("written");
            publish_to_store(store.as_ref(), &folder, staging.path(), previous.as_ref())
                .await
                .expect("published")
        }
    };
    let first = publish("data-1".into()).await;
    assert_eq!(first.files, partition_files_count(order_for(2000)));
    assert!(first.removed.is_empty());

    let found = discover_tables_in(store.as_ref(), &base)
        .await
        .expect("discovered");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].descriptor.data, "data-1");
    assert_eq!(
        found[0].data_url().as_str(),
        "colo://archive/tables/sample.hip2/data-1/"
    );
    let remote = Engine::new(&found, &[(root.clone(), store.clone())])
        .await
        .expect("engine over the store");
    let tables = tempfile::tempdir().expect("tempdir");
    ingest_fixture(tables.path());
    let local = colo_tap::engine::open(tables.path())
        .await
        .expect("local engine");
    for query in [
        "SELECT hip, ra, dec FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 5)) ORDER BY hip",
        "SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), BOX(180, -30, 20, 10)) ORDER BY hip",
        "SELECT COUNT(*) FROM sample.hip2",
    ] {
        let expected = all_rows(&local, query).await;
        assert!(!expected.is_empty() && expected[0] != ["0"], "{query}");
        assert_eq!(all_rows(&remote, query).await, expected, "{query}");
    }

    // The operator edits the descriptor on the store; a re-ingest keeps the edit.
    let location = colo_tap::catalog::store_path(&folder).join(DESCRIPTOR_FILE);
    let mut edited = published_descriptor(store.as_ref(), &folder)
        .await
        .expect("readable")
        .expect("published");
    edited.description = "Edited on the store".into();
    store
        .put(&location, PutPayload::from(edited.to_text().expect("text")))
        .await
        .expect("put");
    let second = publish(new_data_dir()).await;
    assert!(second.removed.is_empty(), "the replaced version is kept");
    let now = published_descriptor(store.as_ref(), &folder)
        .await
        .expect("readable")
        .expect("published");
    assert_eq!(now.description, "Edited on the store");
    assert!(now.data.starts_with("data-2"), "{}", now.data);
    let third = publish(new_data_dir()).await;
    assert_eq!(
        third.removed,
        ["data-1"],
        "versions older than the replaced one go"
    );
    let listed = store
        .list_with_delimiter(Some(&colo_tap::catalog::store_path(&folder)))
        .await
        .expect("listing");
    let mut names: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"data-1".to_string()));
}

/// Partition files of the sample at `order` (one per non-empty cell): counted from a local ingest.
fn partition_files_count(order: u8) -> usize {
    let tables = tempfile::tempdir().expect("tempdir");
    let report = ingest_fixture(tables.path());
    assert_eq!(report.order, order);
    partition_files(&report.dir).len()
}

async fn all_rows(engine: &colo_tap::engine::Engine, adql: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    use futures::StreamExt;
    let result = engine
        .execute(adql, Some(1_000_000), &[])
        .await
        .expect(adql);
    let keep = result.keep.clone();
    let mut stream = result.stream;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("batch").project(&keep).expect("project");
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
    out
}
