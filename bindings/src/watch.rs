//! Following a service's route set: [`RouteSetWatcher`] yields a new [`RouteSet`] on every
//! change, from `RouteSetChanged` logs with a periodic full read as fallback. It resumes after
//! RPC errors and never yields a lower or equal epoch.

use std::time::Duration;

use alloy::{primitives::B256, providers::Provider, rpc::types::Filter, sol_types::SolEvent};
use tracing::warn;

use crate::{
    Result,
    client::{RegistryClient, RouteSet},
    registry::RouteRegistry::RouteSetChanged,
};

/// How a watcher polls.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// Time between polls for `RouteSetChanged` logs.
    pub poll_interval: Duration,
    /// Every this many polls, read the set even without a log (catches anything a log query
    /// missed, e.g. a node that prunes logs).
    pub resync_every: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { poll_interval: Duration::from_millis(500), resync_every: 10 }
    }
}

/// Follows one service's authorised route set.
#[derive(Debug)]
pub struct RouteSetWatcher<P> {
    client: RegistryClient<P>,
    service: B256,
    config: WatchConfig,
    last_epoch: Option<u32>,
    next_block: Option<u64>,
    polls: u32,
}

impl<P: Provider> RouteSetWatcher<P> {
    pub(crate) fn new(client: RegistryClient<P>, service: B256, config: WatchConfig) -> Self {
        Self { client, service, config, last_epoch: None, next_block: None, polls: 0 }
    }

    /// The epoch of the last set yielded.
    pub fn epoch(&self) -> Option<u32> {
        self.last_epoch
    }

    /// Waits for the next route set: the current one on the first call, then each set with a
    /// higher epoch. RPC errors are logged and retried at the poll interval (the caller keeps
    /// using the last set meanwhile: fail static).
    pub async fn next(&mut self) -> RouteSet {
        loop {
            match self.poll().await {
                Ok(Some(set)) => return set,
                Ok(None) => {}
                Err(err) => warn!(
                    target: "lifeline::watch",
                    service = %self.service,
                    error = %err,
                    "registry unreadable; keeping the last route set"
                ),
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// One poll: `Some(set)` when a newer set is available.
    pub async fn poll(&mut self) -> Result<Option<RouteSet>> {
        let provider = self.client.contract().provider();
        let latest = provider.get_block_number().await?;
        self.polls = self.polls.wrapping_add(1);
        let mut read =
            self.last_epoch.is_none() || self.polls.is_multiple_of(self.config.resync_every.max(1));
        if !read {
            let from = self.next_block.unwrap_or(latest);
            if from <= latest {
                let filter = Filter::new()
                    .address(*self.client.contract().address())
                    .event_signature(RouteSetChanged::SIGNATURE_HASH)
                    .topic1(self.service)
                    .from_block(from)
                    .to_block(latest);
                read = !provider.get_logs(&filter).await?.is_empty();
            }
        }
        self.next_block = Some(latest + 1);
        if !read {
            return Ok(None);
        }
        let set = self.client.routes(self.service).await?;
        if self.last_epoch.is_some_and(|last| set.epoch <= last) {
            return Ok(None);
        }
        self.last_epoch = Some(set.epoch);
        Ok(Some(set))
    }
}

impl<P: Provider + Clone> RegistryClient<P> {
    /// Follows `service`'s route set; see [`RouteSetWatcher`].
    pub fn watch(&self, service: B256, config: WatchConfig) -> RouteSetWatcher<P> {
        RouteSetWatcher::new(self.clone(), service, config)
    }
}
