"""How access patterns reach the origin, counted by colo's own metrics on a real S3 volume: a random
`pread` is one ranged GET of about its own size, a Parquet column subset costs at most one GET per
column chunk, a small file is fetched once whatever is read of it — and the bytes are always right."""
import io
import os
import random
import time
import urllib.request
import uuid

import pytest
from conftest import S3_ENDPOINT, S3_KEY, S3_SECRET, Colo, write_config

METRICS = "127.0.0.1:18772"
BUCKET = "colo-mutable"
VOLUME = "acc-s3"
GETS = f'colo_origin_requests_total{{volume="{VOLUME}",kind="get"}}'
BYTES = f'colo_origin_bytes_total{{volume="{VOLUME}"}}'
MIB = 1 << 20


def metrics():
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10).read().decode()
    return {s: float(v) for s, v in (l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))}


def parquet_table():
    import numpy as np
    import pyarrow as pa
    rng = np.random.default_rng(3)
    return pa.table({f"c{i}": rng.random(ROWS_PER_GROUP * GROUPS) for i in range(6)})


ROWS_PER_GROUP, GROUPS = 100_000, 6
BIG_ROWS_PER_GROUP, BIG_GROUPS = 300_000, 3  # column chunks of 2.3 MiB: over the kernel's 1 MiB reads


def big_parquet_table():
    import numpy as np
    import pyarrow as pa
    rng = np.random.default_rng(4)
    return pa.table({f"b{i}": rng.random(BIG_ROWS_PER_GROUP * BIG_GROUPS) for i in range(3)})


@pytest.fixture(scope="module")
def data():
    """The objects, put before the mount lists them (the volume caches listings for an hour)."""
    import boto3
    import pyarrow.parquet as pq
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                      aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                      config=Config(s3={"addressing_style": "path"}))
    buf = io.BytesIO()
    pq.write_table(parquet_table(), buf, row_group_size=ROWS_PER_GROUP, compression="none")
    big = io.BytesIO()
    pq.write_table(big_parquet_table(), big, row_group_size=BIG_ROWS_PER_GROUP, compression="none")
    objects = {"random": os.urandom(40 * MIB), "parquet": buf.getvalue(), "small": os.urandom(3 * MIB + 1234),
               "parquet_big": big.getvalue()}
    prefix = f"access-{uuid.uuid4().hex[:8]}"
    keys = {}
    for name, body in objects.items():
        keys[name] = f"{prefix}/{name}.bin"
        s3.put_object(Bucket=BUCKET, Key=keys[name], Body=body)
    return {name: (keys[name], body) for name, body in objects.items()}


