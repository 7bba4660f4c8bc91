"""Images: ObsCore ingest, SIA 2.0, DataLink 1.1 and SODA 1.0 through pyvo, astropy and STILTS,
against `colo up` over a local and an S3 image volume (the `images` fixture)."""
import hashlib
import io
import json
import os
import re
import subprocess
import urllib.parse
import warnings

import numpy as np
import pytest
import requests
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
import astropy.units as u
import pyvo
from pyvo.io import uws

from images_fixture import BIG_SIDE, PROJECTIONS, big_header

warnings.simplefilter("ignore")


def did(name, volume="images"):
    return f"ivo://colo.local/{volume}?{volume}/{name}"


def obscore(images):
    tap = pyvo.dal.TAPService(images.url + "/tap")
    return tap.search("SELECT * FROM ivoa.obscore", maxrec=1000).to_table()


def stcs_vertices(text):
    nums = [float(v) for v in text.split()[2:]]
    return list(zip(nums[0::2], nums[1::2]))


def world(w, x, y):
    """ICRS of 0-based pixel (x, y) through astropy (galactic frames converted by astropy)."""
    a, b = w.all_pix2world([[x, y]], 0)[0]
    if w.wcs.ctype[0].startswith("GLON"):
        c = SkyCoord(a * u.deg, b * u.deg, frame="galactic").icrs
        return SkyCoord(c.ra, c.dec)
    return SkyCoord(a * u.deg, b * u.deg)


def test_ingest_reports_skips_and_rerun_reads_only_changes(images):
    first = images.first_report
    assert "skipped images/notes.fits" in first and "skipped images/table_only.fits" in first
    assert re.search(r"ivoa.obscore: 2[0-9] new or changed, 0 unchanged", first), first
    again = images.ingest("images")
    assert re.search(r"0 new or changed, 2[0-9] unchanged, 0 removed", again), again


def test_footprints_and_centres_match_astropy(images):
    rows = obscore(images)
    local = [r for r in rows if r["obs_publisher_did"].startswith(did(""))]
    assert len(local) >= 20
    checked = 0
    for r in local:
        name = r["obs_publisher_did"].split("?images/", 1)[1]
        with fits.open(f"{images.folder}/{name}") as h:
            hdu = next(x for x in h if x.is_image and x.header.get("NAXIS", 0) >= 2 and "CTYPE1" in x.header)
            if "AMDX1" in hdu.header:
                # A DSS plate solution next to the TAN WCS: astropy applies the plate polynomial,
                # colo the standard WCS keywords.
                continue
            w = WCS(hdu.header, fobj=h).celestial
            n1, n2 = int(r["s_xel1"]), int(r["s_xel2"])
            centre = world(w, (n1 - 1) / 2, (n2 - 1) / 2)
            # Galactic: astropy's galactic frame and the Hipparcos matrix differ by ~25 mas.
            assert centre.separation(SkyCoord(r["s_ra"] * u.deg, r["s_dec"] * u.deg)).arcsec < 0.05, name
            if not r["s_region"]:
                assert "AIT" in name or "MOL" in name or "PAR" in name or "CAR" in name or "SFL" in name \
                    or "MER" in name or "CEA" in name, f"{name} has no footprint"
                continue
            vertices = stcs_vertices(r["s_region"])
            for x, y in [(-0.5, -0.5), (n1 - 0.5, -0.5), (n1 - 0.5, n2 - 0.5), (-0.5, n2 - 0.5)]:
                corner = world(w, x, y)
                nearest = min(corner.separation(SkyCoord(a * u.deg, b * u.deg)).arcsec for a, b in vertices)
                assert nearest < 0.05, f"{name}: corner {x},{y} is {nearest} arcsec from the footprint"
            checked += 1
    assert checked >= 15


