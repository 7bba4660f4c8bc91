//! Queries run on a runtime of their own (threads named `colo-query`), never on the runtime that
//! serves HTTP: a poll of a query operator that computes long between yields (a join of three
//! catalogues) holds a query thread, not one that the server's other requests — a small query's
//! parsing and answer, VOSI, cutouts — need. There are twice as many query threads as cores, so a
//! small query beside a runaway one gets a thread of its own that the kernel shares fairly,
//! instead of waiting for the runaway's poll to end.
//!
//! A query's stream is started there (DataFusion spawns its exchanges on the runtime that runs
//! it) and its batches come back over a bounded channel. The caller giving up — a dropped answer,
//! the sync time limit — closes the channel, and the query is dropped at its next yield, which
//! cancels its work. A query task that ends without saying so (a panic) is an error at the end of
//! the rows, never a silently shorter answer.

use std::sync::OnceLock;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::first_batch_checked;
use crate::error::TapError;

/// Batches in flight between a query and its reader.
const BATCHES_IN_FLIGHT: usize = 2;

fn query_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores * 2)
            .thread_name("colo-query")
            .enable_all()
            .build()
            .expect("starting the query runtime")
    })
}

/// Why a query did not start.
pub(super) enum StartError {
    /// Planning the physical plan failed (the engine names the tables and columns).
    Plan(DataFusionError),
    /// Its first batch failed.
    Running(TapError),
}

enum Message {
    Batch(Result<RecordBatch>),
    End,
}

/// Starts `frame` on the query runtime and checks its first batch there; its rows, read from
/// here.
pub(super) async fn start(
    frame: DataFrame,
) -> std::result::Result<SendableRecordBatchStream, StartError> {
    let (mut started_tx, started_rx) =
        oneshot::channel::<std::result::Result<SchemaRef, StartError>>();
    let (rows_tx, rows_rx) = mpsc::channel::<Message>(BATCHES_IN_FLIGHT);
    query_runtime().spawn(async move {
        let work = async {
            let stream = frame.execute_stream().await.map_err(StartError::Plan)?;
            first_batch_checked(stream)
                .await
                .map_err(StartError::Running)
        };
        let started = tokio::select! {
            _ = started_tx.closed() => return,
            started = work => started,
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        if started_tx.send(Ok(stream.schema())).is_err() {
            return;
        }
        loop {
            let item = tokio::select! {
                _ = rows_tx.closed() => return,
                item = stream.next() => item,
            };
            let message = match item {
                Some(batch) => Message::Batch(batch),
                None => Message::End,
            };
            let end = matches!(message, Message::End);
            if rows_tx.send(message).await.is_err() || end {
                return;
            }
        }
    });
    let schema = match started_rx.await {
        Ok(started) => started?,
        Err(_) => {
            return Err(StartError::Running(TapError::Execution {
                message: "the query stopped before its first rows (see the server's log)".into(),
            }));
        }
    };
    let rows = futures::stream::unfold(Some(rows_rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Message::Batch(batch)) => Some((batch, Some(rx))),
            Some(Message::End) => None,
            None => Some((
                Err(DataFusionError::Execution(
                    "the query stopped before its last rows (see the server's log)".into(),
                )),
                None,
            )),
        }
    });
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows),
    ))
}
