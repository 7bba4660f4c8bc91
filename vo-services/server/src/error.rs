//! The one error type of colo-vo-services. The lower crates' errors come in whole ([`TapError`],
//! [`AstroError`]) and a volume's failure keeps the cache's error (and so the connector's kind:
//! missing, changed, unreachable). How each error is spelled for a client is decided in one place,
//! [`crate::fault`], from [`VoError::class`].

use std::path::PathBuf;

use colo_astro::{AstroError, ReadFailure};
use colo_cache::CacheError;
use colo_connectors::ErrorKind;
use colo_tap::TapError;

/// Everything that can go wrong in the VO services.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoError {
    /// From the TAP engine: bad ADQL, unknown names, uploads, the engine itself.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// From the numerics: FITS files, regions, cutouts.
    #[error(transparent)]
    Astro(#[from] AstroError),
    /// A request parameter is missing or wrong.
    #[error("{name}: {message}")]
    BadParameter { name: String, message: String },
    /// A parameter given more often than the request allows (SODA sync: one region, one band).
    #[error("{message}")]
    MultiValued { name: String, message: String },
    /// A dataset identifier that names nothing published here.
    #[error("{id}: no such dataset is published here")]
    NotFound { id: String },
    /// Credentials that are not valid (a forged, expired or revoked token).
    #[error("not authenticated: {reason}")]
    Unauthorized { reason: String },
    /// A UWS job that does not exist.
    #[error("no job {id}")]
    JobNotFound { id: String },
    /// A UWS request that the job's phase does not allow.
    #[error("job {id} is {phase}: {refused}")]
    JobPhase {
        id: String,
        phase: &'static str,
        refused: String,
    },
    /// A caller's job beyond [`crate::uws::JobLimits::max_unfinished_per_caller`].
    #[error(
        "you have {limit} async jobs that have not finished (PENDING, QUEUED or EXECUTING): run, abort or delete some before creating more"
    )]
    TooManyJobs { limit: usize },
    /// An async job ran longer than its execution duration.
    #[error("the job exceeded its execution duration of {secs} s")]
    ExecutionDuration { secs: u64 },
    /// A volume failed (its cause as the cache reports it: a connector error, which names the
    /// volume itself, or the cache's own).
    #[error("{}", volume_message(volume, source))]
    Volume {
        volume: String,
        #[source]
        source: CacheError,
    },
    /// A published record names a volume this configuration does not have.
    #[error("no volume {volume} in this configuration")]
    UnknownVolume { volume: String },
    /// A file of the services' own (jobs, the image manifest) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The HTTP client for uploads by URL could not be set up.
    #[error("HTTP client: {0}")]
    HttpClient(reqwest::Error),
    /// A file of the services' own holds what it should not (a job or manifest that is not TOML).
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}

/// What kind of fault an error is, whatever the protocol: the fault map turns this into each
/// protocol's status and spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClass {
    /// The request is wrong: the client can fix it (400).
    Usage,
    /// A parameter repeated where one value is allowed (400).
    MultiValued,
    /// What the request names does not exist (404).
    NotFound,
    /// The request conflicts with a job's state (409).
    Conflict,
    /// The caller holds too much already: try again once some of it is done (429).
    TooMany,
    /// Something the service needs is unreachable for now: try again later (503).
    Unavailable,
    /// The service failed (500).
    Internal,
}

