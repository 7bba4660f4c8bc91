//! Sequential-read detection for one open file. A read that starts where the previous one ended
//! (within a tolerance, since the kernel's readahead arrives split and out of order across FUSE
//! threads) continues a stream; a jump elsewhere starts a new one. A stream is *confirmed* once it
//! began at the start of the file or has densely read `confirm_bytes` — so the two halves of one
//! random `pread`, or Parquet column chunks a few MiB apart, are not taken for a stream. A confirmed stream grows the
//! prefetch window, doubling up to a maximum; it is fetched ahead of the reader in the background,
//! so a sequential reader finds its next blocks cached or already in flight.
//!
//! One [`StreamSet`] per open file, shared by all its handles: up to [`MAX_STREAMS_PER_FILE`]
//! detectors, a read joining the stream it continues and otherwise taking over the least recently
//! used one. So a stream continued through another handle keeps its window, and interleaved streams
//! in one file (fio's jobs on one object, a reader alternating between two HDUs, another process
//! reading elsewhere) each keep theirs instead of resetting each other.

/// What one read looks like to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPattern {
    /// Part of a confirmed sequential stream (fetch whole blocks).
    pub sequential: bool,
    /// `(offset, len)` to prefetch now.
    pub prefetch: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct SequentialDetector {
    next_offset: u64,
    /// Where the current stream began, and the bytes read in it.
    stream_start: u64,
    stream_bytes: u64,
    confirm_bytes: u64,
    window: u64,
    prefetched_until: u64,
    initial_window: u64,
    max_window: u64,
    tolerance: u64,
}

impl SequentialDetector {
    pub fn new(initial_window: u64, max_window: u64) -> Self {
        SequentialDetector {
            next_offset: 0,
            stream_start: 0,
            stream_bytes: 0,
            confirm_bytes: 2 * initial_window,
            window: 0,
            prefetched_until: 0,
            initial_window,
            max_window: max_window.max(initial_window),
            tolerance: 1 << 20,
        }
    }

    /// Caps the window (the memory budget shrinks it as open files multiply); never below the
    /// initial window, so a lone sequential reader always keeps one block ahead.
    pub fn limit_window(&mut self, max_window: u64) {
        self.max_window = max_window.max(self.initial_window);
        self.window = self.window.min(self.max_window);
    }

    /// Whether a read at `offset` of `len` bytes continues this stream. Reads in flight together
    /// arrive in any order: up to a few reads' worth around the stream's end counts.
    pub fn continues(&self, offset: u64, len: u64) -> bool {
        let tolerance = self.tolerance.max(4 * len);
        offset + tolerance >= self.next_offset
            && offset <= self.next_offset + tolerance
            && (self.next_offset > 0 || offset == 0)
    }

    /// Whether this stream is being prefetched (confirmed and not reset since).
    pub fn is_streaming(&self) -> bool {
        self.window > 0
    }

    /// Record a read of `[offset, offset + len)`: whether it belongs to a confirmed sequential
    /// stream, and the range to prefetch now, if any.
    pub fn on_read(&mut self, offset: u64, len: u64) -> ReadPattern {
        self.on_read_held(offset, len, 0)
    }

    /// [`SequentialDetector::on_read`], prefetching nothing until the stream has read
    /// `hold_bytes` (its window grows meanwhile, and its first prefetch starts at the reader).
    pub fn on_read_held(&mut self, offset: u64, len: u64, hold_bytes: u64) -> ReadPattern {
        let end = offset + len;
        let continues = self.continues(offset, len);
        if !continues {
            self.stream_start = offset;
            self.stream_bytes = 0;
            self.next_offset = 0;
        }
        self.stream_bytes += len;
        // Confirmed: from the file's start, or confirm_bytes read densely (at least two thirds of
        // the span covered — reads that skip as much as they read, like column chunks of a
        // Parquet file, are not a stream).
        let span = end.max(self.next_offset) - self.stream_start;
        let sequential = continues
            && (self.stream_start == 0
                || (self.stream_bytes >= self.confirm_bytes && 3 * self.stream_bytes >= 2 * span));
        let prefetch = self.advance(sequential, end, self.stream_bytes < hold_bytes);
        ReadPattern {
            sequential,
            prefetch,
        }
    }

