//! The labs crate's one error type: each variant names the lab, the volume or the file concerned
//! and what to do about it.

use std::path::PathBuf;

pub type Result<T, E = LabError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error("lab '{lab}': {detail}")]
    BadSpec { lab: String, detail: String },
    #[error("lab '{lab}': volume '{volume}': {detail}")]
    Volume {
        lab: String,
        volume: String,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("lab '{lab}': {step} failed: {detail}")]
    Step {
        lab: String,
        step: &'static str,
        detail: String,
    },
    #[error("no lab '{lab}'")]
    NoSuchLab { lab: String },
}

impl LabError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
        move |e| LabError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }
}
