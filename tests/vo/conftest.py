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
import sys
import time

import pytest

BIN = os.environ["COLO_BIN"]
REPO = os.environ["COLO_REPO"]
sys.path.insert(0, os.path.join(REPO, "tests"))
from output_drain import keep_reading  # noqa: E402
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
        # Read all along: a process whose output nobody reads blocks once it wrote a pipe's worth.
        self.err_lines, self.out_lines = [], []
        self.readers = [keep_reading(self.proc.stderr, self.err_lines)]
        deadline = time.time() + 600
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if self.proc.poll() is not None and not line:
                raise AssertionError("colo exited: " + self.stderr())
            self.lines.append(line.strip())
            if line.startswith("ready"):
                self.readers.append(keep_reading(self.proc.stdout, self.out_lines))
                return
        raise AssertionError("colo did not get ready")

    def stderr(self):
        """What the process wrote to stderr, all of it once it has ended."""
        if self.proc.poll() is not None:
            for reader in self.readers:
                reader.join(timeout=10)
        return "".join(self.err_lines)

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        return self.stderr()


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


IMAGES_PORT = 18768
IMAGES_METRICS_PORT = 18773
S3_ENDPOINT = "http://127.0.0.1:18333"


def s3_client():
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="colotest", aws_secret_access_key="colotestsecret-s3",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))


class Images:
    """`colo up --config` over a local and an S3 image volume (see images_fixture.py)."""

    def __init__(self, base, config, folder, proc):
        self.base, self.config, self.folder, self.proc = base, config, folder, proc
        self.url = f"http://127.0.0.1:{IMAGES_PORT}"
        self.metrics = f"http://127.0.0.1:{IMAGES_METRICS_PORT}/metrics"

    def ingest(self, target):
        out = subprocess.run([BIN, "ingest", "images", target, "--config", self.config],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stderr


@pytest.fixture(scope="session")
def images():
    from images_fixture import build_local, put_big
    base = os.path.join(RUN, "vo-images")
    shutil.rmtree(base, ignore_errors=True)
    folder = os.path.join(base, "volume")
    os.makedirs(folder)
    build_local(folder, os.environ["COLO_CACHE"], os.environ["COLO_VENV"])
    s3 = s3_client()
    try:
        s3.create_bucket(Bucket="colo-images")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for name in ["ukidss_zpn.fits", "hcn_cube.fits"]:
        s3.upload_file(os.path.join(folder, name), "colo-images", f"remote/{name}")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="colo-images").get("Contents", [])]
    if "synthetic_big.fits" not in keys:
        put_big(s3, "colo-images")
    config = os.path.join(base, "colo.toml")
    with open(config, "w") as f:
        f.write(f"""metrics_listen = "127.0.0.1:{IMAGES_METRICS_PORT}"
mount_root = "{base}/mnt"
[cache]
dir = "{base}/cache"
memory_mib = 64
[services]
listen = "127.0.0.1:{IMAGES_PORT}"
tables_dir = "{base}/tables"
jobs_dir = "{base}/jobs"
[[volume]]
name = "images"
url = "file://{folder}"
[[volume]]
name = "images-s3"
url = "s3://colo-images/"
endpoint = "{S3_ENDPOINT}"
access_key_id = "colotest"
secret_access_key = "colotestsecret-s3"
""")
    first = Images(base, config, folder, None)
    report = first.ingest("images")
    first.first_report = report
    first.ingest("images-s3")
    home = os.path.join(base, "home")
    os.makedirs(home)
    proc = Process(["up", "--config", config], home, base)
    images = Images(base, config, folder, proc)
    images.first_report = report
    yield images
    proc.stop()
