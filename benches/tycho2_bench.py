"""TAP at archive scale, colo against DaCHS on Tycho-2 (1,871,011 stars), in one run: a sync small
query; cones of r = 0.05, 0.5 and 2 deg on colo's local table, on the same table read from S3
(SeaweedFS) through colo's cache (warm: each position asked once before it is timed, as for DaCHS),
and on DaCHS; upload crossmatches of 1,000 and 100,000 positions (5 arcsec) as async jobs. Rows are compared
between the services (a benchmark of wrong answers is no benchmark). Prints medians and the ratio
DaCHS / colo (>1: colo faster).

usage: tycho2_bench.py NAME=URL:TABLE ... [--repeat N]   (the first target is the baseline)
"""
import io
import random
import statistics
import sys
import time

import numpy as np
import requests
from astropy.io.votable import from_table, writeto
from astropy.table import Table


def parse_target(arg):
    name, rest = arg.split("=", 1)
    url, table = rest.rsplit(":", 1)
    return name, url.rstrip("/"), table


def post(url, data, files=None):
    t0 = time.perf_counter()
    r = requests.post(url + "/sync", data=data, files=files, timeout=3600)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200 or "QUERY_STATUS\" value=\"ERROR" in r.text[-2000:]:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[-500:]}")
    return elapsed, r.text


def csv_rows(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) - 1


def sync(url, query, maxrec=2_000_000):
    data = {"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": query, "RESPONSEFORMAT": "csv",
            "MAXREC": str(maxrec)}
    elapsed, text = post(url, data)
    return elapsed, csv_rows(text)


def targets_votable(positions):
    table = Table({"id": np.arange(len(positions), dtype=np.int64),
                   "ra": positions[:, 0], "dec": positions[:, 1]})
    out = io.BytesIO()
    writeto(from_table(table), out, tabledata_format="binary2")
    return out.getvalue()


def upload_xmatch(url, table, votable):
    query = (f"SELECT u.id, t.source_id FROM TAP_UPLOAD.targets AS u JOIN {table} AS t "
             f"ON 1=CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, 5.0/3600))")
    data = {"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": query, "RESPONSEFORMAT": "csv",
            "MAXREC": "2000000", "UPLOAD": "targets,param:targets"}
    elapsed, text = run_async(url, data, files={"targets": ("targets.vot", votable)})
    return elapsed, csv_rows(text)


