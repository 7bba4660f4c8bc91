//! Whole-file copies for FUSE passthrough: a file whose every block is in the cache tiers is
//! written out once as one plain file (`<cache dir>/whole/<digest>`, the digest of volume, path,
//! identity and size), so the kernel can read it directly — at local-disk speed, with no FUSE
//! round trip per read.
//!
//! Correctness: the copy is named by the object's identity (its ETag, or size and mtime), so a file
//! changed at the origin has another name and never finds the old copy. The copy is assembled
//! from blocks that were each checked (CRC) when read from the disk tier, and its size and mtime
//! are recorded when it is made: a copy whose size or mtime differ when it is opened (written to by
//! anything else) is deleted and not used. The records live in memory only, so copies left by an
//! earlier run are removed at start (they are rebuilt from the blocks when wanted). Copies have a
//! size cap of their own; the oldest go first.

use crate::error::{CacheError, Result};
use crate::read_through::{ObjectVersion, ReadThrough};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A copy as it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Made {
    size: u64,
    mtime: SystemTime,
    /// Order of making (the oldest is evicted first).
    serial: u64,
}

#[derive(Debug, Default)]
pub struct WholeFileStats {
    /// Copies made.
    pub made: AtomicU64,
    /// Copies found changed on disk and dropped.
    pub dropped_changed: AtomicU64,
    /// Copies removed to stay within the cap.
    pub evicted: AtomicU64,
}

#[derive(Debug)]
pub struct WholeFiles {
    dir: PathBuf,
    capacity_bytes: u64,
    made: Mutex<HashMap<String, Made>>,
    /// Copies being made now (one maker per copy).
    making: Mutex<HashSet<String>>,
    serial: AtomicU64,
    stats: WholeFileStats,
}

impl WholeFiles {
    /// Copies under `dir` (emptied: see the module note), at most `capacity_bytes` together.
    pub fn open(dir: &Path, capacity_bytes: u64) -> Result<WholeFiles> {
        let io = |e: std::io::Error| CacheError::Io {
            path: dir.to_path_buf(),
            source: Arc::new(e),
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        Ok(WholeFiles {
            dir: dir.to_path_buf(),
            capacity_bytes,
            made: Mutex::new(HashMap::new()),
            making: Mutex::new(HashSet::new()),
            serial: AtomicU64::new(0),
            stats: WholeFileStats::default(),
        })
    }

    pub fn stats(&self) -> &WholeFileStats {
        &self.stats
    }

    /// Whether a file of `size` bytes may have a copy (at most a quarter of the cap: one copy
    /// never pushes out all others).
    pub fn fits(&self, size: u64) -> bool {
        size > 0 && size <= self.capacity_bytes / 4
    }

    fn name(volume: &str, obj: &ObjectVersion) -> String {
        let mut h = blake3::Hasher::new();
        for part in [volume, obj.path.as_str(), &obj.identity.to_string()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(&obj.size.to_le_bytes());
        h.finalize().to_hex().to_string()
    }

    /// The copy of `obj` of `volume`, opened for reading, if there is one and it is as made.
    pub fn get(&self, volume: &str, obj: &ObjectVersion) -> Option<std::fs::File> {
        let name = Self::name(volume, obj);
        let made = *self.made.lock().get(&name)?;
        let path = self.dir.join(&name);
        let file = std::fs::File::open(&path).ok();
        let same = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| {
                m.len() == made.size && m.len() == obj.size && m.modified().ok() == Some(made.mtime)
            });
        if same {
            return file;
        }
        self.stats.dropped_changed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(copy = %path.display(), "a whole-file copy changed on disk: not used, removed");
        self.made.lock().remove(&name);
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Whether a copy of `obj` of `volume` has been made (not checked on disk: [`Self::get`] does).
    pub fn has(&self, volume: &str, obj: &ObjectVersion) -> bool {
        self.made.lock().contains_key(&Self::name(volume, obj))
    }

    /// Makes the copy of `obj` from the blocks `reader` has cached (none fetched), if the file
    /// fits and every block is there; whether a copy exists afterwards. The blocks are not looked
    /// over first (the caller has, with [`ReadThrough::missing_blocks`]): the first block found
    /// missing while copying ends the attempt, with the partial copy removed.
    pub async fn make(&self, reader: &ReadThrough, obj: &ObjectVersion) -> bool {
        let volume = reader.connector().volume().to_string();
        let name = Self::name(&volume, obj);
        if self.made.lock().contains_key(&name) {
            return true;
        }
        if !self.fits(obj.size) {
            return false;
        }
        if !self.making.lock().insert(name.clone()) {
            return false;
        }
        let made = self.write(reader, obj, &name).await;
        self.making.lock().remove(&name);
        match made {
            Ok(Some(made)) => {
                self.made.lock().insert(name, made);
                self.stats.made.fetch_add(1, Ordering::Relaxed);
                self.keep_within_cap();
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(error = %e, "a whole-file copy was not made");
                false
            }
        }
    }

    async fn write(
        &self,
        reader: &ReadThrough,
        obj: &ObjectVersion,
        name: &str,
    ) -> std::io::Result<Option<Made>> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        let block = reader.block_size();
        for index in 0..obj.size.div_ceil(block) {
            // From the tiers only (each disk block checked as it is read): a block missing, or
            // gone since the caller looked, ends the attempt.
            let Some(bytes) = reader.cached_block(obj, index).await else {
                drop(file);
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            };
            let want = block.min(obj.size - index * block);
            if bytes.len() as u64 != want {
                drop(file);
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            }
            file.write_all(&bytes)?;
        }
        file.sync_data()?;
        let meta = file.metadata()?;
        drop(file);
        let path = self.dir.join(name);
        std::fs::rename(&tmp, &path)?;
        Ok(Some(Made {
            size: meta.len(),
            mtime: meta.modified()?,
            serial: self.serial.fetch_add(1, Ordering::Relaxed),
        }))
    }

    fn keep_within_cap(&self) {
        let mut made = self.made.lock();
        let mut total: u64 = made.values().map(|m| m.size).sum();
        while total > self.capacity_bytes {
            let Some((oldest, m)) = made
                .iter()
                .min_by_key(|(_, m)| m.serial)
                .map(|(n, m)| (n.clone(), *m))
            else {
                break;
            };
            made.remove(&oldest);
            // An open copy stays readable by whoever has it open.
            let _ = std::fs::remove_file(self.dir.join(&oldest));
            total -= m.size;
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_through::FetchPlan;
    use crate::{MemoryCache, TieredCache};
    use colo_connectors::{Connector, MemoryConnector, ObjectPath};
    use std::io::Read;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn reader(size: usize) -> (Arc<MemoryConnector>, ReadThrough, ObjectVersion) {
        reader_at("f.bin", size).await
    }

    async fn reader_at(
        name: &str,
        size: usize,
    ) -> (Arc<MemoryConnector>, ReadThrough, ObjectVersion) {
        let m = Arc::new(MemoryConnector::new("mem"));
        m.put(name, data(size));
        let path = ObjectPath::parse(name).expect("path");
        let meta = m.stat(&path).await.expect("stat");
        let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(64 << 20)), None));
        let rt = ReadThrough::new(m.clone(), cache, 1000, 8000);
        let obj = ObjectVersion {
            path,
            identity: meta.identity(),
            size: meta.size,
        };
        (m, rt, obj)
    }

