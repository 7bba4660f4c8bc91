#!/usr/bin/env bash
# Sequential read of one 1 GiB object in loopback SeaweedFS: colo vs s3fs vs rclone mount vs a
# direct single-stream GET (curl), cold (page cache dropped, fresh mount caches) and warm (second
# read through the same mount). Prints a table with MiB/s and the ratio to the direct GET.
#
#   bash benches/seq_read.sh            (needs root: drops the page cache between runs)
#
# The object is random bytes made by this script (synthetic_1gib.bin). Servers are started and
# stopped by scripts/servers.sh (by PID). Each mount is stopped by the PID this script started.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$COLO_REPO"
export COLO_TEST_DIR=/tmp/colo-bench
B="$COLO_TEST_DIR/bench"
mkdir -p "$B"
bash scripts/setup.sh test
cargo build --release --bin colo --quiet
COLO="$CARGO_TARGET_DIR/release/colo"
KEY=colotest; SECRET=colotestsecret-s3; EP=http://127.0.0.1:18333; BUCKET=colo-test
OBJ=bench/synthetic_1gib.bin
SIZE=$((1024 * 1024 * 1024))

trap 'bash scripts/servers.sh stop s3' EXIT
bash scripts/servers.sh start s3
if [ ! -f "$B/uploaded" ]; then
  head -c $SIZE /dev/urandom > "$B/synthetic_1gib.bin"
  COLO_S3_KEY=$KEY COLO_S3_SECRET=$SECRET "$COLO_VENV/bin/python" tests/fixtures/s3_put.py $EP $BUCKET put $OBJ "$B/synthetic_1gib.bin"
  rm -f "$B/synthetic_1gib.bin"
  touch "$B/uploaded"
fi

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# MiB/s reading FILE sequentially in 1 MiB requests, checking the size.
rate() {
  "$COLO_VENV/bin/python" - "$1" "$SIZE" <<'PY'
import sys, time
path, size = sys.argv[1], int(sys.argv[2])
t = time.perf_counter(); n = 0
with open(path, "rb", buffering=0) as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        n += len(b)
dt = time.perf_counter() - t
assert n == size, f"read {n} bytes, expected {size}"
print(f"{n / dt / 2**20:.0f}")
PY
}

wait_mounted() { for _ in $(seq 1 100); do mountpoint -q "$1" && return 0; sleep 0.2; done; return 1; }

stop_pid() { kill -TERM "$1" 2>/dev/null || true; for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done; kill -KILL "$1" 2>/dev/null || true; }

declare -A RES

# Direct single-stream GET (the ceiling).
drop_caches
RES[direct]=$(curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" "$EP/$BUCKET/$OBJ" -o /dev/null -w '%{speed_download}' | awk '{printf "%.0f", $1 / 1048576}')

# colo (fresh cache dir, default cache sizes: 512 MiB memory, 10 GiB disk).
M="$B/mnt-colo"; mkdir -p "$M"; rm -rf "$B/colo-cache"
cat > "$B/colo.toml" <<TOML
[cache]
dir = "$B/colo-cache"
[[volume]]
name = "s3"
url = "s3://$BUCKET/"
endpoint = "$EP"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
TOML
drop_caches
"$COLO" mount --config "$B/colo.toml" --root "$M" > "$B/colo.out" 2> "$B/colo.err" &
PID=$!
wait_mounted "$M"
RES[colo_cold]=$(rate "$M/s3/$OBJ")
RES[colo_warm]=$(rate "$M/s3/$OBJ")
stop_pid $PID
grep "origin s3" "$B/colo.err" || true

# s3fs (defaults: no local cache).
M="$B/mnt-s3fs"; mkdir -p "$M"
echo "$KEY:$SECRET" > "$B/s3fs.passwd"; chmod 600 "$B/s3fs.passwd"
drop_caches
s3fs "$BUCKET" "$M" -f -o url=$EP -o use_path_request_style -o passwd_file="$B/s3fs.passwd" -o ro > "$B/s3fs.log" 2>&1 &
PID=$!
wait_mounted "$M"
RES[s3fs_cold]=$(rate "$M/$OBJ")
RES[s3fs_warm]=$(rate "$M/$OBJ")
stop_pid $PID

# rclone mount, default VFS mode (off) and with --vfs-cache-mode full.
for mode in off full; do
  M="$B/mnt-rclone-$mode"; mkdir -p "$M"; rm -rf "$B/rclone-cache"
  drop_caches
  rclone mount ":s3:$BUCKET" "$M" --s3-provider Other --s3-endpoint $EP --s3-access-key-id $KEY \
    --s3-secret-access-key $SECRET --read-only --vfs-cache-mode $mode --cache-dir "$B/rclone-cache" \
    > "$B/rclone-$mode.log" 2>&1 &
  PID=$!
  wait_mounted "$M"
  RES[rclone_${mode}_cold]=$(rate "$M/$OBJ")
  RES[rclone_${mode}_warm]=$(rate "$M/$OBJ")
  stop_pid $PID
done

d=${RES[direct]}
ratio() { awk -v a="$1" -v b="$d" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "Sequential read of a 1 GiB object, loopback SeaweedFS $(date -u +%F), $(nproc) cores"
printf "%-26s %10s %10s %14s %14s\n" "client" "cold MiB/s" "warm MiB/s" "cold/direct" "warm/direct"
printf "%-26s %10s %10s %14s %14s\n" "direct GET (curl)" "$d" "-" "1.00" "-"
for c in colo s3fs rclone_off rclone_full; do
  printf "%-26s %10s %10s %14s %14s\n" "$c" "${RES[${c}_cold]}" "${RES[${c}_warm]}" "$(ratio ${RES[${c}_cold]})" "$(ratio ${RES[${c}_warm]})"
done
