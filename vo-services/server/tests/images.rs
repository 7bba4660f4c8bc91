//! SIA, DataLink and SODA through `router()` without a socket, over a FITS file built here and held
//! by a memory volume behind the real read-through cache: the ObsCore record published from its
//! header, the DataLink document and its downloads, SODA cutouts whose pixels and reference pixel
//! are checked against the source, and every fault each protocol spells its own way.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use colo_astro::fits::bintable::primary_header;
use colo_astro::fits::header::{Parsed, parse};
use colo_astro::fits::{Header, Value, padded_len};
use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::MemoryConnector;
use colo_vo_services::obscore::{CollectionDefaults, publish, walk};
use colo_vo_services::volumes::Volumes;
use colo_vo_services::{AppState, ServiceConfig, router};

/// Pixel value at 0-based (x, y): tells every pixel of a cutout where it came from.
fn pixel(x: u64, y: u64) -> f32 {
    (x + 100 * y) as f32
}

const NX: u64 = 40;
const NY: u64 = 30;

/// A 40×30 float image, RA---TAN/DEC--TAN around (150, 2) at 3.6″ per pixel, plus an `ERR`
/// extension of the same size (an `#auxiliary` link).
fn image_file() -> Vec<u8> {
    let mut h = primary_header();
    h.set("BITPIX", Value::Int(-32), "");
    h.set("NAXIS", Value::Int(2), "");
    h.set("NAXIS1", Value::Int(NX as i64), "");
    h.set("NAXIS2", Value::Int(NY as i64), "");
    for (key, value) in [
        ("CTYPE1", Value::Str("RA---TAN".into())),
        ("CTYPE2", Value::Str("DEC--TAN".into())),
        ("CRPIX1", Value::Float(20.5)),
        ("CRPIX2", Value::Float(15.5)),
        ("CRVAL1", Value::Float(150.0)),
        ("CRVAL2", Value::Float(2.0)),
        ("CDELT1", Value::Float(-0.001)),
        ("CDELT2", Value::Float(0.001)),
        ("CUNIT1", Value::Str("deg".into())),
        ("CUNIT2", Value::Str("deg".into())),
        ("OBJECT", Value::Str("test field".into())),
        ("TELESCOP", Value::Str("colo test".into())),
    ] {
        h.set(key, value, "");
    }
    let mut file = h.to_bytes();
    let data = |out: &mut Vec<u8>, scale: f32| {
        for y in 0..NY {
            for x in 0..NX {
                out.extend((pixel(x, y) * scale).to_be_bytes());
            }
        }
        out.resize(padded_len(out.len() as u64) as usize, 0);
    };
    data(&mut file, 1.0);
    let mut ext = Header::default();
    ext.set("XTENSION", Value::Str("IMAGE".into()), "");
    ext.set("BITPIX", Value::Int(-32), "");
    ext.set("NAXIS", Value::Int(2), "");
    ext.set("NAXIS1", Value::Int(NX as i64), "");
    ext.set("NAXIS2", Value::Int(NY as i64), "");
    ext.set("PCOUNT", Value::Int(0), "");
    ext.set("GCOUNT", Value::Int(1), "");
    ext.set("EXTNAME", Value::Str("ERR".into()), "");
    file.extend(ext.to_bytes());
    data(&mut file, 0.5);
    file
}

struct Service {
    _dir: tempfile::TempDir,
    app: axum::Router,
    did: String,
    file: Vec<u8>,
}

