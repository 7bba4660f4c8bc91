//! The Kubernetes backend of datalabs: what it asks the API server for ([`objects`], pure and
//! checked against golden YAML) and the backend that asks and follows ([`backend`]).

pub mod backend;
pub mod objects;

pub use backend::{KubeBackend, WEB_PORT};
pub use objects::KubeSettings;
