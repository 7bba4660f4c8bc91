//! The kept modes, owners and times of one writable volume on disk ([`crate::kept`]), so that a
//! restart of colo finds them: an append-only log, `kept` in the volume's write-back area (beside
//! its journal), one line per change — an entry set, a path removed with what was below it, a path
//! renamed with what was below it. Opening replays it in order; a log grown to several times the
//! entries it leaves is rewritten whole (a new file renamed over the old, so a crash keeps one or
//! the other).
//!
//! Each record is handed to the kernel at once (one `write` of a whole line, no `fsync`): a
//! `kill -9` of colo loses nothing, a power loss may lose the last seconds of attribute changes
//! (never bytes: those are the journal's). A line cut short by a crash, or one this version cannot
//! read, is skipped. Paths are escaped (`%`, tab, newline, carriage return) so a name holding them
//! keeps its own line.

use crate::kept::{Kept, remove_below, rename_below};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The log's file name in the write-back area.
pub const KEPT_LOG_NAME: &str = "kept";

/// Records beyond the live entries before the log is rewritten: `max(4 × entries, this)`.
const COMPACT_MIN_RECORDS: usize = 10_000;

/// One change, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    Set(&'a str, &'a Kept),
    Remove(&'a str),
    Rename(&'a str, &'a str),
}

/// The open log of one volume.
#[derive(Debug)]
pub struct KeptLog {
    path: PathBuf,
    file: File,
    records: usize,
}

impl KeptLog {
    /// Opens (or starts) the log in `dir` and replays it into `paths`.
    pub fn open(dir: &Path, paths: &mut HashMap<String, Kept>) -> io::Result<KeptLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(KEPT_LOG_NAME);
        let mut records = 0;
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line?;
                    if let Some(change) = std::str::from_utf8(&line).ok().and_then(parse_line) {
                        apply(paths, &change.as_change());
                        records += 1;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(&path)?;
        // A line a crash cut short ends here, so that the next record starts a line of its own.
        let len = file.metadata()?.len();
        let mut last = [0u8; 1];
        if len > 0 && file.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
        let mut log = KeptLog {
            path,
            file,
            records,
        };
        if log.wants_compaction(paths.len()) {
            log.rewrite(paths)?;
        }
        Ok(log)
    }

    /// Appends `change` (one `write`).
    pub fn append(&mut self, change: &Change<'_>) -> io::Result<()> {
        let mut line = String::with_capacity(96);
        format_line(change, &mut line);
        self.file.write_all(line.as_bytes())?;
        self.records += 1;
        Ok(())
    }

    /// Whether the log holds enough dead records to be rewritten for `live` entries.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.records > (4 * live).max(COMPACT_MIN_RECORDS)
    }

    /// Rewrites the log as one `Set` per entry of `paths`: a new file, synced, renamed over the old.
    pub fn rewrite(&mut self, paths: &HashMap<String, Kept>) -> io::Result<()> {
        let tmp = self.path.with_extension("new");
        {
            let mut out = BufWriter::new(File::create(&tmp)?);
            let mut line = String::with_capacity(96);
            for (path, kept) in paths {
                line.clear();
                format_line(&Change::Set(path, kept), &mut line);
                out.write_all(line.as_bytes())?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.records = paths.len();
        Ok(())
    }
}

/// `change` applied to the entries of one volume; returns how many entries were added (negative:
/// removed).
pub fn apply(paths: &mut HashMap<String, Kept>, change: &Change<'_>) -> isize {
    match *change {
        Change::Set(path, kept) => {
            let added = paths.insert(path.to_string(), *kept).is_none();
            isize::from(added)
        }
        Change::Remove(path) => -(remove_below(paths, path) as isize),
        Change::Rename(from, to) => -(rename_below(paths, from, to) as isize),
    }
}

/// A parsed line, owning its paths.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Set(String, Kept),
    Remove(String),
    Rename(String, String),
}

impl Owned {
    fn as_change(&self) -> Change<'_> {
        match self {
            Owned::Set(p, k) => Change::Set(p, k),
            Owned::Remove(p) => Change::Remove(p),
            Owned::Rename(a, b) => Change::Rename(a, b),
        }
    }
}

fn format_line(change: &Change<'_>, out: &mut String) {
    use std::fmt::Write as _;
    match change {
        Change::Set(path, k) => {
            out.push_str("S\t");
            escape(path, out);
            match k.perm {
                Some(p) => {
                    let _ = write!(out, "\t{p:o}"); // a String takes every write
                }
                None => out.push_str("\t-"),
            }
            match k.owner {
                Some((u, g)) => {
                    let _ = write!(out, "\t{u}:{g}"); // a String takes every write
                }
                None => out.push_str("\t-"),
            }
            for t in [k.atime, k.mtime, k.ctime] {
                match t {
                    Some(t) => {
                        let _ = write!(out, "\t{}", nanos_of(t)); // a String takes every write
                    }
                    None => out.push_str("\t-"),
                }
            }
        }
        Change::Remove(path) => {
            out.push_str("D\t");
            escape(path, out);
        }
        Change::Rename(from, to) => {
            out.push_str("R\t");
            escape(from, out);
            out.push('\t');
            escape(to, out);
        }
    }
    out.push('\n');
}

