//! Counts what reaches the origin: requests by kind and bytes read, per volume. This is the number
//! that tells whether the cache and prefetcher do their job ("how many GETs did that `ls -l` cost?"),
//! so it sits directly on the backend, below retries: every attempt counts.

use crate::connector::{Capability, Connector, DirEntry, ObjectIdentity, ObjectMeta};
use crate::error::Result;
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Origin traffic of one volume.
#[derive(Debug, Default)]
pub struct OriginStats {
    pub stat_requests: AtomicU64,
    pub read_requests: AtomicU64,
    pub list_requests: AtomicU64,
    pub read_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Objects written and deleted, and bytes written.
    pub write_requests: AtomicU64,
    pub write_bytes: AtomicU64,
    pub delete_requests: AtomicU64,
}

impl OriginStats {
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.stat_requests.load(Ordering::Relaxed),
            self.read_requests.load(Ordering::Relaxed),
            self.list_requests.load(Ordering::Relaxed),
            self.read_bytes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        ]
    }
}

#[derive(Debug)]
pub struct Metered<C> {
    inner: C,
    stats: Arc<OriginStats>,
}

impl<C: Connector> Metered<C> {
    pub fn new(inner: C) -> Self {
        Metered {
            inner,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<OriginStats> {
        self.stats.clone()
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn count<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

#[async_trait]
impl<C: Connector> Connector for Metered<C> {
    fn volume(&self) -> &str {
        self.inner.volume()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.stats.stat_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.stat(path).await;
        self.count(r)
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        self.stats.read_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.read_range(path, range, expect).await;
        if let Ok(b) = &r {
            self.stats
                .read_bytes
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        self.count(r)
    }

    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        self.stats.read_requests.fetch_add(1, Ordering::Relaxed);
        let r = self
            .inner
            .read_range_pieces(path, range, expect, piece_bytes)
            .await;
        if let Ok(pieces) = &r {
            let len: usize = pieces.iter().map(Bytes::len).sum();
            self.stats
                .read_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
        }
        self.count(r)
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        self.stats.list_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.list(path).await;
        self.count(r)
    }

    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let len = bytes.len() as u64;
        let r = self.inner.write_object(path, bytes).await;
        if r.is_ok() {
            self.stats.write_bytes.fetch_add(len, Ordering::Relaxed);
        }
        self.count(r)
    }

    async fn write_file(&self, path: &ObjectPath, source: &std::path::Path) -> Result<ObjectMeta> {
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.write_file(path, source).await;
        if let Ok(meta) = &r {
            self.stats
                .write_bytes
                .fetch_add(meta.size, Ordering::Relaxed);
        }
        self.count(r)
    }

    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.create_dir(path).await;
        self.count(r)
    }

    async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.symlink(path, target).await;
        self.count(r)
    }

    async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        self.stats.stat_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.read_link(path).await;
        self.count(r)
    }

    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.rename(from, to).await;
        self.count(r)
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.stats.delete_requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.delete(path).await;
        self.count(r)
    }
}
