//! Route sets no single RPC can forge, and registries on several chains.
//!
//! **A quorum of registry RPCs** ([`QuorumReader`]). One registry RPC that lies (compromised,
//! misconfigured) could hand a client a forged `authorisedRoutes` and so redirect its order
//! flow. A quorum reader reads the registry through several RPC URLs, all at one block `B`: the
//! highest block that at least `quorum` of them have reached (so no single URL can drag it back
//! to an old set), minus `confirmations`. A set counts only when
//! `quorum` URLs return the same block hash at `B` and the same set there (epoch and
//! [`content_hash`](crate::RouteSet::content_hash)); URLs that disagree are logged and counted
//! ([`QuorumReader::dissents`]) and ignored; a URL that is down or behind only narrows the
//! margin. With one URL it behaves as a plain read and says so (a warning at creation).
//!
//! What it protects against: up to `n - quorum` lying or broken RPCs (forged results, forged
//! blocks, wrong chain). What it does not: `quorum` colluding RPCs, or a registry chain whose
//! own consensus is captured; reading at `head - confirmations` trades speed for finality.
//!
//! **Several registries, one service** ([`RegistrySet`]). The same service can be registered on
//! registries on several chains (say an L1 and an L2), each read through its own quorum. The set
//! routed by follows one documented rule: the **primary**'s (the first configured) while its
//! chain is live (the block the set was read at is at most `live_bound` old); otherwise the set of
//! the live registry whose service was attested most recently (`lastAttestedAt`); with no live
//! registry, the last set in force stays (fail static). Epochs of different registries are never
//! compared: a switch applies the chosen registry's set whatever its epoch. Two live
//! registries whose sets differ for longer than `disagree_after` are reported (a warning and
//! [`RegistrySet::disagreements`]); the rule still decides.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{eips::BlockNumberOrTag, primitives::B256, providers::Provider};
use futures_util::future::join_all;
use tracing::{info, warn};

use crate::{
    Result,
    client::{BlockRef, RegistryClient, RouteSet},
    transport::{Connector, FailoverTransport, Follower},
};

/// Reads a service's set through several RPC URLs of one registry; see the [module](self) docs.
#[derive(Debug, Clone)]
pub struct QuorumReader<P> {
    clients: Vec<RegistryClient<P>>,
    quorum: usize,
    confirmations: u64,
    dissents: Arc<AtomicU64>,
}

/// What a quorum read agreed on: the set, and when its block was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedSet {
    /// The set, with [`RouteSet::block`] the block every agreeing URL read it at.
    pub set: RouteSet,
    /// Unix time of that block.
    pub block_time: u64,
    /// URLs that agreed.
    pub agreeing: usize,
}

/// Why a quorum read gave no set.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Fewer than `quorum` URLs answered at all.
    #[error("only {answered} of {urls} registry RPCs answered (quorum {quorum})")]
    TooFew {
        /// URLs that answered.
        answered: usize,
        /// URLs configured.
        urls: usize,
        /// Agreeing answers needed.
        quorum: usize,
    },
    /// The answers did not reach the quorum on one set.
    #[error(
        "no {quorum} registry RPCs agree on the route set at block {block} (largest group {largest})"
    )]
    Disagreement {
        /// The block read at.
        block: u64,
        /// Agreeing answers needed.
        quorum: usize,
        /// The largest group of identical answers.
        largest: usize,
    },
}

/// One URL's answer at the block read.
type Answer = (B256, u64, RouteSet);

impl<P: Provider + Clone> QuorumReader<P> {
    /// A reader over `clients` (one per RPC URL of the same registry) needing `quorum` identical
    /// answers (clamped to 1..=n); `confirmations` blocks below the lowest head.
    pub fn new(clients: Vec<RegistryClient<P>>, quorum: usize, confirmations: u64) -> Self {
        let quorum = quorum.clamp(1, clients.len().max(1));
        if clients.len() == 1 {
            warn!(target: "lifeline::quorum", "the registry is read through one RPC URL: that RPC alone decides the route set (configure several to outvote a liar)");
        }
        Self { clients, quorum, confirmations, dissents: Arc::default() }
    }

    /// Answers from URLs that disagreed with the agreed set so far.
    pub fn dissents(&self) -> u64 {
        self.dissents.load(Ordering::Relaxed)
    }

