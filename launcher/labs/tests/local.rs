//! The local backend on this machine, for real: namespaces, bind mounts, cgroups and the user
//! switch (the test runs as root, as colo does). Each lab runs a shell as uid 1000 and reports
//! what it sees; the host side is checked after.

use colo_labs::{LabBackend, LabSpec, LabState, LabVolume, LocalBackend, Resources};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const MOUNT_POINT: &str = "/media/data";

fn backend(dir: &Path) -> LocalBackend {
    LocalBackend::new(
        dir,
        vec![env!("CARGO_BIN_EXE_colo-lab-init").into()],
        Path::new(MOUNT_POINT),
    )
    .expect("backend")
}

fn spec(id: &str, script: &str, volumes: Vec<LabVolume>, memory_mib: u64) -> LabSpec {
    LabSpec {
        id: id.into(),
        user: "alice".into(),
        image: "headless-python".into(),
        uid: 1000,
        gid: 1000,
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("SECRET_OF_COLO".into(), String::new()),
        ]
        .into_iter()
        .filter(|(k, _)| k == "PATH")
        .collect(),
        volumes,
        resources: Resources {
            cpu_millis: 500,
            memory_bytes: memory_mib << 20,
        },
        ready: None,
    }
}

async fn run_to_end(backend: &LocalBackend, spec: LabSpec) -> Vec<(LabState, String)> {
    let mut handle = backend.start(spec).expect("start");
    let mut seen = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_secs(60), handle.events.recv()).await
    {
        let end = e.state.is_final();
        seen.push((e.state, e.reason));
        if end {
            break;
        }
    }
    seen
}

fn states(events: &[(LabState, String)]) -> Vec<LabState> {
    events.iter().map(|(s, _)| *s).collect()
}

