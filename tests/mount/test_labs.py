"""Datalabs through the real API on `colo up`: alice launches the headless Python runner with two of
her volumes; inside, it runs as her own uid and sees exactly those volumes at /media/data (the
archive read-only, her WebDAV volume writable), and what it writes reaches the WebDAV server. Every
lifecycle step is an event with a reason; failures say why (exit code, OOM at the memory limit,
a volume she does not have, an image that cannot start); bob sees none of her labs."""
import os
import subprocess
import time

import pytest

from conftest import BIN
from platform_up import CREATE, GET, Platform

INSIDE = r"""
import os, errno
print("uid", os.getuid(), "gid", os.getgid())
print("volumes", sorted(os.listdir("/media/data")))
with open("/media/data/imgs/obs/a.fits", "rb") as f:
    print("header", f.read(80).decode().strip())
try:
    open("/media/data/imgs/obs/new.fits", "wb")
except OSError as e:
    print("archive write", errno.errorcode[e.errno])
os.makedirs("/media/data/work/results", exist_ok=True)
with open("/media/data/work/results/out.txt", "w") as f:
    f.write("computed in a datalab\n")
print("done")
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("labs"))
    yield p
    p.stop()


def gql(p, user, query, variables=None):
    return p.gql(user, query, variables)


def launch(p, user, **input):
    r = gql(p, user, CREATE, {"input": {"name": "t", "image": "headless-python", **input}})
    if r.get("data"):
        r["data"]["createDatalab"] = r["data"]["createDatalab"]["datalab"]
    return r


def until_final(p, user, lab_id, timeout=60):
    return p.until(user, lab_id, (), timeout)


def until_removed(p, user, lab_id, timeout=60):
    """The answer to `datalab(id)` once it is an error (the lab removed itself), or the last one."""
    deadline = time.time() + timeout
    while True:
        r = gql(p, user, GET, {"id": lab_id})
        if r.get("errors") or time.time() > deadline:
            return r
        time.sleep(0.2)


def test_a_headless_lab_runs_as_its_user_with_exactly_its_volumes(platform):
    p = platform
    r = launch(p, "alice", volumes=["imgs", "work"], args=["-c", INSIDE], memoryMib=256, cpuMillis=500)
    lab = r["data"]["createDatalab"]
    assert lab["state"] in ("PENDING", "MOUNTING", "STARTING", "RUNNING"), lab
    assert lab["volumes"] == [{"name": "imgs", "readOnly": True}, {"name": "work", "readOnly": False}]
    assert (lab["owner"], lab["cpuMillis"], lab["memoryMib"]) == ("alice", 500, 256)
    done = until_final(p, "alice", lab["id"])
    assert [e["state"] for e in done["events"]] == ["PENDING", "MOUNTING", "STARTING", "RUNNING", "STOPPED"], done
    assert done["reason"] == "the tool exited (code 0)", done
    out = done["log"].splitlines()
    assert out[0] == "uid 100001 gid 100001", out  # alice is user 1: 100000 + 1
    assert out[1] == "volumes ['imgs', 'work']", out
    assert out[2].startswith("header SIMPLE  ="), out
    assert out[3] == "archive write EROFS", out
    assert out[-1] == "done", out
    # What it wrote went through alice's view to the WebDAV server.
    written = os.path.join(p.dav_dir, "results", "out.txt")
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(written):
        time.sleep(0.1)
    assert open(written).read() == "computed in a datalab\n"
    st = os.stat(os.path.join(p.root, ".users", "alice", "work", "results", "out.txt"))
    assert st.st_uid == 100001, "her files show as hers in her folder"
    # Bob sees nothing of it.
    r = gql(p, "bob", GET, {"id": lab["id"]})
    assert r["errors"][0]["extensions"]["code"] == "NOT_FOUND", r
    assert gql(p, "bob", "{ datalabs { id } }")["data"]["datalabs"] == []
    assert lab["id"] in [l["id"] for l in gql(p, "alice", "{ datalabs { id } }")["data"]["datalabs"]]


def test_failures_say_why(platform):
    p = platform
    # The tool fails: its exit code and last words.
    lab = launch(p, "alice", volumes=[], args=["-c", "import sys; print('giving up'); sys.exit(3)"])
    done = until_final(p, "alice", lab["data"]["createDatalab"]["id"])
    assert done["state"] == "FAILED" and "exit code 3" in done["reason"] and "giving up" in done["reason"], done
    # Over its memory: OOM-killed at the limit, said so.
    lab = launch(p, "alice", volumes=[], memoryMib=64, args=["-c", "x = bytearray(300 * 2**20); print('no')"])
    done = until_final(p, "alice", lab["data"]["createDatalab"]["id"])
    assert done["state"] == "FAILED" and "OOM-killed" in done["reason"] and "64 MiB" in done["reason"], done
    # Refused before anything starts (an image the operator described without a command included).
    viewer = os.path.join(p.home, "viewer.toml")
    with open(viewer, "w") as f:
        f.write('[[datalab_image]]\nkey = "viewer"\ntitle = "A desktop viewer"\n')
    p.cli("catalog", "load", viewer)
    for input, code, says in [
        ({"volumes": ["work@bob"]}, "NOT_FOUND", "work@bob"),
        ({"image": "no-such-tool"}, "NOT_FOUND", "no-such-tool"),
        ({"image": "viewer"}, "BAD_USER_INPUT", "no command"),
        ({"memoryMib": 10**6}, "BAD_USER_INPUT", "memory"),
        ({"cpuMillis": 64000}, "BAD_USER_INPUT", "cpu"),
        ({"name": ""}, "BAD_USER_INPUT", "name"),
    ]:
        r = launch(p, "alice", **input)
        assert r.get("errors"), (input, r)
        assert r["errors"][0]["extensions"]["code"] == code, (input, r)
        assert says in r["errors"][0]["message"], (input, r)


def test_a_lab_is_stopped_on_request_and_can_be_removed(platform):
    p = platform
    lab = launch(p, "alice", volumes=["imgs"], args=["-c", "import time; print('up', flush=True); time.sleep(600)"])
    lab_id = lab["data"]["createDatalab"]["id"]
    deadline = time.time() + 30
    while gql(p, "alice", GET, {"id": lab_id})["data"]["datalab"]["state"] != "RUNNING":
        assert time.time() < deadline
        time.sleep(0.1)
    r = gql(p, "bob", "mutation($id: String!) { stopDatalab(id: $id) { state } }", {"id": lab_id})
    assert r["errors"][0]["extensions"]["code"] == "NOT_FOUND", "bob cannot stop alice's lab"
    gql(p, "alice", "mutation($id: String!) { stopDatalab(id: $id) { id } }", {"id": lab_id})
    done = until_final(p, "alice", lab_id, timeout=30)
    assert done["state"] == "STOPPED" and done["reason"] == "stopped on request", done
    assert [e["state"] for e in done["events"]][-2:] == ["STOPPING", "STOPPED"]
    r = gql(p, "alice", "mutation($id: String!) { destroyDatalab(id: $id) }", {"id": lab_id})
    assert r["data"]["destroyDatalab"] is True
    assert gql(p, "alice", GET, {"id": lab_id})["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_a_lab_gets_about_the_cpu_it_asked_for(platform):
    p = platform
    # Busy for 3 s of wall time with half a core: about 1.5 s of CPU (the quota is per 100 ms).
    code = ("import os, time\nend = time.time() + 3\nwhile time.time() < end:\n    pass\n"
            "t = os.times()\nprint('cpu', t.user + t.system)")
    lab = launch(p, "alice", volumes=[], cpuMillis=500, args=["-c", code])
    done = until_final(p, "alice", lab["data"]["createDatalab"]["id"])
    assert done["state"] == "STOPPED", done
    cpu = float(done["log"].split("cpu ")[1])
    assert 1.0 <= cpu <= 2.0, f"{cpu} s of CPU in 3 s at half a core"


def test_labs_left_by_a_killed_colo_are_stopped_and_reported_at_the_next_start(tmp_path):
    p = Platform(tmp_path, users=("alice",))
    try:
        lab = launch(p, "alice", volumes=["imgs"], args=["-c", "import time; time.sleep(600)"])
        lab_id = lab["data"]["createDatalab"]["id"]
        assert p.until("alice", lab_id, ("RUNNING",))["state"] == "RUNNING"
        pid = int(p.gql("alice", GET, {"id": lab_id})["data"]["datalab"]["events"][-1]["reason"].split()[1].rstrip(","))
        p.proc.kill()  # kill -9: no chance to stop anything
        p.proc.wait(timeout=30)
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), "the lab died with colo (its parent-death signal)"
        p.start()
        done = p.gql("alice", GET, {"id": lab_id})["data"]["datalab"]
        assert done["state"] == "STOPPED" and "colo restarted" in done["reason"], done
        assert "stopped" in p.startup_errors, p.startup_errors
    finally:
        p.stop()


def test_a_lab_is_warned_before_it_expires_renewed_and_then_expires(platform):
    p = platform
    lab = launch(p, "alice", volumes=[], lifetimeSeconds=12, args=["-c", "import time; time.sleep(600)"])
    lab_id = lab["data"]["createDatalab"]["id"]
    assert p.until("alice", lab_id, ("RUNNING",))["state"] == "RUNNING"
    expires = "query($id: String!) { datalab(id: $id) { state expiresAt events { state reason } } }"
    first = p.gql("alice", expires, {"id": lab_id})["data"]["datalab"]["expiresAt"]
    assert abs(first - (time.time() + 12)) < 5, first

    def warnings():
        events = p.gql("alice", expires, {"id": lab_id})["data"]["datalab"]["events"]
        return [e for e in events if e["state"] == "RUNNING" and e["reason"].startswith("expires in")]
    deadline = time.time() + 15
    while not warnings() and time.time() < deadline:
        time.sleep(0.2)
    assert warnings(), "a warning event before the end"
    assert "renewDatalab" in warnings()[0]["reason"]
    r = p.gql("alice", "mutation($id: String!) { renewDatalab(id: $id, seconds: 20) { expiresAt } }", {"id": lab_id})
    assert r["data"]["renewDatalab"]["expiresAt"] > first + 5, r
    time.sleep(max(0, first - time.time()) + 2)
    assert p.gql("alice", expires, {"id": lab_id})["data"]["datalab"]["state"] == "RUNNING", "renewed: still running"
    done = until_final(p, "alice", lab_id, timeout=40)
    assert done["state"] == "STOPPED" and done["reason"].startswith("expired"), done
    assert len(warnings()) == 2, "warned again before the renewed end"


def test_a_headless_run_writes_its_output_and_removes_itself_when_finished(platform):
    p = platform
    code = "open('/media/data/work/run-output.txt', 'w').write('the run ran\\n')"
    lab = launch(p, "alice", volumes=["work"], removeWhenFinished=True, args=["-c", code])
    lab_id = lab["data"]["createDatalab"]["id"]
    r = until_removed(p, "alice", lab_id)
    assert r["errors"][0]["extensions"]["code"] == "NOT_FOUND", "removed once finished"
    written = os.path.join(p.dav_dir, "run-output.txt")
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(written):
        time.sleep(0.1)
    assert open(written).read() == "the run ran\n"


SORT_CWL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sort]
inputs:
  lines:
    type: File
    inputBinding: {position: 1}
stdout: sorted.txt
outputs:
  sorted: {type: stdout}
"""


