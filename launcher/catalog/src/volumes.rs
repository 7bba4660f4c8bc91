//! Volumes as data: archive volumes (the operator's, public or granted), user volumes (private to
//! their owner: "+ add custom") and team volumes, each stored as its `[[volume]]` table without
//! secrets plus the secrets sealed apart ([`crate::sealing`]).
//!
//! Who may add what: the operator's CLI anything; through the API an admin adds archive volumes, a
//! user with the `volumes` scope their own, a team member their team's. A volume added through the
//! API may not reach into the server: `file://` URLs, `key_file` and secrets read from the
//! server's environment or files are the operator's alone (an admin's too), otherwise a user could
//! mount `/etc` or the operator's SSH key. A user volume may not take the name of an archive
//! volume (those names are public; other users' names are not compared, so nothing leaks).
//!
//! References: an archive volume by its name, a user or team volume as `owner/name`; a caller may
//! also name their own volume bare, or any volume they see by its name in their view
//! ([`crate::grants`]: `name@owner`).

use crate::Catalog;
use crate::auth::{Caller, Scope};
use crate::error::{CatalogError, Result};
use crate::store::now_secs;
use colo_connectors::spec::valid_volume_name;
use colo_connectors::{SecretSource, SecretString, VolumeConfig, VolumeSpec};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    Archive,
    User,
    Team,
}

impl VolumeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeKind::Archive => "archive",
            VolumeKind::User => "user",
            VolumeKind::Team => "team",
        }
    }
}

/// Whose a volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Archive,
    User(String),
    Team(String),
}

impl Owner {
    pub fn kind(&self) -> VolumeKind {
        match self {
            Owner::Archive => VolumeKind::Archive,
            Owner::User(_) => VolumeKind::User,
            Owner::Team(_) => VolumeKind::Team,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Owner::Archive => None,
            Owner::User(n) | Owner::Team(n) => Some(n),
        }
    }
}

/// A stored volume, without its secrets.
#[derive(Debug, Clone)]
pub struct VolumeRecord {
    pub id: i64,
    pub name: String,
    pub owner: Owner,
    /// Archive volumes: seen read-only by every user.
    pub public: bool,
    /// The `[[volume]]` table with every secret left out.
    pub config: VolumeConfig,
    /// Which secrets are stored (sealed): key names only.
    pub secret_keys: Vec<&'static str>,
    /// An archive volume of the operator's config, mounted from there.
    pub from_config: bool,
    pub created_at: i64,
}

impl VolumeRecord {
    /// How a volume is named in commands: `name` for archive volumes, `owner/name` otherwise.
    pub fn reference(&self) -> String {
        match self.owner.name() {
            None => self.name.clone(),
            Some(owner) => format!("{owner}/{}", self.name),
        }
    }

    /// The URL as shown to people (no password in it: passwords are stored apart).
    pub fn display_url(&self) -> &str {
        self.config.url.as_deref().unwrap_or("")
    }

    /// `read-write` when the volume's config says so; user and team volumes default to it.
    pub fn writable(&self) -> bool {
        match self.config.mode.as_deref() {
            Some(m) => m == "read-write",
            None => self.owner.kind() != VolumeKind::Archive,
        }
    }
}

/// The secrets of a volume, as sealed.
#[derive(Default, Serialize, Deserialize)]
struct Secrets {
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
}

fn seal_context(id: i64) -> Vec<u8> {
    format!("colo volume {id}").into_bytes()
}

const COLUMNS: &str = "v.id, v.name, v.kind, u.name, t.name, v.public, v.config, v.sealed_secrets IS NOT NULL, v.created_at, v.from_config";
const FROM: &str = "FROM volumes v LEFT JOIN users u ON u.id = v.owner_user_id LEFT JOIN teams t ON t.id = v.owner_team_id";

type Row = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    String,
    bool,
    i64,
    bool,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

