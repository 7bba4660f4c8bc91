//! Tile-compressed images (FITS 4.0 §10) read as if they were plain images.
//!
//! [`TiledImage`] is a [`ByteSource`] over the uncompressed image's big-endian pixels (offset 0 =
//! first pixel), so cutouts and previews work on it unchanged. A read fetches only the tiles it
//! touches: their table rows (the heap descriptors), then their compressed bytes, each tile once,
//! all of one `read_many` together; decompressed tiles are kept for the life of the source (one
//! request). Codecs: RICE_1 (BLOCKSIZE, BYTEPIX), GZIP_1, GZIP_2 (byte-shuffled), NOCOMPRESS, and
//! tiles stored uncompressed-gzipped in `GZIP_COMPRESSED_DATA`; quantized floating-point images
//! are restored with ZSCALE/ZZERO and NO_DITHER, SUBTRACTIVE_DITHER_1 or _2 (the standard's
//! random sequence, §10.2.1). PLIO_1 and HCOMPRESS_1 are refused by name.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{ByteSource, Hdu, Header};
use crate::error::AstroError;

/// A table column: where it is in a row and how to read it.
#[derive(Debug, Clone, Copy)]
struct Column {
    offset: u64,
    kind: ColumnKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ColumnKind {
    /// Variable-length array descriptor: 32-bit (P) or 64-bit (Q) count and heap offset.
    Descriptor {
        wide: bool,
    },
    Float64,
    Float32,
    Int32,
    Int64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Codec {
    Rice { block: usize, bytepix: usize },
    Gzip1,
    Gzip2,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dither {
    None,
    Subtractive1,
    Subtractive2,
}

/// Per-tile value or a keyword constant (ZSCALE, ZZERO, ZBLANK).
#[derive(Debug, Clone, Copy)]
enum PerTile {
    Column(Column),
    Constant(f64),
}

/// A tile-compressed image HDU opened for reading.
pub struct TiledImage {
    source: Arc<dyn ByteSource>,
    name: String,
    bitpix: i64,
    axes: Vec<u64>,
    tile: Vec<u64>,
    table_offset: u64,
    row_bytes: u64,
    heap_offset: u64,
    data: Column,
    gzip_data: Option<Column>,
    codec: Codec,
    scale: Option<PerTile>,
    zero: Option<PerTile>,
    blank: Option<PerTile>,
    dither: Dither,
    dither_seed: i64,
    tiles: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
}

fn unsupported(name: &str, message: String) -> AstroError {
    AstroError::Fits {
        name: name.to_string(),
        message,
    }
}

impl TiledImage {
    /// Opens HDU `hdu` (a BINTABLE with `ZIMAGE = T`) of `source`.
    pub fn open(source: Arc<dyn ByteSource>, hdu: &Hdu) -> Result<TiledImage, AstroError> {
        let name = source.name().to_string();
        let h = &hdu.header;
        let bad = |m: String| unsupported(&name, m);
        let bitpix = h.int("ZBITPIX").ok_or_else(|| bad("no ZBITPIX".into()))?;
        // (A ZBITPIX of 74 made 9-byte pixels and an overflow: found by fuzzing.)
        if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
            return Err(bad(format!("ZBITPIX = {bitpix} is not a FITS pixel type")));
        }
        let naxes = h.int("ZNAXIS").unwrap_or(0).max(0) as usize;
        let axes: Vec<u64> = (1..=naxes)
            .map(|i| h.int(&format!("ZNAXIS{i}")).unwrap_or(0).max(0) as u64)
            .collect();
        let tile: Vec<u64> = (1..=naxes)
            .map(|i| {
                let default = if i == 1 { axes[0] } else { 1 };
                h.int(&format!("ZTILE{i}"))
                    .map_or(default, |v| v.max(1) as u64)
            })
            .collect();
        let columns = table_columns(h).map_err(&bad)?;
        let find = |n: &str| columns.get(n).copied();
        let data =
            find("COMPRESSED_DATA").ok_or_else(|| bad("no COMPRESSED_DATA column".into()))?;
        let zval = |wanted: &str| {
            (1..=20).find_map(|i| {
                (h.text(&format!("ZNAME{i}"))?.eq_ignore_ascii_case(wanted))
                    .then(|| h.int(&format!("ZVAL{i}")))
                    .flatten()
            })
        };
        let cmptype = h.text("ZCMPTYPE").unwrap_or_default().to_ascii_uppercase();
        let codec = match cmptype.as_str() {
            "RICE_1" | "RICE_ONE" => Codec::Rice {
                block: zval("BLOCKSIZE").unwrap_or(32).max(1) as usize,
                // FITS 4.0 §10.4.1: BYTEPIX defaults to 4 whatever ZBITPIX is.
                bytepix: zval("BYTEPIX").map_or(4, |v| v as usize),
            },
            "GZIP_1" => Codec::Gzip1,
            "GZIP_2" => Codec::Gzip2,
            "NOCOMPRESS" => Codec::None,
            other => {
                return Err(bad(format!(
                    "tile compression {other:?} is not supported (RICE_1, GZIP_1, GZIP_2 and NOCOMPRESS are)"
                )));
            }
        };
        let per_tile = |key: &str| match find(key) {
            Some(c) => Some(PerTile::Column(c)),
            None => h.float(key).map(PerTile::Constant),
        };
        let dither = match h
            .text("ZQUANTIZ")
            .map(|q| q.to_ascii_uppercase())
            .as_deref()
        {
            Some("SUBTRACTIVE_DITHER_1") => Dither::Subtractive1,
            Some("SUBTRACTIVE_DITHER_2") => Dither::Subtractive2,
            _ => Dither::None,
        };
        let row_bytes = h.int("NAXIS1").unwrap_or(0).max(0) as u64;
        let rows = h.int("NAXIS2").unwrap_or(0).max(0) as u64;
        let theap = h.int("THEAP").map_or(row_bytes * rows, |v| v.max(0) as u64);
        let expected_tiles: u64 = axes
            .iter()
            .zip(&tile)
            .map(|(&n, &t)| n.div_ceil(t))
            .product();
        if expected_tiles != rows {
            return Err(bad(format!(
                "{rows} table rows for {expected_tiles} tiles: not a valid tile-compressed image"
            )));
        }
        Ok(TiledImage {
            source,
            name,
            bitpix,
            axes,
            tile,
            table_offset: hdu.data_offset,
            row_bytes,
            heap_offset: hdu.data_offset + theap,
            data,
            gzip_data: find("GZIP_COMPRESSED_DATA"),
            codec,
            scale: per_tile("ZSCALE"),
            zero: per_tile("ZZERO"),
            blank: per_tile("ZBLANK"),
            dither,
            dither_seed: h.int("ZDITHER0").unwrap_or(1),
            tiles: Mutex::default(),
        })
    }

    fn pixel_bytes(&self) -> u64 {
        (self.bitpix.unsigned_abs() / 8).max(1)
    }

    /// For pixel `p` (linear, axis 1 fastest): its tile, its index within the tile, and how many
    /// pixels from it on lie in the same tile along axis 1.
    fn locate(&self, mut p: u64) -> (u64, u64, u64) {
        let (mut tile_index, mut tile_stride) = (0u64, 1u64);
        let (mut within, mut within_stride) = (0u64, 1u64);
        let mut run = 0;
        for (axis, (&n, &t)) in self.axes.iter().zip(&self.tile).enumerate() {
            let coord = p % n;
            p /= n;
            let (tile_at, start) = (coord / t, (coord / t) * t);
            let extent = t.min(n - start);
            if axis == 0 {
                run = extent - (coord - start);
            }
            tile_index += tile_at * tile_stride;
            tile_stride *= n.div_ceil(t);
            within += (coord - start) * within_stride;
            within_stride *= extent;
        }
        (tile_index, within, run)
    }

    /// Pixels of a tile (edge tiles are smaller).
    fn tile_pixels(&self, mut tile_index: u64) -> u64 {
        let mut count = 1;
        for (&n, &t) in self.axes.iter().zip(&self.tile) {
            let per_axis = n.div_ceil(t);
            let start = (tile_index % per_axis) * t;
            tile_index /= per_axis;
            count *= t.min(n - start);
        }
        count
    }

    /// Fetches and decompresses the tiles not yet held.
    async fn load(&self, wanted: BTreeSet<u64>) -> Result<(), AstroError> {
        let missing: Vec<u64> = {
            let held = self.tiles.lock();
            wanted
                .into_iter()
                .filter(|t| !held.contains_key(t))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let row_ranges: Vec<(u64, u64)> = missing
            .iter()
            .map(|&t| (self.table_offset + t * self.row_bytes, self.row_bytes))
            .collect();
        let rows = self.source.read_many(&row_ranges).await?;
        let mut heap_ranges = Vec::with_capacity(missing.len());
        for row in &rows {
            let (mut count, mut offset) = descriptor(row, self.data)?;
            if count == 0
                && let Some(gz) = self.gzip_data
            {
                (count, offset) = descriptor(row, gz)?;
            }
            heap_ranges.push((self.heap_offset + offset, count));
        }
        let compressed = self.source.read_many(&heap_ranges).await?;
        for ((&tile, row), bytes) in missing.iter().zip(&rows).zip(&compressed) {
            let plain = self.decode(tile, row, bytes)?;
            self.tiles.lock().insert(tile, Arc::new(plain));
        }
        Ok(())
    }

    /// One tile's pixels as big-endian BITPIX values.
    fn decode(&self, tile: u64, row: &[u8], bytes: &[u8]) -> Result<Vec<u8>, AstroError> {
        let npix = self.tile_pixels(tile) as usize;
        let raw_fallback = descriptor(row, self.data)?.0 == 0;
        if raw_fallback {
            // Stored without quantization: gzip'ed BITPIX values.
            let plain = self.inflate(bytes)?;
            return self.sized(plain, npix);
        }
        let ints: Vec<i64> = match self.codec {
            Codec::Rice { block, bytepix } => rice_decode(bytes, npix, block, bytepix)
                .map_err(|m| unsupported(&self.name, format!("tile {tile}: {m}")))?,
            Codec::Gzip1 | Codec::Gzip2 | Codec::None => {
                let plain = if self.codec == Codec::None {
                    bytes.to_vec()
                } else {
                    self.inflate(bytes)?
                };
                if plain.len() % npix.max(1) != 0 {
                    return Err(unsupported(
                        &self.name,
                        format!("tile {tile}: {} bytes for {npix} pixels", plain.len()),
                    ));
                }
                let width = plain.len() / npix.max(1);
                // (An empty tile made this 0 and `chunks_exact` panicked: found by fuzzing.)
                if !matches!(width, 1 | 2 | 4 | 8) {
                    return Err(unsupported(
                        &self.name,
                        format!(
                            "tile {tile}: {} bytes for {npix} pixels is not 1, 2, 4 or 8 bytes a pixel",
                            plain.len()
                        ),
                    ));
                }
                let plain = if self.codec == Codec::Gzip2 {
                    unshuffle(&plain, width)
                } else {
                    plain
                };
                let quantized = self.bitpix < 0 && self.scale.is_some();
                if self.bitpix < 0 && !quantized {
                    return self.sized(plain, npix);
                }
                plain
                    .chunks_exact(width)
                    .map(|c| be_int(c, self.bitpix == 8 && width == 1))
                    .collect()
            }
        };
        if self.bitpix > 0 {
            let width = self.pixel_bytes() as usize;
            let mut out = Vec::with_capacity(npix * width);
            for v in ints {
                out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
            }
            return Ok(out);
        }
        self.unquantize(tile, row, &ints)
    }

    fn per_tile(&self, row: &[u8], value: Option<PerTile>) -> Option<f64> {
        match value? {
            PerTile::Constant(v) => Some(v),
            PerTile::Column(c) => {
                let at = c.offset as usize;
                let take = |n: usize| row.get(at..at + n);
                match c.kind {
                    ColumnKind::Float64 => Some(f64::from_be_bytes(take(8)?.try_into().ok()?)),
                    ColumnKind::Float32 => {
                        Some(f32::from_be_bytes(take(4)?.try_into().ok()?) as f64)
                    }
                    ColumnKind::Int32 => Some(i32::from_be_bytes(take(4)?.try_into().ok()?) as f64),
                    ColumnKind::Int64 => Some(i64::from_be_bytes(take(8)?.try_into().ok()?) as f64),
                    ColumnKind::Descriptor { .. } => None,
                }
            }
        }
    }

    /// Quantized integers back to floats (FITS 4.0 §10.2.1; cfitsio's sequence of randoms).
    fn unquantize(&self, tile: u64, row: &[u8], ints: &[i64]) -> Result<Vec<u8>, AstroError> {
        let scale = self.per_tile(row, self.scale).unwrap_or(1.0);
        let zero = self.per_tile(row, self.zero).unwrap_or(0.0);
        let blank = self.per_tile(row, self.blank).map(|b| b as i64);
        let randoms = random_sequence();
        let mut seed = ((tile as i64 + self.dither_seed - 1).rem_euclid(N_RANDOM as i64)) as usize;
        let mut next = (randoms[seed] * 500.0) as usize;
        let wide = self.bitpix == -64;
        let mut out = Vec::with_capacity(ints.len() * if wide { 8 } else { 4 });
        for &i in ints {
            let value = if Some(i) == blank {
                f64::NAN
            } else if self.dither == Dither::Subtractive2 && i == ZERO_VALUE {
                0.0
            } else if self.dither == Dither::None {
                i as f64 * scale + zero
            } else {
                (i as f64 - randoms[next] as f64 + 0.5) * scale + zero
            };
            if wide {
                out.extend_from_slice(&value.to_be_bytes());
            } else {
                out.extend_from_slice(&(value as f32).to_be_bytes());
            }
            if self.dither != Dither::None {
                next += 1;
                if next == N_RANDOM {
                    seed = (seed + 1) % N_RANDOM;
                    next = (randoms[seed] * 500.0) as usize;
                }
            }
        }
        Ok(out)
    }

    fn inflate(&self, bytes: &[u8]) -> Result<Vec<u8>, AstroError> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| unsupported(&self.name, format!("a GZIP tile does not inflate: {e}")))?;
        Ok(out)
    }

    fn sized(&self, plain: Vec<u8>, npix: usize) -> Result<Vec<u8>, AstroError> {
        if plain.len() != npix * self.pixel_bytes() as usize {
            return Err(unsupported(
                &self.name,
                format!("a tile holds {} bytes for {npix} pixels", plain.len()),
            ));
        }
        Ok(plain)
    }

    /// Copies the uncompressed bytes `[offset, offset + len)` out of held tiles.
    fn assemble(&self, offset: u64, len: u64) -> Vec<u8> {
        let width = self.pixel_bytes();
        let total = self.axes.iter().product::<u64>() * width;
        let end = (offset + len).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let tiles = self.tiles.lock();
        let mut at = offset;
        while at < end {
            let p = at / width;
            let (tile, within, run) = self.locate(p);
            let skip = at - p * width;
            let take = (run * width - skip).min(end - at);
            let start = (within * width + skip) as usize;
            match tiles.get(&tile) {
                Some(bytes) => out.extend_from_slice(&bytes[start..start + take as usize]),
                None => out.resize(out.len() + take as usize, 0),
            }
            at += take;
        }
        out
    }

    fn tiles_of(&self, offset: u64, len: u64, into: &mut BTreeSet<u64>) {
        let width = self.pixel_bytes();
        let total = self.axes.iter().product::<u64>() * width;
        let end = (offset + len).min(total);
        let mut at = offset;
        while at < end {
            let p = at / width;
            let (tile, _, run) = self.locate(p);
            into.insert(tile);
            at = (p + run) * width;
        }
    }
}

#[async_trait]
impl ByteSource for TiledImage {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> u64 {
        self.axes.iter().product::<u64>() * self.pixel_bytes()
    }

