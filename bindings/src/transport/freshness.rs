//! Head-aware routing: which routes are fresh enough to answer a read.
//!
//! Each route's head (number, hash, when it was seen, when it last advanced) and chain id are
//! tracked from a light poll at block cadence (`eth_chainId` + `eth_getBlockByNumber("latest")`
//! per route) and from the head answers the transport already sees. From them:
//!
//! - the **reference head** is the highest block a strict majority of the routes with recent
//!   data have reached (never the maximum one route claims: one route reporting a far-future
//!   block does not make the others "lagging");
//! - the **expected chain id** is the configured one, else the majority's;
//! - a route is **skipped for reads** while it is more than `max_lag_blocks` behind the
//!   reference (lagging; "stalled" when its head stopped moving), more than `max_lag_blocks`
//!   ahead of it (a head nobody corroborates), on another chain, has a hash at a shared height
//!   that differs from the majority's (forked), or has no head data younger than
//!   `max_head_age`.
//!
//! Reads of `latest`/`pending` (and methods that default to them) go only to fresh routes; a
//! read of a specific block goes to a fresh route, or to a route that has that block. If no
//! route qualifies the caller gets `all authorised routes are stale: ...` naming each route and
//! why, unless it opted into `allow_stale`.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use alloy::{primitives::B256, transports::http::reqwest::Url};

/// Head-aware routing settings.
#[derive(Debug, Clone)]
pub struct FreshnessConfig {
    /// Track heads and skip stale routes (`false`: route by health only, as before).
    pub enabled: bool,
    /// A route more than this many blocks behind (or ahead of) the reference head is skipped.
    pub max_lag_blocks: u64,
    /// Head data older than this does not count (the route is skipped until it answers again).
    pub max_head_age: Duration,
    /// How often every route's head is polled.
    pub poll_interval: Duration,
    /// The chain every route must serve; `None`: the majority's.
    pub expected_chain_id: Option<u64>,
    /// When no route is fresh, use the stale ones anyway instead of failing the read.
    pub allow_stale: bool,
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_lag_blocks: 2,
            max_head_age: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            expected_chain_id: None,
            allow_stale: false,
        }
    }
}

/// Why a route is not used for a read right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No head data younger than `max_head_age` (never answered, or stopped answering).
    NoHead,
    /// Behind the reference head by this many blocks.
    Lagging(u64),
    /// Its head has not moved for this long while the reference moved on.
    Stalled(Duration),
    /// Ahead of the reference by this many blocks: a head no majority corroborates.
    Ahead(u64),
    /// Serves this chain id instead of the expected one.
    WrongChain(u64),
    /// Its hash at this height differs from the majority's.
    Forked(u64),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHead => write!(f, "no head data"),
            Self::Lagging(n) => write!(f, "lagging by {n} blocks"),
            Self::Stalled(d) => write!(f, "stalled for {}s", d.as_secs()),
            Self::Ahead(n) => write!(f, "{n} blocks ahead of the majority"),
            Self::WrongChain(id) => write!(f, "wrong chain id {id}"),
            Self::Forked(h) => write!(f, "forked at block {h}"),
        }
    }
}

impl Skip {
    /// A short fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoHead => "no_head",
            Self::Lagging(_) => "lagging",
            Self::Stalled(_) => "stalled",
            Self::Ahead(_) => "ahead",
            Self::WrongChain(_) => "wrong_chain",
            Self::Forked(_) => "forked",
        }
    }
}

/// Recent hashes remembered per route, to compare at shared heights.
const HASH_WINDOW: usize = 16;

/// What is known of one route's head.
#[derive(Debug, Clone, Default)]
struct RouteHead {
    number: Option<u64>,
    seen_at: Option<Instant>,
    advanced_at: Option<Instant>,
    chain_id: Option<u64>,
    hashes: VecDeque<(u64, B256)>,
    /// When an answer last raised the head.
    raised_at: Option<Instant>,
}

