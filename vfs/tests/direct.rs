//! The direct (local read-write) volume through the core, without a mount: each operation shows
//! in the directory itself, with its mode, times and links, and the core's view follows changes
//! made in the directory by others.

use colo_cache::{MemoryCache, ReadThrough, TieredCache};
use colo_connectors::local::LocalConnector;
use colo_vfs::{Made, NewEntry, NodeType, SetAttr, VfsCore, VfsOptions, VolumeMount};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

fn direct_core(dir: &Path) -> VfsCore {
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(1 << 20)), None));
    let reader = ReadThrough::new(
        Arc::new(LocalConnector::new("home", dir)),
        cache,
        4096,
        65536,
    );
    VfsCore::new(
        vec![VolumeMount {
            name: "home".into(),
            reader,
            metadata_ttl: Duration::from_secs(60),
            write_back: None,
            direct_root: Some(dir.canonicalize().expect("a temporary folder")),
            owner: None,
        }],
        VfsOptions::default(),
    )
}

const ROOT: u64 = 2; // the volume's root: the first inode after the mount root

#[tokio::test]
async fn operations_land_in_the_directory_with_modes_times_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let core = direct_core(tmp.path());
    let me = NewEntry {
        mode: 0o640,
        umask: 0o022,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let (attr, opened) = core
        .create_entry(ROOT, "a.txt", libc::O_WRONLY | libc::O_EXCL, &me)
        .await
        .unwrap();
    assert_eq!(core.write(opened.fh, 0, b"hello").await.unwrap(), 5);
    core.release(opened.fh);
    let on_disk = std::fs::metadata(tmp.path().join("a.txt")).unwrap();
    assert_eq!(
        on_disk.permissions().mode() & 0o7777,
        0o640,
        "the mode asked for"
    );
    assert_eq!(std::fs::read(tmp.path().join("a.txt")).unwrap(), b"hello");
    assert!(
        core.create_entry(ROOT, "a.txt", libc::O_WRONLY | libc::O_EXCL, &me)
            .await
            .is_err_and(|e| colo_vfs::errno::errno(&e) == libc::EEXIST)
    );

    let when = UNIX_EPOCH + Duration::new(1_000_000_000, 5);
    let change = SetAttr {
        mode: Some(0o700),
        mtime: Some(when),
        size: Some(2),
        ..SetAttr::default()
    };
    let after = core.setattr(attr.ino, None, change).await.unwrap();
    assert_eq!((after.perm, after.size, after.mtime), (0o700, 2, when));
    let on_disk = std::fs::metadata(tmp.path().join("a.txt")).unwrap();
    assert_eq!((on_disk.mode() & 0o7777, on_disk.len()), (0o700, 2));
    assert_eq!((on_disk.mtime(), on_disk.mtime_nsec()), (1_000_000_000, 5));

    let linked = core.link(attr.ino, ROOT, "b.txt").unwrap();
    assert_eq!(linked.posix.unwrap().nlink, 2);
    assert_eq!(linked.ino, attr.ino, "both names are one inode");
    assert_eq!(core.lookup(ROOT, "b.txt").await.unwrap().ino, attr.ino);
    let target = Path::new("a.txt");
    core.make_node(ROOT, "s", Made::Symlink { target }, &me)
        .await
        .unwrap();
    let s_ino = core.lookup(ROOT, "s").await.unwrap().ino;
    assert_eq!(core.readlink(s_ino).await.unwrap(), b"a.txt");
    let listing = core.readdir(ROOT).await.unwrap();
    let kinds: Vec<(NodeType, &str)> = listing
        .entries
        .iter()
        .map(|(_, t, n)| (*t, n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (NodeType::File, "a.txt"),
            (NodeType::File, "b.txt"),
            (NodeType::Symlink, "s")
        ]
    );
    core.rename(ROOT, "b.txt", ROOT, "c.txt", false)
        .await
        .unwrap();
    core.remove(ROOT, "a.txt", false).await.unwrap();
    let c = core.lookup(ROOT, "c.txt").await.unwrap();
    assert_eq!(
        (c.ino, c.posix.unwrap().nlink),
        (attr.ino, 1),
        "the moved name keeps the inode"
    );
    assert!(core.lookup(ROOT, "a.txt").await.is_err());
    assert!(core.lookup(ROOT, "b.txt").await.is_err());
    // The name the inode's path followed goes; the other name still reaches it.
    core.link(c.ino, ROOT, "d.txt").unwrap();
    core.remove(ROOT, "d.txt", false).await.unwrap();
    assert_eq!(core.getattr(c.ino).await.unwrap().size, 2);
    let again = core.lookup(ROOT, "c.txt").await.unwrap();
    assert_eq!((again.ino, again.size), (c.ino, 2));
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["c.txt", "s"]);
    assert_eq!(std::fs::read(tmp.path().join("c.txt")).unwrap(), b"he");
}

#[tokio::test]
async fn changes_made_in_the_directory_are_seen_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let core = direct_core(tmp.path());
    std::fs::write(tmp.path().join("x"), b"one").unwrap();
    let ino = core.lookup(ROOT, "x").await.unwrap().ino;
    std::fs::write(tmp.path().join("x"), b"three").unwrap();
    assert_eq!(core.getattr(ino).await.unwrap().size, 5);
    assert_eq!(
        core.ttl_for(ino),
        Duration::ZERO,
        "the kernel keeps nothing"
    );
    std::fs::remove_file(tmp.path().join("x")).unwrap();
    std::fs::create_dir(tmp.path().join("x")).unwrap();
    let again = core.lookup(ROOT, "x").await.unwrap();
    assert_ne!(again.ino, ino, "a file replaced by a folder is a new inode");
    assert_eq!(again.posix.unwrap().node_type, NodeType::Directory);
}
