//! Write-back against a model: random sequences of create / write / truncate / rename / unlink /
//! mkdir / rmdir / symlink, with the origin going down and up and colo "crashing" (everything in memory
//! dropped, the journal and staged files kept) between any two steps — including after a change
//! reached the origin but before it was recorded done. After every operation the files read back
//! as the model says (from the staged copy or the origin); at the end, after recovery, the origin
//! holds exactly the model's files and folders.

use super::*;
use crate::memory::MemoryCache;
use crate::tiered::TieredCache;
use colo_connectors::{Connector, MemoryConnector, ObjectPath};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Vec<u8>),
    Write(usize, u16, Vec<u8>),
    Truncate(usize, u16),
    Unlink(usize),
    Rename(usize, usize),
    Mkdir,
    Rmdir,
    /// A symbolic link at a name to one of [`TARGETS`].
    Symlink(usize, usize),
    /// Apply up to n pending changes.
    Work(u8),
    /// Apply the first pending change, then crash before recording it.
    CrashAfterApply,
    Crash,
    Down(bool),
}

const NAMES: [&str; 5] = ["a", "b.fits", "d/c", "d/e", "f"];
const DIR: &str = "d";
const TARGETS: [&str; 3] = ["a", "../b.fits", "/nowhere/at all"];

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let data = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        3 => (name.clone(), data.clone()).prop_map(|(n, d)| Op::Create(n, d)),
        3 => (name.clone(), 0u16..400, data).prop_map(|(n, o, d)| Op::Write(n, o, d)),
        1 => (name.clone(), 0u16..400).prop_map(|(n, l)| Op::Truncate(n, l)),
        1 => name.clone().prop_map(Op::Unlink),
        2 => (name.clone(), name.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => Just(Op::Mkdir),
        1 => Just(Op::Rmdir),
        2 => (name, 0..TARGETS.len()).prop_map(|(n, t)| Op::Symlink(n, t)),
        3 => (1u8..4).prop_map(Op::Work),
        1 => Just(Op::CrashAfterApply),
        1 => Just(Op::Crash),
        1 => any::<bool>().prop_map(Op::Down),
    ]
}

struct Harness {
    origin: Arc<MemoryConnector>,
    dir: tempfile::TempDir,
    wb: Arc<WriteBack>,
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    links: BTreeMap<String, String>,
}

fn open(origin: &Arc<MemoryConnector>, dir: &Path) -> Arc<WriteBack> {
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let reader = ReadThrough::new(origin.clone(), cache, 64, 1 << 20);
    WriteBack::open(dir, reader).expect("write-back opens")
}

impl Harness {
    fn new() -> Harness {
        let origin = Arc::new(MemoryConnector::new("model"));
        let dir = tempfile::tempdir().expect("temp dir");
        let wb = open(&origin, dir.path());
        Harness {
            origin,
            dir,
            wb,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            links: BTreeMap::new(),
        }
    }

    fn crash(&mut self) {
        self.wb = open(&self.origin, self.dir.path());
    }

    fn parent_ok(&self, name: &str) -> bool {
        !name.starts_with("d/") || self.dirs.contains(DIR)
    }

    /// What the VFS does before writing to `name`: reuse the staged copy, or open the origin's.
    async fn open_for_write(&self, name: &str, truncate: bool) {
        let staged = matches!(self.wb.lookup(name), Some(Pending::File(_)));
        if staged
            && self
                .wb
                .open_write(name, None, truncate)
                .await
                .expect("open for writing")
        {
            return;
        }
        let path = ObjectPath::parse(name).expect("path");
        let meta = self.origin.stat(&path).await.expect("origin up to open");
        let version = ObjectVersion {
            path,
            identity: meta.identity(),
            size: meta.size,
        };
        assert!(
            self.wb
                .open_write(name, Some(&version), truncate)
                .await
                .expect("open for writing"),
            "opened with the origin's version"
        );
    }

