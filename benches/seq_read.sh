#!/usr/bin/env bash
# Sequential read of one 1 GiB object in loopback SeaweedFS: colo vs s3fs vs rclone mount vs a
# direct single-stream GET (curl), cold (page cache dropped, fresh mount caches) and warm (second
# read through the same mount). Prints a table with MiB/s and the ratio to the direct GET.
#
#   bash benches/seq_read.sh            (needs root: drops the page cache between runs)
#   CLIENTS="colo" bash benches/seq_read.sh   (only some of: colo s3fs rclone)
#   REPEAT=5 bash benches/seq_read.sh         (runs per figure; the median and range are printed)
#
# The object is random bytes made by this script (synthetic_1gib.bin). Servers are started and
# stopped by scripts/servers.sh (by PID). Each mount is stopped by the PID this script started.
source "$(dirname "$0")/mounts.sh"
B="$COLO_TEST_DIR/bench"
mkdir -p "$B"
BUCKET=colo-test
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


CLIENTS="${CLIENTS:-colo s3fs rclone}"
REPEAT="${REPEAT:-3}"
want() { [[ " $CLIENTS " == *" $1 "* ]]; }

# Once PID has mounted MOUNT: read FILE twice ("cold warm" MiB/s), then stop PID.
cold_then_warm() {
  local pid=$1 mount=$2 file=$3 cold warm
  wait_mounted "$mount"
  cold=$(rate "$file"); warm=$(rate "$file")
  stop_pid "$pid"
  echo "$cold $warm"
}

# Each run_* prints "cold warm" in MiB/s, from a fresh mount with empty caches.
run_direct() {
  drop_caches
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" "$EP/$BUCKET/$OBJ" -o /dev/null \
    -w '%{speed_download}' | awk '{printf "%.0f -\n", $1 / 1048576}'
}

run_colo() { # colo with its default cache sizes (512 MiB memory, 10 GiB disk), fresh cache dir
  local M="$B/mnt-colo"; mkdir -p "$M"; rm -rf "$B/colo-cache"
  colo_config "$B/colo.toml" "$B/colo-cache"
  drop_caches
  "$COLO" mount --config "$B/colo.toml" --root "$M" > "$B/colo.out" 2> "$B/colo.err" &
  cold_then_warm $! "$M" "$M/s3/$OBJ"
  grep "origin s3" "$B/colo.err" >&2 || true
}

run_s3fs() { # s3fs defaults (no local cache)
  local M="$B/mnt-s3fs"; mkdir -p "$M"
  echo "$KEY:$SECRET" > "$B/s3fs.passwd"; chmod 600 "$B/s3fs.passwd"
  drop_caches
  s3fs "$BUCKET" "$M" -f -o url=$EP -o use_path_request_style -o passwd_file="$B/s3fs.passwd" -o ro > "$B/s3fs.log" 2>&1 &
  cold_then_warm $! "$M" "$M/$OBJ"
}

run_rclone() { # rclone mount, --vfs-cache-mode $1 (off is its default)
  local mode=$1 M="$B/mnt-rclone-$1"; mkdir -p "$M"; rm -rf "$B/rclone-cache"
  drop_caches
  rclone mount ":s3:$BUCKET" "$M" --s3-provider Other --s3-endpoint $EP --s3-access-key-id $KEY \
    --s3-secret-access-key $SECRET --read-only --vfs-cache-mode "$mode" --cache-dir "$B/rclone-cache" \
    > "$B/rclone-$mode.log" 2>&1 &
  cold_then_warm $! "$M" "$M/$OBJ"
}

# "median (min-max)" of the numbers given.
summary() {
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {
    if (NR == 0 || v[1] == "-") { print "-"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    if (NR > 1) printf "%.0f (%d-%d)\n", m, v[1], v[NR]; else printf "%.0f\n", m }'
}
median() { summary "$@" | awk '{print $1}'; }

declare -A COLD WARM
measure() { # label command...
  local label=$1; shift
  local colds=() warms=() r
  for _ in $(seq 1 "$REPEAT"); do
    r=$("$@"); colds+=("${r% *}"); warms+=("${r#* }")
  done
  COLD[$label]="${colds[*]}"; WARM[$label]="${warms[*]}"
}

LABELS=(direct)
measure direct run_direct
want colo && { measure colo run_colo; LABELS+=(colo); }
want s3fs && { measure s3fs run_s3fs; LABELS+=(s3fs); }
want rclone && { measure "rclone (vfs off)" run_rclone off; measure "rclone (vfs full)" run_rclone full; LABELS+=("rclone (vfs off)" "rclone (vfs full)"); }

d=$(median ${COLD[direct]})
ratio() { awk -v a="$1" -v b="$d" 'BEGIN { if (a == "-") print "-"; else printf "%.2f", a / b }'; }
echo
echo "Sequential read of a 1 GiB object, loopback SeaweedFS, $(date -u +%F), $(nproc) cores, $REPEAT runs each: median (min-max) MiB/s"
printf "| %-18s | %-16s | %-16s | %-11s | %-11s |\n" "client" "cold MiB/s" "warm MiB/s" "cold/direct" "warm/direct"
printf "|%s|%s|%s|%s|%s|\n" "--------------------" "------------------" "------------------" "-------------" "-------------"
for l in "${LABELS[@]}"; do
  cs=$(summary ${COLD[$l]}); ws=$(summary ${WARM[$l]})
  printf "| %-18s | %-16s | %-16s | %-11s | %-11s |\n" "$l" "$cs" "$ws" "$(ratio "$(median ${COLD[$l]})")" "$(ratio "$(median ${WARM[$l]})")"
done
