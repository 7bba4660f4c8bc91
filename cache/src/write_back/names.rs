//! Changes to names on a writable volume — unlink, rmdir, mkdir, symlink and the rename of a
//! file with a staged copy — as journal records and overlay entries (see the module above for the
//! design; the worker applies them in order).

use super::{Base, Change, Pending, Result, StagedFile, State, WriteBack, io_err};
use std::sync::Arc;

impl WriteBack {
    /// Removes the file or empty folder at `path`.
    pub fn remove(&self, path: &str) -> Result<u64> {
        let mut st = self.state.lock();
        st.overlay.insert(path.to_string(), Pending::Gone);
        self.enqueue(
            &mut st,
            Change::Delete {
                path: path.to_string(),
            },
        )
    }

    pub fn mkdir(&self, path: &str) -> Result<u64> {
        let mut st = self.state.lock();
        st.overlay.insert(path.to_string(), Pending::Dir);
        self.enqueue(
            &mut st,
            Change::Mkdir {
                path: path.to_string(),
            },
        )
    }

    /// A symbolic link at `path` to `target`, made at the origin in its turn.
    pub fn symlink(&self, path: &str, target: &str) -> Result<u64> {
        let mut st = self.state.lock();
        st.overlay
            .insert(path.to_string(), Pending::Symlink(target.to_string()));
        self.enqueue(
            &mut st,
            Change::Symlink {
                path: path.to_string(),
                target: target.to_string(),
            },
        )
    }

    /// Seals `staged` and counts one more queued upload of it.
    pub(super) fn hold_for_upload(st: &mut State, staged: &Arc<StagedFile>) {
        staged.seal();
        staged.keep();
        st.uploads
            .entry(staged.id())
            .or_insert_with(|| (staged.clone(), 0))
            .1 += 1;
    }

    /// Moves the file at `from`, which has a staged copy, to `to` (replacing what is there): an
    /// upload of the copy under the new name, then a delete of the old one. A program writing to
    /// the file goes on writing to it under its new name. Returns the delete's sequence number,
    /// or `None` when `from` has no staged copy (any more: its upload may have just finished; the
    /// caller renames at the origin then).
    pub fn rename_file(&self, from: &str, to: &str) -> Result<Option<u64>> {
        let mut st = self.state.lock();
        let in_overlay = match st.overlay.get(from) {
            Some(Pending::File(f)) => Some(f.clone()),
            _ => None,
        };
        let staged = match (st.sessions.get_mut(from), in_overlay) {
            (Some(s), _) => {
                s.dirty = false;
                s.base = Base::Ours;
                s.staged.clone()
            }
            (None, Some(f)) => f,
            _ => return Ok(None),
        };
        Self::hold_for_upload(&mut st, &staged);
        st.overlay
            .insert(to.to_string(), Pending::File(staged.clone()));
        st.overlay.insert(from.to_string(), Pending::Gone);
        if let Some(session) = st.sessions.remove(from) {
            st.sessions.insert(to.to_string(), session);
        }
        let upload = Change::Upload {
            path: to.to_string(),
            staged: staged.id(),
            size: staged.size(),
            crc32: Some(staged.checksum().map_err(io_err(staged.path()))?),
            base: Base::Ours,
        };
        self.enqueue(&mut st, upload)?;
        self.enqueue(
            &mut st,
            Change::Delete {
                path: from.to_string(),
            },
        )
        .map(Some)
    }
}