impl VoError {
    /// A bad value of parameter `name`.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        VoError::BadParameter {
            name: name.to_string(),
            message: message.into(),
        }
    }

    /// A failure of `volume`, classified by the connector's kind when there is one.
    pub fn volume(volume: &str, source: impl Into<CacheError>) -> Self {
        VoError::Volume {
            volume: volume.to_string(),
            source: source.into(),
        }
    }

    /// I/O on one of the services' own files.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VoError {
        let path = path.into();
        move |source| VoError::Io { path, source }
    }

    /// The kind of fault this is.
    pub fn class(&self) -> FaultClass {
        match self {
            VoError::Tap(e) if e.is_user_error() => FaultClass::Usage,
            VoError::Tap(TapError::Storage { .. }) => FaultClass::Unavailable,
            VoError::Tap(_) => FaultClass::Internal,
            VoError::Astro(AstroError::BadParameter { .. }) => FaultClass::Usage,
            VoError::Astro(AstroError::Read { kind, .. }) => match kind {
                ReadFailure::NotFound => FaultClass::NotFound,
                ReadFailure::Stale | ReadFailure::Unavailable => FaultClass::Unavailable,
                ReadFailure::Other => FaultClass::Internal,
            },
            VoError::Astro(_) => FaultClass::Internal,
            // (answered 401 by the layer that identifies callers)
            VoError::BadParameter { .. } | VoError::Unauthorized { .. } => FaultClass::Usage,
            VoError::MultiValued { .. } => FaultClass::MultiValued,
            VoError::NotFound { .. } | VoError::JobNotFound { .. } => FaultClass::NotFound,
            VoError::JobPhase { .. } => FaultClass::Conflict,
            VoError::TooManyJobs { .. } => FaultClass::TooMany,
            VoError::Volume { source, .. } => match origin_kind(source) {
                Some(ErrorKind::NotFound) => FaultClass::NotFound,
                Some(ErrorKind::Stale | ErrorKind::Unavailable) => FaultClass::Unavailable,
                _ => FaultClass::Internal,
            },
            VoError::ExecutionDuration { .. }
            | VoError::UnknownVolume { .. }
            | VoError::HttpClient(_)
            | VoError::Io { .. }
            | VoError::Corrupt { .. } => FaultClass::Internal,
        }
    }

    /// The message a client sees. Internal details (paths of the service's files, engine
    /// internals, an origin's own words) are logged here and replaced by a short note.
    pub fn client_message(&self) -> String {
        let hidden = match self {
            VoError::Tap(e) => !e.is_shown_to_clients(),
            VoError::Io { .. }
            | VoError::Corrupt { .. }
            | VoError::UnknownVolume { .. }
            | VoError::HttpClient(_) => true,
            _ => false,
        };
        if hidden {
            tracing::error!(error = %self, "internal error");
            return "internal error in the service (logged)".to_string();
        }
        let unreadable = |what: &str| {
            tracing::error!(error = %self, "volume read failed");
            format!("{what} could not be read (logged); try again later")
        };
        match (self, self.class()) {
            (VoError::Volume { volume, .. }, FaultClass::Unavailable | FaultClass::Internal) => {
                unreadable(&format!("volume {volume}"))
            }
            (VoError::Astro(AstroError::Read { name, .. }), class)
                if class != FaultClass::NotFound =>
            {
                unreadable(name)
            }
            _ => self.to_string(),
        }
    }
}

fn volume_message(volume: &str, source: &CacheError) -> String {
    match source {
        CacheError::Origin(e) => e.to_string(),
        other => format!("volume {volume}: {other}"),
    }
}

/// The connector's kind of a cache error that came from the origin.
fn origin_kind(error: &CacheError) -> Option<ErrorKind> {
    match error {
        CacheError::Origin(e) => Some(e.kind()),
        CacheError::Io { .. } | CacheError::Task { .. } => None,
    }
}

/// How a volume read failed, for the numerics (which only pass it on).
pub fn read_failure(error: &CacheError) -> ReadFailure {
    match origin_kind(error) {
        Some(ErrorKind::NotFound) => ReadFailure::NotFound,
        Some(ErrorKind::Stale) => ReadFailure::Stale,
        Some(ErrorKind::Unavailable) => ReadFailure::Unavailable,
        _ => ReadFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colo_connectors::ConnectorError;

    #[test]
    fn volume_failures_keep_their_kind() {
        let gone = VoError::volume(
            "archive",
            ConnectorError::NotFound {
                volume: "archive".into(),
                path: "a.fits".into(),
            },
        );
        assert_eq!(gone.class(), FaultClass::NotFound);
        let down = VoError::volume(
            "archive",
            ConnectorError::Unavailable {
                volume: "archive".into(),
                path: "a.fits".into(),
                detail: "connection refused to 10.0.0.1".into(),
            },
        );
        assert_eq!(down.class(), FaultClass::Unavailable);
        let message = down.client_message();
        assert_eq!(
            message,
            "volume archive could not be read (logged); try again later"
        );
        let stale = AstroError::Read {
            name: "archive/a.fits".into(),
            kind: read_failure(&CacheError::from(ConnectorError::Stale {
                volume: "archive".into(),
                path: "a.fits".into(),
            })),
            source: "changed".into(),
        };
        assert_eq!(VoError::from(stale).class(), FaultClass::Unavailable);
    }

    #[test]
    fn the_users_mistakes_are_usage_faults_and_internals_are_hidden() {
        let unknown = VoError::from(TapError::UnknownColumn {
            name: "nope".into(),
            suggestion: None,
        });
        assert_eq!(unknown.class(), FaultClass::Usage);
        assert_eq!(unknown.client_message(), "unknown column nope");
        let io = VoError::Io {
            path: "/var/lib/colo/jobs/x/job.toml".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(io.class(), FaultClass::Internal);
        assert!(!io.client_message().contains("/var/lib"));
    }
}
