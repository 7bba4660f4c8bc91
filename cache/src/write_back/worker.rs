//! The worker that applies a volume's pending changes at the origin, one at a time, in order.
//!
//! An upload is skipped when a later pending change replaces or removes the same path before a
//! `mkdir` there (the origin then never sees the intermediate version). Before uploading over
//! an origin copy, its identity is compared with the one the file had when the program opened it:
//! if someone else changed it meanwhile, the user's version is uploaded beside it under
//! [`conflict_name`] instead, logged and counted.
//!
//! Order: changes to different paths go to the origin side by side (up to [`MAX_IN_FLIGHT`], and
//! [`MAX_IN_FLIGHT_BYTES`] of uploads); a change waits for every earlier pending change to the same
//! path or to a folder above or below it, so what the origin shows follows the order programs made
//! the changes in for every path. Only the first [`SCHEDULING_WINDOW`] pending changes are considered
//! at a time.
//!
//! When: a burst of changes (`tar x`, `git clone`, a notebook writing many files) is not sent
//! while it lasts — uploads competing with the program for the CPU made the program itself up to
//! 2.5 times slower on two cores —: the worker starts changes once none has been queued for
//! [`UPLOAD_SETTLE`], or once the oldest has waited [`UPLOAD_HOLD_MAX`], and at once when someone
//! waits for them (`fsync`, unmount).
//!
//! Failures: an unreachable origin is retried with backoff (200 ms doubling to 10 s) for as long as
//! it takes, the queue waiting in order; a refusal that will not change (permission denied, a
//! folder in the way) is logged, counted as failed, the staged copy kept under `failed/`, and the
//! queue goes on.

