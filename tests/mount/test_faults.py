"""Faults: an origin that dies mid-read, a corrupted cache block, a file changed at the origin, a
crashed mount left behind, a busy mount root."""
import errno
import glob
import os
import signal
import struct
import subprocess
import time
import zlib

import pytest
from conftest import BIN, FIX, MUTABLE, RUN, Colo, mounted, servers, write_config


def test_s3_down_mid_read_gives_eio_then_recovers(colo):
    rel = "big/eight_mib.bin"
    src = open(os.path.join(FIX, rel), "rb").read()
    with open(colo.path("s3-fault", rel), "rb") as f:
        assert f.read(65536) == src[:65536]
        servers("kill", "s3")
        try:
            f.seek(6 * 1024 * 1024)
            with pytest.raises(OSError) as e:
                f.read(65536)
            assert e.value.errno == errno.EIO
            # The mount stays up: other volumes and cached data still read.
            assert open(colo.path("local", "one.txt"), "rb").read() == open(os.path.join(FIX, "one.txt"), "rb").read()
            f.seek(0)
            assert f.read(4096) == src[:4096]
        finally:
            servers("start", "s3")
        # The origin is back: the same handle reads again, correct bytes.
        f.seek(6 * 1024 * 1024)
        assert f.read(65536) == src[6 * 1024 * 1024:6 * 1024 * 1024 + 65536]
    subprocess.run(["cmp", os.path.join(FIX, rel), colo.path("s3-fault", rel)], check=True)


def block_files(cache):
    return sorted(glob.glob(os.path.join(cache, "blocks", "*", "*", "*")))


def block_valid(path):
    raw = open(path, "rb").read()
    magic, klen, dlen, dcrc, hcrc = struct.unpack("<8sIIII", raw[:24])
    data = raw[24 + klen:]
    return magic == b"COLOBLK1" and len(data) == dlen and zlib.crc32(data) == dcrc


def test_corrupted_disk_block_is_refetched_never_served(tmp_path):
    cfg = str(tmp_path / "c.toml")
    cache = write_config(cfg, memory_mib=0)  # no memory tier: reads go to the disk tier
    # No whole-file copy either (FUSE passthrough would serve the second read from it, never
    # touching the blocks; copies are tested in test_passthrough.py).
    text = open(cfg).read().replace("[cache]\n", "[cache]\npassthrough = false\n", 1)
    open(cfg, "w").write(text)
    root = str(tmp_path / "mnt")
    c = Colo(cfg, root)
    try:
        rel = "several_blocks.bin"
        src = open(os.path.join(FIX, rel), "rb").read()
        assert open(c.path("s3", rel), "rb").read() == src
        # Disk writes finish in the background, just after the read.
        deadline = time.time() + 10
        while time.time() < deadline and len(block_files(cache)) < 4:
            time.sleep(0.1)
        time.sleep(0.5)
        blocks = block_files(cache)
        assert len(blocks) >= 4 and all(block_valid(b) for b in blocks)
        victim = max(blocks, key=os.path.getsize)
        with open(victim, "r+b") as f:
            f.seek(-1000, os.SEEK_END)
            byte = f.read(1)
            f.seek(-1000, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
        assert not block_valid(victim)
        # The file is unchanged, so colo lets the kernel keep its pages across opens: drop them,
        # so that this read reaches colo and its disk tier.
        with open(c.path("s3", rel), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        assert open(c.path("s3", rel), "rb").read() == src
        deadline = time.time() + 10
        while time.time() < deadline and not (os.path.exists(victim) and block_valid(victim)):
            time.sleep(0.1)
        assert os.path.exists(victim) and block_valid(victim), "the bad block was fetched again and rewritten"
    finally:
        err = c.stop()
    assert "disk hits" in err


def test_disk_cache_survives_a_restart(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg, memory_mib=0)
    root = str(tmp_path / "mnt")
    rel = "block_plus_7.bin"
    c = Colo(cfg, root)
    open(c.path("webdav", rel), "rb").read()
    c.stop(signal.SIGINT)  # Ctrl-C unmounts cleanly too
    assert not mounted(root)
    c = Colo(cfg, root)
    try:
        assert open(c.path("webdav", rel), "rb").read() == open(os.path.join(FIX, rel), "rb").read()
    finally:
        err = c.stop()
    line = next(line for line in err.splitlines() if line.startswith("colo: origin webdav:"))
    assert line.startswith("colo: origin webdav: 0 GET"), f"second run must read from the disk cache: {line}"


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def test_local_file_changed_at_origin_is_new_after_ttl_never_mixed(colo):
    path = os.path.join(MUTABLE, "changing.bin")
    size = 3 * 1024 * 1024 + 5
    with open(path, "wb") as f:
        f.write(b"a" * size)
    assert read_all(colo.path("mut-local", "changing.bin")) == b"a" * size
    with open(path + ".tmp", "wb") as f:
        f.write(b"b" * size)
    os.utime(path + ".tmp", (time.time() + 5, time.time() + 5))
    os.replace(path + ".tmp", path)
    deadline = time.time() + 3
    seen = set()
    while time.time() < deadline:
        data = read_all(colo.path("mut-local", "changing.bin"))
        assert data in (b"a" * size, b"b" * size), "a read mixed two versions"
        seen.add(data[:1])
        time.sleep(0.1)
    assert read_all(colo.path("mut-local", "changing.bin")) == b"b" * size
    assert b"b" in seen


def test_s3_object_changed_at_origin_is_new_after_ttl(colo, s3, tmp_path):
    try:
        s3.create_bucket(Bucket="colo-mutable")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    size = 2 * 1024 * 1024 + 11
    s3.put_object(Bucket="colo-mutable", Key="obj.bin", Body=b"1" * size)
    time.sleep(1.2)
    assert read_all(colo.path("mut-s3", "obj.bin")) == b"1" * size
    s3.put_object(Bucket="colo-mutable", Key="obj.bin", Body=b"2" * size)
    time.sleep(1.5)
    assert read_all(colo.path("mut-s3", "obj.bin")) == b"2" * size


def test_a_stale_mount_from_a_crashed_run_is_cleaned_up(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    root = str(tmp_path / "mnt")
    c = Colo(cfg, root)
    os.stat(root)  # the kernel now holds the root's attributes: `stat` alone cannot tell it is dead
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait()
    assert mounted(root)
    os.stat(root)
    with pytest.raises(OSError) as e:
        os.listdir(root)
    assert e.value.errno == errno.ENOTCONN
    c = Colo(cfg, root)  # must detect the stale mount and take over
    try:
        assert "local" in os.listdir(root)
    finally:
        c.stop()
    assert not mounted(root)


def test_a_busy_mount_root_is_refused(colo, tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    p = subprocess.run([BIN, "mount", "--config", cfg, "--root", colo.root], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "busy" in p.stderr and colo.root in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert os.listdir(colo.root), "the running mount is untouched"
