"""Faults of the disk under colo's cache directory (issue 16): a full disk, and a power loss.

Full disk: the cache lives on a small tmpfs and the S3 origin is stopped, so staged files pile up
until a write fails with ENOSPC; what was written before stays readable, and every file closed
before goes up once the origin is back, after which writes succeed again.

Power loss: the cache lives on LazyFS, a
FUSE file system that keeps written data in its own page cache until `fsync` and on command drops
every byte that was not fsynced — what a machine's crash does to a local disk's page cache.

With the S3 origin stopped, programs write files through colo: some fsynced, some only closed (each
followed by an fsync of another file, so the journal's record of the closed one is on disk while its
staged bytes are not: the case a power loss makes), a rewrite of a file already at the origin, a
rename. Then colo is killed, LazyFS drops what was not fsynced and is remounted (the reboot), the
origin comes back and colo starts again. Every fsynced file must be at the origin byte for byte
(rclone's write-back loses all of them in this test: its records are written without fsync); a
file only closed is either absent or complete, never torn, and each one lost is counted in
`colo_write_lost_total`; the earlier origin version of the rewritten file is never replaced by a
torn one.
"""
import errno
import os
import signal
import subprocess
import time
import urllib.request
import uuid

from conftest import BIN, RUN, mounted, servers
from test_write import origin_read, payload, start, wait_at_origin

TOOLS = os.path.join(os.environ.get("COLO_CACHE", os.path.expanduser("~/.cache/colo")), "tools")
LAZYFS = os.path.join(TOOLS, "lazyfs", "lazyfs", "build", "lazyfs")


