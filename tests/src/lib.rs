//! The behaviour suite, written once and run against every connector (after opendal's
//! `tests/behavior`). [`check_volume`] compares what a connector shows with a local copy of the same
//! tree — names, kinds, sizes, bytes at every awkward offset — and checks the cache, the identity
//! contract and error kinds. `tests/behaviour.rs` runs it on the memory and local backends in every
//! `cargo test`, and on the real servers (SeaweedFS, wsgidav, pyftpdlib, sshd, nginx) when
//! `scripts/test.sh` provides them.

pub mod latency_proxy;
mod links;
pub use links::check_links;

use colo_cache::{FetchPlan, MemoryCache, ObjectVersion, ReadThrough, TieredCache};
use colo_connectors::{
    Connector, ConnectorError, EntryKind, ErrorKind, ObjectIdentity, ObjectPath, OriginStats,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Files and directories of a local tree, as (relative path, kind, size), skipping dot-files.
pub fn walk(root: &Path) -> Vec<(String, EntryKind, u64)> {
    let mut out = Vec::new();
    fn rec(root: &Path, dir: &Path, out: &mut Vec<(String, EntryKind, u64)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("fixture dir")
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                out.push((rel, EntryKind::Directory, 0));
                rec(root, &e.path(), out);
            } else {
                out.push((rel, EntryKind::File, m.len()));
            }
        }
    }
    rec(root, root, &mut out);
    out
}

