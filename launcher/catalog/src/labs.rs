//! Datalabs as the catalog knows them: who launched which image with which volumes and
//! resources, and who may see or stop a lab. The decisions are made here, like every access
//! decision: the image must be a datalab image of the catalogue, every volume one the user sees
//! (their view names; read-only grants stay read-only in the lab), resources within the image's
//! maximum. Running a lab is the launcher's (`colo-labs`), whose events say how it goes.
//!
//! Image properties used (strings, in the mission TOML's `properties`): `command` (the program
//! and its fixed arguments, split at spaces; an image without it is shown but cannot be
//! launched), `default_cpu` / `max_cpu` (cores), `default_memory_mib` / `max_memory_mib`,
//! `interface` (`jupyter`: a web interface the launcher serves at `/labs/<id>/`),
//! `default_hours` / `max_hours` (how long a lab may run before it expires unless renewed),
//! `idle_timeout_minutes` (web labs: culled after that long unused; never while computing).
//!
//! Per user at once (running labs): at most [`USER_LIMITS`]; a launch beyond is refused naming
//! what is in use.
//!
//! A lab is its owner's; shared with named users, they may open it and see it, and only the owner
//! (or an admin) stops, removes or shares it.

use crate::Catalog;
use crate::auth::{Caller, Scope};
use crate::error::{CatalogError, Result};
use crate::grants::Access;
use crate::items::ItemKind;
use crate::store::now_secs;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Resources when an image names none: one core, 2 GiB; at most 4 cores and 16 GiB.
const DEFAULT_CPU_MILLIS: u32 = 1000;
const DEFAULT_MEMORY_MIB: u64 = 2048;
const MAX_CPU_MILLIS: u32 = 4000;
const MAX_MEMORY_MIB: u64 = 16384;
const MIN_MEMORY_MIB: u64 = 16;
/// A lab's time unless the image says otherwise: 12 hours, at most 7 days; culled after an hour
/// unused. The least anyone may ask for: 10 s (tests ask for seconds).
const DEFAULT_LIFETIME_SECS: u64 = 12 * 3600;
const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;
const DEFAULT_IDLE_SECS: u64 = 3600;
const MIN_SECS: u64 = 10;

/// What one user's running labs may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    pub labs: usize,
    pub cpu_millis: u32,
    pub memory_mib: u64,
}

pub const USER_LIMITS: UserLimits = UserLimits {
    labs: 4,
    cpu_millis: 4000,
    memory_mib: 16384,
};

/// What a user asks for.
#[derive(Debug, Clone, Default)]
pub struct LabRequest {
    pub name: String,
    pub image: String,
    /// View names (as in the user's folder); `None`: all the user's volumes.
    pub volumes: Option<Vec<String>>,
    pub cpu_millis: Option<u32>,
    pub memory_mib: Option<u64>,
    /// Appended to the image's command (a headless runner's script, for one).
    pub args: Vec<String>,
    pub lifetime_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    /// Forget the lab when it ends (headless runs).
    pub remove_when_finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVolume {
    /// The name in the user's folder, and at `/media/data/` in the lab.
    pub view: String,
    pub read_only: bool,
}

/// What the launcher runs: decided, checked, recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    pub user: String,
    pub uid: u32,
    pub command: Vec<String>,
    pub volumes: Vec<PlannedVolume>,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    /// The image's web interface (`jupyter`), if it has one.
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub lifetime_secs: u64,
    /// Web labs: culled after this long unused.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    #[serde(default)]
    pub remove_when_finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRecord {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub image: String,
    pub plan: LabPlan,
    pub created_at: i64,
    /// The users it is shared with.
    pub shared_with: Vec<String>,
}

/// How a caller may use a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabRole {
    Owner,
    Shared,
    Admin,
}

fn cores_to_millis(text: &str) -> Option<u32> {
    let cores: f64 = text.trim().parse().ok()?;
    (cores > 0.0 && cores <= 1024.0).then(|| (cores * 1000.0).round() as u32)
}

