//! Published tables: the operator-editable descriptor (TOML) and the column metadata every output
//! and TAP_SCHEMA share.
//!
//! A published table lives in `<tables>/<schema>.<table>/`: `table.toml` (this module's
//! [`TableDescriptor`]) and `data/Norder=<k>/Npix=<n>.parquet` (HATS-like HEALPix partitions written
//! by [`crate::ingest`]). `<tables>` is a local folder or a folder on an object store (a volume:
//! [`discover_tables_in`]); on a store, where nothing can be renamed into place, the descriptor's
//! `data` names a versioned folder (`data-<version>`), written before the descriptor that points
//! at it. The descriptor carries what TAP 1.1 §4 and VODataService need
//! (descriptions, units, UCDs, utypes, principal/indexed/std flags), the position columns, and
//! ESA TAP+ `flags`. Types are not written by hand: they come from the Parquet schema.

use std::path::Path;

use arrow_schema::DataType;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::adql::PositionColumns;
use crate::error::TapError;
use crate::types::{canonical_type, votable_type};

/// The per-row HEALPix index column ingest adds (order 29, nested), by which partitions are sorted.
pub const HEALPIX_COLUMN: &str = "_healpix_29";

/// The file name of a table's descriptor inside its folder.
pub const DESCRIPTOR_FILE: &str = "table.toml";
/// The folder of a table's Parquet partitions inside its folder.
pub const DATA_DIR: &str = "data";

/// ESA TAP+ column flags (`esatapplus:flags`, astroquery `TapPlus` reads them).
pub mod esa_flags {
    /// Right ascension.
    pub const RA: u32 = 1;
    /// Declination.
    pub const DEC: u32 = 2;
    /// A flux.
    pub const FLUX: u32 = 4;
    /// A magnitude.
    pub const MAG: u32 = 8;
    /// Primary key.
    pub const PK: u32 = 16;
}

/// Which columns hold a table's ICRS position, in degrees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionDescriptor {
    /// Right ascension column, degrees.
    pub ra: String,
    /// Declination column, degrees.
    pub dec: String,
}

/// Operator-editable metadata of one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDescriptor {
    /// Column name (lower case; as stored in Parquet).
    pub name: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Unit in the VOUnits syntax (`deg`, `mas/yr`, `mag`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// UCD 1+ (`pos.eq.ra;meta.main`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ucd: String,
    /// Data-model utype.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub utype: String,
    /// Shown by default in clients (TAP_SCHEMA `principal`).
    #[serde(default)]
    pub principal: bool,
    /// Has an index (TAP_SCHEMA `indexed`); position columns are indexed through HEALPix.
    #[serde(default)]
    pub indexed: bool,
    /// Defined by a standard (TAP_SCHEMA `std`).
    #[serde(default)]
    pub std: bool,
    /// ESA TAP+ flags: see [`esa_flags`].
    #[serde(default)]
    pub flags: u32,
    /// DALI xtype of stored geometry (`polygon` for a list of ra/dec pairs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub xtype: String,
    /// The values are paths on this service (`/datalink/links?ID=...`): results show them as
    /// absolute URLs, with the root the client used (no URL is stored with a host in it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_relative: bool,
}

/// Operator-editable metadata of one published table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDescriptor {
    /// ADQL schema name (lower case).
    pub schema: String,
    /// ADQL table name within the schema (lower case).
    pub name: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Data-model utype.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub utype: String,
    /// Number of rows (written by ingest).
    #[serde(default)]
    pub rows: u64,
    /// Where the catalogue came from (written by ingest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The folder of the Parquet partitions, next to the descriptor (written by ingest: `data`
    /// locally, `data-<version>` on an object store).
    #[serde(
        default = "default_data_dir",
        skip_serializing_if = "is_default_data_dir"
    )]
    pub data: String,
    /// The position columns, if the table has positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionDescriptor>,
    /// Per-column metadata, in column order.
    #[serde(default, rename = "column")]
    pub columns: Vec<ColumnDescriptor>,
}

fn default_data_dir() -> String {
    DATA_DIR.to_string()
}

fn is_default_data_dir(dir: &str) -> bool {
    dir == DATA_DIR
}

