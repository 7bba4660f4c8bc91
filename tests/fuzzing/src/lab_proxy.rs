//! A request through the lab proxy's forwarding (`colo_labs::http::forward`) to a lab server that
//! answers with what it received (an axum app on a Unix socket, as JupyterLab listens): the
//! request line and headers are the fuzzer's. Beyond "no panic", what the lab receives is
//! checked, since the proxy stands between users' credentials and a program the user controls:
//! never the caller's `Authorization` nor their `colo_session` cookie, always the lab's own
//! secret header (a client sending one of its own cannot replace it), and the path as sent.
//!
//! The bytes: the first line is `METHOD PATH`, each further line `name: value`.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use colo_labs::http::{Endpoint, Upstream};
use http_body_util::BodyExt;
use std::sync::OnceLock;

use crate::runtime;

const SECRET_HEADER: &str = "x-colo-lab-secret";
const SECRET: &str = "the-labs-own-secret";

/// The lab: answers every request with its method, path and headers, as JSON.
fn lab() -> &'static Upstream {
    static LAB: OnceLock<(tempfile::TempDir, Upstream)> = OnceLock::new();
    &LAB.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a folder for the socket");
        let socket = dir.path().join("lab.sock");
        let listener = runtime()
            .block_on(async { tokio::net::UnixListener::bind(&socket).expect("the lab's socket") });
        let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            serde_json::json!({ "path": path, "headers": headers }).to_string()
        });
        runtime().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let upstream = Upstream {
            endpoint: Endpoint::Unix(socket),
            base_path: "/labs/lab-fuzz/".into(),
            headers: vec![(
                HeaderName::from_static(SECRET_HEADER),
                HeaderValue::from_static(SECRET),
            )],
        };
        (dir, upstream)
    })
    .1
}

fn request(data: &[u8]) -> Option<Request<Body>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split('\n');
    let (method, path) = lines.next()?.trim_end_matches('\r').split_once(' ')?;
    let mut request = Request::builder().method(method).uri(path);
    for line in lines
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        let (name, value) = line.split_once(':')?;
        request = request.header(name.trim(), value.trim());
    }
    let request = request.body(Body::empty()).ok()?;
    // What colo's server routes to the proxy: an origin-form target under `/labs/` (hyper's
    // server refuses other forms; a fuzzed "://pl?json" found that the harness made them).
    request
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().starts_with("/labs/"))
        .then_some(request)
}

pub fn lab_proxy(data: &[u8]) {
    let Some(request) = request(data) else {
        return;
    };
    let sent_path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let upstream = lab().clone();
    runtime().block_on(async {
        let response = colo_labs::http::forward(request, upstream).await;
        if !response.status().is_success() {
            return; // refused by the proxy or the lab: nothing reached it to check
        }
        let Ok(body) = response.into_body().collect().await else {
            return;
        };
        let Ok(seen) = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) else {
            return; // an answer the client's method made bodiless (HEAD)
        };
        assert_eq!(
            seen["path"],
            sent_path.as_str(),
            "the path reaches the lab as sent"
        );
        let headers = seen["headers"].as_array().cloned().unwrap_or_default();
        let values = |name: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .filter_map(|h| h[1].as_str().map(str::to_string))
                .collect()
        };
        assert!(
            values("authorization").is_empty(),
            "the caller's token reached the lab"
        );
        for cookie in values("cookie") {
            assert!(
                !cookie
                    .split(';')
                    .any(|c| c.trim().starts_with("colo_session=")),
                "the caller's session cookie reached the lab: {cookie}"
            );
        }
        assert_eq!(
            values(SECRET_HEADER),
            [SECRET],
            "the lab's own secret, once"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_with_colo_and_the_secret_is_the_labs() {
        lab_proxy(
            b"GET /labs/lab-fuzz/api/contents?x=1\nAuthorization: Bearer colo_secret\n\
              Cookie: a=1; colo_session=colo_s; b=2\nX-Colo-Lab-Secret: forged\n",
        );
        lab_proxy(b"POST /labs/lab-fuzz/api/kernels\nConnection: upgrade\nUpgrade: websocket\n");
    }
}
