"""A local read-write volume is its directory, passed straight through (colo_vfs::direct): what a
program does through the mount — modes, owners, times, hard and symbolic links, FIFOs, who may
delete what — is what the directory shows, checked with os.stat/os.readlink on the origin itself.
"""
import os
import stat
import subprocess
import uuid

import pytest

from conftest import RUN
from test_write import rw  # noqa: F401 - the shared read-write mount

NOBODY, OTHER = 65534, 65533


def origin(*parts):
    return os.path.join(RUN, "rw", "local", *parts)


@pytest.fixture
def work(rw):  # noqa: F811
    name = f"l-{uuid.uuid4().hex[:8]}"
    os.mkdir(rw.path("local", name))
    return rw.path("local", name), name


def test_modes_owners_times_and_links_reach_the_directory(work):
    mnt, rel = work
    f = os.path.join(mnt, "run.sh")
    with open(f, "w") as out:
        out.write("#!/bin/sh\necho ok\n")
    os.chmod(f, 0o750)
    os.chown(f, NOBODY, NOBODY)
    os.utime(f, ns=(1_000_000_000_123_456_789, 1_100_000_000_987_654_321))
    at = os.stat(origin(rel, "run.sh"))
    assert stat.S_IMODE(at.st_mode) == 0o750 and (at.st_uid, at.st_gid) == (NOBODY, NOBODY)
    assert (at.st_atime_ns, at.st_mtime_ns) == (1_000_000_000_123_456_789, 1_100_000_000_987_654_321)
    seen = os.stat(f)
    assert (seen.st_mode, seen.st_uid, seen.st_mtime_ns, seen.st_size) == \
        (at.st_mode, at.st_uid, at.st_mtime_ns, at.st_size)
    assert subprocess.run([f], capture_output=True, text=True).stdout == "ok\n", "runs: mode kept"

    os.symlink("run.sh", os.path.join(mnt, "link"))
    assert os.readlink(origin(rel, "link")) == "run.sh"
    assert os.path.islink(os.path.join(mnt, "link")) and open(os.path.join(mnt, "link")).read().startswith("#!")
    os.link(f, os.path.join(mnt, "hard"))
    assert os.stat(origin(rel, "hard")).st_ino == os.stat(origin(rel, "run.sh")).st_ino
    assert os.stat(os.path.join(mnt, "run.sh")).st_nlink == 2
    os.chmod(os.path.join(mnt, "hard"), 0o700)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o700, "a change through one name shows through the other"
    os.mkfifo(os.path.join(mnt, "pipe"), 0o600)
    assert stat.S_ISFIFO(os.stat(origin(rel, "pipe")).st_mode)
    kinds = {e.name: (e.is_symlink(), e.is_file(follow_symlinks=False)) for e in os.scandir(mnt)}
    assert kinds == {"run.sh": (False, True), "hard": (False, True), "link": (True, False),
                     "pipe": (False, False)}, kinds


def as_user(uid, script):
    return subprocess.run(["sh", "-c", script], user=uid, group=uid, capture_output=True,
                          text=True, cwd="/")


def test_files_belong_to_who_made_them_and_the_sticky_bit_holds(work):
    mnt, rel = work
    os.chmod(mnt, 0o1777)
    mine, folder = os.path.join(mnt, "mine"), os.path.join(mnt, "d")
    made = as_user(NOBODY, f"umask 022 && printf x > {mine} && mkdir {folder}")
    assert made.returncode == 0, made.stderr
    for name, mode in [("mine", 0o644), ("d", 0o755)]:
        at = os.stat(origin(rel, name))
        assert (at.st_uid, at.st_gid, stat.S_IMODE(at.st_mode)) == (NOBODY, NOBODY, mode), (name, at)
    other = as_user(OTHER, f"rm -f {mine}")
    assert other.returncode != 0 and "not permitted" in other.stderr, other.stderr
    assert os.path.exists(origin(rel, "mine")), "another user cannot delete it from a sticky folder"
    denied = as_user(OTHER, f"printf y >> {mine}")
    assert denied.returncode != 0 and "denied" in denied.stderr, "0644 keeps others from writing"
    assert open(origin(rel, "mine")).read() == "x"


def test_changes_made_in_the_directory_show_at_once(work):
    mnt, rel = work
    with open(origin(rel, "theirs.txt"), "w") as f:
        f.write("one")
    assert open(os.path.join(mnt, "theirs.txt")).read() == "one"
    with open(origin(rel, "theirs.txt"), "a") as f:
        f.write(" two")
    os.chmod(origin(rel, "theirs.txt"), 0o600)
    assert open(os.path.join(mnt, "theirs.txt")).read() == "one two"
    assert stat.S_IMODE(os.stat(os.path.join(mnt, "theirs.txt")).st_mode) == 0o600
    os.rename(origin(rel, "theirs.txt"), origin(rel, "moved.txt"))
    assert sorted(os.listdir(mnt)) == ["moved.txt"]