    async fn read(&self, offset: u64, len: u64) -> Result<Bytes, AstroError> {
        Ok(self.read_many(&[(offset, len)]).await?.remove(0))
    }

    async fn read_many(&self, ranges: &[(u64, u64)]) -> Result<Vec<Bytes>, AstroError> {
        let mut wanted = BTreeSet::new();
        for &(offset, len) in ranges {
            self.tiles_of(offset, len, &mut wanted);
        }
        self.load(wanted).await?;
        Ok(ranges
            .iter()
            .map(|&(offset, len)| Bytes::from(self.assemble(offset, len)))
            .collect())
    }
}

/// Columns by TTYPE, with their offsets in a row.
fn table_columns(h: &Header) -> Result<HashMap<String, Column>, String> {
    let mut out = HashMap::new();
    let mut offset = 0u64;
    for i in 1..=h.int("TFIELDS").unwrap_or(0) {
        let form = h
            .text(&format!("TFORM{i}"))
            .ok_or_else(|| format!("no TFORM{i}"))?
            .trim()
            .to_ascii_uppercase();
        let digits: String = form.chars().take_while(|c| c.is_ascii_digit()).collect();
        let repeat: u64 = if digits.is_empty() {
            1
        } else {
            digits.parse().unwrap_or(1)
        };
        let code = form[digits.len()..].chars().next().ok_or("empty TFORM")?;
        let (width, kind) = match code {
            'P' => (8, Some(ColumnKind::Descriptor { wide: false })),
            'Q' => (16, Some(ColumnKind::Descriptor { wide: true })),
            'D' => (8, Some(ColumnKind::Float64)),
            'E' => (4, Some(ColumnKind::Float32)),
            'J' => (4, Some(ColumnKind::Int32)),
            'K' => (8, Some(ColumnKind::Int64)),
            'L' | 'B' | 'A' => (1, None),
            'I' => (2, None),
            'C' => (8, None),
            'M' => (16, None),
            'X' => (0, None),
            other => return Err(format!("TFORM{i} {other:?} is not a FITS column type")),
        };
        let bytes = if code == 'X' {
            repeat.div_ceil(8)
        } else {
            width * repeat
        };
        if let (Some(kind), Some(name)) = (kind, h.text(&format!("TTYPE{i}"))) {
            out.insert(name.trim().to_ascii_uppercase(), Column { offset, kind });
        }
        offset += bytes;
    }
    Ok(out)
}

/// A variable-length array descriptor: (count, heap offset).
fn descriptor(row: &[u8], column: Column) -> Result<(u64, u64), AstroError> {
    let at = column.offset as usize;
    let short = || AstroError::Fits {
        name: "tile table".into(),
        message: "row shorter than its columns".into(),
    };
    match column.kind {
        ColumnKind::Descriptor { wide: false } => {
            let b = row.get(at..at + 8).ok_or_else(short)?;
            let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let offset = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            Ok((count as u64, offset as u64))
        }
        ColumnKind::Descriptor { wide: true } => {
            let b = row.get(at..at + 16).ok_or_else(short)?;
            let count = u64::from_be_bytes(b[0..8].try_into().map_err(|_| short())?);
            let offset = u64::from_be_bytes(b[8..16].try_into().map_err(|_| short())?);
            Ok((count, offset))
        }
        _ => Err(AstroError::Fits {
            name: "tile table".into(),
            message: "COMPRESSED_DATA is not a variable-length array".into(),
        }),
    }
}

fn be_int(bytes: &[u8], unsigned: bool) -> i64 {
    match bytes.len() {
        1 if unsigned => bytes[0] as i64,
        1 => bytes[0] as i8 as i64,
        2 => i16::from_be_bytes([bytes[0], bytes[1]]) as i64,
        4 => i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64,
        _ => i64::from_be_bytes(bytes.try_into().unwrap_or([0; 8])),
    }
}

/// GZIP_2: the bytes of each value were grouped by significance before compression.
fn unshuffle(shuffled: &[u8], width: usize) -> Vec<u8> {
    let n = shuffled.len() / width.max(1);
    let mut out = vec![0u8; shuffled.len()];
    for (plane, chunk) in shuffled.chunks_exact(n.max(1)).enumerate().take(width) {
        for (i, &b) in chunk.iter().enumerate() {
            out[i * width + plane] = b;
        }
    }
    out
}

/// Rice decoding (FITS 4.0 §10.4.1; the layout of cfitsio's `fits_rdecomp`): the first value
/// verbatim, then per block of `block` pixels a `fsbits`-bit code: 0 = all differences zero, the
/// maximum = raw differences, else Golomb-Rice coded differences with `fs = code - 1` low bits.
fn rice_decode(
    input: &[u8],
    npix: usize,
    block: usize,
    bytepix: usize,
) -> Result<Vec<i64>, String> {
    let (fsbits, fsmax, bbits) = match bytepix {
        1 => (3u32, 6i64, 8u32),
        2 => (4, 14, 16),
        4 => (5, 25, 32),
        other => return Err(format!("RICE_1 with BYTEPIX {other} is not defined")),
    };
    let mask = if bbits == 32 {
        u32::MAX as u64
    } else {
        (1u64 << bbits) - 1
    };
    let mut pos = 0usize;
    let mut next = || -> Result<u64, String> {
        let b = *input.get(pos).ok_or("compressed tile ends early")?;
        pos += 1;
        Ok(b as u64)
    };
    let mut lastpix: u64 = 0;
    for _ in 0..bytepix {
        lastpix = (lastpix << 8) | next()?;
    }
    let mut out = Vec::with_capacity(npix);
    let mut b = next()?;
    let mut nbits: i64 = 8;
    let undo = |diff: u64| -> u64 {
        if diff & 1 == 0 {
            diff >> 1
        } else {
            !(diff >> 1) & mask
        }
    };
    let mut i = 0;
    while i < npix {
        let imax = (i + block).min(npix);
        nbits -= fsbits as i64;
        while nbits < 0 {
            b = (b << 8) | next()?;
            nbits += 8;
        }
        let fs = (b >> nbits) as i64 - 1;
        b &= (1u64 << nbits) - 1;
        if fs < 0 {
            out.extend(std::iter::repeat_n(lastpix, imax - i));
        } else if fs == fsmax {
            for _ in i..imax {
                let mut k = bbits as i64 - nbits;
                let mut diff = b << k.max(0);
                k -= 8;
                while k >= 0 {
                    b = next()?;
                    diff |= b << k;
                    k -= 8;
                }
                if nbits > 0 {
                    b = next()?;
                    diff |= b >> (-k);
                    b &= (1u64 << nbits) - 1;
                } else {
                    b = 0;
                }
                lastpix = (undo(diff & mask).wrapping_add(lastpix)) & mask;
                out.push(lastpix);
            }
        } else {
            for _ in i..imax {
                while b == 0 {
                    nbits += 8;
                    b = next()?;
                }
                let nzero = nbits - (64 - b.leading_zeros() as i64);
                nbits -= nzero + 1;
                b ^= 1u64 << nbits;
                nbits -= fs;
                while nbits < 0 {
                    b = (b << 8) | next()?;
                    nbits += 8;
                }
                let diff = ((nzero as u64) << fs) | (b >> nbits);
                b &= (1u64 << nbits) - 1;
                lastpix = (undo(diff & mask).wrapping_add(lastpix)) & mask;
                out.push(lastpix);
            }
        }
        i = imax;
    }
    Ok(out
        .into_iter()
        .map(|v| match bytepix {
            1 => v as i64,
            2 => v as u16 as i16 as i64,
            _ => v as u32 as i32 as i64,
        })
        .collect())
}

const N_RANDOM: usize = 10_000;
/// SUBTRACTIVE_DITHER_2's code for an exact zero.
const ZERO_VALUE: i64 = -2_147_483_646;

/// The standard's 10,000 uniform randoms (Park–Miller, seed 1), as 32-bit floats like cfitsio's.
fn random_sequence() -> &'static [f32] {
    static RANDOMS: OnceLock<Vec<f32>> = OnceLock::new();
    RANDOMS.get_or_init(|| {
        let (a, m) = (16_807.0f64, 2_147_483_647.0f64);
        let mut seed = 1.0f64;
        (0..N_RANDOM)
            .map(|_| {
                let temp = a * seed;
                seed = temp - m * ((temp / m) as i64 as f64);
                (seed / m) as f32
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_sequence_matches_the_standard() {
        // FITS 4.0 §10.2.1 gives the 10,000th seed value: 1043618065.
        let r = random_sequence();
        assert_eq!(r.len(), N_RANDOM);
        assert!((r[N_RANDOM - 1] as f64 * 2_147_483_647.0 - 1_043_618_065.0).abs() < 200.0);
    }

    #[test]
    fn unshuffle_inverts_gzip2_grouping() {
        let plain = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let shuffled = [1u8, 5, 2, 6, 3, 7, 4, 8];
        assert_eq!(unshuffle(&shuffled, 4), plain);
    }

    #[test]
    fn rice_low_entropy_block_repeats_the_first_value() {
        // First value 7 (bytepix 2), then fs code 0 (4 bits) = a block of equal values.
        let bytes = [0x00, 0x07, 0x00];
        assert_eq!(rice_decode(&bytes, 5, 32, 2).expect("decodes"), vec![7; 5]);
    }
}
