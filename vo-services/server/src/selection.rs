//! "Add the selected to a data volume": the archive files behind a selection of `ivoa.obscore`
//! rows — given as an ADQL query on `ivoa.obscore` that returns `obs_publisher_did`, or as a list
//! of publisher DIDs (DataLink IDs). Each row names one HDU of a file; a file selected through
//! several rows is listed once. Nothing is read from the files: the answer comes from the query
//! and the image records, so a selection volume costs no transfer until its files are read.

use crate::VoError;
use crate::images::ImageState;
use crate::tap::TapState;
use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
use futures::StreamExt;

/// Most files one selection may hold.
pub const MAX_SELECTED_FILES: usize = 10_000;

/// One selected file: where it is, and the dataset that selected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedFile {
    pub volume: String,
    pub path: String,
    pub did: String,
}

/// What to select.
#[derive(Debug, Clone)]
pub enum Selection {
    /// ADQL on `ivoa.obscore` with `obs_publisher_did` among its result columns.
    Adql(String),
    /// Publisher DIDs (DataLink IDs).
    Dids(Vec<String>),
}

fn bad(message: impl Into<String>) -> VoError {
    VoError::BadParameter {
        name: "selection".into(),
        message: message.into(),
    }
}

/// The publisher DIDs an ADQL query returns.
async fn dids_of_query(tap: &TapState, adql: &str) -> Result<Vec<String>, VoError> {
    if !adql.to_ascii_lowercase().contains("ivoa.obscore") {
        return Err(bad("the query must select from ivoa.obscore"));
    }
    let result = tap
        .engine
        .execute(adql, Some(MAX_SELECTED_FILES as u64 * 4), &[])
        .await?;
    let position = result
        .columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case("obs_publisher_did"))
        .ok_or_else(|| bad("the query must return the column obs_publisher_did"))?;
    let index = result.keep[position];
    let mut stream = result.stream;
    let mut dids = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| bad(format!("the query failed: {e}")))?;
        let column = batch.column(index);
        let value = |i: usize| -> Option<String> {
            if column.is_null(i) {
                return None;
            }
            let any = column.as_any();
            any.downcast_ref::<StringArray>()
                .map(|a| a.value(i).to_string())
                .or_else(|| {
                    any.downcast_ref::<StringViewArray>()
                        .map(|a| a.value(i).to_string())
                })
                .or_else(|| {
                    any.downcast_ref::<LargeStringArray>()
                        .map(|a| a.value(i).to_string())
                })
        };
        dids.extend((0..batch.num_rows()).filter_map(value));
    }
    Ok(dids)
}

/// The files `selection` names, in the order first selected, each once.
pub async fn select_files(
    tap: &TapState,
    images: &ImageState,
    selection: &Selection,
) -> Result<Vec<SelectedFile>, VoError> {
    let dids = match selection {
        Selection::Adql(adql) => dids_of_query(tap, adql).await?,
        Selection::Dids(list) => list.clone(),
    };
    if dids.is_empty() {
        return Err(bad("the selection is empty"));
    }
    let mut files: Vec<SelectedFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for did in dids {
        let record = images.find(&did)?;
        if seen.insert((record.volume.clone(), record.path.clone())) {
            files.push(SelectedFile {
                volume: record.volume.clone(),
                path: record.path.clone(),
                did: record.obs_publisher_did.clone(),
            });
        }
        if files.len() > MAX_SELECTED_FILES {
            return Err(bad(format!(
                "more than {MAX_SELECTED_FILES} files: narrow the selection"
            )));
        }
    }
    Ok(files)
}
