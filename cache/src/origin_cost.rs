//! What a request to one volume's origin costs, learned from the requests colo makes there: its
//! latency (the time a request takes before its bytes flow — on loopback SeaweedFS a few
//! milliseconds, on a real object store 20–50 ms) and its throughput (bytes per second of one
//! request once its latency is paid).
//!
//! Every origin request of a [`crate::ReadThrough`] is timed and given to its volume's
//! [`OriginCost`]: a small one (up to [`LATENCY_SAMPLE_MAX_BYTES`]) is almost all latency, a large
//! one (from [`THROUGHPUT_SAMPLE_MIN_BYTES`]) mostly transfer, counted with the requests in flight
//! beside it (the throughput is the volume's, for as many requests as colo keeps in flight). Each estimate is a weighted moving
//! average: its first sample replaces the prior (so one request is enough to tell a loopback
//! store from a remote one), later ones count [`WEIGHT`] each (so the estimate follows a store
//! that slows down). Until a volume has answered, the prior ([`CostEstimate::PRIOR`]) stands: a
//! remote object store, so nothing is fetched on the assumption that requests are free.
//!
//! Readers of the estimate decide with it what a miss should fetch: `colo_vfs::plan` fetches a
//! randomly read file whole once the time its reader has spent on requests reaches what the whole
//! file would take.

use parking_lot::Mutex;
use std::time::Duration;

/// Requests up to this size are latency samples.
pub const LATENCY_SAMPLE_MAX_BYTES: u64 = 512 << 10;
/// Requests from this size on are throughput samples.
pub const THROUGHPUT_SAMPLE_MIN_BYTES: u64 = 1 << 20;
/// How much a further sample moves an estimate.
pub const WEIGHT: f64 = 0.2;

/// A volume's request latency and per-request throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostEstimate {
    pub latency_secs: f64,
    pub bytes_per_sec: f64,
}

impl CostEstimate {
    /// Before a volume has answered: a remote object store (20 ms, 1 Gbit/s).
    pub const PRIOR: CostEstimate = CostEstimate {
        latency_secs: 0.020,
        bytes_per_sec: 125e6,
    };

    /// The time one request for `bytes` takes.
    pub fn request_secs(&self, bytes: u64) -> f64 {
        self.latency_secs + bytes as f64 / self.bytes_per_sec
    }
}

#[derive(Debug)]
struct Learned {
    latency_secs: f64,
    latency_samples: u64,
    /// Weighted averages of the large requests' sizes and times: their throughput is taken with
    /// the latency known when asked, so a large request seen before any small one is not misread.
    large_bytes: f64,
    large_secs: f64,
    throughput_samples: u64,
}

impl Learned {
    fn estimate(&self) -> CostEstimate {
        let bytes_per_sec = if self.throughput_samples == 0 {
            CostEstimate::PRIOR.bytes_per_sec
        } else {
            // The transfer is what is left once the latency is paid (at least a tenth of the
            // request, so that a latency learned from slower times cannot make it look instant).
            let transfer = (self.large_secs - self.latency_secs)
                .max(self.large_secs / 10.0)
                .max(1e-9);
            self.large_bytes / transfer
        };
        CostEstimate {
            latency_secs: self.latency_secs,
            bytes_per_sec,
        }
    }
}

/// One volume's learned request cost (see the module notes).
#[derive(Debug)]
pub struct OriginCost {
    learned: Mutex<Learned>,
}

impl Default for OriginCost {
    fn default() -> Self {
        OriginCost {
            learned: Mutex::new(Learned {
                latency_secs: CostEstimate::PRIOR.latency_secs,
                latency_samples: 0,
                large_bytes: 0.0,
                large_secs: 0.0,
                throughput_samples: 0,
            }),
        }
    }
}

/// The weight of sample number `n` (from 0): the first replaces the prior.
fn weight(n: u64) -> f64 {
    if n == 0 { 1.0 } else { WEIGHT }
}

