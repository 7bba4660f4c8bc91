#!/usr/bin/env bash
# Install what colo needs on Debian 12: `setup.sh run` for `colo up`, `setup.sh test` for the tests
# and benches (test servers, peers, a Python venv with the test clients). Idempotent and quick when
# everything is already there.
set -euo pipefail
source "$(dirname "$0")/env.sh"
what="${1:-run}"

need_pkgs=(fuse3 ca-certificates curl)
if [ "$what" = test ]; then
  need_pkgs+=(openssh-server openssh-client nginx-light python3-venv s3fs rclone fio stilts)
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

if [ "$what" = test ]; then
  req="$COLO_REPO/tests/requirements.txt"
  stamp="$COLO_VENV/.requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$COLO_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating the Python venv for test clients and servers in $COLO_VENV"
    python3 -m venv "$COLO_VENV"
    "$COLO_VENV/bin/pip" install -q -r "$req"
    echo "$want" > "$stamp"
  fi
fi
