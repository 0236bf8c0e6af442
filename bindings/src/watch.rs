//! Following a service's route set: [`RouteSetWatcher`] yields a new [`RouteSet`] on every
//! change, from `RouteSetChanged` logs with a periodic full read as fallback. It resumes after
//! RPC errors (the caller keeps the last set: fail static).
//!
//! **Reads at a block.** Every set is read at one block of the registry chain, by its hash
//! (EIP-1898), never at `latest`: the block is `head - confirmations` (see
//! [`WatchConfig::confirmations`], default 0: the head), and the yielded set carries it in
//! [`RouteSet::block`]. With `confirmations = N` a set is yielded only once `N` blocks were built
//! on the block it was read at, and a reorganisation shallower than that is never seen.
//!
//! **Reorg-safe.** The watcher remembers the newest block up to which it knows the set (the block
//! the set was read at, or the last block scanned for logs since) and checks on every poll that
//! this block is still canonical (its hash against `eth_getBlockByNumber`). When it is not, the
//! registry chain reorganised: the set is read again at the new `head - confirmations`. Sets are
//! identified by `(epoch, content hash)` ([`RouteSet::content_hash`]), not by the epoch alone:
//!
//! - an ordinary change yields a set with a higher epoch; a lower or equal epoch read without a
//!   reorganisation (e.g. from a node that is behind) is ignored: the watcher never goes back;
//! - after a reorganisation, the canonical set is yielded whenever it differs from the last set
//!   yielded, even with a lower epoch (the change that raised it was reorganised away) or the same
//!   epoch with other routes (another change won); such a set has
//!   [`RouteSet::after_reorg`] set, and [`FailoverTransport::apply`] takes it whatever its epoch.
//!   A reorganisation that leaves the set as it was yields nothing.
//!
//! [`FailoverTransport::apply`]: crate::transport::FailoverTransport::apply

use std::time::Duration;

use alloy::{
    eips::BlockNumberOrTag,
    primitives::B256,
    providers::Provider,
    rpc::types::{Filter, Header},
    sol_types::SolEvent,
};
use tracing::{debug, info, warn};

use crate::{
    Error, Result,
    client::{BlockRef, RegistryClient, RouteSet},
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
    /// Read the set at `head - confirmations` rather than at the head: a set is yielded only
    /// once this many blocks were built on the block it was read at (finality over speed; each
    /// change is seen `confirmations` blocks later). 0 (the default) reads at the head and
    /// relies on reorg detection alone. Nothing is yielded while the chain is shorter.
    pub confirmations: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { poll_interval: Duration::from_millis(500), resync_every: 10, confirmations: 0 }
    }
}

/// The last set yielded, as the watcher identifies it.
#[derive(Debug, Clone, Copy)]
struct Yielded {
    epoch: u32,
    content: B256,
    /// The block it was read at, or the newest block it was read again at with no change.
    block: BlockRef,
}

/// Follows one service's authorised route set.
#[derive(Debug)]
pub struct RouteSetWatcher<P> {
    client: RegistryClient<P>,
    service: B256,
    config: WatchConfig,
    last: Option<Yielded>,
    /// The newest block up to which the set is known (read there, or no log since the read):
    /// must stay canonical, or the set is read again.
    checked: Option<BlockRef>,
    /// A reorganisation was seen and the canonical set not read yet (kept across RPC errors).
    reorged: bool,
    polls: u32,
}

impl<P: Provider> RouteSetWatcher<P> {
    pub(crate) fn new(client: RegistryClient<P>, service: B256, config: WatchConfig) -> Self {
        Self { client, service, config, last: None, checked: None, reorged: false, polls: 0 }
    }

    /// The epoch of the last set yielded.
    pub fn epoch(&self) -> Option<u32> {
        self.last.map(|l| l.epoch)
    }

    /// The block the last set yielded was read at (or read again at, unchanged, since a
    /// reorganisation).
    pub fn block(&self) -> Option<BlockRef> {
        self.last.map(|l| l.block)
    }

    /// Waits for the next route set: the current one on the first call, then each set with a
    /// higher epoch, or a different set after a reorganisation (see the [module](self) docs).
    /// RPC errors are logged and retried at the poll interval (the caller keeps using the last
    /// set meanwhile: fail static).
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

