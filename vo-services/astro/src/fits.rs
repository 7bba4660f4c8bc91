//! FITS files read in ranges: headers and the layout of every HDU, without reading data units.
//!
//! A [`ByteSource`] is anything that answers byte ranges: a file on a volume (the services read
//! through colo's block cache) or bytes in memory ([`MemorySource`]). [`read_layout`] walks the HDUs, reading each header
//! with exact ranged reads (two blocks first, doubling until `END`) and jumping over data units, so a
//! 1 GiB image costs a few KiB. Gzip-compressed files (`.fits.gz`) are decompressed as a stream,
//! fetching compressed bytes only as far as the headers need; there the walk stops after the first
//! image HDU, since finding the next header would mean inflating the whole data unit.
//! Tile-compressed images (FITS 4.0 §10) are BINTABLEs with `ZIMAGE = T`; [`Hdu::image_header`]
//! gives their image view (ZNAXISn → NAXISn, ZBITPIX → BITPIX, table keywords dropped), which is
//! what the WCS needs, and [`tiled::TiledImage`] reads their pixels tile by tile.

pub mod bintable;
pub mod header;
pub mod tiled;

use std::io::Read;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::AstroError;
pub use header::{BLOCK, Header, Value};

/// Byte ranges of one file.
#[async_trait]
pub trait ByteSource: Send + Sync {
    /// The file's name, for messages.
    fn name(&self) -> &str;
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// Bytes `[offset, offset + len)`, clamped to the size.
    async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AstroError>;
    /// Several ranges at once (a source may fetch them concurrently); same order as asked.
    async fn read_many(&self, ranges: &[(u64, u64)]) -> Result<Vec<Bytes>, AstroError> {
        let mut out = Vec::with_capacity(ranges.len());
        for &(offset, len) in ranges {
            out.push(self.read(offset, len).await?);
        }
        Ok(out)
    }
}

/// Bytes of one read of [`stream_range`].
pub const STREAM_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// `[offset, offset + len)` of a source as a stream of [`STREAM_CHUNK_BYTES`] reads, two in flight,
/// so a download of a large file never sits in memory.
pub fn stream_range(
    source: std::sync::Arc<dyn ByteSource>,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, AstroError>> + Send + 'static {
    use futures::StreamExt;
    let end = offset + len;
    let starts: Vec<u64> = (offset..end).step_by(STREAM_CHUNK_BYTES as usize).collect();
    futures::stream::iter(starts)
        .map(move |start| {
            let source = source.clone();
            async move {
                let want = STREAM_CHUNK_BYTES.min(end - start);
                let bytes = source.read(start, want).await?;
                if (bytes.len() as u64) < want {
                    return Err(AstroError::Fits {
                        name: source.name().to_string(),
                        message: format!("the file ended at {} bytes", start + bytes.len() as u64),
                    });
                }
                Ok(bytes)
            }
        })
        .buffered(2)
}

/// Bytes held in memory (tests, small local files).
pub struct MemorySource {
    pub name: String,
    pub bytes: Bytes,
}

#[async_trait]
impl ByteSource for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AstroError> {
        let start = (offset as usize).min(self.bytes.len());
        let end = (offset.saturating_add(len) as usize).min(self.bytes.len());
        Ok(self.bytes.slice(start..end))
    }
}

/// One header-data unit.
#[derive(Debug, Clone)]
pub struct Hdu {
    /// 0 for the primary HDU.
    pub index: usize,
    pub header: Header,
    /// Offset of the header in the (decompressed) file.
    pub header_offset: u64,
    /// Offset of the data unit.
    pub data_offset: u64,
    /// Bytes of the data unit, before padding.
    pub data_bytes: u64,
}

impl Hdu {
    /// `EXTNAME`, if any.
    pub fn extname(&self) -> Option<String> {
        self.header.text("EXTNAME")
    }

    /// Whether this is a tile-compressed image.
    pub fn is_compressed_image(&self) -> bool {
        self.header.text("XTENSION").as_deref() == Some("BINTABLE")
            && self.header.bool("ZIMAGE") == Some(true)
    }

    /// Whether this HDU holds an image with at least two non-empty axes.
    pub fn is_image(&self) -> bool {
        let plain = self.index == 0 || self.header.text("XTENSION").as_deref() == Some("IMAGE");
        (plain || self.is_compressed_image()) && {
            let axes = self.image_header().axes();
            axes.len() >= 2 && axes.iter().all(|&n| n > 0)
        }
    }

    /// The header as an image: for tile-compressed images the Z keywords become the image's.
    pub fn image_header(&self) -> Header {
        if !self.is_compressed_image() {
            return self.header.clone();
        }
        let mut out = Header::default();
        for card in &self.header.cards {
            let renamed = match card.key.as_str() {
                "ZNAXIS" => Some("NAXIS".to_string()),
                "ZBITPIX" => Some("BITPIX".to_string()),
                k if k.starts_with("ZNAXIS") => Some(format!("NAXIS{}", &k[6..])),
                "NAXIS" | "BITPIX" => None,
                k if k.starts_with("NAXIS") => None,
                k if is_tile_table_keyword(k) => None,
                _ => Some(card.key.clone()),
            };
            if let (Some(key), Some(value)) = (renamed, &card.value) {
                if key == card.key {
                    out.cards.push(card.clone());
                } else {
                    out.set(&key, value.clone(), "");
                }
            }
        }
        out
    }
}

