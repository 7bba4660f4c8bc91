//! What a failing query says: a failure of the storage a table lives on (an object store, a
//! volume that is down) found inside DataFusion's error, told apart from the query's own; and the
//! first batch computed before an answer begins, so that a query failing at once gets an error
//! status rather than a result that breaks off.

use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;

use crate::error::TapError;

/// A failure of a running query: the storage's, over the query's memory, or the query's own.
pub fn running_error(error: DataFusionError) -> TapError {
    if let Some(over) = over_memory(&error) {
        return over;
    }
    match find_store_error(&error) {
        Some(message) => storage_error(message),
        None => TapError::Execution {
            message: error.find_root().to_string(),
        },
    }
}

/// [`TapError::OverLimit`] if the query needed more memory than its pool holds (a join's build
/// side, or a sort or aggregation that could not spill enough).
pub(super) fn over_memory(error: &DataFusionError) -> Option<TapError> {
    match error.find_root() {
        DataFusionError::ResourcesExhausted(detail) => Some(TapError::OverLimit {
            message: format!(
                "it needs more memory than one query may use ({}); narrow it with WHERE or TOP, \
                 select fewer columns, or join a smaller table first",
                detail.lines().next().unwrap_or(detail)
            ),
        }),
        _ => None,
    }
}

pub(super) fn storage_error(message: String) -> TapError {
    TapError::Storage {
        location: "the table's files".into(),
        message,
    }
}

/// The stream with its first batch already computed, so that a query failing at once (a table's
/// storage unreachable, a bad value) fails here, before an answer has begun.
pub(super) async fn first_batch_checked(
    mut stream: SendableRecordBatchStream,
) -> Result<SendableRecordBatchStream, TapError> {
    use futures::StreamExt;
    let first = match stream.next().await {
        None => return Ok(stream),
        Some(Err(e)) => return Err(running_error(e)),
        Some(Ok(batch)) => batch,
    };
    let schema = stream.schema();
    let chained = futures::stream::once(async move { Ok(first) }).chain(stream);
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, chained),
    ))
}

/// The message of the object store error inside `error`, if a store failed.
pub fn find_store_error(error: &DataFusionError) -> Option<String> {
    match error {
        DataFusionError::ObjectStore(e) => Some(store_message(e)),
        DataFusionError::Context(_, inner) => find_store_error(inner),
        DataFusionError::Shared(inner) => find_store_error(inner),
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(e) => {
                external_store_error(e.as_ref())
            }
            _ => None,
        },
        DataFusionError::ParquetError(inner) => match inner.as_ref() {
            parquet::errors::ParquetError::External(e) => external_store_error(e.as_ref()),
            _ => None,
        },
        DataFusionError::External(e) => external_store_error(e.as_ref()),
        _ => None,
    }
}

/// The store failure a boxed error is, or wraps.
fn external_store_error(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<String> {
    error
        .downcast_ref::<object_store::Error>()
        .map(store_message)
        .or_else(|| {
            error
                .downcast_ref::<DataFusionError>()
                .and_then(find_store_error)
        })
}

/// A store's error as its reason alone: the source's message (`volume 's3': origin unavailable
/// ...`), without object_store's "Generic ... error:" wrapping.
fn store_message(error: &object_store::Error) -> String {
    match error {
        object_store::Error::Generic { source, .. } => source.to_string(),
        object_store::Error::NotFound { path, .. } => format!("{path} not found"),
        other => other.to_string(),
    }
}
