"""VO service tests: the real clients (pyvo, astroquery, STILTS taplint) against colo's TAP service.

The `tap` fixture runs what a newcomer runs, `colo up` with no config: the sample mission is
prepared from PyPI packages (Hipparcos-2, CDS I/311), published as the TAP table `sample.hip2`, and
served at http://127.0.0.1:18766/tap next to the mounts. Environment (set by scripts/test.sh):
COLO_BIN, COLO_REPO, COLO_TEST_DIR, COLO_CACHE.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

BIN = os.environ["COLO_BIN"]
REPO = os.environ["COLO_REPO"]
RUN = os.environ["COLO_TEST_DIR"]
UP_PORT = 18766
SERVE_PORT = 18767


class Process:
    """A colo process that prints 'ready ...' on stdout once it serves."""

    def __init__(self, args, home, cwd):
        self.home = home
        self.proc = subprocess.Popen([BIN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "COLO_HOME": str(home)})
        self.lines = []
        deadline = time.time() + 600
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if self.proc.poll() is not None and not line:
                raise AssertionError("colo exited: " + self.proc.stderr.read())
            self.lines.append(line.strip())
            if line.startswith("ready"):
                return
        raise AssertionError("colo did not get ready")

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return err


def link_downloads(home):
    """Package downloads are kept between runs (the sample itself is prepared afresh)."""
    downloads = os.path.join(os.environ["COLO_CACHE"], "up-downloads")
    os.makedirs(downloads, exist_ok=True)
    os.symlink(downloads, os.path.join(home, "downloads"))


@pytest.fixture(scope="session")
def up():
    """`colo up` with no config, TAP on UP_PORT; yields the process (home = its COLO_HOME)."""
    base = os.path.join(RUN, "vo-up")
    shutil.rmtree(base, ignore_errors=True)
    home = os.path.join(base, "home")
    os.makedirs(home)
    link_downloads(home)
    proc = Process(["up", "--root", os.path.join(base, "data"), "--listen", f"127.0.0.1:{UP_PORT}"], home, base)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def tap(up):
    """The TAP base URL of `colo up`."""
    url = next(line.split(" ", 1)[1] for line in up.lines if line.startswith("tap "))
    assert url == f"http://127.0.0.1:{UP_PORT}/tap"
    return url


@pytest.fixture(scope="session")
def hip2(up):
    """The sample's Hipparcos table as numpy arrays (read directly from the prepared Parquet)."""
    import pyarrow.parquet as pq
    table = pq.read_table(os.path.join(up.home, "sample/catalogs/hip2.parquet"), columns=["hip", "ra_deg", "dec_deg", "hpmag"])
    return {name: table[name].to_numpy() for name in table.column_names}
