//! colo-connectors: one small [`Connector`] trait over every data source colo mounts or serves.
//!
//! Design (after object_store and opendal): the trait has the few methods a backend must implement —
//! `stat`, a ranged `read_range`, `list`, and `capability()`. Cross-cutting behaviour (retries,
//! per-request timeouts, metering, fault injection) wraps a connector instead of living in each backend:
//! `Retry<Metered<S3>>`. A backend never retries on its own.
//!
//! Volumes are named by URL-like specs (`s3://bucket/prefix`, `ftp://user@host:port/path`,
//! `webdav://…`, `sftp://…` / `sshfs://…`, `http(s)://…`, `file:///…`, `memory://…`), parsed in
//! [`spec`], and turned into connectors by [`open_volume`]. Credentials are [`SecretString`]s: they
//! print as `*****` everywhere, and every error message leaving a volume passes a [`Redactor`].

pub mod connector;
pub mod error;
pub mod ftp;
pub mod http;
pub mod local;
pub mod memory;
pub mod metered;
pub mod open;
pub mod opendal_backend;
pub mod path;
pub mod pieces;
pub mod progress;
pub mod retry;
pub mod secret;
pub mod selection;
pub mod spec;
pub mod tls;

pub use connector::{Capability, Connector, DirEntry, EntryKind, ObjectIdentity, ObjectMeta};
pub use error::{ConnectorError, ErrorKind, Result};
pub use memory::MemoryConnector;
pub use metered::{Metered, OriginStats};
pub use open::{OpenedVolume, open_volume};
pub use path::ObjectPath;
pub use retry::{Retry, RetryPolicy};
pub use secret::{
    Redactor, SecretSource, SecretString, remember as remember_secret, scrub as scrub_secrets,
};
pub use spec::{Backend, SpecError, VolumeConfig, VolumeSpec};
pub use tls::{http_client_builder, install_crypto_provider};
