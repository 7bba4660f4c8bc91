"""`colo up` with no config: the sample mission is prepared from PyPI packages and mounted, and the
science stack reads it. Checked against the fixture tree, which tests/fixtures/make_fixture.py built
independently (numpy, pyarrow) from the same two packages."""
import os
import signal
import subprocess
import tarfile
import time

import numpy as np
import pyarrow.parquet as pq
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
    proc = subprocess.Popen([BIN, "up", "--root", root, "--listen", "127.0.0.1:18769"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLO_HOME": str(home)})
    try:
        deadline = time.time() + 300
        line = ""
        while time.time() < deadline and not line.startswith("ready"):
            line = proc.stdout.readline()
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
        assert line.startswith("ready")
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
    assert not mounted(root)