    async fn run(&mut self, op: &Op) {
        let down = self.origin_is_down();
        match op {
            Op::Create(n, data) => {
                let name = NAMES[*n];
                if !self.parent_ok(name) || self.links.contains_key(name) {
                    return;
                }
                if self.files.contains_key(name) {
                    if down && !matches!(self.wb.lookup(name), Some(Pending::File(_))) {
                        return;
                    }
                    self.open_for_write(name, true).await;
                } else {
                    self.wb.create(name).expect("create");
                }
                self.wb.write(name, 0, data).expect("write");
                self.wb.close(name).expect("close");
                self.files.insert(name.into(), data.clone());
            }
            Op::Write(n, offset, data) => {
                let name = NAMES[*n];
                let offset = *offset as usize;
                if !self.files.contains_key(name)
                    || (down && !matches!(self.wb.lookup(name), Some(Pending::File(_))))
                {
                    return;
                }
                self.open_for_write(name, false).await;
                self.wb.write(name, offset as u64, data).expect("write");
                self.wb.close(name).expect("close");
                let f = self.files.get_mut(name).expect("checked");
                if !data.is_empty() {
                    if f.len() < offset + data.len() {
                        f.resize(offset + data.len(), 0);
                    }
                    f[offset..offset + data.len()].copy_from_slice(data);
                }
            }
            Op::Truncate(n, len) => {
                let name = NAMES[*n];
                if !self.files.contains_key(name)
                    || (down && !matches!(self.wb.lookup(name), Some(Pending::File(_))))
                {
                    return;
                }
                self.open_for_write(name, false).await;
                self.wb.set_len(name, *len as u64).expect("truncate");
                self.wb.close(name).expect("close");
                self.files
                    .get_mut(name)
                    .expect("checked")
                    .resize(*len as usize, 0);
            }
            Op::Unlink(n) => {
                let name = NAMES[*n];
                if self.files.remove(name).is_some() || self.links.remove(name).is_some() {
                    self.wb.remove(name).expect("unlink");
                }
            }
            Op::Rename(a, b) => {
                let (from, to) = (NAMES[*a], NAMES[*b]);
                let known = self.files.contains_key(from) || self.links.contains_key(from);
                if from == to || !known || !self.parent_ok(to) {
                    return;
                }
                if matches!(self.wb.lookup(from), Some(Pending::File(_))) {
                    assert!(self.wb.rename_file(from, to).expect("rename").is_some());
                } else {
                    // The VFS renames files with no staged copy at the origin, once the queue
                    // is empty.
                    if down {
                        return;
                    }
                    self.work(usize::MAX).await;
                    let (f, t) = (ObjectPath::parse(from), ObjectPath::parse(to));
                    self.origin
                        .rename(&f.expect("path"), &t.expect("path"))
                        .await
                        .expect("origin rename");
                }
                let (file, link) = (self.files.remove(from), self.links.remove(from));
                self.files.remove(to);
                self.links.remove(to);
                if let Some(bytes) = file {
                    self.files.insert(to.into(), bytes);
                }
                if let Some(target) = link {
                    self.links.insert(to.into(), target);
                }
            }
            Op::Mkdir => {
                if self.dirs.insert(DIR.into()) {
                    self.wb.mkdir(DIR).expect("mkdir");
                }
            }
            Op::Rmdir => {
                let empty = !self.files.keys().any(|k| k.starts_with("d/"))
                    && !self.links.keys().any(|k| k.starts_with("d/"));
                if empty && self.dirs.remove(DIR) {
                    self.wb.remove(DIR).expect("rmdir");
                }
            }
            Op::Symlink(n, t) => {
                let name = NAMES[*n];
                let taken = self.files.contains_key(name) || self.links.contains_key(name);
                if taken || !self.parent_ok(name) {
                    return;
                }
                self.wb.symlink(name, TARGETS[*t]).expect("symlink");
                self.links.insert(name.into(), TARGETS[*t].into());
            }
            Op::Work(n) => self.work(*n as usize).await,
            Op::CrashAfterApply => {
                self.wb.step_then_crash().await;
                self.crash();
            }
            Op::Crash => self.crash(),
            Op::Down(d) => self.origin.set_down(*d),
        }
    }