/// The verdict on every route, computed at one instant.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// The reference head (`None`: no route has recent data).
    pub reference: Option<u64>,
    /// Routes skipped for reads, and why.
    pub skipped: HashMap<Url, Skip>,
    /// Each route's last known head.
    pub heads: HashMap<Url, u64>,
    /// The highest head of a route not judged ahead (what a served head may be trusted up to).
    pub ceiling: Option<u64>,
    /// The head fresh routes are measured against: the reference, or the head already served
    /// (up to the ceiling) when higher.
    pub effective: Option<u64>,
    /// The majority's block hash at each recent height where a strict majority agrees.
    pub majority_hashes: BTreeMap<u64, B256>,
    /// When the freshest head data was seen (the ceiling is at least as of then).
    pub seen_at: Option<Instant>,
    /// The chain's block time, as the polls have seen heads advance (`None` until two heights).
    pub block_time: Option<Duration>,
    /// `max_lag_blocks` of the configuration judged by.
    pub max_lag: u64,
}

impl Judgement {
    /// Why a block answer (height `number`, `hash`, `parent` hash) must not be served, if it
    /// must not: at the highest height a strict majority agrees on, another hash than theirs;
    /// one above it, a parent that is not their block (from another chain or a fork, at a height
    /// the polls have not seen yet). Older heights are not judged here (after a reorg the
    /// majority's memory of them can be out of date; a forged hash is caught by its header).
    pub fn reject_block(&self, number: u64, hash: B256, parent: B256) -> Option<String> {
        let (top, agreed) = self.agreed_top()?;
        if number == top && hash != agreed {
            Some(format!("block {number:#x} has another hash than the majority's"))
        } else if number == top + 1 && parent != agreed {
            Some(format!("block {number:#x} does not build on the majority's block {top:#x}"))
        } else {
            None
        }
    }

    /// The highest head an answer may report at `now`: the highest head that is not ahead, plus
    /// `max_lag_blocks`, plus the blocks the chain can have made since that was seen. `None`
    /// while the block time is unknown (no limit).
    pub fn head_limit(&self, now: Instant) -> Option<u64> {
        let (ceiling, seen_at, block_time) = (self.ceiling?, self.seen_at?, self.block_time?);
        let since = now.saturating_duration_since(seen_at).as_secs_f64();
        let made = (since / block_time.as_secs_f64().max(1e-3)).ceil() as u64;
        Some(ceiling + self.max_lag + made)
    }

    /// The highest height whose block hash a strict majority agrees on, with that hash.
    pub fn agreed_top(&self) -> Option<(u64, B256)> {
        self.majority_hashes.last_key_value().map(|(n, h)| (*n, *h))
    }

    /// Whether `url` is fresh and not behind the effective head at all (the best routes for a
    /// read of the head; fresh routes a block or two behind are the fallback).
    pub fn is_synced(&self, url: &Url) -> bool {
        self.is_fresh(url)
            && match (self.heads.get(url), self.effective) {
                (Some(head), Some(effective)) => *head >= effective,
                _ => true,
            }
    }
}

impl Judgement {
    /// Whether `url` may answer a read of the head.
    pub fn is_fresh(&self, url: &Url) -> bool {
        !self.skipped.contains_key(url)
    }

    /// Whether `url` has block `number`: on the right chain, not forked, and its head at or
    /// above it (a fresh route whose head is not known yet is trusted to).
    pub fn has_block(&self, url: &Url, number: u64) -> bool {
        match (self.skipped.get(url), self.heads.get(url)) {
            (Some(Skip::WrongChain(_) | Skip::Forked(_)), _) => false,
            (_, Some(head)) => *head >= number,
            (skip, None) => skip.is_none(),
        }
    }
}

/// Every route's head, updated from polls and answers.
#[derive(Debug, Default)]
pub struct HeadTracker {
    routes: HashMap<Url, RouteHead>,
    /// When the polls first saw each new highest head (the latest few): the block time.
    tops: VecDeque<(u64, Instant)>,
    /// Bumped by every change, so a judgement can be reused until something changed.
    generation: u64,
}

