#!/usr/bin/env bash
# Start and stop the real servers colo's tests run against, all on 127.0.0.1, each tracked by the
# PID it was started with (never found by name). Every server serves the same fixture tree.
#
#   servers.sh start [NAME...]   start (default: all) and wait until each answers
#   servers.sh stop [NAME...]    stop by PID (SeaweedFS takes ~17 s to stop cleanly)
#   servers.sh kill NAME         stop at once (SIGKILL), for fault tests
#   servers.sh config FILE       write a colo.toml with one volume per server
# NAMES: s3 webdav ftp sftp http
set -euo pipefail
source "$(dirname "$0")/env.sh"
RUN="$COLO_TEST_DIR"
FIX="$RUN/fixture"
PIDS="$RUN/pids"
mkdir -p "$RUN" "$PIDS" "$RUN/logs"
chmod 755 "$RUN"

S3_PORT=18333; DAV_PORT=18081; FTP_PORT=18021; SFTP_PORT=18022; HTTP_PORT=18082
S3_METRICS_PORT=18335  # SeaweedFS Prometheus metrics: request counts per S3 action, for the benches
export COLO_S3_KEY=colotest COLO_S3_SECRET=colotestsecret-s3
DAV_USER=colo; DAV_PASS=colotestsecret-dav
FTP_USER=colo; FTP_PASS=colotestsecret-ftp
ALL=(s3 webdav ftp sftp http)

wait_port() { # port seconds
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

port_of() {
  case $1 in s3) echo $S3_PORT ;; webdav) echo $DAV_PORT ;; ftp) echo $FTP_PORT ;; sftp) echo $SFTP_PORT ;; http) echo $HTTP_PORT ;; esac
}

