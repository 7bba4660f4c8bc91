# Shared by the mount benches (source it): environment, a release build of colo, the loopback S3
# credentials, and helpers to wait for a mount and stop a mount process by its PID.
# COLO_BENCH_BIN=<path> runs another colo binary (an older build, for an A/B in the same state).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$COLO_REPO"
export COLO_TEST_DIR=/tmp/colo-bench
bash scripts/setup.sh test
cargo build --release --bin colo --bin latency_proxy --quiet
COLO="${COLO_BENCH_BIN:-$CARGO_TARGET_DIR/release/colo}"
KEY=colotest; SECRET=colotestsecret-s3; EP=http://127.0.0.1:18333

wait_mounted() { for _ in $(seq 1 100); do mountpoint -q "$1" && return 0; sleep 0.2; done; return 1; }

stop_pid() { kill -TERM "$1" 2>/dev/null || true; for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done; kill -KILL "$1" 2>/dev/null || true; }

# colo_config FILE CACHE_DIR [TOP_LINES] [VOLUME_LINES]: a colo.toml with one S3 volume "s3" on $BUCKET.
# COLO_BLOCK_KIB, if set, sets the cache block size (for block-size experiments);
# COLO_RANDOM_FILL_MIB sets cache.random_fill_max_mib, COLO_PREFETCH_MAX_MIB cache.prefetch_max_mib.
colo_config() {
  cat > "$1" <<TOML
${3:-}
[cache]
dir = "$2"
${COLO_BLOCK_KIB:+block_kib = $COLO_BLOCK_KIB}
${COLO_RANDOM_FILL_MIB:+random_fill_max_mib = $COLO_RANDOM_FILL_MIB}
${COLO_PREFETCH_MAX_MIB:+prefetch_max_mib = $COLO_PREFETCH_MAX_MIB}
[[volume]]
name = "s3"
url = "s3://$BUCKET/"
endpoint = "$EP"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
${4:-}
TOML
}
