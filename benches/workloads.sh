#!/usr/bin/env bash
# Issue 5's science workloads on the same loopback SeaweedFS bucket through colo, s3fs, rclone
# mount (vfs-cache-mode full) and mountpoint-s3 (with its disk cache), one fresh mount per client: fio sequential reads of 1 GiB (1 and 4
# jobs, cold and warm), FITS headers + sections on 200 files (twice), a 2-of-18-column Parquet read,
# `ls -l` and `find` on 10,000 entries, random 256 KiB reads. Also in the same run: a direct
# single-stream GET (the ceiling) and fio on a local-disk copy (the warm target). Requests and bytes
# per row are counted by the S3 server for every client (SeaweedFS metrics); peak RSS is VmHWM.
# Data is made by this script (synthetic random/normal values) and uploaded once.
#
#   bash benches/workloads.sh                  (needs root: drops the page cache for cold rows)
#   CLIENTS="colo s3fs" bash benches/workloads.sh   (of: colo colo-exact s3fs rclone mountpoint)
# mountpoint-s3 is built on first use by benches/mountpoint_setup.sh (~10 min) and left out where it
# cannot be built.
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
if [ ! -f "$B/uploaded-seq" ]; then  # two 1 GiB objects for fio, kept on local disk as the warm target
  rm -rf "$B/local" "$B/data" && mkdir -p "$B/local/wl" "$B/data/wl"
  for f in seq_1job.bin seq_4jobs.bin; do head -c $((1 << 30)) /dev/urandom > "$B/local/wl/$f"; done
  ln "$B/local/wl/"seq_*.bin "$B/data/wl/"
  COLO_S3_KEY=$KEY COLO_S3_SECRET=$SECRET "$PY" tests/fixtures/s3_put.py $EP $BUCKET tree "$B/data"
  rm -rf "$B/data"
  touch "$B/uploaded-seq"
fi

# LATENCY_MS=20 MBIT=1000: the "real store" rows — every client and the direct GET reach the S3
# server through latency_proxy (tests/src/latency_proxy.rs: each response's first byte LATENCY_MS
# after its request, each connection at most MBIT Mbit/s); the server still counts the requests.
if [ -n "${LATENCY_MS:-}" ]; then
  "$CARGO_TARGET_DIR/release/latency_proxy" 127.0.0.1:18343 127.0.0.1:18333 "$LATENCY_MS" "${MBIT:-1000}" &
  proxy_pid=$!
  trap 'kill $proxy_pid 2>/dev/null; bash scripts/servers.sh stop s3' EXIT
  EP=http://127.0.0.1:18343
  echo "== through latency_proxy: ${LATENCY_MS} ms, ${MBIT:-1000} Mbit/s per connection" >&2
fi

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
drop_caches
curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" "$EP/$BUCKET/wl/seq_1job.bin" -o /dev/null \
  -w '%{speed_download}' | awk '{printf "[{\"row\": \"sequential 1 GiB, fio 1 job(s) (cold)\", \"mib_s\": %.0f}]\n", $1 / 1048576}' \
  > "$B/result-direct.json"
echo "== local disk" >&2
ROWS=seq "$PY" benches/workloads.py "$B/local/wl" > "$B/result-local.json"

CLIENTS="${CLIENTS:-colo colo-exact s3fs rclone mountpoint}"
if [[ " $CLIENTS " == *" mountpoint "* ]]; then
  MOUNT_S3="$(bash benches/mountpoint_setup.sh)"
  if [ -z "$MOUNT_S3" ]; then CLIENTS="$(echo " $CLIENTS " | sed 's/ mountpoint / /')"; echo "== mountpoint-s3 left out" >&2; fi
fi

for client in $CLIENTS; do
  M="$B/mnt-$client"; mkdir -p "$M"; rm -rf "$B/cache-$client"
  case $client in
    colo|colo-exact)  # colo-exact: colo that never fetches a randomly read file whole (cache.random_fill_max_mib = 0)
      COLO_RANDOM_FILL_MIB=$([ $client = colo-exact ] && echo 0 || true) \
        colo_config "$B/$client.toml" "$B/cache-$client" 'metrics_listen = "127.0.0.1:18772"' "metadata_ttl_secs = 3600"
      "$COLO" mount --config "$B/$client.toml" --root "$M" > "$B/$client.out" 2> "$B/$client.err" &
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
    mountpoint)  # its disk cache on, as for the warm rows of the others; metadata TTL 60 s then
      mkdir -p "$B/cache-mountpoint"
      AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_EC2_METADATA_DISABLED=true "$MOUNT_S3" "$BUCKET" "$M" \
        --endpoint-url $EP --read-only --cache "$B/cache-mountpoint" > "$B/mountpoint.log" 2>&1 &
      pid=$!; prefix="$M/wl"; url="" ;;
  esac
  wait_mounted "$M"
  echo "== $client" >&2
  "$PY" benches/workloads.py "$prefix" $url > "$B/result-$client.json" || echo "[]" > "$B/result-$client.json"
  awk '/VmHWM/ {printf "%.0f\n", $2 / 1024}' "/proc/$pid/status" > "$B/peak-rss-$client"
  stop_pid "$pid"
done

"$PY" - "$B" direct local $CLIENTS <<'PY'
import json, sys
base, clients = sys.argv[1], sys.argv[2:]
results = {c: {r["row"]: r for r in json.load(open(f"{base}/result-{c}.json"))} for c in clients}
rows = []
for c in clients:
    rows += [r for r in results[c] if r not in rows]
def cell(r):
    if r is None:
        return "-"
    main = f"{r['mib_s']} MiB/s" if "mib_s" in r else f"{r['seconds']:.2f} s"
    if "srv_get" in r:
        main += f" · {r['srv_get']}/{r['srv_head']}/{r['srv_list']} · {r['srv_bytes'] / 2**20:.1f} MiB"
    return main
print("cells: time or MiB/s · requests the S3 server saw (GET/HEAD/LIST) · MiB it sent")
print()
print("| row | " + " | ".join(clients) + " |")
print("|---" * (len(clients) + 1) + "|")
for row in rows:
    print(f"| {row} | " + " | ".join(cell(results[c].get(row)) for c in clients) + " |")
peaks = []
for c in clients:
    try:
        peaks.append(open(f"{base}/peak-rss-{c}").read().strip() + " MiB")
    except OSError:
        peaks.append("-")
print("| peak RSS (VmHWM) | " + " | ".join(peaks) + " |")
colo = results.get("colo", {})
if colo:
    print()
    print("colo's own count (GET/HEAD/LIST, MiB): " + "; ".join(
        f"{k}: {r.get('get')}/{r.get('head')}/{r.get('list')}, {r.get('bytes', 0) / 2**20:.1f}" for k, r in colo.items()))
PY
