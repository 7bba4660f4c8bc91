//! An in-memory connector with fault injection, for unit tests of the layers above and for the
//! behaviour suite's always-on run. It behaves like an object store with ETags: every `put` makes a
//! new version with a new ETag, and reads honour the identity contract.
//!
//! Faults: [`MemoryConnector::fail_next`] makes the next N requests fail as Unavailable;
//! [`MemoryConnector::set_down`] fails everything until lifted; [`MemoryConnector::set_delay`] slows
//! every request; [`MemoryConnector::set_link`] makes reads cost what they would on a real store
//! (a latency, then the bytes at a rate — on tokio's clock, so a test with paused time measures
//! exact costs without waiting). Counters tell how many reads and lists reached the "origin", and the most reads
//! that were in progress at once.

use crate::connector::{Capability, Connector, DirEntry, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    mtime: SystemTime,
    etag: String,
    /// A symbolic link: `data` is its target.
    link: bool,
}

#[derive(Debug, Default)]
pub struct MemoryConnector {
    volume: String,
    objects: Mutex<BTreeMap<String, Object>>,
    /// Folders made by `create_dir` (others are implied by the objects under them).
    folders: Mutex<std::collections::BTreeSet<String>>,
    versions: AtomicU64,
    fail_next: AtomicUsize,
    down: AtomicBool,
    delay_ms: AtomicU64,
    /// A read's latency (µs) and bytes per second (0: unlimited): see `set_link`.
    link_latency_micros: AtomicU64,
    link_bytes_per_sec: AtomicU64,
    /// Requests that reached this connector, by kind.
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    /// Reads in progress now, and the most there have been at once.
    pub reads_in_progress: AtomicU64,
    pub most_reads_at_once: AtomicU64,
    /// Answer like FTP or SFTP: no ETags, mtimes in whole seconds (see `set_seconds_only`).
    seconds_only: AtomicBool,
    /// Writes (and deletes) in progress now, and the most there have been at once.
    pub writes_in_progress: AtomicU64,
    pub most_writes_at_once: AtomicU64,
    pub stats: AtomicU64,
    pub lists: AtomicU64,
}

impl MemoryConnector {
    pub fn new(volume: &str) -> Self {
        MemoryConnector {
            volume: volume.to_string(),
            ..Default::default()
        }
    }

    /// Create or replace a file (directories are implied by paths, as in object stores).
    pub fn put(&self, path: &str, data: impl Into<Bytes>) {
        let path = ObjectPath::parse(path)
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|e| panic!("test path {path:?}: {e}"));
        let v = self.versions.fetch_add(1, Ordering::SeqCst) + 1;
        let obj = Object {
            data: data.into(),
            mtime: SystemTime::now(),
            etag: format!("\"v{v}\""),
            link: false,
        };
        self.objects.lock().insert(path, obj);
    }

    /// The symbolic links the connector holds, with their targets.
    pub fn links(&self) -> BTreeMap<String, String> {
        self.objects
            .lock()
            .iter()
            .filter(|(_, o)| o.link)
            .map(|(k, o)| (k.clone(), String::from_utf8_lossy(&o.data).into_owned()))
            .collect()
    }

    /// How many files the connector holds, and their bytes.
    pub fn len_files(&self) -> usize {
        self.objects.lock().len()
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects
            .lock()
            .values()
            .map(|o| o.data.len() as u64)
            .sum()
    }

    /// Every file with its bytes, by path (for tests comparing trees).
    pub fn files(&self) -> BTreeMap<String, Bytes> {
        self.objects
            .lock()
            .iter()
            .filter(|(_, o)| !o.link)
            .map(|(k, o)| (k.clone(), o.data.clone()))
            .collect()
    }

    /// Every folder, made by `create_dir` or implied by a file under it.
    pub fn folders(&self) -> std::collections::BTreeSet<String> {
        let mut all = self.folders.lock().clone();
        for k in self.objects.lock().keys() {
            let mut at = k.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                all.insert(parent.to_string());
                at = parent;
            }
        }
        all
    }

    pub fn remove(&self, path: &str) {
        self.objects.lock().remove(path.trim_matches('/'));
    }

    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Identify versions like FTP and SFTP do: by size and an mtime in whole seconds, no ETag.
    pub fn set_seconds_only(&self, on: bool) {
        self.seconds_only.store(on, Ordering::SeqCst);
    }

    fn meta_of(&self, o: &Object) -> ObjectMeta {
        if o.link {
            return ObjectMeta::symlink(o.data.len() as u64, Some(o.mtime));
        }
        if self.seconds_only.load(Ordering::SeqCst) {
            let secs = o
                .mtime
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mtime = std::time::UNIX_EPOCH + Duration::from_secs(secs);
            return ObjectMeta::file(o.data.len() as u64, Some(mtime), None);
        }
        ObjectMeta::file(o.data.len() as u64, Some(o.mtime), Some(o.etag.clone()))
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every later read takes `latency` and then its bytes at `bytes_per_sec` (0: no limit).
    pub fn set_link(&self, latency: Duration, bytes_per_sec: u64) {
        self.link_latency_micros
            .store(latency.as_micros() as u64, Ordering::SeqCst);
        self.link_bytes_per_sec
            .store(bytes_per_sec, Ordering::SeqCst);
    }

    /// What a read of `bytes` takes on the link.
    fn link_time(&self, bytes: u64) -> Duration {
        let latency = Duration::from_micros(self.link_latency_micros.load(Ordering::SeqCst));
        let rate = self.link_bytes_per_sec.load(Ordering::SeqCst);
        let transfer = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(bytes as f64 / rate as f64)
        };
        latency + transfer
    }

    async fn gate(&self, path: &ObjectPath) -> Result<()> {
        let d = self.delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        let injected = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if injected || self.down.load(Ordering::SeqCst) {
            return Err(ConnectorError::unavailable(
                &self.volume,
                &path.to_string(),
                "injected fault",
            ));
        }
        Ok(())
    }

    fn is_dir(&self, objects: &BTreeMap<String, Object>, path: &ObjectPath) -> bool {
        path.is_root()
            || {
                let prefix = format!("{}/", path.as_str());
                let folders = self.folders.lock();
                folders.contains(path.as_str())
                    || folders
                        .range(prefix.clone()..)
                        .next()
                        .is_some_and(|f| f.starts_with(&prefix))
            }
            || {
                let prefix = format!("{}/", path.as_str());
                objects
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&prefix))
            }
    }
}

