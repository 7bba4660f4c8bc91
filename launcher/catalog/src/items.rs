//! The catalogue's items — datasets (published TAP tables and ObsCore collections), data volumes
//! and datalab images — described by operators in one TOML file per mission, or derived from what
//! `colo ingest` published, and searched by free text (SQLite FTS5, ranked by bm25) and facets with
//! counts ([`crate::search_query`] for the syntax).
//!
//! A mission file:
//! ```toml
//! mission = "Gaia"                 # defaults for every item below
//! domain = "Space Science"
//! [[dataset]]
//! key = "gaiadr3.gaia_source"      # the TAP table or collection it describes
//! title = "Gaia DR3 sources"
//! instrument = "ASTRO"
//! wavelength = "Optical"
//! description = "…"
//! properties = { release = "DR3" }
//! [[volume]]                       # and [[datalab_image]]: the same keys
//! ```
//! Loading a file replaces every item that came from it (source `toml:<file name>`), in one
//! transaction: items removed from the file leave the catalogue.
//!
//! Facet counts are over the items matching the whole query (the counts a faceted search page
//! shows beside each value); values compare without regard to case.

use crate::Catalog;
use crate::error::{CatalogError, Result};
use crate::search_query::{Facet, SearchQuery};
use crate::store::now_secs;
use rusqlite::OptionalExtension;
use rusqlite::params_from_iter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    #[serde(rename = "dataset")]
    Dataset,
    #[serde(rename = "volume")]
    Volume,
    #[serde(rename = "datalab-image")]
    DatalabImage,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Dataset => "dataset",
            ItemKind::Volume => "volume",
            ItemKind::DatalabImage => "datalab-image",
        }
    }

    fn parse(text: &str) -> ItemKind {
        match text {
            "volume" => ItemKind::Volume,
            "datalab-image" => ItemKind::DatalabImage,
            _ => ItemKind::Dataset,
        }
    }
}

/// One item of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogItem {
    pub kind: ItemKind,
    /// What the item names: a TAP table (`schema.table`), a collection, a volume, an image.
    pub key: String,
    pub title: String,
    pub description: String,
    pub mission: String,
    pub instrument: String,
    pub domain: String,
    pub wavelength: String,
    pub properties: BTreeMap<String, String>,
    pub source: String,
}

/// A search's answer: one page of items (best match first), how many matched, and per facet the
/// values among the matches with their counts (most first).
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: u64,
    pub items: Vec<CatalogItem>,
    pub facets: BTreeMap<&'static str, Vec<(String, u64)>>,
}

/// One `[[dataset]]`, `[[volume]]` or `[[datalab_image]]` table of a mission file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemEntry {
    key: String,
    title: Option<String>,
    #[serde(default)]
    description: String,
    mission: Option<String>,
    instrument: Option<String>,
    domain: Option<String>,
    wavelength: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MissionFile {
    mission: Option<String>,
    domain: Option<String>,
    instrument: Option<String>,
    wavelength: Option<String>,
    #[serde(default)]
    dataset: Vec<ItemEntry>,
    #[serde(default)]
    volume: Vec<ItemEntry>,
    #[serde(default)]
    datalab_image: Vec<ItemEntry>,
}

/// The items a mission file describes (`file` names it in errors and in the items' source).
pub fn parse_mission_file(file: &str, text: &str) -> Result<Vec<CatalogItem>> {
    let bad = |detail: String| CatalogError::BadItems {
        file: file.to_string(),
        detail,
    };
    let m: MissionFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut items = Vec::new();
    for (kind, entries) in [
        (ItemKind::Dataset, &m.dataset),
        (ItemKind::Volume, &m.volume),
        (ItemKind::DatalabImage, &m.datalab_image),
    ] {
        for e in entries {
            if e.key.trim().is_empty() || e.key.len() > 200 {
                return Err(bad(format!(
                    "a [[{}]] has an empty or overlong key",
                    kind.as_str()
                )));
            }
            if items
                .iter()
                .any(|i: &CatalogItem| i.kind == kind && i.key == e.key)
            {
                return Err(bad(format!(
                    "{} '{}' is described twice",
                    kind.as_str(),
                    e.key
                )));
            }
            let pick = |own: &Option<String>, default: &Option<String>| {
                own.clone().or_else(|| default.clone()).unwrap_or_default()
            };
            items.push(CatalogItem {
                kind,
                key: e.key.clone(),
                title: e.title.clone().unwrap_or_else(|| e.key.clone()),
                description: e.description.clone(),
                mission: pick(&e.mission, &m.mission),
                instrument: pick(&e.instrument, &m.instrument),
                domain: pick(&e.domain, &m.domain),
                wavelength: pick(&e.wavelength, &m.wavelength),
                properties: e.properties.clone(),
                source: format!("toml:{file}"),
            });
        }
    }
    Ok(items)
}

