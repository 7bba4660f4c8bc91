"""Users, their own volumes and grants, through the real mount and the real CLI: each user's
folder under <root>/.users/ holds exactly what they may see, grants and revocations take effect in
the running mount, a read-only grant refuses writes with EROFS, two users' reads share one cache,
and no secret appears in any output, log, metric or in the database file."""
import errno
import os
import re
import subprocess
import time
import urllib.request
import uuid

import pytest
import requests

from conftest import BIN, RUN, S3_SECRET, Colo, write_config

DAV = "http://127.0.0.1:18081"
DAV_AUTH = ("colo", "colotestsecret-dav")
SECRETS = [DAV_AUTH[1], S3_SECRET, "colotestsecret-ftp"]
TOKEN = re.compile(r"^token: (colo_[A-Za-z0-9_-]{43})$", re.M)


class Platform:
    """A colo home of its own, and every output the test saw (to be searched for secrets)."""

    def __init__(self, home):
        self.home = home
        self.env = {**os.environ, "COLO_HOME": home}
        self.outputs = []

    def run(self, *args, ok=True):
        out = subprocess.run([BIN, *args], capture_output=True, text=True, env=self.env, timeout=120)
        self.outputs.append(out.stdout + out.stderr)
        if ok:
            assert out.returncode == 0, f"colo {' '.join(args)}: {out.stderr}"
        return out

    def volume_file(self, text):
        path = os.path.join(self.home, f"vol-{uuid.uuid4().hex[:8]}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def origin_gets(url, volume):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    key = f'colo_origin_requests_total{{volume="{volume}",kind="get"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(key))


@pytest.fixture(scope="module")
def platform():
    p = Platform(os.path.join(RUN, f"home-{uuid.uuid4().hex[:8]}"))
    os.makedirs(p.home)
    prefix = f"users-{uuid.uuid4().hex[:8]}"
    requests.request("MKCOL", f"{DAV}/rw/{prefix}", auth=DAV_AUTH, timeout=10).raise_for_status()
    sftp_dir = os.path.join(RUN, "rw", "sftp", prefix)
    os.makedirs(sftp_dir)
    p.prefix, p.sftp_dir = prefix, sftp_dir
    for user in ("alice", "bob"):
        out = p.run("user", "add", user)
        assert TOKEN.search(out.stdout), out.stdout
    p.run("volume", "add", "--owner", "alice", "--from", p.volume_file(f"""
[[volume]]
name = "dav"
url = "webdav://127.0.0.1:18081/rw/{prefix}"
username = "colo"
password = "{DAV_AUTH[1]}"
"""))
    p.run("volume", "add", "--owner", "alice", "--from", p.volume_file(f"""
[[volume]]
name = "sftp"
url = "sshfs://root@127.0.0.1:18022{sftp_dir}"
key_file = "{RUN}/ssh/client_key"
known_hosts = "accept"
"""))
    cfg = os.path.join(RUN, f"users-{uuid.uuid4().hex[:6]}.toml")
    write_config(cfg, metrics_listen="127.0.0.1:0")
    p.colo = Colo(cfg, os.path.join(RUN, "mnt-users"), env=p.env)
    yield p
    p.outputs.append(p.colo.stop())


def view(p, user, *parts):
    return p.colo.path(".users", user, *parts)


def test_each_user_sees_their_own_volumes_and_the_archive_and_nothing_of_others(platform):
    p = platform
    alice = sorted(os.listdir(view(p, "alice")))
    # Her "sftp" meets the operator's volume of that name: hers is "sftp@alice".
    assert {"dav", "sftp@alice", "sftp", "s3", "local"} <= set(alice), alice
    bob = sorted(os.listdir(view(p, "bob")))
    assert "dav" not in bob and not any("@alice" in n for n in bob), bob
    for name in ("dav@alice", "sftp@alice", "dav"):
        with pytest.raises(FileNotFoundError):
            os.stat(view(p, "bob", name))
    with pytest.raises(FileNotFoundError):
        os.stat(p.colo.path(".users", "carol"))
    # The operator's volumes are read-only in users' views.
    with pytest.raises(OSError) as e:
        open(view(p, "alice", "local", f"x-{uuid.uuid4().hex}"), "w")
    assert e.value.errno == errno.EROFS


def test_a_user_writes_to_their_own_volumes_and_the_bytes_reach_the_origin(platform):
    p = platform
    data = os.urandom(300_000)
    with open(view(p, "alice", "dav", "result.bin"), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    got = requests.get(f"{DAV}/rw/{p.prefix}/result.bin", auth=DAV_AUTH, timeout=10)
    assert got.status_code == 200 and got.content == data
    with open(view(p, "alice", "sftp@alice", "notes.txt"), "w") as f:
        f.write("from alice\n")
        f.flush()
        os.fsync(f.fileno())
    assert open(os.path.join(p.sftp_dir, "notes.txt")).read() == "from alice\n"


def test_a_grant_appears_in_the_running_mount_read_only_refuses_writes_and_revoking_hides_it(platform):
    p = platform
    with open(view(p, "alice", "dav", "shared.txt"), "w") as f:
        f.write("for bob")
        # At the origin before bob looks (bob's view reads the origin; a listing he fetched before
        # the upload would be kept for the volume's metadata TTL).
        f.flush()
        os.fsync(f.fileno())
    p.run("volume", "grant", "alice/dav", "--user", "bob")
    wait_for(lambda: os.path.isdir(view(p, "bob", "dav@alice")), "the grant shows in bob's folder")
    wait_for(lambda: os.path.exists(view(p, "bob", "dav@alice", "shared.txt")), "alice's file via bob")
    assert open(view(p, "bob", "dav@alice", "shared.txt")).read() == "for bob"
    with pytest.raises(OSError) as e:
        open(view(p, "bob", "dav@alice", "bob.txt"), "w")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError) as e:
        os.unlink(view(p, "bob", "dav@alice", "shared.txt"))
    assert e.value.errno == errno.EROFS

    p.run("volume", "grant", "alice/dav", "--user", "bob", "--read-write")
    def bob_writes():
        try:
            with open(view(p, "bob", "dav@alice", "bob.txt"), "w") as f:
                f.write("from bob")
            return True
        except OSError:
            return False
    wait_for(bob_writes, "the read-write grant lets bob write")

    p.run("volume", "revoke", "alice/dav", "--user", "bob")
    wait_for(lambda: not os.path.exists(view(p, "bob", "dav@alice")), "the revoked volume is gone")
    with pytest.raises(FileNotFoundError):
        open(view(p, "bob", "dav@alice", "shared.txt"))
    assert "dav@alice" not in os.listdir(view(p, "bob"))


def test_a_second_users_read_of_an_archive_file_costs_the_origin_nothing(platform):
    p = platform
    name = "65537.bin"
    a = open(view(p, "alice", "s3", name), "rb").read()
    before = origin_gets(p.colo.metrics_url, "s3")
    assert before > 0
    b = open(view(p, "bob", "s3", name), "rb").read()
    assert a == b and len(a) == 65537
    assert origin_gets(p.colo.metrics_url, "s3") == before, "bob's read came from the shared cache"


def test_bad_volumes_are_refused_with_a_message_naming_the_volume_and_no_secret(platform):
    p = platform
    out = p.run("volume", "add", "--owner", "bob", "--from", p.volume_file(f"""
[[volume]]
name = "wrong"
url = "webdav://127.0.0.1:18081/rw"
username = "colo"
password = "not-{DAV_AUTH[1]}"
"""), ok=False)
    assert out.returncode != 0
    assert "volume 'wrong'" in out.stderr and "nothing was added" in out.stderr, out.stderr
    assert f"not-{DAV_AUTH[1]}" not in out.stdout + out.stderr
    out = p.run("volume", "add", "--owner", "bob", "--from", p.volume_file("""
[[volume]]
name = "odd"
url = "gopher://127.0.0.1/x"
"""), ok=False)
    assert out.returncode != 0 and "'odd'" in out.stderr and "gopher" in out.stderr, out.stderr
    out = p.run("volume", "add", "--owner", "bob", "--from", p.volume_file("""
[[volume]]
name = "../../etc"
url = "webdav://127.0.0.1:18081/rw"
"""), ok=False)
    assert out.returncode != 0, out.stdout
    out = p.run("user", "add", "../root", ok=False)
    assert out.returncode != 0 and "not allowed" in out.stderr
    listing = p.run("volume", "list").stdout
    assert "password=*****" in listing and "wrong" not in listing


def test_tokens_are_shown_once_and_revoked_ones_are_marked(platform):
    p = platform
    out = p.run("token", "create", "--user", "bob", "--scopes", "catalog:read", "--label", "ci")
    token = TOKEN.search(out.stdout).group(1)
    listing = p.run("token", "list", "--user", "bob").stdout
    assert token not in listing and "catalog:read" in listing and "ci" in listing
    token_id = re.search(r"revoke (\d+)", out.stdout).group(1)
    p.run("token", "revoke", token_id)
    row = [l for l in p.run("token", "list", "--user", "bob").stdout.splitlines()
           if l.startswith(token_id + " ")]
    assert row and " - " not in row[0].split("catalog:read")[1][:40], row
    out = p.run("token", "create", "--user", "bob", "--scopes", "admin", ok=False)
    assert out.returncode != 0 and "not an admin" in out.stderr


def test_no_secret_in_any_output_metric_or_the_database(platform):
    p = platform
    texts = list(p.outputs)
    texts.append(urllib.request.urlopen(p.colo.metrics_url, timeout=10).read().decode())
    for secret in SECRETS:
        for text in texts:
            assert secret not in text
    db = b"".join(open(os.path.join(p.home, f), "rb").read()
                  for f in os.listdir(p.home) if f.startswith("colo.db"))
    for secret in SECRETS:
        assert secret.encode() not in db, "credentials are sealed at rest"
    assert oct(os.stat(os.path.join(p.home, "secret.key")).st_mode & 0o777) == "0o600"
