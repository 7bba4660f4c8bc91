#!/usr/bin/env bash
# TAP at archive scale (issue 15): colo against GAVO DaCHS 2.7 on Tycho-2 (1,871,011 stars, from the
# Debian astrometry.net index package: benches/tycho2_prepare.py), in one run: sync small query,
# cones (0.05°, 0.5°, 2°) on colo's local table, on the same table in S3 (SeaweedFS, read through
# colo's connector and cache) and on DaCHS, and upload crossmatches of 1,000 and 100,000 positions.
# Run `bash benches/dachs_setup.sh tycho2` first (DaCHS on :8080). colo: release build, on :18793.
# REPEAT (default 7) sets the timed runs per row (medians reported).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$COLO_REPO"
TYCHO2="${TYCHO2_PARQUET:-$HOME/.cache/colo/bench-data/tycho2.parquet}"
bench="${COLO_BENCH_DIR:-/tmp/colo-tycho2-bench}"
port=18793

[ -s "$TYCHO2" ] || "$COLO_VENV/bin/python" benches/tycho2_prepare.py "$TYCHO2"
cargo build --release --bin colo --quiet
colo="$CARGO_TARGET_DIR/release/colo"
curl -s -m 5 http://localhost:8080/tap/availability >/dev/null || { echo "DaCHS is not running: bash benches/dachs_setup.sh tycho2" >&2; exit 1; }
bash scripts/servers.sh start s3 >/dev/null

rm -rf "$bench" && mkdir -p "$bench"
COLO_S3_KEY=colotest COLO_S3_SECRET=colotestsecret-s3 \
  "$COLO_VENV/bin/python" tests/fixtures/s3_put.py http://127.0.0.1:18333 colo-bench-tables bucket
cat > "$bench/colo.toml" <<TOML
mount_root = "$bench/mnt"
[cache]
dir = "$bench/cache"
[services]
listen = "127.0.0.1:$port"
tables_dir = "$bench/tables"
jobs_dir = "$bench/jobs"
upload_limit_mib = 256
table_volumes = ["bench-s3/tables"]
[[volume]]
name = "bench-s3"
url = "s3://colo-bench-tables/"
endpoint = "http://127.0.0.1:18333"
access_key_id = "colotest"
secret_access_key = "colotestsecret-s3"
TOML
"$colo" ingest catalog "$TYCHO2" --table tycho2.main --config "$bench/colo.toml"
"$colo" ingest catalog "$TYCHO2" --table tycho2_s3.main --to bench-s3/tables --config "$bench/colo.toml"
"$colo" serve --config "$bench/colo.toml" > "$bench/serve.out" 2> "$bench/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' "$bench/serve.out" && break; sleep 0.2; done
grep -q '^ready' "$bench/serve.out" || { cat "$bench/serve.err" >&2; exit 1; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; DaCHS $(dpkg-query -W -f='${Version}' gavodachs2-server)"
"$COLO_VENV/bin/python" benches/tycho2_bench.py "colo=http://127.0.0.1:$port/tap:tycho2.main" \
  "colo-s3=http://127.0.0.1:$port/tap:tycho2_s3.main" "dachs=http://localhost:8080/tap:tycho2.main" \
  "--repeat=${REPEAT:-7}"