def test_spectral_polarization_and_types_from_headers(images):
    rows = {r["obs_publisher_did"]: r for r in obscore(images)}
    cube = rows[did("hcn_cube.fits")]
    assert cube["dataproduct_type"] == "cube"
    h = fits.getheader(f"{images.folder}/hcn_cube.fits")
    from astropy.wcs import WCS as W
    spec = W(h).spectral
    n = h["NAXIS3"]
    lam = spec.pixel_to_world([-0.5, n - 0.5]).to(u.m, equivalencies=u.doppler_radio(h["RESTFRQ"] * u.Hz))
    assert cube["em_min"] == pytest.approx(min(lam.value), rel=1e-9)
    assert cube["em_max"] == pytest.approx(max(lam.value), rel=1e-9)
    assert cube["em_xel"] == n
    nvas = rows[did("nvas_w51_4d.fits")]
    assert nvas["pol_states"] == "/I/" and nvas["pol_xel"] == 1
    freq = fits.getheader(f"{images.folder}/nvas_w51_4d.fits")["CRVAL3"]
    assert nvas["em_min"] < 299792458.0 / freq < nvas["em_max"]
    ukidss = rows[did("ukidss_zpn.fits")]
    assert ukidss["t_min"] > 50000 and ukidss["facility_name"] and ukidss["instrument_name"]
    assert rows[did("remote/ukidss_zpn.fits", "images-s3")]["s_ra"] == ukidss["s_ra"]


def test_sia2_by_position_band_time_collection(images):
    sia = pyvo.dal.SIA2Service(images.url + "/sia")
    rows = obscore(images)
    ukidss = next(r for r in rows if r["obs_publisher_did"] == did("ukidss_zpn.fits"))
    found = sia.search(pos=(ukidss["s_ra"], ukidss["s_dec"], 0.01))
    dids = {r["obs_publisher_did"] for r in found}
    assert did("ukidss_zpn.fits") in dids and did("maps/1904-66_TAN.fits") not in dids
    # RANGE and POLYGON forms, and OR between two positions.
    box = sia.search(pos=(ukidss["s_ra"] - 0.01, ukidss["s_ra"] + 0.01, ukidss["s_dec"] - 0.01, ukidss["s_dec"] + 0.01))
    assert did("ukidss_zpn.fits") in {r["obs_publisher_did"] for r in box}
    tan = next(r for r in rows if r["obs_publisher_did"] == did("maps/1904-66_TAN.fits"))
    both = sia.search(pos=[(ukidss["s_ra"], ukidss["s_dec"], 0.01), (tan["s_ra"], tan["s_dec"], 0.5)])
    assert len(both) > len(found)
    cube = next(r for r in rows if r["obs_publisher_did"] == did("hcn_cube.fits"))
    mid = (cube["em_min"] + cube["em_max"]) / 2
    band = {r["obs_publisher_did"] for r in sia.search(band=(mid, mid * 1.000001))}
    assert did("hcn_cube.fits") in band and did("ukidss_zpn.fits") not in band
    t = ukidss["t_min"]
    from astropy.time import Time
    timed = {r["obs_publisher_did"] for r in sia.search(time=(Time(t - 0.01, format="mjd"), Time(t + 0.01, format="mjd")))}
    assert did("ukidss_zpn.fits") in timed and did("hcn_cube.fits") not in timed
    remote = sia.search(collection="images-s3")
    assert {r["obs_collection"] for r in remote} == {"images-s3"} and len(remote) == 3
    assert len(sia.search(collection="images", maxrec=2)) == 2


def test_datalink_from_sia_preview_and_download(images):
    sia = pyvo.dal.SIA2Service(images.url + "/sia")
    rec = next(r for r in sia.search(collection="images") if r["obs_publisher_did"] == did("magpis_glon_sin.fits"))
    links = rec.getdatalink().to_table()
    semantics = list(links["semantics"])
    assert semantics[:3] == ["#this", "#preview", "#cutout"]
    this = requests.get(links["access_url"][0], timeout=60)
    assert this.content == open(f"{images.folder}/magpis_glon_sin.fits", "rb").read()
    png = requests.get(links["access_url"][1], timeout=60)
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png.content[16:20], "big"), int.from_bytes(png.content[20:24], "big")
    assert (width, height) == (300, 300)
    # Several IDs at once, comma-separated like astroquery, with one unknown.
    ids = ",".join([did("magpis_glon_sin.fits"), "ivo://colo.local/images?images/nothing.fits"])
    doc = pyvo.dal.adhoc.DatalinkResults.from_result_url(images.url + "/datalink/links?ID=" + urllib.parse.quote(ids))
    table = doc.to_table()
    errors = [m for m in table["error_message"] if m]
    assert len(errors) == 1 and errors[0].startswith("NotFoundFault")


