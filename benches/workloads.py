"""Science-shaped workloads on one mount (issue 5's bench rows), printed as JSON.

usage: workloads.py MOUNT_PREFIX [METRICS_URL]
MOUNT_PREFIX is where the bucket's `wl/` folder appears (e.g. /mnt/colo/s3/wl). Each row reports
the requests and bytes the S3 server saw for the bucket (SeaweedFS's own metrics, S3_METRICS_URL),
so every client is counted the same way; with METRICS_URL (colo's /metrics) also colo's own count.
Every "cold" row drops the kernel page cache first (root). ROWS=seq runs only the sequential (fio)
rows, for a local-disk copy of the files; ROWS=ls only the `ls -l` and `find` rows; ROWS=random only
the random-read rows.
"""
import json
import os
import random
import subprocess
import sys
import time
import urllib.request


def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def origin(url):
    if not url:
        return None
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {"get": 0, "head": 0, "list": 0, "bytes": 0, "passthrough_opens": 0}
    for line in text.splitlines():
        if line.startswith("colo_fs_opens_passthrough_total "):
            out["passthrough_opens"] = int(float(line.rsplit(" ", 1)[1]))
        if line.startswith("colo_origin_requests_total{"):
            kind = line.split('kind="')[1].split('"')[0]
            out[kind] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("colo_origin_bytes_total{"):
            out["bytes"] += int(float(line.rsplit(" ", 1)[1]))
    return out


SERVER_METRICS = os.environ.get("S3_METRICS_URL", "http://127.0.0.1:18335/metrics")
BUCKET = os.environ.get("S3_BUCKET", "colo-bench")
FIO_JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fio", "seq_read.fio")


def server():
    """Requests by type and bytes sent for BUCKET, as the S3 server counts them."""
    try:
        text = urllib.request.urlopen(SERVER_METRICS, timeout=10).read().decode()
    except OSError:
        return None
    out = {"srv_get": 0, "srv_head": 0, "srv_list": 0, "srv_other": 0, "srv_bytes": 0}
    for line in text.splitlines():
        if f'bucket="{BUCKET}"' not in line:
            continue
        value = int(float(line.rsplit(" ", 1)[1]))
        if line.startswith("SeaweedFS_s3_request_total{"):
            kind = "srv_" + line.split('type="')[1].split('"')[0].lower()
            out[kind if kind in out else "srv_other"] += value
        elif line.startswith("SeaweedFS_s3_bucket_traffic_sent_bytes_total{"):
            out["srv_bytes"] += value
    return out


def counters(url):
    out = {}
    for part in (origin(url), server()):
        out.update(part or {})
    return out


def timed(label, fn, url, results, drop=False):
    if drop:
        drop_caches()
    before = counters(url)
    t0 = time.perf_counter()
    detail = fn()
    seconds = time.perf_counter() - t0
    after = counters(url)
    row = {"row": label, "seconds": round(seconds, 3)}
    if detail:
        row.update(detail)
    row.update({k: after[k] - before[k] for k in after})
    results.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


def copy_events(url):
    """colo only: the whole-file copies it has made (for FUSE passthrough) and the files whose
    kernel pages it then had dropped, from its metrics (the sum: both follow a cold read)."""
    if not url:
        return None
    import urllib.request
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = None
    for line in text.splitlines():
        if line.startswith(('colo_cache_whole_files_total{event="made"}', "colo_fs_kernel_pages_dropped_total")):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def settle(url, before, timeout=60):
    """colo only: wait (at most `timeout` s) until the copy it makes of a file read whole is made
    and the kernel's pages of the file dropped, so the warm row measures what a later open gets.
    Peers have nothing to wait for."""
    deadline = time.time() + timeout
    while before is not None and time.time() < deadline and copy_events(url) < before + 2:
        time.sleep(0.5)


