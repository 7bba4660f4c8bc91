"""The metrics endpoint and `colo stats`, and what they show: re-opening an unchanged file keeps the
kernel's page cache (no FUSE reads, no origin requests), a changed file is read anew, and `ls -l`
repeated within the TTL reaches neither the origin nor colo's listing code."""
import os
import subprocess
import time

from conftest import BIN, MUTABLE, RUN, Colo, metrics_at, write_config

METRICS = "127.0.0.1:18771"


def metrics():
    return metrics_at(METRICS)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def test_page_cache_is_reused_until_the_file_changes(tmp_path):
    cfg = str(tmp_path / "c.toml")
    extra = f'\n[[volume]]\nname = "pc-local"\nurl = "file://{MUTABLE}"\nmetadata_ttl_secs = 1\n'
    write_config(cfg, extra, metrics_listen=METRICS)
    path = os.path.join(MUTABLE, "pagecache.bin")
    size = 4 * 1024 * 1024 + 3
    with open(path, "wb") as f:
        f.write(b"x" * size)
    with open(os.path.join(MUTABLE, "prefetch_waste.bin"), "wb") as f:
        f.write(os.urandom(32 << 20))
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        target = c.path("pc-local", "pagecache.bin")
        assert read_all(target) == b"x" * size
        before = metrics()
        assert before['colo_fs_operation_seconds_count{op="read"}'] > 0
        assert before['colo_origin_requests_total{volume="pc-local",kind="get"}'] > 0
        # The sequential read was prefetched, and every prefetched byte was then read.
        assert before['colo_prefetch_bytes_total{volume="pc-local"}'] >= 1 << 20
        assert before['colo_prefetch_unread_bytes{volume="pc-local"}'] == 0
        assert read_all(target) == b"x" * size  # second open: the file has not changed
        after = metrics()
        assert after['colo_fs_operation_seconds_count{op="read"}'] == before['colo_fs_operation_seconds_count{op="read"}']
        assert after['colo_origin_requests_total{volume="pc-local",kind="get"}'] == before['colo_origin_requests_total{volume="pc-local",kind="get"}']
        assert after["colo_fs_opens_keep_page_cache_total"] >= 1
        with open(path + ".tmp", "wb") as f:
            f.write(b"y" * size)
        os.utime(path + ".tmp", (time.time() + 5, time.time() + 5))
        os.replace(path + ".tmp", path)
        time.sleep(1.5)
        assert read_all(target) == b"y" * size, "a changed file must not come from stale pages"
        assert metrics()['colo_fs_operation_seconds_count{op="read"}'] > after['colo_fs_operation_seconds_count{op="read"}']
        out = subprocess.run([BIN, "stats", "--url", f"http://{METRICS}/metrics"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert 'colo_origin_requests_total{volume="pc-local",kind="get"}' in out.stdout
        # A reader that stops early leaves prefetched bytes unread, and the gauge shows them.
        m0 = metrics()
        with open(c.path("pc-local", "prefetch_waste.bin"), "rb") as f:
            for _ in range(12):
                f.read(128 << 10)
            time.sleep(0.5)  # prefetches finish in the background
            m1 = metrics()
        fetched = m1['colo_prefetch_bytes_total{volume="pc-local"}'] - m0['colo_prefetch_bytes_total{volume="pc-local"}']
        wasted = m1['colo_prefetch_unread_bytes{volume="pc-local"}'] - m0['colo_prefetch_unread_bytes{volume="pc-local"}']
        read = m1["colo_fs_read_bytes_total"] - m0["colo_fs_read_bytes_total"]
        assert wasted >= 512 << 10, (fetched, wasted, read)
    finally:
        c.stop()


def test_stats_without_a_running_colo_says_what_to_do():
    out = subprocess.run([BIN, "stats", "--url", "http://127.0.0.1:1/metrics"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "no colo metrics at http://127.0.0.1:1/metrics" in out.stderr
