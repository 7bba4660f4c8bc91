"""SODA cutout latency and origin bytes: colo (file in S3 and on local disk), GAVO DaCHS's SODA (same
file on local disk), and downloading the whole file from S3 then cutting with astropy.

Run by benches/cutout_bench.sh, which starts the servers and colo. Prints a Markdown table; every
figure is the median of --repeat timed runs (the first colo request after start is shown apart).
"""
import argparse
import io
import re
import statistics
import tempfile
import time

import boto3
import numpy as np
import requests
from astropy.io import fits
from astropy.wcs import WCS
from botocore.config import Config

from images_fixture import BIG_SIDE, big_header


def polygon_for(w, x0, y0, side):
    """A polygon through the outer corners of side×side pixels from 0-based (x0, y0)."""
    lo, hi = -0.4, side - 0.6
    pts = [w.pixel_to_world(x0 + dx, y0 + dy) for dx, dy in [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]]
    return " ".join(f"{p.ra.deg} {p.dec.deg}" for p in pts)


def origin_bytes(metrics, volume):
    text = requests.get(metrics, timeout=30).text
    m = re.search(r'colo_origin_bytes_total\{volume="%s"\} (\d+)' % re.escape(volume), text)
    return int(m.group(1)) if m else 0


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def check(content, x0, y0, side):
    data = fits.open(io.BytesIO(content))[0].data
    ys, xs = np.mgrid[0:data.shape[0], 0:data.shape[1]]
    # Peers may keep one more row/column at the edges: compare where the cutout starts.
    w = WCS(fits.open(io.BytesIO(content))[0].header)
    sx, sy = [int(round(float(v))) for v in WCS(big_header()).world_to_pixel(w.pixel_to_world(0, 0))]
    assert np.array_equal(data, (sy + ys) * BIG_SIDE + sx + xs), "wrong pixels"
    assert abs(data.shape[0] - side) <= 2 and abs(data.shape[1] - side) <= 2, data.shape


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--colo", required=True, help="colo base URL")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--dachs", required=True, help="DaCHS dlget URL")
    ap.add_argument("--dachs-id", required=True)
    ap.add_argument("--s3", required=True, help="S3 endpoint")
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    w = WCS(big_header())
    s3 = boto3.client("s3", endpoint_url=a.s3, region_name="us-east-1", aws_access_key_id="colotest",
                      aws_secret_access_key="colotestsecret-s3", config=Config(s3={"addressing_style": "path"}))
    rows = []
    for side in (256, 2048):
        x0, y0 = 5000, 9000
        poly = polygon_for(w, x0, y0, side)
        cut_mib = side * side * 4 / 2**20
        for label, volume in [("colo SODA, file in S3", "bench-s3"), ("colo SODA, file on local disk", "bench-local")]:
            did = f"ivo://colo.local/{volume}?{volume}/synthetic_big.fits"
            times, moved = [], []
            for i in range(a.repeat + 1):
                before = origin_bytes(a.metrics, volume)
                t, r = timed(lambda: requests.get(a.colo + "/soda/sync", params={"ID": did, "POLYGON": poly}, timeout=600))
                assert r.status_code == 200, r.text
                check(r.content, x0, y0, side)
                if i == 0 and side == 256:
                    rows.append((f"{label}, first request", side, t, origin_bytes(a.metrics, volume) - before))
                    continue
                times.append(t)
                moved.append(origin_bytes(a.metrics, volume) - before)
            rows.append((label, side, statistics.median(times), statistics.median(moved)))
        times = []
        for _ in range(a.repeat):
            t, r = timed(lambda: requests.get(a.dachs, params={"ID": a.dachs_id, "POLYGON": poly}, timeout=600))
            assert r.status_code == 200, r.text[:300]
            check(r.content, x0, y0, side)
            times.append(t)
        rows.append(("DaCHS SODA, file on local disk", side, statistics.median(times), None))
        times = []
        for _ in range(max(1, a.repeat // 2)):
            def download_and_cut():
                with tempfile.NamedTemporaryFile(suffix=".fits") as f:
                    s3.download_fileobj(a.bucket, "synthetic_big.fits", f)
                    f.flush()
                    with fits.open(f.name, memmap=True) as h:
                        part = np.array(h[0].data[y0:y0 + side, x0:x0 + side])
                        out = io.BytesIO()
                        fits.PrimaryHDU(part, header=h[0].header).writeto(out)
                        return out.getvalue()
            t, _ = timed(download_and_cut)
            times.append(t)
        size = s3.head_object(Bucket=a.bucket, Key="synthetic_big.fits")["ContentLength"]
        rows.append(("download from S3 + astropy cut", side, statistics.median(times), size))
        print(f"  ({side}×{side} int32 = {cut_mib:.2f} MiB done)", flush=True)
    print("| cutout | way | latency (median) | origin bytes |")
    print("|---|---|---:|---:|")
    for label, side, t, moved in rows:
        b = "n/a (local)" if moved is None else f"{moved / 2**20:.2f} MiB"
        print(f"| {side}×{side} | {label} | {t * 1000:.0f} ms | {b} |")


if __name__ == "__main__":
    main()
