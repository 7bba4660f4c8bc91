"""The image collection the SIA/DataLink/SODA tests run against, built from registry packages.

Real data only, fetched from PyPI (the test venv's packages and one sdist):
- astropy 8.0.2 test data: SIP (sip-wcs.fits), AZP (1904-66_AZP.fits), tile-compressed M13 (RICE_1),
  a gzip'ed TAN image (dss.14.29.56-62.41.05.fits.gz), and the Calabretta & Greisen reference
  headers `wcs/tests/data/maps/1904-66_*.hdr`, each put on the real 1904-66 pixels (same 192×192
  grid) to get TAN, SIN, CAR, AIT, ZPN, ZEA, STG, ARC, SFL, MER, CEA, MOL and PAR images;
- astroquery 0.4.11 test data: UKIDSS WFCAM (ZPN), MAGPIS (GLON-SIN), NVAS VLA W51 (RA/Dec/FREQ/STOKES);
- pyspeckit 1.0.4 sdist: the HCN cube of region 5 (GLON-SIN/GLAT-SIN/VRAD with RESTFRQ).
Plus `synthetic_big.fits`, made here: 16384×16384 32-bit integers (1 GiB) whose pixel (x, y) holds
y·16384 + x, in S3 only, for the remote-efficiency test.
"""
import glob
import os
import subprocess
import tarfile

import numpy as np
from astropy.io import fits

PROJECTIONS = ["TAN", "SIN", "CAR", "AIT", "ZPN", "ZEA", "STG", "ARC", "SFL", "MER", "CEA", "MOL", "PAR"]
BIG_SIDE = 16384


def site_packages(venv):
    return glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))[0]


def pyspeckit_cube(cache, venv):
    """region5_hcn_crop.fits out of the pyspeckit 1.0.4 sdist (downloaded once into the cache)."""
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    sdists = glob.glob(os.path.join(wheels, "pyspeckit-1.0.4.tar.gz"))
    if not sdists:
        subprocess.run([os.path.join(venv, "bin", "pip"), "download", "--no-deps", "--no-binary", ":all:",
                        "-d", wheels, "pyspeckit==1.0.4"], check=True, capture_output=True)
        sdists = glob.glob(os.path.join(wheels, "pyspeckit-1.0.4.tar.gz"))
    with tarfile.open(sdists[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("tests/data/region5_hcn_crop.fits"))
        return tar.extractfile(member).read()


def build_local(folder, cache, venv):
    sp = site_packages(venv)
    os.makedirs(os.path.join(folder, "maps"), exist_ok=True)
    copies = {
        "astropy/nddata/tests/data/sip-wcs.fits": "sip-wcs.fits",
        "astropy/modeling/tests/data/1904-66_AZP.fits": "1904-66_AZP.fits",
        "astropy/io/fits/hdu/compressed/tests/data/m13_rice.fits": "m13_rice.fits",
        "astropy/io/fits/hdu/compressed/tests/data/m13_gzip.fits": "m13_gzip.fits",
        "astropy/io/fits/hdu/compressed/tests/data/m13_hcomp.fits": "m13_hcomp.fits",
        "astropy/wcs/tests/data/dss.14.29.56-62.41.05.fits.gz": "dss_tan.fits.gz",
        "astroquery/ukidss/tests/data/image.fits": "ukidss_zpn.fits",
        "astroquery/magpis/tests/data/image.fits": "magpis_glon_sin.fits",
        "astroquery/nvas/tests/data/image.imfits": "nvas_w51_4d.fits",
    }
    for src, name in copies.items():
        with open(os.path.join(sp, src), "rb") as f, open(os.path.join(folder, name), "wb") as g:
            g.write(f.read())
    pixels = fits.getdata(os.path.join(sp, "astropy/modeling/tests/data/1904-66_AZP.fits")).astype(np.float32)
    for code in PROJECTIONS:
        text = open(os.path.join(sp, f"astropy/wcs/tests/data/maps/1904-66_{code}.hdr")).read()
        header = fits.Header.fromstring(text)
        header["BITPIX"] = -32
        fits.PrimaryHDU(pixels, header=header).writeto(os.path.join(folder, "maps", f"1904-66_{code}.fits"),
                                                      overwrite=True, output_verify="silentfix")
    # Tile-compressed copies of a real image: dithered float RICE in 2-D tiles, GZIP_2 integers.
    tan = fits.Header.fromstring(open(os.path.join(sp, "astropy/wcs/tests/data/maps/1904-66_TAN.hdr")).read())
    for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2"):
        tan.remove(key, ignore_missing=True)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
        pixels * 1.37 + 0.25, header=tan, compression_type="RICE_1", quantize_method=1, quantize_level=16,
        tile_shape=(16, 40))]).writeto(os.path.join(folder, "tiled_rice_dither.fits"), overwrite=True)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
        (pixels * 100).astype(np.int32), header=tan, compression_type="GZIP_2", tile_shape=(10, 192))]).writeto(
        os.path.join(folder, "tiled_gzip2.fits"), overwrite=True)
    with open(os.path.join(folder, "hcn_cube.fits"), "wb") as f:
        f.write(pyspeckit_cube(cache, venv))
    # Something that is not an image and something that is not FITS: reported and skipped.
    fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=np.arange(3))]).writeto(
        os.path.join(folder, "table_only.fits"), overwrite=True)
    with open(os.path.join(folder, "notes.fits"), "w") as f:
        f.write("these are notes, not FITS\n")


def big_header():
    """The header of synthetic_big.fits."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = 32
    header["NAXIS"] = 2
    header["NAXIS1"] = BIG_SIDE
    header["NAXIS2"] = BIG_SIDE
    for k, v in [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 150.0), ("CRVAL2", 2.0),
                 ("CRPIX1", BIG_SIDE / 2 + 0.5), ("CRPIX2", BIG_SIDE / 2 + 0.5),
                 ("CDELT1", -0.2 / 3600), ("CDELT2", 0.2 / 3600), ("OBJECT", "synthetic")]:
        header[k] = v
    return header


def big_parts(rows_per_part=512):
    """synthetic_big.fits as consecutive byte strings (header first, padding last), ~32 MiB each."""
    head = big_header().tostring().encode()
    x = np.arange(BIG_SIDE, dtype=np.int64)
    for y0 in range(0, BIG_SIDE, rows_per_part):
        y = np.arange(y0, y0 + rows_per_part, dtype=np.int64)[:, None]
        body = (y * BIG_SIDE + x).astype(">i4").tobytes()
        if y0 == 0:
            body = head + body
        if y0 + rows_per_part >= BIG_SIDE:
            body += b"\0" * ((-(len(head) + BIG_SIDE * BIG_SIDE * 4)) % 2880)
        yield body


def write_big(path):
    """synthetic_big.fits on local disk (the benchmarks' copy for DaCHS and local volumes)."""
    with open(path + ".tmp", "wb") as f:
        for part in big_parts():
            f.write(part)
    os.replace(path + ".tmp", path)


def put_big(s3, bucket):
    """Streams synthetic_big.fits (1 GiB of int32, pixel value y*16384 + x) into S3."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="synthetic_big.fits")
    parts = []
    for number, body in enumerate(big_parts(), start=1):
        etag = s3.upload_part(Bucket=bucket, Key="synthetic_big.fits", PartNumber=number,
                              UploadId=upload["UploadId"], Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key="synthetic_big.fits", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
