//! Modes and times on a writable volume whose origin keeps neither (a memory connector, as S3 or
//! WebDAV): what programs set shows through the core's calls — the create mode, `chmod`,
//! `utimensat`'s atime and mtime until the next write, folders' mtime and ctime moving with their
//! entries —, follows renames and goes with unlinks; sizes beyond the limit fail with `EFBIG`.

use colo_cache::{MemoryCache, ReadThrough, TieredCache, WriteBack};
use colo_connectors::MemoryConnector;
use colo_vfs::kept::MAX_FILE_BYTES;
use colo_vfs::{Attr, SetAttr, VfsCore, VfsError, VfsOptions, VolumeMount};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn core(dir: &std::path::Path) -> VfsCore {
    let origin = Arc::new(MemoryConnector::new("vol"));
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let reader = ReadThrough::new(origin, cache, 4096, 65536);
    let wb = WriteBack::open(dir, reader.clone()).expect("write-back");
    VfsCore::new(
        vec![VolumeMount {
            name: "vol".into(),
            reader,
            metadata_ttl: Duration::from_secs(3600),
            write_back: Some(wb),
            direct_root: None,
            owner: None,
        }],
        VfsOptions::default(),
    )
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn atime(a: &Attr) -> SystemTime {
    a.posix.map_or(a.mtime, |p| p.atime)
}

fn ctime(a: &Attr) -> SystemTime {
    a.posix.map_or(a.mtime, |p| p.ctime)
}

#[tokio::test]
async fn create_modes_chmod_and_times_show_and_follow_renames() {
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path());
    let root = core.lookup(1, "vol").await.unwrap().ino;

    let (attr, opened) = core
        .create_with_perm(root, "secret.txt", true, false, 0o600)
        .await
        .unwrap();
    assert_eq!(attr.perm, 0o600, "the create mode shows at once");
    core.write(opened.fh, 0, b"hello").await.unwrap();
    core.flush(opened.fh).unwrap();
    core.release(opened.fh);
    let ino = attr.ino;
    assert_eq!(core.getattr(ino).await.unwrap().perm, 0o600);

    // A mode of 0 (pjdfstest's open/26) and back by chmod.
    let (zero, o) = core
        .create_with_perm(root, "zero", true, false, 0)
        .await
        .unwrap();
    core.release(o.fh);
    assert_eq!(zero.perm, 0);
    let chmod = SetAttr {
        mode: Some(0o100640),
        ..Default::default()
    };
    assert_eq!(
        core.setattr(zero.ino, None, chmod).await.unwrap().perm,
        0o640
    );

    // utimensat: atime and mtime as set; the ctime is the moment of the change.
    let before = SystemTime::now();
    let times = SetAttr {
        atime: Some(at(100_000_000)),
        mtime: Some(at(200_000_000)),
        ..Default::default()
    };
    let a = core.setattr(ino, None, times).await.unwrap();
    assert_eq!((atime(&a), a.mtime), (at(100_000_000), at(200_000_000)));
    assert!(ctime(&a) >= before);
    let a = core.getattr(ino).await.unwrap();
    assert_eq!(
        (atime(&a), a.mtime, a.perm),
        (at(100_000_000), at(200_000_000), 0o600)
    );

    // A rename carries them along; the old name keeps nothing.
    core.rename(root, "secret.txt", root, "moved.txt", false)
        .await
        .unwrap();
    let moved = core.lookup(root, "moved.txt").await.unwrap();
    assert_eq!((moved.perm, moved.mtime), (0o600, at(200_000_000)));

    // A write makes the file's own mtime show again (the write's, not the one set before).
    let o = core.open_file(moved.ino, true, false).await.unwrap();
    core.write(o.fh, 5, b", world").await.unwrap();
    core.flush(o.fh).unwrap();
    core.release(o.fh);
    let written = core.getattr(moved.ino).await.unwrap();
    assert!(written.mtime >= before, "{:?}", written.mtime);
    assert_eq!((written.perm, written.size), (0o600, 12));

    // Unlinked and made again: a new file with the mode it is created with.
    core.remove(root, "moved.txt", false).await.unwrap();
    let (again, o) = core
        .create_with_perm(root, "moved.txt", true, false, 0o644)
        .await
        .unwrap();
    core.release(o.fh);
    assert_eq!((again.perm, again.mtime >= before), (0o644, true));
}

#[tokio::test]
async fn a_folder_s_mtime_and_ctime_move_with_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path());
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let d = core.mkdir_with_perm(root, "d", 0o700).await.unwrap();
    assert_eq!(d.perm, 0o700);
    core.mkdir_with_perm(d.ino, "sub", 0o755).await.unwrap();
    let first = core.getattr(d.ino).await.unwrap();
    std::thread::sleep(Duration::from_millis(20));
    core.remove(d.ino, "sub", true).await.unwrap();
    let after = core.getattr(d.ino).await.unwrap();
    assert!(
        after.mtime > first.mtime,
        "{:?} then {:?}",
        first.mtime,
        after.mtime
    );
    assert!(ctime(&after) > ctime(&first));
    assert_eq!(after.perm, 0o700);
}

#[tokio::test]
async fn sizes_beyond_the_limit_fail_with_efbig_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path());
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let (attr, o) = core
        .create_with_perm(root, "f", true, false, 0o644)
        .await
        .unwrap();
    let huge = SetAttr {
        size: Some(999_999_999_999_999),
        ..Default::default()
    };
    let err = core.setattr(attr.ino, Some(o.fh), huge).await.unwrap_err();
    assert!(matches!(err, VfsError::TooLarge { .. }), "{err}");
    assert_eq!(colo_vfs::errno::errno(&err), libc::EFBIG);
    let err = core.write(o.fh, MAX_FILE_BYTES, b"x").await.unwrap_err();
    assert!(matches!(err, VfsError::TooLarge { .. }), "{err}");
    core.release(o.fh);
    assert_eq!(core.getattr(attr.ino).await.unwrap().size, 0);
}
