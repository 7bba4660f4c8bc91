//! HTTP to a lab's own server — on a Unix socket in the lab's private folder (only the lab's
//! account and colo can connect: other users' labs share this machine's network, not that
//! folder) or on a port of 127.0.0.1: the readiness probe (a lab with a web interface is
//! RUNNING only once it answers) and the reverse proxy that puts it at `/labs/<id>/`.
//!
//! The proxy forwards one request over one fresh connection (a lab's server is on this machine:
//! a connect costs microseconds), HTTP and WebSocket alike: for an upgrade it answers the
//! client's `101` with the lab's and then copies bytes both ways until either side closes, so
//! JupyterLab's kernel channels work unchanged. What the caller proved themselves with (colo's
//! `Authorization` header, the `colo_session` cookie) never reaches the lab — a lab shared with a
//! colleague must not see their token; the lab's own private token is added instead, and users
//! never see it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Where a lab's server listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Endpoint {
    /// A Unix socket (the better choice: reachable by the lab's account and colo only).
    Unix(std::path::PathBuf),
    /// A port of 127.0.0.1 (for a Pod's server: the port in the Pod, until its address is known).
    Tcp(u16),
    /// An address on the cluster's network: a Pod's IP and port.
    Addr(std::net::SocketAddr),
}

impl Endpoint {
    fn host(&self) -> String {
        match self {
            Endpoint::Unix(_) => "localhost".into(),
            Endpoint::Tcp(port) => format!("127.0.0.1:{port}"),
            Endpoint::Addr(addr) => addr.to_string(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "socket {}", path.display()),
            Endpoint::Tcp(port) => write!(f, "port {port}"),
            Endpoint::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// The lab's server: where it listens, the path it serves under (`/labs/<id>/`) and the headers
/// that authenticate colo to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub endpoint: Endpoint,
    pub base_path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Headers that concern one hop only, never forwarded (RFC 9110 §7.6.1), except the upgrade
/// pair, which the WebSocket handshake needs end to end.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The cookie colo's own session lives in (kept from the lab).
const SESSION_COOKIE: &str = "colo_session";

fn plain(status: StatusCode, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The request's headers as the lab gets them.
fn lab_headers(from: &HeaderMap, up: &Upstream) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || name == header::AUTHORIZATION {
            continue;
        }
        if name == header::COOKIE {
            let kept: Vec<&str> = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.starts_with(&format!("{SESSION_COOKIE}=")))
                .collect();
            if let Ok(v) = HeaderValue::from_str(&kept.join("; "))
                && !kept.is_empty()
            {
                out.append(header::COOKIE, v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    for (name, value) in &up.headers {
        out.insert(name.clone(), value.clone());
    }
    // The Host the browser used stays: the lab's server compares a WebSocket's Origin with it.
    if !out.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(&up.endpoint.host())
    {
        out.insert(header::HOST, host);
    }
    out
}

type Connection = (
    hyper::client::conn::http1::SendRequest<Body>,
    tokio::task::JoinHandle<()>,
);

const CONNECT_LIMIT: Duration = Duration::from_secs(5);

fn late(_: tokio::time::error::Elapsed) -> String {
    "the lab's server did not accept a connection within 5 s".to_string()
}

fn absent(e: std::io::Error) -> String {
    format!("the lab's server is not listening ({e})")
}

async fn tcp(addr: std::net::SocketAddr) -> Result<Connection, String> {
    let stream = tokio::time::timeout(CONNECT_LIMIT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(late)?
        .map_err(absent)?;
    let _ = stream.set_nodelay(true);
    handshake(stream).await
}

async fn connect(endpoint: &Endpoint) -> Result<Connection, String> {
    let limit = CONNECT_LIMIT;
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = tokio::time::timeout(limit, tokio::net::UnixStream::connect(path))
                .await
                .map_err(late)?
                .map_err(absent)?;
            handshake(stream).await
        }
        Endpoint::Tcp(port) => tcp(std::net::SocketAddr::from(([127, 0, 0, 1], *port))).await,
        Endpoint::Addr(addr) => tcp(*addr).await,
    }
}

/// HTTP/1 over `stream`, its connection driven (upgrades included) by a task of its own.
async fn handshake<S>(stream: S) -> Result<Connection, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("talking to the lab's server: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok((sender, driver))
}

/// Sends `req` (its path and query as they are: the lab serves under `/labs/<id>/`) to the lab's
/// server and returns its answer; upgrades become a byte pipe between client and lab.
pub async fn forward(mut req: Request<Body>, up: Upstream) -> Response<Body> {
    let client_upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (parts, body) = req.into_parts();
    let mut upstream = Request::builder()
        .method(parts.method)
        .uri(path)
        .body(body)
        .unwrap_or_default();
    *upstream.headers_mut() = lab_headers(&parts.headers, &up);
    let (mut sender, _driver) = match connect(&up.endpoint).await {
        Ok(c) => c,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("lab: {e}\n")),
    };
    let mut resp = match sender.send_request(upstream).await {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("lab: the request failed: {e}\n"),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let lab_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(client), Ok(lab)) = tokio::join!(client_upgrade, lab_upgrade) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(lab),
                )
                .await;
            }
        });
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    resp.map(Body::new)
}

/// Whether the lab's server answers `GET path` with anything but a server error.
pub async fn answers(
    endpoint: &Endpoint,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> bool {
    let Ok((mut sender, _driver)) = connect(endpoint).await else {
        return false;
    };
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let Ok(req) = req
        .header(header::HOST, endpoint.host())
        .body(Body::from(Bytes::new()))
    else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), sender.send_request(req)).await,
        Ok(Ok(r)) if !r.status().is_server_error()
    )
}

/// `GET path` on the lab's server, as JSON (`None`: no answer, an error status, or not JSON).
pub async fn get_json(up: &Upstream, path: &str) -> Option<serde_json::Value> {
    use http_body_util::BodyExt;
    let (mut sender, _driver) = connect(&up.endpoint).await.ok()?;
    let mut req = Request::get(path).header(header::HOST, up.endpoint.host());
    for (k, v) in &up.headers {
        req = req.header(k, v);
    }
    let req = req.body(Body::empty()).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .ok()?
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_credentials_never_reach_the_lab_and_the_labs_token_replaces_them() {
        let mut from = HeaderMap::new();
        from.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer colo_usersecret"),
        );
        from.insert(
            header::COOKIE,
            HeaderValue::from_static("_xsrf=abc; colo_session=colo_sessionsecret; theme=dark"),
        );
        from.insert("x-csrf-token", HeaderValue::from_static("csrf"));
        from.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        from.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        from.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        from.insert(header::HOST, HeaderValue::from_static("colo.example.org"));
        let up = Upstream {
            endpoint: Endpoint::Tcp(8888),
            base_path: "/labs/lab-1/".into(),
            headers: vec![(
                header::AUTHORIZATION,
                HeaderValue::from_static("token labsecret"),
            )],
        };
        let out = lab_headers(&from, &up);
        assert_eq!(out[header::AUTHORIZATION], "token labsecret");
        assert_eq!(out[header::COOKIE], "_xsrf=abc; theme=dark");
        assert_eq!(
            out[header::HOST],
            "colo.example.org",
            "kept for the lab's origin check"
        );
        assert_eq!(out[header::UPGRADE], "websocket");
        assert!(!out.contains_key("transfer-encoding"));
        let all = format!("{out:?}");
        assert!(
            !all.contains("usersecret") && !all.contains("sessionsecret"),
            "{all}"
        );
    }
}
