//! Plain HTTP(S) directory trees (nginx/Apache autoindex pages, `python -m http.server`, …).
//!
//! Written on reqwest directly rather than OpenDAL's `http` service because that service cannot list:
//! a tree is only browsable by reading its index pages. A directory is `GET base/dir/` and its `<a
//! href>` links that name direct children; a file is `HEAD` for metadata and a `Range` GET for bytes.
//! Index pages carry no reliable sizes, so `list` HEADs the files it finds, 16 at a time, to give the
//! VFS full attributes in one call.
//!
//! Identity on read: `If-Match` when the file has an ETag; and in every case the response's own
//! `ETag`, `Last-Modified` and `Content-Range` total are checked against the expected identity, so a
//! file replaced between `stat` and read is reported as Stale — without an extra request. Servers
//! that ignore `Range` (answer 200 with the whole body) are handled by slicing.

use crate::connector::{Capability, Connector, DirEntry, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use crate::pieces::PieceWriter;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use std::ops::Range;
use std::time::{Duration, SystemTime};
use url::Url;

/// Characters escaped in one path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b'|');

const HEAD_CONCURRENCY: usize = 16;

#[derive(Debug)]
pub struct HttpConnector {
    volume: String,
    base: Url,
    client: reqwest::Client,
}

impl HttpConnector {
    /// The response to a GET of `range` (not empty), its status and validators checked: `true`
    /// with it when the server ignored the Range and sends the whole object.
    async fn ranged_response(
        &self,
        path: &ObjectPath,
        range: &Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<(reqwest::Response, bool)> {
        let mut req = self.client.get(self.url(path, false)).header(
            header::RANGE,
            format!("bytes={}-{}", range.start, range.end - 1),
        );
        if let Some(ObjectIdentity::ETag(e)) = expect {
            req = req.header(header::IF_MATCH, e.as_str());
        }
        let resp = req.send().await.map_err(|e| self.convert(path, e))?;
        let status = resp.status();
        if status != StatusCode::PARTIAL_CONTENT && status != StatusCode::OK {
            return Err(self.status_error(path, status));
        }
        let headers = resp.headers().clone();
        if let Some(expected) = expect {
            let total = if status == StatusCode::OK {
                header_u64(&headers, header::CONTENT_LENGTH)
            } else {
                content_range_total(&headers)
            };
            let seen =
                ObjectMeta::file(total.unwrap_or(0), last_modified(&headers), etag(&headers));
            let consistent = match expected {
                ObjectIdentity::ETag(e) => seen.etag.as_deref().is_none_or(|s| s == e),
                ObjectIdentity::SizeMtime { .. } => seen.etag.is_none() && expected.matches(&seen),
            };
            if !consistent {
                return Err(ConnectorError::stale(&self.volume, &path.to_string()));
            }
        }
        Ok((resp, status == StatusCode::OK))
    }

    pub fn new(volume: &str, base: Url, timeout: Duration) -> Result<Self> {
        let client = crate::tls::http_client_builder()
            .connect_timeout(timeout)
            .user_agent(concat!("colo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::internal(volume, "/", e))?;
        Ok(HttpConnector {
            volume: volume.to_string(),
            base,
            client,
        })
    }

    fn url(&self, path: &ObjectPath, dir: bool) -> Url {
        let mut rel: String = path
            .segments()
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/");
        if dir && !rel.is_empty() {
            rel.push('/');
        }
        // Every segment is escaped, so the join cannot leave the base.
        self.base.join(&rel).unwrap_or_else(|_| self.base.clone())
    }

    fn convert(&self, path: &ObjectPath, e: reqwest::Error) -> ConnectorError {
        let p = path.to_string();
        // reqwest errors print the URL, which holds no secret for this backend (no credentials).
        if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
            ConnectorError::unavailable(&self.volume, &p, e)
        } else {
            ConnectorError::internal(&self.volume, &p, e)
        }
    }

    fn status_error(&self, path: &ObjectPath, status: StatusCode) -> ConnectorError {
        let p = path.to_string();
        match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => ConnectorError::not_found(&self.volume, &p),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                ConnectorError::denied(&self.volume, &p, status)
            }
            StatusCode::PRECONDITION_FAILED => ConnectorError::stale(&self.volume, &p),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                ConnectorError::unavailable(&self.volume, &p, s)
            }
            s => ConnectorError::internal(&self.volume, &p, format!("unexpected HTTP status {s}")),
        }
    }

    async fn head_file(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let resp = self
            .client
            .head(self.url(path, false))
            .send()
            .await
            .map_err(|e| self.convert(path, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(path, resp.status()));
        }
        let h = resp.headers();
        // Servers redirect "dir" to "dir/"; reqwest follows, so the final URL says it is a directory.
        if resp.url().path().ends_with('/') {
            return Ok(ObjectMeta::directory(last_modified(h)));
        }
        let size = header_u64(h, header::CONTENT_LENGTH).unwrap_or(0);
        Ok(ObjectMeta::file(size, last_modified(h), etag(h)))
    }
}

