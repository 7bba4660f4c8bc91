//! What the Kubernetes backend asks the API server for, as pure functions of a [`LabSpec`]: the
//! user's namespace, the lab's Secret (what must not be readable in the Pod spec: the web lab's
//! private token) and its Pod — and, back from a watch, what state a Pod is in and why.
//!
//! One Pod per lab, in a namespace per user (`<prefix><user>`): the user's labs, secrets and
//! quotas live together, and deleting the namespace removes everything of theirs.
//!
//! Volumes: a colo node daemon (a DaemonSet, `deploy/kubernetes/`) mounts colo's FUSE file system
//! on every data node at the same mount root as a single-machine colo, with bidirectional mount
//! propagation; a lab's Pod gets each of its volumes as a `hostPath` of that user's view
//! (`<mount root>/.users/<user>/<view>`, exactly the folder the local backend binds) with
//! `HostToContainer` propagation, read-only where the grant is. So labs on Kubernetes read through
//! the same views, grants and block cache of their node as labs on one machine, and the Pods are
//! pinned to the data nodes by a node selector. A sidecar per Pod would need a privileged
//! container and its own cache per lab; the node daemon needs one privileged Pod per node.
//!
//! The lab runs as the user's own uid and gid, never root, with no privilege escalation, no
//! capabilities, no service-account token and no service links; its resources are both requested
//! and limited (a Guaranteed Pod: what the user chose is what they get, and a lab over its memory
//! is OOM-killed — and says so).

use crate::lifecycle::LabState;
use crate::plan::LabSpec;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HostPathVolumeSource, Namespace,
    Pod, PodSecurityContext, PodSpec, Probe, ResourceRequirements, Secret, SecretKeySelector,
    SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Labels on everything colo creates (so an operator can list and clean it up).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "colo");
/// Annotations naming the lab and its user (ids and user names need not be valid label values).
pub const LAB_ANNOTATION: &str = "colo/lab";
pub const USER_ANNOTATION: &str = "colo/user";
/// The environment variables that go into the lab's Secret rather than its Pod spec.
pub const SECRET_ENV: &[&str] = &["COLO_LAB_SECRET"];
/// The one container of a lab's Pod.
pub const CONTAINER: &str = "lab";

/// How the Kubernetes backend places labs (`[labs.kubernetes]` in colo's config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// Each user's namespace is this and their name.
    pub namespace_prefix: String,
    /// The container image for a datalab image key (`jupyterlab` → an image with JupyterLab at
    /// the same command); a key without one is refused at launch, naming the key.
    pub images: BTreeMap<String, String>,
    /// Labs run only on nodes with these labels: the nodes colo's node daemon runs on.
    pub node_selector: BTreeMap<String, String>,
    /// `IfNotPresent` by default (a lab starts from the node's copy once pulled).
    pub image_pull_policy: String,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            namespace_prefix: "colo-".into(),
            images: BTreeMap::new(),
            node_selector: BTreeMap::from([("colo/data-node".into(), "true".into())]),
            image_pull_policy: "IfNotPresent".into(),
        }
    }
}

/// The namespace of `user`'s labs: `<prefix><user>` where that is a DNS label, else (a user name
/// with `_`, or too long) a DNS-safe form of it with a hash of the name, so two users never
/// share one.
pub fn namespace_of(prefix: &str, user: &str) -> String {
    let plain = format!("{prefix}{user}");
    let is_label = plain.len() <= 63
        && plain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && plain.starts_with(|c: char| c.is_ascii_lowercase())
        && plain.ends_with(|c: char| c.is_ascii_alphanumeric());
    if is_label {
        return plain;
    }
    let safe: String = plain
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .take(63 - 9)
        .collect();
    format!("{}-{:08x}", safe.trim_end_matches('-'), fnv1a32(user))
}

fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The Pod's name for lab `id`.
pub fn pod_name(id: &str) -> String {
    format!("lab-{id}")
}

/// The Secret's name for lab `id` (the Pod's name: one of each per lab).
pub fn secret_name(id: &str) -> String {
    pod_name(id)
}

fn meta(name: &str, namespace: Option<&str>, spec: &LabSpec) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.0.into(), MANAGED_BY.1.into()),
            ("app.kubernetes.io/component".into(), "datalab".into()),
        ])),
        annotations: Some(BTreeMap::from([
            (LAB_ANNOTATION.into(), spec.id.clone()),
            (USER_ANNOTATION.into(), spec.user.clone()),
        ])),
        ..Default::default()
    }
}