    /// The set `quorum` URLs agree on at one block; see the [module](self) docs.
    pub async fn routes(&self, service: B256) -> std::result::Result<AgreedSet, QuorumError> {
        let heads = join_all(
            self.clients
                .iter()
                .map(|c| async move { c.contract().provider().get_block_number().await.ok() }),
        )
        .await;
        let answered: Vec<usize> = (0..heads.len()).filter(|i| heads[*i].is_some()).collect();
        let too_few = |answered| QuorumError::TooFew {
            answered,
            urls: self.clients.len(),
            quorum: self.quorum,
        };
        if answered.len() < self.quorum {
            return Err(too_few(answered.len()));
        }
        // The highest block at least `quorum` URLs have: a URL claiming a low (or a far) head
        // moves it no further than the quorum allows.
        let mut reached: Vec<u64> = heads.iter().flatten().copied().collect();
        reached.sort_unstable_by(|a, b| b.cmp(a));
        let block = reached[self.quorum - 1].saturating_sub(self.confirmations);
        let answers: Vec<Option<Answer>> =
            join_all(self.clients.iter().map(|c| read_at(c, service, block))).await;
        let mut groups: HashMap<(B256, u32, B256), Vec<usize>> = HashMap::new();
        for (i, answer) in answers.iter().enumerate() {
            if let Some((hash, _, set)) = answer {
                groups.entry((*hash, set.epoch, set.content_hash())).or_default().push(i);
            }
        }
        let answered = groups.values().map(Vec::len).sum();
        let best = groups.iter().max_by_key(|(_, members)| members.len());
        let Some((key, members)) = best.filter(|(_, m)| m.len() >= self.quorum) else {
            if answered < self.quorum {
                return Err(too_few(answered));
            }
            let largest = best.map_or(0, |(_, m)| m.len());
            return Err(QuorumError::Disagreement { block, quorum: self.quorum, largest });
        };
        for (other, outliers) in &groups {
            if other != key {
                for i in outliers {
                    self.dissents.fetch_add(1, Ordering::Relaxed);
                    warn!(target: "lifeline::quorum", rpc = i, block, "a registry RPC answered another route set than the quorum; ignored");
                }
            }
        }
        let first = members[0];
        let Some((_, time, set)) = answers[first].clone() else {
            return Err(too_few(0));
        };
        Ok(AgreedSet { set, block_time: time, agreeing: members.len() })
    }
}

/// Yields a service's set each time the quorum agrees on another one; see
/// [`QuorumReader::watch`].
#[derive(Debug)]
pub struct QuorumWatcher<P> {
    reader: QuorumReader<P>,
    service: B256,
    poll: Duration,
    last: Option<(u32, B256)>,
}

impl<P: Provider + Clone> QuorumReader<P> {
    /// Follows `service`: [`QuorumWatcher::next`] yields the agreed set on the first call and
    /// then each time the agreed set changes.
    pub fn watch(&self, service: B256, poll: Duration) -> QuorumWatcher<P> {
        QuorumWatcher { reader: self.clone(), service, poll, last: None }
    }
}

