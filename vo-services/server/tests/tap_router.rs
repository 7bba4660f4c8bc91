//! The TAP service driven through `router()` without a socket (tower `oneshot`): a real catalogue
//! ingested into a temporary folder, then sync and async queries, errors, TAP_SCHEMA and VOSI. (What
//! the engine answers and how it plans — cones, crossmatches, pruning — is tested in `colo-tap`.)
//!
//! Data: 2,000 rows of the Hipparcos-2 sample committed in `fixtures/hip2_sample.csv` (CDS I/311,
//! see `fixtures/PROVENANCE.md`).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use colo_vo_services::vosi::ServiceLimits;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Service {
    _dir: tempfile::TempDir,
    app: axum::Router,
}

async fn service() -> Service {
    service_with(ServiceLimits {
        default_maxrec: 1000,
        ..Default::default()
    })
    .await
}

async fn service_with(limits: ServiceLimits) -> Service {
    let (dir, app) = support::hip2_service(limits).await;
    Service { _dir: dir, app }
}

async fn post(app: &axum::Router, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let answer = support::post(app, path, form).await;
    (answer.status, answer.text())
}

async fn sync_csv(app: &axum::Router, query: &str) -> (StatusCode, String) {
    post(
        app,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            ("QUERY", query),
            ("RESPONSEFORMAT", "csv"),
        ],
    )
    .await
}

#[tokio::test]
async fn unknown_names_are_reported_with_suggestions() {
    let s = service().await;
    let (status, body) = sync_csv(&s.app, "SELECT TOP 1 hip FROM sample.hip3").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">unknown table sample.hip3 (did you mean sample.hip2?)</INFO>"), "{body}");
    let (status, body) = sync_csv(&s.app, "SELECT TOP 1 hpmagg FROM sample.hip2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("unknown column hpmagg (did you mean hpmag?)"),
        "{body}"
    );
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let answer = support::get(app, path).await;
    (answer.status, answer.text())
}