fn p(s: &str) -> ObjectPath {
    ObjectPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Run every behaviour check of `connector` against the local tree `fixture`.
/// `stats` are the connector's origin counters (to prove the cache saves requests).
pub async fn check_volume(
    connector: Arc<dyn Connector>,
    stats: Option<Arc<OriginStats>>,
    fixture: &Path,
) {
    let vol = connector.volume().to_string();
    let tree = walk(fixture);
    let cap = connector.capability();

    // 1. Listings: the same names and kinds as the fixture, in every directory; sizes where listed.
    let mut dirs: Vec<String> = vec![String::new()];
    dirs.extend(
        tree.iter()
            .filter(|t| t.1 == EntryKind::Directory)
            .map(|t| t.0.clone()),
    );
    for dir in &dirs {
        let mut listed = connector
            .list(&p(dir))
            .await
            .unwrap_or_else(|e| panic!("{vol}: list {dir}: {e}"));
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        let mut expected: Vec<&(String, EntryKind, u64)> = tree
            .iter()
            .filter(|t| {
                Path::new(&t.0)
                    .parent()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default()
                    == *dir
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<(&str, EntryKind)> = listed
            .iter()
            .map(|e| (e.name.as_str(), e.meta.kind))
            .collect();
        let want: Vec<(&str, EntryKind)> = expected
            .iter()
            .map(|t| {
                (
                    Path::new(&t.0)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(""),
                    t.1,
                )
            })
            .collect();
        assert_eq!(names, want, "{vol}: listing of '/{dir}'");
        if cap.list_has_metadata {
            for (e, t) in listed.iter().zip(&expected) {
                if t.1 == EntryKind::File {
                    assert_eq!(e.meta.size, t.2, "{vol}: listed size of {}", t.0);
                }
            }
        }
    }

    // 2. stat: kind and size of every entry; the root is a directory; missing paths are NotFound.
    for (rel, kind, size) in &tree {
        let m = connector
            .stat(&p(rel))
            .await
            .unwrap_or_else(|e| panic!("{vol}: stat {rel}: {e}"));
        assert_eq!(m.kind, *kind, "{vol}: kind of {rel}");
        if *kind == EntryKind::File {
            assert_eq!(m.size, *size, "{vol}: size of {rel}");
        }
    }
    assert_eq!(
        connector
            .stat(&ObjectPath::root())
            .await
            .expect("root")
            .kind,
        EntryKind::Directory
    );
    let missing = connector
        .stat(&p("no/such/file.fits"))
        .await
        .expect_err("missing must fail");
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{vol}: {missing}");

    // 3. Bytes: whole files through the cache, and ranges at block edges and file ends.
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(256 << 20)), None));
    let block = 64 * 1024;
    let reader = ReadThrough::new(connector.clone(), cache, block, 16 * block);
    let files: Vec<&(String, EntryKind, u64)> =
        tree.iter().filter(|t| t.1 == EntryKind::File).collect();
    for (rel, _, size) in &files {
        let local = std::fs::read(fixture.join(rel)).expect("fixture file");
        let meta = connector.stat(&p(rel)).await.expect("stat");
        let obj = ObjectVersion {
            path: p(rel),
            identity: meta.identity(),
            size: *size,
        };
        let all = reader
            .read(&obj, 0, *size, FetchPlan::Blocks)
            .await
            .unwrap_or_else(|e| panic!("{vol}: read {rel}: {e}"));
        assert!(all[..] == local[..], "{vol}: bytes of {rel}");
        let s = *size;
        for (off, len) in [
            (0, 1),
            (s.saturating_sub(1), 1),
            (4095, 2),
            (block - 1, 2),
            (block, block + 3),
            (s / 3, s / 2 + 1),
        ] {
            if off >= s {
                continue;
            }
            let got = connector
                .read_range(&obj.path, off..(off + len).min(s), Some(&obj.identity))
                .await
                .unwrap_or_else(|e| panic!("{vol}: range {off}+{len} of {rel}: {e}"));
            assert!(
                got[..] == local[off as usize..(off + len).min(s) as usize],
                "{vol}: range {off}+{len} of {rel}"
            );
            // The same range in pieces (as the cache fetches blocks and pages): full pieces but
            // the last, together the same bytes.
            let piece_bytes = 1000;
            let pieces = connector
                .read_range_pieces(
                    &obj.path,
                    off..(off + len).min(s),
                    Some(&obj.identity),
                    piece_bytes,
                )
                .await
                .unwrap_or_else(|e| panic!("{vol}: pieces of {off}+{len} of {rel}: {e}"));
            let (last, full) = pieces.split_last().expect("a non-empty range has pieces");
            assert!(
                full.iter().all(|p| p.len() as u64 == piece_bytes)
                    && !last.is_empty()
                    && last.len() as u64 <= piece_bytes,
                "{vol}: piece sizes of {off}+{len} of {rel}"
            );
            assert!(
                pieces.concat() == got[..],
                "{vol}: pieces of {off}+{len} of {rel}"
            );
        }
    }

    // 4. The cache answers a second full pass without one request to the origin.
    if let Some(stats) = &stats {
        let before = stats.read_requests.load(Ordering::Relaxed);
        for (rel, _, size) in &files {
            let meta = connector.stat(&p(rel)).await.expect("stat");
            let obj = ObjectVersion {
                path: p(rel),
                identity: meta.identity(),
                size: *size,
            };
            reader
                .read(&obj, 0, *size, FetchPlan::Blocks)
                .await
                .expect("cached read");
        }
        assert_eq!(
            stats.read_requests.load(Ordering::Relaxed),
            before,
            "{vol}: second pass must be cached"
        );
    }

    // 5. Identity contract: bytes are refused for a version that is not the current one.
    let (rel, _, size) = files.iter().find(|t| t.2 > 10).expect("a non-trivial file");
    let meta = connector.stat(&p(rel)).await.expect("stat");
    let wrong = match meta.identity() {
        ObjectIdentity::ETag(_) => ObjectIdentity::ETag("\"not-this-version\"".into()),
        ObjectIdentity::SizeMtime { size, mtime_ns } => ObjectIdentity::SizeMtime {
            size,
            mtime_ns: mtime_ns + 1_000_000_000,
        },
    };
    let e = connector
        .read_range(&p(rel), 0..(*size).min(10), Some(&wrong))
        .await
        .expect_err("wrong identity must fail");
    assert_eq!(e.kind(), ErrorKind::Stale, "{vol}: {e}");
    assert_eq!(
        connector.stat(&p(rel)).await.expect("stat").identity(),
        meta.identity(),
        "{vol}: identity is stable"
    );

    // 6. Paths cannot leave the volume, whatever the encoding.
    for bad in ["../etc/passwd", "a/../../b", "%2e%2e/x", "..%2f..%2fetc"] {
        assert!(
            matches!(
                ObjectPath::parse(bad),
                Err(ConnectorError::InvalidPath { .. })
            ),
            "{bad}"
        );
    }
}