#[async_trait]
impl Connector for MemoryConnector {
    fn volume(&self) -> &str {
        &self.volume
    }

    fn capability(&self) -> Capability {
        Capability {
            list_has_metadata: true,
            conditional_read: true,
            write: true,
            rename_dirs: true,
            symlinks: true,
        }
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.stats.fetch_add(1, Ordering::Relaxed);
        self.gate(path).await?;
        let objects = self.objects.lock();
        if let Some(o) = objects.get(path.as_str()) {
            return Ok(self.meta_of(o));
        }
        if self.is_dir(&objects, path) {
            return Ok(ObjectMeta::directory(None));
        }
        Err(ConnectorError::not_found(&self.volume, &path.to_string()))
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let now = self.reads_in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_reads_at_once.fetch_max(now, Ordering::SeqCst);
        let gate = self.gate(path).await;
        self.reads_in_progress.fetch_sub(1, Ordering::SeqCst);
        gate?;
        let o = self
            .objects
            .lock()
            .get(path.as_str())
            .cloned()
            .ok_or_else(|| ConnectorError::not_found(&self.volume, &path.to_string()))?;
        if o.link {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: path.to_string(),
                expected: "file",
                actual: "symbolic link",
            });
        }
        let meta = self.meta_of(&o);
        if expect.is_some_and(|id| !id.matches(&meta)) {
            return Err(ConnectorError::stale(&self.volume, &path.to_string()));
        }
        if range.end > o.data.len() as u64 || range.start > range.end {
            return Err(ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: path.to_string(),
                detail: format!("range {range:?} outside {} bytes", o.data.len()),
            });
        }
        let link = self.link_time(range.end - range.start);
        if !link.is_zero() {
            tokio::time::sleep(link).await;
        }
        self.read_bytes
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        Ok(o.data.slice(range.start as usize..range.end as usize))
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.gate(path).await?;
        let objects = self.objects.lock();
        if objects.contains_key(path.as_str()) {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: path.to_string(),
                expected: "directory",
                actual: "file",
            });
        }
        if !self.is_dir(&objects, path) {
            return Err(ConnectorError::not_found(&self.volume, &path.to_string()));
        }
        let prefix = if path.is_root() {
            String::new()
        } else {
            format!("{}/", path.as_str())
        };
        let mut out: Vec<DirEntry> = Vec::new();
        let made: Vec<String> = self
            .folders
            .lock()
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next().filter(|n| !n.is_empty()))
            .map(str::to_string)
            .collect();
        for (k, o) in objects.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    if out.last().is_none_or(|e| e.name != dir) {
                        out.push(DirEntry {
                            name: dir.to_string(),
                            meta: ObjectMeta::directory(None),
                        });
                    }
                }
                None => out.push(DirEntry {
                    name: rest.to_string(),
                    meta: self.meta_of(o),
                }),
            }
        }
        for name in made {
            if !out.iter().any(|e| e.name == name) {
                out.push(DirEntry {
                    name,
                    meta: ObjectMeta::directory(None),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        let now = self.writes_in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_writes_at_once.fetch_max(now, Ordering::SeqCst);
        let gate = self.gate(path).await;
        self.writes_in_progress.fetch_sub(1, Ordering::SeqCst);
        gate?;
        if path.is_root() || self.is_dir(&self.objects.lock(), path) {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: path.to_string(),
                expected: "file",
                actual: "directory",
            });
        }
        self.put(path.as_str(), bytes);
        let objects = self.objects.lock();
        let o = &objects[path.as_str()];
        Ok(self.meta_of(o))
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.gate(path).await?;
        let mut objects = self.objects.lock();
        if objects.remove(path.as_str()).is_some() {
            return Ok(());
        }
        let prefix = format!("{}/", path.as_str());
        let has_children = objects.keys().any(|k| k.starts_with(&prefix))
            || self.folders.lock().iter().any(|f| f.starts_with(&prefix));
        if !has_children && self.folders.lock().remove(path.as_str()) {
            return Ok(());
        }
        if self.is_dir(&objects, path) {
            return Err(ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: path.to_string(),
                detail: "directory not empty".into(),
            });
        }
        Err(ConnectorError::not_found(&self.volume, &path.to_string()))
    }

    async fn symlink(&self, path: &ObjectPath, target: &str) -> Result<()> {
        self.gate(path).await?;
        let mut objects = self.objects.lock();
        if path.is_root() || objects.contains_key(path.as_str()) || self.is_dir(&objects, path) {
            return Err(ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: path.to_string(),
                detail: "already exists".into(),
            });
        }
        let v = self.versions.fetch_add(1, Ordering::SeqCst) + 1;
        let link = Object {
            data: Bytes::copy_from_slice(target.as_bytes()),
            mtime: SystemTime::now(),
            etag: format!("\"v{v}\""),
            link: true,
        };
        objects.insert(path.as_str().to_string(), link);
        Ok(())
    }

    async fn read_link(&self, path: &ObjectPath) -> Result<String> {
        self.stats.fetch_add(1, Ordering::Relaxed);
        self.gate(path).await?;
        match self.objects.lock().get(path.as_str()) {
            Some(o) if o.link => Ok(String::from_utf8_lossy(&o.data).into_owned()),
            Some(_) => Err(ConnectorError::InvalidInput {
                volume: self.volume.clone(),
                path: path.to_string(),
                detail: "not a symbolic link".into(),
            }),
            None => Err(ConnectorError::not_found(&self.volume, &path.to_string())),
        }
    }

    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        self.gate(path).await?;
        if self.objects.lock().contains_key(path.as_str()) {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: path.to_string(),
                expected: "directory",
                actual: "file",
            });
        }
        let mut folders = self.folders.lock();
        let mut at = path.as_str();
        while !at.is_empty() {
            folders.insert(at.to_string());
            at = at.rsplit_once('/').map(|(parent, _)| parent).unwrap_or("");
        }
        Ok(())
    }

    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        self.gate(from).await?;
        let mut objects = self.objects.lock();
        if let Some(o) = objects.remove(from.as_str()) {
            objects.insert(to.as_str().to_string(), o);
            return Ok(());
        }
        if !self.is_dir(&objects, from) {
            return Err(ConnectorError::not_found(&self.volume, &from.to_string()));
        }
        let (old, new) = (format!("{}/", from.as_str()), format!("{}/", to.as_str()));
        let moved: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(&old))
            .cloned()
            .collect();
        for k in moved {
            let o = objects.remove(&k).expect("listed above");
            objects.insert(format!("{new}{}", &k[old.len()..]), o);
        }
        let mut folders = self.folders.lock();
        let renamed: Vec<String> = folders
            .iter()
            .filter(|f| *f == from.as_str() || f.starts_with(&old))
            .cloned()
            .collect();
        for f in renamed {
            folders.remove(&f);
            folders.insert(format!("{}{}", to.as_str(), &f[from.as_str().len()..]));
        }
        Ok(())
    }
}
