"""pyvo against `colo up`: sync, async with WAIT, MAXREC overflow, upload + join, tables, big results
in BINARY2 and FITS, cone searches checked against a brute-force spherical filter."""
import urllib.request

import numpy as np
import pytest
import pyvo
from astropy.table import Table


def haversine_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


def test_sync_query_returns_rows_with_metadata(tap):
    service = pyvo.dal.TAPService(tap)
    result = service.search("SELECT TOP 5 hip, ra_deg, dec_deg, hpmag FROM sample.hip2 ORDER BY hip")
    table = result.to_table()
    assert list(table["hip"]) == [1, 2, 3, 4, 5]
    assert str(table["ra_deg"].unit) == "deg"
    assert result.getdesc("ra_deg").ucd == "pos.eq.ra;meta.main"
    assert result.getdesc("hip").ucd == "meta.id;meta.main"


@pytest.mark.parametrize("ra, dec, radius", [(56.75, 24.12, 2.0), (0.3, -10.0, 3.0), (120.0, 89.0, 2.5), (266.4, -29.0, 0.5)])
def test_cone_search_equals_brute_force(tap, hip2, ra, dec, radius):
    service = pyvo.dal.TAPService(tap)
    query = (f"SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT('ICRS', ra_deg, dec_deg), "
             f"CIRCLE('ICRS', {ra}, {dec}, {radius}))")
    got = set(service.search(query, maxrec=200000).to_table()["hip"].tolist())
    d = haversine_deg(hip2["ra_deg"], hip2["dec_deg"], ra, dec)
    expected = set(hip2["hip"][d <= radius].tolist())
    assert len(expected) > 0
    assert got == expected


def test_polygon_and_box_match_brute_force(tap, hip2):
    service = pyvo.dal.TAPService(tap)
    got = set(service.search("SELECT hip FROM sample.hip2 WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), "
                             "BOX(359.0, 5.0, 4.0, 2.0))", maxrec=200000).to_table()["hip"].tolist())
    dra = (hip2["ra_deg"] - 359.0 + 180.0) % 360.0 - 180.0
    inside = (np.abs(dra) <= 2.0) & (np.abs(hip2["dec_deg"] - 5.0) <= 1.0)
    assert got == set(hip2["hip"][inside].tolist()) and got


def test_distance_both_forms_agree(tap):
    service = pyvo.dal.TAPService(tap)
    a = service.search("SELECT TOP 20 hip, DISTANCE(POINT(ra_deg, dec_deg), POINT(83.82, -5.39)) AS d FROM sample.hip2 "
                       "WHERE DISTANCE(POINT(ra_deg, dec_deg), POINT(83.82, -5.39)) < 1 ORDER BY d").to_table()
    b = service.search("SELECT TOP 20 hip, DISTANCE(ra_deg, dec_deg, 83.82, -5.39) AS d FROM sample.hip2 "
                       "WHERE 1=CONTAINS(POINT(ra_deg, dec_deg), CIRCLE(83.82, -5.39, 1)) ORDER BY d").to_table()
    assert list(a["hip"]) == list(b["hip"]) and len(a) == 20
    assert np.allclose(a["d"], b["d"])


def test_async_with_wait(tap):
    service = pyvo.dal.TAPService(tap)
    job = service.submit_job("SELECT TOP 100 hip, hpmag FROM sample.hip2 WHERE hpmag < 3 ORDER BY hpmag")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    assert job.phase == "COMPLETED"
    table = job.fetch_result().to_table()
    assert len(table) > 10 and all(np.diff(table["hpmag"]) >= 0)
    job.delete()


def test_async_error_is_reported(tap):
    service = pyvo.dal.TAPService(tap)
    job = service.submit_job("SELECT TOP 1 nosuch FROM sample.hip2")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    assert job.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError, match="nosuch"):
        job.raise_if_error()
    with pytest.raises(pyvo.dal.DALQueryError, match="unknown column nosuch"):
        service.run_async("SELECT TOP 1 nosuch FROM sample.hip2")


def test_maxrec_overflow_is_flagged(tap):
    service = pyvo.dal.TAPService(tap)
    result = service.search("SELECT hip FROM sample.hip2", maxrec=10)
    assert len(result) == 10
    assert result.query_status == "OVERFLOW"
    exact = service.search("SELECT TOP 10 hip FROM sample.hip2", maxrec=10)
    assert exact.query_status == "OK"