impl OriginCost {
    /// Learn from one request of `bytes` that took `elapsed` while `concurrent` requests to the
    /// volume (itself included) were in flight: the throughput learned is what the volume gives
    /// that many requests together, so a stream's parallel requests, each slower than one alone,
    /// do not make the volume look slow.
    pub fn record(&self, bytes: u64, elapsed: Duration, concurrent: usize) {
        let secs = elapsed.as_secs_f64();
        let mut l = self.learned.lock();
        if bytes <= LATENCY_SAMPLE_MAX_BYTES {
            let transfer = bytes as f64 / l.estimate().bytes_per_sec;
            let latency = (secs - transfer).max(secs / 2.0);
            let w = weight(l.latency_samples);
            l.latency_secs += w * (latency - l.latency_secs);
            l.latency_samples += 1;
        }
        if bytes >= THROUGHPUT_SAMPLE_MIN_BYTES {
            let w = weight(l.throughput_samples);
            let moved = bytes as f64 * concurrent.max(1) as f64;
            l.large_bytes += w * (moved - l.large_bytes);
            l.large_secs += w * (secs - l.large_secs);
            l.throughput_samples += 1;
        }
    }

    pub fn estimate(&self) -> CostEstimate {
        self.learned.lock().estimate()
    }

    /// Requests learned from so far (latency samples, throughput samples).
    pub fn samples(&self) -> (u64, u64) {
        let l = self.learned.lock();
        (l.latency_samples, l.throughput_samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1000.0)
    }

    #[test]
    fn the_prior_stands_until_the_volume_answers() {
        let c = OriginCost::default();
        assert_eq!(c.estimate(), CostEstimate::PRIOR);
        assert_eq!(c.samples(), (0, 0));
        // A mid-sized request is neither kind of sample.
        c.record(768 << 10, ms(5.0), 1);
        assert_eq!(c.estimate(), CostEstimate::PRIOR);
    }

    /// A store with 2 ms of latency and 500 MB/s per request, seen through its requests.
    #[test]
    fn small_and_large_requests_teach_latency_and_throughput() {
        let store = CostEstimate {
            latency_secs: 0.002,
            bytes_per_sec: 500e6,
        };
        let c = OriginCost::default();
        for _ in 0..20 {
            for bytes in [320 << 10, 8 * MIB, 64 << 10, MIB] {
                c.record(bytes, Duration::from_secs_f64(store.request_secs(bytes)), 1);
            }
        }
        let e = c.estimate();
        assert!(
            (e.latency_secs - 0.002).abs() < 0.0005,
            "latency {}",
            e.latency_secs
        );
        assert!(
            (e.bytes_per_sec / 500e6 - 1.0).abs() < 0.1,
            "throughput {}",
            e.bytes_per_sec
        );
    }

    /// A large request seen before any small one: its throughput is read with the latency
    /// learned later, not the prior's 20 ms.
    #[test]
    fn a_large_request_first_is_read_with_the_latency_learned_later() {
        let c = OriginCost::default();
        c.record(MIB, ms(3.0), 1);
        c.record(4096, ms(2.0), 1);
        let e = c.estimate();
        assert!((e.latency_secs - 0.002).abs() < 1e-4);
        let expected = MIB as f64 / 0.001;
        assert!(
            (e.bytes_per_sec / expected - 1.0).abs() < 0.05,
            "{}",
            e.bytes_per_sec
        );
    }

    /// Four requests in flight together, each taking four times as long as one alone: the
    /// volume's throughput is the same as one request's alone.
    #[test]
    fn parallel_requests_count_together() {
        let alone = OriginCost::default();
        let together = OriginCost::default();
        alone.record(4096, ms(2.0), 1);
        together.record(4096, ms(2.0), 4);
        alone.record(8 * MIB, ms(2.0 + 10.0), 1);
        together.record(8 * MIB, ms(2.0 + 40.0), 4);
        let (a, t) = (alone.estimate(), together.estimate());
        assert!(
            (t.bytes_per_sec / a.bytes_per_sec - 1.0).abs() < 0.01,
            "{a:?} {t:?}"
        );
    }

    /// One sample replaces the prior; later ones move the estimate by a fifth of the difference.
    #[test]
    fn the_first_sample_replaces_the_prior_and_later_ones_move_it() {
        let c = OriginCost::default();
        c.record(4096, ms(1.0), 1);
        let first = c.estimate().latency_secs;
        assert!((first - 0.001).abs() < 0.0001, "{first}");
        c.record(4096, ms(41.0), 1);
        let second = c.estimate().latency_secs;
        assert!((second - 0.009).abs() < 0.0002, "{second}");
    }
}
