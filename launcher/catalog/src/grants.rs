//! Grants and the one access check every adapter goes through.
//!
//! [`Catalog::visible_volumes`] is the answer to "what may this user see, and may they write":
//! public archive volumes (read-only), their own volumes, their teams' volumes, and volumes granted
//! to them or to a team of theirs — a grant's access capped by the volume's own mode, the widest of
//! several grants winning. The mount's per-user views, the GraphQL resolvers and the CLI all ask
//! it; nothing else decides access.
//!
//! Names in a view: archive volumes and the user's own by their name; a volume of another user or
//! of a team as `name@owner`, so two people's `home` never collide and the name says whose it is.

use crate::Catalog;
use crate::auth::{Caller, Scope};
use crate::error::{CatalogError, Result};
use crate::store::now_secs;
use crate::volumes::{Owner, VolumeRecord};
use rusqlite::params;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }

    pub fn parse(text: &str) -> Result<Access> {
        match text {
            "read-only" | "ro" => Ok(Access::ReadOnly),
            "read-write" | "rw" => Ok(Access::ReadWrite),
            other => Err(CatalogError::BadVolume {
                volume: String::new(),
                detail: format!("access '{other}': expected read-only or read-write"),
            }),
        }
    }
}

/// Who a grant goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    User(String),
    Team(String),
}

/// A volume as one user sees it.
#[derive(Debug, Clone)]
pub struct VisibleVolume {
    /// The folder name in the user's view.
    pub view_name: String,
    pub access: Access,
    pub record: VolumeRecord,
}

impl Catalog {
    /// Every volume `user` may see, with the access they have, sorted by view name.
    pub fn visible_volumes(&self, user: &str) -> Result<Vec<VisibleVolume>> {
        let user = self.user(user)?;
        // (volume id, access granted or owned); the volume's own mode caps it below.
        let rows: Vec<(i64, Option<String>)> = self.store.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT v.id, NULL FROM volumes v WHERE v.kind = 'archive' AND v.public = 1
                     UNION ALL SELECT v.id, 'read-write' FROM volumes v WHERE v.owner_user_id = ?1
                     UNION ALL SELECT v.id, 'read-write' FROM volumes v
                         JOIN team_members m ON m.team_id = v.owner_team_id WHERE m.user_id = ?1
                     UNION ALL SELECT g.volume_id, g.access FROM grants g WHERE g.user_id = ?1
                     UNION ALL SELECT g.volume_id, g.access FROM grants g
                         JOIN team_members m ON m.team_id = g.team_id WHERE m.user_id = ?1",
                )
                .map_err(CatalogError::db("listing a user's volumes"))?;
            st.query_map([user.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(CatalogError::db("listing a user's volumes"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing a user's volumes"))
        })?;
        let mut best: std::collections::BTreeMap<i64, Access> = Default::default();
        for (id, access) in rows {
            let access = match access.as_deref() {
                Some("read-write") => Access::ReadWrite,
                _ => Access::ReadOnly,
            };
            let entry = best.entry(id).or_insert(access);
            *entry = (*entry).max(access);
        }
        let mut out = Vec::with_capacity(best.len());
        for (id, access) in best {
            let record = self.volume_by_id(id)?;
            let access = if record.writable() {
                access
            } else {
                Access::ReadOnly
            };
            let view_name = match &record.owner {
                Owner::Archive => record.name.clone(),
                Owner::User(u) if *u == user.name => record.name.clone(),
                Owner::User(o) | Owner::Team(o) => format!("{}@{o}", record.name),
            };
            out.push(VisibleVolume {
                view_name,
                access,
                record,
            });
        }
        out.sort_by(|a, b| a.view_name.cmp(&b.view_name));
        Ok(out)
    }

    /// The volume `reference` (its view name or `owner/name`) names among those `caller` sees,
    /// with the caller's access.
    pub fn visible_volume(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> Result<Option<VisibleVolume>> {
        Ok(self
            .visible_volumes(&caller.user.name)?
            .into_iter()
            .find(|v| v.view_name == reference || v.record.reference() == reference))
    }

    /// The volume `reference` names among those `caller` sees (view name, `owner/name`, or their
    /// own volume's bare name). Anything else is `NotFound`, whether it exists or not.
    pub fn resolve_for(&self, caller: &Caller, reference: &str) -> Result<VolumeRecord> {
        let not_found = || CatalogError::NotFound {
            what: "volume",
            name: reference.chars().take(200).collect(),
        };
        if let Some(v) = self.visible_volume(caller, reference)? {
            return Ok(v.record);
        }
        if caller.is_admin() {
            return self.volume(reference).map_err(|_| not_found());
        }
        // Volumes the caller manages without seeing them in a view do not exist; others neither.
        Err(not_found())
    }

    /// Grants `reference` to `to`. Through the API: the volume's owner (or a member of its team)
    /// with the `share` scope, or an admin; archive volumes only by admins.
    pub fn grant(
        &self,
        by: Option<&Caller>,
        reference: &str,
        to: &Grantee,
        access: Access,
    ) -> Result<()> {
        let record = self.managed(by, reference, Scope::Share)?;
        let (user_id, team_id) = match to {
            Grantee::User(u) => (Some(self.user(u)?.id), None),
            Grantee::Team(t) => (None, Some(self.team_id(t)?)),
        };
        self.store.with(|c| {
            let tx = c.transaction().map_err(CatalogError::db("granting"))?;
            tx.execute(
                "DELETE FROM grants WHERE volume_id = ?1 AND user_id IS ?2 AND team_id IS ?3",
                params![record.id, user_id, team_id],
            )
            .map_err(CatalogError::db("granting"))?;
            tx.execute(
                "INSERT INTO grants (volume_id, user_id, team_id, access, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, user_id, team_id, access.as_str(), now_secs()],
            )
            .map_err(CatalogError::db("granting"))?;
            tx.commit().map_err(CatalogError::db("granting"))
        })?;
        tracing::info!(volume = %record.reference(), to = ?to, access = access.as_str(), "volume granted");
        Ok(())
    }

    /// Takes back a grant; `NotFound` when there was none.
    pub fn revoke(&self, by: Option<&Caller>, reference: &str, from: &Grantee) -> Result<()> {
        let record = self.managed(by, reference, Scope::Share)?;
        let (user_id, team_id) = match from {
            Grantee::User(u) => (Some(self.user(u)?.id), None),
            Grantee::Team(t) => (None, Some(self.team_id(t)?)),
        };
        let removed = self.store.with(|c| {
            c.execute(
                "DELETE FROM grants WHERE volume_id = ?1 AND user_id IS ?2 AND team_id IS ?3",
                params![record.id, user_id, team_id],
            )
            .map_err(CatalogError::db("revoking"))
        })?;
        if removed == 0 {
            return Err(CatalogError::NotFound {
                what: "grant of volume",
                name: reference.chars().take(200).collect(),
            });
        }
        tracing::info!(volume = %record.reference(), from = ?from, "grant revoked");
        Ok(())
    }

    /// The volume, if `by` may manage it with `scope`.
    fn managed(&self, by: Option<&Caller>, reference: &str, scope: Scope) -> Result<VolumeRecord> {
        match by {
            None => self.volume(reference),
            Some(caller) => {
                caller.require(scope)?;
                let record = self.resolve_for(caller, reference)?;
                self.must_manage(caller, &record, reference)?;
                Ok(record)
            }
        }
    }
}
