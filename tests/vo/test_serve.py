"""`colo ingest catalog` and `colo serve`: publishing a catalogue with one command (CSV fixture, a real
Hipparcos subset), clear refusals of bad input, and async jobs that survive a restart."""
import os
import shutil
import subprocess
import time

import pytest
import pyvo
import requests
from conftest import BIN, REPO, RUN, SERVE_PORT, Process

FIXTURE = os.path.join(REPO, "vo-services/tap/tests/fixtures/hip2_sample.csv")


def colo(home, *args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, env={**os.environ, "COLO_HOME": home}, timeout=300)


@pytest.fixture(scope="module")
def home():
    home = os.path.join(RUN, "vo-serve")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    out = colo(home, "ingest", "catalog", FIXTURE, "--table", "mission.stars", "--description", "Hipparcos subset")
    assert out.returncode == 0, out.stderr
    assert "published mission.stars: 2000 rows" in out.stderr
    assert "position (ra, dec)" in out.stderr
    return home


def test_ingest_writes_healpix_partitions_and_a_descriptor(home):
    table = os.path.join(home, "tables/mission.stars")
    parts = os.listdir(os.path.join(table, "data/Norder=0"))
    assert parts and all(p.startswith("Npix=") and p.endswith(".parquet") for p in parts)
    descriptor = open(os.path.join(table, "table.toml")).read()
    assert 'ucd = "pos.eq.ra;meta.main"' in descriptor and "flags = 1" in descriptor
    assert not [n for n in os.listdir(os.path.join(home, "tables")) if n.startswith(".")]


def test_ingest_refuses_bad_input_with_one_line(home):
    out = colo(home, "ingest", "catalog", FIXTURE, "--table", "nodot")
    assert out.returncode == 1 and "give schema.table" in out.stderr and out.stderr.count("\n") == 1
    out = colo(home, "ingest", "catalog", FIXTURE, "--table", "mission.select")
    assert out.returncode == 1 and "not a usable ADQL name" in out.stderr
    out = colo(home, "ingest", "catalog", "/nonexistent.csv", "--table", "mission.x")
    assert out.returncode == 1 and "/nonexistent.csv" in out.stderr
    out = colo(home, "ingest", "catalog", FIXTURE, "--table", "mission.y", "--ra", "nosuch", "--dec", "dec")
    assert out.returncode == 1 and "nosuch" in out.stderr
    assert not os.path.exists(os.path.join(home, "tables/mission.y"))


def test_reingest_keeps_operator_edits(home):
    path = os.path.join(home, "tables/mission.stars/table.toml")
    text = open(path).read().replace('name = "plx"\n', 'name = "plx"\ndescription = "Parallax, edited"\nunit = "mas"\n', 1)
    open(path, "w").write(text)
    out = colo(home, "ingest", "catalog", FIXTURE, "--table", "mission.stars")
    assert out.returncode == 0, out.stderr
    assert "Parallax, edited" in open(path).read()


def test_serve_answers_and_jobs_survive_a_restart(home):
    url = f"http://127.0.0.1:{SERVE_PORT}/tap"
    proc = Process(["serve", "--listen", f"127.0.0.1:{SERVE_PORT}"], home, home)
    try:
        service = pyvo.dal.TAPService(url)
        assert len(service.search("SELECT hip FROM mission.stars", maxrec=5000)) == 2000
        columns = {c.name: c for c in service.tables["mission.stars"].columns}
        assert columns["plx"].description == "Parallax, edited"
        job = service.submit_job("SELECT TOP 7 hip FROM mission.stars ORDER BY hip")
        job.run()
        job.wait(phases=["COMPLETED", "ERROR"], timeout=60)
        assert job.phase == "COMPLETED"
        job_url = job.url
    finally:
        proc.stop()
    proc = Process(["serve", "--listen", f"127.0.0.1:{SERVE_PORT}"], home, home)
    try:
        doc = requests.get(job_url, timeout=30).text
        assert "<uws:phase>COMPLETED</uws:phase>" in doc
        result = requests.get(job_url + "/results/result", timeout=30)
        assert result.status_code == 200 and result.content.count(b"<TR>") + result.content.count(b"STREAM") >= 1
        job = pyvo.dal.AsyncTAPJob(job_url)
        assert len(job.fetch_result()) == 7
    finally:
        proc.stop()


