//! Publishing a table to a folder on an object store (a volume), where nothing can be renamed into
//! place: the table is written locally first ([`super::write_table`]), its partitions are uploaded
//! to a folder of their own (`data-<UTC time>`), and only then is the descriptor that points at them
//! written — one PUT, which replaces it whole — so a reader sees the old table or the new one, never
//! a mixture. The data folder of the descriptor replaced is kept (a service still running on it
//! keeps answering until it restarts); older ones are deleted.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::catalog::{DESCRIPTOR_FILE, TableDescriptor, store_path};
use crate::error::TapError;

/// Files uploaded at once.
const CONCURRENT_UPLOADS: usize = 4;

/// What a publication to a store did.
#[derive(Debug, Clone)]
pub struct StorePublication {
    /// Partition files uploaded.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Data folders deleted (older than the one replaced).
    pub removed: Vec<String>,
}

/// The folder of `schema.table` in the tables folder `base` (both URLs ending in `/`).
pub fn table_folder(base: &url::Url, schema: &str, table: &str) -> url::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("a folder URL has a path")
        .pop_if_empty()
        .push(&format!("{schema}.{table}"))
        .push("");
    url
}

/// A new data folder's name: `data-` and the time, to the millisecond (UTC), so versions sort.
pub fn new_data_dir() -> String {
    chrono::Utc::now()
        .format("data-%Y%m%dT%H%M%S%3fZ")
        .to_string()
}

fn storage(location: &impl std::fmt::Display) -> impl Fn(object_store::Error) -> TapError + '_ {
    move |e| TapError::Storage {
        location: location.to_string(),
        message: e.to_string(),
    }
}

/// The descriptor published in `folder`, if there is one.
pub async fn published_descriptor(
    store: &dyn ObjectStore,
    folder: &url::Url,
) -> Result<Option<TableDescriptor>, TapError> {
    let location = store_path(folder).join(DESCRIPTOR_FILE);
    let text = match store.get(&location).await {
        Ok(found) => found.bytes().await.map_err(storage(folder))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(storage(folder)(e)),
    };
    let origin = Path::new(folder.as_str()).join(DESCRIPTOR_FILE);
    TableDescriptor::parse(&String::from_utf8_lossy(&text), &origin).map(Some)
}

/// Uploads the table written at `written` (its descriptor's `data` folder, then the descriptor) to
/// `folder` on `store`, then deletes the data folders that neither the new descriptor nor
/// `replaced` (the descriptor published before) points at.
pub async fn publish_to_store(
    store: &dyn ObjectStore,
    folder: &url::Url,
    written: &Path,
    replaced: Option<&TableDescriptor>,
) -> Result<StorePublication, TapError> {
    let descriptor_file = written.join(DESCRIPTOR_FILE);
    let descriptor = TableDescriptor::read(&descriptor_file)?;
    let base = store_path(folder);
    let files = files_under(&written.join(&descriptor.data))?;
    let uploads = files.iter().map(|file| {
        let relative = file
            .strip_prefix(written)
            .expect("listed under the written folder");
        let target = relative.iter().fold(base.clone(), |path, part| {
            path.join(part.to_string_lossy().as_ref())
        });
        async move {
            let bytes = tokio::fs::read(file).await.map_err(TapError::io(file))?;
            let len = bytes.len() as u64;
            store
                .put(&target, PutPayload::from(Bytes::from(bytes)))
                .await
                .map_err(storage(&target))?;
            Ok::<u64, TapError>(len)
        }
    });
    let bytes: u64 = futures::stream::iter(uploads)
        .buffer_unordered(CONCURRENT_UPLOADS)
        .try_fold(0u64, |sum, len| async move { Ok(sum + len) })
        .await?;
    let text = std::fs::read(&descriptor_file).map_err(TapError::io(&descriptor_file))?;
    store
        .put(
            &base.clone().join(DESCRIPTOR_FILE),
            PutPayload::from(Bytes::from(text)),
        )
        .await
        .map_err(storage(folder))?;

    let keep: Vec<&str> = std::iter::once(descriptor.data.as_str())
        .chain(replaced.map(|d| d.data.as_str()))
        .collect();
    let mut removed = Vec::new();
    let listing = store
        .list_with_delimiter(Some(&base))
        .await
        .map_err(storage(folder))?;
    for data in listing.common_prefixes {
        let Some(name) = data.filename() else {
            continue;
        };
        if !name.starts_with("data") || keep.contains(&name) {
            continue;
        }
        remove_folder(store, &data).await?;
        removed.push(name.to_string());
    }
    Ok(StorePublication {
        files: files.len(),
        bytes,
        removed,
    })
}

/// Deletes every object under `folder`.
async fn remove_folder(store: &dyn ObjectStore, folder: &StorePath) -> Result<(), TapError> {
    let objects: Vec<StorePath> = store
        .list(Some(folder))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(storage(folder))?;
    for object in objects {
        match store.delete(&object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(&object)(e)),
        }
    }
    Ok(())
}

/// The files under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, TapError> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(TapError::io(&folder))? {
            let path = entry.map_err(TapError::io(&folder))?.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_folders_and_versions() {
        let base = url::Url::parse("colo://archive/tables/").unwrap();
        assert_eq!(
            table_folder(&base, "hip", "main").as_str(),
            "colo://archive/tables/hip.main/"
        );
        let root = url::Url::parse("colo://archive/").unwrap();
        assert_eq!(
            table_folder(&root, "hip", "main").as_str(),
            "colo://archive/hip.main/"
        );
        let version = new_data_dir();
        assert!(
            version.starts_with("data-2") && version.ends_with('Z'),
            "{version}"
        );
        assert_eq!(version.len(), "data-20261205T164200123Z".len());
    }
}
