//! Users' views without a mount: each user's folder under `.users` holds exactly what was attached
//! for them, attaching and detaching take effect at once, a read-only view refuses changes, and
//! two users' views of one volume share its cache.

use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::MemoryConnector;
use colo_vfs::views::USERS_DIR;
use colo_vfs::{VfsCore, VfsOptions, VolumeMount, errno::errno};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn mount(name: &str, reader: &ReadThrough) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        reader: reader.clone(),
        metadata_ttl: Duration::from_secs(60),
        write_back: None,
        direct_root: None,
        owner: None,
    }
}

async fn ino(core: &VfsCore, path: &str) -> Result<u64, i32> {
    let mut ino = 1;
    for seg in path.split('/') {
        ino = core.lookup(ino, seg).await.map_err(|e| errno(&e))?.ino;
    }
    Ok(ino)
}

async fn names(core: &VfsCore, path: &str) -> Vec<String> {
    let dir = if path.is_empty() {
        1
    } else {
        ino(core, path).await.expect("folder")
    };
    core.readdir(dir)
        .await
        .expect("readdir")
        .entries
        .into_iter()
        .map(|e| e.2)
        .collect()
}

#[tokio::test]
async fn each_user_sees_only_what_is_attached_for_them_and_detaching_hides_it_at_once() {
    let archive = Arc::new(MemoryConnector::new("archive"));
    archive.put("cat.fits", vec![7u8; 10_000]);
    let home = Arc::new(MemoryConnector::new("home"));
    home.put("notes.txt", &b"alice's notes"[..]);
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let archive_reader = ReadThrough::new(archive.clone(), cache.clone(), 4096, 65536);
    let home_reader = ReadThrough::new(home.clone(), cache, 4096, 65536);
    let core = VfsCore::new(
        vec![mount("archive", &archive_reader)],
        VfsOptions::default(),
    );

    core.attach_view(
        "alice",
        "archive",
        "archive:ro",
        mount("archive", &archive_reader),
    )
    .expect("attach");
    core.attach_view("alice", "home", "home:rw", mount("home", &home_reader))
        .expect("attach");
    core.attach_view(
        "bob",
        "archive",
        "archive:ro",
        mount("archive", &archive_reader),
    )
    .expect("attach");
    assert_eq!(names(&core, "").await, vec![".users", "archive"]);
    assert_eq!(names(&core, USERS_DIR).await, vec!["alice", "bob"]);
    assert_eq!(names(&core, ".users/alice").await, vec!["archive", "home"]);
    assert_eq!(names(&core, ".users/bob").await, vec!["archive"]);
    assert_eq!(ino(&core, ".users/bob/home").await, Err(libc::ENOENT));
    assert_eq!(
        ino(&core, ".users/bob/home/notes.txt").await,
        Err(libc::ENOENT)
    );
    assert_eq!(ino(&core, ".users/carol").await, Err(libc::ENOENT));

    // Alice reads the archive file; Bob's read of it through his own view costs the origin nothing.
    let a = ino(&core, ".users/alice/archive/cat.fits")
        .await
        .expect("file");
    let fh = core.open(a, false).await.expect("open").fh;
    assert_eq!(core.read(fh, 0, 10_000).await.expect("read").len(), 10_000);
    core.release(fh);
    let reads = archive.reads.load(Ordering::Relaxed);
    assert!(reads > 0);
    let b = ino(&core, ".users/bob/archive/cat.fits")
        .await
        .expect("file");
    assert_ne!(a, b, "each view has its own inodes");
    let fh = core.open(b, false).await.expect("open").fh;
    assert_eq!(
        core.read(fh, 0, 10_000).await.expect("read"),
        vec![7u8; 10_000]
    );
    core.release(fh);
    assert_eq!(
        archive.reads.load(Ordering::Relaxed),
        reads,
        "served from the shared cache"
    );

    // A read-only view (no write-back) refuses changes with EROFS.
    let folder = ino(&core, ".users/alice/home").await.expect("home");
    let err = core
        .create(folder, "new.txt", true, false)
        .await
        .expect_err("refused");
    assert_eq!(errno(&err), libc::EROFS);

    // Granting Bob alice's home, then revoking it.
    core.attach_view("bob", "home@alice", "home:ro", mount("home", &home_reader))
        .expect("attach");
    let notes = ino(&core, ".users/bob/home@alice/notes.txt")
        .await
        .expect("granted");
    let dropped = core.detach_view("bob", "home@alice").expect("was attached");
    assert_eq!(dropped.1, "home@alice");
    assert_eq!(ino(&core, ".users/bob/home@alice").await, Err(libc::ENOENT));
    assert_eq!(names(&core, ".users/bob").await, vec!["archive"]);
    let err = core
        .getattr(notes)
        .await
        .expect_err("the old inode is gone");
    assert_eq!(errno(&err), libc::ENOENT);
    assert_eq!(
        core.open(notes, false).await.err().map(|e| errno(&e)),
        Some(libc::ENOENT)
    );
    // Alice still has hers.
    assert!(ino(&core, ".users/alice/home/notes.txt").await.is_ok());

    // Names that could leave the folder are refused; one name cannot be attached twice.
    assert!(
        core.attach_view("../x", "v", "k", mount("home", &home_reader))
            .is_err()
    );
    assert!(
        core.attach_view("bob", "a/b", "k", mount("home", &home_reader))
            .is_err()
    );
    assert!(
        core.attach_view("bob", "archive", "k", mount("home", &home_reader))
            .is_err()
    );

    // Removing a user removes their folder and views.
    let dropped = core.remove_view_user("alice");
    assert!(dropped.iter().any(|(_, n)| n == "alice"));
    assert_eq!(names(&core, USERS_DIR).await, vec!["bob"]);
    assert_eq!(ino(&core, ".users/alice/home").await, Err(libc::ENOENT));
    assert_eq!(core.views().len(), 1);
}
