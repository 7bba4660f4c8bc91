//! `colo selection add|list|copy|remove`: the operator's hands on users' selections — the same
//! catalog calls as the GraphQL mutations `addSelectionToVolume`, `copySelection` and
//! `removeSelection`, made for `--user` (see `Catalog::acting_for`). The files are chosen from the
//! config's published `ivoa.obscore` (the sample's when there is no config), read in this process;
//! a running mount shows the change within its catalog poll.

use crate::cli::SelectionCommand;
use crate::config::{self, Settings, colo_home};
use crate::platform::open_catalog;
use anyhow::{Context, Result};
use colo_catalog::selections::SelectedFile;
use colo_vo_services::selection::{Selection, select_files};
use std::path::PathBuf;

/// The config given, else `./colo.toml`, else the embedded sample (as `colo up` chooses).
async fn settings(config: Option<PathBuf>) -> Result<Settings> {
    match config.or_else(|| Some(PathBuf::from("colo.toml")).filter(|p| p.exists())) {
        Some(path) => Ok(config::load(&path)?),
        None => crate::sample::prepare(&colo_home()).await,
    }
}

pub async fn selection(what: SelectionCommand) -> Result<()> {
    let cat = open_catalog()?;
    match what {
        SelectionCommand::Add {
            name,
            user,
            adql,
            did,
            config,
        } => {
            let by = cat.acting_for(&user)?;
            let settings = settings(config).await?;
            let state =
                colo_vo_services::AppState::open(&settings.services.service, Default::default())
                    .await
                    .context("opening the published tables")?;
            let (query, selection) = match adql {
                Some(q) => (q.clone(), Selection::Adql(q)),
                None => (did.join(" "), Selection::Dids(did)),
            };
            let files: Vec<SelectedFile> = select_files(&state.tap, &state.images, &selection)
                .await
                .with_context(|| format!("selection '{name}'"))?
                .into_iter()
                .map(|f| SelectedFile {
                    volume: f.volume,
                    path: f.path,
                    did: f.did,
                })
                .collect();
            let made = cat.add_selection(&by, &name, &query, &files)?;
            println!(
                "selection {} of {user}: {} file(s) of volume {}, read-only at .users/{user}/{} in the mount",
                made.name,
                made.files.len(),
                made.volume,
                made.name
            );
        }
        SelectionCommand::List { user } => {
            cat.user(&user)?;
            for s in cat.selections(&user)? {
                println!(
                    "{}\t{} file(s)\tvolume {}\t{}",
                    s.name,
                    s.files.len(),
                    s.volume,
                    s.query
                );
            }
        }
        SelectionCommand::Copy {
            name,
            user,
            into,
            folder,
            config,
        } => {
            let by = cat.acting_for(&user)?;
            let volume = cat
                .selections(&user)?
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.volume)
                .with_context(|| format!("{user} has no selection '{name}'"))?;
            let settings = settings(config).await?;
            let spec = settings
                .volumes
                .iter()
                .find(|v| v.name == volume)
                .with_context(|| {
                    format!("the selection's volume '{volume}' is not in the config")
                })?;
            let archive = colo_connectors::open_volume(spec)?.connector;
            let r = cat
                .copy_selection(&by, &name, &into, folder.as_deref(), archive)
                .await?;
            println!(
                "copied {} file(s), {} bytes, into {}/{} ({} there already)",
                r.copied, r.bytes, r.volume, r.folder, r.already_there
            );
        }
        SelectionCommand::Remove { name, user } => {
            let by = cat.acting_for(&user)?;
            cat.remove_selection(&by, &name)?;
            println!("selection {name} of {user} removed (the archive files stay)");
        }
    }
    Ok(())
}
