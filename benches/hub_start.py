"""The peer of lab_start.py: JupyterHub 5 with its local-process spawner starting the same
JupyterLab (the pins of scripts/requirements-lab.txt, plus jupyterhub in the same venv for
`jupyterhub-singleuser`) as a system account of its own, behind configurable-http-proxy, all on
127.0.0.1. `run(...)` times, per run: POST /hub/api/users/<u>/server → the server is ready (the
hub's own `ready`), then → a kernel through the hub's proxy has executed the same cell, reading
the same FITS files from a local directory (the hub's best case: no remote volume at all)."""
import os
import pwd
import secrets
import signal
import subprocess
import time

import requests
import websocket

import lab_proxy

USER = "hubbench"
PORT = 18300


def ensure_account(home):
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-user-group", "--gid", "users", "--home-dir", home, "--shell",
                        "/usr/sbin/nologin", USER], check=True)
    os.makedirs(home, exist_ok=True)
    os.chown(home, pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)


CONFIG = """
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"{user}"}}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{venv}/bin/jupyterhub-singleuser"]
c.Spawner.notebook_dir = "{data}"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {{"PATH": "{venv}/bin:/usr/local/bin:/usr/bin:/bin"}}
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
"""


class Hub:
    def __init__(self, work, venv, chp, data):
        os.makedirs(work, exist_ok=True)
        ensure_account(os.path.join(work, "home"))
        self.token = secrets.token_hex(32)
        self.base = f"http://127.0.0.1:{PORT}"
        config = os.path.join(work, "jupyterhub_config.py")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=PORT, hub_port=PORT + 1, proxy_api_port=PORT + 2, chp=chp, work=work,
                                  user=USER, venv=venv, data=data, token=self.token))
        self.log = open(os.path.join(work, "hub.log"), "w")
        self.proc = subprocess.Popen([f"{venv}/bin/jupyterhub", "-f", config], cwd=work, stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PATH": f"{venv}/bin:" + os.environ["PATH"]})
        self.auth = {"Authorization": f"token {self.token}"}
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, open(self.log.name).read()[-2000:]
            try:
                if requests.get(f"{self.base}/hub/api/", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        r = requests.post(f"{self.base}/hub/api/users/{USER}", headers=self.auth, timeout=10)
        assert r.status_code in (201, 409), r.text

    def server(self):
        return requests.get(f"{self.base}/hub/api/users/{USER}", headers=self.auth,
                            timeout=10).json().get("servers", {}).get("")

    def start(self):
        r = requests.post(f"{self.base}/hub/api/users/{USER}/server", headers=self.auth, timeout=120)
        assert r.status_code in (201, 202), r.text
        while not (s := self.server()) or not s.get("ready"):
            time.sleep(0.02)

    def first_cell(self, cell):
        user = f"{self.base}/user/{USER}"
        kid = requests.post(f"{user}/api/kernels", headers=self.auth, json={}, timeout=60).json()["id"]
        ws = websocket.create_connection(f"{user.replace('http', 'ws')}/api/kernels/{kid}/channels",
                                         header=[f"Authorization: token {self.token}"])
        m = lab_proxy.execute(ws, cell)
        assert m["content"]["status"] == "ok", m
        ws.close()

    def stop_server(self):
        requests.delete(f"{self.base}/hub/api/users/{USER}/server", headers=self.auth, timeout=60)
        while self.server():
            time.sleep(0.1)

    def close(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run(work, venv, chp, data, cell, runs):
    """Per run: seconds to ready and to the first cell done."""
    hub = Hub(work, venv, chp, data)
    ready, cells = [], []
    try:
        for n in range(runs):
            t0 = time.perf_counter()
            hub.start()
            t1 = time.perf_counter()
            hub.first_cell(cell)
            t2 = time.perf_counter()
            ready.append(t1 - t0)
            cells.append(t2 - t0)
            print(f"jupyterhub run {n}: ready after {t1 - t0:.2f} s, first cell done after {t2 - t0:.2f} s",
                  flush=True)
            hub.stop_server()
    finally:
        hub.close()
    return ready, cells
