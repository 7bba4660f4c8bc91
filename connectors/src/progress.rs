//! When a long upload counts as stalled. A fixed per-request timeout (30 s) would abandon every
//! upload that takes longer — a 2 GiB file to an SFTP home, a 1 GiB file over a home link — and the
//! write-back would retry it forever. So uploads report progress as they send
//! ([`note_sent`], a task-local counter the backends bump after each piece the server took), and
//! the retry layer ([`crate::retry`]) abandons one only when a whole timeout passes with nothing
//! sent. A write made in one request (WebDAV's PUT, a small object) cannot report progress: it
//! gets the timeout plus the time the body takes at [`SLOWEST_LINK_BYTES_PER_SEC`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The slowest upload link a one-request write is given time for (a home line's upstream).
pub const SLOWEST_LINK_BYTES_PER_SEC: u64 = 256 * 1024;

tokio::task_local! {
    static SENT: Arc<AtomicU64>;
}

/// `bytes` more were taken by the server (no effect outside [`until_stalled`]).
pub fn note_sent(bytes: u64) {
    let _ = SENT.try_with(|sent| sent.fetch_add(bytes, Ordering::Relaxed));
}

/// The counter [`note_sent`] adds to in this task, for code that sends on another task (an HTTP
/// body read by the connection's own task).
pub fn sent_counter() -> Option<Arc<AtomicU64>> {
    SENT.try_with(Arc::clone).ok()
}

/// Runs `work` (which sends `body_bytes`) until it ends, or `None` once it stalls: a whole
/// `timeout` with no progress noted — and, when it never notes any, after `timeout` plus the
/// body's time at [`SLOWEST_LINK_BYTES_PER_SEC`].
pub async fn until_stalled<F: Future>(
    timeout: Duration,
    body_bytes: u64,
    work: F,
) -> Option<F::Output> {
    let sent = Arc::new(AtomicU64::new(0));
    let work = SENT.scope(sent.clone(), work);
    tokio::pin!(work);
    let started = Instant::now();
    let one_request = timeout + Duration::from_secs(body_bytes / SLOWEST_LINK_BYTES_PER_SEC);
    let mut seen = 0;
    loop {
        if let Ok(out) = tokio::time::timeout(timeout, &mut work).await {
            return Some(out);
        }
        let now = sent.load(Ordering::Relaxed);
        let silent = now == seen;
        seen = now;
        if silent && (now > 0 || started.elapsed() >= one_request) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(40);

    #[tokio::test]
    async fn a_slow_upload_that_keeps_sending_is_not_abandoned() {
        // Ten timeouts long, but a piece every half timeout.
        let work = async {
            for _ in 0..20 {
                tokio::time::sleep(TICK / 2).await;
                note_sent(1);
            }
            "done"
        };
        assert_eq!(until_stalled(TICK, 0, work).await, Some("done"));
    }

    #[tokio::test]
    async fn an_upload_that_stops_sending_is_abandoned_a_timeout_later() {
        let started = Instant::now();
        let work = async {
            note_sent(1);
            std::future::pending::<()>().await
        };
        assert_eq!(until_stalled(TICK, 1 << 30, work).await, None);
        // Not the body's allowance (4096 s): progress was reported, so the stall rule decides.
        assert!(started.elapsed() < TICK * 4, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_one_request_write_gets_the_time_its_body_takes() {
        // 512 KiB at the slowest link: timeout + 2 s; done after 1 s, so never abandoned.
        let work = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            7
        };
        assert_eq!(until_stalled(TICK, 512 * 1024, work).await, Some(7));
        // Nothing to send: a timeout, as for any request.
        let never = std::future::pending::<()>();
        assert_eq!(until_stalled(TICK, 0, never).await, None);
    }
}
