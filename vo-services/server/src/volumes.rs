//! Files on volumes for the services: a [`ByteSource`] (`colo-astro`'s) over the shared
//! read-through cache.
//!
//! Every read carries the identity the file had when it was opened, so a file replaced at the
//! origin fails as stale instead of mixing versions. Reads go through
//! [`FetchPlan::Exact`]: cached blocks when they are all there, otherwise exactly the
//! bytes asked for — a header costs a few KiB, a cutout only its rows. `read_many` fetches up to
//! [`CONCURRENT_READS`] ranges at once, in order.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use colo_cache::{CacheError, FetchPlan, ObjectVersion, ReadThrough};
use colo_connectors::{ConnectorError, EntryKind, ObjectPath};
use futures::{StreamExt, TryStreamExt};

use colo_astro::AstroError;
use colo_astro::fits::ByteSource;

use crate::error::{VoError, read_failure};

/// Ranged reads in flight per `read_many`.
pub const CONCURRENT_READS: usize = 64;

/// The volumes the services read images from, by name.
#[derive(Clone, Default)]
pub struct Volumes {
    readers: HashMap<String, ReadThrough>,
}

impl Volumes {
    pub fn new(readers: impl IntoIterator<Item = (String, ReadThrough)>) -> Self {
        Volumes {
            readers: readers.into_iter().collect(),
        }
    }

    pub fn get(&self, volume: &str) -> Option<&ReadThrough> {
        self.readers.get(volume)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.readers.keys().map(String::as_str)
    }

    /// Opens `path` on `volume`: one `stat`, which pins the version every later read must match.
    pub async fn open(&self, volume: &str, path: &str) -> Result<VolumeFile, VoError> {
        let reader = self.get(volume).ok_or_else(|| VoError::UnknownVolume {
            volume: volume.to_string(),
        })?;
        let object = ObjectPath::parse(path).map_err(|e| VoError::volume(volume, e))?;
        let meta = reader
            .connector()
            .stat(&object)
            .await
            .map_err(|e| VoError::volume(volume, e))?;
        if meta.kind != EntryKind::File {
            return Err(VoError::volume(
                volume,
                ConnectorError::WrongKind {
                    volume: volume.to_string(),
                    path: path.to_string(),
                    expected: "file",
                    actual: "directory",
                },
            ));
        }
        Ok(VolumeFile {
            name: format!("{volume}/{path}"),
            reader: reader.clone(),
            object: ObjectVersion {
                path: object,
                identity: meta.identity(),
                size: meta.size,
            },
        })
    }
}

/// One version of one file on a volume.
pub struct VolumeFile {
    name: String,
    reader: ReadThrough,
    object: ObjectVersion,
}

impl VolumeFile {
    /// The version this file was opened at.
    pub fn version(&self) -> &ObjectVersion {
        &self.object
    }
}

#[async_trait]
impl ByteSource for VolumeFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> u64 {
        self.object.size
    }

    async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AstroError> {
        self.reader
            .read(&self.object, offset, len, FetchPlan::Exact)
            .await
            .map_err(|e| read_error(&self.name, e))
    }

    async fn read_many(&self, ranges: &[(u64, u64)]) -> Result<Vec<Bytes>, AstroError> {
        let fetches: Vec<_> = ranges
            .iter()
            .map(|&(offset, len)| {
                let reader = self.reader.clone();
                let object = self.object.clone();
                async move {
                    reader
                        .read(&object, offset, len, FetchPlan::Exact)
                        .await
                        .map_err(|e| read_error(&self.name, e))
                }
            })
            .collect();
        futures::stream::iter(fetches)
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }
}

/// A failed read as the numerics carry it: the kind (missing, changed, unreachable) and the cause.
fn read_error(name: &str, error: CacheError) -> AstroError {
    AstroError::Read {
        name: name.to_string(),
        kind: read_failure(&error),
        source: Box::new(error),
    }
}
