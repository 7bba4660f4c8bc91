//! Write-back for writable volumes: what programs write is staged on the local disk, recorded in
//! a journal, and applied at the origin in the order it happened.
//!
//! Design (after rclone's VFS write-back, made crash-safe): a file opened for writing gets a
//! staged copy ([`staged`]); writes go there, reads of the file come from there. When a program
//! closes (flushes) the file, the copy is sealed and an `Upload` is appended to the [`journal`];
//! `unlink`, `mkdir`, `rmdir` and `symlink` (where the backend keeps links) are journal records too; renaming a file with a staged copy is
//! an upload under the new name and a delete of the old one (the staged copy is shared, and the
//! first upload is skipped when its delete follows), so the overlay after a replay is exactly
//! what the journal's uploads and deletes say. One worker per
//! volume applies the records strictly in order ([`worker`]), each with one whole-object write
//! (atomic at the origin: readers there see the old file or the new one, never a part), and
//! appends `Done` (synced) before the staged copy may go. After `kill -9` or a reboot,
//! [`WriteBack::open`] reads the journal and the worker finishes what was pending.
//!
//! The *overlay* is what the pending changes make of the tree, by path: files with their staged
//! copy, new folders, and removed names. The VFS answers from it first, so programs see their own
//! changes at once; an entry leaves the overlay when every change touching its path is done and no
//! program has the file open for writing — the origin shows it by then.
//!
//! Guarantees: a file written and closed survives a crash of colo (journal and staged copy are in
//! the page cache); a file fsynced survives a power loss (both synced) and is, unless the origin is
//! unreachable for [`FSYNC_WAIT`], at the origin when `fsync` returns. An upload never overwrites
//! an origin copy someone else changed meanwhile: the user's version goes beside it under a
//! conflict name (see [`conflict_name`]).

pub mod journal;
mod names;
mod recovery;
pub mod staged;
mod worker;

pub use journal::{Base, Change};
pub use staged::StagedFile;
pub use worker::{Step, conflict_name};

use crate::error::{CacheError, Result};
use crate::read_through::{FetchPlan, ObjectVersion, ReadThrough};
use journal::{Journal, Record};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// How long `fsync` waits for the origin, by default, before it returns with the change durable
/// locally (the journal and the staged copy are synced; the upload goes on in the background).
pub const FSYNC_WAIT: Duration = Duration::from_secs(30);

/// Bytes per origin read when a file opened for writing is first copied to the staging area.
const FILL_READ_BYTES: u64 = 8 << 20;

/// What the overlay says about a path.
#[derive(Debug, Clone)]
pub enum Pending {
    File(Arc<StagedFile>),
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// Removed here; the origin may still show it.
    Gone,
}

/// A file open for writing: its current staged copy and the handles writing to it.
#[derive(Debug)]
struct Session {
    staged: Arc<StagedFile>,
    base: Base,
    writers: usize,
    /// Written since the last commit.
    dirty: bool,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    next_staged: u64,
    queue: VecDeque<Queued>,
    overlay: BTreeMap<String, Pending>,
    /// Pending changes touching each path.
    touches: HashMap<String, usize>,
    /// When the last change was queued (a burst holds the worker back: `worker`).
    last_queued: Option<Instant>,
    sessions: HashMap<String, Session>,
    /// Staged copies of queued uploads, by id, with how many queued uploads send each.
    uploads: HashMap<u64, (Arc<StagedFile>, usize)>,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    change: Change,
    since: Instant,
    /// Queued again from the journal: an earlier run may have applied it just before stopping.
    replayed: bool,
    /// Being applied now (the worker runs independent changes side by side).
    running: bool,
}

/// What is pending and what went wrong, for `colo status` and `/metrics`.
#[derive(Debug, Default)]
pub struct WriteBackStats {
    pub uploads: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub applied: AtomicU64,
    pub conflicts: AtomicU64,
    pub retries: AtomicU64,
    /// Changes the origin refused for good (their staged copies are kept under `failed/`).
    pub failed: AtomicU64,
    /// Changes found torn at start (a power loss took their staged bytes, which no `fsync` had
    /// made durable): dropped, never uploaded.
    pub lost: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// A snapshot of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    pub changes: usize,
    pub bytes: u64,
    pub oldest: Option<Duration>,
}

