//! GraphQL subscriptions, served over WebSocket by [`crate::http`] (graphql-transport-ws, or the
//! older graphql-ws): `datalabEvents(id)` — the lab's steps so far, then each as it happens,
//! ending after STOPPED or FAILED — and `datalabLogs(id, tailBytes)` — the end of its output so
//! far, then each piece as the lab writes it, ending once the lab has ended and its log is read
//! to the end.
//!
//! Who may watch is decided again before every item, not only when the subscription starts: the
//! credential the client connected with is checked anew (a revoked or expired token ends the
//! stream) and so is the caller's access to the lab (unsharing ends a colleague's stream), the
//! refusal being the stream's last item. A lab that is no longer recorded at all (removed when
//! finished) is not a refusal: it has ended, and the stream ends once its last output is sent. Steps come from the launcher as they are recorded (no
//! status polling); the log is read from the lab's log file every [`LOG_POLL`] while nothing new
//! is in it, as `tail -f` does. One user follows at most [`MAX_STREAMS_PER_USER`] streams at
//! once.

use crate::Catalog;
use crate::auth::Scope;
use crate::error::{CatalogError, ErrorKind};
use crate::graphql::{caller, catalog, gql};
use crate::graphql_labs::{Datalabs, LabStep, is_running, launcher};
use async_graphql::{Context, Subscription};
use futures::{Stream, StreamExt, stream};
use std::sync::Arc;
use std::time::Duration;

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// How often a followed log is looked at while nothing new is in it.
pub const LOG_POLL: Duration = Duration::from_millis(200);
/// Largest piece of log in one item.
const LOG_PIECE_BYTES: u64 = 64 * 1024;

/// Most streams one user may follow at once (each log stream reads its file every
/// [`LOG_POLL`]); one more is refused with a message saying so.
pub const MAX_STREAMS_PER_USER: usize = 32;

/// Streams followed per user now (one count per schema, in its data).
#[derive(Default)]
pub struct StreamCounts(parking_lot::Mutex<std::collections::HashMap<String, usize>>);

/// One of a user's streams, counted while it lives.
struct StreamSlot(Arc<StreamCounts>, String);

impl StreamSlot {
    fn take(ctx: &Context<'_>, user: &str) -> Result<StreamSlot> {
        let counts = ctx.data::<Arc<StreamCounts>>()?.clone();
        let mut by_user = counts.0.lock();
        let n = by_user.entry(user.to_string()).or_default();
        if *n >= MAX_STREAMS_PER_USER {
            return Err(gql(CatalogError::BadRequest {
                detail: format!(
                    "{user} follows {MAX_STREAMS_PER_USER} streams already: end one (close its subscription) first"
                ),
            }));
        }
        *n += 1;
        drop(by_user);
        Ok(StreamSlot(counts, user.to_string()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut by_user = self.0.0.lock();
        if let Some(n) = by_user.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_user.remove(&self.1);
            }
        }
    }
}

/// The token a WebSocket client connected with, kept to check it again before every item (it is
/// never shown: no `Debug`).
#[derive(Clone)]
pub struct Credential(pub String);

/// Whether the holder of `credential` may still watch `lab_id` (which they could see when the
/// subscription began).
fn may_watch(cat: &Catalog, credential: &Credential, lab_id: &str) -> Result<()> {
    let caller = cat.authenticate(&credential.0).map_err(gql)?;
    caller.require(Scope::Labs).map_err(gql)?;
    match cat.lab(&caller, lab_id) {
        Ok(_) => Ok(()),
        // Removed, not hidden: a lab that removes itself when finished is forgotten as it ends,
        // and its last words are still for whoever was following it (the stream ends with it).
        Err(e)
            if e.kind() == ErrorKind::NotFound && !cat.lab_is_recorded(lab_id).map_err(gql)? =>
        {
            Ok(())
        }
        Err(e) => Err(gql(e)),
    }
}