use super::WriteBack;
use super::journal::{Base, Change, Record};
use crate::read_through::ObjectVersion;
use colo_connectors::{ConnectorError, EntryKind, ErrorKind, ObjectIdentity, ObjectPath};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one [`WriteBack::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing was pending.
    Idle,
    /// The first pending change is done (or refused for good, and parked).
    Applied,
    /// The origin is unreachable; the change stays first in the queue.
    Waiting,
}

/// Changes applied at once, at most.
pub const MAX_IN_FLIGHT: usize = 8;

/// How long no new change must be queued before the worker starts on the queue.
pub const UPLOAD_SETTLE: Duration = Duration::from_millis(200);

/// The longest a change is held back by a burst that goes on.
pub const UPLOAD_HOLD_MAX: Duration = Duration::from_secs(5);
/// Bytes of uploads in flight, at most (one larger upload still runs alone).
pub const MAX_IN_FLIGHT_BYTES: u64 = 256 << 20;
/// Pending changes the scheduler looks at, from the oldest.
const SCHEDULING_WINDOW: usize = 64;

/// Paths whose last upload's identity is remembered (a same-size rewrite in the same second).
const LAST_UPLOADED_PATHS: usize = 10_000;

/// Files up to this size are put in the cache tiers as they were uploaded (a notebook's outputs:
/// read back at once, and available while the origin is away). Larger ones are read from the
/// origin when wanted, so that one big upload does not push everything else out of the disk tier.
pub const ADOPT_MAX_BYTES: u64 = 64 << 20;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the user's version of `path` goes when the origin copy changed under it:
/// `dir/name.colo-conflict-20261205T213000Z.ext` (the extension kept, so tools still open it).
pub fn conflict_name(path: &str, at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let stamp = format!(
        "colo-conflict-{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}.{stamp}.{ext}"),
        _ => format!("{dir}{name}.{stamp}"),
    }
}

impl WriteBack {
    /// Starts the worker on the current tokio runtime; it runs until the runtime stops.
    pub fn spawn_worker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run().await })
    }

    async fn run(self: Arc<Self>) {
        let mut tasks = tokio::task::JoinSet::new();
        let mut backoff = FIRST_BACKOFF;
        let mut paused_until: Option<tokio::time::Instant> = None;
        loop {
            if paused_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
                paused_until = None;
            }
            let mut held_until = None;
            if paused_until.is_none() {
                match self.held_until() {
                    Some(until) => held_until = Some(tokio::time::Instant::from_std(until)),
                    None => {
                        for (seq, change, replayed) in self.startable(tasks.len()) {
                            let this = self.clone();
                            tasks.spawn(async move {
                                (seq, this.attempt(seq, &change, replayed).await)
                            });
                        }
                    }
                }
            }
            let pause = async {
                match paused_until.or(held_until) {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok((seq, Step::Waiting)) => {
                        self.set_running(seq, false);
                        paused_until = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Ok(_) => backoff = FIRST_BACKOFF,
                    Err(e) => tracing::error!(volume = %self.volume(), error = %e, "write-back task"),
                },
                // A change queued (which may extend a hold) or a waiter (which ends it).
                _ = self.queued.notified(), if paused_until.is_none() => {}
                _ = pause => {}
            }
        }
    }

    /// Until when a burst of changes holds the queue back (see the module notes), if it does.
    fn held_until(&self) -> Option<std::time::Instant> {
        if self.urgent() {
            return None;
        }
        let st = self.state.lock();
        let oldest = st.queue.front()?.since;
        let until = (st.last_queued? + UPLOAD_SETTLE).min(oldest + UPLOAD_HOLD_MAX);
        (until > std::time::Instant::now()).then_some(until)
    }

    /// Whether someone waits for changes to be done (`fsync`, unmount).
    fn urgent(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0
    }

    /// The pending changes that may start now, marked running: in order, each with no earlier
    /// unfinished change to the same path or a folder above or below it, within the limits.
    fn startable(&self, in_flight: usize) -> Vec<(u64, Change, bool)> {
        let related = |a: &str, b: &str| {
            a == b
                || (a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
                || (b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/')
        };
        let size = |c: &Change| match c {
            Change::Upload { size, .. } => *size,
            _ => 0,
        };
        let mut st = self.state.lock();
        let mut bytes: u64 = st
            .queue
            .iter()
            .filter(|q| q.running)
            .map(|q| size(&q.change))
            .sum();
        let mut running = in_flight;
        let mut before: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for q in st.queue.iter_mut().take(SCHEDULING_WINDOW) {
            let path = q.change.path().to_string();
            let free = !q.running && !before.iter().any(|b| related(b, &path));
            let fits = running == 0
                || (running < MAX_IN_FLIGHT && bytes + size(&q.change) <= MAX_IN_FLIGHT_BYTES);
            if free && fits {
                q.running = true;
                running += 1;
                bytes += size(&q.change);
                out.push((q.seq, q.change.clone(), q.replayed));
            } else if free && !fits {
                break;
            }
            before.push(path);
        }
        out
    }

    fn set_running(&self, seq: u64, running: bool) {
        if let Some(q) = self.state.lock().queue.iter_mut().find(|q| q.seq == seq) {
            q.running = running;
        }
    }

    /// Applies the oldest pending change, if any (one at a time: for tests and tools that drive
    /// the queue themselves instead of [`WriteBack::spawn_worker`]).
    pub async fn step(&self) -> Step {
        let next = {
            let st = self.state.lock();
            st.queue
                .front()
                .map(|q| (q.seq, q.change.clone(), q.replayed))
        };
        match next {
            Some((seq, change, replayed)) => self.attempt(seq, &change, replayed).await,
            None => Step::Idle,
        }
    }

    /// Applies change `seq` and records the outcome.
    async fn attempt(&self, seq: u64, change: &Change, replayed: bool) -> Step {
        match self.apply(seq, change, replayed).await {
            Ok(()) => {
                self.finish(seq, change);
                Step::Applied
            }
            Err(e) if e.is_temporary() => {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(volume = %self.volume(), error = %e, "a pending change waits for the origin");
                *self.stats.last_error.lock() = Some(e.to_string());
                Step::Waiting
            }
            Err(e) => {
                self.park(seq, change, &e);
                self.finish(seq, change);
                Step::Applied
            }
        }
    }

    /// Applies the first pending change at the origin but stops before recording it done, as a
    /// crash at that moment would (for tests of replay).
    #[cfg(test)]
    pub(crate) async fn step_then_crash(&self) -> bool {
        let next = {
            let st = self.state.lock();
            st.queue
                .front()
                .map(|q| (q.seq, q.change.clone(), q.replayed))
        };
        match next {
            Some((seq, change, replayed)) => self.apply(seq, &change, replayed).await.is_ok(),
            None => false,
        }
    }

    /// A change the origin refused for good: logged, counted, its bytes kept under `failed/`.
    fn park(&self, seq: u64, change: &Change, e: &ConnectorError) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        *self.stats.last_error.lock() = Some(e.to_string());
        let mut kept = None;
        if let Change::Upload { path, staged, .. } = change
            && let Some((file, _)) = self.state.lock().uploads.get(staged).cloned()
        {
            let failed = self.dir.join("failed");
            let target = failed.join(format!("{seq}-{}", path.replace('/', "%2F")));
            if std::fs::create_dir_all(&failed).is_ok()
                && std::fs::copy(file.path(), &target).is_ok()
            {
                kept = Some(target);
            }
        }
        tracing::error!(volume = %self.volume(), ?change, error = %e, kept = ?kept, "the origin refused a change");
    }

    /// Change `seq` is done: recorded (synced), dropped from the queue and the overlay.
    fn finish(&self, seq: u64, change: &Change) {
        let mut st = self.state.lock();
        {
            let mut journal = self.journal.lock();
            let logged = journal
                .append(&Record::Done { seq })
                .and_then(|()| journal.sync());
            if let Err(e) = logged {
                tracing::error!(volume = %self.volume(), error = %e, "write-back journal");
            }
        }
        if let Some(i) = st.queue.iter().position(|q| q.seq == seq) {
            st.queue.remove(i);
        }
        let path = change.path();
        if let Some(n) = st.touches.get_mut(path) {
            *n = n.saturating_sub(1);
        }
        WriteBack::settle(&mut st, path);
        if let Change::Upload { staged, .. } = change
            && let Some((file, n)) = st.uploads.get_mut(staged)
        {
            *n -= 1;
            if *n == 0 {
                file.discard();
                st.uploads.remove(staged);
            }
        }
        if st.queue.is_empty() {
            let _ = self.journal.lock().clear();
        }
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        drop(st);
        self.done.send_replace(seq);
    }

    /// Whether a pending change after `seq` replaces or removes `path` (before a `mkdir` of it).
    fn superseded(&self, seq: u64, path: &str) -> bool {
        let st = self.state.lock();
        for q in st.queue.iter().filter(|q| q.seq > seq) {
            match &q.change {
                Change::Upload { path: p, .. } | Change::Delete { path: p } if p == path => {
                    return true;
                }
                other if other.path() == path => return false,
                _ => {}
            }
        }
        false
    }

    /// Applies `change` at the origin. `replayed`: it comes from the journal of an earlier run,
    /// which may have applied it already (then the origin copy is byte for byte ours).
    async fn apply(
        &self,
        seq: u64,
        change: &Change,
        replayed: bool,
    ) -> std::result::Result<(), ConnectorError> {
        let connector = self.reader.connector().clone();
        let parse = ObjectPath::parse;
        match change {
            Change::Upload {
                path, staged, base, ..
            } => {
                if self.superseded(seq, path) {
                    return Ok(());
                }
                let Some((file, _)) = self.state.lock().uploads.get(staged).cloned() else {
                    return Ok(());
                };
                let mut target = parse(path)?;
                let origin_copy = match base {
                    Base::Ours => None,
                    Base::New | Base::Version(_) => match connector.stat(&target).await {
                        Ok(m) if m.kind == EntryKind::File => Some(m),
                        Ok(_) => None,
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(e),
                    },
                };
                let changed = match (base, &origin_copy) {
                    (Base::Version(id), Some(m)) => !id.matches(m),
                    (Base::New, Some(_)) => true,
                    _ => false,
                };
                if changed
                    && replayed
                    && let Some(m) = &origin_copy
                    && same_bytes(connector.as_ref(), &target, m, &file).await?
                {
                    // Uploaded by the earlier run just before it stopped.
                    return Ok(());
                }
                if changed {
                    let beside = conflict_name(path, SystemTime::now());
                    tracing::warn!(volume = %self.volume(), path = %path, kept_as = %beside,
                        "the origin copy changed since it was opened for writing; the new version goes beside it");
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    target = parse(&beside)?;
                }
                let previous = match base {
                    Base::Version(id) => Some(id.clone()),
                    _ => self.last_uploaded.lock().get(path).map(|m| m.identity()),
                };
                let meta = connector.write_file(&target, file.path()).await?;
                if let (Some(before), ObjectIdentity::SizeMtime { .. }) =
                    (&previous, meta.identity())
                    && *before == meta.identity()
                {
                    // Same size in the same second as the version before it (FTP, SFTP and
                    // WebDAV keep whole seconds): the cache, which knows versions by size and
                    // mtime there, must not serve the old version's bytes for this one.
                    tracing::debug!(path = %path, "same size and mtime as the previous version: its cached blocks are dropped");
                    let old = ObjectVersion {
                        path: target.clone(),
                        identity: before.clone(),
                        size: meta.size,
                    };
                    self.reader.forget_version(&old).await;
                }
                if meta.size <= ADOPT_MAX_BYTES {
                    // The uploaded bytes are this version's blocks: read back without a request,
                    // and readable (or opened for writing again) while the origin is away.
                    let uploaded = ObjectVersion {
                        path: target.clone(),
                        identity: meta.identity(),
                        size: meta.size,
                    };
                    if let Err(e) = self.reader.adopt_file(&uploaded, file.path()).await {
                        tracing::debug!(path = %path, error = %e, "uploaded bytes not kept in the cache");
                    }
                }
                {
                    let mut last = self.last_uploaded.lock();
                    if last.len() >= LAST_UPLOADED_PATHS {
                        last.clear();
                    }
                    if changed {
                        // The origin's copy of `path` is someone else's: nothing of ours known.
                        last.remove(path.as_str());
                    } else {
                        last.insert(path.clone(), meta.clone());
                    }
                }
                self.stats.uploads.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .uploaded_bytes
                    .fetch_add(meta.size, Ordering::Relaxed);
                Ok(())
            }
            Change::Delete { path } => {
                self.last_uploaded.lock().remove(path.as_str());
                match connector.delete(&parse(path)?).await {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
            Change::Mkdir { path } => connector.create_dir(&parse(path)?).await,
            // A link already there with this target is ours (an earlier run's, or a retry's).
            Change::Symlink { path, target } => {
                let at = parse(path)?;
                match connector.symlink(&at, target).await {
                    Err(e) if connector.read_link(&at).await.is_ok_and(|t| t == *target) => {
                        tracing::debug!(%path, error = %e, "symbolic link already made");
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }
}

/// Whether the origin's copy `meta` of `path` holds exactly the bytes of `file`.
async fn same_bytes(
    connector: &dyn colo_connectors::Connector,
    path: &ObjectPath,
    meta: &colo_connectors::ObjectMeta,
    file: &super::StagedFile,
) -> std::result::Result<bool, ConnectorError> {
    const COMPARE_BYTES: u64 = 8 << 20;
    if meta.size != file.size() {
        return Ok(false);
    }
    let identity = meta.identity();
    let mut offset = 0;
    while offset < meta.size {
        let end = (offset + COMPARE_BYTES).min(meta.size);
        let theirs = connector
            .read_range(path, offset..end, Some(&identity))
            .await?;
        let ours = file
            .read_at(offset, end - offset)
            .map_err(|e| ConnectorError::from_io(connector.volume(), &path.to_string(), &e))?;
        if theirs[..] != ours[..] {
            return Ok(false);
        }
        offset = end;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_keep_the_extension_and_say_when() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_507_400); // 2026-12-05T21:50:00Z
        assert_eq!(
            conflict_name("a/b/table.fits", t),
            "a/b/table.colo-conflict-20261205T215000Z.fits"
        );
        assert_eq!(
            conflict_name("notes", t),
            "notes.colo-conflict-20261205T215000Z"
        );
        assert_eq!(
            conflict_name(".bashrc", t),
            ".bashrc.colo-conflict-20261205T215000Z"
        );
    }
}
