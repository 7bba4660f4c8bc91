//! Requests through the VO services' router, in memory: the DALI parameters of TAP, SIA, SODA
//! and DataLink as their handlers read them ([`vo_requests`]), and a UWS job's life — created,
//! changed, started, listed, deleted — from fuzzed parameters ([`uws`]).
//!
//! The service is the one `colo serve` runs, over the Hipparcos sample and the FITS seeds
//! published as images ([`images`]), with small limits so a
//! fuzzed query stays short: MAXREC at most 1,000, 2 s per sync query, 64 MiB per query.

use axum::body::Body;
use axum::http::{Method, Request, header};
use bytes::Bytes;
use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::MemoryConnector;
use colo_vo_services::obscore::{CollectionDefaults, publish, walk};
use colo_vo_services::volumes::Volumes;
use colo_vo_services::vosi::ServiceLimits;
use http_body_util::BodyExt;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

use crate::{runtime, split_first};

/// The router, built once (its folder is left behind in the temporary directory on exit).
fn services() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(|| runtime().block_on(build()))
}

async fn build() -> axum::Router {
    use colo_tap::ingest::{IngestRequest, InputFormat, ingest};
    let dir = tempfile::Builder::new()
        .prefix("colo-fuzz-")
        .tempdir()
        .expect("a temporary folder")
        .keep();
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vo-services/tap/tests/fixtures/hip2_sample.csv"
    ))
    .expect("the Hipparcos sample");
    let request = IngestRequest {
        source_name: "hip2_sample.csv".into(),
        bytes: csv.into(),
        format: InputFormat::Csv,
        schema: "sample".into(),
        table: "hip2".into(),
        position: None,
        description: Some("Hipparcos sample".into()),
    };
    ingest(&dir.join("tables"), &request, &mut |_, _| {}).expect("ingest");
    let volumes = images(&dir.join("tables")).await;
    let config = colo_vo_services::ServiceConfig {
        tables_dir: dir.join("tables"),
        table_volumes: Vec::new(),
        jobs_dir: dir.join("jobs"),
        limits: ServiceLimits {
            default_maxrec: 100,
            hard_maxrec: 1000,
            upload_limit_bytes: 1 << 20,
            execution_duration_secs: 2,
            retention_secs: 60,
            query_memory_bytes: 64 << 20,
            sync_query_secs: 2,
            async_jobs_running: 2,
            async_jobs_per_caller: 2,
            async_jobs_unfinished_per_caller: 8,
        },
        urls: Default::default(),
    };
    let state = colo_vo_services::AppState::open(&config, volumes)
        .await
        .expect("the services");
    colo_vo_services::router(state)
}

/// The FITS seeds (`fuzz/seeds/fits/`) as the images of a memory volume `imgs` behind the real
/// read-through cache, published to ObsCore: SIA finds them, DataLink links them and SODA cuts
/// them. Their identifiers are `ivo://colo.local/fuzz?imgs/field/<seed name>.fits`.
async fn images(tables: &std::path::Path) -> Volumes {
    let connector = Arc::new(MemoryConnector::new("imgs"));
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/fits");
    for entry in std::fs::read_dir(seeds).expect("the FITS seeds").flatten() {
        let bytes = std::fs::read(entry.path()).expect("a FITS seed");
        let suffix = if bytes.starts_with(&[0x1f, 0x8b]) {
            "fits.gz"
        } else {
            "fits"
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        connector.put(&format!("field/{name}.{suffix}"), bytes);
    }
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let reader = ReadThrough::new(connector, cache, 64 * 1024, 1 << 20);
    let volumes = Volumes::new([("imgs".to_string(), reader)]);
    walk::ingest_images(
        &volumes,
        "imgs",
        "field",
        &CollectionDefaults::new("fuzz"),
        tables,
        &mut |_, _| {},
    )
    .await
    .expect("the FITS seeds ingested");
    publish::publish(tables).expect("ObsCore published");
    volumes
}

/// Status, `Location` and the whole body of one request.
async fn send(
    router: &axum::Router,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Bytes,
) -> Option<Answer> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .ok()?;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status().as_u16();
    // A body that fails mid-stream is an answer too (the client sees a cut response).
    let _ = response.into_body().collect().await;
    Some(Answer { status, location })
}