class LazyFS:
    """A LazyFS mount of `root` at `mnt`, cut with `clear_cache()`."""

    def __init__(self, base):
        self.root, self.mnt = os.path.join(base, "root"), os.path.join(base, "mnt")
        self.fifo, self.cfg = os.path.join(base, "faults.fifo"), os.path.join(base, "lazyfs.toml")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        with open(self.cfg, "w") as f:
            f.write(f'[faults]\nfifo_path="{self.fifo}"\n[cache]\napply_eviction=false\n'
                    f'[cache.simple]\ncustom_size="1gb"\nblocks_per_page=1\n'
                    f'[filesystem]\nlog_all_operations=false\nlogfile=""\n')
        self.mount()

    def mount(self):
        self.log = open(self.cfg + ".log", "a")
        self.proc = subprocess.Popen(
            [LAZYFS, self.mnt, "--config-path", self.cfg, "-o", "allow_other",
             "-o", "modules=subdir", "-o", f"subdir={self.root}", "-f"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not mounted(self.mnt):
            assert self.proc.poll() is None and time.time() < deadline, \
                f"LazyFS did not mount: {open(self.cfg + '.log').read()[-2000:]}"
            time.sleep(0.1)

    def clear_cache(self):
        """The power cut: every byte not fsynced is gone."""
        with open(self.fifo, "w") as f:
            f.write("lazyfs::clear-cache\n")
        deadline = time.time() + 30
        while "cache is cleared" not in open(self.cfg + ".log").read():
            assert time.time() < deadline, "LazyFS did not clear its cache"
            time.sleep(0.1)

    def unmount(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def write(path, data, fsync):
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def metric(url, name):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(name + "{") and 'volume="s3"' in line)


def test_fsynced_files_survive_a_power_loss_and_nothing_torn_reaches_the_origin():
    assert os.path.exists(LAZYFS), f"{LAZYFS} missing: scripts/setup.sh test builds it"
    base = os.path.join(RUN, f"lazyfs-{uuid.uuid4().hex[:8]}")
    lazy = LazyFS(base)
    cache_dir = os.path.join(lazy.mnt, "cache")
    c = c2 = None
    top = f"p-{uuid.uuid4().hex[:8]}"
    old = payload(300_000, "old version")
    try:
        c, _ = start(cache_dir, root="mnt-power", cache_extra="fsync_wait_secs = 0\n")
        os.mkdir(c.path("s3", top))
        write(c.path("s3", top, "old.bin"), old, fsync=True)
        wait_at_origin("s3", f"{top}/old.bin", old)
        servers("stop", "s3")
        synced, closed = {}, {}
        write(c.path("s3", top, "old.bin"), payload(310_000, "new version"), fsync=False)
        closed["old.bin"] = payload(310_000, "new version")
        for i in range(30):
            name = f"closed{i}.bin"
            closed[name] = payload(20_000 + 997 * i, name)
            write(c.path("s3", top, name), closed[name], fsync=False)
            name = f"synced{i}.bin"
            synced[name] = payload(30_000 + 1009 * i, name)
            write(c.path("s3", top, name), synced[name], fsync=True)
        synced["big.bin"] = payload(24 << 20, "big")
        write(c.path("s3", top, "big.bin"), synced["big.bin"], fsync=True)
        # A rename of a fsynced file, made durable by a later fsync of another file.
        os.replace(c.path("s3", top, "synced0.bin"), c.path("s3", top, "renamed.bin"))
        synced["renamed.bin"] = synced.pop("synced0.bin")
        synced["last.bin"] = b"the last fsync"
        write(c.path("s3", top, "last.bin"), synced["last.bin"], fsync=True)
        # The cut: colo dies, the disk loses its page cache, the machine comes back.
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        subprocess.run(["fusermount3", "-uz", c.root], check=False)
        lazy.clear_cache()
        lazy.unmount()
        lazy.mount()
        servers("start", "s3")
        assert origin_read("s3", f"{top}/synced1.bin") is None, "nothing reached the stopped origin"
        c2, _ = start(cache_dir, root="mnt-power")
        for name, data in synced.items():
            wait_at_origin("s3", f"{top}/{name}", data, timeout=90)
        assert origin_read("s3", f"{top}/synced0.bin") is None, "the renamed file's old name"
        deadline = time.time() + 60
        while metric(c2.metrics_url, "colo_write_pending_changes") > 0:
            if time.time() >= deadline:
                status = subprocess.run([BIN, "status", "--url", c2.metrics_url],
                                        capture_output=True, text=True).stdout
                raise AssertionError(f"changes still pending after the restart:\n{status}")
            time.sleep(0.5)
        lost = 0
        for name, data in closed.items():
            got = origin_read("s3", f"{top}/{name}")
            if name == "old.bin":
                assert got in (old, data), f"old.bin at the origin: {len(got)} bytes, torn"
                lost += got == old
            else:
                assert got in (None, data), f"{name} at the origin: {len(got)} bytes, torn"
                lost += got is None
        # LazyFS dropped every staged copy that was never fsynced, while the fsyncs after them
        # put their records on disk: each such change is dropped at start and counted.
        print(f"power cut: {len(synced)} fsynced files all at the origin; of {len(closed)} only "
              f"closed, {lost} lost (counted), {len(closed) - lost} complete, none torn")
        assert lost > 0, "the cut took nothing: the test did not make the case it is about"
        assert metric(c2.metrics_url, "colo_write_lost_total") == lost
        # `colo status` says it too, with the last such file as the volume's last error.
        status = subprocess.run([BIN, "status", "--url", c2.metrics_url], capture_output=True,
                                text=True, check=True).stdout
        header = status.splitlines()[0].split()
        row = next(l for l in status.splitlines() if l.startswith("s3 ")).split()
        assert int(row[header.index("LOST")]) == lost, status
        assert "lost in a power loss before it was fsynced" in status, status
        listed = set(os.listdir(c2.path("s3", top)))
        assert set(synced) <= listed and "synced0.bin" not in listed, sorted(listed)
    finally:
        for proc in (c, c2):
            if proc is not None and proc.proc.poll() is None:
                proc.stop()
        servers("start", "s3")
        if mounted(lazy.mnt):
            lazy.unmount()


def test_a_full_cache_disk_gives_enospc_and_loses_nothing_written_before():
    base = os.path.join(RUN, f"full-{uuid.uuid4().hex[:8]}")
    os.makedirs(base)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", base], check=True)
    c = None
    top = f"n-{uuid.uuid4().hex[:8]}"
    try:
        c, _ = start(os.path.join(base, "cache"), root="mnt-full",
                     cache_extra="fsync_wait_secs = 0\n", disk_gib=0.01)
        os.mkdir(c.path("s3", top))
        servers("stop", "s3")
        written, failed = {}, None
        for i in range(40):
            name, data = f"f{i}.bin", payload(3 << 20, f"full{i}")
            try:
                fd = os.open(c.path("s3", top, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    for at in range(0, len(data), 1 << 20):
                        os.write(fd, data[at:at + (1 << 20)])
                finally:
                    os.close(fd)
            except OSError as e:
                failed = (name, data, e)
                break
            written[name] = data
        assert failed is not None, "40 files of 3 MiB fit on a 40 MiB disk?"
        assert failed[2].errno == errno.ENOSPC, failed[2]
        assert len(written) >= 5, len(written)
        for name, data in written.items():
            with open(c.path("s3", top, name), "rb") as f:
                assert f.read() == data, f"{name} read back after the disk filled"
        servers("start", "s3")
        for name, data in written.items():
            wait_at_origin("s3", f"{top}/{name}", data, timeout=90)
        name, data, _ = failed
        deadline = time.time() + 60
        while metric(c.metrics_url, "colo_write_pending_changes") > 0:
            assert time.time() < deadline, "changes still pending after the origin came back"
            time.sleep(0.5)
        got = origin_read("s3", f"{top}/{name}")
        assert got is None or data.startswith(got), f"{name}: not a prefix of what was written"
        # The uploads freed the staging disk: writing works again.
        write(c.path("s3", top, "after.bin"), payload(3 << 20, "after"), fsync=False)
        wait_at_origin("s3", f"{top}/after.bin", payload(3 << 20, "after"), timeout=60)
    finally:
        if c is not None and c.proc.poll() is None:
            c.stop()
        servers("start", "s3")
        subprocess.run(["umount", "-l", base], check=False)