/// Whole-object writes and deletes on a writable `connector`, inside a scratch folder it removes
/// again: create (with missing parents), read back, replace (a new identity, the old one refused),
/// list, delete files and the emptied folders, and the errors for what is not there.
pub async fn check_writes(connector: Arc<dyn Connector>) {
    let vol = connector.volume().to_string();
    assert!(connector.capability().write, "{vol}: declares writes");
    let scratch = format!(".colo-write-trial-{}", std::process::id());
    let file = p(&format!("{scratch}/deep/er/table.parquet"));
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let meta = connector
        .write_object(&file, first.clone().into())
        .await
        .unwrap_or_else(|e| panic!("{vol}: write with missing parents: {e}"));
    assert_eq!(meta.kind, EntryKind::File, "{vol}");
    assert_eq!(meta.size, first.len() as u64, "{vol}: size after write");
    let read = connector
        .read_range(&file, 0..meta.size, Some(&meta.identity()))
        .await
        .unwrap_or_else(|e| panic!("{vol}: read back: {e}"));
    assert!(read[..] == first[..], "{vol}: bytes read back");

    // Replace: readers holding the old identity are refused, the new bytes are whole.
    let second = b"a shorter second version".to_vec();
    let replaced = connector
        .write_object(&file, second.clone().into())
        .await
        .unwrap_or_else(|e| panic!("{vol}: replace: {e}"));
    assert_ne!(replaced.identity(), meta.identity(), "{vol}: new identity");
    let stale = connector
        .read_range(&file, 0..10, Some(&meta.identity()))
        .await
        .expect_err("the old version is gone");
    assert_eq!(stale.kind(), ErrorKind::Stale, "{vol}: {stale}");
    let read = connector
        .read_range(&file, 0..replaced.size, Some(&replaced.identity()))
        .await
        .unwrap_or_else(|e| panic!("{vol}: read the replacement: {e}"));
    assert_eq!(read[..], second[..], "{vol}: replacement bytes");

    // A sibling at the top of the scratch folder; listings show both levels and no leftovers
    // (no temporary names).
    let top = p(&format!("{scratch}/top.txt"));
    connector
        .write_object(&top, bytes::Bytes::from_static(b"top"))
        .await
        .unwrap_or_else(|e| panic!("{vol}: write top: {e}"));
    // An empty file is a file too (`touch`, `__init__.py`, lock files).
    let empty = p(&format!("{scratch}/empty.txt"));
    let made = connector
        .write_object(&empty, bytes::Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{vol}: write an empty file: {e}"));
    assert_eq!(
        (made.kind, made.size),
        (EntryKind::File, 0),
        "{vol}: empty file"
    );
    let mut names: Vec<String> = connector
        .list(&p(&scratch))
        .await
        .unwrap_or_else(|e| panic!("{vol}: list scratch: {e}"))
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["deep", "empty.txt", "top.txt"],
        "{vol}: scratch listing"
    );
    let inner: Vec<String> = connector
        .list(&p(&format!("{scratch}/deep/er")))
        .await
        .unwrap_or_else(|e| panic!("{vol}: list deep/er: {e}"))
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(inner, ["table.parquet"], "{vol}: no temporary files left");

    check_folders_and_renames(&connector, &scratch).await;

    // Delete: files, then the emptied folders bottom-up (object stores have none to delete).
    for path in [&file, &top, &empty] {
        connector
            .delete(path)
            .await
            .unwrap_or_else(|e| panic!("{vol}: delete {path}: {e}"));
        let gone = connector.stat(path).await.expect_err("deleted");
        assert_eq!(gone.kind(), ErrorKind::NotFound, "{vol}: {gone}");
    }
    for folder in [
        format!("{scratch}/deep/er"),
        format!("{scratch}/deep"),
        scratch.clone(),
    ] {
        match connector.delete(&p(&folder)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {} // an object store: no folder left
            Err(e) => panic!("{vol}: delete folder {folder}: {e}"),
        }
    }
    let root: Vec<String> = connector
        .list(&ObjectPath::root())
        .await
        .unwrap_or_else(|e| panic!("{vol}: list root: {e}"))
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        !root.contains(&scratch),
        "{vol}: the scratch folder is gone: {root:?}"
    );
}