/// Keywords of the table that holds a tile-compressed image (not the image's own).
fn is_tile_table_keyword(key: &str) -> bool {
    let indexed = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(
        key,
        "XTENSION"
            | "PCOUNT"
            | "GCOUNT"
            | "TFIELDS"
            | "THEAP"
            | "ZIMAGE"
            | "ZCMPTYPE"
            | "ZQUANTIZ"
            | "ZDITHER0"
            | "ZSIMPLE"
            | "ZTENSION"
            | "ZEXTEND"
            | "ZPCOUNT"
            | "ZGCOUNT"
            | "ZHECKSUM"
            | "ZDATASUM"
            | "ZBLANK"
            | "ZMASKCMP"
            | "CHECKSUM"
            | "DATASUM"
    ) || [
        "TTYPE", "TFORM", "TUNIT", "TDIM", "TNULL", "TSCAL", "TZERO", "ZTILE", "ZNAME", "ZVAL",
    ]
    .iter()
    .any(|p| indexed(p))
}

/// The HDUs of a file, as far as they were read.
#[derive(Debug, Clone)]
pub struct Layout {
    pub hdus: Vec<Hdu>,
    /// Whether the file is gzip-compressed as a whole (then data units cannot be read in ranges).
    pub gzipped: bool,
}

/// The image HDU's header with the primary header's keywords it lacks (INHERIT, FITS 4.0 App. K),
/// structural keywords excepted.
pub fn inherited(primary: &Hdu, hdu: &Hdu) -> Header {
    let mut header = hdu.image_header();
    if hdu.index == 0 {
        return header;
    }
    for card in &primary.header.cards {
        let structural = matches!(
            card.key.as_str(),
            "SIMPLE"
                | "BITPIX"
                | "EXTEND"
                | "NAXIS"
                | "PCOUNT"
                | "GCOUNT"
                | "COMMENT"
                | "HISTORY"
                | ""
        ) || card.key.starts_with("NAXIS");
        if !structural && card.value.is_some() && !header.contains(&card.key) {
            header.cards.push(card.clone());
        }
    }
    header
}

/// `len` rounded up to whole FITS blocks: where the next HDU starts after a header or data unit of
/// `len` bytes (FITS 4.0 §3.1: data units are padded, with zeros, to whole blocks).
pub fn padded_len(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// Most bytes of one header before we call it broken.
const MAX_HEADER_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the headers of every HDU (see the module note for gzip files).
pub async fn read_layout(source: &dyn ByteSource) -> Result<Layout, AstroError> {
    let magic = source.read(0, 2).await?;
    if magic.as_ref() == [0x1f, 0x8b] {
        let inflated = Inflated::new(source);
        let hdus = walk(&inflated, true).await?;
        return Ok(Layout {
            hdus,
            gzipped: true,
        });
    }
    let hdus = walk(source, false).await?;
    Ok(Layout {
        hdus,
        gzipped: false,
    })
}

async fn walk(source: &dyn ByteSource, stop_after_image: bool) -> Result<Vec<Hdu>, AstroError> {
    let mut hdus = Vec::new();
    let mut offset = 0u64;
    loop {
        let Some((header, header_bytes)) = read_header(source, offset, hdus.is_empty()).await?
        else {
            break;
        };
        let data_bytes = header.data_bytes();
        let hdu = Hdu {
            index: hdus.len(),
            header,
            header_offset: offset,
            data_offset: offset + header_bytes,
            data_bytes,
        };
        let image = hdu.is_image();
        offset = hdu.data_offset + padded_len(data_bytes);
        hdus.push(hdu);
        if (stop_after_image && image) || hdus.len() >= 1000 {
            break;
        }
    }
    Ok(hdus)
}

/// The header at `offset`, or `None` at the end of the file (or trailing bytes that are no header).
async fn read_header(
    source: &dyn ByteSource,
    offset: u64,
    first: bool,
) -> Result<Option<(Header, u64)>, AstroError> {
    let bad = |message: String| AstroError::Fits {
        name: source.name().to_string(),
        message,
    };
    let mut want = 2 * BLOCK;
    loop {
        let bytes = source.read(offset, want).await?;
        if bytes.is_empty() && !first {
            return Ok(None);
        }
        let whole = bytes.len() as u64 / BLOCK * BLOCK;
        match header::parse(&bytes[..whole as usize]) {
            Ok(header::Parsed::Complete(h, len)) => return Ok(Some((h, len))),
            Ok(header::Parsed::NeedMore) if (bytes.len() as u64) < want => {
                return if first {
                    Err(bad("the file ends inside its first header".into()))
                } else {
                    Ok(None)
                };
            }
            Ok(header::Parsed::NeedMore) if want >= MAX_HEADER_BYTES => {
                return Err(bad("a header longer than 64 MiB (no END card)".into()));
            }
            Ok(header::Parsed::NeedMore) => want *= 2,
            Err(message) if first => return Err(bad(message)),
            // Special records after the last HDU are allowed (FITS 4.0 §3.5).
            Err(_) => return Ok(None),
        }
    }
}

/// A gzip file seen decompressed, inflated forward as far as reads go.
struct Inflated<'a> {
    source: &'a dyn ByteSource,
    state: Mutex<InflateState>,
}

