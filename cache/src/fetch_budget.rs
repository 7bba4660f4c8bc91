//! The bytes of origin fetches in flight, bounded for the whole process.
//!
//! One memory budget covers the memory tier and what is on its way into it: a fetched range is held
//! in full (the HTTP body, then its units) before the tier counts it, and readers hold their bytes
//! until the kernel has them. Without a bound, many concurrent readers (1000 open files, pyarrow's
//! threads, several prefetch windows) hold their fetches on top of a full tier. So every fetch takes
//! permits for its bytes from one [`FetchBudget`] before it asks the origin and gives them back
//! once its units are in the tier; the tier's own cap is the budget minus this share (the launcher
//! splits them). A fetch larger than the whole share takes all of it, so it waits for the others
//! but never deadlocks.
//!
//! Permits are counted in KiB (a tokio semaphore takes at most `u32` permits per acquire).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct FetchBudget {
    permits: Arc<Semaphore>,
    cap_kib: u32,
    in_flight_bytes: AtomicU64,
}

/// Permission for one fetch's bytes; given back on drop.
#[derive(Debug)]
pub struct FetchPermit {
    _permit: Option<OwnedSemaphorePermit>,
    budget: Arc<FetchBudget>,
    bytes: u64,
}

impl FetchBudget {
    /// A budget of `cap_bytes` (at least 1 KiB) for all fetches in flight together.
    pub fn new(cap_bytes: u64) -> Arc<Self> {
        let cap_kib = u32::try_from(cap_bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        Arc::new(FetchBudget {
            permits: Arc::new(Semaphore::new(cap_kib as usize)),
            cap_kib,
            in_flight_bytes: AtomicU64::new(0),
        })
    }

    pub fn cap_bytes(&self) -> u64 {
        u64::from(self.cap_kib) * 1024
    }

    /// Bytes held by fetches now.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes.load(Ordering::Relaxed)
    }

    /// Wait until `bytes` more may be in flight (all of the budget, for a fetch larger than it).
    pub async fn acquire(self: &Arc<Self>, bytes: u64) -> FetchPermit {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.cap_kib);
        // The semaphore is never closed, so acquiring only fails if it were; then run unbounded.
        let permit = self.permits.clone().acquire_many_owned(kib).await.ok();
        self.in_flight_bytes.fetch_add(bytes, Ordering::Relaxed);
        FetchPermit {
            _permit: permit,
            budget: self.clone(),
            bytes,
        }
    }
}

impl Drop for FetchPermit {
    fn drop(&mut self) {
        self.budget
            .in_flight_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_fetch_waits_until_the_bytes_in_flight_fit() {
        let budget = FetchBudget::new(4 << 20);
        let first = budget.acquire(3 << 20).await;
        assert_eq!(budget.in_flight_bytes(), 3 << 20);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(2 << 20).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "2 MiB more do not fit in 4 MiB");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("admitted once the first fetch is done")
            .expect("task");
        assert_eq!(budget.in_flight_bytes(), 2 << 20);
        drop(second);
        assert_eq!(budget.in_flight_bytes(), 0);
    }

    #[tokio::test]
    async fn a_fetch_larger_than_the_budget_takes_all_of_it_and_proceeds() {
        let budget = FetchBudget::new(1 << 20);
        let big = tokio::time::timeout(Duration::from_secs(5), budget.acquire(8 << 20))
            .await
            .expect("a fetch over the cap is not refused forever");
        assert_eq!(budget.in_flight_bytes(), 8 << 20);
        let small = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!small.is_finished(), "the big fetch holds the whole budget");
        drop(big);
        tokio::time::timeout(Duration::from_secs(5), small)
            .await
            .expect("admitted after the big fetch")
            .expect("task");
    }
}