    fn advance(&mut self, sequential: bool, end: u64, hold: bool) -> Option<(u64, u64)> {
        if sequential {
            self.window = if self.window == 0 {
                self.initial_window
            } else {
                (self.window * 2).min(self.max_window)
            };
        } else {
            self.window = 0;
            self.prefetched_until = end;
        }
        self.next_offset = self.next_offset.max(end);
        if self.window == 0 || hold {
            self.prefetched_until = self.prefetched_until.min(end);
            return None;
        }
        let target = end + self.window;
        let start = self.prefetched_until.max(end);
        // Ask only when at least half a window is missing, so requests stay large.
        if target > start && target - start >= self.window / 2 {
            self.prefetched_until = target;
            Some((start, target - start))
        } else {
            None
        }
    }
}

/// Streams one file may have at once; a further stream takes over the least recently read one.
pub const MAX_STREAMS_PER_FILE: usize = 8;

/// The streams of one open file (see the module notes).
#[derive(Debug)]
pub struct StreamSet {
    /// Each detector with the read count when it was last used.
    streams: Vec<(SequentialDetector, u64)>,
    reads: u64,
    initial_window: u64,
    max_window: u64,
}

impl StreamSet {
    pub fn new(initial_window: u64, max_window: u64) -> Self {
        StreamSet {
            streams: Vec::new(),
            reads: 0,
            initial_window,
            max_window,
        }
    }

    /// Record a read against the stream it continues (or a new one). `file_window` is what all of
    /// this file's streams may prefetch together (the memory budget's share for the file): each
    /// stream being prefetched gets an equal part, never less than one initial window. A stream
    /// prefetches nothing until it has read `hold_bytes`.
    pub fn on_read(
        &mut self,
        offset: u64,
        len: u64,
        file_window: u64,
        hold_bytes: u64,
    ) -> ReadPattern {
        self.reads += 1;
        let index = match self
            .streams
            .iter()
            .position(|(d, _)| d.continues(offset, len))
        {
            Some(i) => i,
            None if self.streams.len() < MAX_STREAMS_PER_FILE => {
                let fresh = SequentialDetector::new(self.initial_window, self.max_window);
                self.streams.push((fresh, 0));
                self.streams.len() - 1
            }
            None => self
                .streams
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, used))| *used)
                .map_or(0, |(i, _)| i),
        };
        let streaming = self
            .streams
            .iter()
            .filter(|(d, _)| d.is_streaming())
            .count();
        let share = file_window / streaming.max(1) as u64;
        let (detector, used) = &mut self.streams[index];
        *used = self.reads;
        detector.limit_window(share.min(self.max_window));
        detector.on_read_held(offset, len, hold_bytes)
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_grow_the_window() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        let first = d.on_read(0, 128 << 10).prefetch.unwrap();
        assert_eq!(first, (128 << 10, 1 << 20));
        let mut total = 0;
        let mut off = 128 << 10;
        for _ in 0..100 {
            if let Some((_, len)) = d.on_read(off, 128 << 10).prefetch {
                total += len;
                assert!(len <= 8 << 20);
            }
            off += 128 << 10;
        }
        assert!(
            total >= off - (1 << 20),
            "prefetch keeps ahead of the reader"
        );
    }

    /// A held stream prefetches nothing until it has read the hold, then starts at the reader
    /// with its grown window (nothing between the reader and the prefetch is skipped).
    #[test]
    fn a_held_stream_prefetches_from_the_reader_once_it_has_read_enough() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        let step = 128 << 10;
        let mut off = 0;
        while off + step < 4 << 20 {
            assert!(
                d.on_read_held(off, step, 4 << 20).prefetch.is_none(),
                "{off}"
            );
            off += step;
        }
        let (start, len) = d
            .on_read_held(off, step, 4 << 20)
            .prefetch
            .expect("released");
        assert_eq!(start, 4 << 20);
        assert_eq!(len, 8 << 20, "the window grew while held");
    }

    #[test]
    fn random_reads_do_not_prefetch() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        assert!(d.on_read(500 << 20, 4096).prefetch.is_none());
        assert!(d.on_read(100 << 20, 4096).prefetch.is_none());
        assert!(d.on_read(900 << 20, 4096).prefetch.is_none());
    }

    #[test]
    fn slightly_out_of_order_reads_stay_sequential() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        d.on_read(0, 128 << 10);
        d.on_read(256 << 10, 128 << 10); // arrived before 128K..256K
        d.on_read(128 << 10, 128 << 10);
        assert!(d.window >= 2 << 20);
    }

    #[test]
    fn the_window_doubles_up_to_its_limit_and_a_budget_shrinks_it() {
        let mut d = SequentialDetector::new(1 << 20, 32 << 20);
        let mut offset = 0;
        let mut last = 0;
        for _ in 0..12 {
            if let Some((_, len)) = d.on_read(offset, 128 << 10).prefetch {
                last = len;
            }
            offset += 128 << 10;
        }
        assert!(last > 1 << 20, "a sequential stream grows its window");
        d.limit_window(2 << 20);
        for _ in 0..12 {
            if let Some((_, len)) = d.on_read(offset, 128 << 10).prefetch {
                assert!(len <= 2 << 20, "window {len} over the budget's share");
            }
            offset += 128 << 10;
        }
        d.limit_window(0);
        assert_eq!(d.max_window, 1 << 20, "never below one initial window");
    }

    #[test]
    fn the_halves_of_a_random_read_are_not_a_stream() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        for base in [300u64 << 20, 20 << 20, 700 << 20] {
            for half in 0..2 {
                let p = d.on_read(base + half * (128 << 10), 128 << 10);
                assert!(!p.sequential && p.prefetch.is_none(), "{base} {half}");
            }
        }
    }

    #[test]
    fn chunks_that_skip_as_much_as_they_read_are_not_a_stream() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        let chunk = 800_000u64;
        for i in 0..12 {
            let p = d.on_read((10 << 20) + i * 2 * chunk, chunk);
            assert!(!p.sequential && p.prefetch.is_none(), "chunk {i}");
        }
    }

    #[test]
    fn a_stream_from_the_middle_is_confirmed_after_two_windows() {
        let mut d = SequentialDetector::new(1 << 20, 8 << 20);
        let base = 100u64 << 20;
        let pattern: Vec<bool> = (0..4)
            .map(|i| d.on_read(base + i * (1 << 20), 1 << 20).sequential)
            .collect();
        assert_eq!(pattern, [false, true, true, true]);
        assert!(d.on_read(base + (4 << 20), 1 << 20).prefetch.is_some() || d.window > 0);
        // A jump backwards starts again.
        assert!(!d.on_read(base - (50 << 20), 4096).sequential);
    }
}

