#!/usr/bin/env bash
# TAP benchmark, colo vs GAVO DaCHS on the same machine and the same real catalogue (Gaia DR3 G<10,
# 482,176 rows): sync small query, cones (0.05°, 0.5°, 2°), async overhead, 1M-row BINARY2 download.
# Run benches/dachs_setup.sh first (DaCHS on :8080). colo runs from a release build on :18790.
# REPEAT (default 7) sets the number of timed runs per row (medians are reported).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$COLO_REPO"
GAIA="${GAIA_PARQUET:-$(cd .. && pwd)/shared/data/catalogs/gaia-dr3-g10/gaia_dr3_g10.parquet}"
bench="${COLO_BENCH_DIR:-/tmp/colo-tap-bench}"
port=18790

cargo build --release --bin colo --quiet
colo="$CARGO_TARGET_DIR/release/colo"
curl -s -m 5 http://localhost:8080/tap/availability >/dev/null || { echo "DaCHS is not running: bash benches/dachs_setup.sh" >&2; exit 1; }

rm -rf "$bench" && mkdir -p "$bench"
COLO_HOME="$bench" "$colo" ingest catalog "$GAIA" --table gaiadr3.gaia_source
COLO_HOME="$bench" "$colo" serve --listen "127.0.0.1:$port" > "$bench/serve.out" 2> "$bench/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^ready' "$bench/serve.out" && break; sleep 0.2; done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; DaCHS $(dpkg-query -W -f='${Version}' gavodachs2-server)"
"$COLO_VENV/bin/python" benches/tap_bench.py "colo=http://127.0.0.1:$port/tap:gaiadr3.gaia_source" \
  "dachs=http://localhost:8080/tap:gaia.gaia_source" "--repeat=${REPEAT:-7}"
