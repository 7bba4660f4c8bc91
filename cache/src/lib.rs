//! colo-cache: a tiered block cache — memory (moka, weighted by bytes) → local disk (size-capped LRU,
//! a CRC32 per block verified on every read, survives restarts) → the origin.
//!
//! Design (after mountpoint-s3's `DataCache`): the caches know blocks, not connectors. A block is
//! named by [`BlockKey`] = volume + path + object identity (ETag, or size + mtime) + block index, so
//! a file that changed at the origin has new keys and old blocks are simply never asked for again
//! (they age out of the LRU). [`ReadThrough`] is the only type that knows both a connector and the
//! cache: it serves byte ranges from blocks, fetches missing runs of blocks with one ranged request
//! each, and makes concurrent readers of the same block share one fetch.

pub mod block_cache;
pub mod disk;
pub mod error;
pub mod fetch_budget;
pub mod key;
pub mod memory;
pub mod origin_cost;
pub mod read_through;
pub mod tiered;
pub mod whole;
pub mod write_back;

pub use block_cache::BlockCache;
pub use disk::{DiskCache, DiskCacheStats};
pub use error::{CacheError, Result};
pub use fetch_budget::{FetchBudget, FetchPermit};
pub use key::BlockKey;
pub use memory::MemoryCache;
pub use origin_cost::{CostEstimate, OriginCost};
pub use read_through::{FetchPlan, ObjectVersion, ReadStats, ReadThrough};
pub use tiered::{TierStats, TieredCache};
pub use whole::{WholeFileStats, WholeFiles};
pub use write_back::{Pending, PendingSummary, StagedFile, WriteBack};