def cutout(images, name, **params):
    sia = pyvo.dal.SIA2Service(images.url + "/sia")
    rec = next(r for r in sia.search(id=did(name)))
    proc = rec.getdatalink().get_first_proc()
    return fits.open(io.BytesIO(proc.processed(**params).read()))


@pytest.mark.parametrize("name", [f"maps/1904-66_{p}.fits" for p in PROJECTIONS]
                         + ["sip-wcs.fits", "1904-66_AZP.fits", "ukidss_zpn.fits", "magpis_glon_sin.fits",
                            "m13_rice.fits", "m13_gzip.fits", "tiled_rice_dither.fits", "tiled_gzip2.fits"])
def test_cutout_pixels_and_world_coordinates(images, name):
    src = fits.open(f"{images.folder}/{name}")
    hdu = next(h for h in src if h.is_image and h.data is not None)
    w = WCS(hdu.header).celestial
    ny, nx = hdu.data.shape[-2:]
    centre = world(w, nx / 2, ny / 2)
    out = cutout(images, name, circle=(centre.ra.deg, centre.dec.deg, 5 * abs(w.proj_plane_pixel_scales()[0].to_value(u.deg))))
    cut = out[0]
    cw = WCS(cut.header).celestial
    cy, cx = cut.data.shape[-2:]
    assert 4 <= cx <= 20 and 4 <= cy <= 20, cut.data.shape
    # Where the cutout's first pixel came from in the source, through the world coordinates.
    sky0 = cw.pixel_to_world(0, 0)
    x0, y0 = [int(round(float(v))) for v in w.world_to_pixel(sky0)]
    assert np.array_equal(cut.data.reshape(cy, cx), hdu.data.reshape(ny, nx)[y0:y0 + cy, x0:x0 + cx], equal_nan=True)
    for x, y in [(0, 0), (cx - 1, 0), (0, cy - 1), (cx - 1, cy - 1)]:
        # Raw world values: the cutout may carry the primary header's RADESYS (inherited), which
        # would make astropy pick another frame for the same numbers.
        a = world(cw, x, y)
        b = world(w, x0 + x, y0 + y)
        assert a.separation(b).arcsec < 1e-6
    # Original keywords are kept (those of the primary header inherited by an extension too).
    assert cut.header.get("OBJECT") == (hdu.header.get("OBJECT") or src[0].header.get("OBJECT"))
    for key in ("BUNIT", "DATE-OBS", "TELESCOP"):
        if key in hdu.header:
            assert cut.header[key] == hdu.header[key]


def test_band_on_velocity_cube_selects_the_right_channels(images):
    h = fits.getheader(f"{images.folder}/hcn_cube.fits")
    data = fits.getdata(f"{images.folder}/hcn_cube.fits")
    spec = WCS(h).spectral
    rest = h["RESTFRQ"] * u.Hz
    equiv = u.doppler_radio(rest)
    # Channels 100..139: the band between the centres of channels 99.5 and 139.5 (0-based edges).
    lam = spec.pixel_to_world([100, 139]).to(u.m, equivalencies=equiv).value
    out = cutout(images, "hcn_cube.fits", band=(min(lam), max(lam)))[0]
    assert out.data.shape[0] == 40
    assert np.array_equal(out.data, data[100:140], equal_nan=True)
    vel_src = spec.pixel_to_world(100).to(u.m / u.s, equivalencies=equiv)
    vel_cut = WCS(out.header).spectral.pixel_to_world(0).to(u.m / u.s, equivalencies=equiv)
    assert abs((vel_src - vel_cut).value) < 1e-6
    assert out.header["RESTFRQ"] == h["RESTFRQ"]


def soda(images, **params):
    return requests.get(images.url + "/soda/sync", params=params, timeout=120)


