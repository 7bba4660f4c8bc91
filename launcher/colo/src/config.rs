//! `colo.toml`: the mount root, the cache, and the volumes. Unknown keys are errors, and every error
//! is one line naming the file, the line, the key and what was expected.
//!
//! ```toml
//! mount_root = "/media/data"
//! [cache]
//! dir = "/var/cache/colo"
//! memory_mib = 512
//! disk_gib = 20
//! block_kib = 1024
//! [[volume]]
//! name = "archive"
//! url = "s3://bucket/prefix"
//! ```

use colo_connectors::{VolumeConfig, VolumeSpec};
use colo_vo_services::TableFolder;
use colo_vo_services::http::UrlPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the volumes appear by default.
pub const DEFAULT_MOUNT_ROOT: &str = "/media/data";
/// Default address of the VO services (TAP, SIA, DataLink, SODA).
pub const DEFAULT_SERVICES_LISTEN: &str = "127.0.0.1:8765";
/// Default address of the metrics endpoint (`GET /metrics`, what `colo stats` reads).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:8766";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Directory of the disk tier (default `$COLO_HOME/cache`).
    pub dir: Option<PathBuf>,
    /// The memory budget in MiB: fetches in flight (an eighth, at least two blocks) and the memory
    /// tier (the rest; 0 turns the memory tier off).
    pub memory_mib: Option<u64>,
    /// Disk tier size in GiB (0 turns the disk tier off).
    pub disk_gib: Option<f64>,
    /// Block size in KiB: the unit of caching and of origin requests.
    pub block_kib: Option<u64>,
    /// Largest prefetch window in MiB for one sequential reader.
    pub prefetch_max_mib: Option<u64>,
    /// Files up to this size (MiB) that are read at random are fetched whole in the background.
    pub random_fill_max_mib: Option<u64>,
    /// At unmount, how long to wait for changes on read-write volumes to reach their origins
    /// (what is left is sent on the next start).
    pub upload_wait_secs: Option<u64>,
    /// How long `fsync` on a read-write volume waits for the origin to hold the bytes before it
    /// returns with them durable on the local disk only (0: never waits for the origin).
    pub fsync_wait_secs: Option<u64>,
    /// Files of read-only volumes wholly in the cache are read by the kernel from a whole-file
    /// copy (FUSE passthrough); default true.
    pub passthrough: Option<bool>,
}

/// `[services]`: the IVOA services (TAP) and where they keep tables and jobs.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServicesConfig {
    /// Address to listen on (default 127.0.0.1:8765).
    pub listen: Option<String>,
    /// Published tables (default `$COLO_HOME/tables`).
    pub tables_dir: Option<PathBuf>,
    /// Async jobs and their results (default `$COLO_HOME/jobs`).
    pub jobs_dir: Option<PathBuf>,
    /// MAXREC when a query gives none (default 100000).
    pub default_maxrec: Option<u64>,
    /// Largest MAXREC honoured (default 50000000).
    pub hard_maxrec: Option<u64>,
    /// Largest table upload in MiB (default 64).
    pub upload_limit_mib: Option<u64>,
    /// Longest async job run in seconds (default 3600).
    pub execution_duration_secs: Option<u64>,
    /// Memory one query may hold in sorts, aggregations and joins, MiB (default 1024).
    pub query_memory_mib: Option<u64>,
    /// Longest synchronous query in seconds (default 600).
    pub sync_query_secs: Option<u64>,
    /// Async jobs executing at once (default 4) and per caller (default 2).
    pub async_jobs_running: Option<usize>,
    pub async_jobs_per_caller: Option<usize>,
    /// A caller's async jobs not finished yet (default 100); creating more is refused.
    pub async_jobs_unfinished_per_caller: Option<usize>,
    /// Longest wait for a client's request headers, for the next piece of a request body, and
    /// for a client to read more of a response, seconds (default 60).
    pub client_timeout_secs: Option<u64>,
    /// Connections served at once (default 1024); more wait until one closes.
    pub max_connections: Option<usize>,
    /// The base of every URL the services hand out (`https://archive.example.org/colo`); without
    /// it, URLs follow each request (its `Host`, and a trusted proxy's `X-Forwarded-*`).
    pub public_url: Option<String>,
    /// Addresses of reverse proxies whose `X-Forwarded-*` headers are believed (loopback always).
    pub trusted_proxies: Option<Vec<String>>,
    /// Folders on volumes with published tables (`"archive/tables"`: what `colo ingest catalog
    /// --to archive/tables` writes), served next to those of `tables_dir`.
    pub table_volumes: Option<Vec<String>>,
}

