#!/usr/bin/env bash
# Writes through colo and its peers into the same loopback SeaweedFS S3 bucket, one fresh mount
# per client, in one run: a 1 GiB sequential write with fsync (dd), `tar x` of a 5,000-file source
# tree, and `git clone` of this repository. For each: seconds until the program returned and until
# every byte was at the origin (benches/write_workloads.py polls the bucket). The same workloads on
# the local disk give the time-to-return target.
#
#   bash benches/write_workloads.sh                 (CLIENTS="colo rclone s3fs" by default)
#   CLIENTS="colo-local rclone-local" bash benches/write_workloads.sh   (a local read-write volume:
#                                                   colo's direct path, rclone over the same folder)
#   CLIENTS="colo-webdav rclone-webdav colo-sftp rclone-sftp" bash benches/write_workloads.sh
source "$(dirname "$0")/mounts.sh"
B="$COLO_TEST_DIR/write-workloads"
mkdir -p "$B"
BUCKET=colo-wbench
PY="$COLO_VENV/bin/python"
trap 'bash scripts/servers.sh stop s3 webdav sftp' EXIT  # every server this bench may start (its own, in $COLO_TEST_DIR)
bash scripts/servers.sh start s3
COLO_S3_KEY=$KEY COLO_S3_SECRET=$SECRET "$PY" tests/fixtures/s3_put.py $EP $BUCKET bucket

# The inputs, on local disk: 1 GiB of random bytes, a 5,000-file tree (sizes 200 B to 40 KiB, in
# 100 folders, like a source tree) as a tar, and the repository to clone.
if [ ! -f "$B/big.bin" ]; then head -c $((1 << 30)) /dev/urandom > "$B/big.bin"; fi
if [ ! -f "$B/tree.tar" ]; then
  rm -rf "$B/tree" && "$PY" - "$B/tree" <<'PY'
