//! `colo user`, `colo token`, `colo team`, `colo volume`: the operator's hands on the platform's
//! state ([`colo_catalog`], in `$COLO_HOME/colo.db`; stored credentials sealed with
//! `$COLO_SECRET_KEY_FILE`, default `$COLO_HOME/secret.key`). These commands act as the operator
//! (no token): whoever can run them can read the database anyway.

use crate::cli::{CatalogCommand, TeamCommand, TokenCommand, UserCommand, VolumeCommand};
use crate::config::colo_home;
use anyhow::{Context, Result, bail};
use colo_catalog::{Access, Catalog, Grantee, NewToken, Owner, Scopes, VolumeRecord};
use colo_connectors::VolumeConfig;
use std::path::{Path, PathBuf};

/// The catalog of this colo home.
pub fn open_catalog() -> Result<Catalog> {
    let key = std::env::var_os("COLO_SECRET_KEY_FILE").map(PathBuf::from);
    Ok(Catalog::open(&colo_home(), key.as_deref())?)
}

fn date(secs: Option<i64>) -> String {
    match secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
        Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        None => "never".into(),
    }
}

/// The token on a line of its own (for scripts: `colo user add x | sed -n 's/^token: //p'`).
pub fn print_new_token(token: &NewToken) {
    println!("token: {}", token.token);
    println!(
        "  shown once, keep it; scopes: {}; expires: {}; revoke with `colo token revoke {}`",
        token.scopes,
        date(token.expires_at),
        token.id
    );
}

/// On a catalog with no user yet: the user `admin` (an admin), and the lines that give its token
/// (printed once, by `colo up`).
pub fn first_admin(cat: &Catalog) -> Result<Option<String>> {
    if !cat.users()?.is_empty() {
        return Ok(None);
    }
    let (_, token) = cat.add_user("admin", true)?;
    println!("token: {}", token.token);
    Ok(Some(format!(
        "\ncolo: created the admin user 'admin'; its token, shown this once (keep it): {}\n\
         colo: `colo token create --user admin` makes another; `colo user add NAME` adds users\n",
        token.token
    )))
}

pub fn user(what: UserCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        UserCommand::Add { name, admin, uid } => {
            if let Some(uid) = uid {
                // Checked before the user exists, so a bad uid adds nobody.
                if uid < 1000 {
                    bail!("uid {uid}: below 1000 are root and system accounts");
                }
                if let Some(other) = cat.users()?.iter().find(|u| u.uid == uid) {
                    bail!("uid {uid} is {}'s already", other.name);
                }
            }
            let (user, token) = cat.add_user(&name, admin)?;
            if let Some(uid) = uid {
                cat.set_uid(&name, uid)?;
            }
            println!(
                "user {} added{}",
                user.name,
                if admin { " (admin)" } else { "" }
            );
            print_new_token(&token);
        }
        UserCommand::List => {
            println!("{:<24} {:<6} {:<8} CREATED", "NAME", "ADMIN", "UID");
            for u in cat.users()? {
                println!(
                    "{:<24} {:<6} {:<8} {}",
                    u.name,
                    if u.admin { "yes" } else { "no" },
                    u.uid,
                    date(Some(u.created_at))
                );
            }
        }
        UserCommand::Remove { name } => {
            cat.remove_user(&name)?;
            println!("user {name} removed, with their tokens, volumes and grants");
        }
    }
    Ok(())
}

