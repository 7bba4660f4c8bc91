//! The VFS core's write path against a model, without a mount: random sequences of create,
//! overwrite, append, truncate, rename, unlink, mkdir and rmdir through `VfsCore` (the calls the
//! FUSE glue makes), with the origin (a memory connector) going down and up, pending changes
//! applied a few at a time, and "crashes" — core and write-back dropped, rebuilt from the same
//! write-back directory — between any two steps. After every step every path reads back as the
//! model says through the core; at the end, after recovery, the origin holds exactly the model.

mod common;

use colo_cache::WriteBack;
use colo_cache::write_back::Step;
use colo_connectors::{EntryKind, MemoryConnector};
use colo_vfs::{SetAttr, VfsCore};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const FILES: [&str; 4] = ["a", "b.fits", "d/c", "d/e"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Vec<u8>),
    Append(usize, Vec<u8>),
    Truncate(usize, u16),
    Rename(usize, usize),
    Unlink(usize),
    Mkdir,
    Rmdir,
    Work(u8),
    Crash,
    Down(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..FILES.len();
    let data = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        3 => (f.clone(), data.clone()).prop_map(|(n, d)| Op::Create(n, d)),
        2 => (f.clone(), data).prop_map(|(n, d)| Op::Append(n, d)),
        1 => (f.clone(), 0u16..300).prop_map(|(n, l)| Op::Truncate(n, l)),
        2 => (f.clone(), f.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => f.prop_map(Op::Unlink),
        1 => Just(Op::Mkdir),
        1 => Just(Op::Rmdir),
        2 => (1u8..5).prop_map(Op::Work),
        1 => Just(Op::Crash),
        1 => any::<bool>().prop_map(Op::Down),
    ]
}

struct World {
    origin: Arc<MemoryConnector>,
    dir: tempfile::TempDir,
    wb: Arc<WriteBack>,
    core: VfsCore,
    files: BTreeMap<String, Vec<u8>>,
    has_dir: bool,
    /// The directories were listed since the last crash: with the origin down, the core changes
    /// only directories it has listed (it cannot know what else is in them).
    listed: bool,
}

fn build(origin: &Arc<MemoryConnector>, dir: &Path) -> (Arc<WriteBack>, VfsCore) {
    // Long: listings are kept and edited in place, as in a real mount.
    let (core, wb) = common::writable_core(dir, origin.clone(), Duration::from_secs(3600));
    (wb, core)
}

impl World {
    fn new() -> World {
        let origin = Arc::new(MemoryConnector::new("vol"));
        let dir = tempfile::tempdir().expect("temp dir");
        let (wb, core) = build(&origin, dir.path());
        World {
            origin,
            dir,
            wb,
            core,
            files: BTreeMap::new(),
            has_dir: false,
            listed: false,
        }
    }

    fn crash(&mut self) {
        let (wb, core) = build(&self.origin, self.dir.path());
        self.wb = wb;
        self.core = core;
        self.listed = false;
    }

    async fn ino(&self, path: &str) -> Option<u64> {
        let mut ino = 1;
        for seg in std::iter::once("vol").chain(path.split('/')) {
            ino = self.core.lookup(ino, seg).await.ok()?.ino;
        }
        Some(ino)
    }

    async fn parent_ino(&self, path: &str) -> u64 {
        match path.rsplit_once('/') {
            Some((p, _)) => self.ino(p).await.expect("parent exists"),
            None => self.ino_root().await,
        }
    }

    async fn ino_root(&self) -> u64 {
        self.core.lookup(1, "vol").await.expect("volume").ino
    }

    fn name(path: &str) -> &str {
        path.rsplit_once('/').map(|(_, n)| n).unwrap_or(path)
    }

    fn parent_ok(&self, path: &str) -> bool {
        !path.starts_with("d/") || self.has_dir
    }

    /// Whether the core can change `path` now: with the origin down, only files it has a
    /// staged copy of (opening an origin file needs the origin).
    fn reachable(&self, path: &str) -> bool {
        !self.origin.is_down() || matches!(self.wb.lookup(path), Some(colo_cache::Pending::File(_)))
    }

    async fn write_file(&mut self, path: &str, data: &[u8], append: bool) {
        let parent = self.parent_ino(path).await;
        let fh = match self.ino(path).await {
            Some(ino) => self.core.open_file(ino, true, !append).await,
            None => self
                .core
                .create(parent, Self::name(path), false, true)
                .await
                .map(|(_, o)| o),
        }
        .expect("open for writing")
        .fh;
        let offset = if append {
            self.files.get(path).map_or(0, |f| f.len() as u64)
        } else {
            0
        };
        self.core.write(fh, offset, data).await.expect("write");
        self.core.flush(fh).expect("flush");
        self.core.release(fh);
    }