/// The checked `[services]` settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub listen: std::net::SocketAddr,
    pub service: colo_vo_services::ServiceConfig,
    /// What one client may hold (slow, stalled or too many connections).
    pub clients: colo_vo_services::serve::ClientLimits,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ColoConfig {
    pub mount_root: Option<PathBuf>,
    /// Address of the metrics endpoint (`GET /metrics`, Prometheus text).
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub services: ServicesConfig,
    #[serde(default)]
    pub volume: Vec<VolumeConfig>,
    #[serde(default)]
    pub labs: LabsConfig,
}

/// `[labs]`: where datalabs run.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LabsConfig {
    /// `local` (the default: child processes of colo on this machine) or `kubernetes` (a Pod
    /// per lab, placed by `[labs.kubernetes]`).
    pub backend: Option<String>,
    /// How long a lab in a cluster may take to be RUNNING, seconds (default 300).
    pub start_limit_secs: Option<u64>,
    pub kubernetes: Option<colo_labs::kube::KubeSettings>,
}

/// Where datalabs run, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum LabsBackend {
    Local,
    Kubernetes {
        settings: colo_labs::kube::KubeSettings,
        start_limit: std::time::Duration,
    },
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mount_root: PathBuf,
    pub cache_dir: PathBuf,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub block_bytes: u64,
    pub prefetch_max_bytes: u64,
    pub random_fill_max_bytes: u64,
    /// At unmount: how long to wait for pending changes of read-write volumes.
    pub shutdown_upload_wait: std::time::Duration,
    pub fsync_wait: std::time::Duration,
    /// Whole-file copies for FUSE passthrough, at most this many bytes (0: no passthrough).
    pub passthrough_bytes: u64,
    pub volumes: Vec<VolumeSpec>,
    pub services: ServiceSettings,
    pub metrics_listen: std::net::SocketAddr,
    pub labs: LabsBackend,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {source}")]
    Volume {
        file: String,
        source: colo_connectors::SpecError,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The default memory budget: an eighth of the memory this process may use (the cgroup v2 limit,
/// else the machine's RAM), at most 512 MiB, at least 32 MiB.
pub fn default_memory_bytes() -> u64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let ram = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib << 10)
    });
    let available = match (cgroup, ram) {
        (Some(c), Some(r)) => c.min(r),
        (Some(c), None) => c,
        (None, Some(r)) => r,
        (None, None) => 4 << 30,
    };
    (available / 8).clamp(32 << 20, 512 << 20)
}

/// Where colo keeps its state: `$COLO_HOME`, else `~/.local/share/colo`.
pub fn colo_home() -> PathBuf {
    if let Some(h) = std::env::var_os("COLO_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/share/colo")
}

pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

pub fn parse(text: &str, file: &str) -> Result<Settings, ConfigError> {
    let raw: ColoConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            message: e.message().replace('\n', " "),
        }
    })?;
    settings(raw, file)
}

