//! Local and NFS paths. Plain `std::fs` with positioned reads (`pread`) on a blocking thread: no
//! library is faster than the kernel here, and it handles sparse files of any size.
//!
//! Safety: names are checked by [`ObjectPath`]; on top of that a path is canonicalised before it is
//! opened and must stay under the volume root, so a symlink inside the volume cannot expose files
//! outside it. Identity is size + mtime (ns), checked with `fstat` on the opened file, so a read never
//! returns bytes of a different version than the one expected.

use crate::connector::{Capability, Connector, DirEntry, EntryKind, ObjectIdentity, ObjectMeta};
use crate::error::{ConnectorError, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::fs;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct LocalConnector {
    volume: String,
    root: PathBuf,
}

impl LocalConnector {
    pub fn new(volume: &str, root: &Path) -> Self {
        LocalConnector {
            volume: volume.to_string(),
            root: root.to_path_buf(),
        }
    }

    /// The real path of `path`, refused when it resolves outside the root.
    fn resolve(&self, path: &ObjectPath) -> Result<PathBuf> {
        let p = path.to_string();
        let root = fs::canonicalize(&self.root)
            .map_err(|e| ConnectorError::from_io(&self.volume, "/", &e))?;
        let mut joined = root.clone();
        for s in path.segments() {
            joined.push(s);
        }
        let real =
            fs::canonicalize(&joined).map_err(|e| ConnectorError::from_io(&self.volume, &p, &e))?;
        if !real.starts_with(&root) {
            return Err(ConnectorError::denied(
                &self.volume,
                &p,
                "resolves outside the volume (symbolic link)",
            ));
        }
        Ok(real)
    }
}

fn meta_of(m: &fs::Metadata) -> ObjectMeta {
    let mtime = m.modified().ok();
    if m.is_dir() {
        ObjectMeta::directory(mtime)
    } else {
        ObjectMeta::file(m.len(), mtime, None)
    }
}

async fn blocking<T: Send + 'static>(
    volume: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectorError::internal(volume, "/", e))?
}

#[async_trait]
impl Connector for LocalConnector {
    fn volume(&self) -> &str {
        &self.volume
    }

    fn capability(&self) -> Capability {
        Capability {
            list_has_metadata: true,
            conditional_read: true,
            write: false,
        }
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let real = self.resolve(path)?;
        let (v, p) = (self.volume.clone(), path.to_string());
        blocking(&self.volume, move || {
            fs::metadata(&real)
                .map(|m| meta_of(&m))
                .map_err(|e| ConnectorError::from_io(&v, &p, &e))
        })
        .await
    }

    async fn read_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
        expect: Option<&ObjectIdentity>,
    ) -> Result<Bytes> {
        let real = self.resolve(path)?;
        let (v, p) = (self.volume.clone(), path.to_string());
        let expect = expect.cloned();
        blocking(&self.volume, move || {
            let io = |e: std::io::Error| ConnectorError::from_io(&v, &p, &e);
            let file = fs::File::open(&real).map_err(io)?;
            let m = file.metadata().map_err(io)?;
            if m.is_dir() {
                return Err(ConnectorError::WrongKind {
                    volume: v.clone(),
                    path: p.clone(),
                    expected: "file",
                    actual: "directory",
                });
            }
            let check = |m: &fs::Metadata| match &expect {
                Some(id) if !id.matches(&meta_of(m)) => Err(ConnectorError::stale(&v, &p)),
                _ => Ok(()),
            };
            check(&m)?;
            if range.end > m.len() {
                return Err(ConnectorError::InvalidInput {
                    volume: v.clone(),
                    path: p.clone(),
                    detail: format!(
                        "range {}..{} past the end ({} bytes)",
                        range.start,
                        range.end,
                        m.len()
                    ),
                });
            }
            let mut buf = vec![0u8; (range.end - range.start) as usize];
            file.read_exact_at(&mut buf, range.start).map_err(io)?;
            // A writer may have replaced the contents while we read: check again.
            check(&file.metadata().map_err(io)?)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn list(&self, path: &ObjectPath) -> Result<Vec<DirEntry>> {
        let real = self.resolve(path)?;
        let (v, p) = (self.volume.clone(), path.to_string());
        let parent = path.clone();
        blocking(&self.volume, move || {
            let io = |e: std::io::Error| ConnectorError::from_io(&v, &p, &e);
            let mut out = Vec::new();
            for entry in fs::read_dir(&real).map_err(io)? {
                let entry = entry.map_err(io)?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: not representable in a volume path
                };
                if parent.child(&name).is_err() {
                    continue;
                }
                // Follow symlinks for type and size, like a mount would; broken links are skipped.
                let Ok(m) = fs::metadata(entry.path()) else {
                    continue;
                };
                let meta = meta_of(&m);
                if meta.kind == EntryKind::Directory || m.is_file() {
                    out.push(DirEntry { name, meta });
                }
            }
            Ok(out)
        })
        .await
    }
}
