//! Tables on volumes: an [`ObjectStore`] (the API DataFusion reads Parquet through) over a volume's
//! connector and colo's block cache, registered with the TAP engine as `colo://<volume>/`.
//!
//! Why an adapter over colo's own stack rather than object_store's S3 client in DataFusion's
//! registry with a cache beneath: a table is then read like every other file colo serves — through
//! the volume's connector (its credentials, redaction, retries and timeouts; S3, WebDAV, SFTP, FTP
//! alike) and the one block cache (memory and disk tiers, checksummed, surviving restarts, keyed by
//! the object's identity so a replaced file is never served stale), and the origin requests it costs
//! show in the volume's counters on `/metrics`. object_store's S3 client would be a second HTTP and
//! TLS stack (aws-lc-rs: minutes of C build here) and know nothing of the cache.
//!
//! Reads: only the cache pages a read covers are fetched ([`FetchPlan::Pages`]; a file no larger
//! than a page is fetched whole), so a query costs the footers and the row groups and pages it
//! needs, and nothing once they are cached. Every read is pinned to the identity the file had when
//! it was listed or looked up (kept in `known`), so a file replaced at the origin fails as changed
//! instead of mixing versions. Writes (ingest publishing a table) are whole objects; deleting the
//! last file of a folder removes the folder where the backend has folders.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use colo_cache::{CacheError, FetchPlan, ObjectVersion, ReadThrough};
use colo_connectors::{ConnectorError, EntryKind, ErrorKind, ObjectMeta as VolumeMeta, ObjectPath};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::{Path, PathPart};
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::RwLock;

/// The URL scheme under which volumes are registered with the engine (`colo://<volume>/`).
pub const SCHEME: &str = "colo";

/// The store name in object_store's errors.
const STORE: &str = "colo volume";

/// One volume as an object store (clones share what they know).
#[derive(Clone)]
pub struct VolumeStore {
    reader: ReadThrough,
    /// The version of each file reads are pinned to, from listings and lookups.
    known: Arc<RwLock<HashMap<String, VolumeMeta>>>,
}

impl VolumeStore {
    pub fn new(reader: ReadThrough) -> VolumeStore {
        VolumeStore {
            reader,
            known: Arc::default(),
        }
    }

    /// The URL the engine reaches `volume` by: `colo://<volume>/`.
    pub fn url(volume: &str) -> Result<url::Url, url::ParseError> {
        url::Url::parse(&format!("{SCHEME}://{volume}/"))
    }

    fn volume(&self) -> &str {
        self.reader.connector().volume()
    }

    /// The volume path of a store path.
    fn object_path(&self, location: &Path) -> object_store::Result<ObjectPath> {
        let decoded: Vec<String> = location
            .parts()
            .map(|part| {
                percent_encoding::percent_decode_str(part.as_ref())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        ObjectPath::parse(&decoded.join("/")).map_err(|e| self.error(location, e))
    }

    /// The store path of a volume path.
    fn store_path(path: &ObjectPath) -> Path {
        path.segments().map(PathPart::from).collect()
    }

    fn error(&self, location: &Path, error: ConnectorError) -> object_store::Error {
        let path = location.to_string();
        match error.kind() {
            ErrorKind::NotFound => object_store::Error::NotFound {
                path,
                source: Box::new(error),
            },
            ErrorKind::PermissionDenied => object_store::Error::PermissionDenied {
                path,
                source: Box::new(error),
            },
            ErrorKind::Unsupported => object_store::Error::NotSupported {
                source: Box::new(error),
            },
            _ => object_store::Error::Generic {
                store: STORE,
                source: Box::new(error),
            },
        }
    }

    fn read_error(&self, location: &Path, error: CacheError) -> object_store::Error {
        match error {
            CacheError::Origin(origin) => match Arc::try_unwrap(origin) {
                Ok(e) => self.error(location, e),
                Err(shared) => object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(CacheError::Origin(shared)),
                },
            },
            other => object_store::Error::Generic {
                store: STORE,
                source: Box::new(other),
            },
        }
    }

    fn not_implemented(&self, operation: &str) -> object_store::Error {
        object_store::Error::NotImplemented {
            operation: operation.to_string(),
            implementer: format!("{STORE} '{}'", self.volume()),
        }
    }

    /// The file's metadata: as listed or looked up before, else asked of the origin.
    async fn file_meta(&self, location: &Path) -> object_store::Result<(ObjectPath, VolumeMeta)> {
        let path = self.object_path(location)?;
        if let Some(meta) = self.known.read().get(path.as_str()) {
            return Ok((path, meta.clone()));
        }
        let meta = self
            .reader
            .connector()
            .stat(&path)
            .await
            .map_err(|e| self.error(location, e))?;
        if meta.kind != EntryKind::File {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "a folder, not a file".into(),
            });
        }
        self.known
            .write()
            .insert(path.as_str().to_string(), meta.clone());
        Ok((path, meta))
    }

    /// Bytes `range` (not empty, inside the file) of the file at `path` as `meta` describes it.
    async fn read(
        &self,
        location: &Path,
        path: ObjectPath,
        meta: &VolumeMeta,
        range: Range<u64>,
    ) -> object_store::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let object = ObjectVersion {
            path,
            identity: meta.identity(),
            size: meta.size,
        };
        let plan = if meta.size <= self.reader.page_size() {
            FetchPlan::BlockSpan(0..meta.size)
        } else {
            FetchPlan::Pages
        };
        self.reader
            .read(&object, range.start, range.end - range.start, plan)
            .await
            .map_err(|e| {
                // Changed or gone at the origin: look it up again next time.
                self.known.write().remove(object.path.as_str());
                self.read_error(location, e)
            })
    }

    fn remember(&self, path: &ObjectPath, meta: &VolumeMeta) {
        if meta.kind == EntryKind::File {
            self.known
                .write()
                .insert(path.as_str().to_string(), meta.clone());
        }
    }

    fn store_meta(location: Path, meta: &VolumeMeta) -> ObjectMeta {
        ObjectMeta {
            location,
            last_modified: meta.mtime.unwrap_or(SystemTime::UNIX_EPOCH).into(),
            size: meta.size,
            e_tag: Some(meta.identity().to_string()),
            version: None,
        }
    }

    /// The entries of the folder `path` (NotFound: none).
    async fn entries(
        &self,
        path: &ObjectPath,
    ) -> object_store::Result<Vec<colo_connectors::DirEntry>> {
        match self.reader.connector().list(path).await {
            Ok(entries) => Ok(entries),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.error(&Self::store_path(path), e)),
        }
    }

    /// Deletes `location`, then each folder above it that this left empty.
    async fn delete_one(&self, location: &Path) -> object_store::Result<()> {
        let path = self.object_path(location)?;
        self.known.write().remove(path.as_str());
        let connector = self.reader.connector();
        match connector.delete(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(self.error(location, e)),
        }
        let mut folder = path.parent();
        while let Some(current) = folder.filter(|f| !f.is_root()) {
            if !self.entries(&current).await?.is_empty() {
                break;
            }
            match connector.delete(&current).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.error(&Self::store_path(&current), e)),
            }
            folder = current.parent();
        }
        Ok(())
    }
}