def test_a_cwl_run_writes_its_outputs_to_the_users_volume_and_removes_itself(platform):
    p = platform
    # The workflow, its job and its input, written into alice's volume by a lab of hers (as a
    # notebook would); the output is checked at the WebDAV server.
    files = {"sort.cwl": SORT_CWL, "job.yml": "lines:\n  class: File\n  path: /media/data/work/cwl/in.txt\n",
             "in.txt": "gamma\nalpha\nbeta\n"}
    code = ("import os, sys\nos.makedirs('/media/data/work/cwl')\n"
            f"for name, text in {files!r}.items():\n"
            "    open(os.path.join('/media/data/work/cwl', name), 'w').write(text)")
    writer = launch(p, "alice", name="writer", volumes=["work"], args=["-c", code])["data"]["createDatalab"]["id"]
    assert until_final(p, "alice", writer)["state"] == "STOPPED"
    r = launch(p, "alice", name="cwl", image="cwl-runner", volumes=["work"], removeWhenFinished=True,
               args=["--outdir", "/media/data/work/cwl/out", "/media/data/work/cwl/sort.cwl",
                     "/media/data/work/cwl/job.yml"])
    lab_id = r["data"]["createDatalab"]["id"]
    # Its events and log, followed live to their ends — the lab removes itself as it finishes,
    # and what it wrote last still reaches its followers.
    import threading
    log, events = [], []
    watcher = threading.Thread(target=collect, args=(p, p.tokens["alice"], EVENTS, lab_id, events))
    watcher.start()
    collect(p, p.tokens["alice"], LOGS, lab_id, log)
    watcher.join(timeout=30)
    assert events[-1]["datalabEvents"]["state"] == "STOPPED", events
    log = "".join(piece["datalabLogs"] for piece in log)
    assert "Final process status is success" in log, (log, events)
    r = until_removed(p, "alice", lab_id)
    assert r["errors"][0]["extensions"]["code"] == "NOT_FOUND", ("removed once finished", r)
    # cwltool staged its output into alice's volume: at the WebDAV server, sorted.
    written = os.path.join(p.dav_dir, "cwl", "out", "sorted.txt")
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(written):
        time.sleep(0.1)
    assert open(written).read() == "alpha\nbeta\ngamma\n"