async fn service() -> Service {
    let file = image_file();
    let connector = Arc::new(MemoryConnector::new("imgs"));
    connector.put("field/a.fits", file.clone());
    connector.put("field/notes.txt", "not an image");
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let reader = ReadThrough::new(connector, cache, 64 * 1024, 1 << 20);
    let volumes = Volumes::new([("imgs".to_string(), reader)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = dir.path().join("tables");
    let report = walk::ingest_images(
        &volumes,
        "imgs",
        "field",
        &CollectionDefaults::new("tests"),
        &tables,
        &mut |_, _| {},
    )
    .await
    .expect("ingest");
    assert_eq!(report.added.len(), 1, "{report:?}");
    publish::publish(&tables).expect("publish");
    let config = ServiceConfig {
        tables_dir: tables,
        table_volumes: Vec::new(),
        jobs_dir: dir.path().join("jobs"),
        limits: Default::default(),
        urls: Default::default(),
    };
    let state = AppState::open(&config, volumes).await.expect("open");
    Service {
        _dir: dir,
        app: router(state),
        did: "ivo://colo.local/tests?imgs/field/a.fits".into(),
        file,
    }
}

/// (status, content type, body) of a GET.
async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, Vec<u8>) {
    let answer = support::get(app, path).await;
    (answer.status, answer.content_type, answer.body)
}

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test]
async fn sia_finds_the_image_by_position_and_refuses_bad_values() {
    let s = service().await;
    let (status, kind, body) = get(&s.app, "/sia/query?POS=CIRCLE%20150.0%202.0%200.1").await;
    assert_eq!(status, StatusCode::OK, "{}", text(&body));
    assert_eq!(kind, "application/x-votable+xml");
    let body = text(&body);
    assert!(body.contains(&s.did), "{body}");
    assert!(
        body.contains("test field") && body.contains("colo test"),
        "{body}"
    );
    let (_, _, far) = get(&s.app, "/sia/query?POS=CIRCLE%2010.0%20-40.0%200.1").await;
    assert!(!text(&far).contains(&s.did));
    let (status, _, bad) = get(&s.app, "/sia/query?POL=Z").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text(&bad).contains("value=\"ERROR\">UsageFault: POL"),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn datalink_lists_this_preview_cutout_and_auxiliary_and_faults_unknown_ids() {
    let s = service().await;
    let path = format!("/datalink/links?ID={}&ID=ivo%3A%2F%2Fnope", enc(&s.did));
    let (status, kind, body) = get(&s.app, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, "application/x-votable+xml;content=datalink");
    let body = text(&body);
    for semantics in ["#this", "#preview", "#cutout", "#auxiliary"] {
        assert!(
            body.contains(&format!("<TD>{semantics}</TD>")),
            "{semantics}: {body}"
        );
    }
    assert!(body.contains("NotFoundFault: ivo://nope"), "{body}");
    assert!(
        body.contains("ref=\"dl_id\""),
        "the SODA descriptor binds ID: {body}"
    );
    assert!(body.contains("ivo://ivoa.net/std/SODA#sync-1.0"), "{body}");
    assert!(body.contains("Extension 1 (ERR)"), "{body}");

    let (status, _, whole) = get(&s.app, &format!("/datalink/download?ID={}", enc(&s.did))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(whole, s.file, "#this is the file, byte for byte");

    let (status, kind, err) = get(
        &s.app,
        &format!("/datalink/download?ID={}&HDU=1", enc(&s.did)),
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, "application/fits")
    );
    assert_eq!(err.len() % 2880, 0);
    let Ok(Parsed::Complete(header, header_bytes)) = parse(&err) else {
        panic!("a FITS header")
    };
    assert_eq!(header.cards[0].key, "SIMPLE");
    assert_eq!(header.text("EXTNAME").as_deref(), Some("ERR"));
    let first = f32::from_be_bytes(
        err[header_bytes as usize + 4..header_bytes as usize + 8]
            .try_into()
            .expect("4"),
    );
    assert_eq!(
        first,
        pixel(1, 0) * 0.5,
        "the extension's data follows its header"
    );

    let (status, kind, png) = get(&s.app, &format!("/datalink/preview?ID={}", enc(&s.did))).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/png"));
    assert!(png.starts_with(b"\x89PNG"));

    let (status, kind, missing) = get(&s.app, "/datalink/download?ID=ivo%3A%2F%2Fnope").await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::NOT_FOUND, "text/plain")
    );
    assert!(
        text(&missing).starts_with("NotFoundFault: "),
        "{}",
        text(&missing)
    );
    let (status, _, bad) = get(
        &s.app,
        &format!("/datalink/download?ID={}&HDU=7", enc(&s.did)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&bad).starts_with("UsageFault: HDU"), "{}", text(&bad));
}