const ITEM_COLUMNS: &str = "i.kind, i.key, i.title, i.description, i.mission, i.instrument, i.domain, i.wavelength, i.properties, i.source";

fn read_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogItem> {
    let properties: String = r.get(8)?;
    Ok(CatalogItem {
        kind: ItemKind::parse(&r.get::<_, String>(0)?),
        key: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        mission: r.get(4)?,
        instrument: r.get(5)?,
        domain: r.get(6)?,
        wavelength: r.get(7)?,
        properties: serde_json::from_str(&properties).unwrap_or_default(),
        source: r.get(9)?,
    })
}

/// Largest page of a search.
pub const MAX_PAGE: u64 = 500;

impl Catalog {
    /// Replaces every item from `source` with `items`. Returns (items now from it, removed).
    pub fn replace_items(&self, source: &str, items: &[CatalogItem]) -> Result<(usize, usize)> {
        let now = now_secs();
        self.store.with(|c| {
            let tx = c.transaction().map_err(CatalogError::db("loading catalogue items"))?;
            let before: i64 = tx
                .query_row("SELECT count(*) FROM catalog_items WHERE source = ?1", [source], |r| r.get(0))
                .map_err(CatalogError::db("loading catalogue items"))?;
            tx.execute("DELETE FROM catalog_items WHERE source = ?1", [source])
                .map_err(CatalogError::db("loading catalogue items"))?;
            for item in items {
                let properties = serde_json::to_string(&item.properties).unwrap_or_else(|_| "{}".into());
                // An item another source described already is replaced by this one (last load wins).
                tx.execute(
                    "INSERT INTO catalog_items (kind, key, title, description, mission, instrument, domain,
                                                wavelength, properties, source, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (kind, key) DO UPDATE SET title = excluded.title,
                       description = excluded.description, mission = excluded.mission,
                       instrument = excluded.instrument, domain = excluded.domain,
                       wavelength = excluded.wavelength, properties = excluded.properties,
                       source = excluded.source, updated_at = excluded.updated_at",
                    rusqlite::params![
                        item.kind.as_str(),
                        item.key,
                        item.title,
                        item.description,
                        item.mission,
                        item.instrument,
                        item.domain,
                        item.wavelength,
                        properties,
                        source,
                        now
                    ],
                )
                .map_err(CatalogError::db("loading catalogue items"))?;
            }
            tx.commit().map_err(CatalogError::db("loading catalogue items"))?;
            Ok((items.len(), (before as usize).saturating_sub(items.len())))
        })
    }

    /// The keys of every item of `kind` that did not come from `source` (all of them, however many).
    pub fn item_keys_not_from(
        &self,
        kind: ItemKind,
        source: &str,
    ) -> Result<std::collections::HashSet<String>> {
        self.store.with(|c| {
            let mut st = c
                .prepare("SELECT key FROM catalog_items WHERE kind = ?1 AND source != ?2")
                .map_err(CatalogError::db("listing catalogue keys"))?;
            st.query_map(rusqlite::params![kind.as_str(), source], |r| r.get(0))
                .map_err(CatalogError::db("listing catalogue keys"))?
                .collect::<rusqlite::Result<std::collections::HashSet<String>>>()
                .map_err(CatalogError::db("listing catalogue keys"))
        })
    }

