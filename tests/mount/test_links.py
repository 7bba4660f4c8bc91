"""Symbolic links on writable volumes through a real mount.

SFTP keeps links (colo makes them with SSH_FXP_SYMLINK through the write-back journal, reads
them with READLINK and shows them with LSTAT): `ln -s`, `tar x` of an archive with links, `mv`
and `rm` of a link, dangling links and links to folders behave as on a disk, each link checked at
the origin (the SFTP server's own directory) and read back by a fresh mount with an empty cache.
Object stores (S3 here) have no links: `ln -s` fails with EPERM and leaves nothing behind.
"""
import io
import os
import stat
import subprocess
import tarfile
import time
import uuid

import pytest

from conftest import RUN, mounted
from test_write import start


def origin(rel):
    return os.path.join(RUN, "rw", "sftp", rel)


def wait_link_at_origin(rel, target, timeout=30):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        try:
            got = os.readlink(origin(rel))
        except FileNotFoundError:
            got = None
        if got == target:
            return
        time.sleep(0.2)
    assert got == target, f"sftp:{rel} at the origin links to {got!r}, not {target!r}"


def wait_gone_at_origin(rel, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline and os.path.lexists(origin(rel)):
        time.sleep(0.2)
    assert not os.path.lexists(origin(rel)), f"sftp:{rel} still at the origin"


@pytest.fixture(scope="module")
def rw():
    c, _ = start(root="mnt-links")
    yield c
    err = c.stop()
    assert not mounted(c.root), err


def test_links_on_sftp_behave_as_on_a_disk_and_reach_the_origin(rw):
    name = f"links-{uuid.uuid4().hex[:8]}"
    work = rw.path("sftp", name)
    os.makedirs(os.path.join(work, "sub"))
    with open(os.path.join(work, "sub", "data.txt"), "wb") as f:
        f.write(b"payload\n")

    subprocess.run(["ln", "-s", "sub/data.txt", os.path.join(work, "rel")], check=True)
    os.symlink(os.path.join(work, "sub"), os.path.join(work, "abs-dir"))
    os.symlink("no/such/target", os.path.join(work, "dangling"))

    st = os.lstat(os.path.join(work, "rel"))
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("sub/data.txt")
    assert os.readlink(os.path.join(work, "rel")) == "sub/data.txt"
    with open(os.path.join(work, "rel"), "rb") as f:
        assert f.read() == b"payload\n", "reading through the link reads its target"
    assert os.listdir(os.path.join(work, "abs-dir")) == ["data.txt"]
    assert not os.path.exists(os.path.join(work, "dangling"))
    assert os.path.islink(os.path.join(work, "dangling"))
    with pytest.raises(FileExistsError):
        os.symlink("x", os.path.join(work, "rel"))
    with pytest.raises(NotADirectoryError):
        os.rmdir(os.path.join(work, "rel"))
    ls = subprocess.run(["ls", "-l", work], check=True, capture_output=True, text=True).stdout
    assert "rel -> sub/data.txt" in ls, ls

    wait_link_at_origin(f"{name}/rel", "sub/data.txt")
    wait_link_at_origin(f"{name}/abs-dir", os.path.join(work, "sub"))
    wait_link_at_origin(f"{name}/dangling", "no/such/target")

    # A loop: the kernel follows links itself and stops with ELOOP.
    os.symlink("loop-b", os.path.join(work, "loop-a"))
    os.symlink("loop-a", os.path.join(work, "loop-b"))
    with pytest.raises(OSError) as e:
        open(os.path.join(work, "loop-a"))
    assert e.value.errno == 40  # ELOOP

    os.rename(os.path.join(work, "rel"), os.path.join(work, "moved"))
    assert os.readlink(os.path.join(work, "moved")) == "sub/data.txt"
    wait_link_at_origin(f"{name}/moved", "sub/data.txt")
    wait_gone_at_origin(f"{name}/rel")
    os.unlink(os.path.join(work, "moved"))
    wait_gone_at_origin(f"{name}/moved")
    with open(origin(f"{name}/sub/data.txt"), "rb") as f:
        assert f.read() == b"payload\n", "removing a link leaves its target"

    # tar x of an archive with links (as a source tree or a wheel unpacked by a program).
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = b"#!/bin/sh\necho hi\n"
        info = tarfile.TarInfo("pkg/bin/tool-1.0")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
        link = tarfile.TarInfo("pkg/bin/tool")
        link.type, link.linkname = tarfile.SYMTYPE, "tool-1.0"
        tar.addfile(link)
    subprocess.run(["tar", "xf", "-", "-C", work], input=buf.getvalue(), check=True)
    out = subprocess.run([os.path.join(work, "pkg/bin/tool")], check=True, capture_output=True)
    assert out.stdout == b"hi\n"
    wait_link_at_origin(f"{name}/pkg/bin/tool", "tool-1.0")


def ssh_masters():
    """The ssh control masters running now (what colo's SFTP sessions start), by pid."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if " -M -f -N " in line and "ssh" in line}


def test_links_made_earlier_read_back_from_the_origin_through_a_fresh_mount():
    """Also: the mount's SSH sessions end with it (each stop used to leave its ssh masters and
    the server's sessions running)."""
    before = ssh_masters()
    name = f"links-fresh-{uuid.uuid4().hex[:8]}"
    os.makedirs(origin(name))
    with open(origin(f"{name}/target.txt"), "wb") as f:
        f.write(b"made by another client\n")
    os.symlink("target.txt", origin(f"{name}/made-elsewhere"))
    os.symlink("gone", origin(f"{name}/dangling"))
    c, _ = start(root="mnt-links-fresh")
    try:
        work = c.path("sftp", name)
        kinds = {e.name: e.is_symlink() for e in os.scandir(work)}
        assert kinds == {"target.txt": False, "made-elsewhere": True, "dangling": True}, kinds
        assert os.readlink(os.path.join(work, "made-elsewhere")) == "target.txt"
        assert os.readlink(os.path.join(work, "dangling")) == "gone"
        with open(os.path.join(work, "made-elsewhere"), "rb") as f:
            assert f.read() == b"made by another client\n"
        assert os.lstat(os.path.join(work, "dangling")).st_size == len("gone")
        assert ssh_masters() - before, "the mount's SFTP sessions run through ssh masters"
    finally:
        err = c.stop()
        assert not mounted(c.root), err
    deadline = time.time() + 10
    while ssh_masters() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not ssh_masters() - before, "ssh masters left behind by a stopped mount"


def test_object_stores_refuse_links_with_eperm(rw):
    work = rw.path("s3", f"links-{uuid.uuid4().hex[:8]}")
    os.makedirs(work)
    with pytest.raises(PermissionError) as e:
        os.symlink("x", os.path.join(work, "l"))
    assert e.value.errno == 1  # EPERM
    assert os.listdir(work) == []