launch() { # name command...
  local name=$1; shift
  # A port that already answers belongs to a process this script did not start (another run, a
  # system service): testing against it would test the wrong server.
  if (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$name")") 2>/dev/null; then
    echo "servers: port $(port_of "$name") for $name is already in use by another process; stop it first" >&2
    return 1
  fi
  "$@" >"$RUN/logs/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

# The server we started is the one answering: its PID is alive once its port is open.
check_alive() {
  running "$1" || { echo "servers: $1 exited at start:" >&2; tail -5 "$RUN/logs/$1.log" >&2; return 1; }
}

fixture() {
  if [ ! -f "$RUN/fixture.complete" ]; then
    rm -rf "$FIX"
    "$COLO_VENV/bin/python" "$COLO_REPO/tests/fixtures/make_fixture.py" "$FIX" "$COLO_CACHE/wheels"
    touch "$RUN/fixture.complete"
  fi
  chmod -R a+rX "$FIX"
}

start_one() {
  local name=$1
  running "$name" && return 0
  case $name in
    s3)
      mkdir -p "$RUN/weed"
      cat >"$RUN/s3.json" <<JSON
{"identities":[{"name":"colo","credentials":[{"accessKey":"$COLO_S3_KEY","secretKey":"$COLO_S3_SECRET"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
      # -volume.max: a fixed number of volume slots. With 0 SeaweedFS allows free disk / 1 GiB, and
      # every bucket (a collection) takes 7 slots at once, so the sixth bucket found none on a disk
      # with 33 GB free. Volumes are not preallocated: slots cost no disk until written.
      launch s3 "$COLO_VENV/bin/weed" server -dir="$RUN/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=19333 -volume.port=18080 -filer.port=18888 -master.volumeSizeLimitMB=1024 \
        -volume.max=128 -s3 -s3.port=$S3_PORT -s3.config="$RUN/s3.json" \
        -s3.port.iceberg=0 -s3.port.lance=0 -metricsPort=$S3_METRICS_PORT
      wait_port $S3_PORT 60 || { tail -20 "$RUN/logs/s3.log"; return 1; }
      # The filer and volume server come up a little after the S3 port opens: retry the upload.
      if [ ! -f "$RUN/weed/.uploaded" ]; then
        for _ in $(seq 1 30); do
          "$COLO_VENV/bin/python" "$COLO_REPO/tests/fixtures/s3_put.py" "http://127.0.0.1:$S3_PORT" colo-test tree "$FIX" \
            >>"$RUN/logs/s3-upload.log" 2>&1 && touch "$RUN/weed/.uploaded" && break
          sleep 1
        done
        [ -f "$RUN/weed/.uploaded" ] || { tail -20 "$RUN/logs/s3-upload.log"; return 1; }
      fi
      # After a restart the port opens before the volume server serves: wait until reads and
      # writes really work.
      local ok=
      for _ in $(seq 1 60); do
        "$COLO_VENV/bin/python" "$COLO_REPO/tests/fixtures/s3_put.py" "http://127.0.0.1:$S3_PORT" colo-test probe \
          >>"$RUN/logs/s3-upload.log" 2>&1 && ok=1 && break
        sleep 1
      done
      [ -n "$ok" ] || { echo "servers: s3 does not serve reads and writes" >&2; return 1; }
      # The writable volumes' bucket (see rw-config).
      "$COLO_VENV/bin/python" "$COLO_REPO/tests/fixtures/s3_put.py" "http://127.0.0.1:$S3_PORT" colo-rw bucket \
        >>"$RUN/logs/s3-upload.log" 2>&1 || { echo "servers: cannot create bucket colo-rw" >&2; return 1; }
      ;;
    webdav)
      mkdir -p "$RUN/rw/webdav"
      cat >"$RUN/wsgidav.yaml" <<YAML
host: 127.0.0.1
port: $DAV_PORT
server: cheroot
provider_mapping:
  "/": { root: "$FIX", readonly: true }
  "/rw": { root: "$RUN/rw/webdav", readonly: false }
http_authenticator:
  domain_controller: null
  accept_basic: true
  accept_digest: false
  default_to_digest: false
simple_dc:
  user_mapping:
    "*":
      "$DAV_USER": { password: "$DAV_PASS" }
verbose: 1
YAML
      launch webdav "$COLO_VENV/bin/wsgidav" --config="$RUN/wsgidav.yaml"
      wait_port $DAV_PORT 30
      ;;
    ftp)
      mkdir -p "$RUN/rw/ftp"
      launch ftp "$COLO_VENV/bin/python" "$COLO_REPO/tests/servers/ftp_server.py" "$FIX" $FTP_PORT \
        "$FTP_USER" "$FTP_PASS" 18100 18199 "$RUN/rw/ftp"
      wait_port $FTP_PORT 30
      ;;
    sftp)
      mkdir -p "$RUN/ssh" /run/sshd
      chmod 700 "$RUN/ssh"
      [ -f "$RUN/ssh/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$RUN/ssh/host_key"
      [ -f "$RUN/ssh/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$RUN/ssh/client_key"
      cp "$RUN/ssh/client_key.pub" "$RUN/ssh/authorized_keys"
      cat >"$RUN/ssh/sshd_config" <<CFG
Port $SFTP_PORT
ListenAddress 127.0.0.1
HostKey $RUN/ssh/host_key
AuthorizedKeysFile $RUN/ssh/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CFG
      launch sftp /usr/sbin/sshd -D -e -f "$RUN/ssh/sshd_config"
      wait_port $SFTP_PORT 30
      ;;
    http)
      mkdir -p "$RUN/nginx"
      cat >"$RUN/nginx/nginx.conf" <<CFG
daemon off;
user root;
worker_processes 1;
pid $RUN/nginx/nginx.pid;
error_log $RUN/logs/nginx-error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $RUN/nginx;
  proxy_temp_path $RUN/nginx;
  fastcgi_temp_path $RUN/nginx;
  uwsgi_temp_path $RUN/nginx;
  scgi_temp_path $RUN/nginx;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    root $FIX;
    autoindex on;
  }
}
CFG
      launch http /usr/sbin/nginx -c "$RUN/nginx/nginx.conf" -p "$RUN/nginx"
      wait_port $HTTP_PORT 30
      ;;
    *) echo "unknown server $name" >&2; return 2 ;;
  esac
  check_alive "$name"
  echo "servers: $name up (pid $(cat "$PIDS/$name.pid"))"
}

