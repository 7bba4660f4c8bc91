"""External POSIX suites against read-write mounts of every writable backend: fsx (20,000 random
reads, writes, truncates, mmap reads and writes, fsyncs, checked against its model) and
pjdfstest — the object-store profile (tests/posix/subset-object-store.list) on S3, WebDAV, FTP and
local, the larger SFTP subset (tests/posix/subset-hf.list: modes, owners and permissions too) on
SFTP, the whole suite on local —, gated at the counts in tests/posix/bars.toml so a regression
fails the run. The tools are built by `scripts/setup.sh test`.
"""
import os
import re
import subprocess
import tomllib
import uuid

import pytest

from conftest import REPO, RUN
from test_write import BACKENDS, start

TOOLS = os.path.join(os.environ.get("COLO_CACHE", os.path.expanduser("~/.cache/colo")), "tools")
POSIX = os.path.join(REPO, "tests", "posix")
BARS = tomllib.load(open(os.path.join(POSIX, "bars.toml"), "rb"))


@pytest.fixture(scope="module")
def rw():
    c, _ = start(root="mnt-posix")
    yield c
    # pjdfstest leaves files of 2 GiB (sparse here, whole at the origin) to upload.
    err = c.stop(timeout=300)
    assert "still pending" not in err, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_fsx_20000_operations_with_mmap(rw, backend, tmp_path):
    target = rw.path(backend, f"fsx-{uuid.uuid4().hex[:8]}.bin")
    out = subprocess.run([os.path.join(TOOLS, "bin", "fsx"), "-N", "20000", "-S", "42",
                          "-f", os.path.join(POSIX, "fsx.toml"), "-P", str(tmp_path), target],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and "All operations completed A-OK" in out.stdout + out.stderr, \
        f"fsx on {backend}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def prove(workdir, listing):
    files = [os.path.join(TOOLS, "pjdfstest", "tests", line.strip())
             for line in open(os.path.join(POSIX, listing)) if line.strip() and not line.startswith("#")]
    out = subprocess.run(["prove", *files], cwd=workdir, capture_output=True, text=True, timeout=1800)
    text = out.stdout + out.stderr
    total = int(re.search(r"Files=\d+, Tests=(\d+)", text).group(1))
    failed = sum(int(n) for n in re.findall(r"\(Wstat: \d+.*?Failed: (\d+)\)", text))
    return total, total - failed, text


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sftp"])
def test_pjdfstest_object_store_profile(rw, backend):
    work = rw.path(backend, f"pjd-{uuid.uuid4().hex[:8]}")
    os.mkdir(work)
    total, passed, text = prove(work, "subset-object-store.list")
    print(f"pjdfstest object-store profile on {backend}: {passed}/{total}")
    print("failing:", re.findall(r"^(\S+\.t) +\(Wstat: \d+ Tests: \d+ Failed: \d+\)\n +Failed tests?: +(.*)$",
                                 text, re.M))
    bar = BARS["object_store_profile"][backend]
    assert passed >= bar, f"{backend}: {passed}/{total} passed, below the bar of {bar}:\n{text[-4000:]}"


def test_pjdfstest_sftp_subset(rw):
    """The subset without fifos, devices, sockets and hard links (a superset of the object-store
    profile): modes, owners and permission checks by other users, symbolic links."""
    work = rw.path("sftp", f"pjd-hf-{uuid.uuid4().hex[:8]}")
    os.mkdir(work)
    total, passed, text = prove(work, "subset-hf.list")
    print(f"pjdfstest SFTP subset: {passed}/{total}")
    failing = re.findall(r"^(\S+\.t) +\(Wstat: \d+ Tests: \d+ Failed: \d+\)\n +Failed tests?: +(.*)$",
                         text, re.M)
    print("failing:", failing)
    bar = BARS["sftp_subset"]["sftp"]
    assert passed >= bar, f"sftp: {passed}/{total} passed, below the bar of {bar}:\n{text[-4000:]}"


def prove_all(workdir):
    out = subprocess.run(["prove", "-r", os.path.join(TOOLS, "pjdfstest", "tests")], cwd=workdir,
                         capture_output=True, text=True, timeout=2400)
    text = out.stdout + out.stderr
    total = int(re.search(r"Files=\d+, Tests=(\d+)", text).group(1))
    failed = sum(int(n) for n in re.findall(r"\(Wstat: \d+.*?Failed: (\d+)\)", text))
    return total, total - failed, text


def test_pjdfstest_whole_suite_on_the_local_volume(rw):
    """The local volume is its directory passed straight through: the whole suite (238 files,
    modes, owners, times, hard and symbolic links, FIFOs, devices, sockets, sticky bits)."""
    work = rw.path("local", f"pjd-all-{uuid.uuid4().hex[:8]}")
    os.mkdir(work)
    total, passed, text = prove_all(work)
    print(f"pjdfstest whole suite on local: {passed}/{total}")
    failing = re.findall(r"^(\S+\.t) +\(Wstat: \d+ Tests: \d+ Failed: (\d+)\)", text, re.M)
    print("failing files:", failing)
    bar = BARS["whole_suite"]["local"]
    assert passed >= bar, f"local: {passed}/{total} passed, below the bar of {bar}:\n{text[-4000:]}"
