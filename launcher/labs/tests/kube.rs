//! The Kubernetes backend without a cluster: kube's client talks to a scripted API server (tower's
//! mock service) that answers as Kubernetes does and records what it was sent. The namespace,
//! Secret and Pod the backend creates are checked against the golden YAML in `tests/golden/kube/`
//! (`COLO_UPDATE_GOLDEN=1` rewrites them; review the diff), and the Pod's watched states become
//! the lab's events: MOUNTING while the image and volumes come, STARTING, RUNNING once ready
//! (with the Pod's address for the proxy), FAILED with the reason on an OOM kill, and STOPPED
//! after a stop request deletes the Pod.

use bytes::Bytes;
use colo_labs::http::Endpoint;
use colo_labs::kube::{KubeBackend, KubeSettings, WEB_PORT};
use colo_labs::{LabBackend, LabSpec, LabState, LabVolume, ReadyProbe, Resources};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type ApiHandle = tower_test::mock::Handle<Request<kube::client::Body>, Response<Body>>;

fn full(value: &Value) -> Body {
    http_body_util::Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn answer(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(value))
        .expect("response")
}

fn not_found(kind: &str, name: &str) -> Response<Body> {
    answer(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404}),
    )
}

/// One JSON line (a watch event) and the end of the stream.
fn full_line(value: &Value) -> Body {
    http_body_util::Full::new(Bytes::from(format!("{value}\n")))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body the test writes to as it goes (a watch, a followed log).
fn streaming() -> (mpsc::UnboundedSender<Bytes>, Body) {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(hyper::body::Frame::data(chunk)), rx))
    });
    (tx, http_body_util::StreamBody::new(frames).boxed_unsync())
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kube")
}

/// `sent` must be the golden object `name` (compared as data, not as text).
fn assert_golden(name: &str, sent: &Value) {
    let path = golden_dir().join(name);
    if std::env::var_os("COLO_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        let text = serde_saphyr::to_string(sent).expect("yaml");
        std::fs::write(&path, text).expect("write golden");
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (COLO_UPDATE_GOLDEN=1 writes it)", path.display()));
    let golden: Value = serde_saphyr::from_str(&text).expect("golden yaml");
    assert_eq!(
        sent,
        &golden,
        "the {name} sent differs from {}",
        path.display()
    );
}

fn settings() -> KubeSettings {
    KubeSettings {
        images: [
            (
                "jupyterlab".to_string(),
                "registry.example/colo/jupyterlab:4.5".to_string(),
            ),
            (
                "headless-python".to_string(),
                "registry.example/colo/python:3.13".to_string(),
            ),
        ]
        .into(),
        ..KubeSettings::default()
    }
}

fn jupyter_spec() -> LabSpec {
    LabSpec {
        id: "k7".into(),
        user: "alice".into(),
        image: "jupyterlab".into(),
        uid: 1201,
        gid: 1201,
        command: vec![
            "jupyter-lab".into(),
            "--no-browser".into(),
            "--ServerApp.ip=0.0.0.0".into(),
            format!("--ServerApp.port={WEB_PORT}"),
            "--ServerApp.base_url=/labs/k7/".into(),
        ],
        env: vec![
            ("HOME".into(), "/home/alice".into()),
            ("COLO_LAB".into(), "k7".into()),
            ("COLO_LAB_SECRET".into(), "not-a-real-secret-0123".into()),
        ],
        volumes: vec![
            LabVolume {
                name: "sample".into(),
                source: "/var/lib/colo/mnt/.users/alice/sample".into(),
                read_only: true,
            },
            LabVolume {
                name: "home".into(),
                source: "/var/lib/colo/mnt/.users/alice/home".into(),
                read_only: false,
            },
        ],
        resources: Resources {
            cpu_millis: 1500,
            memory_bytes: 2048 << 20,
        },
        ready: Some(ReadyProbe {
            endpoint: Endpoint::Tcp(WEB_PORT),
            path: "/labs/k7/api/status".into(),
            headers: vec![],
            timeout_secs: 120,
        }),
    }
}

fn headless_spec() -> LabSpec {
    LabSpec {
        id: "h1".into(),
        user: "bob_smith".into(),
        image: "headless-python".into(),
        uid: 1202,
        gid: 1202,
        command: vec!["python3".into(), "-c".into(), "print(1)".into()],
        env: vec![("COLO_LAB".into(), "h1".into())],
        volumes: vec![LabVolume {
            name: "scratch".into(),
            source: "/var/lib/colo/mnt/.users/bob_smith/scratch".into(),
            read_only: false,
        }],
        resources: Resources {
            cpu_millis: 500,
            memory_bytes: 64 << 20,
        },
        ready: None,
    }
}

/// A backend whose client talks to the returned scripted API server, its files under `dir`.
fn mock_backend(settings: KubeSettings, dir: &Path) -> (KubeBackend, ApiHandle) {
    let (service, api) = tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
    let backend = KubeBackend::new(
        kube::Client::new(service, "default"),
        settings,
        dir,
        Path::new("/media/data"),
        Duration::from_secs(60),
    )
    .expect("backend");
    (backend, api)
}

/// One request as the API server saw it.
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

async fn next(handle: &mut ApiHandle) -> (Seen, tower_test::mock::SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("the backend made no request within 10 s")
        .expect("the client is gone");
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.expect("request body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (
        Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            body,
        },
        send,
    )
}

