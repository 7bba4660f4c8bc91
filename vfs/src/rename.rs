//! Renames on writable volumes: of a file with a staged copy, through the journal (its upload
//! under the new name, then a delete of the old); of anything else, at the origin at once, after
//! the queue has drained — natively where the backend renames, by copies on object stores, where a
//! folder of more than `MAX_RENAME_OBJECTS` objects is refused with `EXDEV` so `mv` copies instead.
//! Kept modes and times follow ([`crate::kept`]).

use crate::core::VfsCore;
use crate::error::{Result, VfsError};
use crate::inode::Node;
use crate::metrics::FsOp;
use colo_cache::WriteBack;
use colo_cache::write_back::FSYNC_WAIT;
use colo_connectors::{EntryKind, ErrorKind, ObjectPath};
use std::time::Instant;

impl VfsCore {
    /// `rename(2)`: `noreplace` is `RENAME_NOREPLACE`.
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let result = self
            .rename_inner(parent, name, new_parent, new_name, noreplace)
            .await;
        self.timed(FsOp::Rename, started, result)
    }

    async fn rename_inner(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> Result<()> {
        let (from, to) = (self.node(parent)?, self.node(new_parent)?);
        if self.direct_root(&from).is_some() || self.direct_root(&to).is_some() {
            if from.volume != to.volume {
                return Err(VfsError::CrossDevice {
                    path: format!("{}/{name}", self.display(&from)),
                    detail: "another volume".into(),
                });
            }
            let (source, target) = ((parent, &from, name), (new_parent, &to, new_name));
            return self.direct_rename(source, target, noreplace);
        }
        let (pnode, wb) = self.writable_node(parent, "rename")?;
        let (npnode, _) = self.writable_node(new_parent, "rename")?;
        if pnode.volume != npnode.volume {
            return Err(VfsError::CrossDevice {
                path: format!("{}/{name}", self.display(&pnode)),
                detail: "another volume".into(),
            });
        }
        let Some((ino, node)) = self.child(parent, &pnode, name).await? else {
            return Err(VfsError::NotFound {
                path: format!("{}/{name}", self.display(&pnode)),
            });
        };
        let to = self.child_path(&npnode, new_name)?;
        if to == node.path {
            return Ok(());
        }
        if node.kind == EntryKind::Directory
            && to.as_str().starts_with(&format!("{}/", node.path.as_str()))
        {
            return Err(VfsError::Invalid {
                path: self.display(&node),
                detail: "a directory cannot move into itself".into(),
            });
        }
        let target = self.child(new_parent, &npnode, new_name).await?;
        if let Some((tino, tnode)) = &target {
            let shown = self.display(tnode);
            if noreplace {
                return Err(VfsError::Exists { path: shown });
            }
            // Links move like files (their names, never what they point to).
            let is_dir = |k| k == EntryKind::Directory;
            match (is_dir(node.kind), is_dir(tnode.kind)) {
                (true, false) => return Err(VfsError::NotADirectory { path: shown }),
                (false, true) => return Err(VfsError::IsADirectory { path: shown }),
                (true, true) => {
                    if !self.readdir(*tino).await?.entries.is_empty() {
                        return Err(VfsError::NotEmpty { path: shown });
                    }
                }
                (false, false) => {}
            }
        }
        let in_journal = node.kind == EntryKind::File
            && wb.rename_file(node.path.as_str(), to.as_str())?.is_some();
        if !in_journal {
            self.rename_at_origin(&wb, &node, &to, target.as_ref().map(|(_, n)| n))
                .await?;
        }
        self.keep_renamed(&node, to.as_str());
        self.keep_entries_changed(&pnode);
        if new_parent != parent {
            self.keep_entries_changed(&npnode);
        }
        let mut st = self.state.lock();
        if let Some((tino, _)) = target {
            st.inodes.detach(tino);
            st.attrs.remove(&tino);
        }
        if let Some(dir) = st.dirs.get_mut(&parent)
            && let Ok(i) = dir.position(name)
        {
            dir.children.remove(i);
        }
        st.inodes.rename(ino, new_parent, new_name, to);
        if let Some(dir) = st.dirs.get_mut(&new_parent) {
            match dir.position(new_name) {
                Ok(i) => dir.children[i].1 = ino,
                Err(i) => dir.children.insert(i, (new_name.to_string(), ino)),
            }
        }
        if node.kind == EntryKind::Directory {
            // Paths below it changed: their cached listings are keyed by inode and stay valid,
            // their attributes are refreshed on next use.
            st.attrs.clear();
        }
        Ok(())
    }

    /// Renames at the origin directly, once every pending change has reached it.
    async fn rename_at_origin(
        &self,
        wb: &WriteBack,
        node: &Node,
        to: &ObjectPath,
        target: Option<&Node>,
    ) -> Result<()> {
        if node.kind == EntryKind::Directory && wb.writing_under(node.path.as_str()) {
            // Files below it are being written: their sessions are keyed by path.
            return Err(VfsError::Busy {
                path: self.display(node),
                detail: "files below it are open for writing".into(),
            });
        }
        if !wb.drain(FSYNC_WAIT).await {
            return Err(VfsError::Busy {
                path: self.display(node),
                detail: "earlier changes are still waiting for the origin".into(),
            });
        }
        let connector = wb.connector().clone();
        if let Some(t) = target.filter(|t| t.kind == EntryKind::Directory) {
            connector.delete(&t.path).await?;
        }
        match connector.rename(&node.path, to).await {
            Err(e) if e.kind() == ErrorKind::Unsupported => Err(VfsError::CrossDevice {
                path: self.display(node),
                detail: e.to_string(),
            }),
            other => Ok(other?),
        }
    }
}
