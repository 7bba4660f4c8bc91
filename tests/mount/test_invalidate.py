"""SIGHUP drops the metadata caches (colo's and the kernel's): on a volume with a long TTL, a file
added at the origin shows up right after `kill -HUP`, not an hour later — also when a program had
looked for it before, so the kernel remembered its absence (a negative entry)."""
import os
import signal
import time
import uuid

from conftest import RUN, Colo, metrics_at, write_config

METRICS = "127.0.0.1:18778"
LOOKUPS = 'colo_fs_operation_seconds_count{op="lookup"}'


def test_sighup_makes_new_files_visible(tmp_path):
    origin = os.path.join(RUN, f"archive-{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(origin, "dr1"))
    open(os.path.join(origin, "dr1", "a.fits"), "wb").write(b"a" * 100)
    cfg = str(tmp_path / "c.toml")
    write_config(cfg, f'\n[[volume]]\nname = "archive"\nurl = "file://{origin}"\nmetadata_ttl_secs = 3600\n',
                 metrics_listen=METRICS)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        folder = c.path("archive", "dr1")
        assert os.listdir(folder) == ["a.fits"]
        assert os.stat(os.path.join(folder, "a.fits")).st_size == 100
        # A name the listing does not have: asked once, then the kernel remembers it is absent.
        before = metrics_at(METRICS)[LOOKUPS]
        for _ in range(5):
            assert not os.path.exists(os.path.join(folder, "b.fits"))
        assert metrics_at(METRICS)[LOOKUPS] - before == 1
        open(os.path.join(origin, "dr1", "b.fits"), "wb").write(b"b" * 10)
        open(os.path.join(origin, "dr1", "a.fits"), "ab").write(b"more")
        time.sleep(0.5)
        assert os.listdir(folder) == ["a.fits"], "an archive volume trusts its listing for the TTL"
        assert not os.path.exists(os.path.join(folder, "b.fits")), "and so does the kernel"
        c.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and sorted(os.listdir(folder)) != ["a.fits", "b.fits"]:
            time.sleep(0.1)
        assert sorted(os.listdir(folder)) == ["a.fits", "b.fits"]
        assert os.path.exists(os.path.join(folder, "b.fits")), "the kernel forgot the absence too"
        assert os.stat(os.path.join(folder, "a.fits")).st_size == 104
        assert open(os.path.join(folder, "b.fits"), "rb").read() == b"b" * 10
    finally:
        err = c.stop()
    assert "SIGHUP: metadata caches dropped" in err