fn header_u64(h: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn last_modified(h: &HeaderMap) -> Option<SystemTime> {
    httpdate::parse_http_date(h.get(header::LAST_MODIFIED)?.to_str().ok()?).ok()
}

/// Strong ETags only: a weak one (`W/"…"`) does not promise identical bytes.
fn etag(h: &HeaderMap) -> Option<String> {
    let e = h.get(header::ETAG)?.to_str().ok()?.trim();
    (!e.starts_with("W/") && !e.is_empty()).then(|| e.to_string())
}

/// The total length from `Content-Range: bytes a-b/total`.
fn content_range_total(h: &HeaderMap) -> Option<u64> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

/// Names of the direct children linked from an index page at `dir_url`, with whether each is a
/// directory (its link ends in `/`).
pub fn parse_index(html: &str, dir_url: &Url) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("href=") {
        let start = at + found + 5;
        let rest = &html[start..];
        let (value, consumed) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => match rest[1..].find(q) {
                Some(end) => (&rest[1..1 + end], end + 2),
                None => break,
            },
            Some(_) => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(rest.len());
                (&rest[..end], end)
            }
            None => break,
        };
        at = start + consumed;
        let value = value.replace("&amp;", "&");
        if value.starts_with('?') || value.starts_with('#') || value.is_empty() {
            continue;
        }
        let Ok(target) = dir_url.join(&value) else {
            continue;
        };
        if target.origin() != dir_url.origin() || target.query().is_some() {
            continue;
        }
        let Some(rel) = target.path().strip_prefix(dir_url.path()) else {
            continue;
        };
        let is_dir = rel.ends_with('/');
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() || rel.contains('/') {
            continue;
        }
        let name = percent_decode_str(rel).decode_utf8_lossy().into_owned();
        if ObjectPath::root().child(&name).is_err() {
            continue;
        }
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, is_dir));
        }
    }
    out
}

#[async_trait]
impl Connector for HttpConnector {
    fn volume(&self) -> &str {
        &self.volume
    }