def test_upload_and_join(tap, hip2):
    service = pyvo.dal.TAPService(tap)
    mine = Table({"name": ["pleiades", "orion"], "ra": [56.75, 83.82], "dec": [24.12, -5.39]})
    result = service.search(
        "SELECT u.name, h.hip FROM TAP_UPLOAD.mine AS u JOIN sample.hip2 AS h "
        "ON 1=CONTAINS(POINT(h.ra_deg, h.dec_deg), CIRCLE(u.ra, u.dec, 1.0))", uploads={"mine": mine}, maxrec=100000).to_table()
    for name, ra, dec in mine:
        expected = set(hip2["hip"][haversine_deg(hip2["ra_deg"], hip2["dec_deg"], ra, dec) <= 1.0].tolist())
        assert set(result["hip"][result["name"] == name].tolist()) == expected


def test_tables_are_listed_with_columns(tap):
    service = pyvo.dal.TAPService(tap)
    tables = service.tables
    assert "sample.hip2" in tables.keys()
    columns = {c.name: c for c in tables["sample.hip2"].columns}
    assert columns["plx_mas"].unit == "mas"
    assert "_healpix_29" not in columns


@pytest.mark.parametrize("fmt", ["votable", "fits"])
def test_whole_table_in_binary2_and_fits(tap, hip2, fmt):
    service = pyvo.dal.TAPService(tap)
    if fmt == "votable":
        table = service.search("SELECT hip, ra_deg, hpmag FROM sample.hip2", maxrec=200000).to_table()
    else:
        import io
        import requests
        from astropy.io import fits
        r = requests.post(tap + "/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": "fits", "MAXREC": 200000,
                                                "QUERY": "SELECT hip, ra_deg, hpmag FROM sample.hip2"}, timeout=120)
        assert r.headers["Content-Type"] == "application/fits"
        table = Table.read(fits.open(io.BytesIO(r.content))[1])
    assert len(table) == len(hip2["hip"]) == 117955
    order = np.argsort(table["hip"])
    assert np.array_equal(np.asarray(table["hip"])[order], np.sort(hip2["hip"]))
    ref = np.argsort(hip2["hip"])
    assert np.allclose(np.asarray(table["ra_deg"])[order], hip2["ra_deg"][ref])


def test_bad_adql_gives_a_votable_error_with_the_position(tap):
    service = pyvo.dal.TAPService(tap)
    with pytest.raises(pyvo.dal.DALQueryError) as error:
        service.search("SELECT TOP 5 hip FROM sample.hip2 WHERE")
    assert "line 1, column" in str(error.value)
    with pytest.raises(pyvo.dal.DALQueryError, match="did you mean sample.hip2"):
        service.search("SELECT TOP 5 hip FROM sample.hip3")


def test_upload_from_a_url(tap):
    # The uploaded table is itself a TAP result fetched by colo over http (UPLOAD=name,http://...).
    import urllib.parse
    query = "SELECT TOP 3 hip, ra_deg, dec_deg FROM sample.hip2 ORDER BY hip"
    url = tap + "/sync?" + urllib.parse.urlencode({"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "votable/td"})
    service = pyvo.dal.TAPService(tap)
    result = service.search("SELECT u.hip, h.hpmag FROM TAP_UPLOAD.first AS u JOIN sample.hip2 AS h ON u.hip = h.hip ORDER BY u.hip",
                            uploads={"first": url}).to_table()
    assert list(result["hip"]) == [1, 2, 3]


def test_in_unit_converts_by_the_published_units(tap):
    service = pyvo.dal.TAPService(tap)
    result = service.search("SELECT TOP 20 plx_mas, IN_UNIT(plx_mas, 'arcsec') AS plx_arcsec, "
                            "IN_UNIT(ra_deg, 'hourangle') AS ra_h FROM sample.hip2 ORDER BY hip").to_table()
    assert np.allclose(result["plx_arcsec"], result["plx_mas"] / 1000, rtol=1e-12)
    assert np.all((result["ra_h"] >= 0) & (result["ra_h"] < 24))
    capabilities = urllib.request.urlopen(f"{tap}/capabilities").read().decode()
    assert "features-adql-unit" in capabilities and "<form>IN_UNIT</form>" in capabilities
