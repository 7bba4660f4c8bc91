"""astroquery's TapPlus (the ESA archives' client) against `colo up`, unchanged: load_tables,
launch_job, launch_job_async (PHASE=RUN in the creation POST), errors, list_async_jobs, the Gaia
module's cone-search ADQL, and every output format it knows."""
import numpy as np
import pytest
from astroquery.utils.tap.core import TapPlus


@pytest.fixture(scope="module", params=["/tap", "/tap-server/tap"])
def tapplus(tap, request):
    return TapPlus(url=tap.replace("/tap", request.param))


def test_load_tables_reads_flags(tapplus):
    tables = {t.name: t for t in tapplus.load_tables()}
    assert "sample.hip2" in tables
    columns = {c.name: c for c in tables["sample.hip2"].columns}
    assert columns["ra_deg"].flags == "1" and columns["dec_deg"].flags == "2"
    assert columns["hip"].flags == "16"


def test_launch_job_and_async(tapplus):
    sync = tapplus.launch_job("SELECT TOP 3 hip, hpmag FROM sample.hip2 ORDER BY hip").get_results()
    assert list(sync["hip"]) == [1, 2, 3]
    job = tapplus.launch_job_async("SELECT TOP 3 hip, hpmag FROM sample.hip2 ORDER BY hpmag")
    result = job.get_results()
    assert job.get_phase() == "COMPLETED" and len(result) == 3
    assert job.jobid in [j.jobid for j in tapplus.list_async_jobs()]


def test_error_message_is_shown(tapplus):
    with pytest.raises(Exception, match="unknown column nosuch"):
        tapplus.launch_job("SELECT TOP 3 nosuch FROM sample.hip2")


def test_a_failed_async_job_says_why(tapplus):
    # TapPlus fetches results/result of the finished job and reports only that answer: it carries
    # the job's error, with the status of the failure (400: the query's fault).
    with pytest.raises(Exception, match=r"Error 400: unknown column nosuch") as error:
        tapplus.launch_job_async("SELECT TOP 3 nosuch FROM sample.hip2")
    assert "has no result" not in str(error.value)


def test_gaia_style_cone_search(tapplus, hip2):
    # The ADQL astroquery.gaia's cone_search_async writes.
    query = ("SELECT TOP 50 DISTANCE(POINT('ICRS',ra_deg,dec_deg), POINT('ICRS',56.75,24.12)) AS dist, * "
             "FROM sample.hip2 WHERE 1=CONTAINS(POINT('ICRS',ra_deg,dec_deg),CIRCLE('ICRS',56.75,24.12,1.5)) ORDER BY dist ASC")
    result = tapplus.launch_job_async(query).get_results()
    assert list(result.columns)[:2] == ["dist", "hip"]
    assert np.all(np.diff(result["dist"]) >= 0) and result["dist"].max() <= 1.5
    ra, dec = np.radians(hip2["ra_deg"]), np.radians(hip2["dec_deg"])
    c = np.sin(dec) * np.sin(np.radians(24.12)) + np.cos(dec) * np.cos(np.radians(24.12)) * np.cos(ra - np.radians(56.75))
    inside = np.degrees(np.arccos(np.clip(c, -1, 1))) <= 1.5
    assert len(result) == min(50, int(inside.sum())) and len(result) > 20


@pytest.mark.parametrize("fmt", ["votable", "votable_plain", "votable_gzip", "csv", "ecsv", "fits", "json"])
def test_every_output_format(tapplus, fmt):
    for launch in (tapplus.launch_job, tapplus.launch_job_async):
        result = launch("SELECT TOP 4 hip, ra_deg, hpmag FROM sample.hip2 ORDER BY hip", output_format=fmt).get_results()
        assert list(result["hip"]) == [1, 2, 3, 4], fmt