pub fn settings(raw: ColoConfig, file: &str) -> Result<Settings, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        file: file.to_string(),
        message,
    };
    let mut volumes = Vec::new();
    for v in &raw.volume {
        let spec = VolumeSpec::from_config(v).map_err(|source| ConfigError::Volume {
            file: file.to_string(),
            source,
        })?;
        if volumes.iter().any(|s: &VolumeSpec| s.name == spec.name) {
            return Err(invalid(format!(
                "volume name '{}' is used twice",
                spec.name
            )));
        }
        volumes.push(spec);
    }
    if volumes.is_empty() {
        return Err(invalid(
            "no [[volume]] defined: add at least one (see README, \"Configuration\")".into(),
        ));
    }
    let services = service_settings(&raw.services, file)?;
    for folder in &services.service.table_volumes {
        if !volumes.iter().any(|v| v.name == folder.volume) {
            let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
            return Err(invalid(format!(
                "key 'services.table_volumes': no volume '{}' (volumes: {})",
                folder.volume,
                names.join(", ")
            )));
        }
    }
    let metrics_text = raw
        .metrics_listen
        .clone()
        .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_string());
    let metrics_listen = metrics_text.parse().map_err(|_| {
        invalid(format!(
            "key 'metrics_listen' = {metrics_text:?}: expected host:port, e.g. {DEFAULT_METRICS_LISTEN}"
        ))
    })?;
    let labs = match raw.labs.backend.as_deref() {
        None | Some("local") => {
            if raw.labs.kubernetes.is_some() {
                return Err(invalid(
                    "[labs.kubernetes] is given but labs.backend is not \"kubernetes\"".into(),
                ));
            }
            LabsBackend::Local
        }
        Some("kubernetes") => LabsBackend::Kubernetes {
            settings: raw.labs.kubernetes.clone().unwrap_or_default(),
            start_limit: std::time::Duration::from_secs(raw.labs.start_limit_secs.unwrap_or(300)),
        },
        Some(other) => {
            return Err(invalid(format!(
                "key 'labs.backend' = {other:?}: expected \"local\" or \"kubernetes\""
            )));
        }
    };
    let c = &raw.cache;
    let block_kib = c.block_kib.unwrap_or(1024);
    if !(4..=16 * 1024).contains(&block_kib) {
        return Err(invalid(format!(
            "key 'cache.block_kib' = {block_kib}: expected 4 to 16384"
        )));
    }
    let disk_gib = c.disk_gib.unwrap_or(10.0);
    if !(disk_gib >= 0.0 && disk_gib.is_finite()) {
        return Err(invalid(format!(
            "key 'cache.disk_gib' = {disk_gib}: expected a size in GiB, 0 or more"
        )));
    }
    Ok(Settings {
        mount_root: raw
            .mount_root
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MOUNT_ROOT)),
        cache_dir: c.dir.clone().unwrap_or_else(|| colo_home().join("cache")),
        memory_bytes: c.memory_mib.map_or_else(default_memory_bytes, |m| m << 20),
        disk_bytes: (disk_gib * (1u64 << 30) as f64) as u64,
        block_bytes: block_kib << 10,
        prefetch_max_bytes: c.prefetch_max_mib.unwrap_or(64) << 20,
        // A quarter of the disk tier unless set (0: never).
        random_fill_max_bytes: c
            .random_fill_max_mib
            .map_or((disk_gib * (1u64 << 28) as f64) as u64, |m| m << 20),
        shutdown_upload_wait: std::time::Duration::from_secs(c.upload_wait_secs.unwrap_or(60)),
        fsync_wait: c.fsync_wait_secs.map_or(
            colo_cache::write_back::FSYNC_WAIT,
            std::time::Duration::from_secs,
        ),
        // Half the disk tier again: a copy doubles the disk a cached file takes.
        passthrough_bytes: if c.passthrough.unwrap_or(true) {
            (disk_gib * (1u64 << 30) as f64) as u64 / 2
        } else {
            0
        },
        volumes,
        services,
        metrics_listen,
        labs,
    })
}

/// Reads only the `[services]` part of a config (for `colo serve` and `colo ingest`, which need no
/// volumes); with no file, the defaults.
pub fn load_services(path: Option<&Path>) -> Result<ServiceSettings, ConfigError> {
    let Some(path) = path else {
        return service_settings(&ServicesConfig::default(), "defaults");
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let raw: ColoConfig = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        file: file.clone(),
        line: e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0),
        message: e.message().replace('\n', " "),
    })?;
    service_settings(&raw.services, &file)
}