def run_async(url, data, files):
    """An async (UWS) job from submission to its fetched result. DaCHS takes uploads only in async
    jobs ("Would only accept 0 bytes of upload" in sync), so both services are timed this way, with
    the same tight polling of the phase (every 5 ms) so that neither waits on a client's backoff."""
    t0 = time.perf_counter()
    r = requests.post(url + "/async", data=data, files=files, timeout=3600, allow_redirects=False)
    if r.status_code not in (200, 303):
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[-500:]}")
    job = r.headers["Location"] if r.status_code == 303 else r.url
    session = requests.Session()
    # PHASE=RUN in a multipart creation request is ignored by DaCHS: start the job as pyvo does.
    session.post(job + "/phase", data={"PHASE": "RUN"}, allow_redirects=False, timeout=60)
    while True:
        phase = session.get(job + "/phase", timeout=60).text.strip()
        if phase == "COMPLETED":
            break
        if phase in ("ERROR", "ABORTED"):
            raise RuntimeError(f"{url}: job {phase}: {session.get(job + '/error').text[-500:]}")
        time.sleep(0.005)
    text = session.get(job + "/results/result", timeout=3600).text
    elapsed = time.perf_counter() - t0
    session.delete(job)
    return elapsed, text


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeat = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--repeat=")), "7"))
    targets = [parse_target(a) for a in args]
    names = [n for n, _, _ in targets]
    rng = random.Random(42)
    positions = [(rng.uniform(0, 360), rng.uniform(-60, 60)) for _ in range(repeat)]
    rows = []

    def record(label, results, counts):
        if len(set(counts.values())) > 1:
            raise SystemExit(f"{label}: the services disagree on the rows: {counts}")
        rows.append((label, results, next(iter(counts.values()))))
        print(f"{label:<34}" + "".join(f"{results[n] * 1000:>12.1f} ms" for n in names)
              + f"   rows {next(iter(counts.values()))}", flush=True)

    def measure(label, query_of):
        results, counts = {}, {}
        for name, url, table in targets:
            for p in positions:  # warm: every query once before it is timed
                sync(url, query_of(table, p))
            timed = [sync(url, query_of(table, p)) for p in positions]
            results[name] = statistics.median(t for t, _ in timed)
            counts[name] = sum(n for _, n in timed)
        record(label, results, counts)

    print(f"{'':<34}" + "".join(f"{n:>15}" for n in names))
    measure("sync small query (TOP 10)",
            lambda t, p: f"SELECT TOP 10 source_id, ra, dec FROM {t} WHERE vt_mag < 3 ORDER BY source_id")
    for radius in (0.05, 0.5, 2.0):
        measure(f"cone r={radius} deg", lambda t, p, r=radius: (
            f"SELECT source_id, ra, dec, vt_mag FROM {t} WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {p[0]:.4f}, {p[1]:.4f}, {r}))"))

    # An async job without an upload: the UWS overhead both services add to the crossmatches below.
    results, counts = {}, {}
    for name, url, table in targets:
        data = {"LANG": "ADQL", "REQUEST": "doQuery", "RESPONSEFORMAT": "csv",
                "QUERY": f"SELECT TOP 1 source_id FROM {table} WHERE vt_mag < 3 ORDER BY source_id"}
        run_async(url, data, None)
        timed = [run_async(url, data, None) for _ in range(3)]
        results[name] = statistics.median(t for t, _ in timed)
        counts[name] = csv_rows(timed[0][1])
    record("async job overhead (TOP 1)", results, counts)

    # Upload crossmatches: positions a few arcsec from random stars, a tenth anywhere on the sky.
    first_url, first_table = targets[0][1], targets[0][2]
    stars = sync_positions(first_url, first_table)
    for n in (1_000, 100_000):
        gen = np.random.default_rng(n)
        picks = gen.integers(0, len(stars), n)
        offset = gen.uniform(0, 8, n) / 3600
        angle = gen.uniform(0, 2 * np.pi, n)
        dec = np.clip(stars[picks, 1] + offset * np.sin(angle), -89.9, 89.9)
        ra = (stars[picks, 0] + offset * np.cos(angle) / np.cos(np.radians(dec))) % 360
        anywhere = gen.random(n) < 0.1
        ra[anywhere] = gen.uniform(0, 360, anywhere.sum())
        dec[anywhere] = np.degrees(np.arcsin(gen.uniform(-1, 1, anywhere.sum())))
        votable = targets_votable(np.column_stack([ra, dec]))
        runs = 3 if n <= 1_000 else 1
        results, counts = {}, {}
        for name, url, table in targets:
            upload_xmatch(url, table, votable)  # warm
            timed = [upload_xmatch(url, table, votable) for _ in range(runs)]
            results[name] = statistics.median(t for t, _ in timed)
            counts[name] = timed[0][1]
        record(f"upload crossmatch {n:,} positions", results, counts)

    base = names[0]
    print()
    print("| measurement | " + " | ".join(names) + " | "
          + " | ".join(f"{n}/{base}" for n in names[1:]) + " | rows |")
    print("|---" * (2 + 2 * len(names) - 1) + "|")
    for label, results, count in rows:
        cells = [f"{results[n] * 1000:.1f} ms" if results[n] < 10 else f"{results[n]:.1f} s" for n in names]
        ratios = [f"{results[n] / results[base]:.1f}×" for n in names[1:]]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {count:,} |")


def sync_positions(url, table):
    """Every star's position, for making crossmatch targets (from the baseline service)."""
    data = {"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": f"SELECT ra, dec FROM {table} ORDER BY source_id",
            "RESPONSEFORMAT": "csv", "MAXREC": "3000000"}
    r = requests.post(url + "/sync", data=data, timeout=3600)
    r.raise_for_status()
    return np.loadtxt(io.StringIO(r.text), delimiter=",", skiprows=1)


if __name__ == "__main__":
    main()