/// `create_dir`, `write_file` (large enough for a multipart upload) and `rename` of files (one
/// replacing another) and of a folder, inside `scratch`, which holds nothing of these afterwards.
async fn check_folders_and_renames(connector: &Arc<dyn Connector>, scratch: &str) {
    let vol = connector.volume().to_string();
    let names = |path: String| {
        let connector = connector.clone();
        async move {
            let mut n: Vec<String> = connector
                .list(&p(&path))
                .await
                .unwrap_or_else(|e| panic!("list {path}: {e}"))
                .into_iter()
                .map(|e| e.name)
                .collect();
            n.sort();
            n
        }
    };
    let empty = p(&format!("{scratch}/made/empty"));
    connector
        .create_dir(&empty)
        .await
        .unwrap_or_else(|e| panic!("{vol}: create_dir: {e}"));
    connector
        .create_dir(&empty)
        .await
        .unwrap_or_else(|e| panic!("{vol}: create_dir of an existing folder: {e}"));
    assert_eq!(
        names(format!("{scratch}/made")).await,
        ["empty"],
        "{vol}: an empty folder shows"
    );

    let big: Vec<u8> = (0..(20u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(local.path(), &big).expect("write temp file");
    let a = p(&format!("{scratch}/made/a.bin"));
    let meta = connector
        .write_file(&a, local.path())
        .await
        .unwrap_or_else(|e| panic!("{vol}: write_file: {e}"));
    assert_eq!(meta.size, big.len() as u64, "{vol}: size after write_file");
    let back = connector
        .read_range(&a, 0..meta.size, Some(&meta.identity()))
        .await
        .unwrap_or_else(|e| panic!("{vol}: read back write_file: {e}"));
    assert!(back[..] == big[..], "{vol}: write_file bytes");

    let b = p(&format!("{scratch}/made/b.txt"));
    connector
        .write_object(&b, bytes::Bytes::from_static(b"replaced by a"))
        .await
        .unwrap_or_else(|e| panic!("{vol}: write b: {e}"));
    connector
        .rename(&a, &b)
        .await
        .unwrap_or_else(|e| panic!("{vol}: rename a file over another: {e}"));
    let moved = connector.stat(&b).await.expect("renamed file");
    assert_eq!(
        moved.size,
        big.len() as u64,
        "{vol}: the target has the source's bytes"
    );
    assert_eq!(
        connector.stat(&a).await.expect_err("source gone").kind(),
        ErrorKind::NotFound,
        "{vol}"
    );

    let folder = p(&format!("{scratch}/made"));
    let renamed = p(&format!("{scratch}/moved"));
    connector
        .rename(&folder, &renamed)
        .await
        .unwrap_or_else(|e| panic!("{vol}: rename a folder: {e}"));
    assert_eq!(
        names(format!("{scratch}/moved")).await,
        ["b.txt", "empty"],
        "{vol}: the folder's entries moved"
    );
    assert!(
        !names(scratch.to_string())
            .await
            .contains(&"made".to_string()),
        "{vol}: the old folder is gone"
    );
    for path in [
        format!("{scratch}/moved/b.txt"),
        format!("{scratch}/moved/empty"),
        format!("{scratch}/moved"),
    ] {
        match connector.delete(&p(&path)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => panic!("{vol}: delete {path}: {e}"),
        }
    }
}

/// A volume that refuses writes (a read-only server or share) says so as `PermissionDenied`.
pub async fn check_writes_refused(connector: Arc<dyn Connector>) {
    let vol = connector.volume().to_string();
    let e = connector
        .write_object(
            &p(&format!(".colo-write-trial-{}.txt", std::process::id())),
            bytes::Bytes::from_static(b"x"),
        )
        .await
        .expect_err("a read-only server refuses writes");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{vol}: {e}");
}