fn parse_line(line: &str) -> Option<Owned> {
    let mut fields = line.split('\t');
    let tag = fields.next()?;
    let owned = match tag {
        "S" => {
            let path = unescape(fields.next()?)?;
            let perm = opt(fields.next()?, |s| u16::from_str_radix(s, 8).ok())?;
            let owner = opt(fields.next()?, |s| {
                let (u, g) = s.split_once(':')?;
                Some((u.parse().ok()?, g.parse().ok()?))
            })?;
            let mut times = [None; 3];
            for t in &mut times {
                *t = opt(fields.next()?, |s| s.parse::<i128>().ok().map(time_of))?;
            }
            Owned::Set(
                path,
                Kept {
                    perm,
                    owner,
                    atime: times[0],
                    mtime: times[1],
                    ctime: times[2],
                },
            )
        }
        "D" => Owned::Remove(unescape(fields.next()?)?),
        "R" => Owned::Rename(unescape(fields.next()?)?, unescape(fields.next()?)?),
        _ => return None,
    };
    fields.next().is_none().then_some(owned)
}

/// `-` is `None`; anything else must parse (`None` from `parse` makes the line unreadable).
fn opt<T>(field: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if field == "-" {
        Some(None)
    } else {
        parse(field).map(Some)
    }
}

fn nanos_of(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn time_of(nanos: i128) -> SystemTime {
    let d = Duration::from_nanos(nanos.unsigned_abs().min(u64::MAX as u128) as u64);
    if nanos >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

fn escape(path: &str, out: &mut String) {
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
}

fn unescape(field: &str) -> Option<String> {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "09" => '\t',
            "0A" => '\n',
            "0D" => '\r',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Kept {
        Kept {
            perm: Some(0o4750),
            owner: Some((1000, 65534)),
            atime: Some(UNIX_EPOCH - Duration::from_nanos(1_500_000_001)),
            mtime: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
            ctime: None,
        }
    }

    #[test]
    fn lines_round_trip_odd_names_and_times_before_the_epoch() {
        let kept = sample();
        for path in ["a/b c", "tab\there", "new\nline%0A", "100%", "ünï/çødé"] {
            for change in [
                Change::Set(path, &kept),
                Change::Remove(path),
                Change::Rename(path, "x/y"),
            ] {
                let mut line = String::new();
                format_line(&change, &mut line);
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
                let parsed = parse_line(line.trim_end_matches('\n')).expect("parses");
                assert_eq!(parsed.as_change(), change);
            }
        }
    }

    #[test]
    fn cut_or_unknown_lines_are_skipped() {
        let mut line = String::new();
        format_line(&Change::Set("f", &sample()), &mut line);
        let cut = &line[..line.len() - 5];
        assert!(parse_line(cut).is_none(), "{cut:?}");
        assert!(parse_line("X\tf").is_none());
        assert!(parse_line("D\tbad%zz").is_none());
        assert!(parse_line("D\tf\textra").is_none());
    }

    #[test]
    fn a_reopened_log_replays_in_order_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = HashMap::new();
        let mut log = KeptLog::open(dir.path(), &mut paths).unwrap();
        let k = sample();
        for change in [
            Change::Set("d/f", &k),
            Change::Set("d/g", &k),
            Change::Set("other", &k),
            Change::Rename("d", "e"),
            Change::Remove("e/g"),
        ] {
            apply(&mut paths, &change);
            log.append(&change).unwrap();
        }
        drop(log);
        // A crash cut the last line short.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(KEPT_LOG_NAME))
            .unwrap()
            .write_all(b"S\thalf\t6")
            .unwrap();
        let mut again = HashMap::new();
        let log = KeptLog::open(dir.path(), &mut again).unwrap();
        assert_eq!(again, paths);
        assert_eq!(again.len(), 2);
        assert_eq!(again["e/f"], k);
        assert_eq!(log.records, 5);
        let mut log = log;
        log.append(&Change::Remove("other")).unwrap();
        apply(&mut again, &Change::Remove("other"));
        drop(log);
        let mut reread = HashMap::new();
        let log = KeptLog::open(dir.path(), &mut reread).unwrap();
        assert_eq!(reread, again, "the record after the cut line is read");
        assert_eq!(reread.len(), 1);

        // Many changes of one entry: the reopened log is rewritten to the entries it leaves.
        let mut log = log;
        let mut live = again;
        for i in 0..COMPACT_MIN_RECORDS as u16 {
            let k = Kept {
                perm: Some(i % 0o777),
                ..Kept::default()
            };
            apply(&mut live, &Change::Set("other", &k));
            log.append(&Change::Set("other", &k)).unwrap();
        }
        drop(log);
        let mut reopened = HashMap::new();
        let log = KeptLog::open(dir.path(), &mut reopened).unwrap();
        assert_eq!(reopened, live);
        assert_eq!(log.records, 2, "rewritten to its two entries");
        let text = std::fs::read_to_string(dir.path().join(KEPT_LOG_NAME)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
