//! Selections and their copies through the catalog's API: a selection is recorded per user, and
//! copying it into a writable volume writes every file whole, never over the user's own data, and
//! finishes an interrupted copy when run again. The archive is an in-memory connector; the
//! target is a real folder (a `file://` user volume).

use colo_catalog::selections::SelectedFile;
use colo_catalog::{Catalog, ErrorKind, Owner};
use colo_connectors::{Connector, MemoryConnector, VolumeConfig};
use std::sync::Arc;

const BIG_BYTES: usize = 9 << 20; // more than one read piece

fn files() -> Vec<SelectedFile> {
    ["obs/a.fits", "obs/b.fits", "deep/er/c.fits"]
        .iter()
        .map(|p| SelectedFile {
            volume: "imgs".into(),
            path: p.to_string(),
            did: format!("ivo://test/{p}"),
        })
        .collect()
}

fn bytes_of(path: &str) -> Vec<u8> {
    let n = if path.ends_with("b.fits") {
        BIG_BYTES
    } else {
        2880 * 3
    };
    (0..n).map(|i| (i * 7 + path.len()) as u8).collect()
}

struct World {
    _home: tempfile::TempDir,
    work: tempfile::TempDir,
    cat: Catalog,
    archive: Arc<dyn Connector>,
    alice: colo_catalog::Caller,
    bob: colo_catalog::Caller,
}

fn world() -> World {
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let cat = Catalog::open(home.path(), None).expect("open");
    let (_, a) = cat.add_user("alice", false).expect("alice");
    let (_, b) = cat.add_user("bob", false).expect("bob");
    let alice = cat.authenticate(&a.token).expect("alice's token");
    let bob = cat.authenticate(&b.token).expect("bob's token");
    let memory = MemoryConnector::new("imgs");
    for f in files() {
        memory.put(&f.path, bytes_of(&f.path));
    }
    memory.put("obs/other.fits", vec![1u8; 100]);
    cat.sync_config_volumes(&[("imgs".into(), "file:///archive/imgs".into())])
        .expect("the archive volume");
    cat.add_volume(
        None,
        Owner::User("alice".into()),
        false,
        VolumeConfig {
            name: Some("work".into()),
            url: Some(format!("file://{}", work.path().display())),
            mode: Some("read-write".into()),
            ..Default::default()
        },
    )
    .expect("alice's work volume");
    cat.add_selection(&alice, "picked", "the test's query", &files())
        .expect("selection");
    World {
        _home: home,
        work,
        cat,
        archive: Arc::new(memory),
        alice,
        bob,
    }
}

#[tokio::test]
async fn a_copy_writes_every_selected_file_whole_under_its_folder_and_a_rerun_copies_nothing_twice()
{
    let w = world();
    let report = w
        .cat
        .copy_selection(&w.alice, "picked", "work", None, w.archive.clone())
        .await
        .expect("copy");
    assert_eq!(
        (report.volume.as_str(), report.folder.as_str()),
        ("work", "picked")
    );
    assert_eq!((report.copied, report.already_there), (3, 0));
    assert_eq!(report.bytes, (2 * 2880 * 3 + BIG_BYTES) as u64);
    for f in files() {
        let copied = std::fs::read(w.work.path().join("picked").join(&f.path)).expect("copied");
        assert!(copied == bytes_of(&f.path), "{} differs", f.path);
    }
    assert!(!w.work.path().join("picked/obs/other.fits").exists());

    // A copy cut off half-way: one file missing is copied, the others are left alone.
    std::fs::remove_file(w.work.path().join("picked/obs/a.fits")).expect("rm");
    let again = w
        .cat
        .copy_selection(&w.alice, "picked", "work", None, w.archive.clone())
        .await
        .expect("again");
    assert_eq!((again.copied, again.already_there), (1, 2));
    assert_eq!(
        std::fs::read(w.work.path().join("picked/obs/a.fits")).expect("a"),
        bytes_of("obs/a.fits")
    );

    // Into another folder, nested.
    let other = w
        .cat
        .copy_selection(
            &w.alice,
            "picked",
            "work",
            Some("runs/2026"),
            w.archive.clone(),
        )
        .await
        .expect("elsewhere");
    assert_eq!((other.folder.as_str(), other.copied), ("runs/2026", 3));
    assert!(w.work.path().join("runs/2026/deep/er/c.fits").is_file());
}

#[tokio::test]
async fn a_copy_never_overwrites_the_users_own_files() {
    let w = world();
    let mine = w.work.path().join("picked/obs");
    std::fs::create_dir_all(&mine).expect("mkdir");
    std::fs::write(mine.join("b.fits"), b"my own notes").expect("mine");
    let err = w
        .cat
        .copy_selection(&w.alice, "picked", "work", None, w.archive.clone())
        .await
        .expect_err("b.fits is alice's");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("work/picked/obs/b.fits"), "{err}");
    assert_eq!(
        std::fs::read(mine.join("b.fits")).expect("kept"),
        b"my own notes"
    );
    assert!(
        !mine.join("a.fits").exists(),
        "nothing is copied when one file would be overwritten"
    );
}

#[tokio::test]
async fn only_the_owner_copies_only_into_a_volume_they_may_write() {
    let w = world();
    let copy = |by: &colo_catalog::Caller, name: &str, into: &str, folder: Option<&str>| {
        let (cat, archive, by, name, into, folder) = (
            &w.cat,
            w.archive.clone(),
            by.clone(),
            name.to_string(),
            into.to_string(),
            folder.map(str::to_string),
        );
        async move {
            cat.copy_selection(&by, &name, &into, folder.as_deref(), archive)
                .await
                .expect_err("refused")
                .kind()
        }
    };
    // The public archive volume is read-only for alice.
    assert_eq!(
        copy(&w.alice, "picked", "imgs", None).await,
        ErrorKind::Forbidden
    );
    // Bob has no selection 'picked', and cannot name alice's volume.
    assert_eq!(
        copy(&w.bob, "picked", "work", None).await,
        ErrorKind::NotFound
    );
    assert_eq!(
        copy(&w.bob, "picked", "alice/work", None).await,
        ErrorKind::NotFound
    );
    assert_eq!(
        copy(&w.alice, "picked", "nowhere", None).await,
        ErrorKind::NotFound
    );
    for folder in ["../escape", "a/../../b", "/", ""] {
        assert_eq!(
            copy(&w.alice, "picked", "work", Some(folder)).await,
            ErrorKind::InvalidInput,
            "{folder}"
        );
    }
    assert!(
        std::fs::read_dir(w.work.path())
            .expect("ls")
            .next()
            .is_none(),
        "no refused copy wrote anything"
    );
}
