"""TAP latency and throughput of two services on the same catalogue, in one run: sync small query,
cone searches (r = 0.05, 0.5, 2 deg), async job overhead (create with PHASE=RUN, WAIT, fetch), and a
1M-row BINARY2 download. Prints a table with medians and the ratio peer/colo (>1: colo faster).

usage: tap_bench.py NAME=URL:TABLE NAME=URL:TABLE [--repeat N]
"""
import random
import statistics
import sys
import time

import requests


def parse_target(arg):
    name, rest = arg.split("=", 1)
    url, table = rest.rsplit(":", 1)
    return name, url.rstrip("/"), table


def sync(url, query, fmt="votable", maxrec=None):
    data = {"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": query, "RESPONSEFORMAT": fmt}
    if maxrec is not None:
        data["MAXREC"] = str(maxrec)
    t0 = time.perf_counter()
    r = requests.post(url + "/sync", data=data, stream=True, timeout=600)
    size = sum(len(chunk) for chunk in r.iter_content(1 << 20))
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {query}")
    return elapsed, size


def async_job(url, query):
    t0 = time.perf_counter()
    r = requests.post(url + "/async", data={"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": query, "PHASE": "RUN"},
                      allow_redirects=False, timeout=60)
    job = r.headers["Location"]
    if "PHASE=RUN" and requests.get(job + "/phase", timeout=60).text.strip() == "PENDING":
        requests.post(job + "/phase", data={"PHASE": "RUN"}, allow_redirects=False, timeout=60)
    while True:
        phase = requests.get(job + "/phase", timeout=60).text.strip()
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
        requests.get(job, params={"WAIT": "5", "PHASE": phase}, timeout=60)
    if phase != "COMPLETED":
        raise RuntimeError(f"{url}: job {phase}")
    requests.get(job + "/results/result", timeout=60).content
    elapsed = time.perf_counter() - t0
    requests.delete(job, allow_redirects=False, timeout=60)
    return elapsed


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeat = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--repeat=")), "7"))
    targets = [parse_target(a) for a in args]
    rng = random.Random(42)
    positions = [(rng.uniform(0, 360), rng.uniform(-60, 60)) for _ in range(repeat)]
    rows = []

    def measure(label, fn):
        results = {}
        for name, url, table in targets:
            fn(url, table, positions[0])  # warm-up
            times = [fn(url, table, p) for p in positions]
            results[name] = statistics.median(times)
        rows.append((label, results))
        print(f"{label:<32}" + "".join(f"{results[n]*1000:>12.1f} ms" for n, _, _ in targets), flush=True)

    print(f"{'':<32}" + "".join(f"{n:>15}" for n, _, _ in targets))
    measure("sync small query (TOP 10)", lambda u, t, p: sync(u, f"SELECT TOP 10 source_id, ra, dec FROM {t} WHERE phot_g_mean_mag < 5")[0])
    for radius in (0.05, 0.5, 2.0):
        measure(f"cone r={radius} deg", lambda u, t, p, r=radius: sync(
            u, f"SELECT source_id, ra, dec, phot_g_mean_mag FROM {t} WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
               f"CIRCLE('ICRS', {p[0]:.4f}, {p[1]:.4f}, {r}))", maxrec=1000000)[0])
    measure("async job (create+run+fetch)", lambda u, t, p: async_job(u, f"SELECT TOP 1 source_id FROM {t}"))
    big = {}
    for name, url, table in targets:
        query = (f"SELECT TOP 1000000 a.source_id, a.ra, a.dec, a.phot_g_mean_mag FROM {table} AS a, "
                 f"(SELECT TOP 3 source_id FROM {table}) AS b")
        elapsed, size = sync(url, query, fmt="votable/b2", maxrec=1000000)
        big[name] = elapsed
        print(f"{'1M rows BINARY2 (' + name + ')':<32}{elapsed:>10.2f} s {size / elapsed / 1e6:>8.1f} MB/s", flush=True)
    rows.append(("1M rows BINARY2", big))
    base = targets[0][0]
    print()
    print("| measurement | " + " | ".join(n for n, _, _ in targets) + " | " +
          " | ".join(f"{n}/{base}" for n, _, _ in targets[1:]) + " |")
    print("|---" * (1 + 2 * len(targets) - 1) + "|")
    for label, results in rows:
        cells = [f"{results[n]*1000:.1f} ms" if results[n] < 10 else f"{results[n]:.1f} s" for n, _, _ in targets]
        ratios = [f"{results[n] / results[base]:.1f}×" for n, _, _ in targets[1:]]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