pub fn token(what: TokenCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        TokenCommand::Create {
            user,
            scopes,
            expires_days,
            never_expires,
            label,
        } => {
            let scopes = scopes.as_deref().map(Scopes::parse).transpose()?;
            let expires = (!never_expires).then_some(expires_days);
            print_new_token(&cat.create_token(&user, scopes, expires, &label)?);
        }
        TokenCommand::List { user } => {
            println!(
                "{:<5} {:<16} {:<8} {:<40} {:<17} {:<17} {:<17} LABEL",
                "ID", "USER", "KIND", "SCOPES", "EXPIRES", "REVOKED", "LAST USED"
            );
            for t in cat.tokens(user.as_deref())? {
                println!(
                    "{:<5} {:<16} {:<8} {:<40} {:<17} {:<17} {:<17} {}",
                    t.id,
                    t.user,
                    format!("{:?}", t.kind).to_lowercase(),
                    t.scopes.to_string(),
                    date(t.expires_at),
                    t.revoked_at.map_or("-".into(), |r| date(Some(r))),
                    t.last_used_at.map_or("-".into(), |r| date(Some(r))),
                    t.label
                );
            }
        }
        TokenCommand::Revoke { id } => {
            cat.revoke_token(id, None)?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

pub fn team(what: TeamCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        TeamCommand::Add { name, members } => {
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            cat.add_team(&name, &members)?;
            println!("team {name} added ({} members)", members.len());
        }
    }
    Ok(())
}

/// One `[[volume]]` table from `path` (or the table's keys at the top of the file).
fn read_volume_file(path: &Path) -> Result<VolumeConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    let table = match value.get("volume") {
        Some(toml::Value::Array(list)) if list.len() == 1 => list[0].clone(),
        Some(toml::Value::Array(list)) => {
            bail!(
                "{}: holds {} [[volume]] tables; give one per command",
                path.display(),
                list.len()
            )
        }
        Some(toml::Value::Table(t)) => toml::Value::Table(t.clone()),
        _ => toml::Value::Table(value),
    };
    table.try_into().with_context(|| {
        format!(
            "{}: not a volume table (the keys of colo.toml's [[volume]])",
            path.display()
        )
    })
}

