//! Published images as the DataLink, SODA and SIA services see them: records by dataset
//! identifier, and their files opened through the volumes.
//!
//! Identifiers are matched case-insensitively (SIA 2.0 §3.3.10: IVOIDs are case-insensitive).
//! Opening a dataset stats the file (pinning its version), then reads the HDU layout — a few KiB,
//! kept in a small cache keyed by version, so repeated cutouts of one file cost one HEAD and their
//! pixels. A gzip-compressed file is read whole and inflated (gzip cannot be read in ranges);
//! a tile-compressed image is read through [`TiledImage`], which fetches only the tiles a cutout
//! or preview touches.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use colo_astro::AstroError;
use colo_astro::fits::tiled::TiledImage;
use colo_astro::fits::{ByteSource, Header, Layout, MemorySource, gunzip, inherited, read_layout};
use parking_lot::Mutex;

use crate::error::VoError;
use crate::obscore::ImageRecord;
use crate::obscore::publish::Manifest;
use crate::volumes::Volumes;

/// Layouts kept (each a few KiB).
const LAYOUT_CACHE_ENTRIES: usize = 512;

/// (volume, path, version) of a file whose layout is cached.
type LayoutKey = (String, String, String);

/// The image services' shared state.
#[derive(Clone)]
pub struct ImageState {
    records: Arc<HashMap<String, ImageRecord>>,
    pub volumes: Volumes,
    layouts: Arc<Mutex<HashMap<LayoutKey, Arc<Layout>>>>,
}

/// One image HDU ready to read: where its pixels start and its header (with inherited keywords).
pub struct OpenImage {
    /// The pixels: the file itself, or for a tile-compressed image its uncompressed view.
    pub source: Arc<dyn ByteSource>,
    pub header: Header,
    pub data_offset: u64,
    pub layout: Arc<Layout>,
}

impl ImageState {
    /// The records published under `tables_dir`.
    pub fn open(tables_dir: &std::path::Path, volumes: Volumes) -> Result<ImageState, VoError> {
        let manifest = Manifest::read(tables_dir)?;
        let records = manifest
            .records
            .into_iter()
            .map(|r| (r.obs_publisher_did.to_ascii_lowercase(), r))
            .collect();
        Ok(ImageState {
            records: Arc::new(records),
            volumes,
            layouts: Arc::default(),
        })
    }

    /// The record of a dataset identifier.
    pub fn find(&self, id: &str) -> Result<&ImageRecord, VoError> {
        self.records
            .get(&id.trim().to_ascii_lowercase())
            .ok_or_else(|| VoError::NotFound { id: id.to_string() })
    }

    /// Opens HDU `hdu` of a record's file.
    pub async fn open_hdu(&self, record: &ImageRecord, hdu: usize) -> Result<OpenImage, VoError> {
        let file = self.volumes.open(&record.volume, &record.path).await?;
        let key = (
            record.volume.clone(),
            record.path.clone(),
            file.version().identity.to_string(),
        );
        let (source, layout): (Box<dyn ByteSource>, Arc<Layout>) = if record.gzipped {
            let compressed = file.read(0, file.size()).await?;
            let plain = gunzip(file.name(), &compressed)?;
            let source = MemorySource {
                name: file.name().to_string(),
                bytes: Bytes::from(plain),
            };
            let layout = Arc::new(Layout {
                gzipped: true,
                ..read_layout(&source).await?
            });
            (Box::new(source), layout)
        } else {
            let cached = self.layouts.lock().get(&key).cloned();
            let layout = match cached {
                Some(layout) => layout,
                None => {
                    let layout = Arc::new(read_layout(&file).await?);
                    let mut layouts = self.layouts.lock();
                    if layouts.len() >= LAYOUT_CACHE_ENTRIES {
                        layouts.clear();
                    }
                    layouts.insert(key, layout.clone());
                    layout
                }
            };
            (Box::new(file), layout)
        };
        let primary = layout
            .hdus
            .first()
            .ok_or_else(|| AstroError::fits(&record.path, "no HDU"))?;
        let target = layout.hdus.iter().find(|h| h.index == hdu).ok_or_else(|| {
            AstroError::fits(
                &record.path,
                format!("HDU {hdu} is not in the file any more"),
            )
        })?;
        let source: Arc<dyn ByteSource> = Arc::from(source);
        let (source, data_offset): (Arc<dyn ByteSource>, u64) = if target.is_compressed_image() {
            (Arc::new(TiledImage::open(source, target)?), 0)
        } else {
            (source, target.data_offset)
        };
        Ok(OpenImage {
            header: inherited(primary, target),
            data_offset,
            source,
            layout: layout.clone(),
        })
    }
}
