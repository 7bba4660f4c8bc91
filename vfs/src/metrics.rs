//! What the filesystem did, for the metrics endpoint: counts and latency histograms of the FUSE
//! operations the core answers, bytes returned to readers, and how often the kernel's page cache
//! was kept across opens. Plain atomics, no locks; the launcher renders them (with the cache's and
//! the origin's counters) as Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds (Prometheus `le`), plus `+Inf`.
pub const LATENCY_BUCKETS_SECS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS_SECS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS_SECS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (the last is `+Inf`), the sum in seconds and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut running = 0;
        for bucket in &self.buckets {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        (
            cumulative,
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed),
        )
    }
}

/// The operations timed, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOp {
    Lookup,
    Getattr,
    Readdir,
    Open,
    Read,
    Write,
    Fsync,
    Setattr,
    Mkdir,
    Remove,
    Rename,
    /// `link` and `symlink` (direct volumes).
    Link,
    Readlink,
    Mknod,
}

impl FsOp {
    /// All operations.
    pub const ALL: [FsOp; 14] = [
        FsOp::Lookup,
        FsOp::Getattr,
        FsOp::Readdir,
        FsOp::Open,
        FsOp::Read,
        FsOp::Write,
        FsOp::Fsync,
        FsOp::Setattr,
        FsOp::Mkdir,
        FsOp::Remove,
        FsOp::Rename,
        FsOp::Link,
        FsOp::Readlink,
        FsOp::Mknod,
    ];

    /// The label value used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            FsOp::Lookup => "lookup",
            FsOp::Getattr => "getattr",
            FsOp::Readdir => "readdir",
            FsOp::Open => "open",
            FsOp::Read => "read",
            FsOp::Write => "write",
            FsOp::Fsync => "fsync",
            FsOp::Setattr => "setattr",
            FsOp::Mkdir => "mkdir",
            FsOp::Remove => "remove",
            FsOp::Rename => "rename",
            FsOp::Link => "link",
            FsOp::Readlink => "readlink",
            FsOp::Mknod => "mknod",
        }
    }
}

/// Counters of one mount.
#[derive(Debug, Default)]
pub struct FsStats {
    latency: [Histogram; FsOp::ALL.len()],
    errors: [AtomicU64; FsOp::ALL.len()],
    /// Bytes returned by `read`.
    pub read_bytes: AtomicU64,
    /// Bytes taken by `write`.
    pub write_bytes: AtomicU64,
    /// Reads answered from the memory tier on the FUSE thread (no task hand-off).
    pub fast_reads: AtomicU64,
    /// Opens that let the kernel keep its page cache (the file is unchanged since the last open).
    pub opens_keep_cache: AtomicU64,
    /// Opens whose reads the kernel serves from a whole-file copy (FUSE passthrough).
    pub opens_passthrough: AtomicU64,
    /// Opens of a file changed at the origin that read the version a passed-through handle
    /// still had open (the kernel allows one backing file per open inode).
    pub opens_passthrough_older: AtomicU64,
    /// Files whose pages the kernel was told to drop once their whole-file copy was made.
    pub kernel_pages_dropped: AtomicU64,
}

impl FsStats {
    fn index(op: FsOp) -> usize {
        FsOp::ALL.iter().position(|&o| o == op).unwrap_or(0)
    }

    /// Records one finished operation.
    pub fn record(&self, op: FsOp, elapsed: Duration, ok: bool) {
        self.latency[Self::index(op)].observe(elapsed);
        if !ok {
            self.errors[Self::index(op)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The latency histogram of an operation.
    pub fn latency(&self, op: FsOp) -> &Histogram {
        &self.latency[Self::index(op)]
    }

    /// Failed operations of a kind.
    pub fn errors(&self, op: FsOp) -> u64 {
        self.errors[Self::index(op)].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[6], 2, "5 ms bucket holds the 30 µs and 3 ms reads");
        assert_eq!(*buckets.last().expect("+Inf"), 3);
        assert!((sum - 10.003_03).abs() < 1e-6);
    }
}