struct Answer {
    status: u16,
    location: Option<String>,
}

const FORM: &str = "application/x-www-form-urlencoded";
const MULTIPART: &str = "multipart/form-data; boundary=fuzz";

/// The parameters of `data` as a well-formed query string (the router's own URI parsing is
/// not ours to fuzz; what our handlers make of the values is).
fn query_string(data: &[u8]) -> String {
    query_string_without(data, "")
}

/// [`query_string`] without the parameter `skipped` (any case).
fn query_string_without(data: &[u8], skipped: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(data) {
        if !name.eq_ignore_ascii_case(skipped) {
            out.append_pair(&name, &value);
        }
    }
    out.finish()
}

/// First byte: which endpoint and how (GET with a query string, POST of a form or a multipart
/// body); the rest: the parameters or the body.
pub fn vo_requests(data: &[u8]) {
    let router = services();
    let (selector, rest) = split_first(data);
    let body = Bytes::copy_from_slice(rest);
    let get = |path: &str| format!("{path}?{}", query_string(rest));
    let (method, uri, content_type) = match selector % 12 {
        0 => (Method::GET, get("/tap/sync"), FORM),
        1 => (Method::POST, "/tap/sync".to_string(), FORM),
        2 => (Method::POST, "/tap/sync".to_string(), MULTIPART),
        3 => (Method::GET, get("/sia/query"), FORM),
        4 => (Method::POST, "/sia/query".to_string(), FORM),
        5 => (Method::GET, get("/datalink/links"), FORM),
        6 => (Method::POST, "/datalink/links".to_string(), FORM),
        7 => (Method::GET, get("/datalink/download"), FORM),
        8 => (Method::GET, get("/datalink/preview"), FORM),
        9 => (Method::GET, get("/soda/sync"), FORM),
        10 => (Method::POST, "/soda/sync".to_string(), FORM),
        _ => {
            let name: String =
                url::form_urlencoded::byte_serialize(rest.get(..64).unwrap_or(rest)).collect();
            (Method::GET, format!("/tap/tables/{name}"), FORM)
        }
    };
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        body
    };
    runtime().block_on(send(router, method, &uri, content_type, body));
}

