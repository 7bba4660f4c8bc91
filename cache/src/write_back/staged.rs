//! Staged files: the local copies of files being written, one file per version under
//! `<write-back dir>/staged/<id>`, read and written with positioned I/O.
//!
//! A staged file referenced by a pending upload is *sealed*: its bytes are exactly what the program
//! had written when it closed (or fsynced) the file, and a later write goes to a copy instead — so
//! an upload never sends a mix of two versions, whatever a program does meanwhile. A staged file is
//! removed when the last holder lets go of it and the journal no longer needs it (`discard`).
//!
//! Files are recycled ([`Spares`]): one no longer needed is emptied and renamed to a spare, and a
//! new one is a spare renamed to its id, so a burst of small files (`tar x`, `git clone`) costs
//! no inode allocation per file.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// Where the file goes when it is discarded, instead of being removed.
    spares: Option<Arc<Spares>>,
}

/// How many emptied staged files are kept for reuse.
const SPARES_MAX: usize = 8192;

/// Emptied staged files kept for the next ones, as `staged/spare-<n>`. Creating a file allocates
/// an inode, and removing one frees it: on ext4 without a journal (this project's CI machine)
/// every allocation scans past the inodes freed in the last 30 s, so a `tar x` of 5,000 small
/// files, whose uploads end while it still writes, spent 40% of colo's CPU time in `open`. A
/// recycled file costs a rename and a truncate. At start, spares are removed like every other
/// file no pending change names.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    names: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

impl Spares {
    /// The spares of the staged files in `dir` (none yet).
    pub fn new(dir: &Path) -> Arc<Spares> {
        Arc::new(Spares {
            dir: dir.to_path_buf(),
            names: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    /// A new empty staged file `id`: a spare renamed, or else a new file.
    pub fn new_file(self: &Arc<Self>, id: u64) -> io::Result<StagedFile> {
        let path = self.dir.join(id.to_string());
        let file = match self.take(&path) {
            Some(file) => file,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        };
        Ok(StagedFile::wrap(id, path, file, 0).returning_to(self))
    }

    /// A copy of `from` as staged file `id`, written into a spare where there is one.
    pub fn copy_of(self: &Arc<Self>, from: &StagedFile, id: u64) -> io::Result<StagedFile> {
        // The copy truncates and fills the spare now at its path instead of creating a file.
        drop(self.take(&self.dir.join(id.to_string())));
        Ok(from.copy_to(&self.dir, id)?.returning_to(self))
    }

    /// How many spares are kept now.
    pub fn len(&self) -> usize {
        self.names.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A spare renamed to `path`, opened; `None` when there is none (or it could not be used).
    fn take(&self, path: &Path) -> Option<File> {
        loop {
            let spare = self.names.lock().pop()?;
            if fs::rename(&spare, path).is_err() {
                continue;
            }
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .truncate(true)
                .open(path);
            if opened.is_err() {
                let _ = fs::remove_file(path);
            }
            return opened.ok();
        }
    }

    /// Keeps the file at `path` (no longer needed) as a spare, emptied; false when it is not kept.
    fn give(&self, path: &Path, file: &File) -> bool {
        if self.names.lock().len() >= SPARES_MAX || file.set_len(0).is_err() {
            return false;
        }
        let spare = self.dir.join(format!(
            "spare-{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        if fs::rename(path, &spare).is_err() {
            return false;
        }
        self.names.lock().push(spare);
        true
    }
}

impl StagedFile {
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
            spares: None,
        }
    }

    /// Recycled into `spares` when discarded, instead of removed.
    pub fn returning_to(mut self, spares: &Arc<Spares>) -> StagedFile {
        self.spares = Some(spares.clone());
        self
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
        if self.discard.load(Ordering::SeqCst)
            && !self
                .spares
                .as_ref()
                .is_some_and(|s| s.give(&self.path, &self.file))
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn inode(path: &Path) -> u64 {
        fs::metadata(path).expect("metadata").ino()
    }

    #[test]
    fn a_discarded_file_becomes_the_next_one_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spares = Spares::new(dir.path());
        let first = spares.new_file(1).expect("new");
        first.write_at(0, b"hello").expect("write");
        let ino = inode(first.path());
        drop(first); // nothing in the journal names it
        assert!(!dir.path().join("1").exists());
        assert_eq!(spares.len(), 1);

        let second = spares.new_file(2).expect("new");
        assert_eq!(
            inode(second.path()),
            ino,
            "the spare's inode, not a new one"
        );
        assert_eq!(fs::metadata(second.path()).expect("metadata").len(), 0);
        assert_eq!(second.read_at(0, 10).expect("read"), b"");
        assert!(spares.is_empty());

        // A copy is written into a spare too.
        second.write_at(0, b"sealed bytes").expect("write");
        second.seal();
        let third = spares.new_file(3).expect("new");
        let ino = inode(third.path());
        drop(third);
        let copy = spares.copy_of(&second, 4).expect("copy");
        assert_eq!(inode(copy.path()), ino);
        assert_eq!(copy.read_at(0, 100).expect("read"), b"sealed bytes");

        // A file the journal refers to stays where it is.
        copy.keep();
        drop(copy);
        assert_eq!(
            fs::read(dir.path().join("4")).expect("kept"),
            b"sealed bytes"
        );
        assert!(spares.is_empty());
    }

    #[test]
    fn spares_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spares = Spares::new(dir.path());
        let files: Vec<_> = (0..SPARES_MAX as u64 + 3)
            .map(|id| spares.new_file(id).expect("new"))
            .collect();
        drop(files);
        assert_eq!(spares.len(), SPARES_MAX);
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            SPARES_MAX,
            "the files past the bound are removed"
        );
    }
}
