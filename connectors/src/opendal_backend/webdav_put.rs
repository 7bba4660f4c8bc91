//! WebDAV uploads of staged files in bounded memory. OpenDAL's WebDAV writer sends one PUT whose
//! body it holds whole (WebDAV has no multipart upload), so a 4 GiB result would take 4 GiB of
//! colo's memory. Here the PUT's body is the staged file read in pieces of [`PIECE_BYTES`] as the
//! connection takes them, with its `Content-Length` given, through the same reqwest and TLS set-up
//! as every other client ([`crate::tls`]); the temporary name and the MOVE into place stay
//! OpenDAL's ([`super::upload`]). Progress is counted as pieces go, so the retry layer abandons
//! the upload only when it stalls ([`crate::progress`]).

use crate::secret::SecretString;
use bytes::Bytes;
use opendal::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read from the staged file per piece of the body.
const PIECE_BYTES: usize = 1 << 20;

/// Where and as whom a WebDAV volume's PUTs go.
pub(super) struct WebdavPut {
    client: reqwest::Client,
    /// The endpoint and root, e.g. `http://host:port/rw`.
    base: reqwest::Url,
    user: Option<String>,
    password: Option<SecretString>,
}

impl std::fmt::Debug for WebdavPut {
    /// The password never shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebdavPut")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl WebdavPut {
    pub(super) fn new(
        endpoint: &str,
        root: &str,
        user: Option<String>,
        password: Option<SecretString>,
    ) -> Result<WebdavPut, String> {
        let client = crate::tls::http_client_builder()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let base = reqwest::Url::parse(&format!(
            "{}/{}",
            endpoint.trim_end_matches('/'),
            root.trim_matches('/')
        ))
        .map_err(|e| format!("WebDAV endpoint: {e}"))?;
        Ok(WebdavPut {
            client,
            base,
            user,
            password,
        })
    }

    /// The URL of `target` (a path relative to the root, as OpenDAL names it), each segment
    /// percent-encoded.
    fn url(&self, target: &str) -> Result<reqwest::Url, opendal::Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| {
                opendal::Error::new(ErrorKind::ConfigInvalid, "WebDAV endpoint has no path")
            })?
            .pop_if_empty()
            .extend(target.split('/').filter(|s| !s.is_empty()));
        Ok(url)
    }

    /// PUTs the `size` bytes of `source` at `target`.
    pub(super) async fn put_file(
        &self,
        target: &str,
        source: &std::path::Path,
        size: u64,
    ) -> opendal::Result<()> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::open(source).await.map_err(|e| {
            opendal::Error::new(ErrorKind::Unexpected, "reading a staged file").set_source(e)
        })?;
        // The body is read on the connection's own task: progress is counted into this task's
        // counter, taken here.
        let sent: Option<Arc<AtomicU64>> = crate::progress::sent_counter();
        let body = futures::stream::try_unfold((file, sent), |(mut file, sent)| async move {
            let mut piece = vec![0u8; PIECE_BYTES];
            let n = file.read(&mut piece).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            piece.truncate(n);
            if let Some(sent) = &sent {
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(Some((Bytes::from(piece), (file, sent))))
        });
        let mut request = self
            .client
            .put(self.url(target)?)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_ref().map(|p| p.expose()));
        }
        let response = request.send().await.map_err(|e| {
            opendal::Error::new(ErrorKind::Unexpected, "WebDAV PUT")
                .set_source(e)
                .set_temporary()
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::PermissionDenied,
            404 | 409 => ErrorKind::NotFound,
            _ => ErrorKind::Unexpected,
        };
        let error = opendal::Error::new(kind, format!("WebDAV PUT answered {status}"));
        Err(if status.is_server_error() || status.as_u16() == 429 {
            error.set_temporary()
        } else {
            error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_root_and_encode_each_segment() {
        let put = WebdavPut::new("http://127.0.0.1:8080", "/rw/", None, None).unwrap();
        assert_eq!(
            put.url("a dir/.f.colo-1-2").unwrap().as_str(),
            "http://127.0.0.1:8080/rw/a%20dir/.f.colo-1-2"
        );
        let top = WebdavPut::new("http://127.0.0.1:8080/", "/", None, None).unwrap();
        assert_eq!(
            top.url("x#y").unwrap().as_str(),
            "http://127.0.0.1:8080/x%23y"
        );
    }
}
