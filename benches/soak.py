"""A soak under faults (issue 20, item 4): for MINUTES, several clients at once run TAP queries
(sync and async), SODA cutouts and reads through the mount, all from one `colo up --config` over
an S3 volume in SeaweedFS, while the S3 server is killed and restarted and disk-cache files are
corrupted. Every answer is checked against the one given before the faults began — or, for the
cones on the whole Hipparcos-2 catalogue published to the volume (`cold.hip2`: random positions
and columns, so many need bytes no earlier query cached, and outages reach TAP), against the same
query on the same catalogue published to the local tables folder (`local.hip2`), which no fault
touches. The cache is smaller than what the clients read (16 MiB of memory, 24 MiB of disk), so
blocks are evicted and fetched again all along:

- correct: the same bytes (TAP VOTables, cutouts), the same rows (cones on `cold.hip2`) or the same
  sha256 (files read through the mount);
- a clear error: an HTTP error status, a VOTable with QUERY_STATUS=ERROR, a UWS job in ERROR, or
  EIO from the mount — allowed while the origin is down;
- wrong: anything else (different bytes with a success status, a truncated success) — must be 0.

At the end: requests and errors by kind, wrong answers, whether colo is alive, its peak RSS.
Exit 1 on a wrong answer, a dead colo or a peak RSS over the budget (the cache's memory budget
plus 512 MiB for the engine and the runtime). Run by `benches/soak.sh MINUTES`.
"""

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import boto3
import requests
from botocore.config import Config

REPO = os.environ["COLO_REPO"]
BIN = os.environ["COLO_BIN"]
RUN = os.environ.get("COLO_TEST_DIR", "/tmp/colo-test")
SHARED = os.environ.get("COLO_SHARED", os.path.join(REPO, "..", "shared"))
S3 = "http://127.0.0.1:18333"
PORT, METRICS_PORT = 18795, 18796
BASE_URL = f"http://127.0.0.1:{PORT}"
BUCKET = "colo-soak"
MEMORY_MIB = 16
DISK_MIB = 24
HIP2 = os.path.join(SHARED, "data/catalogs/hipparcos2/hip2.parquet")
# Columns a cone on the whole catalogue picks three of (besides HIP, ra, dec).
HIP2_COLUMNS = ["Plx", "pmRA", "pmDE", "e_Plx", "Hpmag", "e_Hpmag", "B_V", "V_I", "VA", "Ntr", "F2"]
RSS_BUDGET_MIB = MEMORY_MIB + 512
REQUEST_TIMEOUT_S = 120

QUERIES = [
    "SELECT hip, ra, dec, hpmag FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(56.75, 24.12, 3))",
    # (No floating-point SUM: its last bits follow the order partitions finish in.)
    "SELECT COUNT(*) AS n, MIN(hpmag) AS low, MAX(hpmag) AS high FROM sample.hip2",
    "SELECT hip, ra, dec FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra, dec), BOX(120, -30, 20, 10)) ORDER BY hip",
    "SELECT TOP 50 hip, plx FROM sample.hip2 ORDER BY plx DESC",
    "SELECT a.hip, b.hip AS other FROM sample.hip2 AS a JOIN sample.hip2 AS b "
    "ON 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.5)) WHERE a.hip < b.hip ORDER BY a.hip, other",
]


def s3():
    return boto3.client("s3", endpoint_url=S3, region_name="us-east-1", aws_access_key_id="colotest",
                        aws_secret_access_key="colotestsecret-s3",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))