def test_soda_errors_and_no_overlap(images):
    ok_id = did("ukidss_zpn.fits")
    for params, status, prefix in [
        ({"ID": ok_id, "CIRCLE": "1 2"}, 400, "UsageError"),
        ({"ID": ok_id, "POLYGON": "1 2 3 4"}, 400, "UsageError"),
        ({"ID": ok_id, "POS": "BOX 1 2 3 4"}, 400, "UsageError"),
        ({"ID": ok_id, "BAND": "2 1"}, 400, "UsageError"),
        ({"ID": ok_id, "BAND": "1e-6 2e-6"}, 400, "UsageError"),
        ({"ID": ok_id, "POL": "I"}, 400, "UsageError"),
        ({"ID": ok_id, "CIRCLE": ["1 2 0.1", "3 4 0.1"]}, 400, "MultiValuedParamNotSupported"),
        ({"ID": "ivo://colo.local/images?images/nothing.fits", "CIRCLE": "1 2 0.1"}, 404, "UsageError"),
        ({"ID": "ivo://colo.local/images?../../etc/passwd"}, 404, "UsageError"),
        ({}, 400, "UsageError"),
    ]:
        r = soda(images, **params)
        assert r.status_code == status, (params, r.status_code, r.text)
        assert r.text.startswith(prefix + ":"), (params, r.text)
        assert r.headers["content-type"].startswith("text/plain")
    # A region far from the image: 204 and nothing else.
    r = soda(images, ID=ok_id, CIRCLE="10 -80 0.01")
    assert r.status_code == 204 and r.content == b""
    cube = did("hcn_cube.fits")
    assert soda(images, ID=cube, BAND="1 2").status_code == 204


