"""A catalogue on S3, served through colo's connectors and block cache.

The sample's Hipparcos-2 (117,955 stars) is ingested with `colo ingest catalog --to` into a
SeaweedFS bucket (scripts/servers.sh), and `colo up --config` serves it from there
(`[services] table_volumes`). Through pyvo: cones, a box, a table crossmatch, an upload crossmatch
and a full COUNT equal the same queries on the local table of `colo up` with no config. From
`/metrics` (the volume's origin requests): opening the table reads its footers; a cone costs a few
GETs of the one partition it needs; the same cone again costs nothing. Killing SeaweedFS fails a
query that needs the origin with a message naming the volume, while the service stays up and
cached queries still answer; once SeaweedFS is back, queries need no restart.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import pyvo
import requests
from astropy.table import Table

from conftest import BIN, REPO, RUN, S3_ENDPOINT, Process, s3_client

PORT = 18791
METRICS_PORT = 18792
VOLUME = "tables-s3"
BUCKET = "colo-tables"

CONES = [(56.8712, 24.1050, 0.05), (56.75, 24.12, 0.5), (201.3, -43.0, 2.0)]
BOX = "SELECT hip, ra_deg, dec_deg FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), BOX(120, -30, 6, 4))"
TABLE_XMATCH = ("SELECT a.hip, b.hip FROM sample.hip2 AS a JOIN sample.hip2 AS b "
                "ON DISTANCE(POINT(a.ra_deg, a.dec_deg), POINT(b.ra_deg, b.dec_deg)) < 0.01 "
                "WHERE a.hip < b.hip AND a.dec_deg BETWEEN 10 AND 20")
UPLOAD_XMATCH = ("SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t "
                 "ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra_deg, t.dec_deg)) < 5.0/3600")
COUNT = "SELECT COUNT(*) AS n, SUM(hpmag) AS total FROM sample.hip2"


def cone(ra, dec, r):
    return (f"SELECT hip, ra_deg, dec_deg, hpmag FROM sample.hip2 "
            f"WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), CIRCLE({ra}, {dec}, {r}))")


def servers(*args):
    subprocess.run(["bash", os.path.join(REPO, "scripts/servers.sh"), *args], check=True)


def origin(volume=VOLUME):
    """This volume's origin requests so far, by kind (get, head, list)."""
    text = requests.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=30).text
    counts = {}
    for kind in ("get", "head", "list"):
        m = re.search(r'colo_origin_requests_total\{volume="%s",kind="%s"\} (\d+)' % (volume, kind), text)
        counts[kind] = int(m.group(1))
    return counts


def delta(before, after):
    return {k: after[k] - before[k] for k in before}


def rows(service, query, **kw):
    """The result's rows, sorted; floats to 9 significant digits (sums may add in another order)."""
    table = service.run_sync(query, maxrec=1_000_000, **kw).to_table()
    def value(v):
        return float(f"{v:.9g}") if isinstance(v, float) else v
    return sorted(tuple(value(v) for v in row) for row in table.as_array().tolist())


@pytest.fixture(scope="module")
def s3_tables(up):
    """`colo up --config` serving sample.hip2 from SeaweedFS; yields (TAP service, the process)."""
    base = os.path.join(RUN, "vo-s3-tables")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    s3 = s3_client()
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    config = os.path.join(base, "colo.toml")
    with open(config, "w") as f:
        f.write(f"""metrics_listen = "127.0.0.1:{METRICS_PORT}"
mount_root = "{base}/mnt"
[cache]
dir = "{base}/cache"
memory_mib = 64
[services]
listen = "127.0.0.1:{PORT}"
tables_dir = "{base}/tables"
jobs_dir = "{base}/jobs"
table_volumes = ["{VOLUME}/tables"]
[[volume]]
name = "{VOLUME}"
url = "s3://{BUCKET}/"
endpoint = "{S3_ENDPOINT}"
access_key_id = "colotest"
secret_access_key = "colotestsecret-s3"
""")
    source = os.path.join(up.home, "sample/catalogs/hip2.parquet")
    out = subprocess.run([BIN, "ingest", "catalog", source, "--table", "sample.hip2", "--ra", "ra_deg",
                          "--dec", "dec_deg", "--to", f"{VOLUME}/tables", "--config", config],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "published sample.hip2: 117955 rows" in out.stderr, out.stderr
    assert f"to {VOLUME}/tables/sample.hip2/data-" in out.stderr, out.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="tables/sample.hip2/")["Contents"]]
    assert "tables/sample.hip2/table.toml" in keys
    assert sum(k.endswith(".parquet") for k in keys) >= 12, keys
    proc = Process(["up", "--config", config], base, base)
    yield pyvo.dal.TAPService(f"http://127.0.0.1:{PORT}/tap"), proc
    proc.stop()