impl HeadTracker {
    /// Records the head `url` reported to a poll sent at `sent`; `hash` when known. The poll is
    /// authoritative (the head may go down: a node that restarted, or one that fell behind),
    /// except that it does not undo a higher head the route gave in an answer after `sent`.
    pub fn observe(
        &mut self,
        url: &Url,
        number: u64,
        hash: Option<B256>,
        sent: Instant,
        now: Instant,
    ) {
        self.generation += 1;
        if self.tops.back().is_none_or(|(top, _)| number > *top) {
            self.tops.push_back((number, now));
            while self.tops.len() > HASH_WINDOW {
                self.tops.pop_front();
            }
        }
        let head = self.routes.entry(url.clone()).or_default();
        let undone = head.number.is_some_and(|n| number < n)
            && head.raised_at.is_some_and(|raised| raised > sent);
        if !undone {
            if head.number != Some(number) {
                head.advanced_at = Some(now);
            }
            head.number = Some(number);
        }
        head.seen_at = Some(now);
        if let Some(hash) = hash {
            head.hashes.retain(|(n, _)| *n != number);
            head.hashes.push_back((number, hash));
            while head.hashes.len() > HASH_WINDOW {
                head.hashes.pop_front();
            }
        }
    }

    /// Records a head seen in an answer to a caller's request: it only ever raises what is
    /// known (answers may arrive out of order).
    pub fn observe_answer(&mut self, url: &Url, number: u64, now: Instant) {
        let head = self.routes.entry(url.clone()).or_default();
        if head.number.is_some_and(|n| number > n) {
            self.generation += 1;
            head.number = Some(number);
            head.advanced_at = Some(now);
            head.raised_at = Some(now);
            head.seen_at = Some(now);
        }
    }

    /// Records that `url` failed its head poll: its head data no longer counts (it takes no
    /// part in the reference and is not read from until it answers again).
    pub fn observe_silence(&mut self, url: &Url) {
        self.generation += 1;
        if let Some(head) = self.routes.get_mut(url) {
            head.seen_at = None;
        }
    }

    /// The highest head the polls have seen.
    pub fn top(&self) -> Option<u64> {
        self.tops.back().map(|(n, _)| *n)
    }

    /// The block time the polls have seen: the time between the oldest and newest highest head
    /// they recorded over the heights between (`None` before two).
    pub fn block_time(&self) -> Option<Duration> {
        let ((first, at), (last, last_at)) = (self.tops.front()?, self.tops.back()?);
        let blocks = u32::try_from(last.checked_sub(*first)?).ok().filter(|n| *n > 0)?;
        Some(last_at.saturating_duration_since(*at) / blocks)
    }

    /// Records the chain id `url` reports.
    pub fn observe_chain(&mut self, url: &Url, chain_id: u64) {
        self.generation += 1;
        self.routes.entry(url.clone()).or_default().chain_id = Some(chain_id);
    }

    /// A number that changes whenever anything tracked changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the chain id of `url` is known.
    pub fn knows_chain(&self, url: &Url) -> bool {
        self.routes.get(url).is_some_and(|h| h.chain_id.is_some())
    }

    /// Forgets routes no longer in the set.
    pub fn retain(&mut self, urls: &[Url]) {
        self.generation += 1;
        self.routes.retain(|url, _| urls.contains(url));
    }

