//! The platform's state: users and their tokens, teams, volumes as data (with their credentials
//! sealed at rest) and the grants that decide who sees which volume. One [`Catalog`] over one
//! SQLite database ([`store`]) and one sealing key ([`sealing`]) under `$COLO_HOME`.
//!
//! Adapters (the CLI, the GraphQL API, the mount's per-user views) call the methods here and
//! nothing else; every access decision is [`Catalog::visible_volumes`] or a method built on it.

pub mod auth;
pub mod error;
pub mod grants;
pub mod graphql;
pub mod graphql_labs;
pub mod graphql_live;
mod graphql_ws;
pub mod http;
pub mod items;
pub mod labs;
pub mod sealing;
pub mod search_query;
pub mod selection_copy;
pub mod selections;
pub mod store;
pub mod volumes;

pub use auth::{Caller, NewToken, Scope, Scopes, TokenInfo, TokenKind, User};
pub use error::{CatalogError, ErrorKind, Result};
pub use grants::{Access, Grantee, VisibleVolume};
pub use items::{CatalogItem, ItemKind, SearchResult};
pub use sealing::SealingKey;
pub use search_query::{Facet, SearchQuery};
pub use store::Store;
pub use volumes::{Owner, VolumeKind, VolumeRecord};

use std::path::{Path, PathBuf};

/// The database file under `$COLO_HOME`.
pub const DATABASE_FILE: &str = "colo.db";
/// The sealing key under `$COLO_HOME` (generated 0600 when absent).
pub const KEY_FILE: &str = "secret.key";

pub struct Catalog {
    pub(crate) store: Store,
    pub(crate) key: SealingKey,
}

impl Catalog {
    /// The catalog of a colo home: `home/colo.db`, sealed with `key_file` (default
    /// `home/secret.key`, generated on first use).
    pub fn open(home: &Path, key_file: Option<&Path>) -> Result<Catalog> {
        let key_path: PathBuf = key_file.map_or_else(|| home.join(KEY_FILE), Path::to_path_buf);
        let key = SealingKey::load_or_create(&key_path)?;
        let store = Store::open(&home.join(DATABASE_FILE))?;
        Ok(Catalog { store, key })
    }

    /// A private catalog in memory (tests).
    pub fn in_memory(key: SealingKey) -> Result<Catalog> {
        Ok(Catalog {
            store: Store::in_memory()?,
            key,
        })
    }

    /// Differs from its last value whenever the catalog changed (see [`Store::change_marker`]).
    pub fn change_marker(&self) -> Result<(i64, u64)> {
        self.store.change_marker()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
