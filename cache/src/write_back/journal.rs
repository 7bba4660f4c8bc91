//! The write-back journal: an append-only file of length-prefixed, CRC-checked records, one per
//! change a program made to a writable volume, and one `Done` per change applied at the origin.
//!
//! Durability: records are appended with `write` (in the page cache at once, so a `kill -9` of
//! colo loses nothing); [`Journal::sync`] (on `fsync` from a program) makes them survive a power
//! loss. Reading stops at the first torn or corrupt record — a record is only ever lost from the
//! tail, never from the middle — and at start the pending records are rewritten to a new file
//! renamed over the old one (compaction), so the journal's size follows what is pending.
//!
//! Encoding (little-endian): `len: u32, crc32(payload): u32, payload`; payload = `tag: u8,
//! seq: u64`, then the fields of the record; strings as `len: u32` + UTF-8.

use colo_connectors::ObjectIdentity;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What the origin copy of a file was when a program began to change it: the conflict check of
/// an upload compares it with the origin's copy at upload time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The file was new here: an origin copy found at upload time is someone else's.
    New,
    /// The origin's version when the file was opened for writing.
    Version(ObjectIdentity),
    /// It follows an earlier change of ours still pending (no check: that change sets it).
    Ours,
}

/// One pending change, in the order programs made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file at `path` becomes the bytes of staged file `staged`.
    Upload {
        path: String,
        staged: u64,
        size: u64,
        /// The CRC-32 of the staged bytes (`None` in records of versions before it was kept).
        crc32: Option<u32>,
        base: Base,
    },
    Delete {
        path: String,
    },
    Mkdir {
        path: String,
    },
    /// A symbolic link at `path` to `target` (verbatim).
    Symlink {
        path: String,
        target: String,
    },
}

