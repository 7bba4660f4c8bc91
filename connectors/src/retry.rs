//! Retries and per-request timeouts, wrapped around any connector. Only errors that say
//! [`ConnectorError::is_temporary`] are retried, with exponential backoff; a request that takes longer
//! than the timeout is abandoned and counts as a temporary failure. Nothing else in colo retries, so
//! the worst-case wait for a dead origin is bounded and known: `(retries + 1) × timeout + backoff`.
//! Uploads are the exception to a fixed timeout: one is abandoned when it stops sending, not when
//! it takes long ([`crate::progress`]).

use crate::connector::{Capability, Connector, DirEntry, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use crate::progress::until_stalled;
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub timeout: Duration,
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            timeout: Duration::from_secs(30),
            first_backoff: Duration::from_millis(100),
        }
    }
}

#[derive(Debug)]
pub struct Retry<C> {
    inner: C,
    policy: RetryPolicy,
}

impl<C: Connector> Retry<C> {
    pub fn new(inner: C, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    async fn run<T, F, Fut>(&self, path: &ObjectPath, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_upload(path, None, f).await
    }

    /// [`Self::run`]; with `body_bytes`, an upload, abandoned only when it stalls.
    async fn run_upload<T, F, Fut>(
        &self,
        path: &ObjectPath,
        body_bytes: Option<u64>,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut backoff = self.policy.first_backoff;
        let mut attempt = 0;
        loop {
            let ended = match body_bytes {
                Some(bytes) => until_stalled(self.policy.timeout, bytes, f()).await,
                None => tokio::time::timeout(self.policy.timeout, f()).await.ok(),
            };
            let result = match ended {
                Some(r) => r,
                None => Err(ConnectorError::Timeout {
                    volume: self.inner.volume().to_string(),
                    path: path.to_string(),
                    timeout_ms: self.policy.timeout.as_millis() as u64,
                }),
            };
            match result {
                Err(e) if e.is_temporary() && attempt < self.policy.retries => {
                    tracing::debug!(volume = self.inner.volume(), %path, attempt, error = %e, "retrying");
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<C: Connector> Connector for Retry<C> {
    fn volume(&self) -> &str {
        self.inner.volume()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.run(path, || self.inner.stat(path)).await
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        self.run(path, || self.inner.read_range(path, range.clone(), expect))
            .await
    }

    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        self.run(path, || {
            self.inner
                .read_range_pieces(path, range.clone(), expect, piece_bytes)
        })
        .await
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        self.run(path, || self.inner.list(path)).await
    }

    /// Whole-object writes replace atomically, so a retried one cannot leave a mixture.
    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        let size = Some(bytes.len() as u64);
        self.run_upload(path, size, || self.inner.write_object(path, bytes.clone()))
            .await
    }

    /// Abandoned when it stops sending, however long it takes ([`crate::progress`]).
    async fn write_file(&self, path: &ObjectPath, source: &std::path::Path) -> Result<ObjectMeta> {
        // (A source that cannot be read fails in the inner call, with its own error.)
        let size = std::fs::metadata(source).map_or(0, |m| m.len());
        self.run_upload(path, Some(size), || self.inner.write_file(path, source))
            .await
    }

    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        self.run(path, || self.inner.create_dir(path)).await
    }

    /// A retried symlink may find its first attempt done: success when the link says `target`.
    async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        let mut first = true;
        self.run(path, || {
            let retried = !std::mem::replace(&mut first, false);
            async move {
                match self.inner.symlink(path, target).await {
                    Err(e) if retried => match self.inner.read_link(path).await {
                        Ok(t) if t == target => Ok(()),
                        _ => Err(e),
                    },
                    other => other,
                }
            }
        })
        .await
    }

    async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        self.run(path, || self.inner.read_link(path)).await
    }

    /// A retried rename may find its source already moved: success when the target exists.
    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let mut first = true;
        self.run(from, || {
            let retried = !std::mem::replace(&mut first, false);
            async move {
                match self.inner.rename(from, to).await {
                    Err(e) if retried && e.kind() == crate::error::ErrorKind::NotFound => {
                        self.inner.stat(to).await.map(|_| ())
                    }
                    other => other,
                }
            }
        })
        .await
    }

    /// A retried delete may find nothing left to delete: that is success.
    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let mut first = true;
        self.run(path, || {
            let retried = !std::mem::replace(&mut first, false);
            async move {
                match self.inner.delete(path).await {
                    Err(e) if retried && e.kind() == crate::error::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryConnector;
    use std::sync::atomic::Ordering;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            timeout: Duration::from_millis(200),
            first_backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn temporary_failures_are_retried_then_given_up() {
        let m = MemoryConnector::new("m");
        m.put("f", &b"hello"[..]);
        let r = Retry::new(m, policy(2));
        let p = ObjectPath::parse("f").unwrap();
        r.inner().fail_next(2);
        assert_eq!(&r.read_range(&p, 0..5, None).await.unwrap()[..], b"hello");
        r.inner().fail_next(3);
        let e = r.read_range(&p, 0..5, None).await.unwrap_err();
        assert!(e.is_temporary());
        assert_eq!(r.inner().reads.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let r = Retry::new(MemoryConnector::new("m"), policy(5));
        let e = r
            .stat(&ObjectPath::parse("missing").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectorError::NotFound { .. }));
        assert_eq!(r.inner().stats.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn slow_requests_time_out() {
        let m = MemoryConnector::new("m");
        m.set_delay(Duration::from_secs(5));
        let r = Retry::new(m, policy(0));
        let e = r.list(&ObjectPath::root()).await.unwrap_err();
        assert!(matches!(e, ConnectorError::Timeout { .. }), "{e}");
    }
}
