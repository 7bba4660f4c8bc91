//! Symbolic links in the behaviour suite: a connector that declares `symlinks` makes a link,
//! shows it as a link (in `stat` and `list`, sized by its target, never followed — a dangling one
//! too), reads its target verbatim, refuses a second link on the same name, moves it with
//! `rename` and removes it with `delete` without touching what it points to; one that does not
//! answers `Unsupported`.

use colo_connectors::{Connector, EntryKind, ErrorKind, ObjectPath};
use std::sync::Arc;

fn p(s: &str) -> ObjectPath {
    ObjectPath::parse(s).expect("test path")
}

pub async fn check_links(connector: Arc<dyn Connector>) {
    let vol = connector.volume().to_string();
    let scratch = format!(".colo-link-trial-{}", std::process::id());
    let (target, link) = (p(&format!("{scratch}/t.txt")), p(&format!("{scratch}/l")));
    if !connector.capability().symlinks {
        let e = connector
            .symlink(&link, "t.txt")
            .await
            .expect_err("no links here");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{vol}: {e}");
        return;
    }
    connector
        .write_object(&target, bytes::Bytes::from_static(b"target bytes"))
        .await
        .expect("target written");
    connector.symlink(&link, "t.txt").await.expect("link made");
    let meta = connector.stat(&link).await.expect("link stat");
    assert_eq!(
        meta.kind,
        EntryKind::Symlink,
        "{vol}: stat shows the link itself"
    );
    assert_eq!(meta.size, 5, "{vol}: a link's size is its target's length");
    assert_eq!(connector.read_link(&link).await.expect("readlink"), "t.txt");
    let dangling = p(&format!("{scratch}/dangling"));
    connector
        .symlink(&dangling, "../no/such thing")
        .await
        .expect("dangling link made");
    let listed = connector.list(&p(&scratch)).await.expect("list");
    let kinds: Vec<(&str, EntryKind)> = listed
        .iter()
        .map(|e| (e.name.as_str(), e.meta.kind))
        .collect();
    for want in [
        ("dangling", EntryKind::Symlink),
        ("l", EntryKind::Symlink),
        ("t.txt", EntryKind::File),
    ] {
        assert!(kinds.contains(&want), "{vol}: {want:?} in {kinds:?}");
    }
    assert_eq!(
        connector.read_link(&dangling).await.expect("readlink"),
        "../no/such thing",
        "{vol}: the target verbatim"
    );
    assert!(
        connector.symlink(&link, "other").await.is_err(),
        "{vol}: a name taken"
    );
    let moved = p(&format!("{scratch}/moved"));
    connector.rename(&link, &moved).await.expect("link moved");
    assert_eq!(
        connector.read_link(&moved).await.expect("readlink"),
        "t.txt"
    );
    let gone = connector.stat(&link).await.expect_err("old name gone");
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{vol}: {gone}");
    for l in [&moved, &dangling] {
        connector.delete(l).await.expect("link deleted");
        let e = connector.stat(l).await.expect_err("link gone");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{vol}: {e}");
    }
    let left = connector
        .read_range(&target, 0..12, None)
        .await
        .expect("target still there");
    assert_eq!(
        &left[..],
        b"target bytes",
        "{vol}: deleting a link keeps its target"
    );
    connector.delete(&target).await.expect("target deleted");
    // The emptied folder (implied by its objects on some backends: then already gone).
    match connector.delete(&p(&scratch)).await {
        Err(e) if e.kind() != ErrorKind::NotFound => panic!("{vol}: scratch folder: {e}"),
        _ => {}
    }
}
