"""FUSE passthrough for warm reads (vfs/src/passthrough.rs): a file of a read-only volume read
whole once is copied whole in the cache, and the next open lets the kernel read that copy directly
— no FUSE reads, the origin's bytes. A partly cached file, a file changed at the origin and a file
already open the ordinary way are read the ordinary way (the kernel keeps one I/O mode per inode:
mixing them would fail the open with EIO); a file changed at the origin while a passed-through
handle is open is opened at the version being read until that handle closes (the kernel allows
one backing file per open inode), then at the new one — never a mix."""
import hashlib
import os
import time

from conftest import MUTABLE, Colo, metrics_at, write_config

METRICS = "127.0.0.1:18772"
READ_BYTES = "colo_fs_read_bytes_total"
PASSED = "colo_fs_opens_passthrough_total"
MADE = 'colo_cache_whole_files_total{event="made"}'
OLDER = "colo_fs_opens_passthrough_older_version_total"
DROPPED = "colo_fs_kernel_pages_dropped_total"


def metrics():
    return metrics_at(METRICS)


def drop_page_cache():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def until(what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return False


def rewrite(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.utime(path + ".tmp", (time.time() + 5, time.time() + 5))
    os.replace(path + ".tmp", path)


def test_wholly_cached_files_pass_through_and_stay_correct(tmp_path):
    folder = os.path.join(MUTABLE, "passthrough")
    os.makedirs(folder, exist_ok=True)
    cfg = str(tmp_path / "c.toml")
    extra = f'\n[[volume]]\nname = "pt"\nurl = "file://{folder}"\nmetadata_ttl_secs = 1\n'
    write_config(cfg, extra, metrics_listen=METRICS)
    whole = os.urandom((6 << 20) + 123)
    # Larger than the prefetch window reaches from a short read at its start.
    half = os.urandom(64 << 20)
    with open(os.path.join(folder, "whole.bin"), "wb") as f:
        f.write(whole)
    with open(os.path.join(folder, "half.bin"), "wb") as f:
        f.write(half)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        target = c.path("pt", "whole.bin")
        assert read_all(target) == whole  # cold: through colo, every block cached
        assert until(lambda: metrics().get(MADE, 0) >= 1), "no whole-file copy was made"
        # The kernel took the request to drop its pages of the file (its first passthrough open
        # would otherwise drop them inside the program's open).
        assert until(lambda: metrics().get(DROPPED, 0) >= 1), "the kernel's pages were not dropped"
        before = metrics()
        drop_page_cache()
        assert hashlib.sha256(read_all(target)).digest() == hashlib.sha256(whole).digest()
        after = metrics()
        assert after[PASSED] == before[PASSED] + 1, "the warm open did not pass through"
        # The kernel read the copy, not colo (a straggling read of the earlier handle may still
        # arrive: far less than the file).
        assert after[READ_BYTES] - before[READ_BYTES] < len(whole) // 8, (before[READ_BYTES], after[READ_BYTES])

        # Partly read: no copy, the ordinary way.
        with open(c.path("pt", "half.bin"), "rb") as f:
            assert f.read(1 << 20) == half[: 1 << 20]
        time.sleep(0.5)
        before = metrics()
        assert read_all(c.path("pt", "half.bin")) == half
        assert metrics()[PASSED] == before[PASSED]

        # A file open the ordinary way: a copy made meanwhile is not used by later opens until
        # it is closed (one I/O mode per inode), and every open reads the right bytes.
        held = open(c.path("pt", "half.bin"), "rb")
        assert held.read(10) == half[:10]
        assert until(lambda: metrics().get(MADE, 0) >= 2), "the copy of half.bin was not made"
        before = metrics()
        assert read_all(c.path("pt", "half.bin")) == half
        assert metrics()[PASSED] == before[PASSED], "passed through beside an ordinary handle"
        held.close()
        drop_page_cache()
        assert read_all(c.path("pt", "half.bin")) == half
        assert metrics()[PASSED] == before[PASSED] + 1

        # Changed at the origin while a passed-through handle is open: a new open reads the
        # version being read, whole; once that handle is closed, the new version.
        drop_page_cache()
        old = open(target, "rb")
        assert old.read(4096) == whole[:4096]
        new = os.urandom(len(whole))
        rewrite(os.path.join(folder, "whole.bin"), new)
        time.sleep(1.5)
        older = metrics()[OLDER]
        assert read_all(target) == whole
        assert metrics()[OLDER] == older + 1, "not counted as an open of the older version"
        assert old.read() == whole[4096:], "the open handle's version changed under it"
        old.close()
        before = metrics()
        drop_page_cache()
        assert read_all(target) == new
        after = metrics()
        assert after[PASSED] == before[PASSED], "the new version has no copy yet"
        assert after[READ_BYTES] - before[READ_BYTES] >= len(new), "read through colo"
    finally:
        c.stop()