impl fmt::Debug for VolumeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeStore({})", self.volume())
    }
}

impl fmt::Display for VolumeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE} '{}'", self.volume())
    }
}

/// The byte range `range` asks of an object of `size` bytes.
fn byte_range(range: Option<&GetRange>, size: u64) -> object_store::Result<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(range) => range
            .as_range(size)
            .map_err(|e| object_store::Error::Generic {
                store: STORE,
                source: Box::new(e),
            }),
    }
}

#[async_trait]
impl ObjectStore for VolumeStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        if options.mode != object_store::PutMode::Overwrite {
            return Err(self.not_implemented("conditional put"));
        }
        let path = self.object_path(location)?;
        let meta = self
            .reader
            .connector()
            .write_object(&path, Bytes::from(payload))
            .await
            .map_err(|e| self.error(location, e))?;
        self.remember(&path, &meta);
        Ok(PutResult {
            e_tag: Some(meta.identity().to_string()),
            version: None,
        })
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(self.not_implemented("multipart upload"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (path, meta) = self.file_meta(location).await?;
        let store_meta = Self::store_meta(location.clone(), &meta);
        options.check_preconditions(&store_meta)?;
        let range = byte_range(options.range.as_ref(), meta.size)?;
        let bytes = if options.head || range.is_empty() {
            Bytes::new()
        } else {
            self.read(location, path, &meta, range.clone()).await?
        };
        let range = if options.head { 0..0 } else { range };
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta: store_meta,
            range,
            attributes: Default::default(),
        })
    }

    /// Ranges no more than a cache page apart are read together, each run through the cache on
    /// its own: object_store's default joins ranges up to 1 MiB apart, which for a Parquet row group
    /// would fetch every column between the ones a query reads.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let (path, meta) = self.file_meta(location).await?;
        if let Some(bad) = ranges.iter().find(|r| r.start > r.end || r.end > meta.size) {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: format!(
                    "range {bad:?} outside the {} bytes of {location}",
                    meta.size
                )
                .into(),
            });
        }
        let (path, meta) = (&path, &meta);
        object_store::coalesce_ranges(
            ranges,
            |range| self.read(location, path.clone(), meta, range),
            self.reader.page_size(),
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .then(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    store.delete_one(&location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        let listed = async move {
            let start = store.object_path(&prefix)?;
            let mut files = Vec::new();
            let mut folders = vec![start];
            while let Some(folder) = folders.pop() {
                for entry in store.entries(&folder).await? {
                    let Ok(path) = folder.child(&entry.name) else {
                        continue;
                    };
                    match entry.meta.kind {
                        EntryKind::Directory => folders.push(path),
                        EntryKind::File => {
                            store.remember(&path, &entry.meta);
                            files.push(Self::store_meta(Self::store_path(&path), &entry.meta));
                        }
                        EntryKind::Symlink => {}
                    }
                }
            }
            files.sort_by(|a, b| a.location.cmp(&b.location));
            Ok::<_, object_store::Error>(files)
        };
        futures::stream::once(listed)
            .flat_map(|listed| {
                let items: Vec<object_store::Result<ObjectMeta>> = match listed {
                    Ok(files) => files.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = prefix.cloned().unwrap_or_default();
        let folder = self.object_path(&prefix)?;
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for entry in self.entries(&folder).await? {
            let Ok(path) = folder.child(&entry.name) else {
                continue;
            };
            match entry.meta.kind {
                EntryKind::Directory => result.common_prefixes.push(Self::store_path(&path)),
                EntryKind::File => {
                    self.remember(&path, &entry.meta);
                    result
                        .objects
                        .push(Self::store_meta(Self::store_path(&path), &entry.meta));
                }
                // Table files are read by name; links are not followed.
                EntryKind::Symlink => {}
            }
        }
        Ok(result)
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(self.not_implemented("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colo_cache::{MemoryCache, TieredCache};
    use colo_connectors::MemoryConnector;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    fn store() -> (VolumeStore, Arc<MemoryConnector>) {
        let origin = Arc::new(MemoryConnector::new("archive"));
        let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(8 << 20)), None));
        let reader =
            ReadThrough::new(origin.clone(), cache, 64 * 1024, 1 << 20).with_page_size(4096);
        (VolumeStore::new(reader), origin)
    }

    fn reads(origin: &MemoryConnector) -> u64 {
        origin.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[tokio::test]
    async fn writes_read_back_in_ranges_through_the_cache() {
        let (store, origin) = store();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let path = Path::from("t/data-1/Norder=0/Npix=3.parquet");
        store
            .put(&path, PutPayload::from(data.clone()))
            .await
            .expect("put");
        assert_eq!(store.head(&path).await.expect("head").size, 200_000);
        let tail = store
            .get_opts(
                &path,
                GetOptions::new().with_range(Some(GetRange::Suffix(1000))),
            )
            .await
            .expect("suffix");
        assert_eq!(tail.range, 199_000..200_000);
        assert_eq!(tail.bytes().await.expect("bytes")[..], data[199_000..]);
        // Two far-apart ranges: two runs of pages, not the 150 KB between them.
        let before = reads(&origin);
        let parts = store
            .get_ranges(&path, &[10..20, 150_000..150_100])
            .await
            .expect("ranges");
        assert_eq!(parts[0][..], data[10..20]);
        assert_eq!(parts[1][..], data[150_000..150_100]);
        assert_eq!(reads(&origin) - before, 2);
        // Again: all from the cache.
        let before = reads(&origin);
        store
            .get_ranges(&path, &[10..20, 150_000..150_100])
            .await
            .expect("cached");
        assert_eq!(reads(&origin), before);
    }

    #[tokio::test]
    async fn listings_and_deletes_keep_the_folder_shape() {
        let (store, origin) = store();
        for name in [
            "t/a.toml",
            "t/data-1/Norder=0/Npix=1.parquet",
            "t/data-1/Norder=0/Npix=2.parquet",
        ] {
            store
                .put(&Path::from(name), PutPayload::from_static(b"x"))
                .await
                .expect("put");
        }
        let top = store
            .list_with_delimiter(Some(&Path::from("t")))
            .await
            .expect("listing");
        assert_eq!(top.common_prefixes, [Path::from("t/data-1")]);
        assert_eq!(top.objects[0].location, Path::from("t/a.toml"));
        let all: Vec<Path> = store
            .list(Some(&Path::from("t/data-1")))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .expect("list");
        assert_eq!(all.len(), 2);
        for path in all {
            store.delete(&path).await.expect("delete");
        }
        assert_eq!(origin.len_files(), 1);
        let top = store
            .list_with_delimiter(Some(&Path::from("t")))
            .await
            .expect("listing");
        assert!(top.common_prefixes.is_empty(), "{top:?}");
        let missing = store
            .head(&Path::from("t/none"))
            .await
            .expect_err("missing");
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn an_origin_failure_names_the_volume() {
        let (store, origin) = store();
        let path = Path::from("f.parquet");
        store
            .put(&path, PutPayload::from(vec![7u8; 10_000]))
            .await
            .expect("put");
        origin.set_down(true);
        let e = store.get_range(&path, 0..100).await.expect_err("down");
        let text = e.to_string();
        assert!(
            text.contains("volume 'archive'") && text.contains("unavailable"),
            "{text}"
        );
        assert!(
            store
                .put_multipart(&path)
                .await
                .is_err_and(|e| matches!(e, object_store::Error::NotImplemented { .. }))
        );
    }
}
