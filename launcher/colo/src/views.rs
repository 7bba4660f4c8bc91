//! The mount follows the data: every user of the catalog has a folder `<mount root>/.users/<user>/`
//! holding exactly the volumes they may see ([`colo_catalog::Catalog::visible_volumes`]), kept in
//! step with the catalog while the mount serves — a volume added, granted, revoked or removed
//! (through the API in this process, or `colo volume …` in another) appears or disappears within
//! [`POLL`], without a remount.
//!
//! What a view holds: the operator's volumes from the config, read-only, under their names (they
//! are the archive everyone reads), then the catalog's volumes under their view names (a catalog
//! volume whose name is taken by a config volume shows as `name@owner`, `name@archive`). Each
//! catalog volume is opened once (one connector, one read-through layer over the shared block
//! cache, one write-back area under `<cache>/write-back/catalog-<id>` when writable) and shared by
//! every view of it; a read-only grant is a view without the write-back.
//!
//! [`plan`] is the decision (which views to detach and which to attach), a plain function tested
//! on its own; [`ViewSync`] does it against the core and tells the kernel what to forget.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use colo_cache::{FetchBudget, ReadThrough, TieredCache, WriteBack};
use colo_catalog::selections::SelectionRecord;
use colo_catalog::{Access, Catalog, Owner, VisibleVolume};
use colo_connectors::selection::SelectionConnector;
use colo_connectors::{VolumeSpec, open_volume};
use colo_vfs::{KernelInvalidator, VfsCore, VolumeMount};

use crate::config::Settings;
use crate::stack::Stack;

/// How often the catalog is checked for changes made by other processes.
pub const POLL: Duration = Duration::from_millis(100);

/// One entry a user's folder should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub user: String,
    pub view: String,
    /// What the entry is built from: `config:<name>`, or `<volume id>:<access>:<created>`, then
    /// `#<uid>` (the account its files show as owned by: a changed uid rebuilds the view).
    pub key: String,
    pub uid: u32,
}