/// `items`, each let through only while `check` passes; the stream ends after an error (the
/// refusal or the source's own) or after an item `is_last` picks.
fn guarded<T, S>(
    items: S,
    check: impl Fn() -> Result<()> + Send + Sync + 'static,
    is_last: fn(&T) -> bool,
    slot: Option<StreamSlot>,
) -> impl Stream<Item = Result<T>> + Send
where
    T: Send + 'static,
    S: Stream<Item = Result<T>> + Send + Unpin + 'static,
{
    let check = Arc::new(check);
    stream::unfold(
        (items, check, false, slot),
        move |(mut items, check, ended, slot)| async move {
            if ended {
                return None;
            }
            let item = items.next().await?;
            let item = check().and(item);
            let last = item.as_ref().map_or(true, is_last);
            Some((item, (items, check, last, slot)))
        },
    )
}

fn is_final(step: &LabStep) -> bool {
    step.state == "STOPPED" || step.state == "FAILED"
}

/// A log being followed.
struct LogFollower {
    runner: Arc<dyn Datalabs>,
    lab_id: String,
    offset: u64,
    /// The start of a character whose other bytes are not in the log yet.
    carry: Vec<u8>,
    ended: bool,
}

impl LogFollower {
    /// The next piece of text, waiting for one while the lab runs; `None` once it has ended and
    /// everything it wrote was given.
    async fn next_piece(mut self) -> Option<(Result<String>, LogFollower)> {
        loop {
            if self.ended {
                return None;
            }
            // Whether it had ended is asked before reading: what it wrote before it ended is
            // then in the read that finds nothing more.
            let had_ended = !is_running(&self.runner, &self.lab_id);
            let piece = match self
                .runner
                .log_from(&self.lab_id, self.offset, LOG_PIECE_BYTES)
            {
                Ok((piece, _)) => piece,
                Err(detail) => {
                    self.ended = true;
                    return Some((Err(gql(CatalogError::BadRequest { detail })), self));
                }
            };
            if !piece.is_empty() {
                self.offset += piece.len() as u64;
                let text = take_text(&mut self.carry, piece);
                if !text.is_empty() {
                    return Some((Ok(text), self));
                }
            } else if had_ended {
                self.ended = true;
                if !self.carry.is_empty() {
                    let rest = String::from_utf8_lossy(&self.carry).into_owned();
                    return Some((Ok(rest), self));
                }
                return None;
            } else {
                tokio::time::sleep(LOG_POLL).await;
            }
        }
    }
}

/// The text of `carry` + `piece` up to the last whole character; the bytes of an incomplete one
/// stay in `carry` (invalid bytes become U+FFFD).
fn take_text(carry: &mut Vec<u8>, piece: Vec<u8>) -> String {
    carry.extend(piece);
    let whole = match std::str::from_utf8(carry) {
        Ok(_) => carry.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => carry.len(),
    };
    let rest = carry.split_off(whole);
    let text = String::from_utf8_lossy(carry).into_owned();
    *carry = rest;
    text
}

/// Where to start following a log of `len` bytes to show its last `tail_bytes` (never inside a
/// character: `head` is the log's bytes at that point).
fn tail_start(len: u64, tail_bytes: u64, head: &[u8]) -> u64 {
    let start = len.saturating_sub(tail_bytes);
    let continuation = head.iter().take_while(|b| (**b & 0xC0) == 0x80).count();
    if start == 0 {
        0
    } else {
        start + continuation as u64
    }
}

fn not_run_here(lab_id: &str) -> async_graphql::Error {
    gql(CatalogError::BadRequest {
        detail: format!(
            "lab '{lab_id}' is not running under this colo: there is nothing to follow"
        ),
    })
}

#[derive(Default)]
pub struct LabSubscription;

