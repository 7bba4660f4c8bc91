#!/usr/bin/env bash
# Datalab start: from createDatalab to a JupyterLab kernel that has executed a cell reading
# /media/data (astropy opening a FITS file of the sample), on `colo up` with the embedded sample.
#   bash benches/lab_start.sh [runs]
# Then the peer in the same run: JupyterHub 5 with its local-process spawner (a system account
# `hubbench` of its own) and configurable-http-proxy, starting the same JupyterLab (the pins of
# scripts/requirements-lab.txt, in a venv of its own with jupyterhub) — benches/hub_start.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh test >/dev/null
cargo build --release --bin colo --quiet
W="${COLO_TEST_DIR:-/tmp/colo-test}/lab-bench"
for m in $(awk -v w="$W" '$5 ~ "^"w {print $5}' /proc/self/mountinfo); do fusermount3 -uz "$m"; done
rm -rf "$W" && mkdir -p "$W"
# Under /opt like the lab venv: the hub runs JupyterLab as its own account, which cannot enter /root.
HUB_VENV=/opt/colo/hub-venv CHP_DIR="$COLO_CACHE/chp"
want="$(cat scripts/requirements-lab.txt; echo jupyterhub==5.5.4)"
if [ "$(cat "$HUB_VENV/.requirements" 2>/dev/null)" != "$want" ]; then
  echo "lab_start: installing JupyterHub 5 and the lab's JupyterLab into $HUB_VENV"
  rm -rf "$HUB_VENV" && /usr/bin/python3 -m venv "$HUB_VENV"
  "$HUB_VENV/bin/pip" install -q -r scripts/requirements-lab.txt jupyterhub==5.5.4
  chmod -R a+rX "$HUB_VENV"
  echo "$want" > "$HUB_VENV/.requirements"
fi
if [ ! -x "$CHP_DIR/node_modules/.bin/configurable-http-proxy" ]; then
  echo "lab_start: installing configurable-http-proxy 5.3.0 (npm) into $CHP_DIR"
  npm install --silent --prefix "$CHP_DIR" configurable-http-proxy@5.3.0 >/dev/null
  chmod -R a+rX "$CHP_DIR"
fi
PYTHONPATH=benches "$COLO_VENV/bin/python" benches/lab_start.py "$CARGO_TARGET_DIR/release/colo" "$W" "${1:-5}" \
  "$HUB_VENV" "$CHP_DIR/node_modules/.bin/configurable-http-proxy"