impl Catalog {
    /// Every check of [`Self::add_volume`] that needs no database write: the name, who may add
    /// it, what an API caller may not reach, and the checks of colo.toml's volumes (scheme, keys,
    /// URL). Returns the config to probe (secrets included).
    pub fn validate_volume(
        &self,
        by: Option<&Caller>,
        owner: &Owner,
        public: bool,
        config: &VolumeConfig,
    ) -> Result<VolumeConfig> {
        let name = config.name.clone().unwrap_or_default();
        let bad = |detail: String| CatalogError::BadVolume {
            volume: name.chars().take(64).collect(),
            detail,
        };
        if !valid_volume_name(&name) {
            return Err(CatalogError::BadName {
                what: "volume",
                name: name.chars().take(64).collect(),
                rule: "1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'",
            });
        }
        if let Some(caller) = by {
            self.may_add(caller, owner)?;
            if !caller.is_admin() {
                reach_check(config).map_err(bad)?;
            }
        }
        if owner.kind() != VolumeKind::Archive && public {
            return Err(bad(
                "only archive volumes can be public; share others with grants".into(),
            ));
        }
        VolumeSpec::from_config(config).map_err(|e| bad(e.to_string()))?;
        Ok(config.clone())
    }

    /// Adds a volume for `owner`. `by` is the caller through the API, `None` for the operator's
    /// CLI. The volume is checked the way `colo.toml` volumes are (scheme, keys, URL), its secrets
    /// sealed, the rest stored.
    pub fn add_volume(
        &self,
        by: Option<&Caller>,
        owner: Owner,
        public: bool,
        config: VolumeConfig,
    ) -> Result<VolumeRecord> {
        let mut config = self.validate_volume(by, &owner, public, &config)?;
        let name = config.name.clone().unwrap_or_default();
        let bad = |detail: String| CatalogError::BadVolume {
            volume: name.chars().take(64).collect(),
            detail,
        };
        let spec = VolumeSpec::from_config(&config).map_err(|e| bad(e.to_string()))?;
        let mut secrets = Secrets {
            secret_access_key: resolve(&config.secret_access_key).map_err(bad)?,
            password: resolve(&config.password).map_err(bad)?,
            private_key: resolve(&config.private_key).map_err(bad)?,
        };
        if let Some(url) = config.url.as_deref()
            && let Ok(mut parsed) = url::Url::parse(url)
            && let Some(password) = parsed.password()
        {
            let password = percent_decode(password);
            secrets.password.get_or_insert(password);
            let _ = parsed.set_password(None);
            config.url = Some(parsed.to_string());
        }
        config.secret_access_key = None;
        config.password = None;
        config.private_key = None;
        let json =
            serde_json::to_string(&config).map_err(|e| bad(format!("cannot store it: {e}")))?;
        let (user_id, team_id) = match &owner {
            Owner::Archive => (None, None),
            Owner::User(u) => (Some(self.user(u)?.id), None),
            Owner::Team(t) => (None, Some(self.team_id(t)?)),
        };
        let has_secrets = secrets.secret_access_key.is_some()
            || secrets.password.is_some()
            || secrets.private_key.is_some();
        let plain =
            serde_json::to_vec(&secrets).map_err(|e| bad(format!("cannot store it: {e}")))?;
        let created_at = now_secs();
        let id = self.store.with(|c| {
            let tx = c.transaction().map_err(CatalogError::db("adding a volume"))?;
            if owner.kind() != VolumeKind::Archive {
                let archive_name: bool = tx
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM volumes WHERE kind = 'archive' AND name = ?1)",
                        [&name],
                        |r| r.get(0),
                    )
                    .map_err(CatalogError::db("checking a volume name"))?;
                if archive_name {
                    return Err(CatalogError::Exists {
                        what: "archive volume",
                        name: name.clone(),
                    });
                }
            }
            let inserted = tx.execute(
                "INSERT INTO volumes (name, kind, owner_user_id, owner_team_id, public, config, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![name, owner.kind().as_str(), user_id, team_id, public, json, created_at],
            );
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(CatalogError::Exists {
                        what: "volume",
                        name: name.clone(),
                    });
                }
                other => other.map_err(CatalogError::db("adding a volume"))?,
            };
            let id = tx.last_insert_rowid();
            if has_secrets {
                let sealed = self.key.seal(&seal_context(id), &plain)?;
                tx.execute("UPDATE volumes SET sealed_secrets = ?1 WHERE id = ?2", params![sealed, id])
                    .map_err(CatalogError::db("storing a volume's credentials"))?;
            }
            tx.commit().map_err(CatalogError::db("adding a volume"))?;
            Ok(id)
        })?;
        tracing::info!(volume = %name, owner = ?owner, backend = spec.backend_name(), "volume added");
        self.volume_by_id(id)
    }

    fn may_add(&self, caller: &Caller, owner: &Owner) -> Result<()> {
        match owner {
            Owner::Archive => caller.require(Scope::Admin),
            _ if caller.is_admin() => Ok(()),
            Owner::User(u) => {
                caller.require(Scope::Volumes)?;
                if *u == caller.user.name {
                    Ok(())
                } else {
                    Err(CatalogError::Forbidden {
                        reason: "a user adds volumes for themselves only".into(),
                    })
                }
            }
            Owner::Team(t) => {
                caller.require(Scope::Volumes)?;
                if self.is_member(caller.user.id, t)? {
                    Ok(())
                } else {
                    Err(CatalogError::NotFound {
                        what: "team",
                        name: t.clone(),
                    })
                }
            }
        }
    }

    pub(crate) fn is_member(&self, user_id: i64, team: &str) -> Result<bool> {
        self.store.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id
                 WHERE t.name = ?1 AND m.user_id = ?2)",
                params![team, user_id],
                |r| r.get(0),
            )
            .map_err(CatalogError::db("reading a team"))
        })
    }

    pub(crate) fn volume_by_id(&self, id: i64) -> Result<VolumeRecord> {
        let row = self.store.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} {FROM} WHERE v.id = ?1"),
                [id],
                read_row,
            )
            .optional()
            .map_err(CatalogError::db("reading a volume"))
        })?;
        let row = row.ok_or_else(|| CatalogError::NotFound {
            what: "volume",
            name: id.to_string(),
        })?;
        self.record(row)
    }

    fn record(&self, row: Row) -> Result<VolumeRecord> {
        let (id, name, kind, user, team, public, json, sealed, created_at, from_config) = row;
        let owner = match (kind.as_str(), user, team) {
            ("user", Some(u), _) => Owner::User(u),
            ("team", _, Some(t)) => Owner::Team(t),
            _ => Owner::Archive,
        };
        let config: VolumeConfig =
            serde_json::from_str(&json).map_err(|e| CatalogError::BadVolume {
                volume: name.clone(),
                detail: format!("the stored definition does not read back: {e}"),
            })?;
        let secret_keys = if sealed {
            let s = self.secrets(id, &name)?;
            [
                ("secret_access_key", s.secret_access_key.is_some()),
                ("password", s.password.is_some()),
                ("private_key", s.private_key.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, present)| present.then_some(k))
            .collect()
        } else {
            Vec::new()
        };
        Ok(VolumeRecord {
            id,
            name,
            owner,
            public,
            config,
            secret_keys,
            from_config,
            created_at,
        })
    }

    fn secrets(&self, id: i64, name: &str) -> Result<Secrets> {
        let sealed: Option<Vec<u8>> = self.store.with(|c| {
            c.query_row(
                "SELECT sealed_secrets FROM volumes WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(CatalogError::db("reading a volume's credentials"))
        })?;
        let Some(sealed) = sealed else {
            return Ok(Secrets::default());
        };
        let plain =
            self.key
                .open(&seal_context(id), &sealed)
                .ok_or_else(|| CatalogError::Unseal {
                    volume: name.to_string(),
                })?;
        serde_json::from_slice(&plain).map_err(|_| CatalogError::Unseal {
            volume: name.to_string(),
        })
    }

    /// The volume's full `[[volume]]` table, secrets included: only for opening the volume
    /// (never for showing).
    pub fn volume_config_with_secrets(&self, record: &VolumeRecord) -> Result<VolumeConfig> {
        let secrets = self.secrets(record.id, &record.name)?;
        let mut config = record.config.clone();
        config.secret_access_key = secrets
            .secret_access_key
            .map(|s| SecretSource::Inline(SecretString::new(s)));
        config.password = secrets
            .password
            .map(|s| SecretSource::Inline(SecretString::new(s)));
        config.private_key = secrets
            .private_key
            .map(|s| SecretSource::Inline(SecretString::new(s)));
        if config.mode.is_none() {
            config.mode = Some(
                if record.writable() {
                    "read-write"
                } else {
                    "read-only"
                }
                .into(),
            );
        }
        Ok(config)
    }

    /// Every stored volume (operator's listing).
    pub fn all_volumes(&self) -> Result<Vec<VolumeRecord>> {
        let rows = self.store.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {COLUMNS} {FROM} ORDER BY v.kind, u.name, t.name, v.name"
                ))
                .map_err(CatalogError::db("listing volumes"))?;
            st.query_map([], read_row)
                .map_err(CatalogError::db("listing volumes"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("listing volumes"))
        })?;
        rows.into_iter().map(|r| self.record(r)).collect()
    }

    /// The volume `reference` names, as the operator sees it: `name` (archive) or `owner/name`.
    pub fn volume(&self, reference: &str) -> Result<VolumeRecord> {
        let (owner, name) = match reference.split_once('/') {
            Some((o, n)) => (Some(o), n),
            None => (None, reference),
        };
        let row = self.store.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {COLUMNS} {FROM} WHERE v.name = ?1 AND
                     ((?2 IS NULL AND v.kind = 'archive') OR u.name = ?2 OR t.name = ?2)"
                ),
                params![name, owner],
                read_row,
            )
            .optional()
            .map_err(CatalogError::db("reading a volume"))
        })?;
        let row = row.ok_or_else(|| CatalogError::NotFound {
            what: "volume",
            name: reference.chars().take(200).collect(),
        })?;
        self.record(row)
    }

    /// Removes a volume (and its grants). Through the API: its owner, a member of its team, or an
    /// admin; anyone else learns only that there is no such volume.
    pub fn remove_volume(&self, by: Option<&Caller>, reference: &str) -> Result<()> {
        let record = match by {
            None => self.volume(reference)?,
            Some(caller) => {
                caller.require(Scope::Volumes)?;
                let record = self.resolve_for(caller, reference)?;
                self.must_manage(caller, &record, reference)?;
                record
            }
        };
        self.store.with(|c| {
            c.execute("DELETE FROM volumes WHERE id = ?1", [record.id])
                .map_err(CatalogError::db("removing a volume"))
        })?;
        tracing::info!(volume = %record.reference(), "volume removed");
        Ok(())
    }

    /// `NotFound` (never `Forbidden`: existence is not told) unless `caller` may manage `record`.
    pub(crate) fn must_manage(
        &self,
        caller: &Caller,
        record: &VolumeRecord,
        reference: &str,
    ) -> Result<()> {
        let manages = caller.is_admin()
            || match &record.owner {
                Owner::Archive => false,
                Owner::User(u) => *u == caller.user.name,
                Owner::Team(t) => self.is_member(caller.user.id, t)?,
            };
        if manages {
            Ok(())
        } else if record.owner == Owner::Archive {
            Err(CatalogError::Forbidden {
                reason: "archive volumes are managed by admins".into(),
            })
        } else {
            Err(CatalogError::NotFound {
                what: "volume",
                name: reference.chars().take(200).collect(),
            })
        }
    }
}