pub fn service_settings(raw: &ServicesConfig, file: &str) -> Result<ServiceSettings, ConfigError> {
    let listen_text = raw
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVICES_LISTEN.to_string());
    let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
        file: file.to_string(),
        message: format!(
            "key 'services.listen' = {listen_text:?}: expected host:port, e.g. {DEFAULT_SERVICES_LISTEN}"
        ),
    })?;
    let defaults = colo_vo_services::vosi::ServiceLimits::default();
    let limits = colo_vo_services::vosi::ServiceLimits {
        default_maxrec: raw.default_maxrec.unwrap_or(defaults.default_maxrec),
        hard_maxrec: raw.hard_maxrec.unwrap_or(defaults.hard_maxrec),
        upload_limit_bytes: raw
            .upload_limit_mib
            .map_or(defaults.upload_limit_bytes, |m| m << 20),
        execution_duration_secs: raw
            .execution_duration_secs
            .unwrap_or(defaults.execution_duration_secs),
        retention_secs: defaults.retention_secs,
        query_memory_bytes: raw
            .query_memory_mib
            .map_or(defaults.query_memory_bytes, |m| m << 20),
        sync_query_secs: raw.sync_query_secs.unwrap_or(defaults.sync_query_secs),
        async_jobs_running: raw
            .async_jobs_running
            .unwrap_or(defaults.async_jobs_running),
        async_jobs_per_caller: raw
            .async_jobs_per_caller
            .unwrap_or(defaults.async_jobs_per_caller),
        async_jobs_unfinished_per_caller: raw
            .async_jobs_unfinished_per_caller
            .unwrap_or(defaults.async_jobs_unfinished_per_caller),
    };
    let client_defaults = colo_vo_services::serve::ClientLimits::default();
    let at_least_one = |key: &str, value: u64| {
        if value == 0 {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                message: format!("key 'services.{key}' = 0: expected at least 1"),
            })
        } else {
            Ok(value)
        }
    };
    let clients = colo_vo_services::serve::ClientLimits {
        timeout: match raw.client_timeout_secs {
            Some(secs) => {
                std::time::Duration::from_secs(at_least_one("client_timeout_secs", secs)?)
            }
            None => client_defaults.timeout,
        },
        max_connections: match raw.max_connections {
            Some(n) => at_least_one("max_connections", n as u64)? as usize,
            None => client_defaults.max_connections,
        },
    };
    let table_volumes = raw
        .table_volumes
        .iter()
        .flatten()
        .map(|text| {
            TableFolder::parse(text).ok_or_else(|| ConfigError::Invalid {
                file: file.to_string(),
                message: format!(
                    "key 'services.table_volumes': {text:?} is not VOLUME or VOLUME/FOLDER"
                ),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ServiceSettings {
        listen,
        service: colo_vo_services::ServiceConfig {
            tables_dir: raw
                .tables_dir
                .clone()
                .unwrap_or_else(|| colo_home().join("tables")),
            table_volumes,
            jobs_dir: raw
                .jobs_dir
                .clone()
                .unwrap_or_else(|| colo_home().join("jobs")),
            limits,
            urls: url_policy(raw, file)?,
        },
        clients,
    })
}

fn url_policy(raw: &ServicesConfig, file: &str) -> Result<UrlPolicy, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        file: file.to_string(),
        message,
    };
    let public_url = match &raw.public_url {
        None => None,
        Some(text) => {
            let parsed = url::Url::parse(text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    invalid(format!(
                        "key 'services.public_url' = {text:?}: expected an http(s) URL, e.g. https://archive.example.org/colo"
                    ))
                })?;
            Some(parsed.as_str().trim_end_matches('/').to_string())
        }
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .flatten()
        .map(|ip| {
            ip.parse().map_err(|_| {
                invalid(format!(
                    "key 'services.trusted_proxies': {ip:?} is not an IP address"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(UrlPolicy {
        public_url,
        trusted_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config of `deploy/kubernetes/colo.yaml` (its ConfigMap's `colo.toml`) is one colo takes.
    #[test]
    fn the_kubernetes_deployment_config_is_valid() {
        let manifest = include_str!("../../../deploy/kubernetes/colo.yaml");
        let toml: String = manifest
            .lines()
            .skip_while(|l| l.trim() != "colo.toml: |")
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let s = parse(&toml, "colo.yaml (ConfigMap colo-config)").expect("a valid config");
        assert_eq!(s.mount_root, PathBuf::from("/var/lib/colo/mnt"));
        assert_eq!(s.services.listen.port(), 8765);
        let LabsBackend::Kubernetes { settings, .. } = s.labs else {
            panic!("labs not on kubernetes: {:?}", s.labs);
        };
        for image in ["jupyterlab", "headless-python", "cwl-runner"] {
            assert!(
                settings.images.contains_key(image),
                "no container image for {image}"
            );
        }
    }

    #[test]
    fn labs_run_locally_by_default_and_in_a_cluster_when_configured() {
        let volume = "[[volume]]\nname = \"a\"\nurl = \"file:///tmp\"\n";
        let s = parse(volume, "colo.toml").expect("parses");
        assert_eq!(s.labs, LabsBackend::Local);
        let s = parse(
            &format!(
                "[labs]\nbackend = \"kubernetes\"\nstart_limit_secs = 90\n\
                 [labs.kubernetes]\nnamespace_prefix = \"lab-\"\n\
                 images = {{ jupyterlab = \"reg.example/jl:4\" }}\n{volume}"
            ),
            "colo.toml",
        )
        .expect("parses");
        let LabsBackend::Kubernetes {
            settings,
            start_limit,
        } = s.labs
        else {
            panic!("not kubernetes: {:?}", s.labs);
        };
        assert_eq!(start_limit.as_secs(), 90);
        assert_eq!(settings.namespace_prefix, "lab-");
        assert_eq!(settings.images["jupyterlab"], "reg.example/jl:4");
        // Unset keys keep their defaults: labs go to the data nodes.
        assert_eq!(settings.node_selector["colo/data-node"], "true");
        let bad = parse(
            &format!("[labs]\nbackend = \"docker\"\n{volume}"),
            "colo.toml",
        )
        .expect_err("refused")
        .to_string();
        assert!(
            bad.contains("labs.backend") && bad.contains("kubernetes"),
            "{bad}"
        );
        let typo = parse(
            &format!(
                "[labs]\nbackend = \"kubernetes\"\n[labs.kubernetes]\nimagez = {{}}\n{volume}"
            ),
            "colo.toml",
        )
        .expect_err("refused")
        .to_string();
        assert!(typo.contains("imagez"), "{typo}");
    }

    #[test]
    fn a_full_config_parses() {
        let s = parse(
            r#"
mount_root = "/mnt/x"
[cache]
memory_mib = 64
disk_gib = 0.5
[[volume]]
name = "arch"
url = "s3://bucket/p"
endpoint = "http://127.0.0.1:8333"
access_key_id = "AK"
secret_access_key = "SK-very-secret"
[[volume]]
name = "loc"
url = "file:///tmp"
metadata_ttl_secs = 5
"#,
            "colo.toml",
        )
        .unwrap();
        assert_eq!(s.mount_root, PathBuf::from("/mnt/x"));
        assert_eq!(s.memory_bytes, 64 << 20);
        assert_eq!(s.disk_bytes, 512 << 20);
        assert_eq!(s.volumes.len(), 2);
        assert_eq!(s.volumes[1].metadata_ttl.as_secs(), 5);
        assert!(!format!("{s:?}").contains("SK-very-secret"));
    }

    #[test]
    fn errors_are_one_line_with_the_place() {
        let e = parse("[[volume]]\nname = \"a\"\nurll = \"x\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: line 3: unknown field `urll`"), "{e}");
        assert!(!e.contains('\n'));
        let e = parse("[[volume]]\nname = \"a\"\nurl = \"nfs://x/y\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown scheme 'nfs'"), "{e}");
        let e = parse("", "c.toml").unwrap_err().to_string();
        assert!(e.contains("no [[volume]]"), "{e}");
        let e = parse(
            "[cache]\nblock_kib = 1\n[[volume]]\nname=\"a\"\nurl=\"file:///\"\n",
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cache.block_kib"), "{e}");
        let e = parse(
            "[[volume]]\nname=\"a\"\nurl=\"file:///\"\n[[volume]]\nname=\"a\"\nurl=\"file:///\"\n",
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("used twice"), "{e}");
        let e = parse("[[volume]]\nname = \"a\"\nurl = \"ftp://u@h/\"\npassword = { env = \"COLO_UNSET_PW_VAR\" }\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("COLO_UNSET_PW_VAR"), "{e}");
    }

    #[test]
    fn client_limits_are_read_and_zero_is_refused() {
        let volume = "[[volume]]\nname = \"arch\"\nurl = \"file:///tmp\"\n";
        let s = parse(
            &format!("[services]\nclient_timeout_secs = 5\nmax_connections = 10\n{volume}"),
            "c.toml",
        )
        .unwrap();
        assert_eq!(s.services.clients.timeout.as_secs(), 5);
        assert_eq!(s.services.clients.max_connections, 10);
        let s = parse(volume, "c.toml").unwrap();
        assert_eq!(
            s.services.clients,
            colo_vo_services::serve::ClientLimits::default()
        );
        let e = parse(
            &format!("[services]\nclient_timeout_secs = 0\n{volume}"),
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'services.client_timeout_secs' = 0: expected at least 1"),
            "{e}"
        );
    }

    #[test]
    fn table_volumes_name_configured_volumes() {
        let volume = "[[volume]]\nname = \"arch\"\nurl = \"file:///tmp\"\n";
        let s = parse(
            &format!("[services]\ntable_volumes = [\"arch/tables/v1\", \"arch\"]\n{volume}"),
            "c.toml",
        )
        .unwrap();
        let folders = &s.services.service.table_volumes;
        assert_eq!(folders[0].volume, "arch");
        assert_eq!(folders[0].prefix, "tables/v1");
        assert_eq!(folders[0].url().as_str(), "colo://arch/tables/v1/");
        assert_eq!(folders[1].url().as_str(), "colo://arch/");
        let e = parse(
            &format!("[services]\ntable_volumes = [\"other/tables\"]\n{volume}"),
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no volume 'other' (volumes: arch)"), "{e}");
        let e = parse(
            &format!("[services]\ntable_volumes = [\"arch/../x\"]\n{volume}"),
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not VOLUME or VOLUME/FOLDER"), "{e}");
    }
}