    /// One poll: `Some(set)` when a newer set, or after a reorganisation a different canonical
    /// set, is available.
    pub async fn poll(&mut self) -> Result<Option<RouteSet>> {
        let provider = self.client.contract().provider();
        self.polls = self.polls.wrapping_add(1);
        let Some((target, parent)) = self.target().await? else { return Ok(None) };

        // Is the block the set is known at still canonical? (Its hash is the target's, or the
        // target's parent's, in the common cases: no extra request.)
        if let Some(checked) = self.checked {
            let canonical = if checked.number == target.number {
                Some(target.hash)
            } else if checked.number + 1 == target.number {
                Some(parent)
            } else {
                block_at(provider, checked.number).await?.map(|b| b.hash)
            };
            if canonical != Some(checked.hash) {
                info!(
                    target: "lifeline::watch",
                    service = %self.service,
                    block = checked.number,
                    was = %checked.hash,
                    now = ?canonical,
                    "registry chain reorganised; reading the canonical route set"
                );
                self.reorged = true;
                self.checked = None;
            } else if target.number <= checked.number {
                return Ok(None); // nothing new (or the head went back, to a block we know)
            }
        }

        let mut read = self.last.is_none()
            || self.checked.is_none()
            || self.polls.is_multiple_of(self.config.resync_every.max(1));
        if !read && let Some(checked) = self.checked {
            let filter = Filter::new()
                .address(*self.client.contract().address())
                .event_signature(RouteSetChanged::SIGNATURE_HASH)
                .topic1(self.service)
                .from_block(checked.number + 1)
                .to_block(target.number);
            read = !provider.get_logs(&filter).await?.is_empty();
        }
        if !read {
            self.checked = Some(target);
            return Ok(None);
        }

        let mut set = self.client.routes_at(self.service, target).await?;
        self.checked = Some(target);
        let reorged = std::mem::take(&mut self.reorged);
        let content = set.content_hash();
        if let Some(last) = &mut self.last {
            if (set.epoch, content) == (last.epoch, last.content) {
                last.block = target;
                return Ok(None);
            }
            if set.epoch <= last.epoch && !reorged {
                debug!(
                    target: "lifeline::watch",
                    service = %self.service,
                    epoch = set.epoch,
                    last = last.epoch,
                    block = target.number,
                    "older route set ignored: no reorganisation seen"
                );
                return Ok(None);
            }
        }
        set.after_reorg = reorged && self.last.is_some();
        if set.after_reorg {
            info!(
                target: "lifeline::watch",
                service = %self.service,
                epoch = set.epoch,
                previous = self.epoch(),
                block = target.number,
                "canonical route set after a reorganisation"
            );
        }
        self.last = Some(Yielded { epoch: set.epoch, content, block: target });
        Ok(Some(set))
    }

    /// The block to read at, `head - confirmations`, and its parent's hash; `None` while the
    /// chain is shorter.
    async fn target(&self) -> Result<Option<(BlockRef, B256)>> {
        let provider = self.client.contract().provider();
        let header = if self.config.confirmations == 0 {
            latest(provider).await?
        } else {
            let head = provider.get_block_number().await?;
            let Some(number) = head.checked_sub(self.config.confirmations) else {
                return Ok(None);
            };
            block_at(provider, number).await?.ok_or_else(|| missing(number))?
        };
        Ok(Some((BlockRef { number: header.number, hash: header.hash }, header.parent_hash)))
    }
}

/// The canonical header at `number`, `None` if the chain is shorter.
async fn block_at<P: Provider>(provider: &P, number: u64) -> Result<Option<Header>> {
    Ok(provider.get_block_by_number(BlockNumberOrTag::Number(number)).await?.map(|b| b.header))
}

async fn latest<P: Provider>(provider: &P) -> Result<Header> {
    let block = provider.get_block_by_number(BlockNumberOrTag::Latest).await?;
    block.map(|b| b.header).ok_or_else(|| rpc_error("the node has no latest block".into()))
}

fn missing(number: u64) -> Error {
    rpc_error(format!("block {number} not found (the chain moved back meanwhile)"))
}

fn rpc_error(message: String) -> Error {
    Error::Transport(alloy::transports::TransportErrorKind::custom_str(&message))
}

impl<P: Provider + Clone> RegistryClient<P> {
    /// Follows `service`'s route set; see [`RouteSetWatcher`].
    pub fn watch(&self, service: B256, config: WatchConfig) -> RouteSetWatcher<P> {
        RouteSetWatcher::new(self.clone(), service, config)
    }
}