#[Subscription]
impl LabSubscription {
    /// The lab's steps: every one so far, then each as it happens; the stream ends after STOPPED
    /// or FAILED (or when the caller may no longer see the lab).
    async fn datalab_events(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<impl Stream<Item = Result<LabStep>> + use<>> {
        let c = caller(ctx, Scope::Labs)?;
        let cat = catalog(ctx)?.clone();
        let lab = cat.lab(c, &id).map_err(gql)?;
        let credential = ctx.data::<Credential>()?.clone();
        let slot = StreamSlot::take(ctx, &c.user.name)?;
        let (past, live) = launcher(ctx)?
            .watch(&lab.id)
            .ok_or_else(|| not_run_here(&lab.id))?;
        let steps = stream::iter(past).chain(live).map(Ok);
        let lab_id = lab.id;
        Ok(guarded(
            steps,
            move || may_watch(&cat, &credential, &lab_id),
            is_final,
            Some(slot),
        ))
    }

    /// The lab's output: its last `tailBytes` so far, then each piece as it is written; the
    /// stream ends once the lab has ended and all it wrote was sent (or when the caller may no
    /// longer see the lab).
    async fn datalab_logs(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default = 65536)] tail_bytes: u64,
    ) -> Result<impl Stream<Item = Result<String>> + use<>> {
        let c = caller(ctx, Scope::Labs)?;
        let cat = catalog(ctx)?.clone();
        let lab = cat.lab(c, &id).map_err(gql)?;
        let credential = ctx.data::<Credential>()?.clone();
        let runner = launcher(ctx)?.clone();
        if runner.steps(&lab.id).is_empty() {
            return Err(not_run_here(&lab.id));
        }
        let slot = StreamSlot::take(ctx, &c.user.name)?;
        let bad = |detail| gql(CatalogError::BadRequest { detail });
        let (_, len) = runner.log_from(&lab.id, 0, 0).map_err(bad)?;
        let start = len.saturating_sub(tail_bytes);
        let (head, _) = runner.log_from(&lab.id, start, 4).map_err(bad)?;
        let follower = LogFollower {
            runner,
            lab_id: lab.id.clone(),
            offset: tail_start(len, tail_bytes, &head),
            carry: Vec::new(),
            ended: false,
        };
        let pieces = Box::pin(stream::unfold(follower, LogFollower::next_piece));
        let lab_id = lab.id;
        Ok(guarded(
            pieces,
            move || may_watch(&cat, &credential, &lab_id),
            |_| false,
            Some(slot),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_only_between_characters() {
        let mut carry = Vec::new();
        let bytes = "a→b".as_bytes();
        assert_eq!(take_text(&mut carry, bytes[..2].to_vec()), "a");
        assert_eq!(carry, bytes[1..2]);
        assert_eq!(take_text(&mut carry, bytes[2..].to_vec()), "→b");
        assert!(carry.is_empty());
        assert_eq!(take_text(&mut carry, vec![b'x', 0xFF, b'y']), "x\u{FFFD}y");
    }

    #[test]
    fn a_tail_starts_at_a_character() {
        // "→" is 3 bytes: a tail cutting into it starts after it.
        let log = "ab→cd".as_bytes();
        let len = log.len() as u64;
        let start = len.saturating_sub(4) as usize;
        assert_eq!(tail_start(len, 4, &log[start..]), 5);
        assert_eq!(tail_start(len, 100, log), 0);
        assert_eq!(tail_start(len, 2, &log[start + 2..]), len - 2);
    }

    #[tokio::test]
    async fn guarded_streams_end_after_the_last_item_or_a_refusal() {
        let items = stream::iter(vec![Ok(1), Ok(2), Ok(3)]);
        let got: Vec<_> = guarded(items, || Ok(()), |n| *n == 2, None).collect().await;
        assert_eq!(
            got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(),
            [1, 2]
        );

        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = calls.clone();
        let check = move || {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1 {
                Err(async_graphql::Error::new("gone"))
            } else {
                Ok(())
            }
        };
        let items = stream::iter(vec![Ok(1), Ok(2), Ok(3)]);
        let got: Vec<_> = guarded(items, check, |_| false, None).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), &1);
        assert_eq!(got[1].as_ref().unwrap_err().message, "gone");
    }
}
