"""The Kubernetes side without a cluster: colo's deploy manifests and the objects its Kubernetes
backend creates (the golden Namespace, Secret and Pods the Rust tests compare against) are valid
Kubernetes objects — checked strictly (no unknown fields) against the Kubernetes OpenAPI schemas
of the oldest (1.33) and newest (1.37) versions colo supports, with `kubernetes-validate`
(schemas bundled, no network) — and the ClusterRole grants exactly what the backend does."""

import pathlib

import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes" / "colo.yaml"
GOLDEN = sorted((REPO / "launcher" / "labs" / "tests" / "golden" / "kube").glob("*.yaml"))
VERSIONS = ["1.33", "1.37"]


def deploy_objects():
    return [d for d in yaml.safe_load_all(DEPLOY.read_text()) if d]


def test_the_manifests_hold_what_colo_needs():
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in deploy_objects())
    assert kinds == sorted([
        "Namespace/colo-system", "ServiceAccount/colo", "ClusterRole/colo-datalabs",
        "ClusterRoleBinding/colo-datalabs", "ConfigMap/colo-config",
        "PersistentVolumeClaim/colo-home", "Deployment/colo", "Service/colo",
    ])
    assert len(GOLDEN) >= 4, GOLDEN


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("index", range(8))
def test_deploy_manifests_are_valid_kubernetes(index, version):
    obj = deploy_objects()[index]
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_lab_objects_are_valid_kubernetes(path, version):
    kubernetes_validate.validate(yaml.safe_load(path.read_text()), version, strict=True)


def test_a_broken_object_is_refused():
    """The check itself: an unknown field and a wrong type are errors (strict mode)."""
    pod = yaml.safe_load(next(p for p in GOLDEN if p.name.startswith("pod")).read_text())
    bad = dict(pod, spec=dict(pod["spec"], runAsUsr=1))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33", strict=True)
    bad = dict(pod, spec=dict(pod["spec"], restartPolicy=3))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33", strict=True)


def test_the_cluster_role_grants_what_the_backend_does_and_no_more():
    role = next(d for d in deploy_objects() if d["kind"] == "ClusterRole")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    # What launcher/labs/src/kube/backend.rs asks the API server (see its tests' requests).
    assert granted == {
        ("namespaces", "get"), ("namespaces", "create"),
        ("pods", "get"), ("pods", "list"), ("pods", "watch"), ("pods", "create"), ("pods", "delete"),
        ("pods/log", "get"),
        ("secrets", "create"), ("secrets", "delete"),
    }
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])


def test_labs_are_placed_where_colo_mounts():
    """The labs' node selector is the node colo runs on, and colo's mount reaches the node."""
    objs = deploy_objects()
    deployment = next(d for d in objs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    config = next(d for d in objs if d["kind"] == "ConfigMap")["data"]["colo.toml"]
    assert 'mount_root = "/var/lib/colo/mnt"' in config
    assert '"colo/data-node" = "true"' in config
    assert pod["nodeSelector"] == {"colo/data-node": "true"}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "mount-root")
    assert mount["mountPath"] == "/var/lib/colo/mnt"
    assert mount["mountPropagation"] == "Bidirectional"
    host = next(v for v in pod["volumes"] if v["name"] == "mount-root")["hostPath"]["path"]
    assert host == "/var/lib/colo/mnt"
    # The golden Pods' volumes come from under that mount.
    for path in GOLDEN:
        obj = yaml.safe_load(path.read_text())
        if obj["kind"] == "Pod":
            for v in obj["spec"]["volumes"]:
                assert v["hostPath"]["path"].startswith("/var/lib/colo/mnt/.users/"), v
