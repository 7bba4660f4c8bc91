"""One write workload through a mounted client: runs it, then polls the origin (the S3 bucket, or
a server's directory) until what the workload wrote is all there. Prints one JSON row:
{"row", "return_s", "origin_s"} — seconds until the program returned, and until the bytes were at
the origin (both from the start of the workload).

usage: write_workloads.py ROW ORIGIN EXPECT_FILES EXPECT_BYTES -- COMMAND...
  ORIGIN: s3://BUCKET/PREFIX or a local directory (a server's own folder)
  EXPECT_BYTES: -1 to check the file count only
"""
import json
import os
import subprocess
import sys
import time

row, origin, want_files, want_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
command = sys.argv[sys.argv.index("--") + 1:]


def at_origin():
    if origin.startswith("s3://"):
        import boto3
        from botocore.config import Config
        bucket, _, prefix = origin[5:].partition("/")
        s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:18333", region_name="us-east-1",
                          aws_access_key_id="colotest", aws_secret_access_key="colotestsecret-s3",
                          config=Config(s3={"addressing_style": "path"}))
        files = size = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):
                    files += 1
                    size += o["Size"]
        return files, size
    files = size = 0
    for d, _, fs in os.walk(origin):
        for f in fs:
            if ".colo-" in f or f.startswith(".rclone") or ".partial" in f:
                continue  # temporary names of an upload in progress
            files += 1
            size += os.path.getsize(os.path.join(d, f))
    return files, size


start = time.monotonic()
subprocess.run(command, check=True)
returned = time.monotonic() - start
deadline = start + 900
while True:
    files, size = at_origin()
    if files >= want_files and (want_bytes < 0 or size >= want_bytes):
        break
    if time.monotonic() > deadline:
        raise SystemExit(f"{row}: only {files} files, {size} bytes at the origin after 900 s")
    time.sleep(0.1)
print(json.dumps({"row": row, "return_s": round(returned, 2),
                  "origin_s": round(time.monotonic() - start, 2)}))
