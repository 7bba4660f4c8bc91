//! What every service does with HTTP besides its protocol: the URLs it hands out as the client
//! sees them (scheme and host from the request, behind a proxy from `X-Forwarded-Proto`), the small
//! responses (XML, plain text, 303), recognising astroquery's TapPlus, and streaming a file.

use axum::body::Bytes;
use axum::extract::OriginalUri;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `scheme://host` of a request, for the URLs services hand out.
pub fn root_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// A service's base URL as the client sees it: scheme, host and the request's path before the
/// first `suffix` (where the service's routes are nested).
pub fn base_url(headers: &HeaderMap, uri: &OriginalUri, suffix: &str) -> String {
    let path = uri.path();
    let mount = path.find(suffix).map_or(path, |at| &path[..at]);
    format!("{}{}", root_url(headers), mount.trim_end_matches('/'))
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
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("archive.example.org"),
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let uri = OriginalUri("/tap-server/tap/async/abc".parse().expect("uri"));
        assert_eq!(
            base_url(&headers, &uri, "/async"),
            "https://archive.example.org/tap-server/tap"
        );
        assert_eq!(root_url(&HeaderMap::new()), "http://127.0.0.1");
    }
}