#[tokio::test]
async fn a_lab_sees_only_its_volumes_as_its_user_and_read_only_grants_refuse_writes() {
    let state = tempfile::tempdir().expect("state");
    let rw = tempfile::tempdir().expect("rw");
    let ro = tempfile::tempdir().expect("ro");
    std::fs::set_permissions(rw.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::write(ro.path().join("hello.txt"), "from the archive\n").expect("write");
    let b = backend(state.path());
    let script = "id -u; id -G; ls /media/data; cat /media/data/archive/hello.txt; \
                  touch /media/data/archive/x 2>/dev/null || echo archive-refused; \
                  mkdir /media/data/extra 2>/dev/null || echo extra-refused; \
                  echo result > /media/data/home/out.txt && echo home-written; env | sort";
    let events = run_to_end(
        &b,
        spec(
            "see",
            script,
            vec![
                LabVolume {
                    name: "home".into(),
                    source: rw.path().into(),
                    read_only: false,
                },
                LabVolume {
                    name: "archive".into(),
                    source: ro.path().into(),
                    read_only: true,
                },
            ],
            256,
        ),
    )
    .await;
    assert_eq!(
        states(&events),
        vec![
            LabState::Pending,
            LabState::Mounting,
            LabState::Starting,
            LabState::Running,
            LabState::Stopped
        ],
        "{events:?}"
    );
    let log = b.labs().log_tail("see", 1 << 20).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(&lines[..3], &["1000", "1000", "archive"], "{log}");
    assert_eq!(lines[3], "home", "exactly the two volumes: {log}");
    for said in [
        "from the archive",
        "archive-refused",
        "extra-refused",
        "home-written",
    ] {
        assert!(lines.contains(&said), "{said} missing from: {log}");
    }
    let env: Vec<&str> = lines.iter().copied().filter(|l| l.contains('=')).collect();
    assert!(
        env.iter().all(|l| l.starts_with("PATH=")
            || l.starts_with("PWD=")
            || l.starts_with("SHLVL=")
            || l.starts_with("_=")),
        "only the spec's environment reaches the tool: {env:?}"
    );
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out.txt")).expect("out"),
        "result\n"
    );
    let meta = std::fs::metadata(rw.path().join("out.txt")).expect("meta");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        1000,
        "written as the user"
    );
    assert!(!ro.path().join("x").exists());
    // The lab's files (its plan holds its environment) are colo's alone.
    for (f, mode) in [
        ("see", 0o700),
        ("see/plan.json", 0o600),
        ("see/log", 0o600),
        ("see/events.jsonl", 0o600),
    ] {
        let m = std::fs::metadata(state.path().join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    // The host's /media/data is untouched: the lab's mounts were in its namespace only.
    assert!(!Path::new(MOUNT_POINT).join("home").exists());
}

#[tokio::test]
async fn a_failing_lab_says_why_at_once() {
    let state = tempfile::tempdir().expect("state");
    let b = backend(state.path());
    let (exit, missing, oom) = tokio::join!(
        run_to_end(&b, spec("exit3", "echo about to fail; exit 3", vec![], 64)),
        run_to_end(
            &b,
            spec(
                "missing",
                "true",
                vec![LabVolume {
                    name: "gone".into(),
                    source: "/nonexistent/colo-gone".into(),
                    read_only: false
                }],
                64
            )
        ),
        run_to_end(
            &b,
            spec("oom", "head -c 400000000 /dev/zero | tail", vec![], 64)
        ),
    );
    let last = |e: &[(LabState, String)]| e.last().cloned().expect("an end");
    let (s, why) = last(&exit);
    assert_eq!(s, LabState::Failed);
    assert!(
        why.contains("exit code 3") && why.contains("about to fail"),
        "{why}"
    );
    let (s, why) = last(&missing);
    assert_eq!(s, LabState::Failed);
    assert!(
        why.contains("volume 'gone'") && why.contains("/nonexistent/colo-gone"),
        "{why}"
    );
    assert!(
        !states(&missing).contains(&LabState::Running),
        "{missing:?}"
    );
    let (s, why) = last(&oom);
    assert_eq!(s, LabState::Failed, "{oom:?}");
    assert!(
        why.contains("OOM-killed") && why.contains("64 MiB"),
        "{why}"
    );
}

#[tokio::test]
async fn a_stopped_lab_ends_with_all_its_processes_and_a_restart_cleans_up_leftovers() {
    let state = tempfile::tempdir().expect("state");
    let b = backend(state.path());
    let mut handle = b
        .start(spec(
            "long",
            "sleep 600 & sleep 600; echo never",
            vec![],
            64,
        ))
        .expect("start");
    loop {
        let e = handle.events.recv().await.expect("event");
        if e.state == LabState::Running {
            break;
        }
        assert!(!e.state.is_final(), "{e:?}");
    }
    let group = b
        .hierarchy()
        .and_then(|h| colo_labs::cgroup::LabCgroup::existing(h, "long"))
        .expect("the lab's cgroup");
    // The shell and both sleeps (a process may still be forking: wait for three).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while group.pids().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(group.pids().len() >= 3, "{:?}", group.pids());
    b.labs().stop("long").expect("stop");
    let mut rest = Vec::new();
    while let Some(e) = handle.events.recv().await {
        let end = e.state.is_final();
        rest.push((e.state, e.reason));
        if end {
            break;
        }
    }
    assert_eq!(
        states(&rest),
        vec![LabState::Stopping, LabState::Stopped],
        "{rest:?}"
    );
    assert!(group.pids().is_empty(), "the background sleep went too");
    assert!(colo_labs::cgroup::LabCgroup::existing(b.hierarchy().expect("h"), "long").is_none());

    // A colo that died with a lab running: its events end RUNNING; the next colo stops it.
    let dir = state.path().join("ghost");
    std::fs::create_dir_all(&dir).expect("dir");
    let running = colo_labs::LabEvent::now("ghost", LabState::Running, "pid 1");
    std::fs::write(
        dir.join("events.jsonl"),
        format!("{}\n", serde_json::to_string(&running).expect("json")),
    )
    .expect("events");
    let again = backend(state.path());
    assert_eq!(
        again.recover().await.expect("recover"),
        vec!["ghost".to_string()]
    );
    let ghost = again.labs().status("ghost").expect("status");
    assert_eq!(ghost.state, LabState::Stopped);
    assert!(ghost.reason.contains("colo restarted"), "{}", ghost.reason);
    assert!(
        again.recover().await.expect("again").is_empty(),
        "recovered once"
    );
}

#[tokio::test]
async fn a_lab_gets_no_more_cpu_than_its_limit() {
    let state = tempfile::tempdir().expect("state");
    let b = backend(state.path());
    let mut lab = spec("busy", "while :; do :; done", vec![], 64);
    lab.resources.cpu_millis = 100;
    let mut handle = b.start(lab).expect("start");
    while handle.events.recv().await.expect("event").state != LabState::Running {}
    let group = b
        .hierarchy()
        .and_then(|h| colo_labs::cgroup::LabCgroup::existing(h, "busy"))
        .expect("the lab's cgroup");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let throttled = group.throttled_periods().expect("cpu.stat");
    // A tenth of a core over 1 s: the busy loop is held back in (nearly) every 100 ms period.
    assert!(throttled >= 5, "throttled in {throttled} periods");
    b.labs().stop("busy").expect("stop");
    while !handle.events.recv().await.expect("event").state.is_final() {}
}

#[tokio::test]
async fn a_volume_whose_folder_is_under_the_mount_point_itself_is_still_bound() {
    // colo's own mount is at /media/data by default: the users' views are /media/data/.users/…,
    // under the very folder each lab gets a fresh /media/data at.
    let state = tempfile::tempdir().expect("state");
    let under = Path::new(MOUNT_POINT).join(format!(".colo-test-{}", std::process::id()));
    std::fs::create_dir_all(&under).expect("a folder under the mount point");
    std::fs::write(under.join("note.txt"), "under the mount point\n").expect("write");
    let b = backend(state.path());
    let events = run_to_end(
        &b,
        spec(
            "under",
            "ls /media/data; cat /media/data/view/note.txt",
            vec![LabVolume {
                name: "view".into(),
                source: under.clone(),
                read_only: true,
            }],
            64,
        ),
    )
    .await;
    let _ = std::fs::remove_dir_all(&under);
    assert_eq!(
        events.last().map(|e| e.0),
        Some(LabState::Stopped),
        "{events:?}"
    );
    assert_eq!(
        b.labs().log_tail("under", 4096).expect("log"),
        "view\nunder the mount point\n"
    );
}
