"""No secret at any log level: the CLI commands that touch credentials, a mount and `colo up` run
with RUST_LOG=trace against the real servers, with every secret given inline; none of the test
secrets (nor the WebDAV Basic header, alice's token or the sealing key) shows in their stdout,
stderr, the log file `colo up` writes to, /metrics, `colo stats`/`status` or GraphQL error
documents. (launcher/colo/src/logging.rs scrubs every line; connectors/src/secret.rs knows the
secrets.)"""
import base64
import os
import subprocess
import uuid

import requests

from conftest import BIN, RUN, Colo, write_config
from platform_up import DAV_AUTH, Platform

GOOD = {"s3": "colotestsecret-s3", "dav": "colotestsecret-dav", "ftp": "colotestsecret-ftp"}
WRONG = {"s3": "Wr0ng-s3-Sk-9f1", "dav": "Wr0ng-dav-Pw-9f1", "ftp": "Wr0ng-ftp-Pw-9f1"}
TRACE = {**os.environ, "RUST_LOG": "trace"}


def forbidden(secrets):
    """The secrets, and how a WebDAV client sends the password (a Basic header)."""
    out = list(secrets.values())
    out += [base64.b64encode(f"colo:{s}".encode()).decode() for s in (secrets["dav"],)]
    return out


def assert_clean(text, secrets, what):
    for s in secrets:
        at = text.find(s)
        assert at < 0, f"{what} shows a secret: …{text[max(0, at - 120):at]}<here>"


def inline_config(path, secrets, extra=""):
    """The servers' volumes with every secret inline in the file."""
    write_config(path, extra_volumes=extra)
    text = open(path).read()
    text = text.replace('secret_access_key = { env = "COLO_TEST_S3_SECRET" }',
                        f'secret_access_key = "{secrets["s3"]}"')
    text = text.replace(f'password = {{ file = "{RUN}/dav.pass" }}', f'password = "{secrets["dav"]}"')
    text = text.replace(f'password = "{GOOD["ftp"]}"', f'password = "{secrets["ftp"]}"')
    assert all(s in text for s in secrets.values()), "every secret is inline"
    open(path, "w").write(text)


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120, env=TRACE)


def test_cli_commands_and_a_mount_at_trace_level_print_no_secret(tmp_path):
    good, wrong = str(tmp_path / "good.toml"), str(tmp_path / "wrong.toml")
    inline_config(good, GOOD, extra=f"""
[[volume]]
name = "ftp-wrong"
url = "ftp://colo@127.0.0.1:18021/"
password = "{WRONG['ftp']}"
""")
    inline_config(wrong, WRONG)
    secrets = forbidden(GOOD) + forbidden(WRONG)

    p = run("volumes", "--config", good, "-vv")
    assert "TRACE" in p.stderr and " ok (" in p.stdout, "the trace ran and the volumes answered"
    assert_clean(p.stdout + p.stderr, secrets, "`colo volumes` at trace level")
    quiet = subprocess.run([BIN, "volumes", "--config", good], capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "RUST_LOG"})
    assert " ok (" in quiet.stdout and "DEBUG" not in quiet.stderr and "TRACE" not in quiet.stderr, \
        "the caps only lower levels: " + quiet.stderr[-2000:]
    p = run("volumes", "--config", wrong, "-vv")
    assert p.returncode == 1 and "denied" in p.stdout, p.stdout
    assert_clean(p.stdout + p.stderr, secrets, "`colo volumes` with wrong secrets at trace level")

    c = Colo(good, str(tmp_path / "mnt"), env=TRACE)
    try:
        for vol in ("s3", "webdav", "ftp"):
            assert "one.txt" in os.listdir(c.path(vol)), vol
            assert open(c.path(vol, "one.txt"), "rb").read()
        try:
            os.listdir(c.path("ftp-wrong"))
            raise AssertionError("a wrong password must not list")
        except PermissionError:
            pass
        metrics = requests.get(c.metrics_url, timeout=10).text
        assert "colo_" in metrics
        assert_clean(metrics, secrets, "/metrics")
        for cmd in ("stats", "status"):
            p = run(cmd, "--url", c.metrics_url)
            assert p.returncode == 0, p.stderr
            assert_clean(p.stdout + p.stderr, secrets, f"`colo {cmd}`")
    finally:
        err = c.stop()
    assert "TRACE" in err
    assert_clean(err, secrets, "the mount's log at trace level")


def test_colo_up_users_volumes_and_graphql_errors_at_trace_level_print_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "trace")
    p = Platform(tmp_path, users=("alice",))
    try:
        token = p.tokens["alice"]
        secrets = forbidden(GOOD) + [WRONG["dav"], token]
        key = open(os.path.join(p.home, "secret.key"), "rb").read()
        more = tmp_path / "more.toml"
        more.write_text(f'[[volume]]\nname = "more"\nurl = "{p.dav_url.replace("http://", "webdav://")}"\n'
                        f'username = "colo"\npassword = "{DAV_AUTH[1]}"\n')
        added = subprocess.run([BIN, "volume", "add", "--owner", "alice", "--from", str(more)], env=p.env,
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0 and "TRACE" in added.stderr, added.stderr[-2000:]
        assert_clean(added.stdout + added.stderr, secrets, "`colo volume add` at trace level")
        listing = subprocess.run([BIN, "volume", "list"], env=p.env, capture_output=True, text=True, timeout=60)
        assert "work" in listing.stdout and "*****" in listing.stdout, listing.stdout
        assert_clean(listing.stdout + listing.stderr, secrets, "`colo volume list`")

        # The archive's volumes are read (the S3 signer and the FTP login run)...
        for vol in ("s3", "ftp"):
            assert open(os.path.join(p.root, vol, "one.txt"), "rb").read(), vol
        # ... and alice's WebDAV volume is mounted with its sealed password; she writes through it.
        work = os.path.join(p.root, ".users", "alice", "work")
        with open(os.path.join(work, f"t-{uuid.uuid4().hex[:6]}.txt"), "w") as f:
            f.write("written at trace level")
            f.flush()
            os.fsync(f.fileno())
        volumes = p.gql("alice", "{ volumes { name url credentials } }")
        assert any(v["name"] == "work" for v in volumes["data"]["volumes"]), volumes
        bad = p.gql("alice", """mutation { addVolume(input: {name: "broken", url: "webdav://127.0.0.1:18081/rw",
                    username: "colo", password: "%s"}) { name } }""" % WRONG["dav"])
        assert bad["errors"] and "volume 'broken'" in bad["errors"][0]["message"], bad
        assert_clean(repr(volumes) + repr(bad), secrets, "GraphQL answers")
        gone = requests.get(p.base + "/graphql", timeout=10, headers={"Authorization": f"Bearer {token}x"})
        assert_clean(gone.text, secrets, "an error document")
    finally:
        p.stop()
    p.stderr.seek(0)
    log = p.stderr.read()
    assert "TRACE" in log
    assert_clean(log, secrets, "`colo up`'s log file at trace level")
    assert key.strip() not in log.encode(), "the sealing key shows in the log"
