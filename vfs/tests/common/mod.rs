//! What the writable-volume test files share: a core over one volume "vol" whose writes are staged
//! in a write-back area (4 KiB blocks, a 16 MiB memory tier, no disk tier).

use colo_cache::{MemoryCache, ReadThrough, TieredCache, WriteBack};
use colo_connectors::Connector;
use colo_vfs::{VfsCore, VfsOptions, VolumeMount};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A core over `origin` with its write-back area (and the kept log) in `dir`, attributes kept for
/// `metadata_ttl`; no upload worker (callers start one with `spawn_worker` where they want one).
pub fn writable_core(
    dir: &Path,
    origin: Arc<dyn Connector>,
    metadata_ttl: Duration,
) -> (VfsCore, Arc<WriteBack>) {
    let cache = Arc::new(TieredCache::new(Some(MemoryCache::new(16 << 20)), None));
    let reader = ReadThrough::new(origin, cache, 4096, 65536);
    let wb = WriteBack::open(dir, reader.clone()).expect("write-back");
    let core = VfsCore::new(
        vec![VolumeMount {
            name: "vol".into(),
            reader,
            metadata_ttl,
            write_back: Some(wb.clone()),
            direct_root: None,
            owner: None,
        }],
        VfsOptions::default(),
    );
    (core, wb)
}
