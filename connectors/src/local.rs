//! Local and NFS paths. Plain `std::fs` with positioned reads (`pread`) on a blocking thread: no
//! library is faster than the kernel here, and it handles sparse files of any size.
//!
//! Safety: names are checked by [`ObjectPath`]; on top of that a path is canonicalised before it is
//! opened and must stay under the volume root, so a symlink inside the volume cannot expose files
//! outside it. Identity is size + mtime (ns), checked with `fstat` on the opened file, so a read never
//! returns bytes of a different version than the one expected.
//!
//! Writes go to a temporary file beside the target, are synced, and renamed into place (then the
//! folder is synced), so a reader or a crash sees the old file or the new one. Missing parents are
//! created one level at a time, each checked to stay under the root.

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

    /// The real folder that will hold `path` (created where missing, each level checked to stay
    /// under the root) and the file's name in it.
    fn parent_for_write(&self, path: &ObjectPath) -> Result<(PathBuf, String)> {
        let p = path.to_string();
        let io = |e: std::io::Error| ConnectorError::from_io(&self.volume, &p, &e);
        let root = fs::canonicalize(&self.root).map_err(io)?;
        let segments: Vec<&str> = path.segments().collect();
        let Some((name, parents)) = segments.split_last() else {
            return Err(ConnectorError::WrongKind {
                volume: self.volume.clone(),
                path: p,
                expected: "file",
                actual: "directory",
            });
        };
        let mut folder = root.clone();
        for segment in parents {
            let next = folder.join(segment);
            match fs::create_dir(&next) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
            folder = fs::canonicalize(&next).map_err(io)?;
            if !folder.starts_with(&root) || !folder.is_dir() {
                return Err(ConnectorError::denied(
                    &self.volume,
                    &p,
                    "a parent resolves outside the volume or is not a folder",
                ));
            }
        }
        Ok((folder, name.to_string()))
    }
}

/// Writes `bytes` to `folder/name` through a synced temporary file renamed into place.
fn replace_file(folder: &Path, name: &str, bytes: &[u8]) -> std::io::Result<fs::Metadata> {
    use std::io::Write;
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = folder.join(format!(".{name}.colo-{}-{serial}", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, folder.join(name))?;
        fs::File::open(folder)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    fs::metadata(folder.join(name))
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
            write: true,
            rename_dirs: true,
            // Links are followed here; a local read-write volume keeps them on the direct path.
            symlinks: false,
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

    async fn write_object(&self, path: &ObjectPath, bytes: Bytes) -> Result<ObjectMeta> {
        let this = LocalConnector::new(&self.volume, &self.root);
        let p = path.clone();
        blocking(&self.volume, move || {
            let (folder, name) = this.parent_for_write(&p)?;
            replace_file(&folder, &name, &bytes)
                .map(|m| meta_of(&m))
                .map_err(|e| ConnectorError::from_io(&this.volume, &p.to_string(), &e))
        })
        .await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let this = LocalConnector::new(&self.volume, &self.root);
        let p = path.clone();
        blocking(&self.volume, move || {
            let text = p.to_string();
            let io = |e: std::io::Error| ConnectorError::from_io(&this.volume, &text, &e);
            let Some(parent) = p.parent() else {
                return Err(ConnectorError::denied(
                    &this.volume,
                    &text,
                    "the volume's root cannot be deleted",
                ));
            };
            // The link itself, never what a symbolic link points to.
            let folder = this.resolve(&parent)?;
            let target = folder.join(p.name());
            let meta = fs::symlink_metadata(&target).map_err(io)?;
            if meta.is_dir() {
                fs::remove_dir(&target).map_err(io)
            } else {
                fs::remove_file(&target).map_err(io)
            }
        })
        .await
    }

    async fn write_file(&self, path: &ObjectPath, source: &Path) -> Result<ObjectMeta> {
        let this = LocalConnector::new(&self.volume, &self.root);
        let (p, source) = (path.clone(), source.to_path_buf());
        blocking(&self.volume, move || {
            let (folder, name) = this.parent_for_write(&p)?;
            copy_into_place(&folder, &name, &source)
                .map(|m| meta_of(&m))
                .map_err(|e| ConnectorError::from_io(&this.volume, &p.to_string(), &e))
        })
        .await
    }

    async fn create_dir(&self, path: &ObjectPath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        let this = LocalConnector::new(&self.volume, &self.root);
        let p = path.clone();
        blocking(&self.volume, move || {
            let (folder, name) = this.parent_for_write(&p)?;
            match fs::create_dir(folder.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    Err(ConnectorError::from_io(&this.volume, &p.to_string(), &e))
                }
                _ => Ok(()),
            }
        })
        .await
    }

    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let this = LocalConnector::new(&self.volume, &self.root);
        let (from, to) = (from.clone(), to.clone());
        blocking(&self.volume, move || {
            let text = from.to_string();
            let io = |e: std::io::Error| ConnectorError::from_io(&this.volume, &text, &e);
            let (Some(from_parent), Some(to_parent)) = (from.parent(), to.parent()) else {
                return Err(ConnectorError::denied(
                    &this.volume,
                    &text,
                    "the volume's root cannot be renamed",
                ));
            };
            // The links themselves are renamed, never what they point to.
            let source = this.resolve(&from_parent)?.join(from.name());
            let folder = this.resolve(&to_parent)?;
            fs::rename(&source, folder.join(to.name())).map_err(io)?;
            fs::File::open(&folder)
                .and_then(|f| f.sync_all())
                .map_err(io)
        })
        .await
    }
}

/// Copies `source` to `folder/name` through a synced temporary file renamed into place.
fn copy_into_place(folder: &Path, name: &str, source: &Path) -> std::io::Result<fs::Metadata> {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = folder.join(format!(".{name}.colo-{}-{serial}", std::process::id()));
    let written = (|| {
        fs::copy(source, &temporary)?;
        fs::File::open(&temporary)?.sync_all()?;
        fs::rename(&temporary, folder.join(name))?;
        fs::File::open(folder)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    fs::metadata(folder.join(name))
}
