""""Add the selected to a data volume": an ADQL query on ivoa.obscore picks three of four images;
the selection volume lists exactly those files through the mount, astropy reads them byte-equal
to the originals, the origin sends nothing before the first read, and the selection survives a
restart of colo. Copied into alice's writable WebDAV volume, the files are hers: byte-equal at
the WebDAV server and through the mount, never over her own files, finished by a second run."""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid

import numpy as np
import pytest
import requests
from astropy.io import fits

from conftest import BIN, FIX, RUN, write_config

TOKEN = re.compile(r"^token: (colo_[A-Za-z0-9_-]{43})$", re.M)
DAV_AUTH = ("colo", "colotestsecret-dav")
PICK = "SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_id LIKE 'obs/sel%'"


def start_up(env, cfg, root):
    proc = subprocess.Popen([BIN, "up", "--config", cfg, "--root", root, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    urls = {}
    deadline = time.time() + 120
    line = ""
    while time.time() < deadline and not line.startswith("ready"):
        line = proc.stdout.readline()
        if line.startswith(("tap ", "metrics ")):
            urls[line.split()[0]] = line.split()[1]
        if proc.poll() is not None:
            raise AssertionError("colo up stopped")
    assert line.startswith("ready")
    return proc, urls["tap"].rsplit("/tap", 1)[0] + "/graphql", urls["metrics"]


def gets(metrics, volume):
    text = urllib.request.urlopen(metrics, timeout=10).read().decode()
    key = f'colo_origin_requests_total{{volume="{volume}",kind="get"}}'
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(key))


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_selection_of_archive_images_becomes_a_volume(tmp_path):
    folder = os.path.join(RUN, f"sel-{uuid.uuid4().hex[:8]}")
    os.makedirs(os.path.join(folder, "obs"))
    source = os.path.join(FIX, "science", "magpis_g10.5.fits")
    for name in ["sel_a", "sel_b", "sel_c", "other"]:
        shutil.copy(source, os.path.join(folder, "obs", f"{name}.fits"))
    home = str(tmp_path / "home")
    env = {**os.environ, "COLO_HOME": home}
    cfg = str(tmp_path / "colo.toml")
    write_config(cfg, metrics_listen="127.0.0.1:0",
                 extra_volumes=f'\n[[volume]]\nname = "imgs"\nurl = "file://{folder}"\n')
    subprocess.run([BIN, "ingest", "images", "imgs", "--config", cfg], env=env, check=True,
                   capture_output=True, timeout=300)
    alice = TOKEN.search(subprocess.run([BIN, "user", "add", "alice"], env=env, check=True,
                                        capture_output=True, text=True).stdout).group(1)
    prefix = f"sel-{uuid.uuid4().hex[:8]}"
    requests.request("MKCOL", f"http://127.0.0.1:18081/rw/{prefix}", auth=DAV_AUTH,
                     timeout=10).raise_for_status()
    dav_dir = os.path.join(RUN, "rw", "webdav", prefix)
    work = tmp_path / "work.toml"
    work.write_text(f'[[volume]]\nname = "work"\nurl = "webdav://127.0.0.1:18081/rw/{prefix}"\n'
                    f'username = "colo"\npassword = "{DAV_AUTH[1]}"\n')
    subprocess.run([BIN, "volume", "add", "--owner", "alice", "--from", str(work)], env=env, check=True,
                   capture_output=True, timeout=60)
    root = str(tmp_path / "mnt")
    proc, url, metrics = start_up(env, cfg, root)
    auth = {"Authorization": f"Bearer {alice}"}

    def gql(query, variables=None):
        return requests.post(url, json={"query": query, "variables": variables or {}}, headers=auth,
                             timeout=60).json()

    add = """mutation Add($name: String!, $adql: String, $dids: [String!]) {
      addSelectionToVolume(name: $name, adql: $adql, dids: $dids) { name kind access files selectionQuery } }"""
    try:
        # The published images' collection is a dataset of the catalogue (derived at start).
        found = requests.get(url.replace("/graphql", "/api/v1/search"), params={"q": "type:dataset imgs"},
                             timeout=10).json()
        assert [i["key"] for i in found["items"]] == ["ivoa.obscore/imgs"], found
        assert "4 image(s)" in found["items"][0]["description"]
        before = gets(metrics, "imgs")
        r = gql(add, {"name": "picked", "adql": PICK})
        assert r.get("data", {}) and r["data"]["addSelectionToVolume"] == {
            "name": "picked", "kind": "selection", "access": "READ_ONLY", "files": 3, "selectionQuery": PICK}, r
        picked = os.path.join(root, ".users", "alice", "picked")
        wait_for(lambda: os.path.isdir(picked), "the selection in alice's folder")
        assert os.listdir(picked) == ["obs"]
        assert sorted(os.listdir(os.path.join(picked, "obs"))) == ["sel_a.fits", "sel_b.fits", "sel_c.fits"]
        assert os.path.getsize(os.path.join(picked, "obs", "sel_b.fits")) == os.path.getsize(source)
        assert not os.path.exists(os.path.join(picked, "obs", "other.fits"))
        assert gets(metrics, "imgs") == before, "listing the selection transferred nothing"
        with fits.open(source) as ref:
            for name in ["sel_a", "sel_b", "sel_c"]:
                with fits.open(os.path.join(picked, "obs", f"{name}.fits")) as h:
                    assert np.array_equal(h[0].data, ref[0].data, equal_nan=True)
        assert gets(metrics, "imgs") > before, "the first read is the first transfer"
        with pytest.raises(OSError):
            open(os.path.join(picked, "obs", "new.fits"), "wb")

        # Bad selections say what is wrong.
        for variables, says in [
            ({"name": "x", "adql": "SELECT ra FROM sample.hip2"}, "ivoa.obscore"),
            ({"name": "x", "adql": "SELECT obs_id FROM ivoa.obscore"}, "obs_publisher_did"),
            ({"name": "x", "adql": "SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_id = 'none'"}, "empty"),
            ({"name": "x", "dids": ["ivo://nowhere/nothing"]}, "no such dataset"),
            ({"name": "../x", "adql": PICK}, "not allowed"),
            ({"name": "picked", "adql": PICK}, "exists"),
            ({"name": "x", "adql": "SELEKT nonsense"}, ""),
        ]:
            r = gql(add, variables)
            assert r.get("errors"), (variables, r)
            assert says in r["errors"][0]["message"], (variables, r)
        listed = {v["name"]: v["kind"] for v in gql("{ volumes { name kind } }")["data"]["volumes"]}
        assert listed["picked"] == "selection"

        # A copy into alice's writable volume (the WebDAV server), to change or keep.
        copy = """mutation Copy($into: String!, $folder: String) {
          copySelection(name: "picked", into: $into, folder: $folder) { volume folder copied bytes alreadyThere } }"""
        r = gql(copy, {"into": "work"})
        assert r.get("data") and r["data"]["copySelection"] == {
            "volume": "work", "folder": "picked", "copied": 3, "bytes": 3 * os.path.getsize(source),
            "alreadyThere": 0}, r
        with open(source, "rb") as f:
            original = f.read()
        for name in ["sel_a", "sel_b", "sel_c"]:
            with open(os.path.join(dav_dir, "picked", "obs", f"{name}.fits"), "rb") as f:
                assert f.read() == original, f"{name} at the WebDAV server"
        copied = os.path.join(root, ".users", "alice", "work", "picked", "obs")
        wait_for(lambda: os.path.isdir(copied) and len(os.listdir(copied)) == 3, "the copies in the mount", 30)
        with fits.open(os.path.join(copied, "sel_c.fits")) as h, fits.open(source) as ref:
            assert np.array_equal(h[0].data, ref[0].data, equal_nan=True)
        os.remove(os.path.join(dav_dir, "picked", "obs", "sel_a.fits"))
        r = gql(copy, {"into": "work"})
        assert (r["data"]["copySelection"]["copied"], r["data"]["copySelection"]["alreadyThere"]) == (1, 2), r
        with open(os.path.join(dav_dir, "picked", "obs", "sel_b.fits"), "wb") as f:
            f.write(b"alice's own notes")
        for variables, code, says in [
            ({"into": "work"}, "CONFLICT", "work/picked/obs/sel_b.fits"),
            ({"into": "imgs"}, "FORBIDDEN", "read-only"),
            ({"into": "nowhere"}, "NOT_FOUND", "nowhere"),
            ({"into": "work", "folder": "../up"}, "BAD_USER_INPUT", "folder"),
        ]:
            r = gql(copy, variables)
            assert r.get("errors"), (variables, r)
            assert r["errors"][0]["extensions"]["code"] == code, (variables, r)
            assert says in r["errors"][0]["message"], (variables, r)
        with open(os.path.join(dav_dir, "picked", "obs", "sel_b.fits"), "rb") as f:
            assert f.read() == b"alice's own notes", "the copy never overwrites her files"
        assert DAV_AUTH[1] not in str(r)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)

    # A restart keeps the selection.
    proc, url, metrics = start_up(env, cfg, root)
    try:
        picked = os.path.join(root, ".users", "alice", "picked", "obs")
        assert sorted(os.listdir(picked)) == ["sel_a.fits", "sel_b.fits", "sel_c.fits"]
        # The same by CLI, beside the running colo: the mount follows.
        def colo(*args):
            out = subprocess.run([BIN, "selection", *args], env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            return out.stdout
        said = colo("add", "cli-pick", "--user", "alice", "--adql", PICK.replace("sel%", "sel_a%"), "--config", cfg)
        assert "1 file(s) of volume imgs" in said, said
        cli_pick = os.path.join(root, ".users", "alice", "cli-pick", "obs")
        wait_for(lambda: os.path.isdir(cli_pick), "the CLI's selection in alice's folder")
        assert os.listdir(cli_pick) == ["sel_a.fits"]
        assert [l.split("\t")[:2] for l in colo("list", "--user", "alice").splitlines()] == [
            ["cli-pick", "1 file(s)"], ["picked", "3 file(s)"]]
        said = colo("copy", "cli-pick", "--user", "alice", "--into", "work", "--folder", "by-cli", "--config", cfg)
        assert "copied 1 file(s)" in said, said
        with open(os.path.join(dav_dir, "by-cli", "obs", "sel_a.fits"), "rb") as f:
            assert f.read() == original
        refused = subprocess.run([BIN, "selection", "copy", "cli-pick", "--user", "alice", "--into", "imgs",
                                  "--config", cfg], env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "read-only" in refused.stderr, refused.stderr
        colo("remove", "cli-pick", "--user", "alice")
        wait_for(lambda: not os.path.exists(cli_pick), "the CLI's removal in the mount")

        r = gql("mutation { removeSelection(name: \"picked\") }")
        assert r["data"]["removeSelection"] is True
        wait_for(lambda: not os.path.exists(picked), "the removed selection is gone")
        assert os.path.exists(os.path.join(folder, "obs", "sel_a.fits")), "the archive file stays"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
