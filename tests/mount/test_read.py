"""Reading every backend through a real mount with ordinary programs and the science stack."""
import errno
import os
import random
import subprocess
import threading

import numpy as np
import pytest
from conftest import FIX, SPARSE

BACKENDS = ["s3", "webdav", "ftp", "sftp", "http", "local"]


def fixture_files():
    out = []
    for d, _, files in os.walk(FIX):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), FIX))
    return sorted(out)


@pytest.mark.parametrize("vol", BACKENDS)
def test_ls_l_shows_names_and_sizes(colo, vol):
    out = subprocess.run(["ls", "-l", "--time-style=+%s", colo.path(vol)], check=True,
                         capture_output=True, text=True).stdout
    listed = {}
    for line in out.splitlines()[1:]:
        parts = line.split(None, 6)
        listed[parts[6]] = (parts[0][0], int(parts[4]))
    for name in os.listdir(FIX):
        p = os.path.join(FIX, name)
        kind = "d" if os.path.isdir(p) else "-"
        assert name in listed, f"{vol}: {name} missing from ls -l"
        assert listed[name][0] == kind
        if kind == "-":
            assert listed[name][1] == os.path.getsize(p), f"{vol}: size of {name}"
        assert listed[name] == (kind, listed[name][1])
    assert len(listed) == len(os.listdir(FIX))


@pytest.mark.parametrize("vol", BACKENDS)
def test_cat_and_cmp_every_file(colo, vol):
    for rel in fixture_files():
        subprocess.run(["cmp", os.path.join(FIX, rel), colo.path(vol, rel)], check=True)
    # cat of a small file, byte for byte
    got = subprocess.run(["cat", colo.path(vol, "with space.txt")], check=True, capture_output=True).stdout
    assert got == open(os.path.join(FIX, "with space.txt"), "rb").read()


@pytest.mark.parametrize("vol", BACKENDS)
def test_find_walks_the_whole_tree(colo, vol):
    out = subprocess.run(["find", colo.path(vol), "-type", "f"], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    found = sorted(os.path.relpath(p, colo.path(vol)) for p in out if p)
    assert found == fixture_files()


@pytest.mark.parametrize("vol", BACKENDS)
def test_astropy_memmap_reads_header_and_section(colo, vol):
    from astropy.io import fits
    rel = "science/magpis_g10.5.fits"
    with fits.open(colo.path(vol, rel), memmap=True) as remote, fits.open(os.path.join(FIX, rel)) as local:
        assert remote[0].header.tostring() == local[0].header.tostring()
        assert remote[0].header["NAXIS"] >= 2
        a = remote[0].data[100:164, 50:120]
        assert np.array_equal(a, local[0].data[100:164, 50:120], equal_nan=True)
        assert np.array_equal(remote[0].section[10:20, 10:20], local[0].data[10:20, 10:20], equal_nan=True)


@pytest.mark.parametrize("vol", BACKENDS)
def test_pyarrow_reads_a_column_subset(colo, vol):
    import pyarrow.parquet as pq
    rel = "science/hip2_18cols.parquet"
    remote = pq.read_table(colo.path(vol, rel), columns=["hip", "plx_mas"])
    local = pq.read_table(os.path.join(FIX, rel), columns=["hip", "plx_mas"])
    assert remote.num_rows == 117955
    assert remote.equals(local)


@pytest.mark.parametrize("vol", ["s3", "webdav", "sftp"])
def test_concurrent_readers_of_one_file_get_the_right_bytes(colo, vol):
    rel = "big/eight_mib.bin"
    src = open(os.path.join(FIX, rel), "rb").read()
    errors = []

    def reader(seed):
        rnd = random.Random(seed)
        try:
            with open(colo.path(vol, rel), "rb") as f:
                for _ in range(40):
                    off = rnd.randrange(len(src))
                    n = rnd.randrange(1, 300_000)
                    f.seek(off)
                    if f.read(n) != src[off:off + n]:
                        errors.append((seed, off, n))
        except OSError as e:
            errors.append((seed, str(e)))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_sparse_file_over_4_gib_reads_at_every_offset(colo):
    path = os.path.join(SPARSE, "sparse_5gib.bin")
    size = 5 * 1024**3 + 17
    marks = {0: b"start", 2**32 - 3: b"across-4GiB", 2**32 + 12345: b"past-4GiB", size - 4: b"end!"}
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in marks.items():
            f.seek(off)
            f.write(data)
    assert os.stat(colo.path("sparse", "sparse_5gib.bin")).st_size == size
    with open(colo.path("sparse", "sparse_5gib.bin"), "rb") as f:
        for off, data in marks.items():
            f.seek(off)
            assert f.read(len(data)) == data, f"offset {off}"
        f.seek(3 * 1024**3)
        assert f.read(4096) == b"\0" * 4096
        f.seek(size - 2)
        assert f.read(100) == b"d!"


def test_writes_are_refused_with_erofs(colo):
    for op in (lambda: open(colo.path("local", "one.txt"), "wb"),
               lambda: open(colo.path("s3", "new-file"), "w"),
               lambda: os.mkdir(colo.path("local", "newdir")),
               lambda: os.remove(colo.path("local", "one.txt"))):
        with pytest.raises(OSError) as e:
            op()
        assert e.value.errno == errno.EROFS


@pytest.mark.parametrize("vol", ["local", "http", "s3"])
def test_traversal_stays_inside_the_volume(colo, vol):
    for name in ["..%2f..%2fetc%2fpasswd", "%2e%2e", "..%2F", "%2e%2e%2fetc"]:
        with pytest.raises(FileNotFoundError):
            os.stat(colo.path(vol, name))
    # The kernel resolves ".." itself, inside the mount: "vol/dir/../.." is the mount root.
    assert sorted(os.listdir(colo.path(vol, "dir", "..", ".."))) == sorted(os.listdir(colo.root))


def test_statfs_and_mount_table(colo):
    st = os.statvfs(colo.root)
    assert st.f_flag & os.ST_RDONLY
    with open("/proc/self/mountinfo") as f:
        line = next(line for line in f if line.split(" ")[4] == colo.root)
    fields = line.split(" - ")[1].split()
    assert fields[0] in ("fuse", "fuse.colo") and fields[1] == "colo", line


def origin_counts(stderr, vol):
    """(GET, HEAD/stat, LIST) requests colo made to `vol`, from the summary it prints at unmount."""
    import re
    line = next(line for line in stderr.splitlines() if line.startswith(f"colo: origin {vol}:"))
    m = re.search(r"(\d+) GET \(\d+ bytes\), (\d+) HEAD/stat, (\d+) LIST", line)
    return tuple(int(x) for x in m.groups())


@pytest.mark.parametrize("vol", ["s3", "webdav", "ftp", "sftp"])
def test_ls_l_of_a_big_directory_is_one_listing(tmp_path, vol):
    from conftest import Colo, write_config
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        for _ in range(3):  # repeated within the TTL: answered from the listing cache
            out = subprocess.run(["ls", "-l", c.path(vol, "many")], check=True, capture_output=True, text=True).stdout
            assert len(out.splitlines()) == 101
    finally:
        err = c.stop()
    gets, heads, lists = origin_counts(err, vol)
    assert (gets, heads) == (0, 0), f"{vol}: ls -l must not touch files: {gets} GET, {heads} HEAD"
    assert lists <= 2, f"{vol}: one listing for the volume root and one for many/, got {lists}"