impl Change {
    /// The path this change touches.
    pub fn path(&self) -> &str {
        match self {
            Change::Upload { path, .. }
            | Change::Delete { path }
            | Change::Mkdir { path }
            | Change::Symlink { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Change { seq: u64, change: Change },
    Done { seq: u64 },
}

const TAG_UPLOAD: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_MKDIR: u8 = 3;
const TAG_DONE: u8 = 5;
/// An upload with the CRC-32 of its staged bytes (tag 1 is the same without it).
const TAG_UPLOAD_CRC: u8 = 6;
const TAG_SYMLINK: u8 = 7;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_base(out: &mut Vec<u8>, base: &Base) {
    match base {
        Base::New => out.push(0),
        Base::Ours => out.push(1),
        Base::Version(ObjectIdentity::ETag(e)) => {
            out.push(2);
            put_str(out, e);
        }
        Base::Version(ObjectIdentity::SizeMtime { size, mtime_ns }) => {
            out.push(3);
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&mtime_ns.to_le_bytes());
        }
    }
}

pub fn encode(record: &Record) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    match record {
        Record::Done { seq } => {
            p.push(TAG_DONE);
            p.extend_from_slice(&seq.to_le_bytes());
        }
        Record::Change { seq, change } => {
            let tag = match change {
                Change::Upload { crc32: None, .. } => TAG_UPLOAD,
                Change::Upload { crc32: Some(_), .. } => TAG_UPLOAD_CRC,
                Change::Delete { .. } => TAG_DELETE,
                Change::Mkdir { .. } => TAG_MKDIR,
                Change::Symlink { .. } => TAG_SYMLINK,
            };
            p.push(tag);
            p.extend_from_slice(&seq.to_le_bytes());
            match change {
                Change::Upload {
                    path,
                    staged,
                    size,
                    crc32,
                    base,
                } => {
                    put_str(&mut p, path);
                    p.extend_from_slice(&staged.to_le_bytes());
                    p.extend_from_slice(&size.to_le_bytes());
                    if let Some(crc) = crc32 {
                        p.extend_from_slice(&crc.to_le_bytes());
                    }
                    put_base(&mut p, base);
                }
                Change::Delete { path } | Change::Mkdir { path } => put_str(&mut p, path),
                Change::Symlink { path, target } => {
                    put_str(&mut p, path);
                    put_str(&mut p, target);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(p.len() + 8);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
    out
}

/// A cursor over one record's payload; every getter fails on a short payload.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        (self.0.len() >= n).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn i128(&mut self) -> Option<i128> {
        self.take(16)
            .map(|b| i128::from_le_bytes(b.try_into().expect("16 bytes")))
    }
    fn string(&mut self) -> Option<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn base(&mut self) -> Option<Base> {
        Some(match self.u8()? {
            0 => Base::New,
            1 => Base::Ours,
            2 => Base::Version(ObjectIdentity::ETag(self.string()?)),
            3 => Base::Version(ObjectIdentity::SizeMtime {
                size: self.u64()?,
                mtime_ns: self.i128()?,
            }),
            _ => return None,
        })
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut f = Fields(payload);
    let tag = f.u8()?;
    let seq = f.u64()?;
    let change = match tag {
        TAG_DONE => return Some(Record::Done { seq }),
        TAG_UPLOAD | TAG_UPLOAD_CRC => Change::Upload {
            path: f.string()?,
            staged: f.u64()?,
            size: f.u64()?,
            crc32: if tag == TAG_UPLOAD_CRC {
                Some(f.u32()?)
            } else {
                None
            },
            base: f.base()?,
        },
        TAG_DELETE => Change::Delete { path: f.string()? },
        TAG_MKDIR => Change::Mkdir { path: f.string()? },
        TAG_SYMLINK => Change::Symlink {
            path: f.string()?,
            target: f.string()?,
        },
        _ => return None,
    };
    Some(Record::Change { seq, change })
}

/// Every whole record of `bytes`, in order, up to the first torn or corrupt one.
pub fn decode_all(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        out.push(record);
        at += 8 + len;
    }
    out
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes appended since the file was (re)created.
    len: u64,
}

impl Journal {
    /// Opens the journal at `path`: returns the changes not yet done, in order, and the journal
    /// compacted to just those.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<(u64, Change)>)> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let records = decode_all(&bytes);
        let done: std::collections::HashSet<u64> = records
            .iter()
            .filter_map(|r| match r {
                Record::Done { seq } => Some(*seq),
                Record::Change { .. } => None,
            })
            .collect();
        let pending: Vec<(u64, Change)> = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Change { seq, change } if !done.contains(&seq) => Some((seq, change)),
                _ => None,
            })
            .collect();
        let compacted: Vec<u8> = pending
            .iter()
            .flat_map(|(seq, change)| {
                encode(&Record::Change {
                    seq: *seq,
                    change: change.clone(),
                })
            })
            .collect();
        let fresh = path.with_extension("compacting");
        {
            let mut f = File::create(&fresh)?;
            f.write_all(&compacted)?;
            f.sync_all()?;
        }
        fs::rename(&fresh, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len: compacted.len() as u64,
            },
            pending,
        ))
    }

    /// Appends `record` (durable against a crash of colo; [`Self::sync`] for a power loss).
    /// A failed append (a full disk) is cut off again, so a later record never follows a torn one
    /// (reading stops at the first torn record).
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let bytes = encode(record);
        if let Err(e) = self.file.write_all(&bytes) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Empties the journal once nothing is pending (its records are all done).
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::Change {
                seq: 1,
                change: Change::Upload {
                    path: "a/b.fits".into(),
                    staged: 7,
                    size: 2880,
                    crc32: Some(0xdead_beef),
                    base: Base::Version(ObjectIdentity::ETag("\"e1\"".into())),
                },
            },
            Record::Change {
                seq: 2,
                change: Change::Upload {
                    path: "c".into(),
                    staged: 8,
                    size: 0,
                    crc32: None,
                    base: Base::Version(ObjectIdentity::SizeMtime {
                        size: 3,
                        mtime_ns: -5,
                    }),
                },
            },
            Record::Change {
                seq: 3,
                change: Change::Delete {
                    path: "d é".into()
                },
            },
            Record::Done { seq: 1 },
            Record::Change {
                seq: 4,
                change: Change::Mkdir { path: "x".into() },
            },
            Record::Change {
                seq: 5,
                change: Change::Delete { path: "x".into() },
            },
            Record::Change {
                seq: 6,
                change: Change::Symlink {
                    path: "d/l".into(),
                    target: "../a b/ü".into(),
                },
            },
        ]
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let records = sample();
        let bytes: Vec<u8> = records.iter().flat_map(encode).collect();
        assert_eq!(decode_all(&bytes), records);
        for cut in 0..bytes.len() {
            let decoded = decode_all(&bytes[..cut]);
            assert!(decoded.len() < records.len(), "cut at {cut}");
            assert_eq!(
                decoded[..],
                records[..decoded.len()],
                "a prefix, cut at {cut}"
            );
        }
        let mut corrupt = bytes.clone();
        let second = encode(&records[0]).len() + 12;
        corrupt[second] ^= 0xff;
        assert_eq!(decode_all(&corrupt), records[..1]);
    }

    #[test]
    fn opening_compacts_to_the_pending_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal");
        let bytes: Vec<u8> = sample().iter().flat_map(encode).collect();
        fs::write(&path, &bytes).expect("write");
        let (mut journal, pending) = Journal::open(&path).expect("open");
        assert_eq!(
            pending.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6]
        );
        journal.append(&Record::Done { seq: 2 }).expect("append");
        drop(journal);
        let (_, pending) = Journal::open(&path).expect("reopen");
        assert_eq!(
            pending.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
    }
}