def soda_job(images, params, wait_s=60):
    """Creates and runs a SODA async job; returns (job URL, parsed job after it finished)."""
    r = requests.post(images.url + "/soda/async", data=params + [("PHASE", "RUN")],
                      allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    for _ in range(wait_s):
        r = requests.get(url, params={"WAIT": "1"}, timeout=60)
        job = uws.parse_job(io.BytesIO(r.content))
        if job.phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return url, job
    raise AssertionError(f"job {url} still {job.phase}")


def test_soda_async_makes_one_result_per_combination_equal_to_sync(images):
    names = ["ukidss_zpn.fits", "sip-wcs.fits"]
    circles = []
    for name in names:
        h = next(h for h in fits.open(f"{images.folder}/{name}") if h.is_image and h.data is not None)
        w = WCS(h.header).celestial
        ny, nx = h.data.shape[-2:]
        c = world(w, nx / 2, ny / 2)
        circles.append(f"{c.ra.deg} {c.dec.deg} {5 * abs(w.proj_plane_pixel_scales()[0].to_value(u.deg))}")
    # Every ID x region, in that order; those that miss the data make no result.
    expected = []
    for name in names:
        for circle in circles:
            r = soda(images, ID=did(name), CIRCLE=circle)
            assert r.status_code in (200, 204)
            if r.status_code == 200:
                expected.append(r.content)
    assert len(expected) == 2, "each circle lies on its own image only"
    params = [("ID", did(n)) for n in names] + [("CIRCLE", c) for c in circles] + [("RUNID", "two cutouts")]
    url, job = soda_job(images, params)
    assert job.phase == "COMPLETED", job.phase
    assert job.runid == "two cutouts"
    got = [requests.get(r.href, timeout=60) for r in job.results]
    assert [r.id_ for r in job.results] == ["cutout-1", "cutout-2"]
    assert [r.mimetype for r in job.results] == ["application/fits"] * 2
    assert all(r.headers["content-type"] == "application/fits" for r in got)
    assert [r.content for r in got] == expected
    assert int(job.results[0].size) == len(expected[0])
    # The job stays listed and can be deleted.
    jobs = uws.parse_job_list(io.BytesIO(requests.get(images.url + "/soda/async", timeout=60).content))
    assert any(j.jobid == job.jobid for j in jobs)
    assert requests.delete(url, allow_redirects=False, timeout=60).status_code == 303
    assert requests.get(url, timeout=60).status_code == 404


def test_soda_async_errors_are_job_errors_with_the_soda_prefix(images):
    for params, prefix in [
        ([("ID", "ivo://colo.local/images?images/nothing.fits")], "UsageError"),
        ([("ID", did("ukidss_zpn.fits")), ("CIRCLE", "1 2")], "UsageError"),
        ([("CIRCLE", "1 2 0.1")], "UsageError"),
    ]:
        url, job = soda_job(images, params)
        assert job.phase == "ERROR", (params, job.phase)
        r = requests.get(url + "/error", timeout=60)
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text.startswith(prefix + ":"), r.text
        assert job.errorsummary.message.content.startswith(prefix + ":")
    # A region off every image: the job completes with no result.
    url, job = soda_job(images, [("ID", did("ukidss_zpn.fits")), ("CIRCLE", "10 -80 0.01")])
    assert job.phase == "COMPLETED" and list(job.results) == []
    caps = requests.get(images.url + "/soda/capabilities", timeout=60).text
    assert 'standardID="ivo://ivoa.net/std/SODA#async-1.0"' in caps


def test_sia_errors_are_votable_usage_faults(images):
    for params in [{"POS": "CIRCLE 1 2"}, {"BAND": "x"}, {"CALIB": "two"}, {"MAXREC": "-1"}]:
        r = requests.get(images.url + "/sia/query", params=params, timeout=60)
        assert r.status_code == 400
        assert re.search(r'<INFO name="QUERY_STATUS" value="ERROR">UsageFault: ', r.text), r.text


def test_datalinklint_reports_no_errors(images):
    ids = urllib.parse.quote(",".join([did("hcn_cube.fits"), did("nvas_w51_4d.fits"), "nope"]))
    out = subprocess.run(["stilts", "datalinklint", f"votable={images.url}/datalink/links?ID={ids}",
                          "format=json"], capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout)
    assert report["totals"]["ERROR"] == 0, out.stdout
    assert report["totals"]["WARNING"] == 0, out.stdout


def origin_bytes(images, volume):
    text = requests.get(images.metrics, timeout=30).text
    m = re.search(r'colo_origin_bytes_total\{volume="%s"\} (\d+)' % re.escape(volume), text)
    return int(m.group(1))


def test_remote_cutout_of_a_1_gib_image_reads_only_its_rows(images):
    big = did("synthetic_big.fits", "images-s3")
    w = WCS(big_header())
    # 256×256 pixels from 0-based pixel (5000, 9000): a polygon through their outer corners.
    corners = [w.pixel_to_world(x, y) for x, y in [(4999.6, 8999.6), (5255.4, 8999.6), (5255.4, 9255.4), (4999.6, 9255.4)]]
    polygon = " ".join(f"{c.ra.deg} {c.dec.deg}" for c in corners)
    before = origin_bytes(images, "images-s3")
    r = soda(images, ID=big, POLYGON=polygon)
    assert r.status_code == 200, r.text
    moved = origin_bytes(images, "images-s3") - before
    cut = fits.open(io.BytesIO(r.content))[0]
    ny, nx = cut.data.shape
    assert (nx, ny) == (256, 256)
    x0, y0 = [int(round(float(v))) for v in w.world_to_pixel(WCS(cut.header).pixel_to_world(0, 0))]
    assert (x0, y0) == (5000, 9000)
    ys, xs = np.mgrid[0:ny, 0:nx]
    assert np.array_equal(cut.data, (y0 + ys) * BIG_SIDE + x0 + xs)
    cutout_bytes = nx * ny * 4
    assert moved <= 2 * cutout_bytes + 3 * 2880, f"{moved} origin bytes for a {cutout_bytes}-byte cutout"


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")))


def test_download_of_a_1_gib_file_streams_the_exact_bytes(images):
    """#this of the 1 GiB S3 image: every byte right, and colo's peak RSS grows far less than 1 GiB."""
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(
        f"{images.url}/datalink/links?ID={urllib.parse.quote(did('synthetic_big.fits', 'images-s3'))}")
    url = next(r.access_url for r in links if r.semantics == "#this")
    pid = images.proc.proc.pid
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    rss_before_kib = vm_kib(pid, "VmRSS")
    got, expected = hashlib.sha256(), hashlib.sha256()
    size = 0
    with requests.get(url, stream=True, timeout=600) as r:
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == 2880 + BIG_SIDE * BIG_SIDE * 4 + 2880 - (BIG_SIDE * BIG_SIDE * 4) % 2880
        for chunk in r.iter_content(8 << 20):
            got.update(chunk)
            size += len(chunk)
    head = big_header().tostring().encode()
    expected.update(head)
    x = np.arange(BIG_SIDE, dtype=np.int64)
    for y0 in range(0, BIG_SIDE, 512):
        y = np.arange(y0, y0 + 512, dtype=np.int64)[:, None]
        expected.update((y * BIG_SIDE + x).astype(">i4").tobytes())
    expected.update(b"\0" * ((-(len(head) + BIG_SIDE * BIG_SIDE * 4)) % 2880))
    assert size == int(r.headers["content-length"])
    assert got.hexdigest() == expected.hexdigest()
    grew_mib = (vm_kib(pid, "VmHWM") - rss_before_kib) / 1024
    assert grew_mib < 200, f"peak RSS grew {grew_mib:.0f} MiB while streaming 1 GiB"


def test_newcomer_finds_the_sample_cube_previews_and_cuts_it(up, tap):
    """After `colo up` with no config: SIA2 by BAND finds the sample's HCN cube; its DataLink has a
    PNG preview; a SODA cutout by circle and band through pyvo has the source's pixels."""
    base = tap.rsplit("/tap", 1)[0]
    path = os.path.join(up.home, "sample/images/hcn_region5_cube.fits")
    h, data = fits.getheader(path), fits.getdata(path)
    equiv = u.doppler_radio(h["RESTFRQ"] * u.Hz)
    lam_m = WCS(h).spectral.pixel_to_world([200, 239]).to(u.m, equivalencies=equiv).value
    found = pyvo.dal.SIA2Service(base + "/sia").search(band=(min(lam_m), max(lam_m)), collection="sample")
    rows = [r for r in found if r["obs_publisher_did"].endswith("hcn_region5_cube.fits")]
    assert len(rows) == 1 and rows[0]["dataproduct_type"] == "cube"
    assert rows[0]["em_xel"] == 352
    links = rows[0].getdatalink()
    preview = next(r for r in links if r.semantics == "#preview")
    png = requests.get(preview.access_url, timeout=60)
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    w = WCS(h).celestial
    centre = world(w, 23, 18)
    cut = fits.open(io.BytesIO(links.get_first_proc().processed(
        circle=(centre.ra.deg, centre.dec.deg, 0.01), band=(min(lam_m), max(lam_m))).read()))[0]
    nz, ny, nx = cut.data.shape
    assert nz == 40 and nx < 47 and ny < 37
    sky0 = WCS(cut.header).celestial.pixel_to_world(0, 0)
    x0, y0 = [int(round(float(v))) for v in w.world_to_pixel(sky0)]
    assert np.array_equal(cut.data, data[200:240, y0:y0 + ny, x0:x0 + nx], equal_nan=True)


def test_tile_compressed_image_previews_and_downloads_as_plain_fits(images):
    """The real RICE image (m13_rice.fits, SkyView via astropy's test data) gets a PNG preview, and
    its image HDU downloads (#this with HDU) as a plain FITS image equal to astropy's decompression."""
    did_ = did("m13_rice.fits")
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(
        f"{images.url}/datalink/links?ID={urllib.parse.quote(did_)}")
    preview = next(r for r in links if r.semantics == "#preview")
    png = requests.get(preview.access_url, timeout=60)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = requests.get(images.url + "/datalink/download", params={"ID": did_, "HDU": "1"}, timeout=60)
    assert r.status_code == 200, r.text
    plain = fits.open(io.BytesIO(r.content))
    assert len(plain) == 1 and "ZIMAGE" not in plain[0].header and "TFORM1" not in plain[0].header
    src = fits.open(f"{images.folder}/m13_rice.fits")[1]
    assert np.array_equal(plain[0].data, src.data)
    assert plain[0].header["CRVAL1"] == src.header["CRVAL1"]
    # HCOMPRESS_1 is published (headers are read) but its pixels are refused by name, not garbled.
    r = soda(images, ID=did("m13_hcomp.fits"), CIRCLE="250.4226 36.4602 0.01")
    assert r.status_code >= 400 and r.text.startswith("Error:") and "HCOMPRESS_1" in r.text, r.text
