# Shared settings for colo's scripts (sourced, not run).
# Everything colo's scripts install or build lives under $COLO_CACHE, outside the clone, so a
# second run (and CI on the same machine) reuses it.
export COLO_CACHE="${COLO_CACHE:-$HOME/.cache/colo}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$COLO_CACHE/target}"
export COLO_VENV="$COLO_CACHE/venv"
# JupyterLab for datalabs: outside any home folder, since labs run as the users' own accounts.
export COLO_LAB_VENV="${COLO_LAB_VENV:-/opt/colo/lab-venv}"
# Runtime files of the test servers (world-readable: nginx workers and sshd read from here).
export COLO_TEST_DIR="${COLO_TEST_DIR:-/tmp/colo-test}"
# Some S3 clients refuse to start with AWS_CA_BUNDLE set; nothing here needs it.
unset AWS_CA_BUNDLE
COLO_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export COLO_REPO