fn pod_status(pod: &Value, status: Value) -> Value {
    let mut pod = pod.clone();
    pod["metadata"]["resourceVersion"] = json!("5");
    pod["metadata"]["uid"] = json!("0f0e");
    pod["spec"]["nodeName"] = json!("node-a");
    pod["status"] = status;
    pod
}

fn watch_line(kind: &str, pod: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": pod})))
}

async fn next_event(
    events: &mut mpsc::UnboundedReceiver<colo_labs::LabEvent>,
) -> colo_labs::LabEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no lab event within 10 s")
        .expect("the lab's events ended")
}

/// Creates the namespace (absent), the Secret and the Pod as the backend asks, checking each
/// against its golden file; returns the Pod as created.
async fn serve_creation(api: &mut ApiHandle, namespace: &str, golden: &[&str]) -> Value {
    let (seen, send) = next(api).await;
    assert_eq!(
        (seen.method, seen.path.as_str()),
        (
            Method::GET,
            format!("/api/v1/namespaces/{namespace}").as_str()
        )
    );
    send.send_response(not_found("namespaces", namespace));
    let (seen, send) = next(api).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::POST, "/api/v1/namespaces")
    );
    assert_golden(golden[0], &seen.body);
    send.send_response(answer(StatusCode::CREATED, &seen.body));
    let mut pod = Value::Null;
    for name in &golden[1..] {
        let (seen, send) = next(api).await;
        assert_eq!(seen.method, Method::POST);
        let kind = if name.starts_with("secret") {
            "secrets"
        } else {
            "pods"
        };
        assert_eq!(seen.path, format!("/api/v1/namespaces/{namespace}/{kind}"));
        assert_golden(name, &seen.body);
        if kind == "pods" {
            pod = seen.body.clone();
        }
        send.send_response(answer(StatusCode::CREATED, &seen.body));
    }
    pod
}

