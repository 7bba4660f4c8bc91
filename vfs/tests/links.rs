//! Symbolic links on a write-back volume whose backend keeps them (the memory connector, as SFTP):
//! `symlink` shows at once as a link (lookup, `readdir`, `readlink` from the overlay), reaches the
//! origin through the journal, is read from the origin once settled, survives a restart before its
//! upload, and moves and goes like a file (`rename`, `unlink`); `rmdir` of a link is `ENOTDIR`.
//! On a backend without links the same call is `EPERM`. Folders count their links as a disk
//! does (2, plus one per subfolder), also across a rename (pjdfstest's rename/24).

mod common;

use colo_cache::WriteBack;
use colo_connectors::{Connector, EntryKind, MemoryConnector, ObjectPath};
use colo_vfs::errno::errno;
use colo_vfs::{Made, NewEntry, NodeType, VfsCore, VfsError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn core_on(dir: &Path, origin: Arc<dyn Connector>, worker: bool) -> (VfsCore, Arc<WriteBack>) {
    // No attribute caching: every lookup after a change asks the origin again.
    let (core, wb) = common::writable_core(dir, origin, Duration::ZERO);
    if worker {
        drop(wb.spawn_worker());
    }
    (core, wb)
}

fn me() -> NewEntry {
    NewEntry {
        mode: 0o777,
        umask: 0,
        uid: 1000,
        gid: 1000,
    }
}

fn link(target: &str) -> Made<'_> {
    Made::Symlink {
        target: Path::new(target),
    }
}

#[tokio::test]
async fn a_link_shows_at_once_reaches_the_origin_and_moves_and_goes_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Arc::new(MemoryConnector::new("vol"));
    origin.put("data/a.fits", b"SIMPLE".to_vec());
    let (core, wb) = core_on(dir.path(), origin.clone(), false);
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let data = core.lookup(root, "data").await.unwrap().ino;

    let made = core
        .make_node(data, "l", link("../data/a.fits"), &me())
        .await
        .unwrap();
    assert_eq!(made.kind, EntryKind::Symlink);
    assert_eq!(
        (made.size, made.perm),
        (14, 0o777),
        "size is the target's length"
    );
    let exists = core.make_node(data, "l", link("x"), &me()).await;
    assert!(matches!(exists, Err(VfsError::Exists { .. })), "{exists:?}");
    assert_eq!(core.readlink(made.ino).await.unwrap(), b"../data/a.fits");
    let listed = core.readdir(data).await.unwrap();
    let kinds: Vec<(&str, NodeType)> = listed
        .entries
        .iter()
        .map(|(_, t, n)| (n.as_str(), *t))
        .collect();
    assert_eq!(
        kinds,
        [("a.fits", NodeType::File), ("l", NodeType::Symlink)]
    );
    assert!(
        origin.links().is_empty(),
        "not uploaded before the worker runs"
    );

    // A restart before the upload: the journal still holds the link.
    drop(core);
    drop(wb);
    let (core, wb) = core_on(dir.path(), origin.clone(), true);
    assert!(wb.drain(Duration::from_secs(10)).await);
    assert_eq!(
        origin.links().get("data/l").map(String::as_str),
        Some("../data/a.fits")
    );
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let data = core.lookup(root, "data").await.unwrap().ino;
    let seen = core.lookup(data, "l").await.unwrap();
    assert_eq!(seen.kind, EntryKind::Symlink, "from the origin's listing");
    assert_eq!(core.readlink(seen.ino).await.unwrap(), b"../data/a.fits");

    let rmdir = core.remove(data, "l", true).await;
    assert_eq!(errno(&rmdir.unwrap_err()), libc::ENOTDIR);
    core.rename(data, "l", root, "moved", false).await.unwrap();
    assert!(wb.drain(Duration::from_secs(10)).await);
    assert_eq!(
        origin.links().get("moved").map(String::as_str),
        Some("../data/a.fits"),
        "the link moved, not what it points to"
    );
    assert_eq!(origin.files().len(), 1);
    core.remove(root, "moved", false).await.unwrap();
    assert!(wb.drain(Duration::from_secs(10)).await);
    assert!(origin.links().is_empty());
    assert_eq!(&origin.files()["data/a.fits"][..], b"SIMPLE");
    let gone = core.lookup(root, "moved").await;
    assert_eq!(errno(&gone.unwrap_err()), libc::ENOENT);
    let origin_says = origin.stat(&ObjectPath::parse("moved").unwrap()).await;
    assert!(origin_says.is_err());
}

/// A backend without links (an object store) refuses them as a file system without them does.
#[derive(Debug)]
struct NoLinks(MemoryConnector);

#[async_trait::async_trait]
impl Connector for NoLinks {
    fn volume(&self) -> &str {
        self.0.volume()
    }
    fn capability(&self) -> colo_connectors::Capability {
        colo_connectors::Capability {
            symlinks: false,
            ..self.0.capability()
        }
    }
    async fn stat(
        &self,
        path: &ObjectPath,
    ) -> colo_connectors::Result<colo_connectors::ObjectMeta> {
        self.0.stat(path).await
    }
    async fn read_range(
        &self,
        path: &ObjectPath,
        range: std::ops::Range<u64>,
        expect: Option<&colo_connectors::ObjectIdentity>,
    ) -> colo_connectors::Result<bytes::Bytes> {
        self.0.read_range(path, range, expect).await
    }
    async fn list(
        &self,
        path: &ObjectPath,
    ) -> colo_connectors::Result<Vec<colo_connectors::DirEntry>> {
        self.0.list(path).await
    }
}

#[tokio::test]
async fn a_backend_without_links_refuses_them_with_eperm() {
    let dir = tempfile::tempdir().unwrap();
    let origin: Arc<dyn Connector> = Arc::new(NoLinks(MemoryConnector::new("vol")));
    let (core, _wb) = core_on(dir.path(), origin, false);
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let refused = core.make_node(root, "l", link("x"), &me()).await;
    assert_eq!(errno(&refused.unwrap_err()), libc::EPERM);
}

#[tokio::test]
async fn a_folder_counts_two_links_plus_one_per_subfolder() {
    let dir = tempfile::tempdir().unwrap();
    let origin: Arc<dyn Connector> = Arc::new(MemoryConnector::new("vol"));
    let (core, _wb) = core_on(dir.path(), origin, true);
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let src = core.mkdir(root, "src").await.unwrap().ino;
    let dst = core.mkdir(root, "dst").await.unwrap().ino;
    assert_eq!(core.folder_links(src), Some(2), "a new folder is empty");
    core.mkdir(src, "child").await.unwrap();
    core.create(src, "file", false, false).await.unwrap();
    core.make_node(src, "l", link("child"), &me())
        .await
        .unwrap();
    assert_eq!(
        core.folder_links(src),
        Some(3),
        "files and links do not count"
    );
    assert_eq!(core.folder_links(dst), Some(2));
    core.rename(src, "child", dst, "moved", false)
        .await
        .unwrap();
    assert_eq!(core.folder_links(src), Some(2));
    assert_eq!(core.folder_links(dst), Some(3));
    core.remove(dst, "moved", true).await.unwrap();
    assert_eq!(core.folder_links(dst), Some(2));
}
