//! Selection volumes ("Add all the selected to Data Volume"): a user's read-only volume whose
//! files are chosen archive files — named by the query that chose them (ADQL on `ivoa.obscore`)
//! or by dataset identifiers — remembered here, not copied. The mount shows each under the
//! user's folder, over the archive volume's own connector and cache
//! (`colo_connectors::selection`), so the first read of a file is its first transfer.
//!
//! A selection's files all come from one archive volume (the folders of two volumes cannot be
//! one tree without renaming files); its name shares the owner's namespace with their volumes.

use crate::Catalog;
use crate::auth::{Caller, Scope};
use crate::error::{CatalogError, Result};
use crate::store::now_secs;
use colo_connectors::spec::valid_volume_name;
use rusqlite::{OptionalExtension, params};

/// Most files in one selection.
pub const MAX_FILES: usize = 10_000;

/// One chosen file: where it is on its archive volume, and the dataset that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedFile {
    pub volume: String,
    pub path: String,
    pub did: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionRecord {
    pub id: i64,
    pub owner: String,
    pub name: String,
    /// The ADQL, or the identifiers, that chose the files.
    pub query: String,
    /// The archive volume the files are on.
    pub volume: String,
    pub files: Vec<(String, String)>,
    pub created_at: i64,
}

impl Catalog {
    /// Records the selection `name` of `files` for the caller.
    pub fn add_selection(
        &self,
        by: &Caller,
        name: &str,
        query: &str,
        files: &[SelectedFile],
    ) -> Result<SelectionRecord> {
        by.require(Scope::Volumes)?;
        if !valid_volume_name(name) {
            return Err(CatalogError::BadName {
                what: "selection",
                name: name.chars().take(64).collect(),
                rule: "1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'",
            });
        }
        let bad = |detail: String| CatalogError::BadVolume {
            volume: name.to_string(),
            detail,
        };
        let Some(first) = files.first() else {
            return Err(bad("the selection is empty".into()));
        };
        if files.len() > MAX_FILES {
            return Err(bad(format!(
                "more than {MAX_FILES} files: narrow the selection"
            )));
        }
        if let Some(other) = files.iter().find(|f| f.volume != first.volume) {
            return Err(bad(format!(
                "its files are on two volumes ({} and {}): make one selection per volume",
                first.volume, other.volume
            )));
        }
        let taken = self
            .visible_volumes(&by.user.name)?
            .iter()
            .any(|v| v.view_name == name)
            || self
                .selections(&by.user.name)?
                .iter()
                .any(|s| s.name == name);
        if taken {
            return Err(CatalogError::Exists {
                what: "volume",
                name: name.to_string(),
            });
        }
        let id = self.store.with(|c| {
            let tx = c.transaction().map_err(CatalogError::db("adding a selection"))?;
            tx.execute(
                "INSERT INTO selections (owner_user_id, name, query, volume, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![by.user.id, name, query, first.volume, now_secs()],
            )
            .map_err(CatalogError::db("adding a selection"))?;
            let id = tx.last_insert_rowid();
            for f in files {
                tx.execute(
                    "INSERT OR IGNORE INTO selection_files (selection_id, path, did) VALUES (?1, ?2, ?3)",
                    params![id, f.path, f.did],
                )
                .map_err(CatalogError::db("adding a selection"))?;
            }
            tx.commit().map_err(CatalogError::db("adding a selection"))?;
            Ok(id)
        })?;
        tracing::info!(user = %by.user.name, selection = name, files = files.len(), "selection added");
        self.selection(id)?.ok_or_else(|| CatalogError::NotFound {
            what: "selection",
            name: name.to_string(),
        })
    }

    fn selection(&self, id: i64) -> Result<Option<SelectionRecord>> {
        self.store.with(|c| {
            let head = c
                .query_row(
                    "SELECT s.id, u.name, s.name, s.query, s.volume, s.created_at
                     FROM selections s JOIN users u ON u.id = s.owner_user_id WHERE s.id = ?1",
                    [id],
                    |r| {
                        Ok(SelectionRecord {
                            id: r.get(0)?,
                            owner: r.get(1)?,
                            name: r.get(2)?,
                            query: r.get(3)?,
                            volume: r.get(4)?,
                            files: Vec::new(),
                            created_at: r.get(5)?,
                        })
                    },
                )
                .optional()
                .map_err(CatalogError::db("reading a selection"))?;
            let Some(mut head) = head else {
                return Ok(None);
            };
            let mut st = c
                .prepare(
                    "SELECT path, did FROM selection_files WHERE selection_id = ?1 ORDER BY path",
                )
                .map_err(CatalogError::db("reading a selection"))?;
            head.files = st
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(CatalogError::db("reading a selection"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("reading a selection"))?;
            Ok(Some(head))
        })
    }

    /// The selections of `user`, by name.
    pub fn selections(&self, user: &str) -> Result<Vec<SelectionRecord>> {
        let ids: Vec<i64> = self.store.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT s.id FROM selections s JOIN users u ON u.id = s.owner_user_id
                     WHERE u.name = ?1 ORDER BY s.name",
                )
                .map_err(CatalogError::db("listing selections"))?;
            st.query_map([user], |r| r.get(0))
                .map_err(CatalogError::db("listing selections"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing selections"))
        })?;
        ids.into_iter()
            .filter_map(|id| self.selection(id).transpose())
            .collect()
    }

    /// Removes the caller's selection `name` (the files stay where they are).
    pub fn remove_selection(&self, by: &Caller, name: &str) -> Result<()> {
        by.require(Scope::Volumes)?;
        let removed = self.store.with(|c| {
            c.execute(
                "DELETE FROM selections WHERE owner_user_id = ?1 AND name = ?2",
                params![by.user.id, name],
            )
            .map_err(CatalogError::db("removing a selection"))
        })?;
        if removed == 0 {
            return Err(CatalogError::NotFound {
                what: "selection",
                name: name.chars().take(64).collect(),
            });
        }
        Ok(())
    }
}
