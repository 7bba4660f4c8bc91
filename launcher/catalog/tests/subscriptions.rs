//! The subscriptions `datalabEvents` and `datalabLogs` through the schema, with a launcher whose
//! lab is driven by the test: past steps first, then live ones, the stream ending after the final
//! one; log text cut only between characters and ending once the lab ended and all was sent;
//! and access decided again before every item (a revoked token or an unshared lab ends it).

use async_graphql::{Request, Response, Variables};
use colo_catalog::Catalog;
use colo_catalog::graphql::{ColoSchema, Wiring, schema};
use colo_catalog::graphql_labs::{Datalabs, LabStep, LabStepStream};
use colo_catalog::graphql_live::Credential;
use colo_catalog::labs::{LabRecord, LabRequest};
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const TOOLS: &str = r#"
[[datalab_image]]
key = "runner"
title = "Runner"
properties = { command = "python3 -u", default_cpu = "0.5", default_memory_mib = "512", max_cpu = "2", max_memory_mib = "4096" }
"#;

/// One lab, driven by the test.
#[derive(Default)]
struct ScriptedLab {
    steps: Mutex<Vec<LabStep>>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<LabStep>>>,
    log: Mutex<Vec<u8>>,
}

impl ScriptedLab {
    fn step(&self, state: &str) {
        let step = LabStep {
            state: state.into(),
            reason: format!("now {state}"),
            at_secs: 0,
        };
        let mut steps = self.steps.lock();
        steps.push(step.clone());
        self.watchers
            .lock()
            .retain(|w| w.send(step.clone()).is_ok());
    }

    fn write(&self, bytes: &[u8]) {
        self.log.lock().extend_from_slice(bytes);
    }
}

impl Datalabs for ScriptedLab {
    fn start(&self, _: &LabRecord) -> Result<(), String> {
        self.step("PENDING");
        Ok(())
    }
    fn stop(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn steps(&self, _: &str) -> Vec<LabStep> {
        self.steps.lock().clone()
    }
    fn log_tail(&self, _: &str, _: u64) -> Result<String, String> {
        Ok(String::new())
    }
    fn expires_at(&self, _: &str) -> Option<u64> {
        None
    }
    fn renew(&self, _: &str, _: u64) -> Result<u64, String> {
        Err("not here".into())
    }
    fn watch(&self, _: &str) -> Option<(Vec<LabStep>, LabStepStream)> {
        let steps = self.steps.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.lock().push(tx);
        let live = futures::stream::unfold(rx, |mut rx| async move {
            let step = rx.recv().await?;
            Some((step, rx))
        });
        Some((steps.clone(), Box::pin(live)))
    }
    fn log_from(&self, _: &str, offset: u64, max_bytes: u64) -> Result<(Vec<u8>, u64), String> {
        let log = self.log.lock();
        let from = (offset as usize).min(log.len());
        let to = (from + max_bytes as usize).min(log.len());
        Ok((log[from..to].to_vec(), log.len() as u64))
    }
}

struct World {
    cat: Arc<Catalog>,
    lab: Arc<ScriptedLab>,
    schema: ColoSchema,
    lab_id: String,
    alice: String,
    bob: String,
    _home: tempfile::TempDir,
}

fn world() -> World {
    let home = tempfile::tempdir().expect("home");
    let cat = Arc::new(Catalog::open(home.path(), None).expect("open"));
    cat.load_mission_file("tools", TOOLS).expect("tools");
    let (_, alice) = cat.add_user("alice", false).expect("alice");
    let (_, bob) = cat.add_user("bob", false).expect("bob");
    let caller = cat.authenticate(&alice.token).expect("alice's token");
    let req = LabRequest {
        name: "run".into(),
        image: "runner".into(),
        volumes: Some(vec![]),
        ..Default::default()
    };
    let record = cat.add_lab(&caller, &req, &|_| false).expect("a lab");
    let lab = Arc::new(ScriptedLab::default());
    lab.start(&record).expect("start");
    let schema = schema(
        cat.clone(),
        Wiring {
            archive: None,
            labs: Some(lab.clone()),
        },
    );
    World {
        cat,
        lab,
        schema,
        lab_id: record.id,
        alice: alice.token,
        bob: bob.token,
        _home: home,
    }
}

impl World {
    fn subscribe(&self, token: &str, query: &str) -> impl Stream<Item = Response> + use<> {
        let caller = self.cat.authenticate(token).expect("a valid token");
        let vars = Variables::from_json(serde_json::json!({ "id": self.lab_id }));
        let request = Request::new(query)
            .variables(vars)
            .data(caller)
            .data(Credential(token.to_string()));
        self.schema.execute_stream(request)
    }
}

async fn next(stream: &mut (impl Stream<Item = Response> + Unpin)) -> Option<Response> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an item or the end within 10 s")
}

fn state(r: &Response) -> String {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let json = r.data.clone().into_json().expect("json");
    json["datalabEvents"]["state"]
        .as_str()
        .expect("state")
        .into()
}

fn text(r: &Response) -> String {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let json = r.data.clone().into_json().expect("json");
    json["datalabLogs"].as_str().expect("text").into()
}

