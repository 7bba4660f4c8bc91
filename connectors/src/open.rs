//! From a [`VolumeSpec`] to a ready connector: the backend, wrapped in metering (innermost, so every
//! attempt counts) and retries with the volume's timeout. This is the one place that knows which
//! struct serves which scheme.

use crate::connector::Connector;
use crate::error::Result;
use crate::http::HttpConnector;
use crate::local::LocalConnector;
use crate::metered::{Metered, OriginStats};
use crate::opendal_backend::OpendalConnector;
use crate::retry::{Retry, RetryPolicy};
use crate::secret::Redactor;
use crate::spec::{Backend, VolumeSpec};
use std::sync::Arc;

/// A volume's connector with the handles the layers above need.
#[derive(Debug, Clone)]
pub struct OpenedVolume {
    pub connector: Arc<dyn Connector>,
    pub stats: Arc<OriginStats>,
    pub redactor: Redactor,
}

pub fn open_volume(spec: &VolumeSpec) -> Result<OpenedVolume> {
    let redactor = Redactor::new(spec.secrets());
    let policy = RetryPolicy {
        retries: spec.retries,
        timeout: spec.request_timeout,
        ..RetryPolicy::default()
    };
    fn wrap<C: Connector + 'static>(
        c: C,
        policy: RetryPolicy,
    ) -> (Arc<dyn Connector>, Arc<OriginStats>) {
        let metered = Metered::new(c);
        let stats = metered.stats();
        (Arc::new(Retry::new(metered, policy)), stats)
    }
    let (connector, stats) = match &spec.backend {
        Backend::Local { root } => wrap(LocalConnector::new(&spec.name, root), policy),
        Backend::Http { base } => wrap(
            HttpConnector::new(&spec.name, base.clone(), spec.request_timeout)?,
            policy,
        ),
        Backend::S3 { .. }
        | Backend::Ftp { .. }
        | Backend::WebDav { .. }
        | Backend::Sftp { .. } => wrap(OpendalConnector::new(spec, redactor.clone())?, policy),
    };
    Ok(OpenedVolume {
        connector,
        stats,
        redactor,
    })
}