impl TableDescriptor {
    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Reads a descriptor file.
    pub fn read(path: &Path) -> Result<Self, TapError> {
        let text = std::fs::read_to_string(path).map_err(|source| TapError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a descriptor's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, TapError> {
        let descriptor: TableDescriptor =
            toml::from_str(text).map_err(|e| TapError::Descriptor {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if descriptor.data.is_empty() || !descriptor.data.chars().all(plain) {
            return Err(TapError::Descriptor {
                path: origin.to_path_buf(),
                message: format!(
                    "data = {:?}: the partitions' folder is one plain name next to the descriptor",
                    descriptor.data
                ),
            });
        }
        Ok(descriptor)
    }

    /// The descriptor as the text of its file, with a header saying what may be edited.
    pub fn to_text(&self) -> Result<String, TapError> {
        let text = toml::to_string_pretty(self).map_err(|e| TapError::Descriptor {
            path: DESCRIPTOR_FILE.into(),
            message: e.to_string(),
        })?;
        let header = "# Table descriptor written by `colo ingest catalog`: edit descriptions, units, UCDs, utypes,\n\
                      # principal/indexed/std and ESA flags (1 RA, 2 Dec, 4 flux, 8 mag, 16 primary key), then restart.\n";
        Ok(format!("{header}{text}"))
    }

    /// Writes a descriptor file.
    pub fn write(&self, path: &Path) -> Result<(), TapError> {
        std::fs::write(path, self.to_text()?).map_err(|source| TapError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One published table found in a tables folder.
#[derive(Debug, Clone)]
pub struct PublishedTable {
    /// Its descriptor.
    pub descriptor: TableDescriptor,
    /// Its folder, holding the descriptor and the partitions, as a URL ending in `/`:
    /// `file:///…/mission.sources/`, or `colo://archive/tables/mission.sources/` on a store the
    /// engine is given.
    pub folder: url::Url,
}

impl PublishedTable {
    /// The folder of its Parquet partitions, ending in `/`.
    pub fn data_url(&self) -> url::Url {
        let mut url = self.folder.clone();
        url.path_segments_mut()
            .expect("a folder URL has a path")
            .pop_if_empty()
            .push(&self.descriptor.data)
            .push("");
        url
    }
}

/// The URL of a local folder, ending in `/`.
pub fn folder_url(dir: &Path) -> Result<url::Url, TapError> {
    let absolute = std::path::absolute(dir).map_err(TapError::io(dir))?;
    url::Url::from_directory_path(&absolute).map_err(|()| TapError::Descriptor {
        path: dir.to_path_buf(),
        message: "not a usable folder path".into(),
    })
}

/// Finds every published table under `root` (folders holding a `table.toml`), sorted by name.
/// Folders being written by an ingest (names starting with `.`) are skipped.
pub fn discover_tables(root: &Path) -> Result<Vec<PublishedTable>, TapError> {
    let mut tables = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tables),
        Err(source) => {
            return Err(TapError::Io {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| TapError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let dir = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !dir.join(DESCRIPTOR_FILE).is_file() {
            continue;
        }
        let descriptor = TableDescriptor::read(&dir.join(DESCRIPTOR_FILE))?;
        let folder = folder_url(&dir)?;
        tables.push(PublishedTable { descriptor, folder });
    }
    tables.sort_by_key(|t| t.descriptor.qualified_name());
    Ok(tables)
}

/// Finds every published table in the folder `base` (a URL ending in `/`, on `store`): its
/// sub-folders holding a `table.toml`, sorted by name; hidden folders are skipped.
pub async fn discover_tables_in(
    store: &dyn ObjectStore,
    base: &url::Url,
) -> Result<Vec<PublishedTable>, TapError> {
    let storage = |e: object_store::Error| TapError::Storage {
        location: base.to_string(),
        message: e.to_string(),
    };
    let prefix = store_path(base);
    let listing = store
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(storage)?;
    let mut tables = Vec::new();
    for folder in listing.common_prefixes {
        let Some(name) = folder.filename() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let descriptor_path = folder.clone().join(DESCRIPTOR_FILE);
        let text = match store.get(&descriptor_path).await {
            Ok(found) => found.bytes().await.map_err(storage)?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(storage(e)),
        };
        let text = String::from_utf8_lossy(&text);
        let mut table_url = base.clone();
        table_url
            .path_segments_mut()
            .expect("a folder URL has a path")
            .pop_if_empty()
            .push(name)
            .push("");
        let origin = Path::new(table_url.as_str()).join(DESCRIPTOR_FILE);
        let descriptor = TableDescriptor::parse(&text, &origin)?;
        tables.push(PublishedTable {
            descriptor,
            folder: table_url,
        });
    }
    tables.sort_by_key(|t| t.descriptor.qualified_name());
    Ok(tables)
}

/// The object store path of a URL's path (its segments, decoded).
pub fn store_path(url: &url::Url) -> object_store::path::Path {
    url.path_segments()
        .map(|segments| {
            segments
                .filter(|s| !s.is_empty())
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .collect::<Vec<String>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(object_store::path::PathPart::from)
        .collect()
}

/// Metadata of a queryable table.
#[derive(Debug, Clone)]
pub struct TableMeta {
    /// ADQL schema name.
    pub schema: String,
    /// Table name within the schema.
    pub name: String,
    /// Human description.
    pub description: String,
    /// Data-model utype.
    pub utype: String,
    /// Columns users see (internal ones such as `_healpix_29` are left out).
    pub columns: Vec<ColumnMeta>,
    /// Position columns, if the table has a HEALPix index.
    pub position: Option<PositionColumns>,
    /// Row count, when known.
    pub rows: Option<u64>,
}

impl TableMeta {
    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Everything outputs and TAP_SCHEMA say about one column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMeta {
    /// Column name.
    pub name: String,
    /// Arrow type of its values.
    pub arrow_type: Option<DataType>,
    /// Description, unit, UCD, utype, flags.
    pub descriptor: ColumnDescriptor,
    /// DALI xtype (`point`, `circle`, `polygon`, `timestamp`), when the values carry one.
    pub xtype: Option<String>,
}

/// The xtype under which a table declares a region column (ObsCore's `s_region`, as DaCHS does):
/// TAP_SCHEMA and `/tables` say `char` + `adql:REGION` (what ObsTAP validators expect), while
/// results carry DALI polygons (`double[*]`, xtype `polygon`).
pub const REGION_XTYPE: &str = "adql:REGION";

/// (datatype, arraysize, xtype) a table declares for a column in TAP_SCHEMA and `/tables`.
pub fn declared_type(column: &ColumnMeta) -> (&'static str, Option<&'static str>, Option<String>) {
    if column.descriptor.xtype == REGION_XTYPE {
        return ("char", Some("*"), Some(REGION_XTYPE.to_string()));
    }
    let data_type = column
        .arrow_type
        .clone()
        .map(|t| canonical_type(&t))
        .unwrap_or(DataType::Utf8);
    let (datatype, arraysize) = votable_type(&data_type);
    (datatype, arraysize, column.xtype.clone())
}
