"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/ (committed; replayed by
the test command): the IVOA and ROE ADQL corpora of the repository, VOTables in the shapes TAP
clients upload (astropy writes some), small FITS images with a WCS in every tile compression colo
reads (astropy writes them), and hand-written requests, configs and GraphQL bodies that reach
each parameter the services read. Names are content hashes, so reruns change nothing.

Run with the test venv's python (astropy): `scripts/fuzz.sh seed`.
"""

import gzip
import hashlib
import io
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parent.parent
SEEDS = REPO / "fuzz" / "seeds"


def write(target: str, data) -> None:
    if isinstance(data, str):
        data = data.encode()
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def adql() -> list[str]:
    queries = []
    for xml in sorted((REPO / "vo-services/tap/tests/adql-corpus").rglob("*.xml")):
        for node in ET.parse(xml).getroot().iter("adql"):
            if node.text and node.text.strip():
                queries.append(node.text.strip())
    return queries


HIP2 = "sample.hip2"
TAP_QUERIES = [
    f"SELECT TOP 5 hip, ra, dec, vmag FROM {HIP2} ORDER BY vmag",
    f"SELECT COUNT(*) FROM {HIP2} WHERE 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 5))",
    f"SELECT a.hip, DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) AS d FROM {HIP2} AS a "
    f"JOIN {HIP2} AS b ON 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.1)) WHERE a.hip < 100",
    "SELECT table_name, description FROM TAP_SCHEMA.tables",
    f"SELECT ROUND(AVG(vmag), 2), MIN(plx) FROM {HIP2} GROUP BY FLOOR(ra / 30)",
]

DALI = [
    "POS=CIRCLE 10 20 1",
    "POS=RANGE 0 360 -2 2",
    "POS=RANGE 350 10 -90 -80",
    "POS=POLYGON 10 10 12 10 12 12 10 12",
    "CIRCLE=180 -45 0.5&POLYGON=0 0 1 0 1 1",
    "BAND=5e-7 6e-7&TIME=50000 60000",
    "BAND=-Inf 1e-6&TIME=55000 +Inf",
    "POL=I&POL=Q&POL=RR",
    "ID=ivo://colo/sample?m13.fits&POS=CIRCLE 250.42 36.46 0.02&RESPONSEFORMAT=application/fits",
    "INSTRUMENT=WFC3&COLLECTION=hst&EXPTIME=0 100&MAXREC=10&CALIB=2&DPTYPE=image",
    "FOV=0.1 1&SPATRES=0 0.5&SPECRP=100 +Inf&FORMAT=application/fits&TARGET=M13",
    "POS=CIRCLE 1e308 -91 NaN",
]

UWS = [
    f"REQUEST=doQuery&LANG=ADQL&QUERY={TAP_QUERIES[0]}\npPHASE=RUN\nw\nr\nl",
    f"LANG=ADQL&QUERY={TAP_QUERIES[1]}&MAXREC=3\ndDESTRUCTION=2030-01-01T00:00:00Z\n"
    "eEXECUTIONDURATION=5\nmQUERY=SELECT 1 AS x\njPHASE=RUN\nxphase",
    "\x01ID=ivo://colo/sample?m13.fits&CIRCLE=250 36 0.1\npPHASE=RUN\npPHASE=ABORT\nlPHASE=ABORTED&LAST=5",
    f"LANG=ADQL&QUERY={TAP_QUERIES[2]}&FORMAT=csv\npPHASE=RUN\nlAFTER=2000-01-01T00:00:00Z\njACTION=DELETE",
    "QUERY=SELEC broken\npPHASE=RUN\nwPHASE=QUEUED\nq",
]


def vo_requests() -> list[bytes]:
    out = []
    for query in TAP_QUERIES:
        form = f"REQUEST=doQuery&LANG=ADQL&QUERY={query}&FORMAT=votable&MAXREC=20"
        out.append(b"\x00" + form.encode())
        out.append(b"\x01" + form.replace("votable", "csv").encode())
    upload = (
        "--fuzz\r\nContent-Disposition: form-data; name=\"REQUEST\"\r\n\r\ndoQuery\r\n"
        "--fuzz\r\nContent-Disposition: form-data; name=\"LANG\"\r\n\r\nADQL\r\n"
        "--fuzz\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n\r\n"
        "SELECT t.id, h.hip FROM TAP_UPLOAD.t AS t JOIN sample.hip2 AS h ON t.id = h.hip\r\n"
        "--fuzz\r\nContent-Disposition: form-data; name=\"UPLOAD\"\r\n\r\nt,param:t1\r\n"
        "--fuzz\r\nContent-Disposition: form-data; name=\"t1\"; filename=\"t.xml\"\r\n"
        "Content-Type: application/x-votable+xml\r\n\r\n" + VOTABLES[0] + "\r\n--fuzz--\r\n"
    )
    out.append(b"\x02" + upload.encode())
    for i, params in enumerate(DALI):
        out.append(bytes([3 + i % 8]) + params.encode())
    out.append(b"\x0bsample.hip2")
    out.append(b"\x0bTAP_SCHEMA.columns")
    return out


VOTABLES = [
    '<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
    '<RESOURCE><TABLE><FIELD name="id" datatype="int"/><FIELD name="ra" datatype="double" unit="deg"/>'
    "<DATA><TABLEDATA><TR><TD>1</TD><TD>10.5</TD></TR><TR><TD>2</TD><TD></TD></TR>"
    "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>",
    '<VOTABLE><RESOURCE><TABLE><FIELD name="name" datatype="char" arraysize="*"/>'
    '<FIELD name="flag" datatype="boolean"/><FIELD name="v" datatype="float" arraysize="3"/>'
    "<DATA><TABLEDATA><TR><TD>a &amp; b</TD><TD>T</TD><TD>1 2 3</TD></TR></TABLEDATA></DATA>"
    "</TABLE></RESOURCE></VOTABLE>",
]


def astropy_votables() -> list[bytes]:
    """BINARY and BINARY2 serialisations of a table with nulls, arrays, strings and times."""
    import numpy as np
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    table = Table()
    table["id"] = np.arange(3, dtype=np.int64)
    table["ra"] = MaskedColumn([1.5, 2.5, 3.5], mask=[False, True, False], unit="deg")
    table["name"] = ["alpha", "", "gamma"]
    table["flux"] = np.ones((3, 2), dtype=np.float32)
    out = []
    for form in ("tabledata", "binary", "binary2"):
        buffer = io.BytesIO()
        votable = from_table(table)
        votable.get_first_table().format = form
        votable.to_xml(buffer)
        out.append(buffer.getvalue())
    return out


def fits_files() -> list[bytes]:
    """16×12 images with a TAN WCS: plain (16- and -32-bit), in every tile compression colo
    reads and the two it refuses by name, a multi-extension file, and a gzipped one."""
    import numpy as np
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [250.42, 36.46]
    wcs.wcs.crpix = [8, 6]
    wcs.wcs.cdelt = [-0.001, 0.001]
    header = wcs.to_header()
    pixels = (np.arange(12 * 16).reshape(12, 16) % 97).astype(np.int16)
    out = []

    def dump(hdul) -> bytes:
        buffer = io.BytesIO()
        hdul.writeto(buffer)
        return buffer.getvalue()

    out.append(dump(fits.HDUList([fits.PrimaryHDU(pixels, header=header)])))
    out.append(dump(fits.HDUList([fits.PrimaryHDU(pixels.astype(np.float32), header=header)])))
    for codec in ("RICE_1", "GZIP_1", "GZIP_2", "NOCOMPRESS", "HCOMPRESS_1", "PLIO_1"):
        compressed = fits.CompImageHDU(pixels, header=header, compression_type=codec)
        out.append(dump(fits.HDUList([fits.PrimaryHDU(), compressed])))
    cube = np.stack([pixels, pixels + 1]).astype(np.int32)
    cube_header = header.copy()
    cube_header["CTYPE3"] = "WAVE"
    cube_header["CRVAL3"] = 5e-7
    cube_header["CDELT3"] = 1e-9
    cube_header["CUNIT3"] = "m"
    mef = fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(cube, header=cube_header, name="SCI"),
         fits.ImageHDU(pixels, header=header, name="ERR")]
    )
    out.append(dump(mef))
    out.append(gzip.compress(out[0], mtime=0))
    return out


CONFIGS = [
    'mount_root = "/media/data"\n[cache]\ndir = "/var/cache/colo"\nmemory_mib = 512\n'
    'disk_gib = 20\nblock_kib = 1024\n[[volume]]\nname = "archive"\nurl = "s3://bucket/prefix"\n',
    '[[volume]]\nname = "home"\nurl = "sftp://alice@127.0.0.1:2222/home"\npassword_env = "PW"\n'
    'writable = true\n[[volume]]\nname = "ftp"\nurl = "ftp://127.0.0.1:2121/pub"\n',
    '[services]\nlisten = "127.0.0.1:8765"\nquery_memory_mib = 256\nsync_query_secs = 60\n'
    'async_jobs_running = 4\nasync_jobs_per_caller = 2\ntables_dir = "/srv/tables"\n',
    '[cache]\nmemory_mib = 0\ndisk_gib = 0.5\nprefetch_max_mib = 64\nrandom_fill_max_mib = 8\n'
    'upload_wait_secs = 30\nfsync_wait_secs = 0\n[[volume]]\nname = "dav"\n'
    'url = "webdav://127.0.0.1:8081/dav"\n',
    'mount_root = 7\n[[volume]]\nname = "../x"\nurl = "gopher://x"\n',
]

GRAPHQL = [
    "{ me { name admin } }",
    '{ search(q: "mission:Gaia type:dataset") { total items { key title } '
    "facets { name values { value count } } } }",
    '{ search(q: "domain:\\"Space Science\\" free words") { total } }',
    "{ volumes { name reference kind owner access url credentials files } datasets { key title mission } }",
    'mutation { createToken(scopes: ["catalog:read"], expiresDays: 7) { token scopes } }',
    'mutation { addVolume(input: { name: "mine", url: "file:///tmp" }) { name } }',
    'mutation { grantVolume(reference: "mine", user: "alice", access: READ_ONLY) }',
    'mutation { addSelectionToVolume(name: "sel", adql: "SELECT * FROM ivoa.obscore") { name } }',
    "{ __schema { types { name fields { name args { name } } } } }",
    "query Deep { me { name } } query Other { search { total } }",
]


def graphql() -> list[bytes]:
    out = []
    for i, query in enumerate(GRAPHQL):
        body = json.dumps({"query": query, "variables": {}}).encode()
        out.append(bytes([i % 3]) + body)
    out.append(b"\x02" + json.dumps({"query": GRAPHQL[9], "operationName": "Other"}).encode())
    out.append(b"\x01[" + json.dumps({"query": GRAPHQL[0]}).encode() + b"]")
    return out


# Requests through the lab proxy (`METHOD PATH`, then headers): credentials to keep from the lab,
# a forged lab secret, upgrades, odd methods and paths.
LAB_PROXY = [
    "GET /labs/lab-fuzz/api/contents/work?type=directory\nAuthorization: Bearer colo_xxxxxxxx\n",
    "GET /labs/lab-fuzz/lab\nCookie: _xsrf=abc; colo_session=colo_s; colo_csrf=c\nHost: 127.0.0.1:8765\n",
    "POST /labs/lab-fuzz/api/kernels\nX-Colo-Lab-Secret: forged\nContent-Type: application/json\n",
    "GET /labs/lab-fuzz/api/kernels/k/channels\nConnection: Upgrade\nUpgrade: websocket\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n",
    "DELETE /labs/lab-fuzz/api/sessions/s\nCookie: colo_session=a\nCookie: colo_session=b; keep=1\n",
    "HEAD /labs/lab-fuzz/files/big.bin\nTransfer-Encoding: chunked\nTE: trailers\n",
    "GET /labs/lab-fuzz/../lab-other/api/contents\nProxy-Authorization: Basic eDp5\n",
]


def main() -> int:
    for query in adql() + TAP_QUERIES:
        write("adql", query)
    for params in DALI:
        write("dali_params", params)
    for steps in UWS:
        write("uws", ("\x00" + steps) if not steps.startswith("\x01") else steps)
    for request in vo_requests():
        write("vo_requests", request)
    for table in VOTABLES + astropy_votables():
        write("votable_upload", table)
    for data in fits_files():
        write("fits", data)
        # The services publish the FITS seeds as images named after them (tests/fuzzing).
        suffix = "fits.gz" if data[:2] == b"\x1f\x8b" else "fits"
        did = f"ivo://colo.local/fuzz?imgs/field/{hashlib.sha1(data).hexdigest()[:16]}.{suffix}"
        write("vo_requests", b"\x05ID=" + did.encode())
        write("vo_requests", b"\x08ID=" + did.encode())
        write("vo_requests", b"\x09ID=" + did.encode() + b"&CIRCLE=250.42 36.46 0.003&BAND=0 1")
        write("vo_requests", b"\x0aID=" + did.encode() + b"&POS=RANGE 250.4 250.5 36.4 36.5&POL=I")
    for config in CONFIGS:
        write("config_toml", config)
    for body in graphql():
        write("graphql", body)
    for request in LAB_PROXY:
        write("lab_proxy", request)
    for target in sorted(p.name for p in SEEDS.iterdir()):
        print(f"{target}: {len(list((SEEDS / target).iterdir()))} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
