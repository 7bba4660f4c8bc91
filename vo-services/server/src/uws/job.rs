//! The UWS 1.1 job model (UWS 1.1 §2.2): phases, a job's persisted state and results, and the XML
//! documents that describe them (the job, `/parameters`, `/results`).

use serde::{Deserialize, Serialize};

use colo_tap::output::votable::xml_escape;

use super::time::iso8601;
use crate::params::Params;

/// UWS execution phases (UWS 1.1 §2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Phase {
    /// Created, not started.
    Pending,
    /// Accepted for execution.
    Queued,
    /// Running.
    Executing,
    /// Finished with a result.
    Completed,
    /// Failed; see the error.
    Error,
    /// Stopped by the user or the execution time limit.
    Aborted,
    /// Lost track (never set by colo).
    Unknown,
    /// Held (never set by colo).
    Held,
    /// Suspended (never set by colo).
    Suspended,
    /// Archived (never set by colo).
    Archived,
}

impl Phase {
    /// The UWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Queued => "QUEUED",
            Phase::Executing => "EXECUTING",
            Phase::Completed => "COMPLETED",
            Phase::Error => "ERROR",
            Phase::Aborted => "ABORTED",
            Phase::Unknown => "UNKNOWN",
            Phase::Held => "HELD",
            Phase::Suspended => "SUSPENDED",
            Phase::Archived => "ARCHIVED",
        }
    }

    /// Parses a UWS phase name (case-insensitive).
    pub fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Queued,
            Phase::Executing,
            Phase::Completed,
            Phase::Error,
            Phase::Aborted,
            Phase::Unknown,
            Phase::Held,
            Phase::Suspended,
            Phase::Archived,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// True while the job may still change by itself.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Pending | Phase::Queued | Phase::Executing)
    }
}

/// A stored result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// Result identifier (the last segment of its URL under `results/`).
    pub id: String,
    /// File name inside the job folder.
    pub file: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Stored gzip-compressed (served with `Content-Encoding: gzip`).
    #[serde(default)]
    pub gzip: bool,
}

/// One job's state, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Job identifier.
    pub id: String,
    /// Current phase.
    pub phase: Phase,
    /// RUNID, if given.
    pub run_id: Option<String>,
    /// Parameters (upper-case names) in the order received.
    pub parameters: Vec<(String, String)>,
    /// Creation time, seconds since the epoch.
    pub creation_secs: u64,
    /// Creation time in microseconds (orders jobs created within one second).
    #[serde(default)]
    pub creation_micros: u64,
    /// Start time.
    pub start_secs: Option<u64>,
    /// End time.
    pub end_secs: Option<u64>,
    /// Maximum run time in seconds (0 = unlimited).
    pub execution_duration_secs: u64,
    /// When the job and its results are deleted.
    pub destruction_secs: u64,
    /// Error summary, for phase ERROR (spelled as the job's service spells faults).
    pub error: Option<String>,
    /// The HTTP status of that error (400 for the user's mistakes, 500 for the service's, ...):
    /// what asking for a result of the failed job answers with.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// The results, for phase COMPLETED (none when a job legitimately produced nothing, such as a
    /// SODA cutout that misses the data).
    #[serde(default)]
    pub results: Vec<JobResult>,
    /// Who created the job (a platform user); `None`: an anonymous caller. Only the owner sees
    /// the job ([`crate::uws::http::guard`]).
    #[serde(default)]
    pub owner: Option<String>,
}

impl Job {
    /// The job's parameters, read like a request's.
    pub fn params(&self) -> Params {
        Params::from_pairs(self.parameters.iter().map(|(k, v)| (k, v.clone())))
    }

    /// The `<uws:parameters>` element (standalone: with its namespace, for `/parameters`).
    pub fn parameters_xml(&self, standalone: bool) -> String {
        let mut out = if standalone {
            String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:parameters xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\">\n",
            )
        } else {
            String::from("<uws:parameters>\n")
        };
        for (name, value) in &self.parameters {
            out.push_str(&format!(
                "<uws:parameter id=\"{}\">{}</uws:parameter>\n",
                xml_escape(&name.to_ascii_lowercase()),
                xml_escape(value)
            ));
        }
        out.push_str("</uws:parameters>\n");
        out
    }

    /// The `<uws:results>` element (standalone: with namespaces, for the `/results` resource).
    pub fn results_xml(&self, job_url: &str, standalone: bool) -> String {
        let mut out = if standalone {
            String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:results xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
                 xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n",
            )
        } else {
            String::from("<uws:results>\n")
        };
        for result in &self.results {
            out.push_str(&format!(
                "<uws:result id=\"{id}\" xlink:type=\"simple\" xlink:href=\"{url}/results/{id}\" size=\"{size}\" mime-type=\"{mime}\"/>\n",
                id = xml_escape(&result.id),
                url = xml_escape(job_url),
                size = result.size_bytes,
                mime = xml_escape(&result.content_type),
            ));
        }
        out.push_str("</uws:results>\n");
        out
    }

    /// The job document (UWS 1.1 schema, `version="1.1"`).
    pub fn to_xml(&self, job_url: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(
            "<uws:job xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.1\">\n",
        );
        out.push_str(&format!(
            "<uws:jobId>{}</uws:jobId>\n",
            xml_escape(&self.id)
        ));
        if let Some(run_id) = &self.run_id {
            out.push_str(&format!("<uws:runId>{}</uws:runId>\n", xml_escape(run_id)));
        }
        out.push_str("<uws:ownerId xsi:nil=\"true\"/>\n");
        out.push_str(&format!("<uws:phase>{}</uws:phase>\n", self.phase.as_str()));
        out.push_str("<uws:quote xsi:nil=\"true\"/>\n");
        out.push_str(&format!(
            "<uws:creationTime>{}</uws:creationTime>\n",
            iso8601(self.creation_secs)
        ));
        let time = |name: &str, secs: Option<u64>| match secs {
            Some(s) => format!("<uws:{name}>{}</uws:{name}>\n", iso8601(s)),
            None => format!("<uws:{name} xsi:nil=\"true\"/>\n"),
        };
        out.push_str(&time("startTime", self.start_secs));
        out.push_str(&time("endTime", self.end_secs));
        out.push_str(&format!(
            "<uws:executionDuration>{}</uws:executionDuration>\n",
            self.execution_duration_secs
        ));
        out.push_str(&format!(
            "<uws:destruction>{}</uws:destruction>\n",
            iso8601(self.destruction_secs)
        ));
        out.push_str(&self.parameters_xml(false));
        out.push_str(&self.results_xml(job_url, false));
        if let Some(error) = &self.error {
            out.push_str(&format!(
                "<uws:errorSummary type=\"fatal\" hasDetail=\"true\">\n<uws:message>{}</uws:message>\n</uws:errorSummary>\n",
                xml_escape(error)
            ));
        }
        out.push_str("</uws:job>\n");
        out
    }
}
