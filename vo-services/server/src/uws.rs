//! UWS 1.1 jobs for TAP's and SODA's `/async` (UWS 1.1 §2; DALI 1.1 §3 for the parameters): the job
//! model ([`job`]), the store that runs and persists jobs ([`store`]), and the HTTP resources over
//! it ([`http`]), shared by both services.
//!
//! Each job lives in `<jobs>/<id>/`: `job.toml` (phase, parameters, times, error) and, once complete,
//! its results (`result.<ext>` for TAP, one file per cutout for SODA). A running job writes each
//! result to `<name>.part` through a [`ResultSink`]; all of them are renamed only when the job ended
//! well, so an aborted, failed or timed-out job never leaves a half-written result. The store is
//! reloaded at start: finished jobs and their results survive a restart; jobs that were running
//! when the service stopped are marked ERROR (their result was never published). Phase changes are
//! broadcast on a watch channel per job so `?WAIT=` blocks without polling.

pub mod http;
mod job;
mod store;
mod time;

pub use job::{Job, JobResult, Phase};
pub use store::{JobLimits, JobStore, ResultSink, ResultStream, now_secs, spawn_sweeper};
pub use time::{iso8601, parse_iso8601};