struct InflateState {
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    compressed_read: u64,
}

impl<'a> Inflated<'a> {
    fn new(source: &'a dyn ByteSource) -> Self {
        Inflated {
            source,
            state: Mutex::new(InflateState {
                decoder: flate2::write::MultiGzDecoder::new(Vec::new()),
                compressed_read: 0,
            }),
        }
    }
}

#[async_trait]
impl ByteSource for Inflated<'_> {
    fn name(&self) -> &str {
        self.source.name()
    }
    fn size(&self) -> u64 {
        u64::MAX
    }
    async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AstroError> {
        let end = offset.saturating_add(len);
        let mut chunk = 64 * 1024u64;
        loop {
            let (have, at) = {
                let state = self.state.lock();
                (state.decoder.get_ref().len() as u64, state.compressed_read)
            };
            if have >= end || at >= self.source.size() {
                let state = self.state.lock();
                let data = state.decoder.get_ref();
                let start = (offset as usize).min(data.len());
                let stop = (end as usize).min(data.len());
                return Ok(Bytes::copy_from_slice(&data[start..stop]));
            }
            let compressed = self.source.read(at, chunk).await?;
            let mut state = self.state.lock();
            let fed = std::io::Write::write_all(&mut state.decoder, &compressed)
                .and_then(|()| std::io::Write::flush(&mut state.decoder));
            fed.map_err(|e| AstroError::Fits {
                name: self.source.name().to_string(),
                message: format!("gzip: {e}"),
            })?;
            state.compressed_read += compressed.len() as u64;
            if compressed.is_empty() {
                state.compressed_read = self.source.size();
            }
            chunk = (chunk * 2).min(8 * 1024 * 1024);
        }
    }
}

/// Decompresses a whole gzip file held in memory (for cutouts of `.fits.gz` files).
pub fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>, AstroError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| AstroError::Fits {
            name: name.to_string(),
            message: format!("gzip: {e}"),
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(text: &str) -> String {
        format!("{text:<80}")
    }

    /// A primary header without data and one IMAGE extension of 3×2 16-bit pixels.
    fn two_hdu_file() -> Vec<u8> {
        let mut out = Vec::new();
        let mut primary = String::new();
        for c in [
            "SIMPLE  = T",
            "BITPIX  = 8",
            "NAXIS   = 0",
            "EXTEND  = T",
            "END",
        ] {
            primary.push_str(&card(c));
        }
        out.extend_from_slice(primary.as_bytes());
        out.resize(2880, b' ');
        let mut ext = String::new();
        for c in [
            "XTENSION= 'IMAGE   '",
            "BITPIX  = 16",
            "NAXIS   = 2",
            "NAXIS1  = 3",
            "NAXIS2  = 2",
            "PCOUNT  = 0",
            "GCOUNT  = 1",
            "EXTNAME = 'SCI     '",
            "END",
        ] {
            ext.push_str(&card(c));
        }
        out.extend_from_slice(ext.as_bytes());
        out.resize(2 * 2880, b' ');
        out.extend_from_slice(&[0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6]);
        out.resize(3 * 2880, 0);
        out
    }

    #[tokio::test]
    async fn walks_hdus_and_finds_the_image_extension() {
        let source = MemorySource {
            name: "t.fits".into(),
            bytes: Bytes::from(two_hdu_file()),
        };
        let layout = read_layout(&source).await.expect("layout");
        assert!(!layout.gzipped);
        assert_eq!(layout.hdus.len(), 2);
        assert!(!layout.hdus[0].is_image());
        let sci = &layout.hdus[1];
        assert!(sci.is_image());
        assert_eq!(sci.extname().as_deref(), Some("SCI"));
        assert_eq!(sci.data_offset, 2 * 2880);
        assert_eq!(sci.data_bytes, 12);
    }

    #[tokio::test]
    async fn reads_gzip_files_as_a_stream() {
        let plain = two_hdu_file();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &plain).expect("gzip");
        let gz = enc.finish().expect("gzip");
        let source = MemorySource {
            name: "t.fits.gz".into(),
            bytes: Bytes::from(gz),
        };
        let layout = read_layout(&source).await.expect("layout");
        assert!(layout.gzipped);
        assert_eq!(layout.hdus.len(), 2);
        assert!(layout.hdus[1].is_image());
    }

    #[tokio::test]
    async fn refuses_files_that_are_not_fits() {
        let source = MemorySource {
            name: "notes.fits".into(),
            bytes: Bytes::from_static(b"hello, this is not a FITS file"),
        };
        let err = read_layout(&source).await.expect_err("not FITS");
        assert!(err.to_string().contains("notes.fits"), "{err}");
    }
}