    /// Loads a mission file: its items replace those it gave before.
    pub fn load_mission_file(&self, file_name: &str, text: &str) -> Result<(usize, usize)> {
        let items = parse_mission_file(file_name, text)?;
        self.replace_items(&format!("toml:{file_name}"), &items)
    }

    /// The item of `kind` named `key`, if the catalogue has it.
    pub fn item(&self, kind: ItemKind, key: &str) -> Result<Option<CatalogItem>> {
        self.store.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM catalog_items i WHERE i.kind = ?1 AND i.key = ?2"
                ),
                rusqlite::params![kind.as_str(), key],
                read_item,
            )
            .optional()
            .map_err(CatalogError::db("reading a catalogue item"))
        })
    }

    /// One page (`limit` items from `offset`) of the items matching `query`, with facet counts.
    pub fn search(&self, query: &SearchQuery, limit: u64, offset: u64) -> Result<SearchResult> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let fts = query.fts_expression();
        if let Some(expr) = &fts {
            args.push(expr.clone());
            conditions.push(format!("f.catalog_fts MATCH ?{}", args.len()));
        }
        for facet in Facet::ALL {
            let values: Vec<&String> = query
                .filters
                .iter()
                .filter(|(f, _)| *f == facet)
                .map(|(_, v)| v)
                .collect();
            if values.is_empty() {
                continue;
            }
            let mut alternatives = Vec::new();
            for v in values {
                args.push(v.clone());
                alternatives.push(format!(
                    "i.{} = ?{} COLLATE NOCASE",
                    facet.column(),
                    args.len()
                ));
            }
            conditions.push(format!("({})", alternatives.join(" OR ")));
        }
        let from = if fts.is_some() {
            "FROM catalog_items i JOIN catalog_fts f ON f.rowid = i.id"
        } else {
            "FROM catalog_items i"
        };
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let order = if fts.is_some() {
            "ORDER BY bm25(catalog_fts), i.title"
        } else {
            "ORDER BY i.kind, i.title"
        };
        let limit = limit.min(MAX_PAGE);
        self.store.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {ITEM_COLUMNS} {from} {filter} {order} LIMIT {limit} OFFSET {offset}"
                ))
                .map_err(CatalogError::db("searching the catalogue"))?;
            let items = st
                .query_map(params_from_iter(args.iter()), read_item)
                .map_err(CatalogError::db("searching the catalogue"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(CatalogError::db("searching the catalogue"))?;
            // Every facet's counts in one pass over the matches (one scan, not one per facet);
            // values that differ only in case count as one, shown as first met.
            let columns: Vec<String> = Facet::ALL
                .iter()
                .map(|f| format!("i.{}", f.column()))
                .collect();
            let mut st = c
                .prepare(&format!("SELECT {} {from} {filter}", columns.join(", ")))
                .map_err(CatalogError::db("counting facets"))?;
            let mut rows = st
                .query(params_from_iter(args.iter()))
                .map_err(CatalogError::db("counting facets"))?;
            let mut counts: Vec<std::collections::HashMap<String, (String, u64)>> =
                Facet::ALL.iter().map(|_| Default::default()).collect();
            let mut total: u64 = 0;
            while let Some(row) = rows.next().map_err(CatalogError::db("counting facets"))? {
                total += 1;
                for (i, count) in counts.iter_mut().enumerate() {
                    let value = row
                        .get_ref(i)
                        .ok()
                        .and_then(|v| v.as_str().ok())
                        .unwrap_or("");
                    if value.is_empty() {
                        continue;
                    }
                    let entry = count
                        .entry(value.to_lowercase())
                        .or_insert_with(|| (value.to_string(), 0));
                    entry.1 += 1;
                }
            }
            let mut facets = BTreeMap::new();
            for (facet, count) in Facet::ALL.iter().zip(counts) {
                let mut values: Vec<(String, u64)> = count.into_values().collect();
                values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                values.truncate(50);
                facets.insert(facet.as_str(), values);
            }
            Ok(SearchResult {
                total,
                items,
                facets,
            })
        })
    }
}
