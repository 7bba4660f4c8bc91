//! The database: one SQLite file (WAL, foreign keys on, `synchronous = FULL` so a committed grant or
//! revocation survives a power cut) and its migrations.
//!
//! Migrations are numbered SQL files in `migrations/`, applied in order inside one transaction
//! each; `PRAGMA user_version` records the last one applied. A database written by a newer colo is
//! refused rather than guessed at. Every query of the crate goes through [`Store::with`] (one
//! connection behind a mutex: the platform's state is small and SQLite answers these queries in
//! microseconds), which is the seam where a PostgreSQL pool would go.

use crate::error::{CatalogError, Result};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../migrations/0001_users_volumes_grants.sql"),
    ),
    (2, include_str!("../migrations/0002_catalogue_items.sql")),
    (3, include_str!("../migrations/0003_config_volumes.sql")),
    (4, include_str!("../migrations/0004_selections.sql")),
    (5, include_str!("../migrations/0005_uids_and_labs.sql")),
    (6, include_str!("../migrations/0006_lab_shares.sql")),
];

pub struct Store {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings it to the current schema.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CatalogError::Io {
                path: dir.to_path_buf(),
                detail: format!("cannot create the folder: {e}"),
            })?;
        }
        // Token hashes and sealed credentials: the file is the operator's alone (SQLite gives its
        // WAL and shared-memory files the same mode).
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| CatalogError::Io {
                    path: path.to_path_buf(),
                    detail: format!("cannot create the database: {e}"),
                })?;
        }
        let conn = Connection::open(path).map_err(CatalogError::db("opening the database"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(CatalogError::db("setting WAL mode"))?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A private database in memory (tests).
    pub fn in_memory() -> Result<Store> {
        let conn =
            Connection::open_in_memory().map_err(CatalogError::db("opening the database"))?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Store> {
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(CatalogError::db("enabling foreign keys"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(CatalogError::db("setting synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(CatalogError::db("setting the busy timeout"))?;
        migrate(&mut conn, path.as_deref())?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` with the connection (a transaction where `f` opens one).
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        f(&mut self.conn.lock())
    }

    /// Changes whenever the database changed, by this process or another: SQLite's
    /// `data_version` (other connections' commits) with this connection's change count.
    pub fn change_marker(&self) -> Result<(i64, u64)> {
        self.with(|c| {
            let version: i64 = c
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .map_err(CatalogError::db("reading the data version"))?;
            Ok((version, c.total_changes()))
        })
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<u32> {
        self.with(|c| user_version(c))
    }
}

fn user_version(conn: &Connection) -> Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(CatalogError::db("reading the schema version"))
}

fn migrate(conn: &mut Connection, path: Option<&Path>) -> Result<()> {
    let at = user_version(conn)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if at > latest {
        return Err(CatalogError::Io {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            detail: format!(
                "the database is at schema version {at}, newer than this colo knows ({latest}); \
                 use the colo that wrote it"
            ),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > at) {
        let tx = conn
            .transaction()
            .map_err(CatalogError::db("starting a migration"))?;
        tx.execute_batch(sql)
            .map_err(CatalogError::db("applying a migration"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(CatalogError::db("recording the schema version"))?;
        tx.commit()
            .map_err(CatalogError::db("committing a migration"))?;
        tracing::info!(version, "catalog database migrated");
    }
    Ok(())
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_migrated_to_the_latest_schema_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/colo.db");
        let store = Store::open(&path).expect("open");
        assert_eq!(store.schema_version().expect("version"), 6);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the database is the operator's alone");
        let mode: String = store
            .with(|c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(CatalogError::db("t"))
            })
            .expect("mode");
        assert_eq!(mode, "wal");
        drop(store);
        let again = Store::open(&path).expect("reopen");
        assert_eq!(again.schema_version().expect("version"), 6);
    }

    #[test]
    fn users_of_an_older_database_get_their_default_uid_when_it_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("colo.db");
        {
            let c = Connection::open(&path).expect("open");
            for (n, sql) in &MIGRATIONS[..4] {
                c.execute_batch(sql).expect("an old migration");
                c.pragma_update(None, "user_version", n).expect("version");
            }
            c.execute(
                "INSERT INTO users (name, admin, created_at) VALUES ('old', 0, 0), ('older', 1, 0)",
                [],
            )
            .expect("users");
        }
        let store = Store::open(&path).expect("migrated");
        let uids: Vec<(String, i64)> = store
            .with(|c| {
                let mut st = c
                    .prepare("SELECT name, uid FROM users ORDER BY id")
                    .map_err(CatalogError::db("t"))?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(CatalogError::db("t"))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(CatalogError::db("t"))
            })
            .expect("uids");
        assert_eq!(
            uids,
            vec![("old".into(), 100_001), ("older".into(), 100_002)]
        );
    }

    #[test]
    fn a_database_from_a_newer_colo_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("colo.db");
        drop(Store::open(&path).expect("open"));
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", 99).expect("bump");
        drop(c);
        let err = Store::open(&path).err().expect("refused").to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn fts5_is_compiled_in() {
        let store = Store::in_memory().expect("open");
        store
            .with(|c| {
                c.execute_batch("CREATE VIRTUAL TABLE t USING fts5(body)")
                    .map_err(CatalogError::db("fts5"))
            })
            .expect("the catalogue's free-text index needs FTS5");
    }
}