/// What a volume added through the API may not do: reach into the server running colo.
fn reach_check(config: &VolumeConfig) -> Result<(), String> {
    let url = config.url.as_deref().unwrap_or("");
    if url.trim_start().to_ascii_lowercase().starts_with("file:") {
        return Err("file:// volumes are folders of the server: only an admin adds them".into());
    }
    if config.key_file.is_some() {
        return Err("key_file names a file on the server: only an admin may use it".into());
    }
    for (key, source) in [
        ("secret_access_key", &config.secret_access_key),
        ("password", &config.password),
        ("private_key", &config.private_key),
    ] {
        if matches!(
            source,
            Some(SecretSource::Env { .. } | SecretSource::File { .. })
        ) {
            return Err(format!(
                "{key} must be given as a value: the server's environment and files are not yours to read"
            ));
        }
    }
    Ok(())
}

fn resolve(source: &Option<SecretSource>) -> Result<Option<String>, String> {
    source
        .as_ref()
        .map(|s| s.resolve().map(|v| v.expose().to_string()))
        .transpose()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Lists the volume's top folder, so a wrong URL or password is said when the volume is added and
/// not at the first `ls` in a datalab. The error names the volume and is redacted of its secrets.
pub async fn check_volume_answers(
    config: &VolumeConfig,
    timeout: std::time::Duration,
) -> Result<()> {
    let name: String = config
        .name
        .clone()
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect();
    let bad = |detail: String| CatalogError::BadVolume {
        volume: name.clone(),
        detail,
    };
    let spec = VolumeSpec::from_config(config).map_err(|e| bad(e.to_string()))?;
    let opened = colo_connectors::open_volume(&spec).map_err(|e| bad(e.to_string()))?;
    let listed = tokio::time::timeout(
        timeout,
        opened.connector.list(&colo_connectors::ObjectPath::root()),
    )
    .await;
    match listed {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(bad(format!(
            "{} does not answer: {}; nothing was added",
            spec.display_url,
            opened.redactor.redact(&e.to_string())
        ))),
        Err(_) => Err(bad(format!(
            "{} gave no answer within {} s; nothing was added",
            spec.display_url,
            timeout.as_secs()
        ))),
    }
}

impl Catalog {
    /// Mirrors the operator's config volumes as public archive volumes (`names_urls`: name and
    /// display URL, no secret): added if new, their URL kept current, and those no longer in the
    /// config removed. An archive volume of the same name added otherwise is left alone.
    pub fn sync_config_volumes(&self, names_urls: &[(String, String)]) -> Result<()> {
        let now = now_secs();
        self.store.with(|c| {
            let tx = c
                .transaction()
                .map_err(CatalogError::db("recording the config's volumes"))?;
            let names: Vec<&str> = names_urls.iter().map(|(n, _)| n.as_str()).collect();
            let stale: Vec<(i64, String)> = {
                let mut st = tx
                    .prepare("SELECT id, name FROM volumes WHERE from_config = 1")
                    .map_err(CatalogError::db("recording the config's volumes"))?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(CatalogError::db("recording the config's volumes"))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(CatalogError::db("recording the config's volumes"))?
            };
            for (id, name) in stale {
                if !names.contains(&name.as_str()) {
                    tx.execute("DELETE FROM volumes WHERE id = ?1", [id])
                        .map_err(CatalogError::db("recording the config's volumes"))?;
                }
            }
            for (name, url) in names_urls {
                let config = VolumeConfig {
                    name: Some(name.clone()),
                    url: Some(url.clone()),
                    mode: Some("read-only".into()),
                    ..Default::default()
                };
                let json = serde_json::to_string(&config).map_err(|e| CatalogError::BadVolume {
                    volume: name.clone(),
                    detail: e.to_string(),
                })?;
                tx.execute(
                    "INSERT INTO volumes (name, kind, public, config, created_at, from_config)
                     VALUES (?1, 'archive', 1, ?2, ?3, 1)
                     ON CONFLICT (name) WHERE kind = 'archive'
                     DO UPDATE SET config = excluded.config WHERE volumes.from_config = 1",
                    params![name, json, now],
                )
                .map_err(CatalogError::db("recording the config's volumes"))?;
            }
            tx.commit()
                .map_err(CatalogError::db("recording the config's volumes"))
        })
    }
}
