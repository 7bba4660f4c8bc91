//! A file written through colo and uploaded since, in a listing colo holds: its lookup (and its
//! READDIRPLUS entry) shows the size and bytes at the origin, not the "unknown" size 0 of a file
//! whose attributes were dropped when it was written.

mod common;

use colo_connectors::MemoryConnector;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn an_uploaded_file_is_listed_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Arc::new(MemoryConnector::new("vol"));
    origin.put("before.txt", &b"there before"[..]);
    let (core, wb) = common::writable_core(dir.path(), origin.clone(), Duration::from_secs(3600));
    let _worker = wb.spawn_worker();
    let root = core.lookup(1, "vol").await.unwrap().ino;
    assert_eq!(core.readdir(root).await.unwrap().entries.len(), 1);
    let (attr, writer) = core.create(root, "result.txt", true, false).await.unwrap();
    core.write(writer.fh, 0, b"Hello, World!").await.unwrap();
    core.flush(writer.fh).unwrap();
    core.release(writer.fh);
    assert!(wb.drain(Duration::from_secs(10)).await, "uploaded");

    let listed = core.listed_entry(root, "result.txt").await.expect("listed");
    assert_eq!((listed.ino, listed.size), (attr.ino, 13));
    let looked_up = core.lookup(root, "result.txt").await.unwrap();
    assert_eq!(looked_up.size, 13);
    let fh = core.open(attr.ino, false).await.unwrap().fh;
    assert_eq!(&core.read(fh, 0, 64).await.unwrap()[..], b"Hello, World!");
    assert_eq!(
        core.listed_entry(root, "before.txt").await.unwrap().size,
        12
    );
}
