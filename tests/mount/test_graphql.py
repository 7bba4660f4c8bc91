"""The platform's GraphQL API through a real client (`gql`, every query validated against the
served schema by introspection) on a running `colo up`: the catalogue seeded with real missions'
files, alice's own volume added through the API and seen through the mount, grants, tokens and
scopes, and the refusals (401, 403, bad input) — with no secret in any answer."""
import errno
import os
import re
import signal
import subprocess
import time
import uuid

import pytest
import requests
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from conftest import BIN, REPO, RUN, write_config

DAV_AUTH = ("colo", "colotestsecret-dav")
TOKEN = re.compile(r"^token: (colo_[A-Za-z0-9_-]{43})$", re.M)
MISSIONS = ["launcher/colo/src/sample/catalogue.toml", "catalogue/gaia.toml", "catalogue/xmm-newton.toml"]


class Up:
    def __init__(self):
        self.home = os.path.join(RUN, f"home-gql-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.home)
        self.env = {**os.environ, "COLO_HOME": self.home}
        self.root = os.path.join(RUN, "mnt-gql")
        cfg = os.path.join(RUN, f"gql-{uuid.uuid4().hex[:6]}.toml")
        write_config(cfg, metrics_listen="127.0.0.1:0")
        self.stderr = open(os.path.join(self.home, "up.err"), "w+")
        self.proc = subprocess.Popen([BIN, "up", "--config", cfg, "--root", self.root, "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=self.env)
        self.stdout = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            self.stdout.append(line)
            if line.startswith("tap "):
                self.base = line.split()[1].rsplit("/tap", 1)[0]
            if line.startswith("ready") or self.proc.poll() is not None:
                break
        assert line.startswith("ready"), open(self.stderr.name).read()
        self.url = f"{self.base}/graphql"

    def cli(self, *args):
        out = subprocess.run([BIN, *args], capture_output=True, text=True, env=self.env, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def client(self, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = RequestsHTTPTransport(url=self.url, headers=headers, timeout=30)
        return Client(transport=transport, fetch_schema_from_transport=True)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        return open(self.stderr.name).read()


@pytest.fixture(scope="module")
def up():
    u = Up()
    u.admin = TOKEN.search("".join(u.stdout)).group(1)
    u.alice = TOKEN.search(u.cli("user", "add", "alice")).group(1)
    u.bob = TOKEN.search(u.cli("user", "add", "bob")).group(1)
    u.cli("catalog", "load", *[os.path.join(REPO, m) for m in MISSIONS])
    yield u
    log = u.stop()
    assert DAV_AUTH[1] not in log


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


SEARCH = gql("""query Search($q: String!) {
  search(q: $q, first: 50) { total items { type key title mission } facets { name values { value count } } }
}""")


def facet(result, name):
    return {v["value"]: v["count"] for f in result["search"]["facets"] if f["name"] == name for v in f["values"]}


def test_the_catalogue_search_answers_with_the_right_items_and_facet_counts(up):
    c = up.client()  # public: no token
    r = c.execute(GraphQLRequest(SEARCH, variable_values={"q": 'domain:"Space Science" type:dataset mission:Gaia'}))
    assert sorted(i["key"] for i in r["search"]["items"]) == [
        "gaiadr3.gaia_source", "gaiadr3.vari_summary", "gaiadr3.xp_summary"]
    assert facet(r, "instrument") == {"Astrometric instrument": 1, "Photometer": 1, "Spectrophotometer": 1}
    r = c.execute(GraphQLRequest(SEARCH, variable_values={"q": "type:dataset"}))
    assert facet(r, "mission") == {"Gaia": 3, "XMM-Newton": 3, "Hipparcos": 1, "Sample": 1}
    assert facet(r, "wavelength")["X-ray"] == 2
    r = c.execute(GraphQLRequest(SEARCH, variable_values={"q": "parallax type:dataset"}))
    assert sorted(i["key"] for i in r["search"]["items"]) == ["gaiadr3.gaia_source", "sample.hip2"]
    r = c.execute(GraphQLRequest(SEARCH, variable_values={"q": "wavelength:X-ray spectra"}))
    assert [i["key"] for i in r["search"]["items"]] == ["xsa.v_rgs_spectra"]
    images = c.execute(gql("{ datalabImages { key title } }"))["datalabImages"]
    assert sorted(i["key"] for i in images) == ["cwl-runner", "headless-python", "jupyterlab"]
    datasets = c.execute(gql('{ datasets(q: "mission:XMM-Newton") { key instrument } }'))["datasets"]
    assert {d["instrument"] for d in datasets} == {"EPIC", "OM", "RGS"}
    with pytest.raises(TransportQueryError) as e:
        c.execute(GraphQLRequest(SEARCH, variable_values={"q": "colour:red"}))
    assert "unknown facet 'colour'" in str(e.value)


def test_alice_adds_her_volume_through_the_api_and_it_appears_in_her_mount_only(up):
    alice, bob = up.client(up.alice), up.client(up.bob)
    assert alice.execute(gql("{ me { name admin scopes } }"))["me"] == {
        "name": "alice", "admin": False, "scopes": ["catalog:read", "volumes", "labs", "share"]}
    prefix = f"gql-{uuid.uuid4().hex[:8]}"
    requests.request("MKCOL", f"http://127.0.0.1:18081/rw/{prefix}", auth=DAV_AUTH, timeout=10).raise_for_status()
    add = gql("""mutation Add($input: AddVolumeInput!) {
      addVolume(input: $input) { name reference kind owner access url credentials } }""")
    v = alice.execute(GraphQLRequest(add, variable_values={"input": {
        "name": "results", "url": f"webdav://127.0.0.1:18081/rw/{prefix}",
        "username": "colo", "password": DAV_AUTH[1]}}))["addVolume"]
    assert v == {"name": "results", "reference": "alice/results", "kind": "user", "owner": "alice",
                 "access": "READ_WRITE", "url": f"webdav://127.0.0.1:18081/rw/{prefix}",
                 "credentials": ["password=*****"]}
    names = [x["name"] for x in alice.execute(gql("{ volumes { name kind access } }"))["volumes"]]
    assert "results" in names and "s3" in names, names
    assert "results" not in [x["name"] for x in bob.execute(gql("{ volumes { name } }"))["volumes"]]

    mine = os.path.join(up.root, ".users", "alice", "results")
    wait_for(lambda: os.path.isdir(mine), "alice's new volume in her folder")
    with open(os.path.join(mine, "out.txt"), "w") as f:
        f.write("written in a datalab")
        f.flush()
        os.fsync(f.fileno())
    got = requests.get(f"http://127.0.0.1:18081/rw/{prefix}/out.txt", auth=DAV_AUTH, timeout=10)
    assert got.text == "written in a datalab"
    assert not os.path.exists(os.path.join(up.root, ".users", "bob", "results@alice"))

    # Her SFTP home ("sshfs"), with the private key itself: the API may not name server files.
    key = open(os.path.join(RUN, "ssh", "client_key")).read()
    sftp_dir = os.path.join(RUN, "rw", "sftp", prefix)
    os.makedirs(sftp_dir)
    v = alice.execute(GraphQLRequest(add, variable_values={"input": {
        "name": "home", "url": f"sshfs://root@127.0.0.1:18022{sftp_dir}", "privateKey": key,
        "knownHosts": "accept"}}))["addVolume"]
    assert v["credentials"] == ["private_key=*****"] and v["kind"] == "user"
    home = os.path.join(up.root, ".users", "alice", "home")
    wait_for(lambda: os.path.isdir(home), "alice's SFTP home in her folder")
    with open(os.path.join(home, "over-ssh.txt"), "w") as f:
        f.write("through sftp")
        f.flush()
        os.fsync(f.fileno())
    assert open(os.path.join(sftp_dir, "over-ssh.txt")).read() == "through sftp"
    listing = post(up, "{ volumes { name url credentials } }", up.alice).text
    assert "PRIVATE KEY" not in listing and key.strip().splitlines()[1] not in listing
    with pytest.raises(TransportQueryError) as e:
        alice.execute(GraphQLRequest(add, variable_values={"input": {
            "name": "keyfile", "url": f"sshfs://root@127.0.0.1:18022{sftp_dir}"}}))
    assert "keyfile" in str(e.value)

    # Wrong credentials: refused at once, the volume named, the secret masked.
    with pytest.raises(TransportQueryError) as e:
        alice.execute(GraphQLRequest(add, variable_values={"input": {
            "name": "broken", "url": "webdav://127.0.0.1:18081/rw", "username": "colo",
            "password": "wrong-password-123"}}))
    assert "volume 'broken'" in str(e.value) and "wrong-password-123" not in str(e.value)
    assert e.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    for bad_input, says in [({"name": "../x", "url": "webdav://127.0.0.1:18081/rw"}, "not allowed"),
                            ({"name": "etc", "url": "file:///etc"}, "file://"),
                            ({"name": "odd", "url": "gopher://x/y"}, "gopher")]:
        with pytest.raises(TransportQueryError) as e:
            alice.execute(GraphQLRequest(add, variable_values={"input": bad_input}))
        assert says in str(e.value), str(e.value)

    # Grant to bob read-only, then revoke: through the API, seen through the mount.
    grant = gql('mutation { grantVolume(reference: "results", user: "bob", access: READ_ONLY) }')
    assert alice.execute(grant)["grantVolume"] is True
    shared = os.path.join(up.root, ".users", "bob", "results@alice")
    wait_for(lambda: os.path.exists(os.path.join(shared, "out.txt")), "the grant in bob's folder")
    assert open(os.path.join(shared, "out.txt")).read() == "written in a datalab"
    with pytest.raises(OSError) as e:
        open(os.path.join(shared, "bob.txt"), "w")
    assert e.value.errno == errno.EROFS
    listed = {x["name"]: x["access"] for x in bob.execute(gql("{ volumes { name access } }"))["volumes"]}
    assert listed["results@alice"] == "READ_ONLY"
    # Bob cannot re-share or remove alice's volume, and is told nothing about others'.
    for q in ['mutation { grantVolume(reference: "results@alice", user: "bob", access: READ_WRITE) }',
              'mutation { removeVolume(reference: "alice/results") }',
              'mutation { removeVolume(reference: "carol/secret") }']:
        with pytest.raises(TransportQueryError) as e:
            bob.execute(gql(q))
        assert e.value.errors[0]["extensions"]["code"] == "NOT_FOUND", q
    assert alice.execute(gql('mutation { revokeVolume(reference: "results", user: "bob") }'))["revokeVolume"]
    wait_for(lambda: not os.path.exists(shared), "revoked: gone from bob's folder")
    assert alice.execute(gql('mutation { removeVolume(reference: "results") }'))["removeVolume"]
    wait_for(lambda: not os.path.exists(mine), "removed: gone from alice's folder")
    assert alice.execute(gql('mutation { addVolumeFromCatalog(key: "s3") { name kind access } }'))[
        "addVolumeFromCatalog"] == {"name": "s3", "kind": "archive", "access": "READ_ONLY"}


def post(up, query, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(up.url, json={"query": query}, headers=headers, timeout=10)


def test_tokens_scopes_and_refusals(up):
    alice = up.client(up.alice)
    made = alice.execute(gql('mutation { createToken(scopes: ["catalog:read"], expiresDays: 1, label: "nb") '
                             '{ id token scopes expiresAt } }'))["createToken"]
    assert made["scopes"] == ["catalog:read"] and made["expiresAt"] > time.time()
    assert up.client(made["token"]).execute(gql("{ me { name } }"))["me"]["name"] == "alice"
    r = post(up, "{ volumes { name } }", made["token"])
    assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert post(up, "{ me { name } }").status_code == 401
    assert post(up, "{ me { name } }", "colo_" + "A" * 43).status_code == 401
    up.cli("token", "revoke", str(made["id"]))
    r = post(up, "{ me { name } }", made["token"])
    assert r.status_code == 401 and "revoked" in r.text
    # Limits: too deep, too wide, too big.
    deep = "name " + "".join("ofType { " for _ in range(20)) + "name" + " }" * 20
    assert "too deep" in post(up, f'{{ __type(name: "Volume") {{ {deep} }} }}').text.lower()
    wide = " ".join(f"a{i}: search {{ total }}" for i in range(700))
    assert "complex" in post(up, f"{{ {wide} }}").text.lower()
    assert requests.post(up.url, data="x" * 200_000, timeout=10).status_code == 413
    # No secret in any answer or in the process's log so far.
    assert DAV_AUTH[1] not in post(up, "{ volumes { url credentials } }", up.alice).text
    assert "GraphiQL" in requests.get(up.url, headers={"Accept": "text/html"}, timeout=10).text


def test_async_jobs_belong_to_their_creator(up):
    """TAP async jobs through pyvo: alice's job is hers — bob's and anonymous job lists do not
    show it and its URL answers 404 to them; a bad token is 401 on the VO services too."""
    import pyvo

    def session(token=None):
        s = requests.Session()
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    tap_url = f"{up.base}/tap"
    alice = pyvo.dal.TAPService(tap_url, session=session(up.alice))
    job = alice.submit_job("SELECT TOP 3 table_name FROM TAP_SCHEMA.tables")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR"], timeout=60)
    assert job.phase == "COMPLETED"
    assert len(job.fetch_result().to_table()) == 3
    job_url = job.url
    assert requests.get(f"{job_url}/owner", headers={"Authorization": f"Bearer {up.alice}"},
                        timeout=10).text.strip() == "alice"
    for who in (up.bob, None):
        headers = {"Authorization": f"Bearer {who}"} if who else {}
        assert requests.get(job_url, headers=headers, timeout=10).status_code == 404
        assert requests.get(f"{job_url}/results/result", headers=headers, timeout=10).status_code == 404
        assert requests.delete(job_url, headers=headers, timeout=10).status_code == 404
        listing = requests.get(f"{tap_url}/async", headers=headers, timeout=10).text
        assert job.job_id not in listing
    assert job.job_id in requests.get(f"{tap_url}/async", headers={"Authorization": f"Bearer {up.alice}"},
                                      timeout=10).text
    r = requests.get(f"{tap_url}/sync", params={"REQUEST": "doQuery", "LANG": "ADQL",
                                                "QUERY": "SELECT TOP 1 * FROM TAP_SCHEMA.tables"},
                     headers={"Authorization": "Bearer colo_" + "B" * 43}, timeout=10)
    assert r.status_code == 401 and "not authenticated" in r.text
    # Anonymous access to what is public stays possible.
    anon = pyvo.dal.TAPService(tap_url)
    assert len(anon.search("SELECT TOP 2 table_name FROM TAP_SCHEMA.tables")) == 2