/// Lines: the first is the form that creates a job (TAP or, when the first byte is odd, SODA);
/// each further line is one step on that job, chosen by its first character, with the rest of the
/// line as the step's form. The job is deleted at the end (the store stays small over hours).
pub fn uws(data: &[u8]) {
    let router = services();
    let (selector, rest) = split_first(data);
    let base = if selector % 2 == 0 {
        "/tap/async"
    } else {
        "/soda/async"
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let create = lines.next().unwrap_or_default();
    runtime().block_on(async {
        let Some(created) = send(
            router,
            Method::POST,
            base,
            FORM,
            Bytes::copy_from_slice(create),
        )
        .await
        else {
            return;
        };
        let job = match (created.status, created.location) {
            (303, Some(location)) => match location.rsplit_once('/') {
                Some((_, id)) => format!("{base}/{id}"),
                None => return,
            },
            _ => return,
        };
        for line in lines.take(16) {
            let (step, form) = split_first(line);
            let form = Bytes::copy_from_slice(form);
            let query = query_string(&form);
            let _ = match step {
                b'p' => send(router, Method::POST, &format!("{job}/phase"), FORM, form).await,
                b'd' => {
                    send(
                        router,
                        Method::POST,
                        &format!("{job}/destruction"),
                        FORM,
                        form,
                    )
                    .await
                }
                b'e' => {
                    let uri = format!("{job}/executionduration");
                    send(router, Method::POST, &uri, FORM, form).await
                }
                b'm' => {
                    send(
                        router,
                        Method::POST,
                        &format!("{job}/parameters"),
                        FORM,
                        form,
                    )
                    .await
                }
                b'j' => send(router, Method::POST, &job, FORM, form).await,
                b'l' => {
                    send(
                        router,
                        Method::GET,
                        &format!("{base}?{query}"),
                        FORM,
                        Bytes::new(),
                    )
                    .await
                }
                b'w' => {
                    // WAIT blocks by design (up to its cap): a fuzzer must not sit in it.
                    let uri = format!("{job}?{}", query_string_without(&form, "WAIT"));
                    send(router, Method::GET, &uri, FORM, Bytes::new()).await
                }
                b'r' => {
                    let uri = format!("{job}/results/result");
                    send(router, Method::GET, &uri, FORM, Bytes::new()).await
                }
                _ => {
                    let part = ["phase", "error", "quote", "owner", "parameters", "results"]
                        [usize::from(step) % 6];
                    let uri = format!("{job}/{part}");
                    send(router, Method::GET, &uri, FORM, Bytes::new()).await
                }
            };
        }
        let _ = send(router, Method::DELETE, &job, FORM, Bytes::new()).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness reaches the handlers (a wrong path would fuzz only the 404 page).
    #[test]
    fn seeds_reach_the_handlers_and_jobs_are_created_then_deleted() {
        let router = services();
        runtime().block_on(async {
            let query =
                "REQUEST=doQuery&LANG=ADQL&QUERY=SELECT%20TOP%202%20hip%20FROM%20sample.hip2";
            let uri = format!("/tap/sync?{query}");
            let answer = send(router, Method::GET, &uri, FORM, Bytes::new()).await;
            assert_eq!(answer.map(|a| a.status), Some(200));
            let sia = "/sia/query?POS=CIRCLE%20250.42%2036.46%201";
            let sia = send(router, Method::GET, sia, FORM, Bytes::new()).await;
            assert_eq!(sia.map(|a| a.status), Some(200));
            let images = router
                .clone()
                .oneshot(Request::get("/tap/sync?REQUEST=doQuery&LANG=ADQL&FORMAT=csv&QUERY=SELECT%20COUNT(*)%20FROM%20ivoa.obscore").body(Body::empty()).expect("a request"))
                .await
                .expect("an answer");
            let body = images.into_body().collect().await.expect("a body").to_bytes();
            let count: usize = String::from_utf8_lossy(&body).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0);
            assert!(count >= 6, "the FITS seeds are published as images: {count}");
            let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/fits");
            let mut names: Vec<String> = std::fs::read_dir(seeds)
                .expect("the FITS seeds")
                .flatten()
                .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b.starts_with(b"SIMPLE")))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let did = format!("ivo%3A%2F%2Fcolo.local%2Ffuzz%3Fimgs%2Ffield%2F{}.fits", names[0]);
            let links = format!("/datalink/links?ID={did}");
            let links = send(router, Method::GET, &links, FORM, Bytes::new()).await;
            assert_eq!(links.map(|a| a.status), Some(200));
            let cut = format!("/soda/sync?ID={did}&CIRCLE=250.42%2036.46%200.003");
            let cut = send(router, Method::GET, &cut, FORM, Bytes::new()).await;
            assert_eq!(cut.map(|a| a.status), Some(200));
            let created = send(router, Method::POST, "/tap/async", FORM, Bytes::from(query))
                .await
                .expect("an answer");
            assert_eq!(created.status, 303);
            let id = created.location.expect("a job URL");
            let id = id.rsplit('/').next().expect("an id").to_string();
            let job = format!("/tap/async/{id}");
            let deleted = send(router, Method::DELETE, &job, FORM, Bytes::new()).await;
            assert_eq!(deleted.map(|a| a.status), Some(303));
            let gone = send(router, Method::GET, &job, FORM, Bytes::new()).await;
            assert_eq!(gone.map(|a| a.status), Some(404));
        });
    }
}
