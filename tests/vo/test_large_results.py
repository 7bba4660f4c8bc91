"""A result of ten million rows in FITS and in Parquet streams out of a `colo serve` whose memory
stays bounded: the FITS writer spools its rows to a temporary file (the header needs the row
count first), the Parquet writer hands on each row group as it is written. The rows come from a
cross join of the sample's Hipparcos-2 with 85 of its stars (117,955 × 85 = 10,026,175)."""
import os
import urllib.parse
import urllib.request

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from conftest import RUN, Process

PORT = 18772
ROWS = 117_955 * 85
QUERY = ("SELECT a.hip, a.ra_deg, a.dec_deg, b.hip AS hip_b FROM sample.hip2 AS a, "
         "(SELECT TOP 85 hip FROM sample.hip2 ORDER BY hip) AS b")
# Four columns of 4 + 8 + 8 + 4 bytes: 240 MB of rows. Before the writers streamed, the FITS
# writer held every row twice (the batches and the file) and the Parquet writer held the file.
PEAK_RSS_LIMIT_MIB = 350


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def serve(up):
    """A `colo serve` of its own for each format: its peak RSS is that format's."""
    proc = Process(["serve", "--listen", f"127.0.0.1:{PORT}"], up.home, os.path.dirname(up.home))
    yield proc
    proc.stop()


def download(fmt, path):
    query = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": QUERY, "FORMAT": fmt, "MAXREC": 20_000_000})
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/tap/sync?{query}", timeout=600) as answer, \
            open(path, "wb") as out:
        while chunk := answer.read(1 << 20):
            out.write(chunk)


@pytest.mark.parametrize("fmt", ["fits", "parquet"])
def test_ten_million_rows_stream_with_bounded_memory(serve, fmt):
    path = os.path.join(RUN, f"large-result.{fmt}")
    try:
        download(fmt, path)
        if fmt == "fits":
            with fits.open(path, memmap=True) as h:
                table = h[1]
                assert table.header["NAXIS2"] == ROWS and table.header["NAXIS1"] == 24
                assert os.path.getsize(path) % 2880 == 0
                assert set(np.unique(table.data["hip_b"][:200_000])) <= set(range(1, 200))
                assert np.all(np.abs(table.data["dec_deg"][::100_000]) <= 90)
        else:
            meta = pq.read_metadata(path)
            assert meta.num_rows == ROWS and meta.num_row_groups > 1
            first = pq.ParquetFile(path).read_row_group(0, columns=["hip", "hip_b"])
            assert first.num_rows > 0 and first.column("hip").null_count == 0
        peak = peak_rss_mib(serve.proc.pid)
        print(f"{fmt}: colo serve peaked at {peak:.0f} MiB")
        assert peak < PEAK_RSS_LIMIT_MIB, f"colo serve peaked at {peak:.0f} MiB"
    finally:
        if os.path.exists(path):
            os.remove(path)
