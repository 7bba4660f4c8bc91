"""Real-mount tests: `colo mount` runs as a subprocess against the real servers that
scripts/servers.sh started (scripts/test.sh does both), and the tests use the mount the way a
notebook does: ls, cat, cmp, find, astropy, pyarrow.

Environment (set by scripts/test.sh): COLO_BIN, COLO_REPO, COLO_TEST_DIR, COLO_VENV.
"""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

BIN = os.environ["COLO_BIN"]
REPO = os.environ["COLO_REPO"]
sys.path.insert(0, os.path.join(REPO, "tests"))
from output_drain import keep_reading  # noqa: E402
RUN = os.environ["COLO_TEST_DIR"]
FIX = os.path.join(RUN, "fixture")
S3_ENDPOINT = "http://127.0.0.1:18333"
S3_KEY, S3_SECRET = "colotest", "colotestsecret-s3"
os.environ["COLO_TEST_S3_SECRET"] = S3_SECRET


def servers(*args):
    subprocess.run(["bash", os.path.join(REPO, "scripts/servers.sh"), *args], check=True)


def metrics_at(listen):
    """The metrics colo serves at `listen` (host:port), by series."""
    import urllib.request
    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values


def mounted(root):
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == root for line in f)


class Colo:
    """A `colo mount` process; the mount is live once it prints 'ready'."""

    def __init__(self, config, root, extra=(), env=None):
        self.root = root
        self.config = config
        self.proc = subprocess.Popen([BIN, "mount", "--config", config, "--root", root, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.err_lines, self.out_lines = [], []
        self.readers = [keep_reading(self.proc.stderr, self.err_lines)]
        deadline = time.time() + 60
        line = ""
        self.metrics_url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("metrics "):
                self.metrics_url = line.split()[1]
            if line.startswith("ready") or self.proc.poll() is not None:
                break
        if not line.startswith("ready"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"colo mount did not come up: {self.stderr()}")
        self.readers.append(keep_reading(self.proc.stdout, self.out_lines))

    def stderr(self):
        """What the process wrote to stderr, all of it once it has ended."""
        if self.proc.poll() is not None:
            for reader in self.readers:
                reader.join(timeout=10)
        return "".join(self.err_lines)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.stderr()


def write_config(path, extra_volumes="", cache=None, memory_mib=256, metrics_listen=None):
    """The servers' volumes (from servers.sh) plus test-specific ones, with a cache of its own."""
    servers("config", path)
    text = open(path).read()
    if metrics_listen:
        text = f'metrics_listen = "{metrics_listen}"\n' + text
    cache = cache or os.path.join(RUN, f"cache-{uuid.uuid4().hex[:8]}")
    text = text.replace(f'dir = "{RUN}/cache"', f'dir = "{cache}"')
    text = text.replace("memory_mib = 256", f"memory_mib = {memory_mib}")
    with open(path, "w") as f:
        f.write(text + extra_volumes)
    return cache


MUTABLE = os.path.join(RUN, "mutable")
SPARSE = os.path.join(RUN, "sparse")

EXTRA = f"""
[[volume]]
name = "mut-local"
url = "file://{MUTABLE}"
metadata_ttl_secs = 1
[[volume]]
name = "mut-s3"
url = "s3://colo-mutable/"
endpoint = "{S3_ENDPOINT}"
access_key_id = "{S3_KEY}"
secret_access_key = "{S3_SECRET}"
metadata_ttl_secs = 1
[[volume]]
name = "sparse"
url = "file://{SPARSE}"
[[volume]]
name = "s3-fault"
url = "s3://colo-test/"
endpoint = "{S3_ENDPOINT}"
access_key_id = "{S3_KEY}"
secret_access_key = "{S3_SECRET}"
request_timeout_secs = 3
retries = 1
"""


@pytest.fixture(scope="session")
def colo():
    os.makedirs(MUTABLE, exist_ok=True)
    os.makedirs(SPARSE, exist_ok=True)
    cfg = os.path.join(RUN, "mount-tests.toml")
    write_config(cfg, EXTRA)
    root = os.path.join(RUN, "mnt")
    c = Colo(cfg, root)
    yield c
    err = c.stop()
    assert not mounted(root), f"still mounted after SIGTERM: {err}"
    assert "unmounting" in err


@pytest.fixture
def s3():
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))