def fio_seq(path, jobs):
    """fio's sequential read of the 1 GiB file in `jobs` streams: MiB/s over the whole file."""
    size = os.path.getsize(path)
    env = dict(os.environ, FILE=path, JOBS=str(jobs), PART=str(size // jobs))
    out = subprocess.run(["fio", "--readonly", "--output-format=json", FIO_JOB], env=env, capture_output=True, text=True,
                         check=True)
    read = json.loads(out.stdout)["jobs"][0]["read"]
    assert read["io_bytes"] == size // jobs * jobs, f"fio read {read['io_bytes']} of {size} bytes"
    return {"mib_s": round(read["bw_bytes"] / 2**20)}


def fits_pass(prefix):
    from astropy.io import fits
    files = sorted(f for f in os.listdir(os.path.join(prefix, "fits")) if f.endswith(".fits"))
    total = 0.0
    for name in files:
        with fits.open(os.path.join(prefix, "fits", name), memmap=True) as h:
            assert h[0].header["NAXIS1"] == 512
            total += float(h[0].section[128:384, 128:384].sum())
    return {"files": len(files)}


def parquet_columns(prefix):
    import pyarrow.parquet as pq
    t = pq.read_table(os.path.join(prefix, "synthetic_18cols.parquet"), columns=["c02", "c11"])
    return {"rows": t.num_rows}


def ls_l(prefix):
    out = subprocess.run(["ls", "-l", os.path.join(prefix, "many")], capture_output=True, text=True, check=True)
    return {"entries": len(out.stdout.splitlines()) - 1}


def find_all(prefix):
    out = subprocess.run(["find", os.path.join(prefix, "many"), "-type", "f"], capture_output=True, text=True, check=True)
    return {"entries": len(out.stdout.splitlines())}


def random_reads(prefix, count=200, size=256 * 1024):
    path = os.path.join(prefix, "synthetic_256mib.bin")
    length = os.path.getsize(path)
    rng = random.Random(7)
    offsets = [rng.randrange(0, length - size) // 4096 * 4096 for _ in range(count)]
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offsets:
            assert len(os.pread(fd, size, off)) == size
    finally:
        os.close(fd)
    return {"mib": count * size / 2**20}


def main():
    prefix = sys.argv[1]
    url = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2].startswith("http") else None
    results = []
    if os.environ.get("ROWS") == "ls":
        timed("ls -l 10,000 entries (cold)", lambda: ls_l(prefix), url, results, drop=True)
        timed("ls -l 10,000 entries (warm)", lambda: ls_l(prefix), url, results)
        timed("find 10,000 entries (warm)", lambda: find_all(prefix), url, results)
        print(json.dumps(results))
        return
    if os.environ.get("ROWS") == "random":
        timed("random 256 KiB reads x200 (cold)", lambda: random_reads(prefix), url, results, drop=True)
        timed("random 256 KiB reads x200 (warm)", lambda: random_reads(prefix), url, results)
        print(json.dumps(results))
        return
    for jobs, name in [(1, "seq_1job.bin"), (4, "seq_4jobs.bin")]:
        path = os.path.join(prefix, name)
        made = copy_events(url)
        timed(f"sequential 1 GiB, fio {jobs} job(s) (cold)", lambda: fio_seq(path, jobs), url, results, drop=True)
        settle(url, made)
        timed(f"sequential 1 GiB, fio {jobs} job(s) (warm)", lambda: fio_seq(path, jobs), url, results)
    if os.environ.get("ROWS") == "seq":
        print(json.dumps(results))
        return
    timed("fits header + 256x256 section, 200 files, pass 1", lambda: fits_pass(prefix), url, results, drop=True)
    timed("fits header + 256x256 section, 200 files, pass 2", lambda: fits_pass(prefix), url, results)
    timed("parquet 2 of 18 columns (cold)", lambda: parquet_columns(prefix), url, results, drop=True)
    timed("ls -l 10,000 entries (cold)", lambda: ls_l(prefix), url, results, drop=True)
    timed("ls -l 10,000 entries (warm)", lambda: ls_l(prefix), url, results)
    timed("find 10,000 entries (warm)", lambda: find_all(prefix), url, results)
    timed("random 256 KiB reads x200 (cold)", lambda: random_reads(prefix), url, results, drop=True)
    timed("random 256 KiB reads x200 (warm)", lambda: random_reads(prefix), url, results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