stop_one() { # name signal
  local name=$1 sig=${2:-TERM}
  [ -f "$PIDS/$name.pid" ] || return 0
  local pid; pid=$(cat "$PIDS/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
}

write_config() {
  cat >"$1" <<TOML
# Written by scripts/servers.sh: one volume per test server, all on 127.0.0.1.
mount_root = "$RUN/mnt"
[cache]
dir = "$RUN/cache"
memory_mib = 256
disk_gib = 4
[[volume]]
name = "s3"
url = "s3://colo-test/"
endpoint = "http://127.0.0.1:$S3_PORT"
region = "us-east-1"
access_key_id = "$COLO_S3_KEY"
secret_access_key = { env = "COLO_TEST_S3_SECRET" }
[[volume]]
name = "webdav"
url = "webdav://127.0.0.1:$DAV_PORT/"
username = "$DAV_USER"
password = { file = "$RUN/dav.pass" }
[[volume]]
name = "ftp"
url = "ftp://$FTP_USER@127.0.0.1:$FTP_PORT/"
password = "$FTP_PASS"
[[volume]]
name = "sftp"
url = "sshfs://root@127.0.0.1:$SFTP_PORT$FIX"
key_file = "$RUN/ssh/client_key"
known_hosts = "accept"
[[volume]]
name = "http"
url = "http://127.0.0.1:$HTTP_PORT/"
[[volume]]
name = "local"
url = "file://$FIX"
TOML
  printf '%s' "$DAV_PASS" >"$RUN/dav.pass"
}

# The writable volumes, one per backend, each in an area of its own (empty at first): what the
# write tests and the behaviour suite's write checks use. Same servers, other places.
write_rw_config() {
  mkdir -p "$RUN/rw/sftp" "$RUN/rw/local"
  cat >"$1" <<TOML
# Written by scripts/servers.sh rw-config: the writable volumes of the test servers.
[[volume]]
name = "s3"
url = "s3://colo-rw/"
endpoint = "http://127.0.0.1:$S3_PORT"
region = "us-east-1"
access_key_id = "$COLO_S3_KEY"
secret_access_key = { env = "COLO_TEST_S3_SECRET" }
mode = "read-write"
[[volume]]
name = "webdav"
url = "webdav://127.0.0.1:$DAV_PORT/rw"
username = "$DAV_USER"
password = { file = "$RUN/dav.pass" }
mode = "read-write"
[[volume]]
name = "ftp"
url = "ftp://$FTP_USER-rw@127.0.0.1:$FTP_PORT/"
password = "$FTP_PASS"
mode = "read-write"
[[volume]]
name = "sftp"
url = "sshfs://root@127.0.0.1:$SFTP_PORT$RUN/rw/sftp"
key_file = "$RUN/ssh/client_key"
known_hosts = "accept"
mode = "read-write"
[[volume]]
name = "local"
url = "file://$RUN/rw/local"
mode = "read-write"
TOML
  printf '%s' "$DAV_PASS" >"$RUN/dav.pass"
}

cmd=${1:-}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
case $cmd in
  start) fixture; for n in "${names[@]}"; do start_one "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_one "$n" TERM; done ;;
  kill) for n in "${names[@]}"; do stop_one "$n" KILL; done ;;
  config) write_config "${1:?config file}" ;;
  rw-config) write_rw_config "${1:?config file}" ;;
  *) echo "usage: servers.sh start|stop|kill [NAME...] | config FILE | rw-config FILE" >&2; exit 2 ;;
esac