    /// Judges `urls` at `now`.
    /// `served` is the highest head already returned to the caller: a route far below it is
    /// lagging even when no majority says so (two routes, one of them behind).
    pub fn judge(
        &self,
        urls: &[Url],
        config: &FreshnessConfig,
        served: Option<u64>,
        now: Instant,
    ) -> Judgement {
        let mut judgement = Judgement {
            max_lag: config.max_lag_blocks,
            block_time: self.block_time(),
            ..Default::default()
        };
        let recent =
            |h: &RouteHead| h.seen_at.is_some_and(|t| now.duration_since(t) <= config.max_head_age);

        // The chain id: configured, else the majority of those known.
        let expected = config.expected_chain_id.or_else(|| {
            let mut votes: HashMap<u64, usize> = HashMap::new();
            for url in urls {
                if let Some(id) = self.routes.get(url).and_then(|h| h.chain_id) {
                    *votes.entry(id).or_default() += 1;
                }
            }
            let known: usize = votes.values().sum();
            votes.into_iter().find(|(_, n)| 2 * n > known).map(|(id, _)| id)
        });

        let mut candidates = Vec::new();
        for url in urls {
            let head = self.routes.get(url);
            if let Some(number) = head.and_then(|h| h.number) {
                judgement.heads.insert(url.clone(), number);
            }
            match head {
                Some(h) if h.chain_id.is_some() && expected.is_some() && h.chain_id != expected => {
                    judgement
                        .skipped
                        .insert(url.clone(), Skip::WrongChain(h.chain_id.unwrap_or(0)));
                }
                Some(h) if recent(h) && h.number.is_some() => candidates.push((url, h)),
                _ => {
                    judgement.skipped.insert(url.clone(), Skip::NoHead);
                }
            }
        }
        if candidates.is_empty() {
            return judgement;
        }
        judgement.seen_at = candidates.iter().filter_map(|(_, h)| h.seen_at).max();
        // The highest head a strict majority of candidates reached.
        let mut numbers: Vec<u64> = candidates.iter().filter_map(|(_, h)| h.number).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        let majority = numbers.len() / 2 + 1;
        let reference = numbers[majority - 1];
        judgement.reference = Some(reference);

        // Majority hash per height, over every candidate's recent hashes.
        let mut by_height: BTreeMap<u64, HashMap<B256, usize>> = BTreeMap::new();
        for (_, h) in &candidates {
            for (n, hash) in &h.hashes {
                *by_height.entry(*n).or_default().entry(*hash).or_default() += 1;
            }
        }
        let majority_hash = |height: u64| -> Option<B256> {
            let votes = by_height.get(&height)?;
            votes.iter().find(|(_, n)| 2 * **n > candidates.len()).map(|(hash, _)| *hash)
        };

        // A route is ahead (its head uncorroborated) when a strict majority of the candidates
        // are more than `max_lag_blocks` below it. With no such majority (two routes, one
        // behind), nobody is called ahead.
        let max_lag = config.max_lag_blocks;
        let ahead = |number: u64| {
            number > reference + max_lag
                && 2 * numbers.iter().filter(|n| **n + max_lag < number).count() > numbers.len()
        };
        // The head the caller has already seen counts too, up to the highest head that is not
        // ahead: a route far below what was served is lagging.
        let ceiling = numbers.iter().copied().filter(|n| !ahead(*n)).max().unwrap_or(reference);
        judgement.ceiling = Some(ceiling);
        let effective = reference.max(served.unwrap_or(0).min(ceiling));
        judgement.effective = Some(effective);
        // The majority's hash at every height a majority has one, for pinning and checking.
        judgement.majority_hashes =
            by_height.keys().filter_map(|n| majority_hash(*n).map(|hash| (*n, hash))).collect();

        for (url, h) in &candidates {
            let number = h.number.unwrap_or(0);
            // Judged at the highest height where the route and a majority both have a hash: a
            // route that forked and came back agrees there again.
            let forked = h
                .hashes
                .iter()
                .filter_map(|(n, hash)| majority_hash(*n).map(|agreed| (*n, agreed != *hash)))
                .max_by_key(|(n, _)| *n)
                .and_then(|(n, differs)| differs.then_some(n));
            let skip = if let Some(height) = forked {
                Some(Skip::Forked(height))
            } else if number + max_lag < effective {
                let still = h.advanced_at.map_or(Duration::ZERO, |t| now.duration_since(t));
                Some(if still > config.max_head_age / 2 {
                    Skip::Stalled(still)
                } else {
                    Skip::Lagging(effective - number)
                })
            } else if ahead(number) {
                Some(Skip::Ahead(number - reference))
            } else {
                None
            };
            if let Some(skip) = skip {
                judgement.skipped.insert((*url).clone(), skip);
            }
        }
        judgement
    }
}