def servers(*args):
    subprocess.run(["bash", os.path.join(REPO, "scripts/servers.sh"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def images() -> list[str]:
    """Real FITS images: the fixture's, and the shared small and tile-compressed ones."""
    found = [os.path.join(RUN, "fixture/science/magpis_g10.5.fits")]
    for folder in ("small-images", "tile-compressed"):
        path = os.path.join(SHARED, "data/fits", folder)
        if os.path.isdir(path):
            found += [os.path.join(path, n) for n in sorted(os.listdir(path))
                      if n.endswith(".fits") and os.path.getsize(os.path.join(path, n)) < 2 << 20]
    return found


def setup(base):
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    client = s3()
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for path in images():
        client.upload_file(path, BUCKET, "images/" + os.path.basename(path))
    files = {}
    for path in (os.path.join(RUN, "fixture/big/eight_mib.bin"),
                 os.path.join(RUN, "fixture/science/hip2_18cols.parquet")):
        key = "files/" + os.path.basename(path)
        client.upload_file(path, BUCKET, key)
        files[key] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    config = os.path.join(base, "colo.toml")
    with open(config, "w") as f:
        f.write(f"""metrics_listen = "127.0.0.1:{METRICS_PORT}"
mount_root = "{base}/mnt"
[cache]
dir = "{base}/cache"
memory_mib = {MEMORY_MIB}
disk_gib = {DISK_MIB / 1024}
[services]
listen = "127.0.0.1:{PORT}"
tables_dir = "{base}/tables"
jobs_dir = "{base}/jobs"
table_volumes = ["soak/tables"]
client_timeout_secs = 30
[[volume]]
name = "soak"
url = "s3://{BUCKET}/"
endpoint = "{S3}"
access_key_id = "colotest"
secret_access_key = "colotestsecret-s3"
metadata_ttl_secs = 5
""")
    csv = os.path.join(REPO, "vo-services/tap/tests/fixtures/hip2_sample.csv")
    whole = ["ingest", "catalog", HIP2, "--ra", "ra", "--dec", "dec"]
    for args in (["ingest", "catalog", csv, "--table", "sample.hip2", "--ra", "ra", "--dec", "dec",
                  "--to", "soak/tables"], ["ingest", "images", "soak/images"],
                 [*whole, "--table", "cold.hip2", "--to", "soak/tables"], [*whole, "--table", "local.hip2"]):
        out = subprocess.run([BIN, *args, "--config", config], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "COLO_HOME": base})
        assert out.returncode == 0, out.stderr
    return config, files


class Colo:
    def __init__(self, config, base):
        self.proc = subprocess.Popen([BIN, "up", "--config", config], cwd=base, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(base, "colo.log"), "w"), text=True,
                                     env={**os.environ, "COLO_HOME": base})
        deadline = time.time() + 300
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"colo exited: see {base}/colo.log")
        raise SystemExit("colo did not get ready")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def tap_sync(query: str, form: str = "votable") -> requests.Response:
    return requests.post(f"{BASE_URL}/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": form,
                                                      "QUERY": query, "MAXREC": "100000"},
                         timeout=REQUEST_TIMEOUT_S)


def cold_cone(rng: random.Random, table: str) -> str:
    """A cone at a random position with three random columns of the whole catalogue."""
    columns = ", ".join(rng.sample(HIP2_COLUMNS, 3))
    ra, dec, radius = rng.uniform(0, 360), rng.uniform(-85, 85), rng.uniform(0.5, 3)
    return (f"SELECT HIP, ra, dec, {columns} FROM {table} "
            f"WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE({ra:.4f}, {dec:.4f}, {radius:.3f})) ORDER BY HIP")


def tap_error(body: bytes) -> bool:
    return b'name="QUERY_STATUS" value="ERROR"' in body