def test_uws_phases_and_delete(home):
    url = f"http://127.0.0.1:{SERVE_PORT}/tap"
    proc = Process(["serve", "--listen", f"127.0.0.1:{SERVE_PORT}"], home, home)
    try:
        r = requests.post(url + "/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 hip FROM mission.stars"}, allow_redirects=False)
        assert r.status_code == 303
        job = r.headers["Location"]
        assert requests.get(job + "/phase").text == "PENDING"
        r = requests.post(job + "/executionduration", data={"EXECUTIONDURATION": "30"}, allow_redirects=False)
        assert r.status_code == 303 and requests.get(job + "/executionduration").text == "30"
        t0 = time.time()
        doc = requests.get(job, params={"WAIT": "2"}).text
        assert time.time() - t0 >= 1.5 and "PENDING" in doc
        r = requests.post(job + "/phase", data={"PHASE": "RUN"}, allow_redirects=False)
        assert r.status_code == 303
        doc = requests.get(job, params={"WAIT": "30"}).text
        doc = requests.get(job, params={"WAIT": "30"}).text if "EXECUTING" in doc or "QUEUED" in doc else doc
        assert "<uws:phase>COMPLETED</uws:phase>" in doc
        listing = requests.get(url + "/async", params={"PHASE": "COMPLETED", "LAST": "1"}).text
        assert job.rsplit("/", 1)[1] in listing
        r = requests.delete(job, allow_redirects=False)
        assert r.status_code == 303
        assert requests.get(job).status_code == 404
        # astroquery's TapPlus gets 200 where UWS says 303
        r = requests.post(url + "/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 1 hip FROM mission.stars"}, allow_redirects=False)
        job = r.headers["Location"]
        r = requests.post(job + "/phase", data={"PHASE": "ABORT"}, headers={"User-Agent": "astroquery/0.4.11"}, allow_redirects=False)
        assert r.status_code == 200 and "ABORTED" in r.text
    finally:
        proc.stop()


@pytest.mark.parametrize("volume", ["s3", "webdav", "sftp"])
def test_ingest_from_a_volume(tmp_path, volume):
    """`--volume` reads the catalogue through colo's connectors (the test servers of scripts/servers.sh)."""
    import numpy as np
    import pyarrow.parquet as pq
    home = str(tmp_path / "home")
    config = os.path.join(RUN, "colo.toml")
    env = {**os.environ, "COLO_HOME": home, "COLO_TEST_S3_SECRET": "colotestsecret-s3"}
    out = subprocess.run([BIN, "ingest", "catalog", "science/hip2_18cols.parquet", "--volume", volume, "--config", config,
                          "--table", "fixture.hip18"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "117955 rows" in out.stderr and "no position columns found" in out.stderr
    proc = Process(["serve", "--listen", f"127.0.0.1:{SERVE_PORT}", "--config", config], home, str(tmp_path))
    try:
        service = pyvo.dal.TAPService(f"http://127.0.0.1:{SERVE_PORT}/tap")
        row = service.search("SELECT COUNT(*) AS n, SUM(plx_mas) AS s FROM fixture.hip18").to_table()[0]
    finally:
        proc.stop()
    ref = pq.read_table(os.path.join(RUN, "fixture/science/hip2_18cols.parquet"), columns=["plx_mas"])["plx_mas"].to_numpy()
    assert row["n"] == 117955
    assert np.isclose(row["s"], np.nansum(ref))