fn code(r: &Response) -> String {
    r.errors[0]
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

const EVENTS: &str = "subscription($id: String!) { datalabEvents(id: $id) { state reason } }";
const LOGS: &str = "subscription($id: String!) { datalabLogs(id: $id) }";

#[tokio::test]
async fn events_come_past_then_live_and_end_after_the_final_one() {
    let w = world();
    w.lab.step("MOUNTING");
    let mut events = Box::pin(w.subscribe(&w.alice, EVENTS));
    assert_eq!(state(&next(&mut events).await.expect("past")), "PENDING");
    assert_eq!(state(&next(&mut events).await.expect("past")), "MOUNTING");
    w.lab.step("RUNNING");
    assert_eq!(state(&next(&mut events).await.expect("live")), "RUNNING");
    w.lab.step("STOPPED");
    w.lab.step("FAILED");
    assert_eq!(state(&next(&mut events).await.expect("live")), "STOPPED");
    assert!(
        next(&mut events).await.is_none(),
        "the stream ends after STOPPED"
    );
}

#[tokio::test]
async fn logs_come_as_written_whole_characters_only_and_end_with_the_lab() {
    let w = world();
    w.lab.step("RUNNING");
    w.lab.write(b"first\n");
    let mut logs = Box::pin(w.subscribe(&w.alice, LOGS));
    assert_eq!(text(&next(&mut logs).await.expect("so far")), "first\n");
    let arrow = "→".as_bytes();
    w.lab.write(b"x");
    w.lab.write(&arrow[..1]);
    assert_eq!(text(&next(&mut logs).await.expect("live")), "x");
    w.lab.write(&arrow[1..]);
    w.lab.write(b"\n");
    assert_eq!(text(&next(&mut logs).await.expect("live")), "→\n");
    w.lab.write(b"last words\n");
    w.lab.step("STOPPED");
    assert_eq!(
        text(&next(&mut logs).await.expect("drained")),
        "last words\n"
    );
    assert!(next(&mut logs).await.is_none(), "ended and all sent");
}

#[tokio::test]
async fn others_get_no_such_lab_and_a_revoked_token_or_an_unshare_ends_the_stream() {
    let w = world();
    w.lab.step("RUNNING");
    let mut refused = Box::pin(w.subscribe(&w.bob, EVENTS));
    let r = next(&mut refused).await.expect("an answer");
    assert_eq!(code(&r), "\"NOT_FOUND\"", "{:?}", r.errors);

    // Shared: bob follows; unshared: his next item is the refusal, then the end.
    let alice = w.cat.authenticate(&w.alice).expect("alice");
    w.cat.share_lab(&alice, &w.lab_id, "bob").expect("share");
    let mut events = Box::pin(w.subscribe(&w.bob, EVENTS));
    assert_eq!(state(&next(&mut events).await.expect("past")), "PENDING");
    assert_eq!(state(&next(&mut events).await.expect("past")), "RUNNING");
    w.cat
        .unshare_lab(&alice, &w.lab_id, "bob")
        .expect("unshare");
    w.lab.step("STOPPING");
    let r = next(&mut events).await.expect("the refusal");
    assert_eq!(code(&r), "\"NOT_FOUND\"", "{:?}", r.errors);
    assert!(next(&mut events).await.is_none());

    // Alice's own stream ends when her token is revoked.
    let mut logs = Box::pin(w.subscribe(&w.alice, LOGS));
    w.cat.revoke_token(alice.token_id, None).expect("revoke");
    w.lab.write(b"after the revocation\n");
    let r = next(&mut logs).await.expect("the refusal");
    assert_eq!(code(&r), "\"UNAUTHENTICATED\"", "{:?}", r.errors);
    assert!(next(&mut logs).await.is_none());
}

#[tokio::test]
async fn a_lab_removed_as_it_finishes_still_gives_its_last_output() {
    let w = world();
    w.lab.step("RUNNING");
    let mut logs = Box::pin(w.subscribe(&w.alice, LOGS));
    w.lab.write(b"working\n");
    assert_eq!(text(&next(&mut logs).await.expect("live")), "working\n");
    // The launcher forgets a remove-when-finished lab as it ends, before the log is drained.
    w.lab.write(b"done\n");
    w.lab.step("STOPPED");
    w.cat.forget_lab(&w.lab_id).expect("forgotten");
    assert_eq!(
        text(&next(&mut logs).await.expect("the last words")),
        "done\n"
    );
    assert!(next(&mut logs).await.is_none());
    // Nobody starts following it any more.
    let mut late = Box::pin(w.subscribe(&w.alice, LOGS));
    let r = next(&mut late).await.expect("an answer");
    assert_eq!(code(&r), "\"NOT_FOUND\"", "{:?}", r.errors);
}

#[tokio::test]
async fn one_user_follows_a_bounded_number_of_streams() {
    use colo_catalog::graphql_live::MAX_STREAMS_PER_USER;
    let w = world();
    w.lab.step("RUNNING");
    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS_PER_USER {
        let mut s = Box::pin(w.subscribe(&w.alice, EVENTS));
        assert_eq!(state(&next(&mut s).await.expect("past")), "PENDING");
        open.push(s);
    }
    let mut refused = Box::pin(w.subscribe(&w.alice, LOGS));
    let r = next(&mut refused).await.expect("an answer");
    assert!(
        r.errors[0].message.contains("follows 32 streams already"),
        "{:?}",
        r.errors
    );
    // Bob is not counted with alice; one of hers ended frees a place.
    let alice = w.cat.authenticate(&w.alice).expect("alice");
    w.cat.share_lab(&alice, &w.lab_id, "bob").expect("share");
    let mut bobs = Box::pin(w.subscribe(&w.bob, EVENTS));
    assert_eq!(state(&next(&mut bobs).await.expect("past")), "PENDING");
    open.pop();
    let mut again = Box::pin(w.subscribe(&w.alice, EVENTS));
    assert_eq!(state(&next(&mut again).await.expect("past")), "PENDING");
}
