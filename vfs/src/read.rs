//! Opening and reading files: `open` pins the file's current version to the handle (and tells
//! the kernel whether its cached pages still hold), reads ask the read-through cache for exactly
//! that version with the fetch plan the access pattern calls for ([`crate::plan`]), and `release`
//! lets the handle go. See [`crate::core`] for the design; writable volumes' handles are in
//! [`crate::write`].

use crate::core::*;
use crate::error::{Result, VfsError};
use crate::metrics::FsOp;
use crate::plan::{self, CHUNKED_FILE_STREAM_BYTES, FILL_PARALLEL_REQUESTS, last_block_start};
use crate::prefetch::{ReadPattern, StreamSet};
use bytes::Bytes;
use colo_cache::{FetchPlan, ObjectVersion};
use colo_connectors::EntryKind;
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl VfsCore {
    /// Open a file for reading, or (on a writable volume) for writing; on a read-only volume
    /// `write` access is refused with `EROFS`.
    pub async fn open(&self, ino: u64, write: bool) -> Result<Opened> {
        self.open_file(ino, write, false).await
    }

    /// [`Self::open`], emptying the file first when `truncate` (`O_TRUNC`).
    pub async fn open_file(&self, ino: u64, write: bool, truncate: bool) -> Result<Opened> {
        let started = Instant::now();
        let result = match self.node(ino)?.volume {
            Some(vol) if self.write_back(vol).is_some() => {
                self.open_writable(ino, vol, write, truncate).await
            }
            _ => self.open_inner(ino, write || truncate).await,
        };
        self.timed(FsOp::Open, started, result)
    }

    /// A read-only handle on a file as the origin has it (on a writable volume: one with no
    /// staged copy; its reads still check the overlay first).
    pub(crate) async fn open_read_only(&self, ino: u64) -> Result<Opened> {
        self.open_inner(ino, false).await
    }

    async fn open_inner(&self, ino: u64, write: bool) -> Result<Opened> {
        let node = self.node(ino)?;
        if write {
            return Err(VfsError::ReadOnly {
                operation: "open for writing",
                path: self.display(&node),
            });
        }
        let Some(vol) = node.volume else {
            return Err(VfsError::IsADirectory { path: "/".into() });
        };
        let attr = self.getattr_inner(ino).await?;
        if attr.kind == EntryKind::Directory {
            return Err(VfsError::IsADirectory {
                path: self.display(&node),
            });
        }
        let meta = self
            .state
            .lock()
            .attrs
            .get(&ino)
            .map(|c| c.meta.clone())
            .ok_or_else(|| VfsError::NotFound {
                path: self.display(&node),
            })?;
        let version = ObjectVersion {
            path: node.path.clone(),
            identity: meta.identity(),
            size: meta.size,
        };
        let keep_cache = {
            let mut st = self.state.lock();
            st.opened
                .insert(ino, version.clone())
                .is_some_and(|previous| previous == version)
        };
        if keep_cache {
            self.stats.opens_keep_cache.fetch_add(1, Ordering::Relaxed);
        }
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let io = self.io_for_open(ino, vol, &version);
        let file = OpenFile {
            ino,
            io: io.clone(),
            writable: None,
            volume: vol,
            shared: self.file_shared(ino, &version),
            extents_key: {
                let mut h = std::hash::DefaultHasher::new();
                (vol, &version).hash(&mut h);
                h.finish()
            },
            version,
            random_reads: Default::default(),
        };
        self.handles.lock().insert(fh, Arc::new(file));
        Ok(Opened { fh, keep_cache, io })
    }

    /// The shared state of `ino` at `version`: that of its other open handles, or a new one.
    pub(crate) fn file_shared(&self, ino: u64, version: &ObjectVersion) -> Arc<FileShared> {
        let mut all = self.files.lock();
        if let Some((v, weak)) = all.get(&ino)
            && v == version
            && let Some(shared) = weak.upgrade()
        {
            return shared;
        }
        let shared = Arc::new(FileShared {
            streams: Mutex::new(StreamSet::new(
                self.options.prefetch_initial_bytes,
                self.options.prefetch_max_bytes,
            )),
        });
        all.insert(ino, (version.clone(), Arc::downgrade(&shared)));
        shared
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle { handle: fh })
    }

    /// Feed the file's streams and start the prefetch they ask for — in a file with known column
    /// chunks (a read with a chunk plan) only once the stream has read
    /// [`CHUNKED_FILE_STREAM_BYTES`].
    fn note_read(&self, file: &OpenFile, offset: u64, size: u32, chunked: bool) -> ReadPattern {
        // The file's share is its handles' shares together: its streams split that, so four
        // readers of one object each keep the window one reader would have (and its requests'
        // size), instead of a quarter of one handle's share each.
        let per_handle = self.options.prefetch_budget_bytes / self.open_handles().max(1) as u64;
        let file_window = per_handle * Arc::strong_count(&file.shared) as u64;
        let hold_bytes = if chunked {
            CHUNKED_FILE_STREAM_BYTES
        } else {
            0
        };
        let pattern =
            file.shared
                .streams
                .lock()
                .on_read(offset, size as u64, file_window, hold_bytes);
        if let Some((start, len)) = pattern.prefetch {
            self.vol(file.volume)
                .reader
                .prefetch(&file.version, start, len);
        }
        pattern
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let started = Instant::now();
        let result = self.read_inner(fh, offset, size).await;
        if let Ok(bytes) = &result {
            self.stats
                .read_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        self.timed(FsOp::Read, started, result)
    }

    async fn read_inner(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        if let Some(file) = self.direct_handle(fh) {
            return self.direct_read(file, offset, size).await;
        }
        let file = self.handle(fh)?;
        if let Some(w) = &file.writable {
            return self.read_writable(&file, w, offset, size).await;
        }
        if let Some(written) = self.read_overlay(&file, offset, size) {
            return written;
        }
        let vol = self.vol(file.volume);
        let reader = &vol.reader;
        let (version, len, block) = (&file.version, size as u64, reader.block_size());
        let chunk_plan = self.chunk_plan(&file, offset, len);
        let chunked = chunk_plan.is_some();
        let pattern = self.note_read(&file, offset, size, chunked);
        let plan = chunk_plan.unwrap_or_else(|| {
            let whole = self.options.whole_file_bytes;
            plan::access_plan(version.size, block, whole, offset, len, pattern.sequential)
        });
        // A read of the last block in whole blocks: the footer of a Parquet file is there.
        let learns_chunks = plan == FetchPlan::Blocks
            && offset + len > last_block_start(version.size, block)
            && self.chunks.get(&file.extents_key).is_none();
        // A reader jumping around a file whose column chunks colo knows is reading chunks (their
        // plans fetch them whole); its other reads are readahead spill, not a reason to fetch the
        // whole file.
        let jumping = plan == FetchPlan::Pages && !chunked;
        let asked = tokio::time::Instant::now();
        // With a chunk's span, the kernel's other pieces of the same chunk are then cache hits, or
        // join the fetch.
        let bytes = reader.read(version, offset, len, plan).await?;
        if jumping
            && version.size <= self.options.random_fill_max_bytes
            && file.random_reads.note(
                asked.elapsed(),
                version.size,
                reader.max_request_bytes(),
                reader.origin_cost(),
            )
        {
            reader.fill(version, FILL_PARALLEL_REQUESTS);
        }
        if learns_chunks {
            let chunks = plan::learn_chunks(reader, version).await;
            self.chunks.insert(file.extents_key, chunks);
        }
        Ok(bytes)
    }

    /// The plan of a read in a file whose column chunks are known (see [`plan::chunk_plan`]).
    fn chunk_plan(&self, file: &OpenFile, offset: u64, len: u64) -> Option<FetchPlan> {
        let chunks = self.chunks.get(&file.extents_key)??;
        let block = self.vol(file.volume).reader.block_size();
        plan::chunk_plan(&chunks, file.version.size, block, offset, len)
    }

    /// A read answered from the memory tier without waiting, or `None` (then use [`Self::read`]).
    /// Must run inside the tokio runtime's context (prefetches are spawned on it).
    pub fn read_from_memory(&self, fh: u64, offset: u64, size: u32) -> Option<Bytes> {
        let started = Instant::now();
        let file = self.handle(fh).ok()?;
        if file.writable.is_some()
            || self
                .write_back(file.volume)
                .is_some_and(|wb| wb.lookup(file.version.path.as_str()).is_some())
        {
            return None;
        }
        let vol = self.vol(file.volume);
        let reader = &vol.reader;
        let bytes = reader.read_from_memory(&file.version, offset, size as u64)?;
        let chunked = self.chunk_plan(&file, offset, size as u64).is_some();
        self.note_read(&file, offset, size, chunked);
        self.stats.fast_reads.fetch_add(1, Ordering::Relaxed);
        self.stats
            .read_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.stats.record(FsOp::Read, started.elapsed(), true);
        Some(bytes)
    }

    pub fn release(&self, fh: u64) {
        if self.direct_release(fh) {
            return;
        }
        let Some(file) = self.handles.lock().remove(&fh) else {
            return;
        };
        if let Some(w) = &file.writable {
            self.release_writable(&file, w);
        } else {
            self.io_released(file.ino, file.volume, &file.io, &file.version);
        }
        let shared = Arc::downgrade(&file.shared);
        drop(file);
        if shared.strong_count() == 0 {
            // The file's last handle (reads still running hold theirs; a later open then finds
            // the entry dead and replaces it).
            self.files
                .lock()
                .retain(|_, (_, weak)| weak.strong_count() > 0);
        }
    }

    pub fn open_handles(&self) -> usize {
        self.handles.lock().len()
    }
}