    fn origin_is_down(&self) -> bool {
        self.origin.is_down()
    }

    async fn work(&self, n: usize) {
        for _ in 0..n {
            if self.wb.step().await != Step::Applied {
                return;
            }
        }
    }

    /// Every model file reads back as written, from the staged copy or (the origin up) from it.
    async fn check_reads(&self) {
        for (name, want) in &self.files {
            match self.wb.read(name, 0, 1 << 20) {
                Some(got) => assert_eq!(&got.expect("staged read"), want, "{name} (staged)"),
                None if !self.origin_is_down() => {
                    let got = self.origin.files().get(name).cloned();
                    assert_eq!(got.as_deref(), Some(&want[..]), "{name} (origin)");
                }
                None => {}
            }
        }
        for (name, want) in &self.links {
            match self.wb.lookup(name) {
                Some(Pending::Symlink(t)) => assert_eq!(&t, want, "{name} (pending link)"),
                Some(other) => panic!("{name} is a link, the overlay says {other:?}"),
                None if !self.origin_is_down() => {
                    let got = self.origin.links().get(name).cloned();
                    assert_eq!(got.as_ref(), Some(want), "{name} (origin link)");
                }
                None => {}
            }
        }
        for name in NAMES {
            if !self.files.contains_key(name) {
                assert!(
                    !matches!(self.wb.lookup(name), Some(Pending::File(_))),
                    "{name} was removed but the overlay shows it"
                );
            }
        }
    }
}