/// What block a read needs, from its method and params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockNeed {
    /// The head (`latest`, `pending`, `safe`/`finalized` are treated alike, or no block param).
    Head,
    /// This block number or later.
    AtLeast(u64),
    /// No block-dependent data (chain id, a transaction by hash, ...): any route.
    Any,
}

/// Methods whose block parameter sits at this index (and default to `latest` without it).
fn block_param_index(method: &str) -> Option<usize> {
    Some(match method {
        "eth_blockNumber" | "eth_gasPrice" | "eth_maxPriorityFeePerGas" | "eth_blobBaseFee" => {
            return Some(usize::MAX);
        }
        "eth_getBlockByNumber"
        | "eth_getBlockTransactionCountByNumber"
        | "eth_getUncleCountByBlockNumber"
        | "eth_getBlockReceipts" => 0,
        "eth_getBalance"
        | "eth_getCode"
        | "eth_getTransactionCount"
        | "eth_call"
        | "eth_estimateGas" => 1,
        "eth_getStorageAt" | "eth_getProof" | "eth_feeHistory" => 2,
        _ => return None,
    })
}

/// What block `method` with `params` needs.
pub fn block_need(method: &str, params: Option<&serde_json::value::RawValue>) -> BlockNeed {
    let Some(index) = block_param_index(method) else {
        if method == "eth_getLogs" {
            return logs_need(params);
        }
        return BlockNeed::Any;
    };
    if index == usize::MAX {
        return BlockNeed::Head;
    }
    // Only the one parameter that matters is parsed into a value.
    let params: Vec<&serde_json::value::RawValue> =
        params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
    let tag = params.get(index).and_then(|raw| serde_json::from_str(raw.get()).ok());
    tag_need(tag.as_ref())
}

fn tag_need(tag: Option<&serde_json::Value>) -> BlockNeed {
    match tag {
        None | Some(serde_json::Value::Null) => BlockNeed::Head,
        Some(serde_json::Value::String(tag)) => match tag.as_str() {
            "latest" | "pending" | "safe" | "finalized" => BlockNeed::Head,
            "earliest" => BlockNeed::Any,
            hex => u64::from_str_radix(hex.trim_start_matches("0x"), 16)
                .map_or(BlockNeed::Head, BlockNeed::AtLeast),
        },
        // EIP-1898 objects: a block hash (any route that has it) or a number.
        Some(serde_json::Value::Object(object)) => match object.get("blockNumber") {
            Some(number) => tag_need(Some(number)),
            None => BlockNeed::Any,
        },
        Some(_) => BlockNeed::Head,
    }
}

