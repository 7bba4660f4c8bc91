"""colo's lab proxy against going to JupyterLab directly (part of lab_start.py's run): a 100 MiB
file downloaded through `/labs/<id>/files/...` (JupyterLab reads it from /media/data, through the
mount, in both), and kernel messages' round trips (`execute_request` of a tiny cell to its
`execute_reply`) over the kernel WebSocket. "Direct" is JupyterLab's own Unix socket with the
lab's private secret header — what the proxy itself does — read from the lab's plan (root only)."""
import http.client
import json
import os
import socket
import statistics
import time
import uuid

import requests
import websocket

SECRET_HEADER = "x-colo-lab-secret"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def lab_secret(home, lab_id):
    with open(os.path.join(home, "labs", lab_id, "plan.json")) as f:
        return dict(json.load(f)["env"])["COLO_LAB_SECRET"]


def download_mib_s(get, expected_bytes):
    t0 = time.perf_counter()
    got = get()
    elapsed = time.perf_counter() - t0
    assert got == expected_bytes, (got, expected_bytes)
    return expected_bytes / elapsed / 2**20


def execute(ws, code, silent=False, session=None):
    """Runs `code` on the kernel behind `ws` (Jupyter's channels WebSocket); its execute_reply."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "bench", "session": session or msg_id,
                                   "msg_type": "execute_request", "version": "5.3"},
                        "parent_header": {}, "metadata": {}, "channel": "shell",
                        "content": {"code": code, "silent": silent, "store_history": False,
                                    "user_expressions": {}, "allow_stdin": False}}))
    while True:
        m = json.loads(ws.recv())
        if m.get("parent_header", {}).get("msg_id") == msg_id and m["msg_type"] == "execute_reply":
            return m


def round_trips(ws, n):
    """Seconds per execute_request → execute_reply, `n` times."""
    session = uuid.uuid4().hex
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        execute(ws, "1", silent=True, session=session)
        times.append(time.perf_counter() - t0)
    return times


def run(base, token, home, lab_id, rel_path, size_bytes, runs=3, messages=300):
    auth = {"Authorization": f"Bearer {token}"}
    sock_path = f"/tmp/colo-lab-{lab_id}/jupyter.sock"
    secret = {SECRET_HEADER: lab_secret(home, lab_id)}
    path = f"/labs/{lab_id}/files/{rel_path}"

    def fetch(conn, headers):
        """The file's bytes through `conn`, read the same way on both paths (one client library:
        the figures compare the paths, not two clients' costs)."""
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        assert r.status == 200, (r.status, r.read()[:200])
        framing["chunked" if r.chunked else "length"] += 1
        n = 0
        while chunk := r.read(1 << 20):
            n += len(chunk)
        conn.close()
        return n

    framing = {"chunked": 0, "length": 0}
    host, port = base.split("//", 1)[1].rsplit(":", 1)

    def through_proxy():
        return fetch(http.client.HTTPConnection(host, int(port)), auth)

    def direct():
        return fetch(UnixHTTPConnection(sock_path), secret)

    direct()  # the file into colo's cache and the page cache: both then read it warm
    proxied, plain = [], []
    for _ in range(runs):
        proxied.append(download_mib_s(through_proxy, size_bytes))
        plain.append(download_mib_s(direct, size_bytes))
    print(f"proxy download of {size_bytes >> 20} MiB: through colo {statistics.median(proxied):.0f} MiB/s, "
          f"direct {statistics.median(plain):.0f} MiB/s (median of {runs}; "
          f"ratio {statistics.median(proxied) / statistics.median(plain):.2f}; answers framed {framing})", flush=True)

    kid = requests.post(f"{base}/labs/{lab_id}/api/kernels", headers=auth, json={}, timeout=60).json()["id"]
    channels = f"/labs/{lab_id}/api/kernels/{kid}/channels"
    via = websocket.create_connection(base.replace("http", "ws") + channels,
                                      header=[f"Authorization: Bearer {token}"], timeout=60)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(sock_path)
    straight = websocket.create_connection("ws://localhost" + channels, socket=raw,
                                           header=[f"{SECRET_HEADER}: {secret[SECRET_HEADER]}"], timeout=60)
    round_trips(via, 20)
    round_trips(straight, 20)
    through, plain_rt = [], []
    for _ in range(3):
        through += round_trips(via, messages // 3)
        plain_rt += round_trips(straight, messages // 3)
    via.close()
    straight.close()
    p = statistics.median(through) * 1000
    d = statistics.median(plain_rt) * 1000
    print(f"kernel round trip (execute_request → execute_reply, {len(through)} each): through colo "
          f"{p:.2f} ms, direct {d:.2f} ms median (colo adds {p - d:.2f} ms; p95 "
          f"{statistics.quantiles(through, n=20)[-1] * 1000:.2f} vs "
          f"{statistics.quantiles(plain_rt, n=20)[-1] * 1000:.2f} ms)", flush=True)
