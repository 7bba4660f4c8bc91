#!/usr/bin/env bash
# The platform's figures: catalogue search latency over 100,000 items (cold and warm), GraphQL
# overhead against the REST handler, and how soon a grant shows in a running mount.
#   bash benches/catalogue_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh test >/dev/null
cargo build --release --bin colo --quiet
W="${COLO_TEST_DIR:-/tmp/colo-test}/catalogue-bench"
for m in $(awk -v w="$W" '$5 ~ "^"w {print $5}' /proc/self/mountinfo); do fusermount3 -uz "$m"; done
rm -rf "$W" && mkdir -p "$W"
"$COLO_VENV/bin/python" benches/catalogue_bench.py "$CARGO_TARGET_DIR/release/colo" "$W"