fn logs_need(params: Option<&serde_json::value::RawValue>) -> BlockNeed {
    let params: Vec<serde_json::Value> =
        params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
    let Some(filter) = params.first().and_then(|f| f.as_object()) else { return BlockNeed::Head };
    if filter.contains_key("blockHash") {
        return BlockNeed::Any;
    }
    tag_need(filter.get("toBlock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(n: u16) -> Url {
        format!("http://127.0.0.1:{n}").parse().expect("url")
    }

    fn hash(n: u64, fork: u8) -> B256 {
        let mut bytes = [fork; 32];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        B256::from(bytes)
    }

    fn tracker(heads: &[(u16, u64, u8)], now: Instant) -> HeadTracker {
        let mut t = HeadTracker::default();
        for &(port, head, fork) in heads {
            t.observe_chain(&url(port), 1);
            for n in head.saturating_sub(3)..=head {
                t.observe(&url(port), n, Some(hash(n, fork)), now, now);
            }
        }
        t
    }

    fn urls(ports: &[u16]) -> Vec<Url> {
        ports.iter().map(|p| url(*p)).collect()
    }

    #[test]
    fn one_route_claiming_a_far_higher_head_does_not_make_the_others_lag() {
        let now = Instant::now();
        let t = tracker(&[(1, 100, 0), (2, 100, 0), (3, 1_000_000, 0)], now);
        let j = t.judge(&urls(&[1, 2, 3]), &FreshnessConfig::default(), None, now);
        assert_eq!(j.reference, Some(100));
        assert!(j.is_fresh(&url(1)) && j.is_fresh(&url(2)));
        assert_eq!(j.skipped.get(&url(3)), Some(&Skip::Ahead(999_900)));
    }

    #[test]
    fn the_reference_is_what_a_strict_majority_reached() {
        let now = Instant::now();
        let t = tracker(&[(1, 100, 0), (2, 99, 0), (3, 90, 0), (4, 101, 0), (5, 100, 0)], now);
        let j = t.judge(&urls(&[1, 2, 3, 4, 5]), &FreshnessConfig::default(), None, now);
        // Sorted: 101, 100, 100, 99, 90; three of five reached 100.
        assert_eq!(j.reference, Some(100));
        assert_eq!(j.skipped.get(&url(3)), Some(&Skip::Lagging(10)));
        assert!(j.is_fresh(&url(2)), "one block behind is within max_lag_blocks");
        assert!(j.is_fresh(&url(4)), "one block ahead is within max_lag_blocks");
        assert!(j.has_block(&url(3), 90) && !j.has_block(&url(3), 91));
        assert!(!j.has_block(&url(2), 100), "a fresh route one block behind lacks the head block");
    }

    #[test]
    fn wrong_chain_forked_and_silent_routes_are_skipped() {
        let now = Instant::now();
        let mut t = tracker(&[(1, 50, 0), (2, 50, 0), (3, 50, 7)], now);
        t.observe_chain(&url(4), 5);
        t.observe(&url(4), 50, None, now, now);
        let old = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
        t.observe(&url(5), 50, None, old, old);
        let j = t.judge(&urls(&[1, 2, 3, 4, 5, 6]), &FreshnessConfig::default(), None, now);
        assert_eq!(j.skipped.get(&url(3)), Some(&Skip::Forked(50)));
        assert_eq!(j.skipped.get(&url(4)), Some(&Skip::WrongChain(5)));
        assert_eq!(j.skipped.get(&url(5)), Some(&Skip::NoHead), "data too old");
        assert_eq!(j.skipped.get(&url(6)), Some(&Skip::NoHead), "never answered");
        assert!(!j.has_block(&url(3), 10), "a forked route serves no block");
        let configured = FreshnessConfig { expected_chain_id: Some(5), ..Default::default() };
        let j = t.judge(&urls(&[1, 4]), &configured, None, now);
        assert_eq!(j.skipped.get(&url(1)), Some(&Skip::WrongChain(1)));
    }

    #[test]
    fn with_two_routes_the_one_behind_what_was_served_is_lagging() {
        let now = Instant::now();
        let t = tracker(&[(1, 10, 0), (2, 2, 0)], now);
        let j = t.judge(&urls(&[1, 2]), &FreshnessConfig::default(), Some(10), now);
        assert_eq!(j.reference, Some(2), "no majority above the lower head");
        assert!(j.is_fresh(&url(1)), "not 'ahead': no majority contradicts it");
        assert_eq!(j.skipped.get(&url(2)), Some(&Skip::Lagging(8)));
        // A served head inflated by a liar is only trusted up to the highest honest head.
        let t = tracker(&[(1, 100, 0), (2, 100, 0), (3, 1_000_000, 0)], now);
        let j = t.judge(&urls(&[1, 2, 3]), &FreshnessConfig::default(), Some(1_000_000), now);
        assert_eq!(j.ceiling, Some(100));
        assert!(j.is_fresh(&url(1)) && j.is_fresh(&url(2)));
    }

    #[test]
    fn a_route_that_forked_and_came_back_is_judged_at_the_highest_shared_height() {
        let now = Instant::now();
        let mut t = tracker(&[(1, 14, 0), (2, 14, 0)], now);
        t.observe_chain(&url(3), 1);
        t.observe(&url(3), 10, Some(hash(10, 9)), now, now);
        for n in 11..=14 {
            t.observe(&url(3), n, Some(hash(n, 0)), now, now);
        }
        let j = t.judge(&urls(&[1, 2, 3]), &FreshnessConfig::default(), None, now);
        assert!(j.is_fresh(&url(3)), "agrees with the majority at 14: {:?}", j.skipped);
        assert_eq!(j.reject_block(14, hash(14, 0), hash(13, 0)), None);
        assert!(j.reject_block(14, hash(14, 9), hash(13, 0)).is_some(), "another hash at 14");
        assert_eq!(j.reject_block(15, hash(15, 9), hash(14, 0)), None, "builds on 14");
        assert!(j.reject_block(15, hash(15, 0), hash(14, 9)).is_some(), "builds on another 14");
        assert_eq!(j.reject_block(12, hash(12, 9), hash(11, 9)), None, "older: not judged here");
    }

    #[test]
    fn a_head_that_stopped_moving_is_stalled() {
        let start = Instant::now();
        let mut t = HeadTracker::default();
        t.observe(&url(1), 10, None, start, start);
        let later = start + Duration::from_secs(8);
        t.observe(&url(1), 10, None, later, later);
        t.observe(&url(2), 20, None, later, later);
        t.observe(&url(3), 20, None, later, later);
        let j = t.judge(&urls(&[1, 2, 3]), &FreshnessConfig::default(), None, later);
        assert!(matches!(j.skipped.get(&url(1)), Some(Skip::Stalled(d)) if d.as_secs() == 8));
        // A whole chain that idles (automine, no traffic) is not stale.
        let mut idle = HeadTracker::default();
        idle.observe(&url(1), 10, None, start, start);
        idle.observe(&url(2), 10, None, start, start);
        idle.observe(&url(1), 10, None, later, later);
        idle.observe(&url(2), 10, None, later, later);
        assert!(
            idle.judge(&urls(&[1, 2]), &FreshnessConfig::default(), None, later).skipped.is_empty()
        );
    }

    #[test]
    fn block_needs_are_read_from_method_and_params() {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.into()).expect("json");
        assert_eq!(block_need("eth_blockNumber", None), BlockNeed::Head);
        assert_eq!(block_need("eth_getBalance", Some(&raw(r#"["0x01"]"#))), BlockNeed::Head);
        assert_eq!(
            block_need("eth_getBalance", Some(&raw(r#"["0x01","0x10"]"#))),
            BlockNeed::AtLeast(16)
        );
        assert_eq!(block_need("eth_call", Some(&raw(r#"[{},"latest"]"#))), BlockNeed::Head);
        assert_eq!(
            block_need("eth_getBlockByNumber", Some(&raw(r#"["0x5",false]"#))),
            BlockNeed::AtLeast(5)
        );
        assert_eq!(
            block_need("eth_getLogs", Some(&raw(r#"[{"fromBlock":"0x1","toBlock":"0x9"}]"#))),
            BlockNeed::AtLeast(9)
        );
        assert_eq!(
            block_need("eth_getLogs", Some(&raw(r#"[{"address":"0x01"}]"#))),
            BlockNeed::Head
        );
        assert_eq!(
            block_need("eth_getTransactionReceipt", Some(&raw(r#"["0x01"]"#))),
            BlockNeed::Any
        );
        assert_eq!(block_need("eth_chainId", None), BlockNeed::Any);
    }
}
