"""`colo up` with users and a writable WebDAV volume of alice's, for the platform tests (datalabs,
Jupyter): the real servers from servers.sh, a COLO_HOME of the test's own."""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import requests

from conftest import BIN, FIX, RUN, write_config

DAV_AUTH = ("colo", "colotestsecret-dav")
TOKEN = re.compile(r"^token: (colo_[A-Za-z0-9_-]{43})$", re.M)


class Platform:
    """A running `colo up`: `url` (GraphQL), `base` (the server), `tokens` by user, `root` (the
    mount), `dav_dir` (alice's WebDAV volume `work` as the WebDAV server keeps it)."""

    def __init__(self, tmp, users=("alice", "bob"), extra_config="", env=None):
        folder = os.path.join(RUN, f"labs-{uuid.uuid4().hex[:8]}")
        os.makedirs(os.path.join(folder, "obs"))
        shutil.copy(os.path.join(FIX, "science", "magpis_g10.5.fits"), os.path.join(folder, "obs", "a.fits"))
        self.home = str(tmp / "home")
        self.env = {**os.environ, "COLO_HOME": self.home, **(env or {})}
        cfg = str(tmp / "colo.toml")
        write_config(cfg, extra_volumes=f'\n[[volume]]\nname = "imgs"\nurl = "file://{folder}"\n{extra_config}')
        self.tokens = {}
        for user in users:
            out = self.cli("user", "add", user)
            self.tokens[user] = TOKEN.search(out).group(1)
        prefix = f"labs-{uuid.uuid4().hex[:8]}"
        self.dav_url = f"http://127.0.0.1:18081/rw/{prefix}"
        requests.request("MKCOL", self.dav_url, auth=DAV_AUTH, timeout=10).raise_for_status()
        self.dav_dir = os.path.join(RUN, "rw", "webdav", prefix)
        work = tmp / "work.toml"
        work.write_text(f'[[volume]]\nname = "work"\nurl = "webdav://127.0.0.1:18081/rw/{prefix}"\n'
                        f'username = "colo"\npassword = "{DAV_AUTH[1]}"\n')
        self.cli("volume", "add", "--owner", "alice", "--from", str(work))
        self.root = str(tmp / "mnt")
        self.cfg = cfg
        self.start()

    def start(self):
        """Starts `colo up` (again); what it said on stderr is in `startup_errors` once ready."""
        self.stderr = open(os.path.join(self.home, f"up-{uuid.uuid4().hex[:6]}.err"), "w+")
        self.proc = subprocess.Popen([BIN, "up", "--config", self.cfg, "--root", self.root,
                                      "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=self.env)
        line = ""
        deadline = time.time() + 120
        while time.time() < deadline and not line.startswith("ready"):
            line = self.proc.stdout.readline()
            if line.startswith("tap "):
                self.base = line.split()[1].rsplit("/tap", 1)[0]
            assert self.proc.poll() is None, "colo up stopped"
        self.url = self.base + "/graphql"
        self.stderr.seek(0)
        self.startup_errors = self.stderr.read()

    def cli(self, *args):
        out = subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def gql(self, user, query, variables=None):
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return requests.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers,
                             timeout=60).json()

    def until(self, user, lab_id, states, timeout=60):
        """The lab once its state is one of `states` (or it ended)."""
        deadline = time.time() + timeout
        lab = None
        while time.time() < deadline:
            lab = self.gql(user, GET, {"id": lab_id})["data"]["datalab"]
            if lab["state"] in states or lab["state"] in ("STOPPED", "FAILED"):
                return lab
            time.sleep(0.1)
        raise AssertionError(f"lab {lab_id} not {states} within {timeout}s: {lab}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=120)


LAB = """fragment Lab on Datalab { id name owner base state reason cpuMillis memoryMib sharedWith
  volumes { name readOnly } events { state reason } }"""
CREATE = LAB + """mutation Create($input: CreateDatalabInput!) {
  createDatalab(input: $input) { datalab { ...Lab } } }"""
GET = LAB + """query Get($id: String!) { datalab(id: $id) { ...Lab log } }"""