#[tokio::test]
async fn a_soda_cutout_keeps_every_pixel_and_its_world_coordinates() {
    let s = service().await;
    // 0.004° around the reference point: about 4 pixels each way.
    let path = format!("/soda/sync?ID={}&CIRCLE=150.0%202.0%200.004", enc(&s.did));
    let (status, kind, cut) = get(&s.app, &path).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, "application/fits")
    );
    assert_eq!(cut.len() % 2880, 0);
    let Ok(Parsed::Complete(header, header_bytes)) = parse(&cut) else {
        panic!("a FITS header")
    };
    let (nx, ny) = (
        header.int("NAXIS1").expect("n1") as u64,
        header.int("NAXIS2").expect("n2") as u64,
    );
    assert!(
        (7..=11).contains(&nx) && (7..=11).contains(&ny),
        "{nx}×{ny}"
    );
    // The reference pixel moved by exactly the cut's offset: that offset locates every pixel.
    let x0 = 20.5 - header.float("CRPIX1").expect("crpix1");
    let y0 = 15.5 - header.float("CRPIX2").expect("crpix2");
    assert_eq!((x0.fract(), y0.fract()), (0.0, 0.0));
    assert_eq!(header.float("CRVAL1"), Some(150.0));
    for y in 0..ny {
        for x in 0..nx {
            let at = header_bytes as usize + 4 * (y * nx + x) as usize;
            let value = f32::from_be_bytes(cut[at..at + 4].try_into().expect("4 bytes"));
            assert_eq!(
                value,
                pixel(x + x0 as u64, y + y0 as u64),
                "pixel ({x}, {y})"
            );
        }
    }
    assert!(
        header
            .cards
            .iter()
            .any(|c| c.key == "HISTORY" && c.raw.contains("colo SODA cutout"))
    );
}

/// Every URL handed out follows the request: the `Host` a client used, or a trusted reverse
/// proxy's `X-Forwarded-*` (here the request comes from inside the process, which is trusted);
/// ObsCore's stored access URLs are paths made absolute per response.
#[tokio::test]
async fn urls_are_rendered_for_each_request() {
    let s = service().await;
    let query =
        "/tap/sync?LANG=ADQL&RESPONSEFORMAT=csv&QUERY=SELECT%20access_url%20FROM%20ivoa.obscore";
    let direct = support::get(&s.app, query).await;
    assert!(
        direct
            .text()
            .contains("http://localhost/datalink/links?ID=ivo"),
        "{}",
        direct.text()
    );
    let proxied = support::send(
        &s.app,
        Request::get(query)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "archive.example.org")
            .header("x-forwarded-prefix", "/colo"),
        Body::empty(),
    )
    .await;
    let root = "https://archive.example.org/colo";
    assert!(
        proxied
            .text()
            .contains(&format!("{root}/datalink/links?ID=ivo")),
        "{}",
        proxied.text()
    );
    let links = support::send(
        &s.app,
        Request::get(format!("/datalink/links?ID={}", enc(&s.did)))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "archive.example.org")
            .header("x-forwarded-prefix", "/colo"),
        Body::empty(),
    )
    .await;
    let links = links.text();
    assert!(
        links.contains(&format!("{root}/datalink/download?ID=")),
        "{links}"
    );
    assert!(
        links.contains(&format!("value=\"{root}/soda/sync\"")),
        "{links}"
    );
    assert!(!links.contains("localhost"), "{links}");
}

#[tokio::test]
async fn soda_faults_are_text_with_the_standard_prefixes() {
    let s = service().await;
    let id = enc(&s.did);
    for (query, status, prefix) in [
        (
            format!("ID={id}&CIRCLE=1%202"),
            StatusCode::BAD_REQUEST,
            "UsageError: CIRCLE",
        ),
        (
            format!("ID={id}&BAND=2%201"),
            StatusCode::BAD_REQUEST,
            "UsageError: BAND",
        ),
        (
            format!("ID={id}&CIRCLE=150%202%200.01&CIRCLE=150%202%200.02"),
            StatusCode::BAD_REQUEST,
            "MultiValuedParamNotSupported: ",
        ),
        (
            "ID=ivo%3A%2F%2Fnope&CIRCLE=1%202%200.1".to_string(),
            StatusCode::NOT_FOUND,
            "UsageError: ",
        ),
        (String::new(), StatusCode::BAD_REQUEST, "UsageError: ID"),
        (
            format!("ID={id}&RESPONSEFORMAT=text/csv"),
            StatusCode::BAD_REQUEST,
            "UsageError: RESPONSEFORMAT",
        ),
    ] {
        let (got, kind, body) = get(&s.app, &format!("/soda/sync?{query}")).await;
        assert_eq!(got, status, "{query}: {}", text(&body));
        assert_eq!(kind, "text/plain", "{query}");
        assert!(text(&body).starts_with(prefix), "{query}: {}", text(&body));
    }
    // A region that misses the image: no content.
    let (status, _, body) = get(
        &s.app,
        &format!("/soda/sync?ID={id}&CIRCLE=10%20-40%200.01"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
}
