//! The status page: `GET /status` on the admin listener (one self-contained HTML file embedded in
//! the binary: inline CSS, JS and SVG, nothing fetched from elsewhere) and the JSON it polls every
//! second, `GET /status.json`. `status = false` in the config serves neither.
//!
//! What it shows, per served service: the active set and the standbys (URL as registered,
//! region, provider, state, ready, degraded), the gateway's own view of each route (p50 latency
//! and error rate over the last minute from its metrics, the transport's EWMA latency and error
//! rate, breaker, head, why reads skip it), and a timeline of route sets (epochs) with the change
//! that ended each one: endpoints demoted and promoted, the transaction and block, the keepers
//! whose attestations that transaction carried (decoded from its `attest` / `attestBatch`
//! calldata, each signer recovered from its EIP-712 signature), and the client calls the gateway
//! answered under it. Then the keeper set with each keeper's last attestation (found in recent
//! blocks) and, per served service, its nonce and the last attestation time the registry
//! recorded for it (its liveness, `keeperState`), and the registry followed (chain id,
//! head, head age).
//!
//! The registry chain is read only while someone looks (a `/status.json` request in the last
//! [`WATCH_FOR`]): `RouteSetChanged`, `EndpointStatusChanged`, `DemotionDeferred` and
//! `KeeperSetUpdated` logs (the first read looks back [`LOG_LOOKBACK`] blocks), the transactions
//! that changed a set, the last [`ATTEST_LOOKBACK`] blocks' transactions to the registry, and the
//! keeper set. The per-epoch call counts and the per-route minute come from the gateway's own
//! counters, sampled every [`SAMPLE_EVERY`] whether or not anyone looks.
//!
//! Nothing secret is shown: endpoint URLs are the ones registered on-chain (a route the registry
//! does not list, i.e. a bootstrap route from the config, shows only its scheme and host), and
//! the registry's RPC URL is never shown.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    consensus::Transaction as _,
    network::TransactionResponse as _,
    primitives::{Address, B256, Bytes},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::{SolCall, SolEvent},
    transports::http::reqwest::Url,
};
use axum::{
    Json, Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{StreamExt, future::join_all, stream};
use lifeline_bindings::{
    EndpointState, RegistryClient, attestation,
    client::Status,
    registry::RouteRegistry::{
        self, DemotionDeferred, EndpointStatusChanged, KeeperSetUpdated, RouteSetChanged,
    },
};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::debug;

use crate::{metrics::Metrics, service::ServiceHandle};

/// The page: HTML with inline CSS, JS and SVG.
const PAGE: &str = include_str!("status/status.html");

/// How long the registry chain keeps being read after the last `/status.json` request.
pub(crate) const WATCH_FOR: Duration = Duration::from_secs(30);
/// How far back the first log read looks, in blocks.
pub(crate) const LOG_LOOKBACK: u64 = 100_000;
/// How many recent blocks are searched for attestation transactions (each keeper's last one).
pub(crate) const ATTEST_LOOKBACK: u64 = 64;
/// How often the gateway's own counters are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How often the registry chain is read while someone looks.
const CHAIN_EVERY: Duration = Duration::from_millis(1000);
/// The window of the per-route figures.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the keeper set is re-read (and on `KeeperSetUpdated`).
const KEEPERS_EVERY: Duration = Duration::from_secs(5);
/// Largest and smallest log query, in blocks (halved down to the smallest when refused).
const LOG_CHUNK: u64 = 10_000;
const LOG_CHUNK_MIN: u64 = 100;
/// Log queries per chain read at most (the rest of a long lookback continues next time).
const LOG_QUERIES: usize = 20;
/// Epochs kept per service.
const EPOCHS_KEPT: usize = 200;
/// Deferred-demotion alarms kept per service.
const ALARMS_KEPT: usize = 20;
/// Unhealthy votes kept (over every service).
const VOTES_KEPT: usize = 2_000;

/// Mounts `/status` and `/status.json`.
pub(crate) fn router<S>(tracker: Arc<Tracker>) -> Router<S> {
    Router::new()
        .route("/status", get(page))
        .route("/status.json", get(snapshot))
        .with_state(tracker)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src data:; connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn snapshot(State(tracker): State<Arc<Tracker>>) -> Response {
    tracker.watched_until.store(unix_ms() + WATCH_FOR.as_millis() as u64, Ordering::Relaxed);
    ([(header::CACHE_CONTROL, "no-store")], Json(tracker.snapshot())).into_response()
}

/// Collects what the page shows. One per gateway; [`Tracker::run`] keeps it current.
pub(crate) struct Tracker {
    registry: RegistryClient<DynProvider>,
    services: Vec<Arc<ServiceHandle>>,
    metrics: Metrics,
    started_at: u64,
    watched_until: AtomicU64,
    state: Mutex<Tracked>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

/// What the tracker has gathered.
#[derive(Default)]
struct Tracked {
    chain: ChainState,
    /// Next block the log scan reads, and the first block it covered.
    log_next: Option<u64>,
    log_from: Option<u64>,
    log_chunk: u64,
    /// Route set changes by service and epoch.
    changes: HashMap<B256, BTreeMap<u32, Change>>,
    alarms: HashMap<B256, VecDeque<Alarm>>,
    /// Next block searched for attestation transactions, and the first block searched.
    attest_next: Option<u64>,
    attest_from: Option<u64>,
    last_attested: HashMap<Address, Attested>,
    /// Unhealthy votes in accepted attestations, oldest first.
    votes: VecDeque<Vote>,
    keepers: Option<KeeperSet>,
    keepers_read: Option<Instant>,
    keepers_dirty: bool,
    keepers_error: Option<String>,
    block_times: BTreeMap<u64, u64>,
    /// Every endpoint of each service, read with the chain while someone looks (fresher than
    /// the service's own table, which is re-read every few seconds).
    endpoints: HashMap<B256, (Instant, Vec<EndpointState>)>,
    /// The gateway's client calls under each epoch it routed by.
    epochs: HashMap<B256, BTreeMap<u32, EpochCalls>>,
    samples: VecDeque<Sample>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct ChainState {
    chain_id: Option<u64>,
    head: Option<u64>,
    /// Unix time of the head block.
    head_time: Option<u64>,
    /// Unix ms of the last successful read.
    read_at: Option<u64>,
    error: Option<String>,
}

/// A `RouteSetChanged` and what came with it.
#[derive(Debug, Clone, Serialize)]
struct Change {
    epoch: u32,
    routes: Vec<u16>,
    block: u64,
    time: Option<u64>,
    tx: B256,
    demoted: Vec<u16>,
    promoted: Vec<u16>,
    deferred: Vec<Deferral>,
    /// `attest`, `attestBatch`, or the 4-byte selector of another call; `None` until read.
    call: Option<String>,
    relayer: Option<Address>,
    attestations: Vec<Attestor>,
    #[serde(skip)]
    reads: u8,
}

#[derive(Debug, Clone, Serialize)]
struct Deferral {
    endpoint: u16,
    reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Alarm {
    endpoint: u16,
    reason: &'static str,
    block: u64,
    time: Option<u64>,
    tx: B256,
}

/// One attestation in a transaction: who signed it and what it said.
#[derive(Debug, Clone, Serialize)]
struct Attestor {
    /// The recovered signer (`None` when the signature does not recover).
    keeper: Option<Address>,
    service: B256,
    nonce: u64,
    /// (endpoint, healthy) per verdict; empty for a heartbeat.
    verdicts: Vec<(u16, bool)>,
}

#[derive(Debug, Clone, Serialize)]
struct Attested {
    time: Option<u64>,
    block: u64,
    tx: B256,
    call: &'static str,
    verdicts: usize,
}

/// An unhealthy verdict the registry accepted.
#[derive(Debug, Clone, Serialize)]
struct Vote {
    keeper: Address,
    #[serde(skip)]
    service: B256,
    endpoint: u16,
    block: u64,
    time: Option<u64>,
    tx: B256,
}

#[derive(Debug, Clone)]
struct KeeperSet {
    config_version: u32,
    members: Vec<KeeperMember>,
}

#[derive(Debug, Clone)]
struct KeeperMember {
    address: Address,
    vantage: B256,
    active: Option<bool>,
    /// Per served service: the highest attestation nonce accepted and the last attestation time
    /// the registry recorded (the registry keeps one nonce window and liveness per (keeper,
    /// service)), `None` where the read failed.
    per_service: Vec<(String, Option<(u64, u64)>)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct EpochCalls {
    /// Unix ms at which the gateway was first seen routing by it.
    applied_at: u64,
    requests: u64,
    errors: u64,
    #[serde(skip)]
    base: Calls,
}

#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    requests: u64,
    errors: u64,
}

/// The gateway's counters at one moment.
#[derive(Debug, Default)]
struct Sample {
    at: Option<Instant>,
    /// (service, url as the metrics label it) -> counters over every method.
    routes: HashMap<(String, String), RouteCounts>,
    /// service -> client calls.
    calls: HashMap<String, Calls>,
}

#[derive(Debug, Default, Clone)]
struct RouteCounts {
    requests: u64,
    errors: u64,
    /// Cumulative histogram buckets (upper bound in seconds, count), ascending.
    buckets: BTreeMap<OrdF64, u64>,
}

/// A bucket bound, ordered (bounds are never NaN).
#[derive(Debug, Clone, Copy)]
struct OrdF64(f64);
impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Tracker {
    pub(crate) fn new(
        registry: RegistryClient<DynProvider>,
        services: Vec<Arc<ServiceHandle>>,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            services,
            metrics,
            started_at: unix_ms(),
            watched_until: AtomicU64::new(0),
            state: Mutex::new(Tracked { log_chunk: LOG_CHUNK, ..Default::default() }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples the gateway's counters, and reads the registry chain while someone looks. Runs
    /// until the task is dropped.
    pub(crate) async fn run(self: Arc<Self>) {
        let local = async {
            loop {
                self.sample();
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        };
        let chain = async {
            loop {
                if self.watched_until.load(Ordering::Relaxed) > unix_ms() {
                    let result = self.read_chain().await;
                    let mut state = self.state();
                    match result {
                        Ok(()) => {
                            state.chain.error = None;
                            state.chain.read_at = Some(unix_ms());
                        }
                        Err(e) => {
                            debug!(target: "gateway::status", error = %e, "registry chain read failed");
                            state.chain.error = Some(e);
                        }
                    }
                }
                tokio::time::sleep(CHAIN_EVERY).await;
            }
        };
        tokio::join!(local, chain);
    }

    /// Reads the gateway's counters: client calls per service (attributed to the epoch each
    /// service routes by now) and per-route attempts, errors and latency buckets.
    fn sample(&self) {
        let mut sample = parse_metrics(&self.metrics.render());
        sample.at = Some(Instant::now());
        let now = unix_ms();
        let mut state = self.state();
        for service in &self.services {
            let Some(epoch) = service.transport().epoch() else { continue };
            let calls = sample.calls.get(&service.name).copied().unwrap_or_default();
            let epochs = state.epochs.entry(service.id).or_default();
            let current = epochs.last_key_value().map(|(e, _)| *e);
            if current != Some(epoch) {
                if let Some(last) = current.and_then(|e| epochs.get_mut(&e)) {
                    last.update(calls);
                }
                let fresh = EpochCalls { applied_at: now, base: calls, ..Default::default() };
                epochs.insert(epoch, fresh);
                while epochs.len() > EPOCHS_KEPT {
                    epochs.pop_first();
                }
            } else if let Some(entry) = epochs.get_mut(&epoch) {
                entry.update(calls);
            }
        }
        let now = Instant::now();
        while state.samples.front().and_then(|s| s.at).is_some_and(|at| now - at > WINDOW) {
            state.samples.pop_front();
        }
        state.samples.push_back(sample);
    }

    async fn read_chain(&self) -> Result<(), String> {
        let provider = self.registry.contract().provider();
        let registry = *self.registry.contract().address();
        let known = self.state().chain.clone();
        let chain_id = match known.chain_id {
            Some(id) => id,
            None => provider.get_chain_id().await.map_err(|e| format!("eth_chainId: {e}"))?,
        };
        let head =
            provider.get_block_number().await.map_err(|e| format!("eth_blockNumber: {e}"))?;
        let head_time = if known.head == Some(head) && known.head_time.is_some() {
            known.head_time
        } else {
            self.block_time(head).await
        };
        {
            let mut state = self.state();
            state.chain.chain_id = Some(chain_id);
            state.chain.head = Some(head);
            state.chain.head_time = head_time;
        }
        let tables = join_all(self.services.iter().map(|s| self.registry.endpoints(s.id))).await;
        {
            let mut state = self.state();
            for (service, table) in self.services.iter().zip(tables) {
                if let Ok(table) = table {
                    state.endpoints.insert(service.id, (Instant::now(), table));
                }
            }
        }
        self.read_logs(registry, head).await?;
        self.read_change_transactions(chain_id, registry).await;
        self.read_attestations(chain_id, registry, head).await;
        self.read_keepers().await;
        Ok(())
    }

    async fn block_time(&self, number: u64) -> Option<u64> {
        if let Some(time) = self.state().block_times.get(&number) {
            return Some(*time);
        }
        let block =
            self.registry.contract().provider().get_block_by_number(number.into()).await.ok()??;
        let time = block.header.timestamp;
        let mut state = self.state();
        state.block_times.insert(number, time);
        while state.block_times.len() > 1024 {
            state.block_times.pop_first();
        }
        Some(time)
    }

    /// Route set changes and what came with them, from the registry's logs.
    async fn read_logs(&self, registry: Address, head: u64) -> Result<(), String> {
        let provider = self.registry.contract().provider();
        let (mut from, mut chunk) = {
            let mut state = self.state();
            let from = state.log_next.unwrap_or_else(|| head.saturating_sub(LOG_LOOKBACK));
            state.log_from.get_or_insert(from);
            (from, state.log_chunk.clamp(LOG_CHUNK_MIN, LOG_CHUNK))
        };
        let signatures = vec![
            RouteSetChanged::SIGNATURE_HASH,
            EndpointStatusChanged::SIGNATURE_HASH,
            DemotionDeferred::SIGNATURE_HASH,
            KeeperSetUpdated::SIGNATURE_HASH,
        ];
        let mut queries = 0;
        while from <= head && queries < LOG_QUERIES {
            queries += 1;
            let to = head.min(from + chunk - 1);
            let filter = Filter::new()
                .address(registry)
                .event_signature(signatures.clone())
                .from_block(from)
                .to_block(to);
            match provider.get_logs(&filter).await {
                Ok(logs) => {
                    self.absorb(&logs).await;
                    from = to + 1;
                    let mut state = self.state();
                    state.log_next = Some(from);
                    state.log_chunk = chunk;
                }
                Err(_) if chunk > LOG_CHUNK_MIN => chunk = (chunk / 4).max(LOG_CHUNK_MIN),
                Err(e) => return Err(format!("eth_getLogs {from}..{to}: {e}")),
            }
        }
        Ok(())
    }

    /// Files the logs of one query (whole blocks, so a transaction's logs come together).
    async fn absorb(&self, logs: &[Log]) {
        let served: HashSet<B256> = self.services.iter().map(|s| s.id).collect();
        let mut times = HashMap::new();
        for log in logs {
            if let (Some(block), None) = (log.block_number, log.block_timestamp)
                && let std::collections::hash_map::Entry::Vacant(slot) = times.entry(block)
            {
                slot.insert(self.block_time(block).await);
            }
        }
        let mut by_tx: Vec<(B256, Vec<&Log>)> = Vec::new();
        for log in logs {
            let tx = log.transaction_hash.unwrap_or_default();
            match by_tx.last_mut() {
                Some((last, group)) if *last == tx => group.push(log),
                _ => by_tx.push((tx, vec![log])),
            }
        }
        let mut state = self.state();
        for (tx, group) in by_tx {
            let block = group[0].block_number.unwrap_or_default();
            let time = group[0].block_timestamp.or_else(|| times.get(&block).copied().flatten());
            let mut moved: HashMap<B256, (Vec<u16>, Vec<u16>)> = HashMap::new();
            let mut deferred: HashMap<B256, Vec<Deferral>> = HashMap::new();
            for log in &group {
                match log.topic0() {
                    Some(&EndpointStatusChanged::SIGNATURE_HASH) => {
                        let Ok(e) = EndpointStatusChanged::decode_log(&log.inner) else { continue };
                        let (demoted, promoted) = moved.entry(e.serviceId).or_default();
                        if e.to == ACTIVE {
                            promoted.push(e.endpoint);
                        } else if e.from == ACTIVE {
                            demoted.push(e.endpoint);
                        }
                    }
                    Some(&DemotionDeferred::SIGNATURE_HASH) => {
                        let Ok(e) = DemotionDeferred::decode_log(&log.inner) else { continue };
                        if !served.contains(&e.serviceId) {
                            continue;
                        }
                        let reason = defer_reason(e.reason);
                        deferred
                            .entry(e.serviceId)
                            .or_default()
                            .push(Deferral { endpoint: e.endpoint, reason });
                        let alarms = state.alarms.entry(e.serviceId).or_default();
                        alarms.push_back(Alarm { endpoint: e.endpoint, reason, block, time, tx });
                        while alarms.len() > ALARMS_KEPT {
                            alarms.pop_front();
                        }
                    }
                    Some(&KeeperSetUpdated::SIGNATURE_HASH) => state.keepers_dirty = true,
                    _ => {}
                }
            }
            for log in &group {
                if log.topic0() != Some(&RouteSetChanged::SIGNATURE_HASH) {
                    continue;
                }
                let Ok(e) = RouteSetChanged::decode_log(&log.inner) else { continue };
                if !served.contains(&e.serviceId) {
                    continue;
                }
                let (demoted, promoted) = moved.remove(&e.serviceId).unwrap_or_default();
                let change = Change {
                    epoch: e.epoch,
                    routes: e.routes.clone(),
                    block,
                    time,
                    tx,
                    demoted,
                    promoted,
                    deferred: deferred.remove(&e.serviceId).unwrap_or_default(),
                    call: None,
                    relayer: None,
                    attestations: Vec::new(),
                    reads: 0,
                };
                let changes = state.changes.entry(e.serviceId).or_default();
                changes.insert(e.epoch, change);
                while changes.len() > EPOCHS_KEPT {
                    changes.pop_first();
                }
            }
        }
    }

    /// Decodes the transactions that changed a set (at most three tries each).
    async fn read_change_transactions(&self, chain_id: u64, registry: Address) {
        let pending: Vec<(B256, u32, B256)> = {
            let state = self.state();
            state
                .changes
                .iter()
                .flat_map(|(service, changes)| {
                    changes
                        .values()
                        .filter(|c| c.call.is_none() && c.reads < 3)
                        .map(|c| (*service, c.epoch, c.tx))
                })
                .collect()
        };
        let provider = self.registry.contract().provider();
        for (service, epoch, hash) in pending {
            let read = provider.get_transaction_by_hash(hash).await;
            let mut state = self.state();
            let Some(change) = state.changes.get_mut(&service).and_then(|c| c.get_mut(&epoch))
            else {
                continue;
            };
            change.reads += 1;
            if let Ok(Some(tx)) = read {
                let (call, attestations) = decode_attestations(tx.input(), chain_id, registry);
                change.call = Some(call);
                change.relayer = Some(tx.from());
                change.attestations =
                    attestations.into_iter().filter(|a| a.service == service).collect();
            }
        }
    }

    /// Each keeper's last accepted attestation, and the unhealthy votes cast, in the recent
    /// blocks' transactions to the registry.
    async fn read_attestations(&self, chain_id: u64, registry: Address, head: u64) {
        let floor = head.saturating_sub(ATTEST_LOOKBACK - 1);
        let from = {
            let mut state = self.state();
            let from = state.attest_next.unwrap_or(floor).max(floor);
            state.attest_from.get_or_insert(from);
            from
        };
        if from > head {
            return;
        }
        let provider = self.registry.contract().provider();
        let blocks: Vec<_> = stream::iter(from..=head)
            .map(|n| async move { (n, provider.get_block_by_number(n.into()).full().await) })
            .buffered(4)
            .collect()
            .await;
        // The blocks read, up to the first that could not be (read again next time).
        let mut next = from;
        let mut times = Vec::new();
        let mut found = Vec::new();
        for (number, block) in blocks {
            let Ok(Some(block)) = block else { break };
            next = number + 1;
            times.push((number, block.header.timestamp));
            for tx in block.transactions.txns() {
                if tx.to() != Some(registry) {
                    continue;
                }
                let (call, attestations) = decode_attestations(tx.input(), chain_id, registry);
                let call = match call.as_str() {
                    "attest" => "attest",
                    "attestBatch" => "attestBatch",
                    _ => continue,
                };
                found.push((number, block.header.timestamp, tx.tx_hash(), call, attestations));
            }
        }
        // Only what the registry accepted counts: a reverted call recorded nothing.
        let hashes: Vec<B256> = found.iter().map(|f| f.2).collect();
        let accepted: Vec<Option<bool>> = stream::iter(hashes)
            .map(|tx| async move {
                provider.get_transaction_receipt(tx).await.ok().flatten().map(|r| r.status())
            })
            .buffered(4)
            .collect()
            .await;
        let mut state = self.state();
        state.block_times.extend(times);
        while state.block_times.len() > 1024 {
            state.block_times.pop_first();
        }
        for ((block, time, tx, call, attestations), accepted) in found.into_iter().zip(accepted) {
            match accepted {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    next = next.min(block);
                    break;
                }
            }
            for a in attestations {
                let Some(keeper) = a.keeper else { continue };
                let newer = state.last_attested.get(&keeper).is_none_or(|l| l.block <= block);
                if newer {
                    let seen =
                        Attested { time: Some(time), block, tx, call, verdicts: a.verdicts.len() };
                    state.last_attested.insert(keeper, seen);
                }
                for &(endpoint, healthy) in &a.verdicts {
                    if !healthy {
                        let vote = Vote {
                            keeper,
                            service: a.service,
                            endpoint,
                            block,
                            time: Some(time),
                            tx,
                        };
                        state.votes.push_back(vote);
                    }
                }
            }
        }
        while state.votes.len() > VOTES_KEPT {
            state.votes.pop_front();
        }
        state.attest_next = Some(next);
    }

    /// The keeper set and each keeper's on-chain state, every few seconds.
    async fn read_keepers(&self) {
        {
            let state = self.state();
            let due = state.keepers_read.is_none_or(|at| at.elapsed() >= KEEPERS_EVERY);
            if !due && !state.keepers_dirty {
                return;
            }
        }
        let contract = self.registry.contract();
        let read = contract.keepers().call().await;
        self.state().keepers_read = Some(Instant::now());
        let set = match read {
            Ok(set) => set,
            Err(e) => {
                self.state().keepers_error = Some(format!("keepers(): {e}"));
                return;
            }
        };
        let (config_version, signers, vantages) = (set._0, set._1, set._2);
        let services = &self.services;
        let states = join_all(signers.iter().map(|k| async move {
            // Membership with the first service's read (any id answers it), then one nonce each.
            let reads = services.iter().map(|s| async move {
                let state = contract.keeperState(*k, s.id).call().await.ok();
                (s.name.clone(), state.map(|st| (st.active, st.lastNonce, st.lastAttestedAt)))
            });
            let per_service = join_all(reads).await;
            let active = match per_service.first() {
                Some((_, state)) => state.map(|s| s.0),
                None => contract.keeperState(*k, B256::ZERO).call().await.ok().map(|s| s.active),
            };
            let per_service =
                per_service.into_iter().map(|(name, s)| (name, s.map(|s| (s.1, s.2)))).collect();
            (active, per_service)
        }))
        .await;
        let members = signers
            .iter()
            .zip(states)
            .enumerate()
            .map(|(i, (address, keeper_state))| KeeperMember {
                address: *address,
                vantage: vantages.get(i).copied().unwrap_or_default(),
                active: keeper_state.0,
                per_service: keeper_state.1,
            })
            .collect();
        let mut state = self.state();
        state.keepers = Some(KeeperSet { config_version, members });
        state.keepers_dirty = false;
        state.keepers_error = None;
    }

    /// Everything the page shows, as JSON.
    pub(crate) fn snapshot(&self) -> Value {
        let now = unix_ms();
        let state = self.state();
        let window = window(&state.samples);
        let services: Vec<Value> =
            self.services.iter().map(|service| service_json(service, &state, &window)).collect();
        let keepers = keepers_json(&state);
        let chain = &state.chain;
        json!({
            "now": now,
            "started_at": self.started_at,
            "watching": self.watched_until.load(Ordering::Relaxed) > now,
            "window_s": window.span.as_secs_f64(),
            "services": services,
            "keepers": keepers,
            "registries": [{
                "address": self.registry.contract().address(),
                "chain_id": chain.chain_id,
                "head": chain.head,
                "head_time": chain.head_time,
                "read_at": chain.read_at,
                "error": chain.error,
                "in_force": true,
                "log_scan_from": state.log_from,
            }],
        })
    }
}

impl EpochCalls {
    fn update(&mut self, calls: Calls) {
        self.requests = calls.requests.saturating_sub(self.base.requests);
        self.errors = calls.errors.saturating_sub(self.base.errors);
    }
}

/// `EndpointStatus.Active` in the contract.
const ACTIVE: u8 = 2;

fn defer_reason(raw: u8) -> &'static str {
    match raw {
        0 => "floor",
        1 => "blast radius",
        2 => "frozen",
        _ => "unknown",
    }
}

fn status_name(raw: &Status) -> &'static str {
    match raw {
        Status::Standby => "standby",
        Status::Active => "active",
        Status::Demoted => "demoted",
        Status::Retired => "retired",
    }
}

/// The call a transaction makes to the registry and the attestations it carries, each with its
/// signer recovered from the EIP-712 signature.
fn decode_attestations(input: &Bytes, chain_id: u64, registry: Address) -> (String, Vec<Attestor>) {
    let recover = |a: &attestation::Attestation, signature: &Bytes| Attestor {
        keeper: attestation::signer_of(a, signature, chain_id, registry),
        service: a.service,
        nonce: a.nonce,
        verdicts: a.verdicts.iter().map(|v| (v.endpoint, v.healthy)).collect(),
    };
    if let Ok(call) = RouteRegistry::attestCall::abi_decode(input) {
        return ("attest".into(), vec![recover(&call.attestation, &call.signature)]);
    }
    if let Ok(call) = RouteRegistry::attestBatchCall::abi_decode(input) {
        let found =
            call.attestations.iter().zip(&call.signatures).map(|(a, s)| recover(a, s)).collect();
        return ("attestBatch".into(), found);
    }
    let selector = input.get(..4).map_or_else(|| "0x".into(), |s| format!("0x{}", hex(s)));
    (selector, Vec::new())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The per-route figures over the last minute.
struct Window {
    span: Duration,
    routes: HashMap<(String, String), RouteWindow>,
}

struct RouteWindow {
    requests: u64,
    errors: u64,
    p50_ms: Option<f64>,
}

fn window(samples: &VecDeque<Sample>) -> Window {
    let (Some(last), Some(first)) = (samples.back(), samples.front()) else {
        return Window { span: Duration::ZERO, routes: HashMap::new() };
    };
    let span = match (first.at, last.at) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    };
    let routes = last
        .routes
        .iter()
        .map(|(key, now)| {
            let before = first.routes.get(key).cloned().unwrap_or_default();
            let buckets: Vec<(f64, u64)> = now
                .buckets
                .iter()
                .map(|(le, n)| (le.0, n.saturating_sub(*before.buckets.get(le).unwrap_or(&0))))
                .collect();
            let window = RouteWindow {
                requests: now.requests.saturating_sub(before.requests),
                errors: now.errors.saturating_sub(before.errors),
                p50_ms: quantile(&buckets, 0.5).map(|s| s * 1000.0),
            };
            (key.clone(), window)
        })
        .collect();
    Window { span, routes }
}

/// A quantile from cumulative histogram buckets, interpolated linearly inside its bucket (the
/// way Prometheus' `histogram_quantile` does); `None` without observations.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = (count - below) as f64;
            let into = if inside > 0.0 { (rank - below as f64) / inside } else { 1.0 };
            return Some(lower + (le - lower) * into);
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

/// Reads what the page needs from the Prometheus text exposition of the gateway's metrics.
fn parse_metrics(text: &str) -> Sample {
    let mut sample = Sample::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = split_sample(line) else { continue };
        let value = value.parse::<f64>().unwrap_or(0.0);
        let count = if value.is_finite() && value > 0.0 { value as u64 } else { 0 };
        let label = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        match name {
            "lifeline_gateway_requests_total" | "lifeline_gateway_errors_total" => {
                let Some(service) = label("service") else { continue };
                let calls = sample.calls.entry(service).or_default();
                if name == "lifeline_gateway_requests_total" {
                    calls.requests += count;
                } else {
                    calls.errors += count;
                }
            }
            "lifeline_gateway_route_requests_total"
            | "lifeline_gateway_route_errors_total"
            | "lifeline_gateway_route_duration_seconds_bucket" => {
                let (Some(service), Some(url)) = (label("service"), label("url")) else {
                    continue;
                };
                let route = sample.routes.entry((service, url)).or_default();
                match name {
                    "lifeline_gateway_route_requests_total" => route.requests += count,
                    "lifeline_gateway_route_errors_total" => route.errors += count,
                    _ => {
                        let le = match label("le").as_deref() {
                            Some("+Inf") => f64::INFINITY,
                            Some(le) => le.parse().unwrap_or(f64::INFINITY),
                            None => continue,
                        };
                        *route.buckets.entry(OrdF64(le)).or_default() += count;
                    }
                }
            }
            _ => {}
        }
    }
    sample
}

/// Label (name, value) pairs of one sample.
type Labels = Vec<(String, String)>;

/// `name{k="v",...} value` -> (name, labels, value), label values unescaped.
fn split_sample(line: &str) -> Option<(&str, Labels, &str)> {
    let Some(open) = line.find('{') else {
        let (name, value) = line.split_once(' ')?;
        return Some((name, Vec::new(), value.split(' ').next()?));
    };
    let name = &line[..open];
    let mut labels = Vec::new();
    let mut chars = line[open + 1..].char_indices();
    let rest_start;
    loop {
        // key
        let mut key = String::new();
        let mut closed = None;
        for (i, c) in chars.by_ref() {
            match c {
                '=' => break,
                '}' => {
                    closed = Some(i);
                    break;
                }
                ',' | ' ' => {}
                c => key.push(c),
            }
        }
        if let Some(i) = closed {
            rest_start = open + 1 + i + 1;
            break;
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return None;
        }
        let mut value = String::new();
        let mut escaped = false;
        for (_, c) in chars.by_ref() {
            if escaped {
                value.push(if c == 'n' { '\n' } else { c });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                break;
            } else {
                value.push(c);
            }
        }
        labels.push((key, value));
    }
    let value = line.get(rest_start..)?.trim_start().split(' ').next()?;
    Some((name, labels, value))
}

/// The metrics' URL label of a registered URL (how the transport prints it).
fn url_key(url: &str) -> String {
    url.parse::<Url>().map(|u| u.to_string()).unwrap_or_else(|_| url.to_string())
}

/// Scheme and host of a URL the registry does not list (a bootstrap route from the config,
/// whose path or query may hold a key).
fn redacted(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/… (bootstrap route from the config)",
        url.scheme(),
        url.host_str().unwrap_or("?")
    )
}

fn service_json(service: &ServiceHandle, state: &Tracked, window: &Window) -> Value {
    let view = service.view();
    let transport = service.transport();
    let reports: HashMap<String, _> =
        transport.routes().into_iter().map(|r| (r.url.to_string(), r)).collect();
    let active: Vec<u16> =
        view.set.as_ref().map(|s| s.routes.iter().map(|r| r.id).collect()).unwrap_or_default();
    // Every endpoint the registry lists; until the table was read, the active set's routes.
    let mut endpoints: Vec<Value> = Vec::new();
    let mut shown: HashSet<String> = HashSet::new();
    let mut by_id: BTreeMap<u16, Value> = BTreeMap::new();
    let fresh = state
        .endpoints
        .get(&service.id)
        .filter(|(at, table)| at.elapsed() < Duration::from_secs(5) && !table.is_empty());
    let table = fresh.map_or(&view.endpoints, |(_, table)| table);
    let mut rows: Vec<EndpointState> = if table.is_empty() {
        view.set
            .iter()
            .flat_map(|s| &s.routes)
            .map(|r| EndpointState {
                id: r.id,
                status: Status::Active,
                ready: false,
                degraded: r.degraded,
                latency_ms: r.latency_ms,
                cooldown_until: 0,
                down_votes: 0,
                up_votes: 0,
                url: r.url.clone(),
                region: r.region.clone(),
                provider: r.provider.clone(),
                operator: Address::ZERO,
            })
            .collect()
    } else {
        table.clone()
    };
    // Active first, in the set's order, then the others by index.
    rows.sort_by_key(|r| (active.iter().position(|a| *a == r.id).unwrap_or(usize::MAX), r.id));
    for e in rows {
        let key = url_key(&e.url);
        shown.insert(key.clone());
        let report = reports.get(&key);
        let minute = window.routes.get(&(service.name.clone(), key));
        let degraded = e.degraded
            || view.set.iter().flat_map(|s| &s.routes).any(|r| r.id == e.id && r.degraded);
        let row = json!({
            "id": e.id,
            "url": e.url,
            "region": e.region,
            "provider": e.provider,
            "state": status_name(&e.status),
            "in_set": active.contains(&e.id),
            "ready": e.ready,
            "degraded": degraded,
            "attested_latency_ms": e.latency_ms,
            "cooldown_until": e.cooldown_until,
            "down_votes": e.down_votes,
            "up_votes": e.up_votes,
            "routing": report.map(|r| json!({
                "latency_ms": r.latency_ms,
                "error_rate": r.error_rate,
                "breaker_open": r.breaker_open,
                "head": r.head,
                "skip": r.skip.as_ref().map(ToString::to_string),
                "skip_label": r.skip.as_ref().map(|s| s.label()),
            })),
            "minute": minute.map(|m| json!({
                "requests": m.requests, "errors": m.errors, "p50_ms": m.p50_ms,
            })),
        });
        by_id.insert(e.id, json!({ "url": row["url"], "region": row["region"] }));
        endpoints.push(row);
    }
    // Routes the transport uses that the registry does not list (bootstrap).
    for (key, r) in &reports {
        if shown.contains(key) {
            continue;
        }
        let minute = window.routes.get(&(service.name.clone(), key.clone()));
        endpoints.push(json!({
            "id": null,
            "url": redacted(&r.url),
            "state": "bootstrap",
            "in_set": false,
            "routing": {
                "latency_ms": r.latency_ms, "error_rate": r.error_rate,
                "breaker_open": r.breaker_open, "head": r.head,
                "skip": r.skip.as_ref().map(ToString::to_string),
                "skip_label": r.skip.as_ref().map(|s| s.label()),
            },
            "minute": minute.map(|m| json!({
                "requests": m.requests, "errors": m.errors, "p50_ms": m.p50_ms,
            })),
        }));
    }
    let describe = |ids: &[u16]| -> Vec<Value> {
        ids.iter()
            .map(|id| {
                let known = by_id.get(id);
                json!({
                    "id": id,
                    "url": known.map(|k| k["url"].clone()),
                    "region": known.map(|k| k["region"].clone()),
                })
            })
            .collect()
    };
    let calls = state.epochs.get(&service.id);
    let changes = state.changes.get(&service.id);
    // The unhealthy votes on the endpoints a change removed (or kept, deferred), cast since each
    // was last promoted, other than those in the change's own transaction.
    let votes = |c: &Change| -> Vec<&Vote> {
        let mut out: Vec<&Vote> = Vec::new();
        let endpoints = c.demoted.iter().copied().chain(c.deferred.iter().map(|d| d.endpoint));
        for endpoint in endpoints {
            let since = changes
                .into_iter()
                .flat_map(|all| all.values())
                .filter(|p| p.block < c.block && p.promoted.contains(&endpoint))
                .map(|p| p.block)
                .max()
                .unwrap_or(0);
            for v in state.votes.iter().rev() {
                let counts = v.service == service.id
                    && v.endpoint == endpoint
                    && v.block > since
                    && v.block <= c.block
                    && v.tx != c.tx;
                if counts && !out.iter().any(|o| o.keeper == v.keeper && o.endpoint == endpoint) {
                    out.push(v);
                }
            }
        }
        out.sort_by_key(|v| v.block);
        out
    };
    let mut epochs: Vec<Value> = state
        .changes
        .get(&service.id)
        .map(|changes| {
            changes
                .values()
                .map(|c| {
                    json!({
                        "epoch": c.epoch,
                        "routes": describe(&c.routes),
                        "block": c.block,
                        "time": c.time,
                        "tx": c.tx,
                        "demoted": describe(&c.demoted),
                        "promoted": describe(&c.promoted),
                        "deferred": c.deferred,
                        "call": c.call,
                        "tx_unreadable": c.call.is_none() && c.reads >= 3,
                        "relayer": c.relayer,
                        "attestations": c.attestations,
                        "votes": votes(c),
                        "gateway": calls.and_then(|m| m.get(&c.epoch)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // The set in force, when the log scan has not (yet) found the change that began it.
    if let Some(set) = &view.set {
        let known = state.changes.get(&service.id).is_some_and(|c| c.contains_key(&set.epoch));
        if !known {
            epochs.push(json!({
                "epoch": set.epoch,
                "routes": describe(&active),
                "block": null, "time": null, "tx": null,
                "demoted": [], "promoted": [], "deferred": [], "call": null,
                "relayer": null, "attestations": [], "votes": [],
                "gateway": calls.and_then(|m| m.get(&set.epoch)),
            }));
        }
    }
    let alarms: Vec<&Alarm> =
        state.alarms.get(&service.id).map(|a| a.iter().collect()).unwrap_or_default();
    json!({
        "name": service.name,
        "id": service.id,
        "epoch": view.set.as_ref().map(|s| s.epoch),
        "gateway_epoch": transport.epoch(),
        "stale": view.set.as_ref().map(|s| s.stale),
        "last_attested": view.set.as_ref().map(|s| s.last_attested),
        "usable": service.health().is_ok(),
        "health": service.health().err(),
        "reference_head": transport.reference_head(),
        "registry_read_at": view.registry_read_at,
        "registry_error": view.registry_error,
        "endpoints": endpoints,
        "epochs": epochs,
        "alarms": alarms,
    })
}

fn keepers_json(state: &Tracked) -> Value {
    let members: Vec<Value> = state
        .keepers
        .as_ref()
        .map(|set| {
            set.members
                .iter()
                .map(|m| {
                    json!({
                        "address": m.address,
                        "vantage": vantage(&m.vantage),
                        "active": m.active,
                        "per_service": m.per_service.iter().map(|(service, s)| json!({
                            "service": service,
                            "nonce": s.map(|s| s.0),
                            "last_attested_at": s.map(|s| s.1),
                        })).collect::<Vec<_>>(),
                        "last_attestation": state.last_attested.get(&m.address),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "config_version": state.keepers.as_ref().map(|s| s.config_version),
        "members": members,
        "searched_from_block": state.attest_from,
        "searched_to_block": state.attest_next.map(|n| n.saturating_sub(1)),
        "error": state.keepers_error,
    })
}

/// A vantage tag: its text when it is short ASCII padded with zeros, else its hex.
fn vantage(raw: &B256) -> String {
    let trimmed: &[u8] = {
        let end = raw.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        &raw[..end]
    };
    if !trimmed.is_empty() && trimmed.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(trimmed).into_owned()
    } else if trimmed.is_empty() {
        "—".into()
    } else {
        format!("0x{}…", hex(&raw[..6]))
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_escaped_labels() {
        let text = concat!(
            "# HELP x\n",
            "lifeline_gateway_requests_total{service=\"a\\\"b\",method=\"eth_call\"} 7\n",
            "lifeline_gateway_errors_total{service=\"a\\\"b\",method=\"eth_call\"} 2\n",
            "lifeline_gateway_route_requests_total{service=\"s\",endpoint=\"0\",url=\"http://h/\",method=\"m\"} 10\n",
            "lifeline_gateway_route_duration_seconds_bucket{service=\"s\",endpoint=\"0\",url=\"http://h/\",method=\"m\",le=\"0.001\"} 4\n",
            "lifeline_gateway_route_duration_seconds_bucket{service=\"s\",endpoint=\"0\",url=\"http://h/\",method=\"m\",le=\"+Inf\"} 10\n",
            "# EOF\n",
        );
        let sample = parse_metrics(text);
        let calls = sample.calls["a\"b"];
        assert_eq!((calls.requests, calls.errors), (7, 2));
        let route = &sample.routes[&("s".to_string(), "http://h/".to_string())];
        assert_eq!(route.requests, 10);
        assert_eq!(route.buckets.len(), 2);
    }

    #[test]
    fn the_gateways_own_metrics_parse() {
        use crate::metrics::{CallLabels, RouteLabels};
        let metrics = Metrics::default();
        let labels = RouteLabels {
            service: "eth-devnet/rpc".into(),
            endpoint: "0".into(),
            url: "http://127.0.0.1:4000/".into(),
            method: "eth_blockNumber".into(),
        };
        for latency in [0.0008, 0.0009, 0.003, 0.2] {
            metrics.route_requests.get_or_create(&labels).inc();
            metrics.route_latency.get_or_create(&labels).observe(latency);
        }
        metrics.route_errors.get_or_create(&labels).inc();
        let call = CallLabels { service: "eth-devnet/rpc".into(), method: "eth_call".into() };
        metrics.requests.get_or_create(&call).inc_by(5);
        metrics.errors.get_or_create(&call).inc();
        let sample = parse_metrics(&metrics.render());
        let route = &sample.routes[&(labels.service.clone(), labels.url.clone())];
        assert_eq!((route.requests, route.errors), (4, 1));
        let buckets: Vec<(f64, u64)> = route.buckets.iter().map(|(le, n)| (le.0, *n)).collect();
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 4)), "{buckets:?}");
        let p50 = quantile(&buckets, 0.5).expect("observations");
        assert!((0.0005..=0.001).contains(&p50), "p50 {p50} in the 1 ms bucket");
        let calls = sample.calls["eth-devnet/rpc"];
        assert_eq!((calls.requests, calls.errors), (5, 1));
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        let buckets = [(0.001, 0), (0.002, 10), (0.004, 20), (f64::INFINITY, 20)];
        let p50 = quantile(&buckets, 0.5).expect("observations");
        assert!((p50 - 0.002).abs() < 1e-9, "{p50}");
        let p75 = quantile(&buckets, 0.75).expect("observations");
        assert!((p75 - 0.003).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(&[(0.1, 0), (f64::INFINITY, 0)], 0.5), None);
    }

    #[test]
    fn attestations_decode_and_recover_their_signers() {
        use alloy::signers::local::PrivateKeySigner;
        let registry = Address::repeat_byte(0x42);
        let keepers = [PrivateKeySigner::random(), PrivateKeySigner::random()];
        let service = lifeline_bindings::service_id("eth-devnet/rpc");
        let report = |nonce| attestation::Attestation {
            service,
            nonce,
            deadline: 9,
            verdicts: vec![attestation::Verdict {
                endpoint: 3,
                healthy: false,
                ..Default::default()
            }],
            ..Default::default()
        };
        let sign = |k: &PrivateKeySigner, a| {
            Bytes::from(attestation::sign(k, a, 31337, registry).expect("signs"))
        };
        let one = report(1);
        let input = RouteRegistry::attestCall {
            attestation: one.clone(),
            signature: sign(&keepers[0], &one),
        }
        .abi_encode();
        let (call, found) = decode_attestations(&input.into(), 31337, registry);
        assert_eq!(call, "attest");
        assert_eq!(found[0].keeper, Some(keepers[0].address()));
        assert_eq!(found[0].verdicts, vec![(3, false)]);

        let two = [report(2), report(3)];
        let input = RouteRegistry::attestBatchCall {
            attestations: two.to_vec(),
            signatures: vec![sign(&keepers[0], &two[0]), sign(&keepers[1], &two[1])],
        }
        .abi_encode();
        let (call, found) = decode_attestations(&input.into(), 31337, registry);
        assert_eq!(call, "attestBatch");
        let signers: Vec<_> = found.iter().map(|a| a.keeper).collect();
        assert_eq!(signers, vec![Some(keepers[0].address()), Some(keepers[1].address())]);

        let (call, found) = decode_attestations(&Bytes::from(vec![1, 2, 3, 4, 5]), 1, registry);
        assert_eq!((call.as_str(), found.len()), ("0x01020304", 0));
    }

    #[test]
    fn bootstrap_urls_lose_their_path_and_query() {
        let url: Url = "https://rpc.example/v3/SECRETKEY?key=SECRET".parse().expect("url");
        let shown = redacted(&url);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.starts_with("https://rpc.example"), "{shown}");
    }

    #[test]
    fn vantages_show_as_text_when_they_are_text() {
        let mut raw = [0u8; 32];
        raw[..7].copy_from_slice(b"eu-west");
        assert_eq!(vantage(&B256::from(raw)), "eu-west");
        assert!(vantage(&B256::repeat_byte(0xab)).starts_with("0xabab"));
    }

    #[test]
    fn the_page_is_self_contained() {
        // No script, style, font or image from elsewhere: the page works offline.
        for needle in ["src=\"http", "href=\"http", "url(http", "@import", "//cdn"] {
            assert!(!PAGE.contains(needle), "status.html references {needle}");
        }
        assert!(PAGE.contains("status.json"));
    }
}