/// The user's namespace (created by the backend if it is not there).
pub fn namespace(name: &str, user: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())])),
            annotations: Some(BTreeMap::from([(USER_ANNOTATION.into(), user.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The lab's Secret: its environment variables named in [`SECRET_ENV`] (`None`: it has none).
pub fn secret(spec: &LabSpec, namespace: &str) -> Option<Secret> {
    let data: BTreeMap<String, String> = spec
        .env
        .iter()
        .filter(|(k, _)| SECRET_ENV.contains(&k.as_str()))
        .cloned()
        .collect();
    (!data.is_empty()).then(|| Secret {
        metadata: meta(&secret_name(&spec.id), Some(namespace), spec),
        string_data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    })
}

/// CPU as Kubernetes writes it: thousandths of a core.
fn cpu_quantity(millis: u32) -> Quantity {
    Quantity(format!("{millis}m"))
}

/// Memory as Kubernetes writes it: MiB where exact, else bytes.
fn memory_quantity(bytes: u64) -> Quantity {
    if bytes.is_multiple_of(1 << 20) {
        Quantity(format!("{}Mi", bytes >> 20))
    } else {
        Quantity(bytes.to_string())
    }
}

/// The lab's Pod: `image` running the spec's command as the user, its volumes under
/// `mount_point`, its resources requested and limited, and (a web lab: `ready` on a port) that
/// port, with readiness when it accepts connections.
pub fn pod(
    spec: &LabSpec,
    image: &str,
    namespace: &str,
    mount_point: &str,
    settings: &KubeSettings,
) -> Pod {
    let env = spec
        .env
        .iter()
        .map(|(name, value)| {
            if SECRET_ENV.contains(&name.as_str()) {
                EnvVar {
                    name: name.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret_name(&spec.id),
                            key: name.clone(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    ..Default::default()
                }
            }
        })
        .collect();
    let resources = BTreeMap::from([
        ("cpu".to_string(), cpu_quantity(spec.resources.cpu_millis)),
        (
            "memory".to_string(),
            memory_quantity(spec.resources.memory_bytes),
        ),
    ]);
    let port = match spec.ready.as_ref().map(|r| &r.endpoint) {
        Some(crate::http::Endpoint::Tcp(port)) => Some(i32::from(*port)),
        _ => None,
    };
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = spec
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("volume-{i}");
            (
                Volume {
                    name: name.clone(),
                    host_path: Some(HostPathVolumeSource {
                        path: v.source.display().to_string(),
                        type_: Some("Directory".into()),
                    }),
                    ..Default::default()
                },
                VolumeMount {
                    name,
                    mount_path: format!("{}/{}", mount_point.trim_end_matches('/'), v.name),
                    read_only: Some(v.read_only),
                    mount_propagation: Some("HostToContainer".into()),
                    ..Default::default()
                },
            )
        })
        .unzip();
    Pod {
        metadata: meta(&pod_name(&spec.id), Some(namespace), spec),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(10),
            node_selector: (!settings.node_selector.is_empty())
                .then(|| settings.node_selector.clone()),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(i64::from(spec.uid)),
                run_as_group: Some(i64::from(spec.gid)),
                run_as_non_root: Some(true),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(image.to_string()),
                image_pull_policy: Some(settings.image_pull_policy.clone()),
                command: Some(spec.command.clone()),
                env: Some(env),
                working_dir: Some(mount_point.to_string()),
                resources: Some(ResourceRequirements {
                    requests: Some(resources.clone()),
                    limits: Some(resources),
                    ..Default::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    privileged: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ports: port.map(|p| {
                    vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: p,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]
                }),
                readiness_probe: port.map(|p| Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(p),
                        ..Default::default()
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a Pod's status says about its lab: the state and why (`None`: nothing to say yet).
/// Waiting reasons that will not resolve by themselves (an image that cannot be pulled, a
/// container that cannot be created) are FAILED at once, never a silent timeout.
pub fn state_of(pod: &Pod, memory_bytes: u64) -> Option<(LabState, String)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some((LabState::Stopping, "its Pod is being deleted".into()));
    }
    let status = pod.status.as_ref()?;
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    let condition = |kind: &str| status.conditions.iter().flatten().find(|c| c.type_ == kind);
    if let Some(term) = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    {
        let reason = term.reason.clone().unwrap_or_default();
        if reason == "OOMKilled" {
            return Some((
                LabState::Failed,
                format!(
                    "OOM-killed: the lab used all of its {} MiB memory limit",
                    memory_bytes >> 20
                ),
            ));
        }
        let last = term
            .message
            .as_deref()
            .map(|m| format!("; {}", m.trim()))
            .unwrap_or_default();
        return Some(if term.exit_code == 0 {
            (LabState::Stopped, "the tool exited (code 0)".into())
        } else {
            (
                LabState::Failed,
                format!("exit code {}{last}", term.exit_code),
            )
        });
    }
    match status.phase.as_deref() {
        Some("Failed") => {
            let why = [status.reason.as_deref(), status.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            return Some((LabState::Failed, format!("its Pod failed: {why}")));
        }
        Some("Succeeded") => {
            return Some((LabState::Stopped, "the tool exited (code 0)".into()));
        }
        _ => {}
    }
    if let Some(waiting) = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
    {
        let reason = waiting.reason.clone().unwrap_or_default();
        let message = waiting.message.clone().unwrap_or_default();
        const HOPELESS: &[&str] = &[
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
        ];
        if HOPELESS.contains(&reason.as_str()) {
            return Some((LabState::Failed, format!("{reason}: {message}")));
        }
        return Some((
            LabState::Mounting,
            format!("on node {node}: volumes and image ({reason})"),
        ));
    }
    if container
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
    {
        let ready = container.is_some_and(|c| c.ready);
        return Some(if ready {
            let ip = status.pod_ip.clone().unwrap_or_default();
            (LabState::Running, format!("on node {node}, Pod IP {ip}"))
        } else {
            (
                LabState::Starting,
                format!("on node {node}: started, not ready yet"),
            )
        });
    }
    match condition("PodScheduled") {
        Some(c) if c.status == "False" => Some((
            LabState::Pending,
            format!(
                "not scheduled: {}",
                c.message
                    .clone()
                    .unwrap_or_else(|| "waiting for a node".into())
            ),
        )),
        Some(_) => Some((LabState::Mounting, format!("scheduled on node {node}"))),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lab-x"},
            "spec": {"nodeName": "node-b", "containers": [{"name": "lab"}]},
            "status": status,
        }))
        .expect("a pod")
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "lab", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    #[test]
    fn states_and_reasons_from_pod_status() {
        let unschedulable = pod_with(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient memory."}]}));
        let (state, why) = state_of(&unschedulable, 1 << 30).expect("a state");
        assert_eq!(state, LabState::Pending);
        assert!(why.contains("Insufficient memory"), "{why}");

        let pulling = pod_with(waiting("ContainerCreating", ""));
        assert_eq!(
            state_of(&pulling, 1 << 30).expect("state").0,
            LabState::Mounting
        );

        // An image that cannot be pulled fails at once, saying so.
        let (state, why) = state_of(
            &pod_with(waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"nope:1\"",
            )),
            1 << 30,
        )
        .expect("a state");
        assert_eq!(state, LabState::Failed);
        assert!(
            why.contains("ImagePullBackOff") && why.contains("nope:1"),
            "{why}"
        );

        let exited = |code: i32, reason: &str| {
            pod_with(
                serde_json::json!({"phase": if code == 0 {"Succeeded"} else {"Failed"},
                "containerStatuses": [{"name": "lab", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason,
                    "message": "Traceback: boom\n"}}}]}),
            )
        };
        assert_eq!(
            state_of(&exited(0, "Completed"), 1 << 30),
            Some((LabState::Stopped, "the tool exited (code 0)".into()))
        );
        let (state, why) = state_of(&exited(3, "Error"), 1 << 30).expect("a state");
        assert_eq!(state, LabState::Failed);
        assert_eq!(why, "exit code 3; Traceback: boom");
        let (state, why) = state_of(&exited(137, "OOMKilled"), 256 << 20).expect("a state");
        assert_eq!(state, LabState::Failed);
        assert!(
            why.starts_with("OOM-killed") && why.contains("256 MiB"),
            "{why}"
        );

        // Evicted (the node ran short): the Pod's own reason and message.
        let evicted = pod_with(serde_json::json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: ephemeral-storage."}));
        let (state, why) = state_of(&evicted, 1 << 30).expect("a state");
        assert_eq!(state, LabState::Failed);
        assert!(
            why.contains("Evicted") && why.contains("ephemeral-storage"),
            "{why}"
        );

        let mut deleting = pulling.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert_eq!(
            state_of(&deleting, 1 << 30).expect("state").0,
            LabState::Stopping
        );
        // Nothing reported yet: nothing to say.
        assert_eq!(state_of(&Pod::default(), 1 << 30), None);
    }

    #[test]
    fn namespaces_are_dns_labels_and_never_shared() {
        assert_eq!(namespace_of("colo-", "alice"), "colo-alice");
        let a = namespace_of("colo-", "bob_smith");
        let b = namespace_of("colo-", "bob-smith");
        assert_ne!(a, b, "two users, two namespaces");
        assert_eq!(b, "colo-bob-smith");
        let long = namespace_of("colo-", &"x".repeat(80));
        for ns in [&a, &long, &namespace_of("colo-", "trailing-")] {
            assert!(ns.len() <= 63, "{ns}");
            assert!(
                ns.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{ns}"
            );
            assert!(ns.ends_with(|c: char| c.is_ascii_alphanumeric()), "{ns}");
        }
    }

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(cpu_quantity(500).0, "500m");
        assert_eq!(memory_quantity(2048 << 20).0, "2048Mi");
        assert_eq!(memory_quantity((64 << 20) + 1).0, "67108865");
    }
}
