"""`colo up` with no config: the sample mission is prepared from PyPI packages and mounted, and the
science stack reads it. Checked against the fixture tree, which tests/fixtures/make_fixture.py built
independently (numpy, pyarrow) from the same two packages."""
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pyarrow.parquet as pq
import requests
from astropy.io import fits
from conftest import BIN, FIX, mounted


def test_colo_up_mounts_the_sample_mission(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # Downloads are kept between test runs; the sample itself is prepared afresh every time.
    downloads = os.path.join(os.environ["COLO_CACHE"], "up-downloads")
    os.makedirs(downloads, exist_ok=True)
    os.symlink(downloads, home / "downloads")
    root = str(tmp_path / "data")
    # stderr to a file: the "Try:" lines are read from it while colo runs.
    stderr = open(tmp_path / "up.err", "w+")
    # As scripts/up.sh does: the printed lines call the venv's Python (astropy, pyarrow, pyvo).
    env = {**os.environ, "COLO_HOME": str(home), "COLO_PYTHON": sys.executable}
    proc = subprocess.Popen([BIN, "up", "--root", root, "--listen", "127.0.0.1:18769"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, env=env)
    try:
        deadline = time.time() + 300
        line = ""
        before_ready = []
        while time.time() < deadline and not line.startswith("ready"):
            line = proc.stdout.readline()
            before_ready.append(line)
            if proc.poll() is not None:
                raise AssertionError(open(tmp_path / "up.err").read())
        assert line.startswith("ready")
        check_the_platform(before_ready, env)
        run_the_try_lines(open(tmp_path / "up.err").read(), root)
        # Requests colo answers with ENOSYS (ioctl, xattrs) leave no warnings in the user's terminal.
        assert "Not Implemented" not in open(tmp_path / "up.err").read()
        sample = os.path.join(root, "sample")
        assert sorted(os.listdir(sample)) == ["PROVENANCE.md", "catalogs", "images"]
        assert len([f for f in os.listdir(os.path.join(sample, "images")) if f.endswith(".fits")]) == 6
        # The cube is the pyspeckit sdist's member, byte for byte, read through the mount.
        with tarfile.open(os.path.join(downloads, "pyspeckit-1.0.4.tar.gz")) as tar:
            member = tar.extractfile("pyspeckit-1.0.4/pyspeckit/tests/data/region5_hcn_crop.fits").read()
        with open(os.path.join(sample, "images/hcn_region5_cube.fits"), "rb") as f:
            assert f.read() == member
        with fits.open(os.path.join(sample, "images/magpis_g10.5.fits"), memmap=True) as h, \
                fits.open(os.path.join(FIX, "science/magpis_g10.5.fits")) as ref:
            assert np.array_equal(h[0].data[100:200, 50:150], ref[0].data[100:200, 50:150], equal_nan=True)
        hip = pq.read_table(os.path.join(sample, "catalogs/hip2.parquet"), columns=["hip", "ra_rad", "plx_mas", "ra_deg"])
        ref = pq.read_table(os.path.join(FIX, "science/hip2_18cols.parquet"), columns=["hip", "ra_rad", "plx_mas"])
        assert hip.num_rows == 117955
        assert np.array_equal(hip["hip"].to_numpy(), ref["hip"].to_numpy().astype(np.int32))
        assert np.allclose(hip["plx_mas"].to_numpy(), ref["plx_mas"].to_numpy())
        assert np.allclose(hip["ra_deg"].to_numpy(), np.degrees(ref["ra_rad"].to_numpy()))
        prov = open(os.path.join(sample, "PROVENANCE.md")).read()
        assert "sha256" in prov and "I/311" in prov
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stderr.close()
    assert not mounted(root)


def run_the_try_lines(stderr, root):
    """Every line `colo up` offers to try runs as printed and shows what it promises."""
    lines = stderr.split("Try:\n", 1)[1].splitlines()
    commands = [l.strip() for l in lines if l.startswith("  ")]
    assert len(commands) == 5, stderr
    outputs = []
    for command in commands:
        assert command.startswith(("ls ", sys.executable)), command
        run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"{command}\n{run.stderr}"
        outputs.append(run.stdout)
    ls, astropy_out, pyarrow_out, tap_out, sia_out = outputs
    assert "magpis_g10.5.fits" in ls and root in commands[0]
    with fits.open(os.path.join(FIX, "science/magpis_g10.5.fits")) as ref:
        assert astropy_out.split()[0] == str(ref[0].header["NAXIS1"])
    assert pyarrow_out.startswith("pyarrow.Table") and "hip: int32" in pyarrow_out and "hpmag:" in pyarrow_out
    assert "hip" in tap_out and "hpmag" in tap_out and len(tap_out.strip().splitlines()) >= 5 + 2
    assert "ivo://" in sia_out


def check_the_platform(stdout_lines, env):
    """`colo up` on a fresh home made the admin user (its token printed once, on stdout and in the
    banner) and put the sample in the catalogue, searchable without a token."""
    tokens = [l.split()[1] for l in stdout_lines if l.startswith("token: ")]
    assert len(tokens) == 1 and re.fullmatch(r"colo_[A-Za-z0-9_-]{43}", tokens[0]), stdout_lines
    users = subprocess.run([BIN, "user", "list"], capture_output=True, text=True, env=env, check=True).stdout
    assert re.search(r"^admin\s+yes", users, re.M), users
    me = requests.post("http://127.0.0.1:18769/graphql", json={"query": "{ me { name admin } }"},
                       headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10).json()
    assert me["data"]["me"] == {"name": "admin", "admin": True}, me
    found = requests.post("http://127.0.0.1:18769/graphql", timeout=10, json={
        "query": '{ search(q: "mission:Hipparcos type:dataset") { total items { key } } }'}).json()
    assert found["data"]["search"]["items"] == [{"key": "sample.hip2"}], found
    portal = requests.get("http://127.0.0.1:18769/", timeout=10)
    assert portal.url.endswith("/portal/") and "Log in" in portal.text, portal.url
