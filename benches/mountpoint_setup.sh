#!/usr/bin/env bash
# Builds mountpoint-s3 for the peer table of benches/workloads.sh (issue 19), once, into the cache
# directory: benches/mountpoint/ (its published library, mountpoint-s3-fs 0.11.0 from crates.io —
# the code of mountpoint-s3 1.24.0's `mount-s3` but the argument parsing — behind a minimal command
# line with that binary's defaults). The AWS CRT it links is C built with cmake; bindgen needs
# libclang, the FUSE binding libfuse3. Prints the binary's path on success; prints nothing (and
# says why on stderr) where it cannot be built, so the bench leaves mountpoint-s3 out cleanly.
#
#   bash benches/mountpoint_setup.sh        (the first build takes ~10 min on 2 cores)
set -uo pipefail
source "$(dirname "$0")/../scripts/env.sh"
target="$COLO_CACHE/mountpoint-target"
bin="$target/release/mount-s3"
stamp="$target/.source.sha256"
want="$(cat "$COLO_REPO"/benches/mountpoint/Cargo.toml "$COLO_REPO"/benches/mountpoint/src/*.rs | sha256sum | cut -d' ' -f1)"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then echo "$bin"; exit 0; fi

missing=()
for p in cmake libclang-dev libfuse3-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "mountpoint-s3: installing ${missing[*]}" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null \
      || { echo "mountpoint-s3: could not install ${missing[*]}; leaving it out" >&2; exit 0; }
  else
    echo "mountpoint-s3: needs ${missing[*]} (not root or no apt-get); leaving it out" >&2; exit 0
  fi
fi
echo "mountpoint-s3: building (cargo, into $target)" >&2
if cargo build --release --quiet --manifest-path "$COLO_REPO/benches/mountpoint/Cargo.toml" --target-dir "$target" >&2; then
  echo "$want" > "$stamp"
  echo "$bin"
else
  echo "mountpoint-s3: the build failed (output above); leaving it out" >&2
fi