@pytest.fixture(scope="module")
def local(tap):
    return pyvo.dal.TAPService(tap)


def test_the_table_is_listed_with_its_columns(s3_tables):
    service, _ = s3_tables
    tables = {t.name: t for t in service.tables}
    assert "sample.hip2" in tables
    names = [c.name for c in tables["sample.hip2"].columns]
    assert {"hip", "ra_deg", "dec_deg", "hpmag"} <= set(names)


def test_a_cone_costs_a_few_gets_and_nothing_when_repeated(s3_tables):
    service, _ = s3_tables
    query = cone(10.68, 41.27, 0.5)  # the first query of the table's data (runs before the others)
    before = origin()
    first = rows(service, query)
    cost = delta(before, origin())
    # Footers were read when the table was opened; listings are cached: the cone's one partition
    # costs a few ranged GETs (its row groups' pages), no HEAD and no LIST.
    assert 1 <= cost["get"] <= 6, cost
    assert cost["head"] == 0 and cost["list"] == 0, cost
    before = origin()
    assert rows(service, query) == first
    assert delta(before, origin()) == {"get": 0, "head": 0, "list": 0}


def test_answers_equal_the_local_table(s3_tables, local, hip2):
    service, _ = s3_tables
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(hip2["hip"]), 1000)
    targets = Table({"id": np.arange(1000), "ra": hip2["ra_deg"][picks] + 1e-4,
                     "dec": hip2["dec_deg"][picks]})
    queries = [cone(*c) for c in CONES] + [BOX, TABLE_XMATCH, COUNT]
    for query in queries:
        expected = rows(local, query)
        assert expected, query
        assert rows(service, query) == expected, query
    expected = rows(local, UPLOAD_XMATCH, uploads={"targets": targets})
    assert len(expected) >= 1000
    assert rows(service, UPLOAD_XMATCH, uploads={"targets": targets}) == expected


def test_origin_down_fails_the_query_and_the_service_stays_up(s3_tables):
    service, _ = s3_tables
    cached = cone(56.75, 24.12, 0.5)
    answer = rows(service, cached)
    # A column no query has read yet: its pages must come from the origin.
    uncached = ("SELECT hip, e_pmra_mas_yr FROM sample.hip2 "
                "WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), CIRCLE(300, -60, 3))")
    servers("kill", "s3")
    try:
        with pytest.raises((pyvo.dal.DALQueryError, pyvo.dal.DALServiceError)) as error:
            rows(service, uncached)
        message = str(error.value)
        assert f"volume '{VOLUME}'" in message and "unavailable" in message, message
        # The service answers: what the cache holds, and VOSI.
        assert rows(service, cached) == answer
        assert requests.get(f"http://127.0.0.1:{PORT}/tap/availability", timeout=30).status_code == 200
    finally:
        servers("start", "s3")
    assert rows(service, uncached), "answers again once the origin is back"


def test_ingest_to_a_volume_says_what_to_fix(s3_tables, up):
    config = os.path.join(RUN, "vo-s3-tables", "colo.toml")
    source = os.path.join(up.home, "sample/catalogs/hip2.parquet")
    for target, message in [("nosuch/tables", 'no volume "nosuch"'),
                            (f"{VOLUME}/../x", "give VOLUME or VOLUME/FOLDER")]:
        out = subprocess.run([BIN, "ingest", "catalog", source, "--table", "sample.other", "--to", target,
                              "--config", config], capture_output=True, text=True, timeout=120)
        assert out.returncode != 0
        assert message in out.stderr, out.stderr
        assert "\n" not in out.stderr.strip(), out.stderr
