//! What every service does with HTTP besides its protocol: the URLs it hands out, built for each
//! request as the client sees them ([`Root`]); the small responses (XML, plain text, 303);
//! recognising astroquery's TapPlus; streaming a file.
//!
//! No URL is stored: every one is rendered when a response is made, from the configured public URL
//! (`services.public_url`) when there is one, else from the request — its `Host`, and behind a
//! reverse proxy that the policy trusts (loopback, or `services.trusted_proxies`) its
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Prefix`. Forwarded headers from anyone
//! else are ignored, so a client cannot make the service hand out URLs to another host.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How the URLs handed out are made (see the module note).
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// The base of every URL, whatever the request says (`https://archive.example.org/colo`).
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-*` headers are believed, besides loopback.
    pub trusted_proxies: Vec<IpAddr>,
}

impl UrlPolicy {
    /// The root URL (`scheme://host[/prefix]`) for a request with `headers` from `peer` (`None`:
    /// a request made inside the process, as tests make them).
    pub fn root(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> String {
        if let Some(public) = &self.public_url {
            return public.trim_end_matches('/').to_string();
        }
        let trusted = peer.is_none_or(|ip| ip.is_loopback() || self.trusted_proxies.contains(&ip));
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                // A proxy chain lists the client's value first.
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let forwarded = |name: &str| header(name).filter(|_| trusted);
        let scheme = forwarded("x-forwarded-proto").unwrap_or("http");
        let host = forwarded("x-forwarded-host")
            .or_else(|| header(header::HOST.as_str()))
            .unwrap_or("127.0.0.1");
        let prefix = forwarded("x-forwarded-prefix").unwrap_or("");
        format!("{scheme}://{host}{}", prefix.trim_end_matches('/'))
    }
}

/// The root URL of this request as the client sees it (`scheme://host[/prefix]`), rendered by the
/// router's [`UrlPolicy`].
#[derive(Debug, Clone)]
pub struct Root(pub String);

impl Root {
    /// A service's base URL: the root and the request's path before the first `suffix` (where the
    /// service's routes are nested).
    pub fn service_url(&self, uri: &OriginalUri, suffix: &str) -> String {
        let path = uri.path();
        let mount = path.find(suffix).map_or(path, |at| &path[..at]);
        format!("{}{}", self.0, mount.trim_end_matches('/'))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Root {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let policy = parts
            .extensions
            .get::<Arc<UrlPolicy>>()
            .cloned()
            .unwrap_or_default();
        Ok(Root(policy.root(&parts.headers, peer)))
    }
}

/// An XML document.
pub fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A plain-text answer.
pub fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// 303 See Other.
pub fn see_other(location: String) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// astroquery's TapPlus (its User-Agent says so) wants HTTP 200 where UWS says 303.
pub fn is_tapplus(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.to_ascii_lowercase().contains("astroquery"))
}

/// A file as a stream of 256 KiB chunks.
pub fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn urls_are_what_the_client_sees() {
        let policy = UrlPolicy::default();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8765"));
        let direct = Root(policy.root(&headers, Some([10, 0, 0, 7].into())));
        assert_eq!(direct.0, "http://127.0.0.1:8765");
        let uri = OriginalUri("/tap-server/tap/async/abc".parse().expect("uri"));
        assert_eq!(
            direct.service_url(&uri, "/async"),
            "http://127.0.0.1:8765/tap-server/tap"
        );
        assert_eq!(policy.root(&HeaderMap::new(), None), "http://127.0.0.1");
    }

    #[test]
    fn forwarded_headers_count_from_trusted_proxies_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8765"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("archive.example.org, inner"),
        );
        headers.insert("x-forwarded-prefix", HeaderValue::from_static("/colo/"));
        let policy = UrlPolicy {
            public_url: None,
            trusted_proxies: vec![[10, 0, 0, 1].into()],
        };
        let proxied = "https://archive.example.org/colo";
        assert_eq!(policy.root(&headers, Some([127, 0, 0, 1].into())), proxied);
        assert_eq!(policy.root(&headers, Some([10, 0, 0, 1].into())), proxied);
        assert_eq!(
            policy.root(&headers, Some([192, 0, 2, 9].into())),
            "http://127.0.0.1:8765",
            "a stranger's forwarded headers are ignored"
        );
        let public = UrlPolicy {
            public_url: Some("https://data.example.org/vo/".into()),
            trusted_proxies: vec![],
        };
        assert_eq!(public.root(&headers, None), "https://data.example.org/vo");
    }
}
