"""Inodes live as long as the kernel references them (FUSE forget): a walk that stats every entry
of a 60,000-entry tree numbers them all; when the kernel drops its dentry and inode caches
(`/proc/sys/vm/drop_caches`, what memory pressure does) it forgets them, and colo's inode table
(`colo_fs_inodes` on /metrics) shrinks back to a handful, most of the memory the walk took is given
back, and a second walk does not grow what colo keeps."""
import os
import subprocess
import time
import urllib.request

from conftest import RUN, Colo, write_config

METRICS = "127.0.0.1:18777"
DIRS, FILES = 60, 1000


def inodes():
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10).read().decode()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("colo_fs_inodes "))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def walk_with_stat(root):
    """`find -printf %s` stats every entry: one lookup each."""
    out = subprocess.run(["find", root, "-printf", "%s\n"], check=True, capture_output=True, text=True)
    return len(out.stdout.splitlines())


def drop_kernel_caches(until):
    """Makes the kernel forget its dentries and inodes, then waits for colo to hear of it."""
    deadline = time.time() + 30
    while time.time() < deadline:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
        if until():
            return
        time.sleep(0.5)


def test_forgotten_inodes_leave_the_table(tmp_path):
    origin = os.path.join(RUN, "many-entries")
    if not os.path.exists(os.path.join(origin, f"d{DIRS - 1:02d}", f"f{FILES - 1:04d}")):
        for d in range(DIRS):
            os.makedirs(os.path.join(origin, f"d{d:02d}"), exist_ok=True)
            for i in range(FILES):
                open(os.path.join(origin, f"d{d:02d}", f"f{i:04d}"), "wb").close()
    cfg = str(tmp_path / "c.toml")
    write_config(cfg, f'\n[[volume]]\nname = "many"\nurl = "file://{origin}"\n', metrics_listen=METRICS)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        baseline = inodes()
        idle_rss = rss_kib(c.proc.pid)
        assert walk_with_stat(c.path("many")) == 1 + DIRS * (FILES + 1)
        walked = inodes()
        walked_rss = rss_kib(c.proc.pid)
        assert walked >= DIRS * FILES, walked
        drop_kernel_caches(until=lambda: inodes() < baseline + 100)
        assert inodes() < baseline + 100, (baseline, walked, inodes())
        time.sleep(1)  # jemalloc returns freed pages to the system after its 200 ms decay
        first_rss = rss_kib(c.proc.pid)
        # The memory goes too (the maps are shrunk): most of what the walk added is given back.
        assert first_rss - idle_rss < (walked_rss - idle_rss) / 2, (idle_rss, walked_rss, first_rss)

        # A second walk over the same tree (new numbers for every name) leaves no more behind.
        assert walk_with_stat(c.path("many")) == 1 + DIRS * (FILES + 1)
        drop_kernel_caches(until=lambda: inodes() < baseline + 100)
        assert inodes() < baseline + 100
        assert rss_kib(c.proc.pid) < first_rss + 8 * 1024, (first_rss, rss_kib(c.proc.pid))
    finally:
        c.stop()
