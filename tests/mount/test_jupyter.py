"""A real JupyterLab datalab through colo's proxy: alice launches it with the archive's images and her
WebDAV volume; the Jupyter contents API lists exactly those at /media/data; a kernel cell, sent over
the WebSocket, reads a FITS file with astropy and writes a result into her volume, which the WebDAV
server then holds (read back with its own client). Bob gets 403 until alice shares the lab, and 403
again after she unshares it; carol never gets in; nobody without a token does."""
import json
import time
import uuid

import pytest
import requests
import websocket

from platform_up import CREATE, DAV_AUTH, GET, Platform

CELL = r"""
from astropy.io import fits
import numpy as np
with fits.open('/media/data/imgs/obs/a.fits') as h:
    data = h[0].data
    line = f"{data.shape} {np.nansum(data):.6e}"
with open('/media/data/work/from-the-kernel.txt', 'w') as f:
    f.write(line + '\n')
print('wrote', line)
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(tmp_path_factory.mktemp("jupyter"), users=("alice", "bob", "carol"))
    yield p
    p.stop()


def get(p, user, lab_id, path):
    headers = {"Authorization": f"Bearer {p.tokens[user]}"} if user else {}
    return requests.get(f"{p.base}/labs/{lab_id}/{path}", headers=headers, timeout=30)


def run_cell(p, user, lab_id, code):
    """Runs `code` in a new kernel over Jupyter's WebSocket; its stdout and the reply's status."""
    auth = {"Authorization": f"Bearer {p.tokens[user]}"}
    kernel = requests.post(f"{p.base}/labs/{lab_id}/api/kernels", headers=auth, json={}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    ws = websocket.create_connection(
        f"{p.base.replace('http://', 'ws://')}/labs/{lab_id}/api/kernels/{kid}/channels",
        header=[f"Authorization: Bearer {p.tokens[user]}"], timeout=120)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    # The reply comes on the shell channel and the output on iopub, so the reply may overtake the
    # output; the kernel's `idle` status on iopub is what follows all of a request's output.
    out, status, idle = [], None, False
    deadline = time.time() + 120
    while (status is None or not idle) and time.time() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    ws.close()
    return "".join(out), status


def test_jupyterlab_reads_the_archive_and_writes_the_users_volume_through_the_proxy(platform):
    p = platform
    r = p.gql("alice", CREATE, {"input": {"name": "notebook", "image": "jupyterlab", "volumes": ["imgs", "work"],
                                          "memoryMib": 2048}})
    lab = r["data"]["createDatalab"]["datalab"]
    assert lab["base"] == f"/labs/{lab['id']}/"
    lab = p.until("alice", lab["id"], ("RUNNING",), timeout=150)
    assert lab["state"] == "RUNNING", lab
    assert [e["state"] for e in lab["events"]] == ["PENDING", "MOUNTING", "STARTING", "RUNNING"], lab
    lab_id = lab["id"]

    # The lab's own root answers (JupyterLab sends the browser on to its page).
    root = requests.get(f"{p.base}/labs/{lab_id}/", headers={"Authorization": f"Bearer {p.tokens['alice']}"},
                        timeout=30, allow_redirects=False)
    assert root.status_code == 302 and f"/labs/{lab_id}/lab" in root.headers["location"], root.headers
    listed = get(p, "alice", lab_id, "api/contents/")
    assert listed.status_code == 200, listed.text
    assert sorted(c["name"] for c in listed.json()["content"]) == ["imgs", "work"]

    out, status = run_cell(p, "alice", lab_id, CELL)
    assert status == "ok", out
    assert out.startswith("wrote (") and "e+" in out, out
    # The result at the origin, read by the WebDAV server's own client, not through colo.
    deadline = time.time() + 30
    got = None
    while time.time() < deadline:
        got = requests.get(f"{p.dav_url}/from-the-kernel.txt", auth=DAV_AUTH, timeout=10)
        if got.status_code == 200:
            break
        time.sleep(0.2)
    assert got.status_code == 200 and got.text == out.removeprefix("wrote ").strip() + "\n", (got.status_code, got.text)

    # Who may open it: alice; bob only while it is shared with him; carol never; no token, nobody.
    assert get(p, "bob", lab_id, "api/contents/").status_code == 403
    assert get(p, "carol", lab_id, "api/contents/").status_code == 403
    assert get(p, None, lab_id, "api/contents/").status_code == 401
    assert get(p, "alice", "lab-000000000000", "api/contents/").status_code == 403, "a forged lab id"
    share = "mutation($id: String!, $u: String!) { shareDatalab(id: $id, user: $u) { sharedWith } }"
    assert p.gql("bob", share, {"id": lab_id, "u": "bob"})["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert p.gql("alice", share, {"id": lab_id, "u": "bob"})["data"]["shareDatalab"]["sharedWith"] == ["bob"]
    seen = get(p, "bob", lab_id, "api/contents/work")
    assert seen.status_code == 200 and "from-the-kernel.txt" in [c["name"] for c in seen.json()["content"]]
    out, status = run_cell(p, "bob", lab_id, "print(open('/media/data/work/from-the-kernel.txt').read())")
    assert status == "ok" and "e+" in out, out
    assert get(p, "carol", lab_id, "api/contents/").status_code == 403
    unshare = "mutation($id: String!, $u: String!) { unshareDatalab(id: $id, user: $u) { sharedWith } }"
    assert p.gql("alice", unshare, {"id": lab_id, "u": "bob"})["data"]["unshareDatalab"]["sharedWith"] == []
    assert get(p, "bob", lab_id, "api/contents/").status_code == 403, "the next request after unsharing"

    # The lab's own token never reaches a user: not in a response, not in its log as shown.
    log = p.gql("alice", GET, {"id": lab_id})["data"]["datalab"]["log"]
    assert "token=" not in log.replace("token=...", ""), log[-2000:]

    # ESA Datalabs' own call works verbatim; destroying ends the lab.
    r = p.gql("alice", 'mutation { createDatalab(sapId: "jupyterlab") { datalab { id base } } }')
    second = r["data"]["createDatalab"]["datalab"]
    assert second["base"] == f"/labs/{second['id']}/"
    for lid in (lab_id, second["id"]):
        r = p.gql("alice", "mutation($id: String!) { destroyDatalab(id: $id) }", {"id": lid})
        assert r["data"]["destroyDatalab"] is True, r
        assert get(p, "alice", lid, "api/contents/").status_code == 403


def test_an_idle_lab_is_culled_after_a_warning_and_a_computing_one_is_not(platform):
    p = platform
    make = {"image": "jupyterlab", "volumes": [], "memoryMib": 1024, "idleTimeoutSeconds": 12}
    idle = p.gql("alice", CREATE, {"input": {**make, "name": "idle"}})["data"]["createDatalab"]["datalab"]["id"]
    busy = p.gql("alice", CREATE, {"input": {**make, "name": "busy"}})["data"]["createDatalab"]["datalab"]["id"]
    for lab_id in (idle, busy):
        assert p.until("alice", lab_id, ("RUNNING",), timeout=150)["state"] == "RUNNING"
    # A cell that computes for 25 s without a word: the kernel is busy all along.
    auth = {"Authorization": f"Bearer {p.tokens['alice']}"}
    import threading
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        zip(("out", "status"), run_cell(p, "alice", busy, "import time; time.sleep(25); print('finished')"))))
    worker.start()
    done = p.until("alice", idle, (), timeout=40)
    assert done["state"] == "STOPPED" and done["reason"].startswith("culled: idle"), done
    reasons = [e["reason"] for e in done["events"]]
    assert any(r.startswith("idle for") for r in reasons), f"a warning first: {reasons}"
    worker.join(timeout=60)
    assert result.get("status") == "ok" and "finished" in result.get("out", ""), result
    state = p.gql("alice", GET, {"id": busy})["data"]["datalab"]["state"]
    assert state == "RUNNING", "not culled while computing, 25 s > its 12 s idle timeout"
    requests.get(f"{p.base}/labs/{busy}/api/status", headers=auth, timeout=10)
    p.gql("alice", "mutation($id: String!) { destroyDatalab(id: $id) }", {"id": busy})
