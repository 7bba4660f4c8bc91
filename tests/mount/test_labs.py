"""Datalabs through the real API on `colo up`: alice launches the headless Python runner with two of
her volumes; inside, it runs as her own uid and sees exactly those volumes at /media/data (the
archive read-only, her WebDAV volume writable), and what it writes reaches the WebDAV server. Every
lifecycle step is an event with a reason; failures say why (exit code, OOM at the memory limit,
a volume she does not have, an image that cannot start); bob sees none of her labs."""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import requests

from conftest import BIN, FIX, RUN, write_config

DAV_AUTH = ("colo", "colotestsecret-dav")
TOKEN = re.compile(r"^token: (colo_[A-Za-z0-9_-]{43})$", re.M)
LAB = """fragment Lab on Datalab { id name owner state reason cpuMillis memoryMib
  volumes { name readOnly } events { state reason } }"""
CREATE = LAB + """mutation Create($input: CreateDatalabInput!) { createDatalab(input: $input) { ...Lab } }"""
GET = LAB + """query Get($id: String!) { datalab(id: $id) { ...Lab log } }"""
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
    tmp = tmp_path_factory.mktemp("labs")
    folder = os.path.join(RUN, f"labs-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.join(folder, "obs"))
    shutil.copy(os.path.join(FIX, "science", "magpis_g10.5.fits"), os.path.join(folder, "obs", "a.fits"))
    home = str(tmp / "home")
    env = {**os.environ, "COLO_HOME": home}
    cfg = str(tmp / "colo.toml")
    write_config(cfg, extra_volumes=f'\n[[volume]]\nname = "imgs"\nurl = "file://{folder}"\n')
    tokens = {}
    for user in ("alice", "bob"):
        out = subprocess.run([BIN, "user", "add", user], env=env, check=True, capture_output=True, text=True)
        tokens[user] = TOKEN.search(out.stdout).group(1)
    prefix = f"labs-{uuid.uuid4().hex[:8]}"
    requests.request("MKCOL", f"http://127.0.0.1:18081/rw/{prefix}", auth=DAV_AUTH, timeout=10).raise_for_status()
    work = tmp / "work.toml"
    work.write_text(f'[[volume]]\nname = "work"\nurl = "webdav://127.0.0.1:18081/rw/{prefix}"\n'
                    f'username = "colo"\npassword = "{DAV_AUTH[1]}"\n')
    subprocess.run([BIN, "volume", "add", "--owner", "alice", "--from", str(work)], env=env, check=True,
                   capture_output=True, timeout=60)
    root = str(tmp / "mnt")
    proc = subprocess.Popen([BIN, "up", "--config", cfg, "--root", root, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    url, line = None, ""
    deadline = time.time() + 120
    while time.time() < deadline and not line.startswith("ready"):
        line = proc.stdout.readline()
        if line.startswith("tap "):
            url = line.split()[1].rsplit("/tap", 1)[0] + "/graphql"
        assert proc.poll() is None, "colo up stopped"

    class P:
        pass
    p = P()
    p.url, p.tokens, p.home, p.dav_dir = url, tokens, home, os.path.join(RUN, "rw", "webdav", prefix)
    p.root = root
    yield p
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def gql(p, user, query, variables=None):
    return requests.post(p.url, json={"query": query, "variables": variables or {}},
                         headers={"Authorization": f"Bearer {p.tokens[user]}"}, timeout=60).json()


def launch(p, user, **input):
    return gql(p, user, CREATE, {"input": {"name": "t", "image": "headless-python", **input}})


def until_final(p, user, lab_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lab = gql(p, user, GET, {"id": lab_id})["data"]["datalab"]
        if lab["state"] in ("STOPPED", "FAILED"):
            return lab
        time.sleep(0.1)
    raise AssertionError(f"lab {lab_id} did not end: {lab}")


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
    # Refused before anything starts.
    for input, code, says in [
        ({"volumes": ["work@bob"]}, "NOT_FOUND", "work@bob"),
        ({"image": "no-such-tool"}, "NOT_FOUND", "no-such-tool"),
        ({"image": "jupyterlab"}, "BAD_USER_INPUT", "no command"),
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
    r = gql(p, "alice", "mutation($id: String!) { removeDatalab(id: $id) }", {"id": lab_id})
    assert r["data"]["removeDatalab"] is True
    assert gql(p, "alice", GET, {"id": lab_id})["errors"][0]["extensions"]["code"] == "NOT_FOUND"
