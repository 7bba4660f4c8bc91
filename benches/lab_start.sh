#!/usr/bin/env bash
# Datalab start: from createDatalab to a JupyterLab kernel that has executed a cell reading
# /media/data (astropy opening a FITS file of the sample), on `colo up` with the embedded sample.
#   bash benches/lab_start.sh [runs]
# The peer (JupyterHub 5 with its local-process spawner, same JupyterLab) is not in this script yet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh test >/dev/null
cargo build --release --bin colo --quiet
W="${COLO_TEST_DIR:-/tmp/colo-test}/lab-bench"
for m in $(awk -v w="$W" '$5 ~ "^"w {print $5}' /proc/self/mountinfo); do fusermount3 -uz "$m"; done
rm -rf "$W" && mkdir -p "$W"
"$COLO_VENV/bin/python" benches/lab_start.py "$CARGO_TARGET_DIR/release/colo" "$W" "${1:-5}"
