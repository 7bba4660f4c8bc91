"""Tycho-2 as a catalogue for the TAP benchmarks: the stars of the astrometry.net Tycho-2 index of the
Debian package astrometry-data-tycho2-07-littleendian 2-4 (index-tycho2-07.littleendian.fits: the
1,871,011 Tycho-2 stars of that index scale, positions as kd-tree unit vectors, V_T magnitudes),
decoded to a Parquet table: source_id (the star's row in the index, from 1), ra, dec (ICRS degrees),
vt_mag.

Decoding (astrometry.net libkd, documented in the file's own COMMENT cards): each star is three
uint32 codes; coordinate = lower bound + code / scale, with bounds and scale in `kdtree_range_stars`.
The unit vectors come out with |v| within 4e-10 of 1 (positions to ~0.1 mas).

usage: tycho2_prepare.py OUT.parquet [DOWNLOAD_DIR]
"""
import glob
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits

PACKAGE = "astrometry-data-tycho2-07-littleendian"
VERSION = "2-4"
DEB_SHA256 = "e266ec952b0d771683bb0e1b4a42096cfd6a769fe7aeda1743a0732e6650e296"
MEMBER = "usr/share/astrometry/index-tycho2-07.littleendian.fits"


def download(folder):
    os.makedirs(folder, exist_ok=True)
    debs = glob.glob(os.path.join(folder, f"{PACKAGE}_{VERSION}_all.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=folder, check=True)
        debs = glob.glob(os.path.join(folder, f"{PACKAGE}_{VERSION}_all.deb"))
    deb = debs[0]
    digest = hashlib.sha256(open(deb, "rb").read()).hexdigest()
    if digest != DEB_SHA256:
        sys.exit(f"{deb}: sha256 {digest}, expected {DEB_SHA256}")
    return deb


def main():
    out = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(out)), "downloads")
    deb = download(folder)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        with fits.open(os.path.join(tmp, MEMBER), memmap=False) as hdus:
            by_name = {h.columns.names[0]: h for h in hdus[1:] if hasattr(h, "columns")}
            bounds = np.frombuffer(by_name["kdtree_range_stars"].data.tobytes(), dtype="<f8")
            codes = np.frombuffer(by_name["kdtree_data_stars"].data.tobytes(), dtype="<u4").reshape(-1, 3)
            vt_mag = np.asarray(by_name["MAG_VT"].data["MAG_VT"], dtype=np.float32)
    xyz = bounds[:3] + codes * (1.0 / bounds[6])
    norm = np.linalg.norm(xyz, axis=1)
    assert np.abs(norm - 1).max() < 1e-8, "kd-tree codes did not decode to unit vectors"
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2] / norm, -1, 1)))
    table = pa.table({
        "source_id": np.arange(1, len(ra) + 1, dtype=np.int64),
        "ra": ra,
        "dec": dec,
        "vt_mag": vt_mag,
    })
    pq.write_table(table, out)
    print(f"{out}: {table.num_rows} Tycho-2 stars from {PACKAGE} {VERSION}")


if __name__ == "__main__":
    main()
