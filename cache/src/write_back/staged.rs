//! Staged files: the local copies of files being written, one file per version under
//! `<write-back dir>/staged/<id>`, read and written with positioned I/O.
//!
//! A staged file referenced by a pending upload is *sealed*: its bytes are exactly what the program
//! had written when it closed (or fsynced) the file, and a later write goes to a copy instead — so
//! an upload never sends a mix of two versions, whatever a program does meanwhile. A staged file is
//! removed when the last holder lets go of it and the journal no longer needs it (`discard`).
//!
//! A sealed file's CRC-32 goes into its journal record: after a power loss the journal may have
//! reached the disk while the staged bytes (never fsynced) did not, and the check at restart
//! ([`StagedFile::intact`]) tells the two apart, so a torn copy is never uploaded.

use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

#[derive(Debug)]
pub struct StagedFile {
    id: u64,
    path: PathBuf,
    file: File,
    size: AtomicU64,
    mtime: Mutex<SystemTime>,
    sealed: AtomicBool,
    /// The CRC-32 of the sealed bytes, once computed.
    crc32: OnceLock<u32>,
    /// Delete the file when dropped (nothing in the journal refers to it).
    discard: AtomicBool,
}

impl StagedFile {
    /// A new empty staged file `id` in `dir`.
    pub fn create(dir: &Path, id: u64) -> io::Result<StagedFile> {
        let path = dir.join(id.to_string());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(StagedFile::wrap(id, path, file, 0))
    }

    /// The staged file `id` left in `dir` by an earlier run, sealed (a pending upload's bytes).
    pub fn reopen(dir: &Path, id: u64) -> io::Result<StagedFile> {
        let path = dir.join(id.to_string());
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let staged = StagedFile::wrap(id, path, file, size);
        staged.seal();
        staged.keep();
        Ok(staged)
    }

    /// A copy of `self` as staged file `id` (the kernel copies; a reflink where the disk can).
    pub fn copy_to(&self, dir: &Path, id: u64) -> io::Result<StagedFile> {
        let path = dir.join(id.to_string());
        fs::copy(&self.path, &path)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let copy = StagedFile::wrap(id, path, file, self.size());
        *copy.mtime.lock() = self.mtime();
        Ok(copy)
    }

    fn wrap(id: u64, path: PathBuf, file: File, size: u64) -> StagedFile {
        StagedFile {
            id,
            path,
            file,
            size: AtomicU64::new(size),
            mtime: Mutex::new(SystemTime::now()),
            sealed: AtomicBool::new(false),
            crc32: OnceLock::new(),
            discard: AtomicBool::new(true),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    pub fn mtime(&self) -> SystemTime {
        *self.mtime.lock()
    }

    pub fn set_mtime(&self, t: SystemTime) {
        *self.mtime.lock() = t;
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::SeqCst)
    }

    pub(crate) fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
    }

    /// The journal refers to this file: keep it on disk.
    pub(crate) fn keep(&self) {
        self.discard.store(false, Ordering::SeqCst);
    }

    /// The journal no longer refers to it: remove it once no one holds it.
    pub(crate) fn discard(&self) {
        self.discard.store(true, Ordering::SeqCst);
    }

    /// Bytes `[offset, offset + len)`, clamped to the size.
    pub fn read_at(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len).min(self.size());
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        debug_assert!(!self.is_sealed(), "a sealed staged file is never written");
        if data.is_empty() {
            // As write(2): writing nothing at any offset changes nothing.
            return Ok(());
        }
        self.file.write_all_at(data, offset)?;
        self.size
            .fetch_max(offset + data.len() as u64, Ordering::SeqCst);
        self.set_mtime(SystemTime::now());
        Ok(())
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.size.store(len, Ordering::SeqCst);
        self.set_mtime(SystemTime::now());
        Ok(())
    }

    /// The CRC-32 of the bytes (cached once sealed: they no longer change).
    pub fn checksum(&self) -> io::Result<u32> {
        if let Some(crc) = self.crc32.get() {
            return Ok(*crc);
        }
        let crc = crc32_of(&self.path, self.size())?;
        if self.is_sealed() {
            let _ = self.crc32.set(crc);
        }
        Ok(crc)
    }

    /// Whether the file holds what a journal record says was sealed: `size` bytes with CRC-32
    /// `crc32` (records of older versions have none: then the size alone).
    pub(crate) fn intact(&self, size: u64, crc32: Option<u32>) -> io::Result<bool> {
        if self.file.metadata()?.len() != size {
            return Ok(false);
        }
        Ok(match crc32 {
            Some(expected) => self.checksum()? == expected,
            None => true,
        })
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// The CRC-32 of the first `size` bytes of the file at `path` (an error if it is shorter).
fn crc32_of(path: &Path, size: u64) -> io::Result<u32> {
    let mut file = File::open(path)?.take(size);
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    if read != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} has {read} of {size} bytes", path.display()),
        ));
    }
    Ok(hasher.finalize())
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.discard.load(Ordering::SeqCst) {
            let _ = fs::remove_file(&self.path);
        }
    }
}
