"""Uploaded source lists crossmatched against the sample's Hipparcos-2 (117,955 stars) through pyvo,
every way ADQL writes it, for 10, 1,000 and 100,000 positions: the pairs equal an exact brute-force
match computed here with numpy. (That the plan is a hash join on HEALPix cells, never a nested loop
over the catalogue, is checked in `cargo test -p colo-tap`.)"""
import time

import numpy as np
import pytest
import pyvo
from astropy.table import Table

FORMS = {
    "join-distance": "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t "
                     "ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra_deg, t.dec_deg)) < {r}",
    "catalogue-first": "SELECT u.id, t.hip FROM sample.hip2 AS t JOIN TAP_UPLOAD.targets AS u "
                       "ON DISTANCE(POINT(t.ra_deg, t.dec_deg), POINT(u.ra, u.dec)) < {r}",
    "comma-where": "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u, sample.hip2 AS t "
                   "WHERE DISTANCE(u.ra, u.dec, t.ra_deg, t.dec_deg) < {r}",
    "contains": "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t "
                "ON 1 = CONTAINS(POINT('ICRS', t.ra_deg, t.dec_deg), CIRCLE('ICRS', u.ra, u.dec, {r}))",
    "per-row-radius": "SELECT u.id, t.hip FROM TAP_UPLOAD.targets AS u JOIN sample.hip2 AS t "
                      "ON DISTANCE(POINT(u.ra, u.dec), POINT(t.ra_deg, t.dec_deg)) < u.r_arcsec / 3600",
}
RADIUS_ARCSEC = 5.0


def targets(hip2, n, seed=1):
    """`n` positions: most a few arcseconds from a catalogue star, some anywhere on the sky."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(hip2["hip"]), n)
    offset = rng.uniform(0, 8, n) / 3600
    angle = rng.uniform(0, 2 * np.pi, n)
    dec = np.clip(hip2["dec_deg"][picks] + offset * np.sin(angle), -89.9, 89.9)
    ra = (hip2["ra_deg"][picks] + offset * np.cos(angle) / np.cos(np.radians(dec))) % 360
    anywhere = rng.random(n) < 0.1
    ra[anywhere] = rng.uniform(0, 360, anywhere.sum())
    dec[anywhere] = np.degrees(np.arcsin(rng.uniform(-1, 1, anywhere.sum())))
    r_arcsec = np.where(rng.random(n) < 0.5, 3.0, 8.0)
    return Table({"id": np.arange(n), "ra": ra, "dec": dec, "r_arcsec": r_arcsec})


def separation_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def brute_force(hip2, table, radius_arcsec):
    """Exact pairs: every catalogue star within the radius, found among the stars of the target's
    declination band (the catalogue sorted by declination)."""
    order = np.argsort(hip2["dec_deg"])
    dec_sorted = hip2["dec_deg"][order]
    pairs = set()
    for row, (i, ra, dec) in enumerate(zip(table["id"], table["ra"], table["dec"])):
        r = radius_arcsec[row] / 3600
        lo, hi = np.searchsorted(dec_sorted, [dec - r, dec + r])
        candidates = order[lo:hi]
        near = candidates[separation_deg(ra, dec, hip2["ra_deg"][candidates], hip2["dec_deg"][candidates]) < r]
        pairs.update((int(i), int(h)) for h in hip2["hip"][near])
    return pairs


@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_upload_crossmatch_equals_brute_force(tap, hip2, n):
    service = pyvo.dal.TAPService(tap)
    table = targets(hip2, n)
    fixed = brute_force(hip2, table, np.full(n, RADIUS_ARCSEC))
    per_row = brute_force(hip2, table, np.asarray(table["r_arcsec"]))
    assert len(fixed) >= 0.5 * n, "most targets have a star within 5 arcseconds"
    forms = FORMS if n <= 1000 else {k: FORMS[k] for k in ("join-distance", "per-row-radius")}
    for name, query in forms.items():
        started = time.monotonic()
        result = service.search(query.format(r=RADIUS_ARCSEC / 3600), uploads={"targets": table},
                                maxrec=10_000_000).to_table()
        took = time.monotonic() - started
        got = set(zip(result["id"].tolist(), result["hip"].tolist()))
        assert got == (per_row if name == "per-row-radius" else fixed), name
        print(f"{n} targets, {name}: {len(got)} pairs in {took:.2f} s")