async fn run_sequence(ops: Vec<Op>) {
    let mut h = Harness::new();
    for op in &ops {
        h.run(op).await;
        h.check_reads().await;
    }
    h.origin.set_down(false);
    h.crash();
    h.work(usize::MAX).await;
    assert_eq!(h.wb.pending().changes, 0, "everything applied");
    let got: BTreeMap<String, Vec<u8>> = h
        .origin
        .files()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    assert_eq!(got, h.files, "the origin holds exactly what programs wrote");
    assert_eq!(h.origin.links(), h.links, "links");
    assert_eq!(
        h.origin.folders(),
        h.dirs.iter().cloned().collect(),
        "folders"
    );
    assert_eq!(
        h.wb.stats()
            .conflicts
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Staged copies are named by id; emptied ones kept for reuse are `spare-<n>`.
    let (copies, spares): (Vec<_>, Vec<_>) = std::fs::read_dir(h.dir.path().join("staged"))
        .expect("staged dir")
        .map(|e| e.expect("entry"))
        .partition(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok());
    assert!(
        spares
            .iter()
            .all(|e| e.metadata().expect("metadata").len() == 0),
        "spares hold no bytes"
    );
    let staged = copies.len();
    drop(h.wb);
    assert!(
        staged <= 1,
        "staged copies are removed once uploaded ({staged} left)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn pending_changes_survive_crashes_and_outages(ops in proptest::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run_sequence(ops));
    }
}

/// Someone changed the origin copy between open and upload: the user's version goes beside it.
#[tokio::test]
async fn a_file_changed_at_the_origin_meanwhile_is_kept_beside_it() {
    let h = Harness::new();
    h.origin.put("t.fits", b"theirs v1".to_vec());
    h.open_for_write("t.fits", false).await;
    h.wb.write("t.fits", 0, b"MINE").expect("write");
    h.origin.put("t.fits", b"theirs v2".to_vec());
    h.wb.close("t.fits").expect("close");
    h.work(usize::MAX).await;
    let files = h.origin.files();
    assert_eq!(&files["t.fits"][..], b"theirs v2");
    let beside: Vec<_> = files
        .iter()
        .filter(|(k, _)| k.starts_with("t.colo-conflict-") && k.ends_with(".fits"))
        .collect();
    assert_eq!(beside.len(), 1, "{files:?}");
    assert_eq!(&beside[0].1[..], b"MINErs v1");
    assert_eq!(
        h.wb.stats()
            .conflicts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// An upload replaced by a later one before it ran never reaches the origin.
#[tokio::test]
async fn a_superseded_upload_is_skipped() {
    let h = Harness::new();
    for round in 0..3u8 {
        h.wb.create("x").expect("create");
        h.wb.write("x", 0, &[round; 10]).expect("write");
        h.wb.close("x").expect("close");
    }
    h.work(usize::MAX).await;
    assert_eq!(&h.origin.files()["x"][..], &[2u8; 10]);
    assert_eq!(
        h.wb.stats()
            .uploads
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// The worker applies independent changes side by side: after a burst of creates, rewrites,
/// renames, unlinks and folder changes with the origin slow, draining leaves exactly the model
/// at the origin, and more than one change was in flight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_parallel_worker_keeps_every_path_in_order() {
    let mut h = Harness::new();
    h.origin.set_delay(std::time::Duration::from_millis(2));
    let worker = h.wb.spawn_worker();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..300u32 {
        let dir = format!("d{}", i % 3);
        if i % 50 == 0 && !files.keys().any(|k| k.starts_with(&format!("{dir}/"))) {
            h.wb.mkdir(&dir).expect("mkdir");
        }
        let name = format!("{dir}/f{}", i % 17);
        let data = format!("version {i} of {name}").into_bytes();
        h.wb.create(&name).expect("create");
        h.wb.write(&name, 0, &data).expect("write");
        h.wb.close(&name).expect("close");
        files.insert(name.clone(), data);
        if i % 7 == 0 {
            let to = format!("{dir}/renamed{}", i % 5);
            assert!(h.wb.rename_file(&name, &to).expect("rename").is_some());
            let bytes = files.remove(&name).expect("there");
            files.insert(to, bytes);
        }
        if i % 11 == 0
            && let Some(victim) = files.keys().nth((i as usize) % files.len()).cloned()
        {
            h.wb.remove(&victim).expect("unlink");
            files.remove(&victim);
        }
    }
    assert!(
        h.wb.drain(std::time::Duration::from_secs(60)).await,
        "drained"
    );
    worker.abort();
    let got: BTreeMap<String, Vec<u8>> = h
        .origin
        .files()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    assert_eq!(got, files);
    let most = h
        .origin
        .most_writes_at_once
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "uploads side by side, bounded: {most} at once"
    );
    h.files = files;
}

/// An origin that knows versions by size and whole-second mtime (FTP, SFTP): a rewrite of the
/// same size in the same second is uploaded again a second later, so the cache (keyed by that
/// identity) never serves the old bytes for the new version.
#[tokio::test]
async fn a_same_size_rewrite_in_the_same_second_gets_a_new_identity() {
    let h = Harness::new();
    h.origin.set_seconds_only(true);
    h.wb.create("t.fits").expect("create");
    h.wb.write("t.fits", 0, b"version one").expect("write");
    h.wb.close("t.fits").expect("close");
    h.work(usize::MAX).await;
    // Opened from the origin: its blocks go into the cache under (size, second).
    h.open_for_write("t.fits", false).await;
    h.wb.write("t.fits", 8, b"TWO").expect("write");
    h.wb.close("t.fits").expect("close");
    h.work(usize::MAX).await;
    let path = ObjectPath::parse("t.fits").expect("path");
    let meta = h.origin.stat(&path).await.expect("stat");
    let version = ObjectVersion {
        path,
        identity: meta.identity(),
        size: meta.size,
    };
    let got =
        h.wb.reader
            .read(&version, 0, 64, FetchPlan::Blocks)
            .await
            .expect("read");
    assert_eq!(&got[..], b"version TWO");
}

/// A writer that saw a staged copy which was uploaded and dropped before it opened the file is
/// told to open the origin's version instead — never handed an empty copy (the bytes would be
/// lost at the next upload).
#[tokio::test]
async fn opening_a_copy_uploaded_meanwhile_asks_for_the_origin_version() {
    let h = Harness::new();
    h.wb.create("raced.bin").expect("create");
    h.wb.write("raced.bin", 0, b"all of the bytes")
        .expect("write");
    h.wb.close("raced.bin").expect("close");
    assert!(matches!(h.wb.lookup("raced.bin"), Some(Pending::File(_))));
    h.work(usize::MAX).await; // the upload finishes between the lookup and the open
    let opened =
        h.wb.open_write("raced.bin", None, false)
            .await
            .expect("open");
    assert!(
        !opened,
        "no staged copy any more and no origin version: nothing opened"
    );
    assert!(h.wb.lookup("raced.bin").is_none());
    h.open_for_write("raced.bin", false).await;
    h.wb.write("raced.bin", 0, b"ALL").expect("write");
    h.wb.close("raced.bin").expect("close");
    h.work(usize::MAX).await;
    assert_eq!(&h.origin.files()["raced.bin"][..], b"ALL of the bytes");
}

/// A power loss can leave a journal record on disk whose staged bytes never got there (closed,
/// never fsynced; the kernel wrote the journal's page first). At start such a change is dropped —
/// not uploaded, counted as lost — while an intact one next to it, and the fsynced one, go up.
#[tokio::test]
async fn a_staged_copy_torn_by_a_power_loss_is_never_uploaded() {
    let mut h = Harness::new();
    h.origin.put("kept", vec![1u8; 4000]);
    // Edited in place, then moved away (`mv edited elsewhere`), never fsynced.
    h.origin.put("edited", vec![2u8; 3000]);
    h.open_for_write("edited", false).await;
    h.origin.set_down(true);
    h.wb.write("edited", 0, b"changed").expect("write");
    h.wb.close("edited").expect("close");
    assert!(
        h.wb.rename_file("edited", "elsewhere")
            .expect("rename")
            .is_some()
    );
    for (name, fill) in [("kept", 7u8), ("gone", 8), ("whole", 9), ("synced", 10)] {
        h.wb.create(name).expect("create");
        h.wb.write(name, 0, &[fill; 4000]).expect("write");
        h.wb.close(name).expect("close");
    }
    assert!(
        h.wb.rename_file("whole", "moved")
            .expect("rename")
            .is_some()
    );
    let seq = h.wb.commit("synced").expect("commit");
    // The origin is down: fsync returns once the change is durable locally (not after 30 s).
    h.wb.set_fsync_wait(Duration::from_millis(200));
    assert!(
        !h.wb.sync("synced", seq).await.expect("sync"),
        "origin down"
    );
    // The cut: "kept" torn to a prefix, "gone" to nothing, its staged file removed outright.
    let staged_path = |name: &str| match h.wb.lookup(name) {
        Some(Pending::File(f)) => f.path().to_path_buf(),
        other => panic!("{name} staged: {other:?}"),
    };
    let (kept, gone) = (staged_path("kept"), staged_path("gone"));
    std::fs::remove_file(staged_path("elsewhere")).expect("remove");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&kept)
        .and_then(|f| f.set_len(1000))
        .expect("truncate");
    std::fs::remove_file(&gone).expect("remove");
    h.crash();
    assert_eq!(
        h.wb.stats().lost.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert!(
        h.wb.lookup("kept").is_none(),
        "torn change not in the overlay"
    );
    assert!(matches!(h.wb.lookup("moved"), Some(Pending::File(_))));
    h.origin.set_down(false);
    h.work(usize::MAX).await;
    let files = h.origin.files();
    assert_eq!(
        &files["kept"][..],
        &[1u8; 4000][..],
        "the earlier version stays"
    );
    assert!(!files.contains_key("gone"));
    assert_eq!(&files["moved"][..], &[9u8; 4000][..]);
    assert!(!files.contains_key("whole"));
    assert_eq!(&files["synced"][..], &[10u8; 4000][..]);
    // The rename's delete went with its torn upload: the earlier version stays under its name.
    assert_eq!(&files["edited"][..], &[2u8; 3000][..]);
    assert!(!files.contains_key("elsewhere"));
    assert_eq!(h.wb.pending().changes, 0);
    // The dropped changes are recorded done: the next start finds nothing to drop.
    h.crash();
    assert_eq!(
        h.wb.stats().lost.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
