//! The behaviour suite (see `colo_tests::check_volume`) against every backend.

use colo_connectors::{MemoryConnector, Metered, VolumeConfig, VolumeSpec, open_volume};
use colo_tests::{check_links, check_volume, check_writes, check_writes_refused, walk};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A small tree with the awkward sizes and names, made in a temp dir.
fn small_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: [(&str, usize); 8] = [
        ("empty.dat", 0),
        ("one.txt", 1),
        ("4096.bin", 4096),
        ("edge.bin", 65_537),
        ("several.bin", 300_001),
        ("with space.txt", 17),
        ("ünïcödé.txt", 29),
        ("dir/sub/deep.bin", 70_000),
    ];
    for (rel, size) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let data: Vec<u8> = (0..size)
            .map(|i| ((i * 131 + rel.len()) % 256) as u8)
            .collect();
        std::fs::write(path, data).expect("write");
    }
    dir
}

fn open_local(root: &Path) -> colo_connectors::OpenedVolume {
    let spec = VolumeSpec::from_config(&VolumeConfig {
        name: Some("local".into()),
        url: Some(format!("file://{}", root.display())),
        ..Default::default()
    })
    .expect("spec");
    open_volume(&spec).expect("open")
}

#[tokio::test]
async fn memory_backend() {
    let fx = small_fixture();
    let m = MemoryConnector::new("memory");
    for (rel, kind, _) in walk(fx.path()) {
        if kind == colo_connectors::EntryKind::File {
            m.put(&rel, std::fs::read(fx.path().join(&rel)).expect("read"));
        }
    }
    let metered = Arc::new(Metered::new(m));
    let stats = metered.stats();
    check_volume(metered.clone(), Some(stats), fx.path()).await;
    check_writes(metered.clone()).await;
    check_links(metered).await;
}

#[tokio::test]
async fn local_backend() {
    let fx = small_fixture();
    let v = open_local(fx.path());
    check_volume(v.connector.clone(), Some(v.stats), fx.path()).await;
    check_writes(v.connector).await;
    assert_eq!(
        walk(fx.path()),
        walk(small_fixture().path()),
        "nothing left over"
    );
}

#[tokio::test]
async fn local_backend_refuses_symlinks_out_of_the_volume() {
    let fx = small_fixture();
    std::os::unix::fs::symlink("/etc", fx.path().join("escape")).expect("symlink");
    let v = open_local(fx.path());
    let e = v
        .connector
        .read_range(
            &colo_connectors::ObjectPath::parse("escape/hostname").expect("path"),
            0..1,
            None,
        )
        .await
        .expect_err("must not read outside the volume");
    assert_eq!(
        e.kind(),
        colo_connectors::ErrorKind::PermissionDenied,
        "{e}"
    );
}

#[derive(Deserialize)]
struct ServersConfig {
    volume: Vec<VolumeConfig>,
}

/// Every volume of the config written by `scripts/servers.sh config`, against the fixture tree the
/// servers serve. Needs those servers: `scripts/test.sh` runs it with `--include-ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real test servers: run scripts/test.sh"]
async fn real_servers() {
    let config =
        PathBuf::from(std::env::var("COLO_BEHAVIOUR_CONFIG").expect("COLO_BEHAVIOUR_CONFIG"));
    let fixture =
        PathBuf::from(std::env::var("COLO_BEHAVIOUR_FIXTURE").expect("COLO_BEHAVIOUR_FIXTURE"));
    let text = std::fs::read_to_string(&config).expect("config");
    let servers: ServersConfig = toml::from_str(&text).expect("config parses");
    let mut backends = Vec::new();
    for vc in &servers.volume {
        let spec = VolumeSpec::from_config(vc).expect("spec");
        backends.push(spec.backend_name());
        let v = open_volume(&spec).expect("open");
        eprintln!("behaviour suite: {} ({})", spec.name, spec.backend_name());
        check_volume(v.connector.clone(), Some(v.stats), Path::new(&fixture)).await;
        // The test servers' write permissions: SeaweedFS, sshd and the local tree take writes;
        // wsgidav and pyftpdlib serve read-only; HTTP has no writes at all.
        match spec.backend_name() {
            "s3" | "sftp" | "local" => check_writes(v.connector).await,
            "webdav" | "ftp" => check_writes_refused(v.connector).await,
            _ => {
                assert!(!v.connector.capability().write);
                let e = v
                    .connector
                    .write_object(
                        &colo_connectors::ObjectPath::parse("x").expect("path"),
                        bytes::Bytes::new(),
                    )
                    .await
                    .expect_err("no writes over HTTP");
                assert_eq!(e.kind(), colo_connectors::ErrorKind::Unsupported, "{e}");
            }
        }
    }
    for b in ["s3", "webdav", "ftp", "sftp", "http", "local"] {
        assert!(backends.contains(&b), "the real-server run must cover {b}");
    }
    // The writable areas of the same servers (`servers.sh rw-config`): every write operation on
    // every backend that can write, WebDAV and FTP included.
    let rw = std::env::var("COLO_BEHAVIOUR_RW_CONFIG").expect("COLO_BEHAVIOUR_RW_CONFIG");
    let text = std::fs::read_to_string(&rw).expect("rw config");
    let servers: ServersConfig = toml::from_str(&text).expect("rw config parses");
    let mut writable = Vec::new();
    for vc in &servers.volume {
        let spec = VolumeSpec::from_config(vc).expect("spec");
        assert!(spec.writable, "{}: read-write in the rw config", spec.name);
        eprintln!(
            "behaviour suite, writes: {} ({})",
            spec.name,
            spec.backend_name()
        );
        writable.push(spec.backend_name());
        let connector = open_volume(&spec).expect("open").connector;
        // Every protocol with a rename verb moves a folder in one request (FTP's RNFR/RNTO
        // included); only S3 copies object by object.
        assert_eq!(
            connector.capability().rename_dirs,
            spec.backend_name() != "s3",
            "{}: native folder rename",
            spec.name
        );
        check_writes(connector.clone()).await;
        // SFTP keeps links; the other protocols answer Unsupported.
        assert_eq!(
            connector.capability().symlinks,
            spec.backend_name() == "sftp",
            "{}: links",
            spec.name
        );
        check_links(connector).await;
    }
    for b in ["s3", "webdav", "ftp", "sftp", "local"] {
        assert!(writable.contains(&b), "the write run must cover {b}");
    }
}