fn csv_rows(body: &str) -> Vec<Vec<String>> {
    body.lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[tokio::test]
async fn async_job_runs_and_abort_leaves_no_result() {
    let s = service().await;
    let (status, _) = post(
        &s.app,
        "/tap/async",
        &[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT TOP 3 hip FROM sample.hip2 ORDER BY hip"),
            ("PHASE", "RUN"),
            ("RESPONSEFORMAT", "csv"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, listing) = get(&s.app, "/tap/async").await;
    let id = listing
        .split("jobref id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a job")
        .to_string();
    let (_, doc) = get(&s.app, &format!("/tap/async/{id}?WAIT=30")).await;
    let (_, doc) = if doc.contains("COMPLETED") {
        (StatusCode::OK, doc)
    } else {
        get(&s.app, &format!("/tap/async/{id}?WAIT=30")).await
    };
    assert!(doc.contains("<uws:phase>COMPLETED</uws:phase>"), "{doc}");
    let (status, result) = get(&s.app, &format!("/tap/async/{id}/results/result")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result, "hip\r\n1\r\n60\r\n119\r\n");

    // A long query (a 4-million-row cross product) aborted while it runs.
    let (_, _) = post(
        &s.app,
        "/tap/async",
        &[
            ("LANG", "ADQL"),
            (
                "QUERY",
                "SELECT a.hip, b.hip FROM sample.hip2 AS a, sample.hip2 AS b",
            ),
            ("MAXREC", "50000000"),
            ("PHASE", "RUN"),
        ],
    )
    .await;
    let (_, listing) = get(&s.app, "/tap/async?LAST=1").await;
    let id = listing
        .split("jobref id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a job")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = post(
        &s.app,
        &format!("/tap/async/{id}/phase"),
        &[("PHASE", "ABORT")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, phase) = get(&s.app, &format!("/tap/async/{id}/phase")).await;
    assert_eq!(phase, "ABORTED");
    let (status, _) = get(&s.app, &format!("/tap/async/{id}/results/result")).await;
    assert_ne!(status, StatusCode::OK);
    let leftovers: Vec<_> = std::fs::read_dir(s._dir.path().join("jobs").join(&id))
        .expect("job dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("result"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A failed job: its error summary, its `/error`, and — for astroquery, which asks for the result
/// regardless — `results/result` answers with the error and the failure's status.
#[tokio::test]
async fn a_failed_job_says_why_wherever_it_is_asked() {
    let s = service().await;
    let (status, _) = post(
        &s.app,
        "/tap/async",
        &[
            ("QUERY", "SELECT nosuch FROM sample.hip2"),
            ("PHASE", "RUN"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, listing) = get(&s.app, "/tap/async?LAST=1").await;
    let id = listing
        .split("jobref id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a job")
        .to_string();
    let (_, doc) = get(&s.app, &format!("/tap/async/{id}?WAIT=30")).await;
    assert!(doc.contains("<uws:phase>ERROR</uws:phase>"), "{doc}");
    assert!(doc.contains("unknown column nosuch"), "{doc}");
    assert!(
        doc.contains("<uws:results>\n</uws:results>"),
        "no results listed: {doc}"
    );
    let (status, error) = get(&s.app, &format!("/tap/async/{id}/error")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        error.contains("value=\"ERROR\">unknown column nosuch"),
        "{error}"
    );
    let (status, result) = get(&s.app, &format!("/tap/async/{id}/results/result")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the query's fault");
    assert!(
        result.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">unknown column nosuch"),
        "{result}"
    );
}

#[tokio::test]
async fn maxrec_zero_and_overflow_are_signalled_in_votable() {
    let s = service().await;
    let (_, body) = post(
        &s.app,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT hip FROM sample.hip2"),
            ("MAXREC", "0"),
            ("RESPONSEFORMAT", "votable/td"),
        ],
    )
    .await;
    assert!(body.contains("<FIELD name=\"hip\""), "{body}");
    assert!(!body.contains("<TR>"));
    assert!(body.contains("<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>"));
    let (_, body) = post(
        &s.app,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT TOP 2 hip FROM sample.hip2"),
            ("MAXREC", "2"),
            ("RESPONSEFORMAT", "votable/td"),
        ],
    )
    .await;
    assert_eq!(body.matches("<TR>").count(), 2);
    assert!(!body.contains("OVERFLOW"));
}

#[tokio::test]
async fn bad_requests_are_refused_clearly() {
    let s = service().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("LANG", "SQL"), ("QUERY", "SELECT 1")],
            "unknown query language",
        ),
        (&[("LANG", "ADQL")], "QUERY: missing"),
        (
            &[
                ("LANG", "ADQL"),
                ("QUERY", "SELECT TOP 1 hip FROM sample.hip2"),
                ("RESPONSEFORMAT", "hdf5"),
            ],
            "unsupported format",
        ),
        (
            &[
                ("LANG", "ADQL"),
                ("QUERY", "SELECT TOP 1 hip FROM sample.hip2"),
                ("MAXREC", "-3"),
            ],
            "MAXREC",
        ),
        (
            &[
                ("LANG", "ADQL"),
                ("QUERY", "SELECT TOP 1 hip FROM sample.hip2"),
                ("UPLOAD", "t,ftp://x/y"),
            ],
            "unsupported URI",
        ),
        (
            &[
                ("LANG", "ADQL"),
                ("QUERY", "SELECT hip FROM sample.hip2 LIMIT 3"),
            ],
            "LIMIT is not ADQL",
        ),
        (
            &[
                ("LANG", "ADQL"),
                ("QUERY", "SELECT hip FROM sample.hip2 WHERE hip ==3"),
            ],
            "line 1, column",
        ),
    ];
    for (form, expected) in cases {
        let (status, body) = post(&s.app, "/tap/sync", form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(
            body.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">")
                && body.contains(expected),
            "{form:?}: {body}"
        );
    }
}

#[tokio::test]
async fn tap_schema_and_vosi_describe_the_tables() {
    let s = service().await;
    let (_, body) = sync_csv(&s.app, "SELECT column_name, datatype, unit, ucd, indexed FROM TAP_SCHEMA.columns WHERE table_name = 'sample.hip2' ORDER BY column_index").await;
    let rows = csv_rows(&body);
    assert_eq!(rows[0], ["hip", "long", "", "meta.id;meta.main", "0"]);
    assert_eq!(rows[1], ["ra", "double", "deg", "pos.eq.ra;meta.main", "1"]);
    assert!(!body.contains("_healpix_29"));
    let (_, caps) = get(&s.app, "/tap/capabilities").await;
    assert!(
        caps.contains("<accessURL use=\"base\">http://localhost/tap</accessURL>"),
        "{caps}"
    );
    assert!(caps.contains("features-adqlgeo") && caps.contains("<form>CONTAINS</form>"));
    let (_, caps) = get(&s.app, "/tap-server/tap/capabilities").await;
    assert!(caps.contains("http://localhost/tap-server/tap"));
    let (status, table) = get(&s.app, "/tap/tables/sample.hip2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(table.contains("<name>sample.hip2</name>") && table.contains("<unit>deg</unit>"));
    let (_, avail) = get(&s.app, "/tap/availability").await;
    assert!(avail.contains("<vosi:available>true</vosi:available>"));
}

#[tokio::test]
async fn adql_features_run_with_the_expected_answers() {
    let s = service().await;
    let cases: &[(&str, &str)] = &[
        (
            "SELECT TOP 2 hip FROM sample.hip2 ORDER BY hip OFFSET 1",
            "hip\r\n60\r\n119\r\n",
        ),
        (
            "SELECT hip FROM sample.hip2 WHERE hip < 100 UNION SELECT hip FROM sample.hip2 WHERE hip = 119 ORDER BY 1",
            "hip\r\n1\r\n60\r\n119\r\n",
        ),
        (
            "SELECT hip FROM sample.hip2 WHERE hip < 100 EXCEPT SELECT hip FROM sample.hip2 WHERE hip = 1",
            "hip\r\n60\r\n",
        ),
        (
            "WITH bright AS (SELECT hip, hpmag FROM sample.hip2 WHERE hpmag < 2) SELECT COUNT(*) AS n FROM bright",
            "",
        ),
        (
            "SELECT CAST(hip AS DOUBLE PRECISION) AS h, CAST(hip AS VARCHAR(8)) AS s FROM sample.hip2 WHERE hip = 60",
            "h,s\r\n60.0,60\r\n",
        ),
        (
            "SELECT COALESCE(NULL, hip) AS c FROM sample.hip2 WHERE hip = 60",
            "c\r\n60\r\n",
        ),
        (
            "SELECT LOWER('AbC') || UPPER('d') AS t FROM sample.hip2 WHERE hip = 1",
            "t\r\nabcD\r\n",
        ),
        (
            "SELECT hip FROM sample.hip2 WHERE 'Aaa' ILIKE 'a%' AND hip = 1",
            "hip\r\n1\r\n",
        ),
        (
            "SELECT MOD(7, 3) AS m, TRUNCATE(2.789, 1) AS t, ROUND(2.5) AS r, LOG(EXP(1.0)) AS l, LOG10(1000) AS l10 FROM sample.hip2 WHERE hip = 1",
            "m,t,r,l,l10\r\n1,2.7,3.0,1.0,3.0\r\n",
        ),
        (
            "SELECT COORD1(POINT(10, 20)) AS c1, COORD2(CENTROID(CIRCLE(10, 20, 1))) AS c2 FROM sample.hip2 WHERE hip = 1",
            "c1,c2\r\n10.0,20.0\r\n",
        ),
        (
            "SELECT INTERSECTS(CIRCLE(0, 0, 1), CIRCLE(1.5, 0, 1)) AS i, CONTAINS(POINT(0.5, 0.5), BOX(0, 0, 2, 2)) AS c FROM sample.hip2 WHERE hip = 1",
            "i,c\r\n1,1\r\n",
        ),
        (
            "SELECT CONTAINS(POINT(1, 1), POLYGON(0, 0, 3, 0, 3, 3, 0, 3)) AS inside, CONTAINS(POINT(4, 1), POLYGON(POINT(0, 0), POINT(3, 0), POINT(3, 3))) AS outside FROM sample.hip2 WHERE hip = 1",
            "inside,outside\r\n1,0\r\n",
        ),
        (
            "SELECT ivo_healpix_index(0, 0, 0) AS e, ivo_healpix_index(0, 45, 60) AS n FROM sample.hip2 WHERE hip = 1",
            "e,n\r\n4,0\r\n",
        ),
        (
            "SELECT hip FROM sample.hip2 AS h WHERE EXISTS (SELECT 1 FROM sample.hip2 AS g WHERE g.hip = h.hip AND g.hip = 60)",
            "hip\r\n60\r\n",
        ),
        (
            "SELECT hip FROM sample.hip2 WHERE hip IN (SELECT hip FROM sample.hip2 WHERE hip BETWEEN 50 AND 70)",
            "hip\r\n60\r\n",
        ),
    ];
    for (query, expected) in cases {
        let (status, body) = sync_csv(&s.app, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        if !expected.is_empty() {
            assert_eq!(&body, expected, "{query}");
        }
    }
    let (_, body) = post(
        &s.app,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            (
                "QUERY",
                "SELECT POINT(10, 20) AS p, CIRCLE(1, 2, 3) AS c FROM sample.hip2 WHERE hip = 1",
            ),
            ("RESPONSEFORMAT", "votable/td"),
        ],
    )
    .await;
    assert!(
        body.contains("<FIELD name=\"p\" datatype=\"double\" arraysize=\"2\" xtype=\"point\"/>"),
        "{body}"
    );
    assert!(
        body.contains("<TD>10.0 20.0</TD><TD>1.0 2.0 3.0</TD>"),
        "{body}"
    );
}

#[tokio::test]
async fn fits_results_read_back_with_the_same_values() {
    let s = service().await;
    let query = "SELECT TOP 50 hip, ra, hpmag FROM sample.hip2 ORDER BY hip";
    let request = Request::post("/tap/sync")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("LANG", "ADQL"),
                    ("QUERY", query),
                    ("RESPONSEFORMAT", "fits"),
                ])
                .finish(),
        ))
        .expect("request");
    let response = s.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.headers()["content-type"], "application/fits");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(bytes.len() % 2880, 0);
    let table = colo_astro::fits::bintable::BinTable::first_in("result.fits", &bytes)
        .expect("a FITS table");
    let (_, csv) = sync_csv(&s.app, query).await;
    let rows = csv_rows(&csv);
    assert_eq!(table.rows, rows.len());
    let hip = &table.columns[0];
    for (i, row) in rows.iter().enumerate() {
        let value = hip.int(table.cell(i, hip)).expect("an integer column");
        assert_eq!(value.to_string(), row[0]);
    }
}

