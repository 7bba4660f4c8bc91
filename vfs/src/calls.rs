//! The calls the FUSE glue makes that differ by volume kind: each goes to [`crate::direct`] on a
//! direct (local read-write) volume, and to the write-back path elsewhere — or is refused with
//! `EPERM` where the backend cannot keep what it makes (special files; symbolic links except on
//! backends that keep them, SFTP), `EROFS` on read-only volumes.

use crate::core::{Attr, Opened, VfsCore};
use crate::direct::{Made, attr_from};
use crate::error::{Result, VfsError};
use crate::inode::Node;
use crate::metrics::FsOp;
use crate::write::NewEntry;
use colo_cache::Pending;
use colo_connectors::EntryKind;
use std::time::Instant;

impl VfsCore {
    /// Whether `ino` is on a direct volume (its calls are local and answer at once).
    pub fn is_direct(&self, ino: u64) -> bool {
        let st = self.state.lock();
        st.inodes
            .get(ino)
            .and_then(|n| n.volume)
            .is_some_and(|v| self.vol(v).direct_root.is_some())
    }

    /// `stat`, or `fstat` of an open handle (`fh`): on a direct volume the open file's own
    /// attributes, also after its last name is gone.
    pub async fn getattr_handle(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        if let Some(file) = fh.and_then(|fh| self.direct_handle(fh)) {
            let started = Instant::now();
            let result = file
                .metadata()
                .map(|m| attr_from(ino, &m))
                .map_err(|e| VfsError::Os {
                    operation: "fstat",
                    path: format!("inode {ino}"),
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
            return self.timed(FsOp::Getattr, started, result);
        }
        self.getattr(ino).await
    }

    /// `open(2)` with its flags.
    pub async fn open_flags(&self, ino: u64, flags: i32) -> Result<Opened> {
        let node = self.node(ino)?;
        if self.direct_root(&node).is_some() {
            let started = Instant::now();
            let result = self.direct_open(ino, &node, flags);
            return self.timed(FsOp::Open, started, result);
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_APPEND != 0;
        self.open_file(ino, write, flags & libc::O_TRUNC != 0).await
    }

    /// `creat`/`open(O_CREAT)` by `new`'s owner.
    pub async fn create_entry(
        &self,
        parent: u64,
        name: &str,
        flags: i32,
        new: &NewEntry,
    ) -> Result<(Attr, Opened)> {
        let pnode = self.node(parent)?;
        if self.direct_root(&pnode).is_some() {
            let started = Instant::now();
            let result = self.direct_create(parent, &pnode, name, flags, new);
            return self.timed(FsOp::Open, started, result);
        }
        let (exclusive, truncate) = (flags & libc::O_EXCL != 0, flags & libc::O_TRUNC != 0);
        self.create_as(parent, name, exclusive, truncate, Some(new))
            .await
    }

    pub async fn mkdir_entry(&self, parent: u64, name: &str, new: &NewEntry) -> Result<Attr> {
        let pnode = self.node(parent)?;
        if self.direct_root(&pnode).is_some() {
            let started = Instant::now();
            let result = self.direct_make(parent, &pnode, name, Made::Directory, new);
            return self.timed(FsOp::Mkdir, started, result);
        }
        self.mkdir_as(parent, name, Some(new)).await
    }

    /// `mknod` (regular files, FIFOs, sockets, devices) and `symlink`: kept by direct volumes;
    /// symbolic links also on write-back volumes whose backend keeps them (SFTP), through the
    /// journal like `mkdir`; elsewhere `EPERM`, as file systems without them answer (`EROFS` on
    /// read-only ones).
    pub async fn make_node(
        &self,
        parent: u64,
        name: &str,
        made: Made<'_>,
        new: &NewEntry,
    ) -> Result<Attr> {
        let started = Instant::now();
        let op = match made {
            Made::Symlink { .. } => FsOp::Link,
            _ => FsOp::Mknod,
        };
        let result = match self.node(parent) {
            Err(e) => Err(e),
            Ok(pnode) if self.direct_root(&pnode).is_some() => {
                self.direct_make(parent, &pnode, name, made, new)
            }
            Ok(pnode) => match made {
                Made::Symlink { target } if self.keeps_links(&pnode) => {
                    self.symlink_as(parent, &pnode, name, target, new).await
                }
                _ => Err(self.refuse_special(parent, &pnode, "creating special files or links")),
            },
        };
        self.timed(op, started, result)
    }

    /// Whether `node`'s volume is written back to a backend that keeps symbolic links.
    fn keeps_links(&self, node: &Node) -> bool {
        node.volume
            .and_then(|v| self.write_back(v))
            .is_some_and(|wb| wb.connector().capability().symlinks)
    }

    async fn symlink_as(
        &self,
        parent: u64,
        pnode: &Node,
        name: &str,
        target: &std::path::Path,
        new: &NewEntry,
    ) -> Result<Attr> {
        let (_, wb) = self.writable_node(parent, "symlink")?;
        let path = self.child_path(pnode, name)?;
        let Some(target) = target.to_str() else {
            return Err(VfsError::Invalid {
                path: format!("{}/{name}", self.display(pnode)),
                detail: "a link target that is not UTF-8".into(),
            });
        };
        if let Some((_, node)) = self.child(parent, pnode, name).await? {
            return Err(VfsError::Exists {
                path: self.display(&node),
            });
        }
        wb.symlink(path.as_str(), target)?;
        let ino = self.add_child(parent, pnode, name, path, EntryKind::Symlink);
        let node = self.node(ino)?;
        self.keep_new(parent, pnode, &node, Some(new));
        Ok(self.attr_now(&self.state.lock(), ino, &node))
    }

    /// The target of the symbolic link `ino`: on a direct volume from the disk; elsewhere from
    /// the write-back overlay while the link is pending, then from the origin.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let started = Instant::now();
        let result = async {
            let node = self.node(ino)?;
            if self.direct_root(&node).is_some() {
                return self.direct_readlink(&node);
            }
            let vol = node.volume.map(|v| self.vol(v));
            let pending = vol
                .as_ref()
                .and_then(|v| v.write_back.as_ref())
                .and_then(|wb| wb.lookup(node.path.as_str()));
            match (pending, vol) {
                (Some(Pending::Symlink(target)), _) => Ok(target.into_bytes()),
                (None, Some(v)) if node.kind == EntryKind::Symlink => {
                    let target = v.reader.connector().read_link(&node.path).await?;
                    Ok(target.into_bytes())
                }
                _ => Err(VfsError::Invalid {
                    path: self.display(&node),
                    detail: "not a symbolic link".into(),
                }),
            }
        }
        .await;
        self.timed(FsOp::Readlink, started, result)
    }

    /// A hard link `newname` in `newparent` to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &str) -> Result<Attr> {
        let started = Instant::now();
        let result = (|| {
            let (node, pnode) = (self.node(ino)?, self.node(newparent)?);
            if node.volume != pnode.volume {
                return Err(VfsError::CrossDevice {
                    path: self.display(&node),
                    detail: "a hard link into another volume".into(),
                });
            }
            if self.direct_root(&pnode).is_none() {
                return Err(self.refuse_special(newparent, &pnode, "hard links"));
            }
            self.direct_link(ino, &node, newparent, &pnode, newname)
        })();
        self.timed(FsOp::Link, started, result)
    }

    fn refuse_special(&self, ino: u64, node: &Node, what: &'static str) -> VfsError {
        match node.volume.and_then(|v| self.write_back(v)) {
            Some(_) => VfsError::NotPermitted {
                path: self.display(node),
                detail: format!("{what}: this volume's backend cannot keep them"),
            },
            None => self.refuse_write(ino, what),
        }
    }
}
