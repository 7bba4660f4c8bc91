//! Modes and times on a writable volume whose origin keeps neither (a memory connector, as S3 or
//! WebDAV): what programs set shows through the core's calls — the create mode, `chmod`,
//! `utimensat`'s atime and mtime until the next write, folders' mtime and ctime moving with their
//! entries —, owners (the creator, `chown`, a set-group-ID folder's group), follows renames and
//! goes with unlinks, survives a restart (the log in the write-back area); sizes beyond the limit fail with `EFBIG`.

mod common;

use colo_connectors::MemoryConnector;
use colo_vfs::kept::MAX_FILE_BYTES;
use colo_vfs::{Attr, NewEntry, SetAttr, VfsCore, VfsError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn core(dir: &std::path::Path) -> VfsCore {
    core_on(dir, Arc::new(MemoryConnector::new("vol")))
}

/// A core over `origin` with its write-back area (and the kept log) in `dir`.
fn core_on(dir: &std::path::Path, origin: Arc<MemoryConnector>) -> VfsCore {
    common::writable_core(dir, origin, Duration::from_secs(3600)).0
}

/// `mode` (umask 0) asked by uid/gid.
fn by(mode: u32, uid: u32, gid: u32) -> NewEntry {
    NewEntry {
        mode,
        umask: 0,
        uid,
        gid,
    }
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
        .create_as(
            root,
            "secret.txt",
            true,
            false,
            Some(&by(0o600, 1000, 1000)),
        )
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
        .create_as(root, "zero", true, false, Some(&by(0, 1000, 1000)))
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
        .create_as(root, "moved.txt", true, false, Some(&by(0o644, 1000, 1000)))
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
    let before = SystemTime::now();
    let d = core
        .mkdir_as(root, "d", Some(&by(0o700, 1000, 1000)))
        .await
        .unwrap();
    assert_eq!(d.perm, 0o700);
    assert!(
        d.mtime >= before && atime(&d) >= before && ctime(&d) >= before,
        "made now"
    );
    core.mkdir_as(d.ino, "sub", Some(&by(0o755, 1000, 1000)))
        .await
        .unwrap();
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
        .create_as(root, "f", true, false, Some(&by(0o644, 1000, 1000)))
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

#[tokio::test]
async fn files_belong_to_their_creator_until_a_chown_and_setgid_folders_pass_on_their_group() {
    let dir = tempfile::tempdir().unwrap();
    let core = core(dir.path());
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let (mine, o) = core
        .create_as(root, "mine", true, false, Some(&by(0o644, 1000, 100)))
        .await
        .unwrap();
    core.release(o.fh);
    assert_eq!((mine.uid, mine.gid), (1000, 100));
    let chown = SetAttr {
        uid: Some(65534),
        ..Default::default()
    };
    let a = core.setattr(mine.ino, None, chown).await.unwrap();
    assert_eq!(
        (a.uid, a.gid),
        (65534, 100),
        "the group stays when only the owner changes"
    );
    // Without a caller (colo's own calls): the volume's owner and modes.
    let (plain, o) = core.create(root, "plain", true, false).await.unwrap();
    core.release(o.fh);
    assert_eq!((plain.uid, plain.gid, plain.perm), (0, 0, 0o644));

    let shared = core
        .mkdir_as(root, "shared", Some(&by(0o2775, 1000, 500)))
        .await
        .unwrap();
    assert_eq!((shared.perm, shared.gid), (0o2775, 500));
    let (f, o) = core
        .create_as(shared.ino, "f", true, false, Some(&by(0o644, 1001, 1001)))
        .await
        .unwrap();
    core.release(o.fh);
    assert_eq!((f.uid, f.gid, f.perm), (1001, 500, 0o644));
    let sub = core
        .mkdir_as(shared.ino, "sub", Some(&by(0o755, 1001, 1001)))
        .await
        .unwrap();
    assert_eq!(
        (sub.gid, sub.perm),
        (500, 0o2755),
        "new folders stay set-group-ID"
    );
}

#[tokio::test]
async fn modes_owners_and_times_survive_a_restart_and_follow_what_happened_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Arc::new(MemoryConnector::new("vol"));
    let before;
    {
        let core = core_on(dir.path(), origin.clone());
        // Uploads run (a folder is renamed at the origin once what is below it is there).
        let worker = core.volumes()[0].write_back.clone().unwrap().spawn_worker();
        let root = core.lookup(1, "vol").await.unwrap().ino;
        let d = core
            .mkdir_as(root, "d", Some(&by(0o2750, 1000, 1000)))
            .await
            .unwrap();
        let (f, o) = core
            .create_as(d.ino, "f", true, false, Some(&by(0o600, 1000, 1000)))
            .await
            .unwrap();
        core.write(o.fh, 0, b"kept").await.unwrap();
        core.flush(o.fh).unwrap();
        core.release(o.fh);
        let change = SetAttr {
            mode: Some(0o100640),
            uid: Some(2000),
            atime: Some(at(100_000_000)),
            mtime: Some(at(200_000_000)),
            ..Default::default()
        };
        core.setattr(f.ino, None, change).await.unwrap();
        let (_, o) = core
            .create_as(root, "gone", true, false, Some(&by(0o600, 1000, 1000)))
            .await
            .unwrap();
        core.release(o.fh);
        core.remove(root, "gone", false).await.unwrap();
        core.rename(root, "d", root, "e", false).await.unwrap();
        before = core.lookup(root, "e").await.unwrap();
        worker.abort();
    }

    // colo restarts: a new core over the same origin and write-back area.
    let core = core_on(dir.path(), origin);
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let e = core.lookup(root, "e").await.unwrap();
    assert_eq!((e.perm, e.uid, e.gid), (0o2750, 1000, 1000));
    assert_eq!(e.mtime, before.mtime, "the folder's mtime as it was");
    let f = core.lookup(e.ino, "f").await.unwrap();
    assert_eq!((f.perm, f.uid, f.gid, f.size), (0o640, 2000, 1000, 4));
    assert_eq!((atime(&f), f.mtime), (at(100_000_000), at(200_000_000)));
    assert!(core.lookup(root, "d").await.is_err());
    // A file made again where a removed one was gets its own mode, not the old one's.
    let (again, o) = core
        .create_as(root, "gone", true, false, Some(&by(0o644, 1000, 1000)))
        .await
        .unwrap();
    core.release(o.fh);
    assert_eq!(again.perm, 0o644);
    assert!(
        dir.path().join(colo_vfs::kept_log::KEPT_LOG_NAME).is_file(),
        "the log is in the write-back area"
    );
}