import os, random, sys
random.seed(7)
for i in range(5000):
    d = os.path.join(sys.argv[1], f"pkg{i % 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"mod{i:04d}.py"), "wb") as f:
        f.write(os.urandom(random.randint(200, 40_000)))
PY
  tar cf "$B/tree.tar" -C "$B" tree && rm -rf "$B/tree"
fi
TREE_BYTES=$(tar tvf "$B/tree.tar" | awk '{s += $3} END {print s}')
rm -rf "$B/clone-probe" && git clone -q --no-hardlinks "$COLO_REPO" "$B/clone-probe"
CLONE_FILES=$(find "$B/clone-probe" -type f | wc -l); rm -rf "$B/clone-probe"
cat "$B/big.bin" > /dev/null  # in the page cache: the rows time the writes, not the source disk

run_rows() { # client target_dir origin_prefix
  local c=$1 dir=$2 origin=$3
  mkdir -p "$dir"
  "$PY" benches/write_workloads.py "sequential write 1 GiB + fsync" "$origin/seq" 1 $((1 << 30)) -- \
    bash -c "mkdir -p '$dir/seq' && dd if='$B/big.bin' of='$dir/seq/big.bin' bs=4M conv=fsync status=none"
  "$PY" benches/write_workloads.py "tar x of 5,000 files" "$origin/untar" 5000 "$TREE_BYTES" -- \
    bash -c "mkdir -p '$dir/untar' && tar xf '$B/tree.tar' -C '$dir/untar'"
  "$PY" benches/write_workloads.py "git clone (this repository)" "$origin/clone" "$CLONE_FILES" -1 -- \
    git clone -q --no-hardlinks "$COLO_REPO" "$dir/clone/repo"
}

echo "== local disk" >&2
rm -rf "$B/local" && run_rows local "$B/local" "$B/local" > "$B/result-local.jsonl"
rm -rf "$B/local"

for client in ${CLIENTS:-colo rclone s3fs}; do
  M="$B/mnt-$client"; mkdir -p "$M"; rm -rf "$B/cache-$client"
  prefix="run-$client-$$"
  case $client in
    colo)
      colo_config "$B/colo.toml" "$B/cache-colo" 'metrics_listen = "127.0.0.1:18772"' 'mode = "read-write"'
      "$COLO" mount --config "$B/colo.toml" --root "$M" > "$B/colo.out" 2> "$B/colo.err" &
      pid=$!; dir="$M/s3/$prefix" ;;
    rclone)
      rclone mount ":s3:$BUCKET" "$M" --s3-provider Other --s3-endpoint $EP --s3-access-key-id $KEY \
        --s3-secret-access-key $SECRET --vfs-cache-mode writes --cache-dir "$B/cache-rclone" \
        > "$B/rclone.log" 2>&1 &
      pid=$!; dir="$M/$prefix" ;;
    s3fs)
      echo "$KEY:$SECRET" > "$B/s3fs.passwd"; chmod 600 "$B/s3fs.passwd"
      s3fs "$BUCKET" "$M" -f -o url=$EP -o use_path_request_style -o passwd_file="$B/s3fs.passwd" > "$B/s3fs.log" 2>&1 &
      pid=$!; dir="$M/$prefix" ;;
    colo-local) # a local read-write volume: the directory passed straight through
      rm -rf "$B/origin-$client" && mkdir -p "$B/origin-$client"
      printf 'mount_root = "%s"\n[cache]\ndir = "%s"\n[[volume]]\nname = "home"\nurl = "file://%s"\nmode = "read-write"\n' \
        "$M" "$B/cache-$client" "$B/origin-$client" > "$B/$client.toml"
      "$COLO" mount --config "$B/$client.toml" --root "$M" > "$B/$client.out" 2> "$B/$client.err" &
      pid=$!; dir="$M/home/$prefix"; origin_dir="$B/origin-$client/$prefix" ;;
    colo-webdav|colo-sftp) # the test servers' writable areas (scripts/servers.sh rw-config)
      bash scripts/servers.sh start webdav sftp >&2
      bash scripts/servers.sh rw-config "$B/$client.volumes" >&2
      printf 'mount_root = "%s"\n[cache]\ndir = "%s"\n' "$M" "$B/cache-$client" > "$B/$client.toml"
      cat "$B/$client.volumes" >> "$B/$client.toml"
      COLO_TEST_S3_SECRET=$SECRET "$COLO" mount --config "$B/$client.toml" --root "$M" > "$B/$client.out" 2> "$B/$client.err" &
      area=${client#colo-}
      pid=$!; dir="$M/$area/$prefix"; origin_dir="$COLO_TEST_DIR/rw/$area/$prefix" ;;
    rclone-webdav)
      bash scripts/servers.sh start webdav >&2
      rclone mount ":webdav,url='http://127.0.0.1:18081/rw',vendor=other,user=colo,pass=$(rclone obscure "$(cat "$COLO_TEST_DIR/dav.pass")"):" "$M" \
        --vfs-cache-mode writes --cache-dir "$B/cache-$client" > "$B/$client.log" 2>&1 &
      pid=$!; dir="$M/$prefix"; origin_dir="$COLO_TEST_DIR/rw/webdav/$prefix" ;;
    rclone-sftp)
      bash scripts/servers.sh start sftp >&2
      rclone mount ":sftp,host=127.0.0.1,port=18022,user=root,key_file='$COLO_TEST_DIR/ssh/client_key':$COLO_TEST_DIR/rw/sftp" "$M" \
        --vfs-cache-mode writes --cache-dir "$B/cache-$client" > "$B/$client.log" 2>&1 &
      pid=$!; dir="$M/$prefix"; origin_dir="$COLO_TEST_DIR/rw/sftp/$prefix" ;;
    rclone-local) # the same local directory through rclone's VFS write cache
      rm -rf "$B/origin-$client" && mkdir -p "$B/origin-$client"
      rclone mount "$B/origin-$client" "$M" --vfs-cache-mode writes --cache-dir "$B/cache-$client" \
        > "$B/$client.log" 2>&1 &
      pid=$!; dir="$M/$prefix"; origin_dir="$B/origin-$client/$prefix" ;;
  esac
  if ! wait_mounted "$M"; then echo "$client: the mount did not come up" >&2; stop_pid "$pid"; continue; fi
  echo "== $client" >&2
  run_rows "$client" "$dir" "${origin_dir:-s3://$BUCKET/$prefix}" > "$B/result-$client.jsonl" || echo "$client: a row failed" >&2
  unset origin_dir
  stop_pid "$pid"
done

"$PY" - "$B" local ${CLIENTS:-colo rclone s3fs} <<'PY'
import json, sys
base, clients = sys.argv[1], sys.argv[2:]
res = {}
for c in clients:
    try:
        res[c] = {r["row"]: r for r in map(json.loads, open(f"{base}/result-{c}.jsonl"))}
    except OSError:
        res[c] = {}
rows = list(res["local"])
print("cells: seconds until the program returned / until every byte was at the origin")
print()
print("| row | " + " | ".join(clients) + " |")
print("|---" * (len(clients) + 1) + "|")
for row in rows:
    cells = []
    for c in clients:
        r = res[c].get(row)
        cells.append("-" if r is None else (f"{r['return_s']}" if c == "local" else f"{r['return_s']} / {r['origin_s']}"))
    print(f"| {row} | " + " | ".join(cells) + " |")
PY
