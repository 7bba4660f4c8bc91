//! The interface every cache tier implements. Tiers never fail a read: a tier that cannot answer (a
//! corrupt block, an I/O error) logs why and reports a miss, and the block is fetched again.

use crate::key::BlockKey;
use async_trait::async_trait;
use bytes::Bytes;

#[async_trait]
pub trait BlockCache: Send + Sync {
    async fn get_block(&self, key: &BlockKey) -> Option<Bytes>;
    async fn put_block(&self, key: &BlockKey, data: Bytes);
    /// Drops the block if the tier holds it.
    async fn remove_block(&self, key: &BlockKey);
}
