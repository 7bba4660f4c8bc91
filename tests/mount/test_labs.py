"""Datalabs through the real API on `colo up`: alice launches the headless Python runner with two of
her volumes; inside, it runs as her own uid and sees exactly those volumes at /media/data (the
archive read-only, her WebDAV volume writable), and what it writes reaches the WebDAV server. Every
lifecycle step is an event with a reason; failures say why (exit code, OOM at the memory limit,
a volume she does not have, an image that cannot start); bob sees none of her labs."""
import os
import time

import pytest

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