    fn read_all(mut f: std::fs::File) -> Vec<u8> {
        let mut out = Vec::new();
        f.read_to_end(&mut out).expect("read");
        out
    }

    #[tokio::test]
    async fn a_copy_is_made_only_from_a_wholly_cached_file_and_never_fetches() {
        let dir = tempfile::tempdir().expect("dir");
        let whole = WholeFiles::open(&dir.path().join("whole"), 1 << 20).expect("open");
        let (m, rt, obj) = reader(10_500).await;
        rt.read(&obj, 0, 5000, FetchPlan::Blocks)
            .await
            .expect("read");
        let reads = m.reads.load(Ordering::Relaxed);
        assert!(!whole.make(&rt, &obj).await, "half cached: no copy");
        assert!(whole.get("mem", &obj).is_none());
        assert!(!whole.has("mem", &obj));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("whole"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "the partial copy is removed: {left:?}");
        assert_eq!(
            m.reads.load(Ordering::Relaxed),
            reads,
            "making fetches nothing"
        );
        rt.read(&obj, 5000, 5500, FetchPlan::Blocks)
            .await
            .expect("read");
        assert!(whole.make(&rt, &obj).await);
        assert!(whole.has("mem", &obj));
        assert_eq!(
            read_all(whole.get("mem", &obj).expect("a copy")),
            data(10_500)
        );
        assert_eq!(whole.stats().made.load(Ordering::Relaxed), 1);
        // Another version of the file (changed at the origin) has no copy.
        let other = ObjectVersion {
            identity: colo_connectors::ObjectIdentity::SizeMtime {
                size: 10_500,
                mtime_ns: 7,
            },
            ..obj.clone()
        };
        assert!(whole.get("mem", &other).is_none());
        assert!(whole.get("other-volume", &obj).is_none());
    }

    #[tokio::test]
    async fn a_copy_changed_on_disk_is_dropped_and_the_cap_evicts_the_oldest() {
        let dir = tempfile::tempdir().expect("dir");
        let whole = WholeFiles::open(&dir.path().join("whole"), 40_000).expect("open");
        let (_m, rt, obj) = reader(10_000).await;
        rt.read(&obj, 0, 10_000, FetchPlan::Blocks)
            .await
            .expect("read");
        assert!(whole.make(&rt, &obj).await);
        let path = dir.path().join("whole").join(WholeFiles::name("mem", &obj));
        // Something else writes into the copy: its mtime moves, so it is not trusted.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.write_all(b"damage").expect("write");
        drop(f);
        assert!(whole.get("mem", &obj).is_none());
        assert!(!path.exists());
        assert_eq!(whole.stats().dropped_changed.load(Ordering::Relaxed), 1);
        // Remade, then five more copies of 10,000 bytes into a cap of 40,000: the oldest go.
        assert!(whole.make(&rt, &obj).await);
        for i in 0..4 {
            let (_m, rt2, obj2) = reader_at(&format!("g{i}.bin"), 10_000).await;
            rt2.read(&obj2, 0, 10_000, FetchPlan::Blocks)
                .await
                .expect("read");
            assert!(whole.make(&rt2, &obj2).await);
        }
        assert!(whole.made.lock().values().map(|m| m.size).sum::<u64>() <= 40_000);
        assert!(
            whole.get("mem", &obj).is_none(),
            "the oldest copy was evicted"
        );
        // Too large for a quarter of the cap: never copied.
        assert!(!whole.fits(10_001));
    }
}