#[tokio::test]
async fn a_jupyter_lab_becomes_the_golden_pod_runs_when_ready_and_stops_when_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let (backend, mut api) = mock_backend(settings(), dir.path());
    let mut handle = backend.start(jupyter_spec()).expect("start");
    assert_eq!(
        next_event(&mut handle.events).await.state,
        LabState::Pending
    );

    let pod = serve_creation(
        &mut api,
        "colo-alice",
        &[
            "namespace-alice.yaml",
            "secret-jupyter.yaml",
            "pod-jupyter.yaml",
        ],
    )
    .await;

    // The watch: a list of the one Pod (its image being pulled), then changes as they come.
    let (seen, send) = next(&mut api).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::GET, "/api/v1/namespaces/colo-alice/pods")
    );
    assert!(
        seen.query.contains("fieldSelector=metadata.name%3Dlab-k7"),
        "{}",
        seen.query
    );
    assert!(
        !seen.query.contains("watch=true"),
        "a list first: {}",
        seen.query
    );
    let creating = pod_status(
        &pod,
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [{"name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                                      "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    send.send_response(answer(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"}, "items": [creating]}),
    ));
    let mounting = next_event(&mut handle.events).await;
    assert_eq!(mounting.state, LabState::Mounting);
    assert!(mounting.reason.contains("node-a"), "{}", mounting.reason);

    let (seen, send) = next(&mut api).await;
    assert_eq!(seen.path, "/api/v1/namespaces/colo-alice/pods");
    assert!(
        seen.query.contains("watch=true") && seen.query.contains("resourceVersion=5"),
        "{}",
        seen.query
    );
    let (watch, body) = streaming();
    send.send_response(Response::builder().status(200).body(body).expect("watch"));

    let running = |ready: bool| {
        pod_status(
            &pod,
            json!({"phase": "Running", "podIP": "10.42.0.7",
                   "conditions": [{"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "lab", "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2026-12-07T05:00:00Z"}}}]}),
        )
    };
    watch
        .send(watch_line("MODIFIED", &running(false)))
        .expect("send");
    assert_eq!(
        next_event(&mut handle.events).await.state,
        LabState::Starting
    );
    // Its log, followed from the API once the container runs.
    let (seen, send) = next(&mut api).await;
    assert_eq!(seen.path, "/api/v1/namespaces/colo-alice/pods/lab-k7/log");
    assert!(
        seen.query.contains("follow=true") && seen.query.contains("container=lab"),
        "{}",
        seen.query
    );
    let (log, body) = streaming();
    send.send_response(Response::builder().status(200).body(body).expect("log"));
    log.send(Bytes::from_static(
        b"[I ServerApp] Jupyter Server is running\n",
    ))
    .expect("log line");

    assert_eq!(
        backend.endpoint("k7"),
        None,
        "no address before it is ready"
    );
    watch
        .send(watch_line("MODIFIED", &running(true)))
        .expect("send");
    let up = next_event(&mut handle.events).await;
    assert_eq!(up.state, LabState::Running);
    assert_eq!(
        backend.endpoint("k7"),
        Some(Endpoint::Addr("10.42.0.7:8888".parse().expect("addr"))),
        "the proxy's way to the lab"
    );
    let mut tail = String::new();
    for _ in 0..100 {
        tail = backend.labs().log_tail("k7", 4096).expect("log");
        if !tail.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tail, "[I ServerApp] Jupyter Server is running\n");

    // Stop: STOPPING, the Pod deleted with its grace period, STOPPED once the watch says it is gone.
    backend.labs().stop_because("k7", "expired").expect("stop");
    let stopping = next_event(&mut handle.events).await;
    assert_eq!(
        (stopping.state, stopping.reason.as_str()),
        (LabState::Stopping, "expired")
    );
    let (seen, send) = next(&mut api).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::DELETE, "/api/v1/namespaces/colo-alice/pods/lab-k7")
    );
    assert_eq!(seen.body["gracePeriodSeconds"], json!(10));
    send.send_response(answer(StatusCode::OK, &running(true)));
    drop(log);
    watch
        .send(watch_line("DELETED", &running(false)))
        .expect("send");
    // Its objects are cleaned up — the Pod (already going) and the Secret with the lab's token —
    // and then it is STOPPED, with the reason it was stopped for.
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let (seen, send) = next(&mut api).await;
        assert_eq!(seen.method, Method::DELETE);
        deleted.push(seen.path.clone());
        let kind = if seen.path.contains("/pods/") {
            "pods"
        } else {
            "secrets"
        };
        send.send_response(not_found(kind, "lab-k7"));
    }
    assert_eq!(
        deleted,
        [
            "/api/v1/namespaces/colo-alice/pods/lab-k7",
            "/api/v1/namespaces/colo-alice/secrets/lab-k7"
        ]
    );
    let stopped = next_event(&mut handle.events).await;
    assert_eq!(
        (stopped.state, stopped.reason.as_str()),
        (LabState::Stopped, "expired")
    );
    assert_eq!(backend.endpoint("k7"), None);
}

#[tokio::test]
async fn a_headless_lab_over_its_memory_fails_saying_oom() {
    let dir = tempfile::tempdir().expect("dir");
    let (backend, mut api) = mock_backend(settings(), dir.path());
    let mut handle = backend.start(headless_spec()).expect("start");
    assert_eq!(
        next_event(&mut handle.events).await.state,
        LabState::Pending
    );
    // A user name with '_' is not a DNS label: the namespace is a safe form of it with a hash.
    let namespace = colo_labs::kube::objects::namespace_of("colo-", "bob_smith");
    assert!(namespace.starts_with("colo-bob-smith-"), "{namespace}");
    // No secret environment: no Secret.
    let pod = serve_creation(
        &mut api,
        &namespace,
        &["namespace-bob.yaml", "pod-headless.yaml"],
    )
    .await;
    let (_, send) = next(&mut api).await;
    let oom = pod_status(
        &pod,
        json!({"phase": "Failed",
               "containerStatuses": [{"name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                                      "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
    );
    send.send_response(answer(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": [oom]}),
    ));
    // Then its log is fetched (what it printed before the kill) and its objects deleted.
    let seen_paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let paths = seen_paths.clone();
    tokio::spawn(async move {
        let mut watches = Vec::new();
        while let Ok((seen, send)) = tokio::time::timeout(Duration::from_secs(10), next(&mut api))
            .await
            .map(Ok::<_, ()>)
            .unwrap_or(Err(()))
        {
            paths
                .lock()
                .expect("paths")
                .push(format!("{} {}", seen.method, seen.path));
            if seen.path.ends_with("/log") {
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(
                            http_body_util::Full::new(Bytes::from_static(b"allocating\n"))
                                .map_err(|never| match never {})
                                .boxed_unsync(),
                        )
                        .expect("log"),
                );
            } else if seen.query.contains("watch=true") {
                let (watch, body) = streaming();
                watches.push(watch);
                send.send_response(Response::builder().status(200).body(body).expect("watch"));
            } else {
                send.send_response(not_found("pods", "lab-h1"));
            }
        }
    });
    let mut last = next_event(&mut handle.events).await;
    while !last.state.is_final() {
        last = next_event(&mut handle.events).await;
    }
    assert_eq!(last.state, LabState::Failed);
    assert!(
        last.reason.contains("OOM-killed") && last.reason.contains("64 MiB"),
        "{}",
        last.reason
    );
    let seen = seen_paths.lock().expect("paths").clone();
    let pod_path = format!("/api/v1/namespaces/{namespace}/pods/lab-h1");
    assert!(seen.contains(&format!("GET {pod_path}/log")), "{seen:?}");
    assert!(seen.contains(&format!("DELETE {pod_path}")), "{seen:?}");
    assert_eq!(
        backend.labs().log_tail("h1", 100).expect("log"),
        "allocating\n"
    );
}

#[tokio::test]
async fn an_image_without_a_container_image_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let (backend, _api) = mock_backend(KubeSettings::default(), dir.path());
    let err = backend
        .start(headless_spec())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("headless-python") && err.contains("[labs.kubernetes.images]"),
        "{err}"
    );
}

#[tokio::test]
async fn a_dropped_watch_is_resumed_and_a_pod_gone_meanwhile_is_noticed_at_the_relist() {
    let dir = tempfile::tempdir().expect("dir");
    let (backend, mut api) = mock_backend(settings(), dir.path());
    let mut handle = backend.start(headless_spec()).expect("start");
    assert_eq!(
        next_event(&mut handle.events).await.state,
        LabState::Pending
    );
    let namespace = colo_labs::kube::objects::namespace_of("colo-", "bob_smith");
    let pod = serve_creation(
        &mut api,
        &namespace,
        &["namespace-bob.yaml", "pod-headless.yaml"],
    )
    .await;
    let pods_path = format!("/api/v1/namespaces/{namespace}/pods");
    let list = |items: Vec<Value>, version: &str| json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items});
    let creating = pod_status(
        &pod,
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [{"name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                                      "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    let (seen, send) = next(&mut api).await;
    assert_eq!(seen.path, pods_path);
    send.send_response(answer(StatusCode::OK, &list(vec![creating], "5")));
    assert_eq!(
        next_event(&mut handle.events).await.state,
        LabState::Mounting
    );
    // The watch opens, then the connection drops.
    let (seen, send) = next(&mut api).await;
    assert!(seen.query.contains("watch=true"), "{}", seen.query);
    let (watch, body) = streaming();
    send.send_response(Response::builder().status(200).body(body).expect("watch"));
    drop(watch);
    // It is resumed from the version it had; the API server says that version is too old (410),
    // so the watcher lists again — and the Pod is not there any more.
    let mut relisted = false;
    for _ in 0..6 {
        let (seen, send) = next(&mut api).await;
        assert_eq!(seen.path, pods_path, "{} {}", seen.method, seen.path);
        if seen.query.contains("watch=true") {
            // As the API server does: the watch is accepted, then an ERROR event carries the 410.
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "Expired", "message": "too old resource version: 5 (9)", "code": 410}});
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(full_line(&gone))
                    .expect("watch"),
            );
        } else {
            send.send_response(answer(StatusCode::OK, &list(vec![], "9")));
            relisted = true;
            break;
        }
    }
    assert!(relisted, "the watcher never listed again");
    // Its (already gone) objects are deleted, then it is FAILED, saying what happened.
    for _ in 0..2 {
        let (seen, send) = next(&mut api).await;
        assert_eq!(seen.method, Method::DELETE);
        send.send_response(not_found("pods", "lab-h1"));
    }
    let end = next_event(&mut handle.events).await;
    assert_eq!(end.state, LabState::Failed);
    assert!(
        end.reason.contains("deleted by someone other than colo"),
        "{}",
        end.reason
    );
}

#[tokio::test]
async fn a_restarted_colo_deletes_the_pods_of_labs_it_had_running() {
    let dir = tempfile::tempdir().expect("dir");
    let lab_dir = dir.path().join("k9");
    std::fs::create_dir_all(&lab_dir).expect("lab dir");
    let running =
        |state: &str| json!({"lab": "k9", "state": state, "reason": "r", "at_secs": 1}).to_string();
    std::fs::write(
        lab_dir.join("events.jsonl"),
        format!("{}\n{}\n", running("PENDING"), running("RUNNING")),
    )
    .expect("events");
    std::fs::write(
        lab_dir.join("pod.json"),
        json!({"namespace": "colo-alice", "name": "lab-k9"}).to_string(),
    )
    .expect("pod.json");
    let (backend, mut api) = mock_backend(settings(), dir.path());
    let server = tokio::spawn(async move {
        let mut deleted = Vec::new();
        for _ in 0..2 {
            let (seen, send) = next(&mut api).await;
            deleted.push(format!("{} {}", seen.method, seen.path));
            send.send_response(answer(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        }
        deleted
    });
    assert_eq!(backend.recover().await.expect("recover"), ["k9"]);
    assert_eq!(
        server.await.expect("server"),
        [
            "DELETE /api/v1/namespaces/colo-alice/pods/lab-k9",
            "DELETE /api/v1/namespaces/colo-alice/secrets/lab-k9"
        ]
    );
    let status = backend.labs().status("k9").expect("status");
    assert_eq!(
        (status.state, status.reason.as_str()),
        (LabState::Stopped, "colo restarted while the lab ran")
    );
}