#[tokio::test]
async fn oversized_uploads_are_refused() {
    let s = service_with(ServiceLimits {
        upload_limit_bytes: 200,
        ..Default::default()
    })
    .await;
    let votable = format!(
        "<VOTABLE><RESOURCE><TABLE><FIELD name=\"a\" datatype=\"int\"/><DATA><TABLEDATA>{}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>",
        "<TR><TD>1</TD></TR>".repeat(50)
    );
    let boundary = "XyZ";
    let mut body = String::new();
    for (name, value) in [
        ("LANG", "ADQL"),
        ("QUERY", "SELECT * FROM TAP_UPLOAD.t"),
        ("UPLOAD", "t,param:tbl"),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"tbl\"; filename=\"t.xml\"\r\n\r\n{votable}\r\n--{boundary}--\r\n"));
    let request = Request::post("/tap/sync")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request");
    let response = s.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
    .into_owned();
    assert!(
        text.contains("upload t: larger than the upload limit of 200 bytes"),
        "{text}"
    );
}

#[tokio::test]
async fn a_join_over_the_query_memory_is_a_votable_error_naming_it() {
    let s = service_with(ServiceLimits {
        query_memory_bytes: 4096,
        ..Default::default()
    })
    .await;
    let (status, body) = post(
        &s.app,
        "/tap/sync",
        &[
            ("LANG", "ADQL"),
            (
                "QUERY",
                "SELECT COUNT(*) FROM sample.hip2 AS a JOIN sample.hip2 AS b ON a.hip = b.hip",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("QUERY_STATUS") && body.contains("ERROR"),
        "{body}"
    );
    assert!(
        body.contains("more memory than one query may use"),
        "{body}"
    );
}