@pytest.fixture(scope="module")
def mount(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("access")
    cfg = str(tmp / "c.toml")
    extra = (f'\n[[volume]]\nname = "{VOLUME}"\nurl = "s3://{BUCKET}/"\nendpoint = "{S3_ENDPOINT}"\n'
             f'access_key_id = "{S3_KEY}"\nsecret_access_key = "{S3_SECRET}"\nmetadata_ttl_secs = 3600\n')
    write_config(cfg, extra, metrics_listen=METRICS)
    c = Colo(cfg, str(tmp / "mnt"))
    yield c
    c.stop()


def counts():
    m = metrics()
    return m.get(GETS, 0), m.get(BYTES, 0)


def test_the_mount_reads_ahead_one_block(mount):
    dev = os.stat(mount.root).st_dev
    with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb") as f:
        assert int(f.read()) == 1024


def test_a_random_pread_is_one_get_of_about_its_size(mount, data):
    key, src = data["random"]
    rnd = random.Random(5)
    # 16 reads of 256 KiB, 4 KiB-aligned, each in its own 2 MiB stretch away from the file's ends.
    offsets = [MIB + i * 2 * MIB + rnd.randrange(0, MIB) // 4096 * 4096 for i in range(16)]
    fd = os.open(mount.path(VOLUME, key), os.O_RDONLY)
    try:
        gets0, bytes0 = counts()
        for off in offsets:
            assert os.pread(fd, 256 << 10, off) == src[off:off + (256 << 10)], off
        gets1, bytes1 = counts()
    finally:
        os.close(fd)
    assert gets1 - gets0 == 16, (gets0, gets1)
    # Pages are 64 KiB: at most one page more than asked for, per read.
    assert 16 * (256 << 10) <= bytes1 - bytes0 <= 16 * (320 << 10), bytes1 - bytes0


def test_a_parquet_column_subset_costs_at_most_one_get_per_chunk(mount, data):
    import pyarrow.parquet as pq
    key, _ = data["parquet"]
    gets0, _ = counts()
    got = pq.read_table(mount.path(VOLUME, key), columns=["c1", "c4"])
    gets1, _ = counts()
    assert got.equals(parquet_table().select(["c1", "c4"]))
    chunks = 2 * GROUPS
    # One per chunk, one for the footer, and at most one more: the kernel's readahead state is shared
    # by pyarrow's threads on one descriptor and now and then reads on past a chunk (13 or 14 seen).
    assert gets1 - gets0 <= chunks + 2, f"{gets1 - gets0} GETs for {chunks} column chunks and a footer"


def test_column_chunks_over_the_kernels_read_size_are_one_get_each(mount, data):
    """The kernel hands colo a 2.3 MiB chunk as 1 MiB reads; colo knows the chunks from the footer
    and fetches each whole with its first read (before: three or more GETs per chunk). Read as
    pyarrow reads — footer, then one pread per chunk — with the kernel's readahead off for the
    descriptor (POSIX_FADV_RANDOM): exactly one GET for the footer and one per chunk."""
    import pyarrow.parquet as pq
    key, body = data["parquet_big"]
    meta = pq.ParquetFile(io.BytesIO(body)).metadata
    chunks = [meta.row_group(g).column(1) for g in range(BIG_GROUPS)]
    fd = os.open(mount.path(VOLUME, key), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        gets0, _ = counts()
        assert os.pread(fd, 64 << 10, len(body) - (64 << 10)) == body[-(64 << 10):]
        for c in chunks:
            start = min(c.data_page_offset, c.dictionary_page_offset or c.data_page_offset)
            n = c.total_compressed_size
            assert os.pread(fd, n, start) == body[start:start + n]
        gets1, _ = counts()
    finally:
        os.close(fd)
    assert gets1 - gets0 == 1 + BIG_GROUPS, f"{gets1 - gets0} GETs for a footer and {BIG_GROUPS} chunks"


def test_pyarrow_reads_big_column_chunks_with_few_gets(mount, data):
    """The same through pyarrow with the kernel's readahead on: it reads on past each chunk (two
    1 MiB reads past a 2.3 MiB chunk seen); a chunk's first read fetches on to the end of the
    kernel's next read slot past the chunk, so those reads are cache hits: 4 GETs for 3 chunks and
    the footer here (17 before colo knew the chunks; 10 before it fetched past them)."""
    import pyarrow.parquet as pq
    key, _ = data["parquet_big"]
    gets0, _ = counts()
    got = pq.read_table(mount.path(VOLUME, key), columns=["b2"])
    gets1, _ = counts()
    assert got.equals(big_parquet_table().select(["b2"]))
    assert gets1 - gets0 <= 2 * BIG_GROUPS + 1, f"{gets1 - gets0} GETs for {BIG_GROUPS} column chunks and a footer"


def test_a_small_file_is_one_get_whatever_is_read_of_it(mount, data):
    key, src = data["small"]
    gets0, bytes0 = counts()
    with open(mount.path(VOLUME, key), "rb") as f:
        for off, n in [(2 * MIB + 5, 4096), (100, 300_000), (3 * MIB, 5000), (MIB - 7, 2 * MIB)]:
            f.seek(off)
            assert f.read(n) == src[off:off + n]
    gets1, bytes1 = counts()
    assert (gets1 - gets0, bytes1 - bytes0) == (1, len(src))


def test_a_randomly_read_file_is_fetched_whole_once_its_requests_cost_as_much(tmp_path, data):
    """The cost model (issue 19) on the real S3 server: colo learns the volume's latency and
    throughput from its requests, and a 40 MiB file read at random is fetched whole in the
    background once its reader has waited on ranged requests as long as the whole file takes —
    not before 4 reads, and after it every read is served from the cache."""
    key, src = data["random"]
    cfg = str(tmp_path / "c.toml")
    extra = (f'\n[[volume]]\nname = "{VOLUME}"\nurl = "s3://{BUCKET}/"\nendpoint = "{S3_ENDPOINT}"\n'
             f'access_key_id = "{S3_KEY}"\nsecret_access_key = "{S3_SECRET}"\n')
    write_config(cfg, extra, metrics_listen="127.0.0.1:18773")
    with open(cfg) as f:
        text = f.read().replace("[cache]\n", "[cache]\nrandom_fill_max_mib = 64\n", 1)
    with open(cfg, "w") as f:
        f.write(text)
    c = Colo(cfg, str(tmp_path / "mnt"))
    url = "http://127.0.0.1:18773/metrics"

    def metric(name):
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

    def gets():
        return metric(GETS)

    fills = f'colo_cache_random_fills_total{{volume="{VOLUME}"}}'
    try:
        rnd = random.Random(9)
        fd = os.open(c.path(VOLUME, key), os.O_RDONLY)
        try:
            reads = 0
            while metric(fills) == 0:
                assert reads < 400, "never fetched whole"
                off = rnd.randrange(MIB, 38 * MIB) // 4096 * 4096
                assert os.pread(fd, 256 << 10, off) == src[off:off + (256 << 10)]
                reads += 1
            assert reads >= 4, f"fetched whole after {reads} reads"
            latency = metric(f'colo_origin_latency_seconds{{volume="{VOLUME}"}}')
            assert 0 < latency < 0.02, f"learned latency {latency} s (loopback, not the prior)"
            assert metric(f'colo_origin_throughput_bytes_per_second{{volume="{VOLUME}"}}') > 0
            settled, last = 0, -1
            for _ in range(100):  # the fill runs in the background: wait until requests stop
                now = gets()
                settled = settled + 1 if now == last else 0
                if settled == 3:
                    break
                last = now
                time.sleep(0.1)
            before = gets()
            assert before <= reads + 40 / 8 + 2, (before, reads)  # the reads, then 8 MiB requests
            for _ in range(32):
                off = rnd.randrange(0, 40 * MIB - (256 << 10))
                assert os.pread(fd, 256 << 10, off) == src[off:off + (256 << 10)]
            assert gets() == before, "every later read is served from the cache"
        finally:
            os.close(fd)
    finally:
        c.stop()