    fn capability(&self) -> Capability {
        Capability {
            list_has_metadata: true,
            conditional_read: true,
            write: false,
            rename_dirs: false,
            symlinks: false,
        }
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        if path.is_root() {
            let resp = self
                .client
                .get(self.base.clone())
                .send()
                .await
                .map_err(|e| self.convert(path, e))?;
            if !resp.status().is_success() {
                return Err(self.status_error(path, resp.status()));
            }
            return Ok(ObjectMeta::directory(last_modified(resp.headers())));
        }
        match self.head_file(path).await {
            Err(ConnectorError::NotFound { .. }) => {
                // A directory is only reachable with its trailing slash.
                let resp = self
                    .client
                    .head(self.url(path, true))
                    .send()
                    .await
                    .map_err(|e| self.convert(path, e))?;
                if resp.status().is_success() {
                    Ok(ObjectMeta::directory(last_modified(resp.headers())))
                } else {
                    Err(self.status_error(path, resp.status()))
                }
            }
            Ok(meta) => Ok(meta),
            Err(e) => Err(e),
        }
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        // One piece: the body copied once, as reqwest would to make it contiguous.
        let want = range.end - range.start;
        let mut pieces = self.read_range_pieces(path, range, expect, want).await?;
        Ok(pieces.pop().unwrap_or_default())
    }

    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let want = range.end - range.start;
        let (mut resp, whole) = self.ranged_response(path, &range, expect).await?;
        // A server that ignored the Range sends the object from its start: skip to the range.
        let mut skip = if whole { range.start } else { 0 };
        let mut pieces = PieceWriter::new(want, piece_bytes);
        while pieces.len() < want
            && let Some(chunk) = resp.chunk().await.map_err(|e| self.convert(path, e))?
        {
            let from = skip.min(chunk.len() as u64);
            skip -= from;
            pieces.push(&chunk[from as usize..]);
        }
        if pieces.len() != want {
            return Err(if whole {
                ConnectorError::stale(&self.volume, &path.to_string())
            } else {
                ConnectorError::unavailable(
                    &self.volume,
                    &path.to_string(),
                    format!("short read: {} of {want} bytes", pieces.len()),
                )
            });
        }
        Ok(pieces.finish())
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        let dir_url = self.url(path, true);
        let resp = self
            .client
            .get(dir_url.clone())
            .send()
            .await
            .map_err(|e| self.convert(path, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(path, resp.status()));
        }
        let final_url = resp.url().clone();
        let html = resp.text().await.map_err(|e| self.convert(path, e))?;
        let names = parse_index(&html, &final_url);
        let metas = futures::stream::iter(names.into_iter().map(|(name, is_dir)| {
            let child = path.child(&name);
            async move {
                let child = child.map_err(|reason| ConnectorError::InvalidPath {
                    path: name.clone(),
                    reason,
                })?;
                let meta = if is_dir {
                    ObjectMeta::directory(None)
                } else {
                    self.head_file(&child).await?
                };
                Ok::<_, ConnectorError>(DirEntry { name, meta })
            }
        }))
        .buffered(HEAD_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            match m {
                Ok(e) => out.push(e),
                // Linked but gone (or forbidden) by the time we looked: leave it out.
                Err(ConnectorError::NotFound { .. }) => {}
                Err(ConnectorError::PermissionDenied { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_pages_parse() {
        let base = Url::parse("http://h/data/").unwrap();
        let html = r#"<html><a href="../">../</a><a href="sub/">sub/</a>
            <a href="a%20b.fits">a b.fits</a> <a href='/data/c.txt'>c</a>
            <a href="?C=N;O=D">sort</a><a href="http://other/x">x</a>
            <a href="/elsewhere/y">y</a><a href="deep/z.txt">z</a><a href=plain.dat>p</a>
            <a href="%2e%2e/">up</a><a href="sub/">dup</a></html>"#;
        let got = parse_index(html, &base);
        assert_eq!(
            got,
            vec![
                ("sub".to_string(), true),
                ("a b.fits".to_string(), false),
                ("c.txt".to_string(), false),
                ("plain.dat".to_string(), false),
            ]
        );
    }

    /// A server that ignores Range and sends the whole object (200): both reads still return
    /// exactly the range — the pieces skipping the object's start as it streams past.
    #[tokio::test]
    async fn a_server_ignoring_range_still_gives_the_range() {
        use std::io::{Read, Write};
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = body.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    served.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                for chunk in served.chunks(700) {
                    stream.write_all(chunk).unwrap();
                }
            }
        });
        let c = HttpConnector::new(
            "h",
            Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        let path = ObjectPath::parse("f.bin").unwrap();
        let whole = c.read_range(&path, 1000..3500, None).await.unwrap();
        assert_eq!(&whole[..], &body[1000..3500]);
        let pieces = c
            .read_range_pieces(&path, 1000..3500, None, 1000)
            .await
            .unwrap();
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(pieces.concat(), body[1000..3500]);
    }

    #[test]
    fn urls_escape_every_segment() {
        let c = HttpConnector::new(
            "h",
            Url::parse("http://h/base/").unwrap(),
            Duration::from_secs(1),
        )
        .unwrap();
        let p = ObjectPath::parse("a b/%2e%2ex?#")
            .unwrap_or_else(|_| ObjectPath::parse("a b/q?#").unwrap());
        let u = c.url(&p, false);
        assert!(u.as_str().starts_with("http://h/base/a%20b/"), "{u}");
        assert!(!u.as_str().contains('#') && u.query().is_none(), "{u}");
    }
}
