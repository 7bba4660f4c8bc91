//! A file unlinked while open, on a writable volume that stages writes: its handles go on reading,
//! writing, truncating and `fstat`ing it (no links) until the last closes; nothing reaches the
//! origin, and a new file of the same name is a file of its own.

mod common;

use colo_connectors::{Connector, MemoryConnector, ObjectPath};
use colo_vfs::SetAttr;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn an_unlinked_open_file_stays_its_handles_and_never_reaches_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Arc::new(MemoryConnector::new("vol"));
    let (core, wb) = common::writable_core(dir.path(), origin.clone(), Duration::from_secs(3600));
    let _worker = wb.spawn_worker();
    let root = core.lookup(1, "vol").await.unwrap().ino;
    let (attr, writer) = core.create(root, "scratch", true, false).await.unwrap();
    core.write(writer.fh, 0, b"Hello, World!").await.unwrap();
    // A reader of the same file, opened before the unlink.
    let reader_fh = core.open_file(attr.ino, false, false).await.unwrap().fh;
    core.remove(root, "scratch", false).await.unwrap();

    assert_eq!(
        &core.read(writer.fh, 0, 13).await.unwrap()[..],
        b"Hello, World!"
    );
    core.write(writer.fh, 13, b" more").await.unwrap();
    assert_eq!(
        &core.read(reader_fh, 0, 64).await.unwrap()[..],
        b"Hello, World! more"
    );
    let shown = core.getattr(attr.ino).await.unwrap();
    assert_eq!((shown.size, shown.posix.map(|p| p.nlink)), (18, Some(0)));
    let cut = SetAttr {
        size: Some(5),
        ..Default::default()
    };
    assert_eq!(
        core.setattr(attr.ino, Some(writer.fh), cut)
            .await
            .unwrap()
            .size,
        5
    );
    core.fsync(writer.fh).await.unwrap();

    // A new file of that name is another file.
    let (again, other) = core.create(root, "scratch", true, false).await.unwrap();
    assert_ne!(again.ino, attr.ino);
    core.write(other.fh, 0, b"new").await.unwrap();
    assert_eq!(&core.read(writer.fh, 0, 64).await.unwrap()[..], b"Hello");
    core.flush(writer.fh).unwrap();
    core.release(writer.fh);
    core.release(reader_fh);
    core.flush(other.fh).unwrap();
    core.release(other.fh);

    assert!(wb.drain(Duration::from_secs(10)).await);
    let at_origin = origin
        .read_range(&ObjectPath::parse("scratch").unwrap(), 0..3, None)
        .await
        .unwrap();
    assert_eq!(&at_origin[..], b"new", "only the new file went up");
    assert_eq!(
        std::fs::read_dir(dir.path().join("staged"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>(),
        0,
        "the unlinked bytes are gone with the last handle (emptied files may stay as spares)"
    );
}
