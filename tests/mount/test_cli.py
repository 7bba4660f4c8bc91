"""The CLI's answers to bad input: one line, naming what to fix, never a secret."""
import os
import shutil
import subprocess

from conftest import BIN, RUN, Colo, write_config


def colo_cmd(*args, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, **kw)


def test_volumes_lists_every_backend_with_masked_secrets(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    p = colo_cmd("volumes", "--config", cfg)
    assert p.returncode == 0, p.stdout + p.stderr
    for vol in ["s3", "webdav", "ftp", "sftp", "http", "local"]:
        line = next(line for line in p.stdout.splitlines() if line.startswith(vol + " "))
        assert " ok (" in line, line
    for secret in ["colotestsecret-s3", "colotestsecret-dav", "colotestsecret-ftp"]:
        assert secret not in p.stdout + p.stderr


def test_wrong_passwords_name_the_volume_and_hide_the_secret(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    text = open(cfg).read()
    text = text.replace('password = "colotestsecret-ftp"', 'password = "Wr0ng-ftp-Pw"')
    text = text.replace(f'password = {{ file = "{RUN}/dav.pass" }}', 'password = "Wr0ng-dav-Pw"')
    open(cfg, "w").write(text)
    p = colo_cmd("volumes", "--config", cfg, env={**os.environ, "COLO_TEST_S3_SECRET": "Wr0ng-s3-Sk"})
    assert p.returncode == 1
    out = p.stdout + p.stderr
    for vol in ["s3", "webdav", "ftp"]:
        line = next(line for line in p.stdout.splitlines() if line.startswith(vol + " "))
        assert f"volume '{vol}'" in line and "denied" in line, line
    for secret in ["Wr0ng-ftp-Pw", "Wr0ng-dav-Pw", "Wr0ng-s3-Sk"]:
        assert secret not in out


def test_wrong_password_in_a_mount_gives_eacces_for_that_volume_only(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    text = open(cfg).read().replace('password = "colotestsecret-ftp"', 'password = "nope-Pw"')
    open(cfg, "w").write(text)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        try:
            os.listdir(c.path("ftp"))
            raise AssertionError("listing with a wrong password must fail")
        except PermissionError:
            pass
        assert "one.txt" in os.listdir(c.path("local"))
    finally:
        err = c.stop()
    assert "nope-Pw" not in err


def test_bad_config_is_one_line_naming_the_key(tmp_path):
    cases = {
        '[[volume]]\nname = "a"\nurl = "s3://b/"\nendpont = "http://x"\n': "line 4: unknown field `endpont`",
        '[[volume]]\nname = "a"\nurl = "gopher://host/x"\n': "unknown scheme 'gopher'",
        '[[volume]]\nname = "a"\n': "missing key 'url'",
        '[[volume]]\nname = "a"\nurl = "ftp://h/"\nknown_hosts = "accept"\n': "key 'known_hosts' does not apply to ftp",
        '[[volume]]\nname = "a"\nurl = "file:///x"\nmetadata_ttl_secs = "ten"\n': "line 4",
        'mount_root = \n': "line 1",
    }
    for text, expected in cases.items():
        cfg = tmp_path / "bad.toml"
        cfg.write_text(text)
        for cmd in (["volumes"], ["mount", "--root", str(tmp_path / "m")]):
            p = colo_cmd(*cmd, "--config", str(cfg))
            assert p.returncode != 0
            assert expected in p.stderr, (text, p.stderr)
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert p.stderr.startswith("colo: ")


def test_no_config_says_what_to_do(tmp_path):
    p = colo_cmd("mount", cwd=str(tmp_path))
    assert p.returncode != 0 and "--config" in p.stderr and "colo.toml" in p.stderr


def test_missing_dev_fuse_says_how_to_install(tmp_path):
    cfg = str(tmp_path / "c.toml")
    write_config(cfg)
    # A private mount namespace with an empty /dev: no /dev/fuse.
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f"mount -t tmpfs none /dev && exec {BIN} mount --config {cfg} --root {tmp_path}/m"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "/dev/fuse is missing" in p.stderr and "apt-get install fuse3" in p.stderr


def test_missing_fusermount_for_a_normal_user_says_how_to_install():
    import pathlib
    import tempfile
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="colo-nobody-"))  # /tmp itself: reachable by nobody
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[volume]]\nname = "l"\nurl = "file://{tmp_path}"\n')
    binary = tmp_path / "colo"
    shutil.copy(BIN, binary)
    os.chmod(tmp_path, 0o755)
    os.chmod(cfg, 0o644)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "env", "PATH=/nonexistent", "HOME=/tmp", str(binary), "mount", "--config", str(cfg),
                        "--root", str(tmp_path / "m")], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "fusermount3 is missing" in p.stderr and "apt-get install fuse3" in p.stderr


def test_a_reader_that_goes_away_ends_a_command_quietly(tmp_path):
    """`colo user add x | head -1` with the reader gone before colo prints: colo ends on SIGPIPE
    as Unix tools do, without a panic message."""
    p = subprocess.Popen([BIN, "user", "add", "piped"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "COLO_HOME": str(tmp_path / "home")})
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == -13, err
    assert "panicked" not in err and err == "", err