impl Catalog {
    /// The lab `req` asks for, as `by` may have it; each refusal says what to change.
    pub fn plan_lab(&self, by: &Caller, req: &LabRequest) -> Result<LabPlan> {
        by.require(Scope::Labs)?;
        let bad = |detail: String| CatalogError::BadRequest { detail };
        let name_ok = !req.name.trim().is_empty()
            && req.name.chars().count() <= 64
            && !req.name.chars().any(char::is_control);
        if !name_ok {
            return Err(bad(
                "a lab's name: 1-64 characters, no control characters".into()
            ));
        }
        let image = self
            .item(ItemKind::DatalabImage, &req.image)?
            .ok_or_else(|| CatalogError::NotFound {
                what: "datalab image",
                name: req.image.chars().take(200).collect(),
            })?;
        let property = |k: &str| image.properties.get(k).map(String::as_str);
        let mut command: Vec<String> = property("command")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if command.is_empty() {
            return Err(bad(format!(
                "datalab image '{}' has no command: the operator describes how to start it (property 'command')",
                image.key
            )));
        }
        command.extend(req.args.iter().cloned());
        let max_cpu = property("max_cpu")
            .and_then(cores_to_millis)
            .unwrap_or(MAX_CPU_MILLIS);
        let max_mib = property("max_memory_mib")
            .and_then(|m| m.parse().ok())
            .unwrap_or(MAX_MEMORY_MIB);
        let cpu_millis = req
            .cpu_millis
            .or_else(|| property("default_cpu").and_then(cores_to_millis))
            .unwrap_or(DEFAULT_CPU_MILLIS);
        let memory_mib = req
            .memory_mib
            .or_else(|| property("default_memory_mib").and_then(|m| m.parse().ok()))
            .unwrap_or(DEFAULT_MEMORY_MIB);
        if !(10..=max_cpu).contains(&cpu_millis) {
            return Err(bad(format!(
                "cpu {cpu_millis} millicores: image '{}' allows 10 to {max_cpu}",
                image.key
            )));
        }
        if !(MIN_MEMORY_MIB..=max_mib).contains(&memory_mib) {
            return Err(bad(format!(
                "memory {memory_mib} MiB: image '{}' allows {MIN_MEMORY_MIB} to {max_mib}",
                image.key
            )));
        }
        let hours = |k: &str| {
            property(k)
                .and_then(|h| h.trim().parse::<f64>().ok())
                .filter(|h| *h > 0.0)
                .map(|h| (h * 3600.0) as u64)
        };
        let max_lifetime = hours("max_hours").unwrap_or(MAX_LIFETIME_SECS);
        let lifetime_secs = req
            .lifetime_secs
            .or_else(|| hours("default_hours"))
            .unwrap_or(DEFAULT_LIFETIME_SECS.min(max_lifetime));
        if !(MIN_SECS..=max_lifetime).contains(&lifetime_secs) {
            return Err(bad(format!(
                "lifetime {lifetime_secs} s: image '{}' allows {MIN_SECS} to {max_lifetime}",
                image.key
            )));
        }
        let interface = property("interface").map(str::to_string);
        let idle_timeout_secs = match &interface {
            None => None,
            Some(_) => {
                let idle = req.idle_timeout_secs.unwrap_or_else(|| {
                    property("idle_timeout_minutes")
                        .and_then(|m| m.parse::<u64>().ok())
                        .map_or(DEFAULT_IDLE_SECS, |m| m * 60)
                });
                if idle < MIN_SECS {
                    return Err(bad(format!("idle timeout {idle} s: at least {MIN_SECS}")));
                }
                Some(idle)
            }
        };
        let mut seen: Vec<PlannedVolume> = self
            .visible_volumes(&by.user.name)?
            .into_iter()
            .map(|v| PlannedVolume {
                view: v.view_name,
                read_only: v.access != Access::ReadWrite,
            })
            .collect();
        seen.extend(
            self.selections(&by.user.name)?
                .into_iter()
                .map(|s| PlannedVolume {
                    view: s.name,
                    read_only: true,
                }),
        );
        let volumes = match &req.volumes {
            None => seen,
            Some(wanted) => {
                let mut chosen = Vec::new();
                for w in wanted {
                    let v = seen.iter().find(|v| &v.view == w).ok_or_else(|| {
                        CatalogError::NotFound {
                            what: "volume",
                            name: w.chars().take(200).collect(),
                        }
                    })?;
                    if !chosen.contains(v) {
                        chosen.push(v.clone());
                    }
                }
                chosen
            }
        };
        Ok(LabPlan {
            user: by.user.name.clone(),
            uid: by.user.uid,
            command,
            volumes,
            cpu_millis,
            memory_bytes: memory_mib << 20,
            interface,
            lifetime_secs,
            idle_timeout_secs,
            remove_when_finished: req.remove_when_finished,
        })
    }

