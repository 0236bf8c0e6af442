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

    /// The registry's address (the same for every URL).
    pub fn address(&self) -> alloy::primitives::Address {
        self.clients.first().map(|c| *c.contract().address()).unwrap_or_default()
    }

    /// The client of the first URL.
    pub fn client(&self) -> RegistryClient<P> {
        self.clients[0].clone()
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

    /// Whether a registry whose set was agreed as `agreed` is live at unix time `now`.
    pub fn is_live(&self, agreed: &AgreedSet, now: u64) -> bool {
        now.saturating_sub(agreed.block_time) <= self.live_bound.as_secs()
    }

    /// Reads every registry once and applies the rule: the primary's set while live, else the
    /// live registry attested most recently; `None` when no registry is live.
    pub async fn choose(&self, service: B256) -> Option<(Choice, Vec<Option<AgreedSet>>)> {
        let (choice, agreed) = self.read_and_choose(service).await;
        choice.map(|c| (c, agreed))
    }

    /// As [`RegistrySet::choose`], with every registry's agreed set also when none is live.
    pub async fn read_and_choose(&self, service: B256) -> (Option<Choice>, Vec<Option<AgreedSet>>) {
        let reads = join_all(self.registries.iter().map(|r| r.routes(service))).await;
        let now = unix_now();
        let live = |a: &AgreedSet| self.is_live(a, now);
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
        };
        let choice = chosen
            .and_then(|i| agreed[i].as_ref().map(|a| Choice { registry: i, set: a.set.clone() }));
        (choice, agreed)
    }

    /// Follows `service` round by round (see [`RegistryWatcher::next`]): what a gateway or a
    /// status view needs beyond [`RegistrySet::follow`] (every registry's set, the choice, and
    /// disagreements as they are reported).
    pub fn watch(self, service: B256, poll: Duration) -> RegistryWatcher<P> {
        RegistryWatcher {
            registries: self,
            service,
            poll,
            in_force: None,
            differ_since: None,
            rounds: 0,
        }
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
        let mut watcher = self.watch(service, poll);
        Follower::spawn(async move {
            loop {
                let round = watcher.next().await;
                if let (true, Some(choice)) = (round.changed, &round.choice) {
                    transport.apply_canonical(&choice.set);
                }
            }
        })
    }
}

/// One round of a [`RegistryWatcher`]: every registry read once, and the rule applied.
#[derive(Debug, Clone)]
pub struct RegistryRound {
    /// The registry and set in force; `None` while no registry was ever live (afterwards the
    /// last choice stays while none is live: fail static).
    pub choice: Option<Choice>,
    /// Each registry's agreed set this round (`None`: unreadable, no quorum), in configured
    /// order.
    pub agreed: Vec<Option<AgreedSet>>,
    /// Which registries were live this round (their set's block at most `live_bound` old).
    pub live: Vec<bool>,
    /// The choice differs from the last round's (another registry, or another set of the same
    /// one): apply it.
    pub changed: bool,
    /// Live registries have had different route contents for longer than `disagree_after`;
    /// true once per `disagree_after` while it lasts (each time also logged and counted in
    /// [`RegistrySet::disagreements`]).
    pub disagreement_reported: bool,
    /// Live registries have different route contents now (however briefly).
    pub disagreeing: bool,
}

/// Follows one service on a [`RegistrySet`]; see [`RegistrySet::watch`].
#[derive(Debug)]
pub struct RegistryWatcher<P> {
    registries: RegistrySet<P>,
    service: B256,
    poll: Duration,
    in_force: Option<(usize, u32, B256, Choice)>,
    differ_since: Option<Instant>,
    rounds: u64,
}

impl<P: Provider + Clone> RegistryWatcher<P> {
    /// The registries followed.
    pub fn registries(&self) -> &RegistrySet<P> {
        &self.registries
    }

    /// Reads every registry (at once on the first call, then after `poll`) and applies the
    /// rule; see [`RegistryRound`].
    pub async fn next(&mut self) -> RegistryRound {
        if self.rounds > 0 {
            tokio::time::sleep(self.poll).await;
        }
        self.rounds += 1;
        let (choice, agreed) = self.registries.read_and_choose(self.service).await;
        let now = unix_now();
        let live: Vec<bool> = agreed
            .iter()
            .map(|a| a.as_ref().is_some_and(|a| self.registries.is_live(a, now)))
            .collect();
        let mut changed = false;
        if let Some(choice) = &choice {
            let key = (choice.registry, choice.set.epoch, choice.set.content_hash());
            if self.in_force.as_ref().map(|(r, e, h, _)| (*r, *e, *h)) != Some(key) {
                if self.in_force.as_ref().is_some_and(|(r, ..)| *r != choice.registry) {
                    info!(target: "lifeline::quorum", registry = choice.registry, epoch = choice.set.epoch, "route set now from another registry");
                }
                self.in_force = Some((key.0, key.1, key.2, choice.clone()));
                changed = true;
            }
        }
        // Contents of live registries only: a halted chain's old set is not a disagreement.
        let contents: Vec<B256> = agreed
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .filter_map(|(a, _)| a.as_ref().map(|a| a.set.content_hash()))
            .collect();
        let disagreeing = contents.windows(2).any(|w| w[0] != w[1]);
        let mut disagreement_reported = false;
        if disagreeing {
            let since = *self.differ_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.registries.disagree_after {
                self.registries.disagreements.fetch_add(1, Ordering::Relaxed);
                warn!(target: "lifeline::quorum", service = %self.service, seconds = since.elapsed().as_secs(), "live registries disagree on the route set; following the rule");
                self.differ_since = Some(Instant::now());
                disagreement_reported = true;
            }
        } else {
            self.differ_since = None;
        }
        let choice = choice.or_else(|| self.in_force.as_ref().map(|(.., c)| c.clone()));
        RegistryRound { choice, agreed, live, changed, disagreement_reported, disagreeing }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
