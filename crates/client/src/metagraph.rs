//! A metagraph kept fresh from new-head notifications, for miners, validators and gateways
//! that read it on every request.

use crate::api::AgoraApiClient;
use crate::client::Client;
use crate::types::{HeadInfo, Metagraph};
use crate::ClientError;
use agora_primitives::NetUid;
use std::sync::{Arc, RwLock};
use tokio::task::JoinHandle;

/// The latest metagraph of one subnet. Cloning shares the cache.
#[derive(Clone, Debug, Default)]
pub struct MetagraphCache {
    inner: Arc<RwLock<Option<Arc<Metagraph>>>>,
}

impl MetagraphCache {
    /// The latest metagraph read, if any.
    pub fn get(&self) -> Option<Arc<Metagraph>> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, m: Metagraph) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Some(Arc::new(m));
    }

    /// Reads the metagraph now, then refreshes it whenever a new head arrives at least
    /// `every_blocks` after the last read. `client` must be a WebSocket client. The task ends
    /// with an error when the subscription closes (e.g. the node went away).
    pub async fn spawn(
        client: Arc<Client>,
        netuid: NetUid,
        every_blocks: u64,
    ) -> Result<(MetagraphCache, JoinHandle<Result<(), ClientError>>), ClientError> {
        let cache = MetagraphCache::default();
        let first = client
            .rpc()
            .metagraph(netuid.0)
            .await?
            .ok_or(ClientError::UnknownSubnet(netuid.0))?;
        let mut last = first.block;
        cache.set(first);
        let mut heads = client.rpc().subscribe_new_heads().await?;
        let task_cache = cache.clone();
        let task = tokio::spawn(async move {
            while let Some(head) = heads.next().await {
                let head: HeadInfo = head.map_err(|e| ClientError::Decode(e.to_string()))?;
                if head.number < last.saturating_add(every_blocks.max(1)) {
                    continue;
                }
                let m = client
                    .rpc()
                    .metagraph(netuid.0)
                    .await?
                    .ok_or(ClientError::UnknownSubnet(netuid.0))?;
                last = m.block;
                task_cache.set(m);
            }
            Err(ClientError::SubscriptionClosed)
        });
        Ok((cache, task))
    }
}