def cutout(did: str, ra: float, dec: float) -> requests.Response:
    return requests.get(f"{BASE_URL}/soda/sync", params={"ID": did, "CIRCLE": f"{ra} {dec} 0.01"},
                        timeout=REQUEST_TIMEOUT_S)


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.wrong = []

    def add(self, kind, outcome, detail=""):
        with self.lock:
            self.counts[(kind, outcome)] += 1
            if outcome == "wrong":
                self.wrong.append(f"{kind}: {detail}")


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    base = os.path.join(RUN, "soak")
    servers("start", "s3")
    config, files = setup(base)
    colo = Colo(config, base)
    mount = os.path.join(base, "mnt", "soak")
    # The answers before any fault.
    expected_tap = {}
    for query in QUERIES:
        answer = tap_sync(query)
        assert answer.status_code == 200 and not tap_error(answer.content), answer.text[:500]
        expected_tap[query] = answer.content
    records = tap_sync("SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore", "csv").text
    dids = [line.split(",") for line in records.splitlines()[1:] if line.count(",") == 2]
    expected_cut = {}
    for did, ra, dec in dids:
        answer = cutout(did, float(ra), float(dec))
        if answer.status_code == 200:
            expected_cut[did] = (float(ra), float(dec), hashlib.sha256(answer.content).hexdigest())
    assert expected_cut, f"no image cut: {records[:500]}"
    print(f"soak: {len(QUERIES)} queries, {len(expected_cut)} images, {len(files)} files; "
          f"{minutes} min", flush=True)

    tally = Tally()
    stop = time.time() + minutes * 60
    origin_down = threading.Event()

    def judge(kind, query, answer):
        """A TAP answer (sync, or an async job's result) against the one before the faults."""
        if answer.status_code != 200 or tap_error(answer.content):
            tally.add(kind, f"error:{answer.status_code}")
        elif answer.content == expected_tap[query]:
            tally.add(kind, "correct")
        else:
            tally.add(kind, "wrong", f"{query[:60]}: {answer.content[-300:]!r}")

    def tap_client(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            query = rng.choice(QUERIES)
            try:
                answer = tap_sync(query)
            except requests.RequestException as e:
                tally.add("tap", "error:" + type(e).__name__)
                continue
            judge("tap", query, answer)

    def cold_client(seed):
        """Cones on `cold.hip2` (through the cache from S3) against `local.hip2` (local disk)."""
        rng = random.Random(seed)
        while time.time() < stop:
            state = rng.getstate()
            query = cold_cone(rng, "cold.hip2")
            rng.setstate(state)
            reference = cold_cone(rng, "local.hip2")
            try:
                answer, expected = tap_sync(query, "csv"), tap_sync(reference, "csv")
            except requests.RequestException as e:
                tally.add("cold", "error:" + type(e).__name__)
                continue
            if expected.status_code != 200:
                tally.add("cold", "wrong", f"the local table failed: {expected.text[:300]}")
            elif answer.status_code != 200 or tap_error(answer.content):
                tally.add("cold", f"error:{answer.status_code}")
            elif answer.content == expected.content:
                tally.add("cold", "correct")
            else:
                tally.add("cold", "wrong", f"{query[:80]}: {answer.content[-300:]!r}")

    def async_client(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            query = rng.choice(QUERIES)
            try:
                job = requests.post(f"{BASE_URL}/tap/async", data={"REQUEST": "doQuery", "LANG": "ADQL",
                                    "QUERY": query, "PHASE": "RUN"}, timeout=REQUEST_TIMEOUT_S)
                url = job.url
                phase = ""
                for _ in range(60):
                    phase = requests.get(f"{url}/phase", timeout=REQUEST_TIMEOUT_S).text.strip()
                    if phase in ("COMPLETED", "ERROR", "ABORTED"):
                        break
                    requests.get(url, params={"WAIT": "5", "PHASE": phase}, timeout=REQUEST_TIMEOUT_S)
                if phase == "COMPLETED":
                    judge("async", query, requests.get(f"{url}/results/result", timeout=REQUEST_TIMEOUT_S))
                else:
                    tally.add("async", f"error:{phase or 'no phase'}")
                requests.delete(url, timeout=REQUEST_TIMEOUT_S)
            except requests.RequestException as e:
                tally.add("async", "error:" + type(e).__name__)

    def cutout_client(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            did = rng.choice(list(expected_cut))
            ra, dec, digest = expected_cut[did]
            try:
                answer = cutout(did, ra, dec)
            except requests.RequestException as e:
                tally.add("cutout", "error:" + type(e).__name__)
                continue
            if answer.status_code != 200:
                tally.add("cutout", f"error:{answer.status_code}")
            elif hashlib.sha256(answer.content).hexdigest() == digest:
                tally.add("cutout", "correct")
            else:
                tally.add("cutout", "wrong", did)

    def mount_reader(seed):
        rng = random.Random(seed)
        while time.time() < stop:
            key = rng.choice(list(files))
            path = os.path.join(mount, key)
            try:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            except OSError as e:
                tally.add("mount", f"error:{e.errno}")
                continue
            if digest == files[key]:
                tally.add("mount", "correct")
            else:
                tally.add("mount", "wrong", key)
            # Drop the kernel's page cache of the file now and then: reads go to colo again.
            if rng.random() < 0.5:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("1")

    faults = Counter()

    def chaos():
        rng = random.Random(7)
        cache = os.path.join(base, "cache")
        while time.time() < stop - 40:
            time.sleep(rng.uniform(15, 30))
            victims = [os.path.join(d, n) for d, _, names in os.walk(cache) for n in names
                       if os.path.getsize(os.path.join(d, n)) > 4096]
            if victims:
                victim = rng.choice(victims)
                with open(victim, "r+b") as f:
                    f.seek(rng.randrange(os.path.getsize(victim) - 16))
                    f.write(os.urandom(16))
                faults["cache file corrupted"] += 1
            if time.time() < stop - 40:
                servers("kill", "s3")
                origin_down.set()
                faults["S3 killed"] += 1
                time.sleep(rng.uniform(5, 20))
                servers("start", "s3")
                origin_down.clear()

    peak = [0.0]

    def monitor():
        while time.time() < stop:
            if colo.proc.poll() is not None:
                return
            peak[0] = max(peak[0], colo.rss_mib())
            time.sleep(0.5)

    workers = [threading.Thread(target=tap_client, args=(i,)) for i in range(2)]
    workers += [threading.Thread(target=async_client, args=(10,))]
    workers += [threading.Thread(target=cold_client, args=(40 + i,)) for i in range(2)]
    workers += [threading.Thread(target=cutout_client, args=(20 + i,)) for i in range(2)]
    workers += [threading.Thread(target=mount_reader, args=(30 + i,)) for i in range(2)]
    workers += [threading.Thread(target=chaos), threading.Thread(target=monitor)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    servers("start", "s3")
    alive = colo.proc.poll() is None
    # After the faults: every kind of request answers correctly again.
    after = {"tap": tap_sync(QUERIES[0]).content == expected_tap[QUERIES[0]]}
    cone = random.Random(99)
    after["cold"] = (tap_sync(cold_cone(cone, "cold.hip2"), "csv").content
                     == tap_sync(cold_cone(random.Random(99), "local.hip2"), "csv").content)
    did, (ra, dec, digest) = next(iter(expected_cut.items()))
    after["cutout"] = hashlib.sha256(cutout(did, ra, dec).content).hexdigest() == digest
    key = next(iter(files))
    after["mount"] = hashlib.sha256(open(os.path.join(mount, key), "rb").read()).hexdigest() == files[key]
    colo.proc.send_signal(signal.SIGINT)
    colo.proc.wait(timeout=120)

    total = sum(tally.counts.values())
    print(f"\nsoak of {minutes} min: {total} requests; faults: {dict(faults)}")
    for (kind, outcome), n in sorted(tally.counts.items()):
        print(f"  {kind:7} {outcome:28} {n}")
    print(f"wrong answers: {len(tally.wrong)}", *sorted(set(tally.wrong))[:10], sep="\n  ")
    print(f"colo alive at the end: {alive}; correct again after the faults: {after}")
    print(f"colo peak RSS: {peak[0]:.0f} MiB (budget {RSS_BUDGET_MIB} MiB)")
    ok = not tally.wrong and alive and all(after.values()) and peak[0] <= RSS_BUDGET_MIB
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
