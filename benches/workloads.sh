#!/usr/bin/env bash
# Issue 5's science workloads on the same loopback SeaweedFS bucket through colo, s3fs and rclone
# mount (vfs-cache-mode full), one fresh mount per client: FITS headers + sections on 200 files
# (twice), a 2-of-18-column Parquet read, `ls -l` and `find` on 10,000 entries, random 256 KiB reads.
# colo's rows also give its origin requests (from its /metrics). Data is made by this script
# (synthetic_*) and uploaded once.
#
#   bash benches/workloads.sh                  (needs root: drops the page cache for cold rows)
#   CLIENTS="colo s3fs" bash benches/workloads.sh
source "$(dirname "$0")/mounts.sh"
B="$COLO_TEST_DIR/workloads"
mkdir -p "$B"
BUCKET=colo-bench
PY="$COLO_VENV/bin/python"

trap 'bash scripts/servers.sh stop s3' EXIT
bash scripts/servers.sh start s3
if [ ! -f "$B/uploaded" ]; then
  rm -rf "$B/data" && mkdir -p "$B/data/wl/fits" "$B/data/wl/many"
  "$PY" - "$B/data/wl" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from astropy.io import fits
root = sys.argv[1]
rng = np.random.default_rng(5)
for i in range(200):
    fits.PrimaryHDU(rng.normal(size=(512, 512)).astype("f4")).writeto(f"{root}/fits/synthetic_{i:03d}.fits")
n = 1_400_000
pq.write_table(pa.table({f"c{j:02d}": rng.normal(size=n) for j in range(18)}), f"{root}/synthetic_18cols.parquet",
               row_group_size=128 * 1024)
for i in range(10_000):
    with open(f"{root}/many/f{i:05d}.txt", "w") as f:
        f.write(f"{i}\n")
with open(f"{root}/synthetic_256mib.bin", "wb") as f:
    f.write(os.urandom(256 << 20))
PY
  COLO_S3_KEY=$KEY COLO_S3_SECRET=$SECRET "$PY" tests/fixtures/s3_put.py $EP $BUCKET tree "$B/data"
  rm -rf "$B/data"
  touch "$B/uploaded"
fi

CLIENTS="${CLIENTS:-colo s3fs rclone}"

for client in $CLIENTS; do
  M="$B/mnt-$client"; mkdir -p "$M"; rm -rf "$B/cache-$client"
  case $client in
    colo)
      colo_config "$B/colo.toml" "$B/cache-colo" 'metrics_listen = "127.0.0.1:18772"' "metadata_ttl_secs = 3600"
      "$COLO" mount --config "$B/colo.toml" --root "$M" > "$B/colo.out" 2> "$B/colo.err" &
      pid=$!; prefix="$M/s3/wl"; url=http://127.0.0.1:18772/metrics ;;
    s3fs)
      echo "$KEY:$SECRET" > "$B/s3fs.passwd"; chmod 600 "$B/s3fs.passwd"
      s3fs "$BUCKET" "$M" -f -o url=$EP -o use_path_request_style -o passwd_file="$B/s3fs.passwd" -o ro > "$B/s3fs.log" 2>&1 &
      pid=$!; prefix="$M/wl"; url="" ;;
    rclone)
      rclone mount ":s3:$BUCKET" "$M" --s3-provider Other --s3-endpoint $EP --s3-access-key-id $KEY \
        --s3-secret-access-key $SECRET --read-only --vfs-cache-mode full --cache-dir "$B/cache-rclone" \
        > "$B/rclone.log" 2>&1 &
      pid=$!; prefix="$M/wl"; url="" ;;
  esac
  wait_mounted "$M"
  echo "== $client" >&2
  "$PY" benches/workloads.py "$prefix" $url > "$B/result-$client.json" || echo "[]" > "$B/result-$client.json"
  ps -o rss= -p "$pid" | awk -v c="$client" '{printf "%s peak-ish RSS %.0f MiB\n", c, $1/1024}' >&2
  stop_pid "$pid"
done

"$PY" - $CLIENTS <<PY
import json, sys
clients = sys.argv[1:]
results = {c: {r["row"]: r for r in json.load(open(f"$B/result-{c}.json"))} for c in clients}
rows = list(next(iter(results.values())).keys())
print("| row | " + " | ".join(clients) + " | colo origin GET/HEAD/LIST |")
print("|---" * (len(clients) + 2) + "|")
for row in rows:
    cells = [f"{results[c][row]['seconds']:.2f} s" if row in results[c] else "failed" for c in clients]
    o = results.get("colo", {}).get(row, {})
    origin = f"{o.get('get', '-')}/{o.get('head', '-')}/{o.get('list', '-')}" if o else "-"
    print(f"| {row} | " + " | ".join(cells) + f" | {origin} |")
PY