fn print_volume_row(view: &str, access: &str, v: &VolumeRecord) {
    let backend = v.display_url().split("://").next().unwrap_or("");
    let secrets = if v.secret_keys.is_empty() {
        "-".to_string()
    } else {
        v.secret_keys
            .iter()
            .map(|k| format!("{k}=*****"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{:<28} {:<8} {:<7} {:<10} {:<44} {}",
        view,
        v.owner.kind().as_str(),
        backend,
        access,
        v.display_url(),
        secrets
    );
}

pub async fn volume(what: VolumeCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        VolumeCommand::Add {
            from,
            owner,
            team,
            archive,
            public,
            no_check,
        } => {
            let owner = match (owner, team, archive) {
                (Some(u), None, false) => Owner::User(u),
                (None, Some(t), false) => Owner::Team(t),
                (None, None, true) => Owner::Archive,
                _ => bail!("say whose the volume is: --owner USER, --team TEAM or --archive"),
            };
            let config = read_volume_file(&from)?;
            if !no_check {
                colo_catalog::volumes::check_volume_answers(
                    &config,
                    std::time::Duration::from_secs(15),
                )
                .await
                .context("--no-check adds it anyway")?;
            }
            let record = cat.add_volume(None, owner, public, config)?;
            println!("volume {} added", record.reference());
        }
        VolumeCommand::List { user } => {
            println!(
                "{:<28} {:<8} {:<7} {:<10} {:<44} CREDENTIALS",
                "VOLUME", "KIND", "SCHEME", "ACCESS", "URL"
            );
            match user {
                Some(user) => {
                    for v in cat.visible_volumes(&user)? {
                        print_volume_row(&v.view_name, v.access.as_str(), &v.record);
                    }
                }
                None => {
                    for v in cat.all_volumes()? {
                        let mode = if v.writable() {
                            "read-write"
                        } else {
                            "read-only"
                        };
                        print_volume_row(&v.reference(), mode, &v);
                    }
                }
            }
        }
        VolumeCommand::Remove { volume } => {
            cat.remove_volume(None, &volume)?;
            println!("volume {volume} removed");
        }
        VolumeCommand::Grant {
            volume,
            user,
            team,
            read_write,
        } => {
            let to = grantee(user, team)?;
            let access = if read_write {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            cat.grant(None, &volume, &to, access)?;
            println!(
                "volume {volume} granted {} to {}",
                access.as_str(),
                describe(&to)
            );
        }
        VolumeCommand::Revoke { volume, user, team } => {
            let from = grantee(user, team)?;
            cat.revoke(None, &volume, &from)?;
            println!("grant of {volume} to {} revoked", describe(&from));
        }
    }
    Ok(())
}

fn grantee(user: Option<String>, team: Option<String>) -> Result<Grantee> {
    match (user, team) {
        (Some(u), None) => Ok(Grantee::User(u)),
        (None, Some(t)) => Ok(Grantee::Team(t)),
        _ => bail!("say to whom: --user USER or --team TEAM"),
    }
}

fn describe(g: &Grantee) -> String {
    match g {
        Grantee::User(u) => format!("user {u}"),
        Grantee::Team(t) => format!("team {t}"),
    }
}

pub fn catalog(what: CatalogCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        CatalogCommand::Load { files } => {
            for path in files {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (now, removed) = cat.load_mission_file(&name, &text)?;
                println!(
                    "{}: {now} item(s) in the catalogue, {removed} removed",
                    path.display()
                );
            }
        }
        CatalogCommand::Search {
            query,
            limit,
            offset,
            json,
        } => {
            let parsed = colo_catalog::SearchQuery::parse(&query)?;
            let result = cat.search(&parsed, limit, offset)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
            println!("{} item(s)", result.total);
            for item in &result.items {
                println!(
                    "  {:<14} {:<28} {}  [{}]",
                    item.kind.as_str(),
                    item.key,
                    item.title,
                    [&item.mission, &item.instrument, &item.wavelength]
                        .iter()
                        .filter(|v| !v.is_empty())
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (facet, counts) in &result.facets {
                if counts.is_empty() {
                    continue;
                }
                let text: Vec<String> = counts.iter().map(|(v, n)| format!("{v} ({n})")).collect();
                println!("{facet}: {}", text.join(", "));
            }
        }
    }
    Ok(())
}

/// The catalogue items of the sample mission, and one dataset per published TAP table that no
/// mission file describes (source `published`, from the table's descriptor).
pub fn publish_to_catalogue(cat: &Catalog, tables_dir: &Path, sample: bool) -> Result<()> {
    cat.load_mission_file("colo-tools", include_str!("tools.toml"))?;
    if sample {
        cat.load_mission_file("sample", include_str!("sample/catalogue.toml"))?;
    }
    // Every key a mission file (or anything but this derivation) describes: those stay as written.
    let described = cat.item_keys_not_from(colo_catalog::ItemKind::Dataset, "published")?;
    let tables = colo_tap::catalog::discover_tables(tables_dir)?;
    let items: Vec<colo_catalog::CatalogItem> = tables
        .iter()
        .map(|t| &t.descriptor)
        .filter(|d| !described.contains(&d.qualified_name()))
        .map(|d| colo_catalog::CatalogItem {
            kind: colo_catalog::ItemKind::Dataset,
            key: d.qualified_name(),
            title: d.qualified_name(),
            description: d.description.clone(),
            mission: String::new(),
            instrument: String::new(),
            domain: String::new(),
            wavelength: String::new(),
            properties: [
                ("service".to_string(), "tap".to_string()),
                ("rows".to_string(), d.rows.to_string()),
            ]
            .into(),
            source: "published".into(),
        })
        .collect();
    // And one per ObsCore collection of the published images (`ivoa.obscore/<collection>`).
    let manifest = colo_vo_services::obscore::publish::Manifest::read(tables_dir)?;
    let mut collections: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &manifest.records {
        *collections.entry(r.obs_collection.clone()).or_default() += 1;
    }
    let mut items = items;
    for (collection, n) in collections {
        let key = format!("ivoa.obscore/{collection}");
        if described.contains(&key) {
            continue;
        }
        items.push(colo_catalog::CatalogItem {
            kind: colo_catalog::ItemKind::Dataset,
            title: format!("{collection} images"),
            description: format!(
                "{n} image(s) in ivoa.obscore: SIA 2.0, DataLink and SODA cutouts."
            ),
            key,
            mission: String::new(),
            instrument: String::new(),
            domain: String::new(),
            wavelength: String::new(),
            properties: [
                ("service".to_string(), "sia".to_string()),
                ("collection".to_string(), collection),
            ]
            .into(),
            source: "published".into(),
        });
    }
    cat.replace_items("published", &items)?;
    Ok(())
}
