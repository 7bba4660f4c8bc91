#!/usr/bin/env bash
# SODA cutout benchmark (issue 4): the same 1 GiB synthetic FITS image (16384² int32) cut by colo from
# S3 (SeaweedFS on loopback) and from local disk, by GAVO DaCHS's SODA from local disk, and by
# downloading the whole object from S3 and cutting it with astropy. 256² and 2048² pixel cutouts.
# Needs the test servers (started here) and DaCHS (benches/dachs_cutout_setup.sh, run here too).
# REPEAT (default 5) timed runs per row; medians. colo runs from a release build on :18791.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/env.sh"
cd "$COLO_REPO"
bench="${COLO_BENCH_DIR:-/tmp/colo-cutout-bench}"
s3=http://127.0.0.1:18333  # scripts/servers.sh S3_PORT
port=18791
metrics=18792
local_dir=/var/gavo/inputs/cutbench/data

bash scripts/servers.sh start >/dev/null
bash benches/dachs_cutout_setup.sh >/dev/null
cargo build --release --bin colo --quiet
colo="$CARGO_TARGET_DIR/release/colo"
PYTHONPATH=tests/vo "$COLO_VENV/bin/python" - <<PY
import boto3
from botocore.config import Config
from images_fixture import put_big
s3 = boto3.client("s3", endpoint_url="$s3", region_name="us-east-1", aws_access_key_id="colotest",
                  aws_secret_access_key="colotestsecret-s3", config=Config(s3={"addressing_style": "path"}))
try:
    s3.create_bucket(Bucket="colo-cutbench")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
if "Contents" not in s3.list_objects_v2(Bucket="colo-cutbench", Prefix="synthetic_big.fits"):
    put_big(s3, "colo-cutbench")
PY

rm -rf "$bench" && mkdir -p "$bench/home"
cat > "$bench/colo.toml" <<TOML
metrics_listen = "127.0.0.1:$metrics"
mount_root = "$bench/mnt"
[cache]
dir = "$bench/cache"
[services]
listen = "127.0.0.1:$port"
tables_dir = "$bench/tables"
jobs_dir = "$bench/jobs"
[[volume]]
name = "bench-local"
url = "file://$local_dir"
[[volume]]
name = "bench-s3"
url = "s3://colo-cutbench/"
endpoint = "$s3"
access_key_id = "colotest"
secret_access_key = "colotestsecret-s3"
TOML
"$colo" ingest images bench-local --config "$bench/colo.toml" 2>/dev/null
"$colo" ingest images bench-s3 --config "$bench/colo.toml" 2>/dev/null
(cd "$bench/home" && COLO_HOME="$bench/home" exec "$colo" up --config "$bench/colo.toml" > "$bench/up.out" 2> "$bench/up.err") &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' "$bench/up.out" && break; sleep 0.2; done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; DaCHS $(dpkg-query -W -f='${Version}' gavodachs2-server)"
PYTHONPATH=tests/vo "$COLO_VENV/bin/python" benches/cutout_bench.py --colo "http://127.0.0.1:$port" \
  --metrics "http://127.0.0.1:$metrics/metrics" \
  --dachs "http://localhost:8080/cutbench/q/dl/dlget" --dachs-id "ivo://x-unregistred/~?cutbench/data/synthetic_big.fits" \
  --s3 "$s3" --bucket colo-cutbench --repeat "${REPEAT:-5}"