def test_a_users_labs_stay_within_the_per_user_limits(platform):
    p = platform
    ids = []
    try:
        for n in range(4):
            r = launch(p, "bob", name=f"b{n}", volumes=[], cpuMillis=100, memoryMib=64,
                       args=["-c", "import time; time.sleep(600)"])
            ids.append(r["data"]["createDatalab"]["id"])
        r = launch(p, "bob", name="b4", volumes=[], cpuMillis=100, memoryMib=64, args=["-c", "pass"])
        assert r["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "5 labs" in r["errors"][0]["message"], r
        r = launch(p, "bob", name="b0", volumes=[], args=["-c", "pass"])
        assert r["errors"][0]["extensions"]["code"] == "CONFLICT", "a running lab's name"
    finally:
        for i in ids:
            gql(p, "bob", "mutation($id: String!) { destroyDatalab(id: $id) }", {"id": i})


def test_the_lab_cli_creates_lists_follows_and_deletes(platform):
    p = platform
    env = {**p.env, "COLO_URL": p.base, "COLO_TOKEN": p.tokens["alice"]}

    def colo(*args, ok=True):
        out = subprocess.run([BIN, "lab", *args], env=env, capture_output=True, text=True, timeout=120)
        assert (out.returncode == 0) == ok, (args, out.stdout, out.stderr)
        return out
    code = "import time\nfor i in range(3):\n    print('step', i, flush=True); time.sleep(0.5)"
    lab_id = colo("create", "headless-python", "--name", "cli", "--volume", "work", "--cpu", "0.5",
                  "--", "-c", code).stdout.strip()
    assert lab_id.startswith("lab-"), lab_id
    assert any(line.split()[:2] == [lab_id, "cli"] for line in colo("ps").stdout.splitlines())
    followed = colo("logs", "-f", lab_id).stdout
    assert followed.splitlines() == ["step 0", "step 1", "step 2"], followed
    events = colo("events", lab_id).stdout
    assert [l.split()[2] for l in events.splitlines()] == ["PENDING", "MOUNTING", "STARTING", "RUNNING", "STOPPED"]
    # Following an ended lab's events (a subscription) gives them all and returns.
    assert colo("events", "-f", lab_id).stdout == events
    bad = colo("create", "headless-python", "--volume", "not-mine", ok=False)
    assert "no volume named 'not-mine'" in bad.stderr, bad.stderr
    assert "has no web interface" in colo("open", lab_id, ok=False).stderr
    assert colo("delete", lab_id).stdout.strip() == f"{lab_id} deleted"
    assert lab_id not in colo("ps").stdout
    nobody = subprocess.run([BIN, "lab", "ps"], env={**env, "COLO_TOKEN": ""}, capture_output=True, text=True)
    assert nobody.returncode != 0 and "token" in nobody.stderr, nobody.stderr


def subscription(p, token):
    """A gql client over WebSocket speaking graphql-transport-ws, validating against the served
    schema, with `token` in connection_init (as a browser must send it)."""
    from gql import Client
    from gql.transport.websockets import WebsocketsTransport
    transport = WebsocketsTransport(url=p.base.replace("http://", "ws://") + "/graphql",
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                                    init_payload={"Authorization": f"Bearer {token}"} if token else {})
    return Client(transport=transport, fetch_schema_from_transport=True)


EVENTS = "subscription($id: String!) { datalabEvents(id: $id) { state reason } }"
LOGS = "subscription($id: String!) { datalabLogs(id: $id) }"


def collect(p, token, query, lab_id, into, when=None):
    from gql import GraphQLRequest, gql as parse
    # Client.subscribe runs the async transport in an event loop of its own.
    for item in subscription(p, token).subscribe(GraphQLRequest(parse(query), variable_values={"id": lab_id})):
        into.append(item)
        if when is not None:
            when.append(time.time())


def test_events_and_logs_are_followed_live_over_a_subscription(platform):
    import threading
    from gql.transport.exceptions import TransportQueryError
    p = platform
    code = "import time\nfor i in range(4):\n    print('step', i, '→', flush=True); time.sleep(0.6)"
    lab_id = launch(p, "alice", volumes=[], args=["-c", code])["data"]["createDatalab"]["id"]
    events = []
    watcher = threading.Thread(target=collect, args=(p, p.tokens["alice"], EVENTS, lab_id, events))
    watcher.start()
    pieces, arrived = [], []
    collect(p, p.tokens["alice"], LOGS, lab_id, pieces, arrived)
    watcher.join(timeout=60)
    assert not watcher.is_alive(), "the events stream ends after STOPPED"
    assert [e["datalabEvents"]["state"] for e in events] == ["PENDING", "MOUNTING", "STARTING", "RUNNING", "STOPPED"]
    text = "".join(piece["datalabLogs"] for piece in pieces)
    assert text.splitlines() == [f"step {i} →" for i in range(4)], text
    # Written 0.6 s apart and sent as written: several items, spread over the run.
    assert len(pieces) >= 3 and arrived[-1] - arrived[0] > 1.0, (pieces, arrived)

    # Nobody else follows it: bob gets "no such lab", no token "unauthenticated".
    for token, code in ((p.tokens["bob"], "NOT_FOUND"), (None, "UNAUTHENTICATED")):
        with pytest.raises(TransportQueryError) as refused:
            collect(p, token, EVENTS, lab_id, [])
        assert refused.value.errors[0]["extensions"]["code"] == code, refused.value.errors


def test_a_forged_token_is_refused_at_connection_init_and_an_unshare_ends_a_stream(platform):
    import json
    import threading
    import websocket
    from gql.transport.exceptions import TransportQueryError
    p = platform
    ws = websocket.create_connection(p.base.replace("http://", "ws://") + "/graphql",
                                     subprotocols=["graphql-transport-ws"], timeout=30)
    ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer colo_" + "x" * 43}}))
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 4403, (opcode, data)
    ws.close()

    code = "import time\nwhile True:\n    print('tick', flush=True); time.sleep(0.3)"
    lab_id = launch(p, "alice", name="shared", volumes=[], args=["-c", code])["data"]["createDatalab"]["id"]
    try:
        share = "mutation($id: String!, $u: String!) { %s(id: $id, user: $u) { sharedWith } }"
        assert gql(p, "alice", share % "shareDatalab", {"id": lab_id, "u": "bob"})["data"]
        seen, failure = [], []

        def follow():
            try:
                collect(p, p.tokens["bob"], LOGS, lab_id, seen)
            except TransportQueryError as e:
                failure.append(e)
        follower = threading.Thread(target=follow)
        follower.start()
        deadline = time.time() + 30
        while time.time() < deadline and not any("tick" in s["datalabLogs"] for s in seen):
            time.sleep(0.1)
        assert seen, "bob follows the shared lab's log"
        assert gql(p, "alice", share % "unshareDatalab", {"id": lab_id, "u": "bob"})["data"]
        follower.join(timeout=10)
        assert not follower.is_alive(), "unsharing ends bob's stream at its next item"
        assert failure and failure[0].errors[0]["extensions"]["code"] == "NOT_FOUND", failure
    finally:
        gql(p, "alice", "mutation($id: String!) { destroyDatalab(id: $id) }", {"id": lab_id})


def test_a_lab_launched_right_after_a_volume_was_added_has_it(platform, tmp_path):
    # Added by another process (the CLI), launched at once: the running mount's views follow the
    # catalog within a poll, and the lab waits for the new volume's folder instead of failing.
    p = platform
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "hello.txt").write_text("just added\n")
    (tmp_path / "fresh.toml").write_text(f'[[volume]]\nname = "fresh"\nurl = "file://{tmp_path}/fresh"\n')
    os.chmod(tmp_path, 0o755)
    p.cli("volume", "add", "--owner", "alice", "--from", str(tmp_path / "fresh.toml"))
    r = launch(p, "alice", name="fresh", volumes=["fresh"],
               args=["-c", "print(open('/media/data/fresh/hello.txt').read(), end='')"])
    lab = until_final(p, "alice", r["data"]["createDatalab"]["id"])
    assert lab["state"] == "STOPPED", lab
    assert lab["log"] == "just added\n", lab
