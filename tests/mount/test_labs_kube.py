"""`colo up` with `[labs] backend = "kubernetes"`, against a stand-in API server and kubelet
(fake_kube.py; KUBECONFIG points colo at it): alice's JupyterLab becomes a Pod in her namespace
with her uid, her volumes as hostPaths of her views in colo's mount (the archive read-only), the
lab's token in a Secret; its state comes from the watch (PENDING → MOUNTING → STARTING → RUNNING),
its log from the API; colo's proxy forwards to the Pod's address with the lab's token and without
alice's; stopping deletes the Pod and the Secret. What the real cluster would do is not tested
here (README, "Datalabs on Kubernetes")."""
import time

import pytest
import requests

from fake_kube import POD_IP, FakeKube
from platform_up import CREATE, Platform

IMAGES = {"jupyterlab": "registry.example/colo/jupyterlab:4.6.6",
          "headless-python": "registry.example/colo/python:3.13"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kube")
    fake = FakeKube()
    images = ", ".join(f'{k} = "{v}"' for k, v in IMAGES.items())
    extra = f'\n[labs]\nbackend = "kubernetes"\nstart_limit_secs = 30\n[labs.kubernetes]\nimages = {{ {images} }}\n'
    p = Platform(tmp, extra_config=extra, env={"KUBECONFIG": fake.kubeconfig(tmp / "kubeconfig")})
    yield p, fake
    p.stop()
    fake.close()


def test_a_jupyterlab_lab_is_a_pod_of_its_user_served_through_the_proxy(cluster):
    p, fake = cluster
    r = p.gql("alice", CREATE, {"input": {"name": "nb", "image": "jupyterlab", "volumes": ["imgs", "work"],
                                          "cpuMillis": 500, "memoryMib": 512}})
    lab_id = r["data"]["createDatalab"]["datalab"]["id"]
    lab = p.until("alice", lab_id, ("RUNNING",), timeout=30)
    assert lab["state"] == "RUNNING", lab
    assert [e["state"] for e in lab["events"]] == ["PENDING", "MOUNTING", "STARTING", "RUNNING"], lab
    assert POD_IP in lab["reason"], lab

    # What colo asked the cluster for.
    assert "colo-alice" in fake.namespaces
    (ns, name), = fake.pods.keys()
    assert (ns, name) == ("colo-alice", f"lab-{lab_id}")
    spec = fake.pods[(ns, name)]["spec"]
    c = spec["containers"][0]
    assert c["image"] == IMAGES["jupyterlab"]
    assert spec["securityContext"] == {"runAsUser": 100001, "runAsGroup": 100001, "runAsNonRoot": True}
    assert c["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"} == c["resources"]["requests"]
    assert "--ServerApp.ip=0.0.0.0" in c["command"] and "--ServerApp.port=8888" in c["command"], c["command"]
    assert f"--ServerApp.base_url=/labs/{lab_id}/" in c["command"], c["command"]
    assert not any(a.startswith("--config=") or a.startswith("--ServerApp.sock") for a in c["command"])
    env = {e["name"]: e for e in c["env"]}
    assert "PATH" not in env, "the image's own PATH"
    assert env["HOME"]["value"] == "/tmp"
    assert env["COLO_LAB_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == name
    assert "value" not in env["COLO_LAB_SECRET"], "the token is not in the Pod spec"
    secret = fake.secret_value()
    assert secret and len(secret) == 64, secret
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/media/data/imgs"]["readOnly"] is True
    assert mounts["/media/data/work"]["readOnly"] is False
    paths = sorted(v["hostPath"]["path"] for v in spec["volumes"])
    assert paths == [f"{p.root}/.users/alice/imgs", f"{p.root}/.users/alice/work"], paths

    # The proxy: to the Pod's address, with the lab's token, without alice's.
    url = f"{p.base}/labs/{lab_id}/api/status"
    got = requests.get(url, headers={"Authorization": f"Bearer {p.tokens['alice']}"}, timeout=30)
    assert got.status_code == 200, got.text
    assert got.json() == {"path": f"/labs/{lab_id}/api/status", "secret_ok": True}
    path, headers = next(r for r in fake.lab.requests if r[0].endswith("/api/status"))
    assert not any(k.lower() == "authorization" for k in headers), headers
    assert requests.get(url, headers={"Authorization": f"Bearer {p.tokens['bob']}"}, timeout=30).status_code == 403

    # Its log, from the API.
    deadline = time.time() + 10
    while time.time() < deadline:
        log = p.gql("alice", "query($id: String!) { datalab(id: $id) { log } }", {"id": lab_id})["data"]["datalab"]["log"]
        if "started" in log:
            break
        time.sleep(0.2)
    assert log.startswith(f"container {name} started in colo-alice"), log

    # Stop: the Pod and its Secret are deleted; STOPPED with the reason.
    p.gql("alice", "mutation($id: String!) { stopDatalab(id: $id) { id } }", {"id": lab_id})
    lab = p.until("alice", lab_id, (), timeout=30)
    assert [e["state"] for e in lab["events"]][-2:] == ["STOPPING", "STOPPED"], lab
    assert fake.pods == {} and fake.secrets == {}, (fake.pods.keys(), fake.secrets.keys())
    assert requests.get(url, headers={"Authorization": f"Bearer {p.tokens['alice']}"}, timeout=30).status_code == 503


def test_an_image_without_a_container_image_is_refused_saying_which(cluster):
    p, fake = cluster
    r = p.gql("alice", CREATE, {"input": {"name": "cwl", "image": "cwl-runner", "volumes": ["work"]}})
    text = str(r)
    assert "cwl-runner" in text and "labs.kubernetes.images" in text, r
    assert not any(k[1].endswith("cwl") for k in fake.pods), fake.pods