pub struct WriteBack {
    dir: PathBuf,
    staged_dir: PathBuf,
    /// Emptied staged files, recycled for new ones.
    spares: Arc<staged::Spares>,
    reader: ReadThrough,
    state: Mutex<State>,
    journal: Mutex<Journal>,
    /// Wakes the worker (a change queued) and waiters (a change done).
    queued: tokio::sync::Notify,
    done: tokio::sync::watch::Sender<u64>,
    stats: WriteBackStats,
    /// How long `fsync` waits for the origin ([`FSYNC_WAIT`] unless configured).
    fsync_wait: Mutex<Duration>,
    /// What the origin said of the last upload of each path (this run), see `worker`.
    last_uploaded: Mutex<HashMap<String, colo_connectors::ObjectMeta>>,
    /// Callers waiting for changes to be done: the worker holds nothing back meanwhile.
    waiters: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for WriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBack").field("dir", &self.dir).finish()
    }
}

/// One caller waiting for changes, counted for as long as it waits (see `worker`: no hold then).
struct Waiting<'a>(&'a WriteBack);

impl<'a> Waiting<'a> {
    fn new(wb: &'a WriteBack) -> Self {
        wb.waiters.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        wb.queued.notify_one();
        Waiting(wb)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiters
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CacheError + '_ {
    move |e| CacheError::Io {
        path: path.to_path_buf(),
        source: Arc::new(e),
    }
}

impl WriteBack {
    /// Opens the write-back area `dir` of the volume `reader` serves: replays its journal (the
    /// changes an earlier run left pending are queued again, in order) and removes staged copies
    /// nothing refers to (files being written when colo stopped, never closed). Start the worker
    /// with [`WriteBack::spawn_worker`].
    pub fn open(dir: &Path, reader: ReadThrough) -> Result<Arc<WriteBack>> {
        let staged_dir = dir.join("staged");
        std::fs::create_dir_all(&staged_dir).map_err(io_err(&staged_dir))?;
        let journal_path = dir.join("journal");
        let (journal, pending) = Journal::open(&journal_path).map_err(io_err(&journal_path))?;
        let mut state = State::default();
        let mut highest_staged = 0;
        for entry in std::fs::read_dir(&staged_dir).map_err(io_err(&staged_dir))? {
            let entry = entry.map_err(io_err(&staged_dir))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            {
                highest_staged = highest_staged.max(id);
            }
        }
        let now = Instant::now();
        let stats = WriteBackStats::default();
        let mut recovery = recovery::Recovery::new(&staged_dir);
        let spares = staged::Spares::new(&staged_dir);
        for (seq, change) in pending {
            if !recovery.keep(seq, &change).map_err(io_err(&staged_dir))? {
                state.next_seq = state.next_seq.max(seq);
                continue;
            }
            if let Change::Upload { staged, .. } = &change {
                match state.uploads.get_mut(staged) {
                    Some((_, n)) => *n += 1,
                    None => {
                        let file = recovery.take(*staged).expect("an intact upload's copy");
                        state
                            .uploads
                            .insert(*staged, (Arc::new(file.returning_to(&spares)), 1));
                    }
                }
            }
            state.next_seq = state.next_seq.max(seq);
            let queued = Queued {
                seq,
                change,
                since: now,
                replayed: true,
                running: false,
            };
            Self::apply_to_overlay(&mut state, &queued.change);
            *state
                .touches
                .entry(queued.change.path().to_string())
                .or_default() += 1;
            state.queue.push_back(queued);
        }
        for entry in std::fs::read_dir(&staged_dir).map_err(io_err(&staged_dir))? {
            let entry = entry.map_err(io_err(&staged_dir))?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_none_or(|id| !state.uploads.contains_key(&id)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        state.next_staged = highest_staged + 1;
        let mut journal = journal;
        let mut lost = std::collections::HashSet::new();
        for (seq, change) in &recovery.dropped {
            tracing::error!(volume = %reader.connector().volume(), ?change, "a file closed but never fsynced lost its bytes in a power loss or system crash before they went up: the origin keeps its earlier version");
            if let Change::Upload { path, staged, .. } = change
                && lost.insert(*staged)
            {
                stats
                    .lost
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *stats.last_error.lock() = Some(format!(
                    "{path}: lost in a power loss before it was fsynced or uploaded"
                ));
            }
            journal
                .append(&Record::Done { seq: *seq })
                .map_err(io_err(&journal_path))?;
        }
        let (done, _) = tokio::sync::watch::channel(0);
        Ok(Arc::new(WriteBack {
            dir: dir.to_path_buf(),
            staged_dir,
            spares,
            reader,
            state: Mutex::new(state),
            journal: Mutex::new(journal),
            queued: tokio::sync::Notify::new(),
            done,
            stats,
            fsync_wait: Mutex::new(FSYNC_WAIT),
            last_uploaded: Mutex::new(HashMap::new()),
            waiters: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// How long `fsync` waits for the origin before it returns with the bytes durable locally.
    pub fn set_fsync_wait(&self, wait: Duration) {
        *self.fsync_wait.lock() = wait;
    }

    /// What the origin answered for the last upload of `path` by this run (its size and
    /// identity), if it is still known: the VFS's attributes of the file while the origin is away.
    pub fn uploaded_meta(&self, path: &str) -> Option<colo_connectors::ObjectMeta> {
        self.last_uploaded.lock().get(path).cloned()
    }

    pub fn stats(&self) -> &WriteBackStats {
        &self.stats
    }

    /// The origin changes go to.
    pub fn connector(&self) -> &Arc<dyn colo_connectors::Connector> {
        self.reader.connector()
    }

    pub fn volume(&self) -> &str {
        self.reader.connector().volume()
    }

    /// What the overlay says about `path`, if anything.
    pub fn lookup(&self, path: &str) -> Option<Pending> {
        let st = self.state.lock();
        if let Some(s) = st.sessions.get(path)
            && !matches!(st.overlay.get(path), Some(Pending::Gone))
        {
            return Some(Pending::File(s.staged.clone()));
        }
        st.overlay.get(path).cloned()
    }

    /// The overlay's entries directly under folder `dir` ("" for the root).
    pub fn children(&self, dir: &str) -> Vec<(String, Pending)> {
        let st = self.state.lock();
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        st.overlay
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| {
                let name = &k[prefix.len()..];
                (!name.is_empty() && !name.contains('/')).then(|| (name.to_string(), v.clone()))
            })
            .collect()
    }

    /// Whether a file under folder `dir` is open for writing.
    pub fn writing_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.state
            .lock()
            .sessions
            .keys()
            .any(|k| k.starts_with(&prefix))
    }

    fn new_staged(&self, st: &mut State) -> Result<StagedFile> {
        let id = st.next_staged;
        st.next_staged += 1;
        self.spares.new_file(id).map_err(io_err(&self.staged_dir))
    }

    /// The base of a change to `path` from a program: ours if an earlier change of ours is pending.
    fn base_for(st: &State, path: &str, origin: Base) -> Base {
        if st.touches.get(path).copied().unwrap_or(0) > 0 {
            Base::Ours
        } else {
            origin
        }
    }

    /// A new, empty file at `path`, open for writing by one handle (replaces what was there).
    pub fn create(&self, path: &str) -> Result<()> {
        let mut st = self.state.lock();
        let staged = Arc::new(self.new_staged(&mut st)?);
        let base = Self::base_for(&st, path, Base::New);
        st.overlay
            .insert(path.to_string(), Pending::File(staged.clone()));
        let writers = st.sessions.get(path).map(|s| s.writers).unwrap_or(0) + 1;
        st.sessions.insert(
            path.to_string(),
            Session {
                staged,
                base,
                writers,
                dirty: true,
            },
        );
        Ok(())
    }

    /// Opens `path` for writing by one more handle. A file without a staged copy is copied from
    /// `origin` (its version at the origin) unless `truncate`. Returns false, opening nothing, when
    /// the file has no staged copy (any more: its upload may have just finished) and no `origin`
    /// was given: the caller then asks the origin for its version and calls again.
    pub async fn open_write(
        &self,
        path: &str,
        origin: Option<&ObjectVersion>,
        truncate: bool,
    ) -> Result<bool> {
        {
            let mut st = self.state.lock();
            if let Some(s) = st.sessions.get_mut(path) {
                s.writers += 1;
                drop(st);
                if truncate {
                    self.set_len(path, 0)?;
                }
                return Ok(true);
            }
            if let Some(Pending::File(staged)) = st.overlay.get(path).cloned() {
                st.sessions.insert(
                    path.to_string(),
                    Session {
                        staged,
                        base: Base::Ours,
                        writers: 1,
                        dirty: false,
                    },
                );
                drop(st);
                if truncate {
                    self.set_len(path, 0)?;
                }
                return Ok(true);
            }
        }
        let Some(origin) = origin else {
            return Ok(false);
        };
        // From the origin: copied outside the lock (it may take a while), then installed.
        let staged = {
            let mut st = self.state.lock();
            self.new_staged(&mut st)?
        };
        let base = Base::Version(origin.identity.clone());
        if !truncate {
            let version = origin;
            let mut offset = 0;
            while offset < version.size {
                let bytes = self
                    .reader
                    .read(version, offset, FILL_READ_BYTES, FetchPlan::Blocks)
                    .await?;
                if bytes.is_empty() {
                    break;
                }
                staged
                    .write_at(offset, &bytes)
                    .map_err(io_err(staged.path()))?;
                offset += bytes.len() as u64;
            }
        }
        let staged = Arc::new(staged);
        let mut st = self.state.lock();
        if let Some(s) = st.sessions.get_mut(path) {
            // Another handle opened it meanwhile: share its copy.
            s.writers += 1;
            return Ok(true);
        }
        let base = Self::base_for(&st, path, base);
        st.overlay
            .insert(path.to_string(), Pending::File(staged.clone()));
        st.sessions.insert(
            path.to_string(),
            Session {
                staged,
                base,
                writers: 1,
                dirty: truncate,
            },
        );
        Ok(true)
    }

    /// The session's copy, ready to be written: a copy of it first if it is sealed.
    fn writable(&self, path: &str) -> Result<Arc<StagedFile>> {
        let mut st = self.state.lock();
        let Some(current) = st.sessions.get(path).map(|s| s.staged.clone()) else {
            return Err(CacheError::Task {
                detail: format!("'{path}' is not open for writing"),
            });
        };
        let staged = if current.is_sealed() {
            let id = st.next_staged;
            st.next_staged += 1;
            let copy = Arc::new(
                self.spares
                    .copy_of(&current, id)
                    .map_err(io_err(&self.staged_dir))?,
            );
            if matches!(st.overlay.get(path), Some(Pending::File(_))) {
                st.overlay
                    .insert(path.to_string(), Pending::File(copy.clone()));
            }
            copy
        } else {
            current
        };
        let s = st.sessions.get_mut(path).expect("checked above");
        s.staged = staged.clone();
        s.dirty = true;
        Ok(staged)
    }

    /// Writes `data` at `offset` of the file open for writing at `path`.
    pub fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        let staged = self.writable(path)?;
        staged.write_at(offset, data).map_err(io_err(staged.path()))
    }

    /// Sets the size of the file open for writing at `path`.
    pub fn set_len(&self, path: &str, len: u64) -> Result<()> {
        let staged = self.writable(path)?;
        staged.set_len(len).map_err(io_err(staged.path()))
    }

    /// Bytes of the file at `path` from its staged copy, or `None` if it has none.
    pub fn read(&self, path: &str, offset: u64, len: u64) -> Option<Result<Vec<u8>>> {
        let Some(Pending::File(staged)) = self.lookup(path) else {
            return None;
        };
        Some(staged.read_at(offset, len).map_err(io_err(staged.path())))
    }

    fn enqueue(&self, st: &mut State, change: Change) -> Result<u64> {
        st.next_seq += 1;
        let seq = st.next_seq;
        self.journal
            .lock()
            .append(&Record::Change {
                seq,
                change: change.clone(),
            })
            .map_err(io_err(&self.dir))?;
        *st.touches.entry(change.path().to_string()).or_default() += 1;
        st.queue.push_back(Queued {
            seq,
            change,
            since: Instant::now(),
            replayed: false,
            running: false,
        });
        st.last_queued = Some(Instant::now());
        self.queued.notify_one();
        Ok(seq)
    }

    /// A program flushed (closed) or fsynced the file at `path`: what it wrote since the last
    /// commit is sealed and queued for upload. Returns the change's sequence number, if any.
    pub fn commit(&self, path: &str) -> Result<Option<u64>> {
        let mut st = self.state.lock();
        let Some(s) = st.sessions.get_mut(path) else {
            return Ok(None);
        };
        if !s.dirty {
            return Ok(None);
        }
        let (staged, base) = (s.staged.clone(), s.base.clone());
        if matches!(st.overlay.get(path), Some(Pending::Gone)) {
            // Unlinked while open: nothing to upload.
            if let Some(s) = st.sessions.get_mut(path) {
                s.dirty = false;
            }
            return Ok(None);
        }
        // Sealed first: from here on these bytes are the version the journal names (a later
        // write goes to a copy, also if the journal cannot be written now).
        staged.seal();
        let change = Change::Upload {
            path: path.to_string(),
            staged: staged.id(),
            size: staged.size(),
            crc32: Some(staged.checksum().map_err(io_err(staged.path()))?),
            base,
        };
        // A journal that cannot be written (a full disk) leaves the session dirty: the next
        // close or fsync tries again.
        let seq = self.enqueue(&mut st, change)?;
        Self::hold_for_upload(&mut st, &staged);
        if let Some(s) = st.sessions.get_mut(path) {
            s.dirty = false;
            s.base = Base::Ours;
        }
        Ok(Some(seq))
    }

    /// Makes change `seq` (and all before it) survive a power loss, then waits up to
    /// the configured wait ([`FSYNC_WAIT`]) for it to be done at the origin; true if it was.
    pub async fn sync(&self, path: &str, seq: Option<u64>) -> Result<bool> {
        if let Some(Pending::File(staged)) = self.lookup(path) {
            staged.sync().map_err(io_err(staged.path()))?;
            // The staged file's name too (a new file's directory entry is not synced with it).
            std::fs::File::open(&self.staged_dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.staged_dir))?;
        }
        self.journal.lock().sync().map_err(io_err(&self.dir))?;
        let wait = *self.fsync_wait.lock();
        match seq.or_else(|| self.last_touching(path)) {
            Some(seq) => Ok(self.wait_done(seq, wait).await),
            None => Ok(true),
        }
    }

    fn last_touching(&self, path: &str) -> Option<u64> {
        let st = self.state.lock();
        st.queue
            .iter()
            .rev()
            .find(|q| q.change.path() == path)
            .map(|q| q.seq)
    }

    /// Waits until change `seq` is done, up to `timeout`; true if it is.
    pub async fn wait_done(&self, seq: u64, timeout: Duration) -> bool {
        let _waiting = Waiting::new(self);
        let mut rx = self.done.subscribe();
        let is_done = |st: &State| st.queue.iter().all(|q| q.seq > seq);
        tokio::time::timeout(timeout, async {
            loop {
                if is_done(&self.state.lock()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && is_done(&self.state.lock())
    }

    /// Waits until nothing is pending, up to `timeout`; true if so.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let last = self.state.lock().queue.iter().map(|q| q.seq).max();
        match last {
            Some(last) => self.wait_done(last, timeout).await,
            None => true,
        }
    }

    /// One handle that wrote to `path` is released; the last one ends the session (commit first).
    /// A session whose last commit failed (the journal could not be written: a full disk) stays,
    /// with its bytes, so the next open and close of the file commits them.
    pub fn close(&self, path: &str) -> Result<()> {
        let committed = self.commit(path);
        let mut st = self.state.lock();
        if let Some(s) = st.sessions.get_mut(path) {
            s.writers = s.writers.saturating_sub(1);
            if s.writers == 0 && !s.dirty {
                st.sessions.remove(path);
                Self::settle(&mut st, path);
            }
        }
        committed.map(|_| ())
    }

    /// Ends the writing session of `path` and returns its bytes for the handles still writing, to
    /// keep once `path` is removed (an unlinked open file, as `tempfile.TemporaryFile` makes): an
    /// unsealed copy that nothing in the journal refers to, so nothing uploads it and it goes when
    /// the last of them drops it. A new file of that name then starts a session of its own.
    pub fn detach_open(&self, path: &str) -> Result<Option<Arc<StagedFile>>> {
        let mut st = self.state.lock();
        let Some(session) = st.sessions.remove(path) else {
            return Ok(None);
        };
        if !session.staged.is_sealed() {
            return Ok(Some(session.staged));
        }
        let id = st.next_staged;
        st.next_staged += 1;
        let copy = self
            .spares
            .copy_of(&session.staged, id)
            .map_err(io_err(&self.staged_dir))?;
        Ok(Some(Arc::new(copy)))
    }

    /// What `change` makes of the overlay (when replaying the journal).
    fn apply_to_overlay(st: &mut State, change: &Change) {
        match change {
            Change::Upload { path, staged, .. } => {
                if let Some((file, _)) = st.uploads.get(staged).cloned() {
                    st.overlay.insert(path.clone(), Pending::File(file));
                }
            }
            Change::Delete { path } => {
                st.overlay.insert(path.clone(), Pending::Gone);
            }
            Change::Mkdir { path } => {
                st.overlay.insert(path.clone(), Pending::Dir);
            }
            Change::Symlink { path, target } => {
                st.overlay
                    .insert(path.clone(), Pending::Symlink(target.clone()));
            }
        }
    }

    /// Drops `path` from the overlay when no pending change and no writer holds it.
    fn settle(st: &mut State, path: &str) {
        if st.touches.get(path).copied().unwrap_or(0) == 0 && !st.sessions.contains_key(path) {
            st.touches.remove(path);
            st.overlay.remove(path);
        }
    }

    pub fn pending(&self) -> PendingSummary {
        let st = self.state.lock();
        PendingSummary {
            changes: st.queue.len(),
            bytes: st
                .queue
                .iter()
                .map(|q| match &q.change {
                    Change::Upload { size, .. } => *size,
                    _ => 0,
                })
                .sum(),
            oldest: st.queue.front().map(|q| q.since.elapsed()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