/// What to change so that the attached views (`current`: (user, view) → key) become `wanted`:
/// the (user, view) pairs to detach, then the entries to attach. An entry whose key changed is
/// detached and attached anew.
pub fn plan(
    current: &BTreeMap<(String, String), String>,
    wanted: &[Wanted],
) -> (Vec<(String, String)>, Vec<Wanted>) {
    let want: BTreeMap<(String, String), &str> = wanted
        .iter()
        .map(|w| ((w.user.clone(), w.view.clone()), w.key.as_str()))
        .collect();
    let detach = current
        .iter()
        .filter(|(k, key)| want.get(*k) != Some(&key.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    let attach = wanted
        .iter()
        .filter(|w| current.get(&(w.user.clone(), w.view.clone())) != Some(&w.key))
        .cloned()
        .collect();
    (detach, attach)
}

/// The name a catalog volume takes in a view whose names `taken` already holds.
fn view_name(v: &VisibleVolume, taken: &std::collections::BTreeSet<String>) -> String {
    if !taken.contains(&v.view_name) {
        return v.view_name.clone();
    }
    match &v.record.owner {
        Owner::Archive => format!("{}@archive", v.record.name),
        Owner::User(o) | Owner::Team(o) => format!("{}@{o}", v.record.name),
    }
}

/// What a wanted entry is built from, by key.
enum Source {
    Volume(Box<VisibleVolume>),
    Selection(SelectionRecord),
}

/// Users, the entries their folders should hold, and what is behind each key.
type WantedViews = (Vec<String>, Vec<Wanted>, HashMap<String, Source>);

/// A catalog volume, opened.
struct Opened {
    fingerprint: String,
    reader: ReadThrough,
    write_back: Option<Arc<WriteBack>>,
    ttl: Duration,
}

pub struct ViewSync {
    catalog: Arc<Catalog>,
    core: Arc<VfsCore>,
    stack: Arc<Stack>,
    cache: Arc<TieredCache>,
    fetch_budget: Arc<FetchBudget>,
    block_bytes: u64,
    cache_dir: PathBuf,
    fsync_wait: Duration,
    config_volumes: Vec<String>,
    opened: HashMap<i64, Opened>,
    invalidator: Option<KernelInvalidator>,
}

impl ViewSync {
    pub fn new(catalog: Arc<Catalog>, stack: Arc<Stack>, settings: &Settings) -> ViewSync {
        ViewSync {
            catalog,
            core: stack.core.clone(),
            cache: stack.cache.clone(),
            fetch_budget: stack.fetch_budget.clone(),
            stack,
            block_bytes: settings.block_bytes,
            cache_dir: settings.cache_dir.clone(),
            fsync_wait: settings.fsync_wait,
            config_volumes: settings.volumes.iter().map(|v| v.name.clone()).collect(),
            opened: HashMap::new(),
            invalidator: None,
        }
    }

    pub fn set_invalidator(&mut self, invalidator: Option<KernelInvalidator>) {
        self.invalidator = invalidator;
    }

    /// What every user's folder should hold now.
    fn wanted(&self) -> Result<WantedViews> {
        let accounts = self.catalog.users()?;
        let users: Vec<String> = accounts.iter().map(|u| u.name.clone()).collect();
        let mut wanted = Vec::new();
        let mut by_key = HashMap::new();
        for account in &accounts {
            let (user, uid) = (&account.name, account.uid);
            let mut taken: std::collections::BTreeSet<String> = Default::default();
            for name in &self.config_volumes {
                taken.insert(name.clone());
                wanted.push(Wanted {
                    user: user.clone(),
                    view: name.clone(),
                    key: format!("config:{name}#{uid}"),
                    uid,
                });
            }
            for v in self.catalog.visible_volumes(user)? {
                if v.record.from_config && self.config_volumes.contains(&v.record.name) {
                    continue; // mounted from the config above
                }
                let view = view_name(&v, &taken);
                taken.insert(view.clone());
                let key = format!(
                    "{}:{}:{}#{uid}",
                    v.record.id,
                    v.access.as_str(),
                    v.record.created_at
                );
                wanted.push(Wanted {
                    user: user.clone(),
                    view,
                    key: key.clone(),
                    uid,
                });
                by_key.insert(key, Source::Volume(Box::new(v)));
            }
            for s in self.catalog.selections(user)? {
                let view = if taken.contains(&s.name) {
                    format!("{}@selection", s.name)
                } else {
                    s.name.clone()
                };
                taken.insert(view.clone());
                let key = format!("sel:{}:{}#{uid}", s.id, s.created_at);
                wanted.push(Wanted {
                    user: user.clone(),
                    view,
                    key: key.clone(),
                    uid,
                });
                by_key.insert(key, Source::Selection(s));
            }
        }
        Ok((users, wanted, by_key))
    }

    /// Brings the views in line with the catalog. Returns how many entries changed.
    pub fn sync(&mut self) -> Result<usize> {
        let (users, wanted, by_key) = self.wanted()?;
        let mut forget: Vec<(u64, String)> = Vec::new();
        let existing = self.core.view_users();
        for gone in existing.iter().filter(|u| !users.contains(u)) {
            forget.extend(self.core.remove_view_user(gone));
        }
        for user in users.iter().filter(|u| !existing.contains(u)) {
            self.core.add_view_user(user)?;
        }
        let (detach, attach) = plan(&self.core.views(), &wanted);
        let changes = detach.len() + attach.len();
        for (user, view) in &detach {
            forget.extend(self.core.detach_view(user, view));
        }
        for w in attach {
            let config_name = w
                .key
                .strip_prefix("config:")
                .map(|k| k.rsplit_once('#').map_or(k, |(name, _)| name));
            let mut mount = match config_name {
                Some(name) => self.config_mount(name)?,
                None => {
                    let built = match by_key
                        .get(&w.key)
                        .context("a wanted view without its volume")?
                    {
                        Source::Volume(v) => self.catalog_mount(v),
                        Source::Selection(s) => self.selection_mount(s, &w.view),
                    };
                    match built {
                        Ok(m) => m,
                        Err(e) => {
                            // One volume that does not open (a typo in a user's URL) must not
                            // keep the others from their views; it is retried on the next change.
                            tracing::warn!(user = %w.user, view = %w.view, error = %e, "volume not attached");
                            continue;
                        }
                    }
                }
            };
            mount.owner = Some((w.uid, w.uid));
            self.core.attach_view(&w.user, &w.view, &w.key, mount)?;
        }
        if let Some(inv) = &self.invalidator
            && !forget.is_empty()
        {
            inv.forget(&forget, &[]);
        }
        Ok(changes)
    }

    /// A config volume as users see it: read-only, over the mount's own read-through layer.
    fn config_mount(&self, name: &str) -> Result<VolumeMount> {
        let vol = self
            .core
            .volumes()
            .into_iter()
            .find(|v| v.name == name)
            .with_context(|| format!("config volume {name} is not mounted"))?;
        Ok(VolumeMount {
            name: name.to_string(),
            reader: vol.reader.clone(),
            metadata_ttl: vol.metadata_ttl,
            write_back: None,
            direct_root: None,
            owner: None,
        })
    }

    /// A selection: the chosen files of a config volume, over that volume's own connector (so
    /// its cache and origin counts are the volume's), read-only.
    fn selection_mount(&self, s: &SelectionRecord, view: &str) -> Result<VolumeMount> {
        let vol = self
            .core
            .volumes()
            .into_iter()
            .find(|v| v.name == s.volume)
            .with_context(|| format!("selection {}: volume {} is not mounted", s.name, s.volume))?;
        let connector = Arc::new(SelectionConnector::new(
            vol.reader.connector().clone(),
            s.files.iter().map(|(path, _)| path.clone()),
        ));
        let reader = ReadThrough::new(
            connector,
            self.cache.clone(),
            self.block_bytes,
            8 * self.block_bytes,
        )
        .with_fetch_budget(self.fetch_budget.clone());
        Ok(VolumeMount {
            name: view.to_string(),
            reader,
            metadata_ttl: vol.metadata_ttl,
            write_back: None,
            direct_root: None,
            owner: None,
        })
    }

    /// A catalog volume's view: opened on first use, shared after.
    fn catalog_mount(&mut self, v: &VisibleVolume) -> Result<VolumeMount> {
        let record = &v.record;
        let fingerprint = format!("{}:{}", record.id, record.created_at);
        if self
            .opened
            .get(&record.id)
            .is_none_or(|o| o.fingerprint != fingerprint)
        {
            let config = self.catalog.volume_config_with_secrets(record)?;
            let spec = VolumeSpec::from_config(&config)?;
            let opened = open_volume(&spec)?;
            let label = record.reference();
            self.stack
                .origin
                .lock()
                .push((label.clone(), opened.stats.clone()));
            let reader = ReadThrough::new(
                opened.connector,
                self.cache.clone(),
                self.block_bytes,
                8 * self.block_bytes,
            )
            .with_fetch_budget(self.fetch_budget.clone());
            let write_back = if record.writable() {
                let dir = self
                    .cache_dir
                    .join("write-back")
                    .join(format!("catalog-{}", record.id));
                let wb = WriteBack::open(&dir, reader.clone()).with_context(|| {
                    format!(
                        "opening the write-back area {} of volume {label}",
                        dir.display()
                    )
                })?;
                wb.set_fsync_wait(self.fsync_wait);
                wb.spawn_worker();
                self.stack.write_backs.lock().push((label, wb.clone()));
                Some(wb)
            } else {
                None
            };
            self.opened.insert(
                record.id,
                Opened {
                    fingerprint,
                    reader,
                    write_back,
                    ttl: spec.metadata_ttl,
                },
            );
        }
        let o = &self.opened[&record.id];
        Ok(VolumeMount {
            name: v.view_name.clone(),
            reader: o.reader.clone(),
            metadata_ttl: o.ttl,
            write_back: if v.access == Access::ReadWrite {
                o.write_back.clone()
            } else {
                None
            },
            direct_root: None,
            owner: None,
        })
    }

    /// Syncs now, then whenever the catalog changes (checked every [`POLL`]), until the task is
    /// dropped.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        // The first sync before the mount is announced ready: the views are there at once.
        let mut seen = self.catalog.change_marker().ok();
        if let Err(e) = tokio::task::block_in_place(|| self.sync()) {
            tracing::warn!(error = %e, "users' views not set up");
            seen = None;
        }
        tokio::spawn(async move {
            loop {
                let version = self.catalog.change_marker().ok();
                if version.is_none() || version != seen {
                    match tokio::task::block_in_place(|| self.sync()) {
                        Ok(n) if n > 0 => tracing::info!(changes = n, "users' views updated"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "users' views not updated"),
                    }
                    seen = version;
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(user: &str, view: &str, key: &str) -> Wanted {
        Wanted {
            user: user.into(),
            view: view.into(),
            key: key.into(),
            uid: 100_001,
        }
    }

    #[test]
    fn the_plan_detaches_what_went_or_changed_and_attaches_what_is_new() {
        let current: BTreeMap<_, _> = [
            (
                ("alice".into(), "home".into()),
                "1:read-write:5".to_string(),
            ),
            (
                ("bob".into(), "home@alice".into()),
                "1:read-only:5".to_string(),
            ),
            (("bob".into(), "sample".into()), "config:sample".to_string()),
        ]
        .into();
        let wanted = vec![
            w("alice", "home", "1:read-write:5"),
            w("bob", "home@alice", "1:read-write:5"),
            w("bob", "sample", "config:sample"),
            w("carol", "sample", "config:sample"),
        ];
        let (detach, attach) = plan(&current, &wanted);
        assert_eq!(detach, vec![("bob".to_string(), "home@alice".to_string())]);
        assert_eq!(
            attach,
            vec![
                w("bob", "home@alice", "1:read-write:5"),
                w("carol", "sample", "config:sample")
            ]
        );
        let (detach, attach) = plan(&current, &[]);
        assert_eq!(detach.len(), 3);
        assert!(attach.is_empty());
    }
}