impl<P: Provider + Clone> QuorumWatcher<P> {
    /// Waits for the next agreed set. A set with a lower or equal epoch than the last one (the
    /// quorum's chain reorganised) is flagged [`RouteSet::after_reorg`], so a transport takes
    /// it. Reads without a quorum are logged and retried every poll (the caller keeps its last
    /// set: fail static).
    pub async fn next(&mut self) -> RouteSet {
        loop {
            match self.reader.routes(self.service).await {
                Ok(agreed) => {
                    let mut set = agreed.set;
                    let key = (set.epoch, set.content_hash());
                    if self.last != Some(key) {
                        set.after_reorg = self.last.is_some_and(|(epoch, _)| set.epoch <= epoch);
                        self.last = Some(key);
                        return set;
                    }
                }
                Err(error) => {
                    warn!(target: "lifeline::quorum", service = %self.service, %error, "no agreed route set; keeping the last one");
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// `service`'s set through one URL at `block`: (block hash, block time, set read at that hash).
async fn read_at<P: Provider + Clone>(
    client: &RegistryClient<P>,
    service: B256,
    block: u64,
) -> Option<Answer> {
    let provider = client.contract().provider();
    let header = provider.get_block_by_number(BlockNumberOrTag::Number(block)).await.ok()??.header;
    let at = BlockRef { number: header.number, hash: header.hash };
    let set: Result<RouteSet> = client.routes_at(service, at).await;
    Some((header.hash, header.timestamp, set.ok()?))
}

/// Follows one service on several registries and picks the set to route by; see the
/// [module](self) docs.
#[derive(Debug, Clone)]
pub struct RegistrySet<P> {
    /// The registries, the primary first.
    pub registries: Vec<QuorumReader<P>>,
    /// A registry chain is live while the block its set was read at is at most this old.
    pub live_bound: Duration,
    /// Live registries whose sets differ for longer than this are reported.
    pub disagree_after: Duration,
    disagreements: Arc<AtomicU64>,
}

/// What [`RegistrySet::choose`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index of the registry whose set is in force.
    pub registry: usize,
    /// Its set.
    pub set: RouteSet,
}

impl<P: Provider + Clone> RegistrySet<P> {
    /// Follows `registries` (the primary first).
    pub fn new(
        registries: Vec<QuorumReader<P>>,
        live_bound: Duration,
        disagree_after: Duration,
    ) -> Self {
        Self { registries, live_bound, disagree_after, disagreements: Arc::default() }
    }

    /// Times live registries disagreed for longer than `disagree_after`.
    pub fn disagreements(&self) -> u64 {
        self.disagreements.load(Ordering::Relaxed)
    }

    /// Reads every registry once and applies the rule: the primary's set while live, else the
    /// live registry attested most recently; `None` when no registry is live.
    pub async fn choose(&self, service: B256) -> Option<(Choice, Vec<Option<AgreedSet>>)> {
        let reads = join_all(self.registries.iter().map(|r| r.routes(service))).await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let live = |a: &AgreedSet| now.saturating_sub(a.block_time) <= self.live_bound.as_secs();
        let agreed: Vec<Option<AgreedSet>> = reads
            .into_iter()
            .enumerate()
            .map(|(i, read)| match read {
                Ok(agreed) => Some(agreed),
                Err(error) => {
                    warn!(target: "lifeline::quorum", registry = i, %error, "registry unreadable");
                    None
                }
            })
            .collect();
        let chosen = match &agreed[..] {
            [Some(primary), ..] if live(primary) => Some(0),
            _ => agreed
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.as_ref().filter(|a| live(a)).map(|a| (i, a)))
                .max_by_key(|(i, a)| (a.set.last_attested, std::cmp::Reverse(*i)))
                .map(|(i, _)| i),
        }?;
        let set = agreed[chosen].as_ref()?.set.clone();
        Some((Choice { registry: chosen, set }, agreed))
    }

    /// Applies the chosen set to `transport` every `poll`, in a background task that lives as
    /// long as the returned [`Follower`]. A change of registry, or of the chosen registry's
    /// set, is applied whatever its epoch (epochs of different registries are not comparable).
    pub fn follow<C: Connector>(
        self,
        transport: &FailoverTransport<C>,
        service: B256,
        poll: Duration,
    ) -> Follower
    where
        P: Send + Sync + 'static,
    {
        let transport = transport.clone();
        Follower::spawn(async move {
            let mut in_force: Option<(usize, u32, B256)> = None;
            let mut differ_since: Option<Instant> = None;
            loop {
                if let Some((choice, agreed)) = self.choose(service).await {
                    let key = (choice.registry, choice.set.epoch, choice.set.content_hash());
                    if in_force != Some(key) {
                        if in_force.is_some_and(|(r, ..)| r != choice.registry) {
                            info!(target: "lifeline::quorum", registry = choice.registry, epoch = choice.set.epoch, "route set now from another registry");
                        }
                        transport.apply_canonical(&choice.set);
                        in_force = Some(key);
                    }
                    let contents: Vec<B256> =
                        agreed.iter().flatten().map(|a| a.set.content_hash()).collect();
                    if contents.windows(2).any(|w| w[0] != w[1]) {
                        let since = *differ_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.disagree_after {
                            self.disagreements.fetch_add(1, Ordering::Relaxed);
                            warn!(target: "lifeline::quorum", seconds = since.elapsed().as_secs(), "registries disagree on the route set; following the rule");
                            differ_since = Some(Instant::now());
                        }
                    } else {
                        differ_since = None;
                    }
                }
                tokio::time::sleep(poll).await;
            }
        })
    }
}
