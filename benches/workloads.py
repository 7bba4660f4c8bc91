"""Science-shaped workloads on one mount (issue 5's bench rows), printed as JSON.

usage: workloads.py MOUNT_PREFIX [METRICS_URL] [--drop-caches]
MOUNT_PREFIX is where the bucket's `wl/` folder appears (e.g. /mnt/colo/s3/wl). With METRICS_URL
(colo's /metrics) each row also reports colo's origin requests (GET/HEAD/LIST) and bytes.
Every "cold" row drops the kernel page cache first (root).
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
    out = {"get": 0, "head": 0, "list": 0, "bytes": 0}
    for line in text.splitlines():
        if line.startswith("colo_origin_requests_total{"):
            kind = line.split('kind="')[1].split('"')[0]
            out[kind] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("colo_origin_bytes_total{"):
            out["bytes"] += int(float(line.rsplit(" ", 1)[1]))
    return out


def timed(label, fn, url, results, drop=False):
    if drop:
        drop_caches()
    before = origin(url)
    t0 = time.perf_counter()
    detail = fn()
    seconds = time.perf_counter() - t0
    after = origin(url)
    row = {"row": label, "seconds": round(seconds, 3)}
    if detail:
        row.update(detail)
    if before is not None:
        row.update({k: after[k] - before[k] for k in after})
    results.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


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