    async fn run(&mut self, op: &Op) {
        let down = self.origin.is_down();
        let changes = !matches!(op, Op::Work(_) | Op::Crash | Op::Down(_));
        if down && changes && !self.listed {
            return;
        }
        match op {
            Op::Create(n, data) => {
                let path = FILES[*n];
                if !self.parent_ok(path) || (self.files.contains_key(path) && !self.reachable(path))
                {
                    return;
                }
                self.write_file(path, data, false).await;
                self.files.insert(path.into(), data.clone());
            }
            Op::Append(n, data) => {
                let path = FILES[*n];
                if !self.files.contains_key(path) || !self.reachable(path) {
                    return;
                }
                self.write_file(path, data, true).await;
                self.files
                    .get_mut(path)
                    .expect("checked")
                    .extend_from_slice(data);
            }
            Op::Truncate(n, len) => {
                let path = FILES[*n];
                if !self.files.contains_key(path) || !self.reachable(path) {
                    return;
                }
                let ino = self.ino(path).await.expect("exists");
                let change = SetAttr {
                    size: Some(*len as u64),
                    ..SetAttr::default()
                };
                self.core
                    .setattr(ino, None, change)
                    .await
                    .expect("truncate");
                self.files
                    .get_mut(path)
                    .expect("checked")
                    .resize(*len as usize, 0);
            }
            Op::Rename(a, b) => {
                let (from, to) = (FILES[*a], FILES[*b]);
                let staged = matches!(self.wb.lookup(from), Some(colo_cache::Pending::File(_)));
                if from == to
                    || !self.files.contains_key(from)
                    || !self.parent_ok(to)
                    || (down && !staged)
                {
                    return;
                }
                if !staged {
                    // The core renames an origin file once the queue has drained (waiting for
                    // the worker); here the test is the worker.
                    self.work(usize::MAX).await;
                }
                let (p1, p2) = (self.parent_ino(from).await, self.parent_ino(to).await);
                let renamed = self
                    .core
                    .rename(p1, Self::name(from), p2, Self::name(to), false)
                    .await;
                match renamed {
                    Ok(()) => {
                        let bytes = self.files.remove(from).expect("checked");
                        self.files.insert(to.into(), bytes);
                    }
                    Err(e) => panic!("rename {from} -> {to}: {e}"),
                }
            }
            Op::Unlink(n) => {
                let path = FILES[*n];
                if self.files.remove(path).is_some() {
                    let parent = self.parent_ino(path).await;
                    self.core
                        .remove(parent, Self::name(path), false)
                        .await
                        .expect("unlink");
                }
            }
            Op::Mkdir => {
                if !self.has_dir {
                    let root = self.ino_root().await;
                    self.core.mkdir(root, "d").await.expect("mkdir");
                    self.has_dir = true;
                }
            }
            Op::Rmdir => {
                if self.has_dir && !self.files.keys().any(|k| k.starts_with("d/")) {
                    let root = self.ino_root().await;
                    self.core.remove(root, "d", true).await.expect("rmdir");
                    self.has_dir = false;
                }
            }
            Op::Work(n) => self.work(*n as usize).await,
            Op::Crash => self.crash(),
            Op::Down(d) => self.origin.set_down(*d),
        }
    }

    async fn work(&self, n: usize) {
        for _ in 0..n {
            if self.wb.step().await != Step::Applied {
                return;
            }
        }
    }

    /// Every model file reads back through the core; the root lists exactly the model's names.
    async fn check(&mut self) {
        if self.origin.is_down() {
            return;
        }
        if self.has_dir {
            let d = self.ino("d").await.expect("d is there");
            self.core.readdir(d).await.expect("readdir d");
        }
        for (path, want) in &self.files {
            let ino = self
                .ino(path)
                .await
                .unwrap_or_else(|| panic!("{path} is there"));
            let attr = self.core.getattr(ino).await.expect("getattr");
            assert_eq!(attr.size, want.len() as u64, "{path}: size");
            let fh = self.core.open(ino, false).await.expect("open").fh;
            let got = self.core.read(fh, 0, 1 << 16).await.expect("read");
            self.core.release(fh);
            assert_eq!(&got[..], &want[..], "{path}: bytes");
        }
        let root = self.ino_root().await;
        let names: Vec<String> = self
            .core
            .readdir(root)
            .await
            .expect("readdir")
            .entries
            .into_iter()
            .map(|(_, kind, name)| {
                if kind == EntryKind::Directory.into() {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect();
        let mut want: Vec<String> = self
            .files
            .keys()
            .filter(|k| !k.contains('/'))
            .cloned()
            .collect();
        if self.has_dir {
            want.push("d/".into());
        }
        want.sort();
        assert_eq!(names, want, "the root's listing");
        self.listed = true;
    }
}

async fn run_sequence(ops: Vec<Op>) {
    let mut w = World::new();
    for op in &ops {
        w.run(op).await;
        w.check().await;
    }
    w.origin.set_down(false);
    w.crash();
    w.work(usize::MAX).await;
    w.check().await;
    let got: BTreeMap<String, Vec<u8>> = w
        .origin
        .files()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    assert_eq!(got, w.files, "the origin holds exactly what was written");
    assert_eq!(w.origin.folders().contains("d"), w.has_dir, "the folder");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    #[test]
    fn the_core_never_loses_a_closed_file(ops in proptest::collection::vec(op(), 1..30)) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run_sequence(ops));
    }
}