    /// Plans and records a new lab of `by`'s (the launcher then starts it). `running` says which
    /// of the user's labs run now (the launcher knows): with the new one they must stay within
    /// [`USER_LIMITS`], and no two of them may share a name.
    pub fn add_lab(
        &self,
        by: &Caller,
        req: &LabRequest,
        running: &dyn Fn(&str) -> bool,
    ) -> Result<LabRecord> {
        let plan = self.plan_lab(by, req)?;
        let mine: Vec<LabRecord> = self
            .labs(by)?
            .into_iter()
            .filter(|l| l.owner == by.user.name && running(&l.id))
            .collect();
        if mine.iter().any(|l| l.name == req.name) {
            return Err(CatalogError::Exists {
                what: "running lab",
                name: req.name.chars().take(64).collect(),
            });
        }
        let cpu: u32 = mine.iter().map(|l| l.plan.cpu_millis).sum::<u32>() + plan.cpu_millis;
        let mib: u64 =
            mine.iter().map(|l| l.plan.memory_bytes >> 20).sum::<u64>() + (plan.memory_bytes >> 20);
        let limits = USER_LIMITS;
        if mine.len() + 1 > limits.labs || cpu > limits.cpu_millis || mib > limits.memory_mib {
            return Err(CatalogError::BadRequest {
                detail: format!(
                    "over your limit: with this lab, {} labs, {cpu} millicores, {mib} MiB running                      (at most {} labs, {} millicores, {} MiB at once); stop one first",
                    mine.len() + 1,
                    limits.labs,
                    limits.cpu_millis,
                    limits.memory_mib
                ),
            });
        }
        let mut random = [0u8; 6];
        crate::sealing::fill_random(&mut random)?;
        let id = format!(
            "lab-{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let spec = serde_json::to_string(&plan).map_err(|e| CatalogError::BadRequest {
            detail: e.to_string(),
        })?;
        let created_at = now_secs();
        self.store.with(|c| {
            c.execute(
                "INSERT INTO labs (id, owner_user_id, name, image, spec, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, by.user.id, req.name, req.image, spec, created_at],
            )
            .map_err(CatalogError::db("recording a lab"))
        })?;
        tracing::info!(user = %by.user.name, lab = %id, image = %req.image, "lab recorded");
        Ok(LabRecord {
            id,
            owner: by.user.name.clone(),
            name: req.name.clone(),
            image: req.image.clone(),
            plan,
            created_at,
            shared_with: Vec::new(),
        })
    }

    fn read_labs(&self, filter: &str, arg: rusqlite::types::Value) -> Result<Vec<LabRecord>> {
        self.store.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT l.id, u.name, l.name, l.image, l.spec, l.created_at
                     FROM labs l JOIN users u ON u.id = l.owner_user_id {filter}
                     ORDER BY l.created_at DESC, l.id"
                ))
                .map_err(CatalogError::db("listing labs"))?;
            let rows = st
                .query_map([arg], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(CatalogError::db("listing labs"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing labs"))?;
            rows.into_iter()
                .map(|(id, owner, name, image, spec, created_at)| {
                    let plan =
                        serde_json::from_str(&spec).map_err(|e| CatalogError::BadRequest {
                            detail: format!("lab {id}: stored plan unreadable: {e}"),
                        })?;
                    let mut st = c
                        .prepare(
                            "SELECT u.name FROM lab_shares s JOIN users u ON u.id = s.user_id
                             WHERE s.lab_id = ?1 ORDER BY u.name",
                        )
                        .map_err(CatalogError::db("listing labs"))?;
                    let shared_with = st
                        .query_map([&id], |r| r.get(0))
                        .map_err(CatalogError::db("listing labs"))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                        .map_err(CatalogError::db("listing labs"))?;
                    Ok(LabRecord {
                        id,
                        owner,
                        name,
                        image,
                        plan,
                        created_at,
                        shared_with,
                    })
                })
                .collect()
        })
    }

    /// The labs `by` may see: their own and those shared with them (an admin: everyone's),
    /// newest first.
    pub fn labs(&self, by: &Caller) -> Result<Vec<LabRecord>> {
        by.require(Scope::Labs)?;
        if by.is_admin() {
            self.read_labs("WHERE ?1 = ?1", 0.into())
        } else {
            self.read_labs(
                "WHERE l.owner_user_id = ?1
                 OR l.id IN (SELECT lab_id FROM lab_shares WHERE user_id = ?1)",
                by.user.id.into(),
            )
        }
    }

    /// How `by` may use the lab `id` (`None`: not at all, whether it exists or not).
    pub fn lab_role(&self, by: &Caller, id: &str) -> Result<Option<(LabRecord, LabRole)>> {
        let Some(lab) = self.labs(by)?.into_iter().find(|l| l.id == id) else {
            return Ok(None);
        };
        let role = if lab.owner == by.user.name {
            LabRole::Owner
        } else if lab.shared_with.contains(&by.user.name) {
            LabRole::Shared
        } else {
            LabRole::Admin
        };
        Ok(Some((lab, role)))
    }

    /// The lab `id` if `by` owns it or is an admin (what stopping, removing and sharing need).
    pub fn managed_lab(&self, by: &Caller, id: &str) -> Result<LabRecord> {
        match self.lab_role(by, id)? {
            Some((lab, LabRole::Owner | LabRole::Admin)) => Ok(lab),
            Some((_, LabRole::Shared)) => Err(CatalogError::Forbidden {
                reason: format!("lab '{id}' is shared with you; only its owner may change it"),
            }),
            None => Err(CatalogError::NotFound {
                what: "lab",
                name: id.chars().take(64).collect(),
            }),
        }
    }

    /// Shares `by`'s lab `id` with `user` (who may then open and see it).
    pub fn share_lab(&self, by: &Caller, id: &str, user: &str) -> Result<LabRecord> {
        by.require(Scope::Share)?;
        let lab = self.managed_lab(by, id)?;
        let with = self.user(user)?;
        if with.name == lab.owner {
            return Err(CatalogError::BadRequest {
                detail: format!("{user} owns lab '{id}'"),
            });
        }
        self.store.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO lab_shares (lab_id, user_id) VALUES (?1, ?2)",
                params![lab.id, with.id],
            )
            .map_err(CatalogError::db("sharing a lab"))
        })?;
        tracing::info!(lab = %lab.id, with = user, "lab shared");
        self.managed_lab(by, id)
    }

    /// Takes a share back; the user's next request to the lab is refused.
    pub fn unshare_lab(&self, by: &Caller, id: &str, user: &str) -> Result<LabRecord> {
        by.require(Scope::Share)?;
        let lab = self.managed_lab(by, id)?;
        let with = self.user(user)?;
        let removed = self.store.with(|c| {
            c.execute(
                "DELETE FROM lab_shares WHERE lab_id = ?1 AND user_id = ?2",
                params![lab.id, with.id],
            )
            .map_err(CatalogError::db("unsharing a lab"))
        })?;
        if removed == 0 {
            return Err(CatalogError::NotFound {
                what: "share of lab with",
                name: user.chars().take(64).collect(),
            });
        }
        tracing::info!(lab = %lab.id, with = user, "lab unshared");
        self.managed_lab(by, id)
    }

    /// The lab `id`, if `by` may see it (anything else is `NotFound`, whether it exists or not).
    pub fn lab(&self, by: &Caller, id: &str) -> Result<LabRecord> {
        self.labs(by)?
            .into_iter()
            .find(|l| l.id == id)
            .ok_or_else(|| CatalogError::NotFound {
                what: "lab",
                name: id.chars().take(64).collect(),
            })
    }

    /// Every recorded lab (the launcher, at start, to tell which of its leftovers are known).
    pub fn all_labs(&self) -> Result<Vec<LabRecord>> {
        self.read_labs("WHERE ?1 = ?1", 0.into())
    }

    /// Whether the lab `id` is recorded at all (whoever's it is: for the launcher's own use, never
    /// to answer a caller).
    pub fn lab_is_recorded(&self, id: &str) -> Result<bool> {
        Ok(!self
            .read_labs("WHERE l.id = ?1", id.to_string().into())?
            .is_empty())
    }

    /// Forgets the lab `id` (the launcher's: a lab that was to be removed when finished).
    pub fn forget_lab(&self, id: &str) -> Result<()> {
        self.store.with(|c| {
            c.execute("DELETE FROM labs WHERE id = ?1", [id])
                .map_err(CatalogError::db("removing a lab"))
        })?;
        Ok(())
    }

    /// Forgets the lab `id` of `by`'s (the launcher stops it first).
    pub fn remove_lab(&self, by: &Caller, id: &str) -> Result<()> {
        let lab = self.managed_lab(by, id)?;
        self.store.with(|c| {
            c.execute("DELETE FROM labs WHERE id = ?1", [&lab.id])
                .optional()
                .map_err(CatalogError::db("removing a lab"))
        })?;
        Ok(())
    }
}
