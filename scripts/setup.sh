#!/usr/bin/env bash
# Install what colo needs on Debian 12: `setup.sh run` for `colo up` (FUSE, and a Python venv with
# the science clients its "Try:" lines use: astropy, pyarrow, pyvo, astroquery), `setup.sh test` for
# the tests and benches (test servers, peers, the test clients in the same venv). Idempotent and
# quick when everything is already there.
set -euo pipefail
source "$(dirname "$0")/env.sh"
what="${1:-run}"

need_pkgs=(fuse3 ca-certificates curl python3 python3-venv)
if [ "$what" = test ]; then
  need_pkgs+=(openssh-server openssh-client nginx-light s3fs rclone fio stilts chromium chromium-driver)
fi
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing nginx or openssh-server must not start system services (nginx on port 80, sshd on
  # 22): colo's scripts run their own copies on 127.0.0.1. Deny service starts during the install.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f "$policy"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }

# ensure_venv NAME FILE...: the venv holds what FILE (the first, which pip reads) pins; a stamp of
# all the files' contents skips pip when nothing changed.
ensure_venv() {
  local name=$1; shift
  local stamp="$COLO_VENV/.requirements-$name.sha256"
  local want
  want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$COLO_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the Python packages of $1 into $COLO_VENV"
    [ -x "$COLO_VENV/bin/python" ] || python3 -m venv "$COLO_VENV"
    "$COLO_VENV/bin/pip" install -q -r "$1"
    echo "$want" > "$stamp"
  fi
}

# JupyterLab (and the science packages) for datalabs, from Debian's own python3 into
# $COLO_LAB_VENV: the accounts labs run as cannot reach a Python under root's home.
lab_req="$COLO_REPO/scripts/requirements-lab.txt"
lab_want="$(sha256sum < "$lab_req" | cut -d' ' -f1)"
if [ ! -x "$COLO_LAB_VENV/bin/jupyter-lab" ] || [ "$(cat "$COLO_LAB_VENV/.requirements.sha256" 2>/dev/null)" != "$lab_want" ]; then
  echo "setup: installing the datalab images' Python (JupyterLab, cwltool) into $COLO_LAB_VENV"
  mkdir -p "$(dirname "$COLO_LAB_VENV")"
  [ -x "$COLO_LAB_VENV/bin/python" ] || /usr/bin/python3 -m venv "$COLO_LAB_VENV"
  "$COLO_LAB_VENV/bin/pip" install -q -r "$lab_req"
  chmod -R a+rX "$COLO_LAB_VENV"
  echo "$lab_want" > "$COLO_LAB_VENV/.requirements.sha256"
fi

clients="$COLO_REPO/scripts/requirements-clients.txt"
if [ "$what" = test ]; then
  ensure_venv test "$COLO_REPO/tests/requirements.txt" "$clients"
else
  ensure_venv clients "$clients"
fi

# The POSIX test tools for writable volumes (tests/mount/test_posix_suites.py): fsx from the Rust
# registry, pjdfstest built from the conformance sources beside the project (../shared).
if [ "$what" = test ]; then
  tools="$COLO_CACHE/tools"
  if [ ! -x "$tools/bin/fsx" ]; then
    echo "setup: building fsx 0.3.2 (the file-system exerciser) into $tools"
    CARGO_TARGET_DIR="$COLO_CACHE/tools-target" cargo install --quiet --locked fsx --version 0.3.2 --root "$tools"
  fi
  if [ ! -x "$tools/pjdfstest/pjdfstest" ]; then
    shared="${COLO_SHARED:-$(cd "$COLO_REPO/.." && pwd)/shared}"
    src="$shared/conformance/posix/pjdfstest"
    [ -d "$src" ] || { echo "setup: pjdfstest sources not found at $src (set COLO_SHARED to the shared folder)" >&2; exit 1; }
    for p in autoconf automake; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || \
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
    done
    echo "setup: building pjdfstest into $tools/pjdfstest"
    rm -rf "$tools/pjdfstest" && mkdir -p "$tools" && cp -r "$src" "$tools/pjdfstest"
    (cd "$tools/pjdfstest" && autoreconf -ifs >/dev/null 2>&1 && ./configure >/dev/null && make pjdfstest >/dev/null)
  fi
  # LazyFS (tests/mount/test_cache_disk_faults.py): a FUSE file system that drops what was not fsynced.
  if [ ! -x "$tools/lazyfs/lazyfs/build/lazyfs" ]; then
    shared="${COLO_SHARED:-$(cd "$COLO_REPO/.." && pwd)/shared}"
    src="$shared/conformance/posix"
    [ -d "$src/lazyfs" ] || { echo "setup: LazyFS sources not found at $src/lazyfs (set COLO_SHARED to the shared folder)" >&2; exit 1; }
    for p in cmake make g++ libfuse3-dev libspdlog-dev; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || \
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
    done
    echo "setup: building LazyFS into $tools/lazyfs"
    rm -rf "$tools/lazyfs" "$tools/toml11" && mkdir -p "$tools" && cp -r "$src/lazyfs" "$src/toml11" "$tools/"
    log="$tools/lazyfs-build.log"
    { (cd "$tools/lazyfs/libs/libpcache" && cmake -B build -DFETCHCONTENT_SOURCE_DIR_TOML="$tools/toml11" \
        && cmake --build build -j2) && (cd "$tools/lazyfs/lazyfs" && cmake -B build -DLAZYFS_BUILD_TESTS=OFF \
        && cmake --build build -j2); } >"$log" 2>&1 || { tail -30 "$log" >&2; echo "setup: LazyFS build failed (log: $log)" >&2; exit 1; }
  fi
fi
