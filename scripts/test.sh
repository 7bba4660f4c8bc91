#!/usr/bin/env bash
# Every test colo has, from a clean state: unit and core tests, the behaviour suite on every backend
# against real servers on 127.0.0.1 (SeaweedFS S3, wsgidav WebDAV, pyftpdlib FTP, OpenSSH SFTP, nginx
# HTTP, a local directory), and the real-mount suite (ls, cat, cmp, find, astropy, pyarrow, faults).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$COLO_REPO"

bash scripts/setup.sh test
echo "== build: the colo binary (the real-mount and VO tests run it) and every test binary"
# One build of all targets: the binary gets the same feature set as the tests (`cargo build --bin`
# alone resolves features without the dev-dependencies and would rebuild DataFusion a second time).
cargo build --workspace --all-targets --quiet
test -x "$CARGO_TARGET_DIR/debug/colo" || { echo "test: $CARGO_TARGET_DIR/debug/colo was not built" >&2; exit 1; }

echo "== clean test state in $COLO_TEST_DIR"
bash scripts/servers.sh stop || true
if [ -d "$COLO_TEST_DIR" ]; then
  # Mounts left by an interrupted run: unmount before removing anything.
  awk -v d="$COLO_TEST_DIR" '$5 ~ "^"d {print $5}' /proc/self/mountinfo | while read -r m; do
    fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" || true
  done
  rm -rf "$COLO_TEST_DIR"
fi

trap 'bash scripts/servers.sh stop' EXIT
echo "== start the test servers"
bash scripts/servers.sh start
bash scripts/servers.sh config "$COLO_TEST_DIR/colo.toml"
bash scripts/servers.sh rw-config "$COLO_TEST_DIR/colo-rw.toml"

echo "== cargo tests (unit, core, behaviour suite on every backend)"
COLO_TEST_S3_SECRET=colotestsecret-s3 \
COLO_BEHAVIOUR_CONFIG="$COLO_TEST_DIR/colo.toml" \
COLO_BEHAVIOUR_RW_CONFIG="$COLO_TEST_DIR/colo-rw.toml" \
COLO_BEHAVIOUR_FIXTURE="$COLO_TEST_DIR/fixture" \
  cargo test --workspace -- --include-ignored

echo "== Kubernetes: the deploy manifests and the lab objects colo creates, against the OpenAPI schemas"
"$COLO_VENV/bin/python" -m pytest -p no:cacheprovider -q tests/deploy

echo "== real-mount tests"
COLO_BIN="$CARGO_TARGET_DIR/debug/colo" \
  "$COLO_VENV/bin/python" -m pytest -p no:cacheprovider -q --durations=15 tests/mount

echo "== VO service tests (pyvo, astroquery, STILTS taplint)"
COLO_BIN="$CARGO_TARGET_DIR/debug/colo" \
  "$COLO_VENV/bin/python" -m pytest -p no:cacheprovider -q --durations=10 tests/vo

echo "== the scale-out path: a published table through Ballista (scheduler + executor in one process)"
# A workspace of its own (Ballista turns on DataFusion's default features); same build directory.
cargo test --manifest-path scale-out/ballista/Cargo.toml --quiet
