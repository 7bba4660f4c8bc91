//! A selection of another volume's files, as a volume of its own: a layer over that volume's
//! connector that shows only the selected files and the folders leading to them, and refuses
//! every change. It serves under the wrapped volume's name, so the block cache — keyed by volume,
//! path and version — is shared with the volume itself: a file read through either costs the
//! origin one transfer. Listing a folder is the wrapped volume's listing, filtered.

use crate::connector::{Capability, Connector, DirEntry, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug)]
pub struct SelectionConnector {
    inner: Arc<dyn Connector>,
    files: BTreeSet<ObjectPath>,
    folders: BTreeSet<ObjectPath>,
}

impl SelectionConnector {
    /// The files `paths` of `inner` (paths that do not parse are left out).
    pub fn new(inner: Arc<dyn Connector>, paths: impl IntoIterator<Item = String>) -> Self {
        let files: BTreeSet<ObjectPath> = paths
            .into_iter()
            .filter_map(|p| ObjectPath::parse(&p).ok())
            .filter(|p| !p.is_root())
            .collect();
        let mut folders = BTreeSet::new();
        folders.insert(ObjectPath::root());
        for f in &files {
            let mut up = f.parent();
            while let Some(p) = up {
                up = p.parent();
                folders.insert(p);
            }
        }
        SelectionConnector {
            inner,
            files,
            folders,
        }
    }

    fn not_found(&self, path: &ObjectPath) -> ConnectorError {
        ConnectorError::NotFound {
            volume: self.inner.volume().to_string(),
            path: path.to_string(),
        }
    }
}

#[async_trait]
impl Connector for SelectionConnector {
    fn volume(&self) -> &str {
        self.inner.volume()
    }

    fn capability(&self) -> Capability {
        Capability {
            write: false,
            rename_dirs: false,
            symlinks: false,
            ..self.inner.capability()
        }
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        if self.files.contains(path) || self.folders.contains(path) {
            self.inner.stat(path).await
        } else {
            Err(self.not_found(path))
        }
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        if !self.files.contains(path) {
            return Err(self.not_found(path));
        }
        self.inner.read_range(path, range, expect).await
    }

    async fn read_range_pieces(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
        piece_bytes: u64,
    ) -> Result<Vec<Bytes>> {
        if !self.files.contains(path) {
            return Err(self.not_found(path));
        }
        self.inner
            .read_range_pieces(path, range, expect, piece_bytes)
            .await
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        if !self.folders.contains(path) {
            return Err(self.not_found(path));
        }
        let entries = self.inner.list(path).await?;
        Ok(entries
            .into_iter()
            .filter(|e| {
                path.child(&e.name)
                    .is_ok_and(|child| self.files.contains(&child) || self.folders.contains(&child))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryConnector;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn only_the_selected_files_and_their_folders_are_there() {
        let m = Arc::new(MemoryConnector::new("archive"));
        m.put("images/a.fits", vec![1u8; 100]);
        m.put("images/b.fits", vec![2u8; 100]);
        m.put("catalogs/hip.parquet", vec![3u8; 10]);
        m.put("top.txt", vec![4u8; 5]);
        let s = SelectionConnector::new(m.clone(), ["images/a.fits".to_string()]);
        assert_eq!(s.volume(), "archive", "shares the volume's cache keys");
        let names = |v: Vec<DirEntry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(
            names(s.list(&ObjectPath::root()).await.expect("root")),
            vec!["images"]
        );
        let images = ObjectPath::parse("images").expect("path");
        assert_eq!(
            names(s.list(&images).await.expect("images")),
            vec!["a.fits"]
        );
        for hidden in [
            "images/b.fits",
            "top.txt",
            "catalogs",
            "catalogs/hip.parquet",
        ] {
            let p = ObjectPath::parse(hidden).expect("path");
            assert!(s.stat(&p).await.is_err(), "{hidden}");
            assert!(s.read_range(&p, 0..1, None).await.is_err(), "{hidden}");
        }
        assert!(
            s.list(&ObjectPath::parse("catalogs").expect("p"))
                .await
                .is_err()
        );
        let reads = m.reads.load(Ordering::Relaxed);
        let a = ObjectPath::parse("images/a.fits").expect("path");
        assert_eq!(
            s.read_range(&a, 0..100, None).await.expect("read"),
            vec![1u8; 100]
        );
        assert_eq!(m.reads.load(Ordering::Relaxed), reads + 1);
        assert!(!s.capability().write);
        assert!(s.write_object(&a, Bytes::from_static(b"x")).await.is_err());
    }
}