#[cfg(test)]
mod stream_set_tests {
    use super::*;

    const KIB_256: u64 = 256 << 10;

    /// fio's 4 jobs on one object: 4 interleaved streams 256 MiB apart, each confirmed from its
    /// own place and each prefetched; one shared detector would reset on every read.
    #[test]
    fn interleaved_streams_each_keep_their_window() {
        let mut set = StreamSet::new(1 << 20, 8 << 20);
        let mut prefetching = [false; 4];
        for step in 0..40u64 {
            for (job, seen) in prefetching.iter_mut().enumerate() {
                let offset = job as u64 * (256 << 20) + step * KIB_256;
                let p = set.on_read(offset, KIB_256, 64 << 20, 0);
                if step >= 12 {
                    assert!(p.sequential, "job {job} step {step}");
                }
                *seen |= p.prefetch.is_some();
            }
        }
        assert_eq!(prefetching, [true; 4]);
        assert_eq!(set.len(), 4);
    }

    /// Random reads take fresh slots or recycle the least recently used; a stream that keeps
    /// reading stays confirmed among them.
    #[test]
    fn random_reads_do_not_evict_a_live_stream() {
        let mut set = StreamSet::new(1 << 20, 8 << 20);
        let mut jump = 7u64;
        for step in 0..64u64 {
            let p = set.on_read(step * KIB_256, KIB_256, 64 << 20, 0);
            assert!(p.sequential, "stream read {step}");
            jump = jump.wrapping_mul(6364136223846793005) % 1_000_003;
            let r = set.on_read((512 << 20) + jump * 4096, 4096, 64 << 20, 0);
            assert!(!r.sequential && r.prefetch.is_none(), "random read {step}");
        }
        assert!(set.len() <= MAX_STREAMS_PER_FILE);
    }

    /// The file's window is split between its streams: once two are streaming, neither asks for
    /// more than half the file's share at once.
    #[test]
    fn streams_share_the_files_window() {
        let mut set = StreamSet::new(1 << 20, 32 << 20);
        let mut most = 0;
        for step in 0..64u64 {
            for base in [0u64, 512 << 20] {
                let p = set.on_read(base + step * KIB_256, KIB_256, 8 << 20, 0);
                // Once both are streaming (the second is confirmed after 2 MiB).
                if let (Some((_, len)), true) = (p.prefetch, step >= 16) {
                    most = most.max(len);
                }
            }
        }
        assert!(
            most <= 4 << 20,
            "one of two streams asked for {most} bytes of an 8 MiB share"
        );
        assert!(most >= 1 << 20);
    }
}
