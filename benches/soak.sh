#!/usr/bin/env bash
# The soak under faults (benches/soak.py): `bash benches/soak.sh [MINUTES]` (default 10). Needs
# the test setup (`bash scripts/setup.sh test`: the venv and SeaweedFS); builds the colo binary
# (debug: the soak checks answers, memory and survival, not speed). Prints the figures that go
# into BENCHMARKS.md and exits 1 on a wrong answer, a dead colo or RSS over budget.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$COLO_REPO"
cargo build -p colo --quiet
export COLO_BIN="${COLO_BIN:-$CARGO_TARGET_DIR/debug/colo}"
"$COLO_VENV/bin/python" benches/soak.py "${1:-10}"
