//! The keeper pipeline, one round per probe interval for every service:
//!
//! ```text
//!  refresh (registry, one block: endpoints, epoch, my keeper state; when stale or the epoch moved)
//!    -> collect (probe every endpoint, bounded concurrency)
//!    -> judge   (chain id, corroborated head, divergence, state proof, hysteresis)
//!    -> attest  (votes that differ from mine on chain, or a heartbeat) -> submit
//! ```
//!
//! The registry being unreachable never stops collect and judge: the round probes the endpoints
//! it last read and skips only the attest step (`lifeline_registry_reachable` 0, a warning that
//! backs off). A key that is not (yet) in the keeper set probes and judges too, and attests
//! once the registry lists it (re-checked with backoff; `lifeline_keeper_in_set`).
//!
//! Startup refuses, with one message, what no retry can fix: registry RPC URLs that do not
//! serve the registry's chain, no contract at the registry address, a service not registered.
//!
//! **Several registries** (`[[registry]]`): [`Engines`] runs one [`Engine`] per registry, each a
//! task of its own with its own registry RPC (chain pin), submitter (nonces, fees), membership
//! and reachability, so a registry whose chain halts or whose RPC is down or stuck never delays
//! the others. Probing is duplicated: each engine probes the endpoints its registry lists, on
//! its own schedule (the registries may list different endpoints). Metrics carry the registry's
//! index as the `registry` label. A registry unreachable at startup, when several are
//! configured, is retried in the background (with backoff) while the others attest; with one
//! registry it stops the keeper as before.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    eips::BlockId,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    transports::http::reqwest::Url,
};
use futures_util::{StreamExt, TryStreamExt, future::join_all, stream};
use lifeline_bindings::{
    RegistryClient, Verdict as WireVerdict, client::Status,
    registry::RouteRegistry::RouteRegistryErrors, secrets::Secrets, service_id,
};
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::{
    collect::{JsonRpcRound, Observed},
    config::{KeeperConfig, ProbeKind, ServiceConfig, UnusableUrls},
    decide::{OnChain, vote_to_cast},
    judge::{Finding, Tracker, Verdict},
    metrics::Metrics,
    probe::{ProbeFailure, Prober},
    rpc::RegistryRpc,
    startup::StartupError,
    submit::{SubmitError, Submitted, Submitter},
};

/// First and longest pause between warnings while the registry is unreachable.
const WARN_FIRST: Duration = Duration::from_secs(5);
const WARN_MAX: Duration = Duration::from_secs(300);
/// First and longest pause between keeper-set checks while the key is not in the set.
const MEMBERSHIP_FIRST: Duration = Duration::from_secs(1);
const MEMBERSHIP_MAX: Duration = Duration::from_secs(60);
/// Registry reads in flight at once while reading one service's endpoints.
const REGISTRY_READS: usize = 16;
/// Pause before re-probing an endpoint whose probe just failed (see
/// [`Pipeline::confirm_suspects`]): long enough that a dropped connection is not counted twice.
const CONFIRM_GAP: Duration = Duration::from_millis(50);

/// One endpoint as the keeper knows it.
#[derive(Debug, Clone)]
struct Endpoint {
    index: u16,
    url: Url,
    chain: OnChain,
}

/// A submission running beside the rounds.
type Inflight = tokio::task::JoinHandle<(&'static str, Result<Submitted, SubmitError>)>;

/// What the keeper tracks per service.
#[derive(Debug)]
struct ServiceWatch {
    config: ServiceConfig,
    id: B256,
    chain_id: u64,
    epoch: u32,
    endpoints: Vec<Endpoint>,
    trackers: HashMap<u16, Tracker>,
    refreshed: Option<Instant>,
    /// This keeper's bit in vote bitmaps, read with the endpoints (a rotation forces a refresh:
    /// the next submission fails and clears `refreshed`).
    keeper_bit: u32,
    last_submission: Option<Instant>,
    inflight: Option<Inflight>,
}

/// The keeper's pipeline on one registry (one `[[registry]]` entry).
#[derive(Debug)]
pub struct Engine {
    pipeline: Pipeline,
    services: Vec<ServiceWatch>,
    /// Index of its `[[registry]]` entry.
    index: usize,
    /// Whether the keeper runs several registries (logs then name the registry).
    several: bool,
}

/// What every service's round shares (read-only during a round, so rounds run concurrently).
#[derive(Debug)]
struct Pipeline {
    config: KeeperConfig,
    prober: Prober,
    submitter: Submitter,
    client: RegistryClient<DynProvider>,
    metrics: Metrics,
    limit: Arc<Semaphore>,
    registry: Mutex<Reachability>,
    membership: Mutex<Membership>,
    /// What endpoint URL templates may name (see `lifeline_bindings::secrets`).
    secrets: Secrets,
}

/// Whether the registry RPC answers, and when to warn next while it does not.
#[derive(Debug)]
struct Reachability {
    down_since: Option<Instant>,
    next_warn: Instant,
    warn_every: Duration,
}

/// Whether this keeper's key is in the keeper set, and when to look again while it is not.
#[derive(Debug)]
struct Membership {
    in_set: bool,
    next_check: Instant,
    check_every: Duration,
}

/// One service's registry state, read at one block.
#[derive(Debug)]
struct Snapshot {
    block: u64,
    chain_id: u64,
    epoch: u32,
    keeper: Option<u32>,
    endpoints: Vec<Endpoint>,
    /// Endpoints left out because their URL cannot be used, and why.
    unusable: Vec<(u16, String)>,
}

impl Engine {
    /// Wires the pipeline for `config.registries[index]`: the registry RPC pinned to the
    /// registry's chain (see [`RegistryRpc`]), the submitter, and a first read of every
    /// configured service and of the keeper set. `metrics` is scoped to the registry here
    /// ([`Metrics::for_registry`]).
    pub async fn new(
        config: KeeperConfig,
        index: usize,
        signer: alloy::signers::local::PrivateKeySigner,
        metrics: Metrics,
    ) -> Result<Self, StartupError> {
        let metrics = metrics.for_registry(index);
        let several = config.registries.len() > 1;
        let registry =
            config.registries.get(index).cloned().ok_or_else(|| {
                StartupError::NoRegistryRpc(format!("no [[registry]] entry {index}"))
            })?;
        let secrets = Secrets::load(&config.secrets)?;
        let address = registry.address;
        let urls = registry
            .rpc_urls
            .iter()
            .map(|u| {
                u.parse::<Url>()
                    .map_err(|_| StartupError::NoRegistryRpc(format!("{u} (not a URL)")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rpc = RegistryRpc::connect(&urls, address, registry.chain_id).await?;
        let chain_id = rpc.chain_id();
        let submitter = Submitter::new(&rpc, address, signer, config.submit.clone());
        let client = submitter.client();
        let me = submitter.address();

        // Every configured service must exist: a typo never becomes a warning per round.
        for s in &config.services {
            match client.contract().service(service_id(&s.name)).call().await {
                Ok(view) => {
                    info!(
                        target: "keeper",
                        service = %s.name,
                        sender = %submitter.sender_of(service_id(&s.name)),
                        "attestations for this service are sent from this account (submit.senders)"
                    );
                    // A vote counts only while its keeper attested the service within the TTL:
                    // heartbeats must come more often, or this keeper's votes lapse between them.
                    let ttl = u64::from(view.config.attestationTtl);
                    if config.submit.heartbeat_secs >= ttl {
                        warn!(
                            target: "keeper",
                            service = %s.name,
                            heartbeat_secs = config.submit.heartbeat_secs,
                            attestation_ttl = ttl,
                            "submit.heartbeat_secs is not below the service's attestationTtl: this keeper's votes expire between heartbeats and the service reads stale; lower submit.heartbeat_secs"
                        );
                    }
                }
                Err(e) => {
                    let e = lifeline_bindings::Error::from(e);
                    return Err(match e.revert() {
                        Some(RouteRegistryErrors::UnknownService(_)) => {
                            StartupError::UnknownService { name: s.name.clone(), address, chain_id }
                        }
                        _ => StartupError::Registry { address, reason: e.to_string() },
                    });
                }
            }
        }
        // Membership only: any service id reads it (the nonce fields are per service).
        let keeper = client
            .contract()
            .keeperState(me, B256::ZERO)
            .call()
            .await
            .map_err(|e| StartupError::Registry { address, reason: e.to_string() })?;
        metrics.set_keeper_in_set(keeper.active);
        metrics.set_registry_reachable(true);
        if !keeper.active {
            warn!(
                target: "keeper",
                keeper = %me,
                registry = %address,
                "this key is not in the registry's keeper set (yet): probing and judging, not attesting; re-checking with backoff (up to every {}s)",
                MEMBERSHIP_MAX.as_secs()
            );
        }

        let services = config
            .services
            .iter()
            .map(|s| ServiceWatch {
                config: s.clone(),
                id: service_id(&s.name),
                chain_id: 0,
                epoch: 0,
                endpoints: Vec::new(),
                trackers: HashMap::new(),
                refreshed: None,
                keeper_bit: 0,
                last_submission: None,
                inflight: None,
            })
            .collect();
        let now = Instant::now();
        let pipeline = Pipeline {
            prober: Prober::new(config.probe.timeout(), config.probe.max_response_bytes),
            limit: Arc::new(Semaphore::new(config.probe.max_concurrency)),
            config,
            submitter,
            client,
            metrics,
            registry: Mutex::new(Reachability {
                down_since: None,
                next_warn: now,
                warn_every: WARN_FIRST,
            }),
            membership: Mutex::new(Membership {
                in_set: keeper.active,
                next_check: now + MEMBERSHIP_FIRST,
                check_every: MEMBERSHIP_FIRST,
            }),
            secrets,
        };
        // An endpoint URL that cannot be used stops the keeper here, once, naming it.
        if pipeline.config.probe.unusable_urls == UnusableUrls::Fail {
            for service in &services {
                let snapshot = pipeline
                    .snapshot(service)
                    .await
                    .map_err(|e| StartupError::Registry { address, reason: e.to_string() })?;
                if let Some((endpoint, reason)) = snapshot.unusable.into_iter().next() {
                    return Err(StartupError::UnusableUrl {
                        service: service.config.name.clone(),
                        endpoint,
                        reason,
                    });
                }
            }
        }
        Ok(Self { pipeline, services, index, several })
    }

    /// The keeper's address.
    pub fn address(&self) -> Address {
        self.pipeline.submitter.address()
    }

    /// The chain id attestations are signed for (the registry's, agreed at startup).
    pub fn chain_id(&self) -> u64 {
        self.pipeline.submitter.chain_id()
    }

    /// Runs rounds until `shutdown` turns true; a round in progress finishes first. With
    /// several registries, every log line of this engine carries its `registry` index and chain.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> eyre::Result<()> {
        if self.several {
            let span =
                tracing::info_span!("registry", index = self.index, chain_id = self.chain_id());
            self.run_rounds(shutdown).instrument(span).await
        } else {
            self.run_rounds(shutdown).await
        }
    }

    async fn run_rounds(mut self, shutdown: watch::Receiver<bool>) -> eyre::Result<()> {
        info!(
            target: "keeper",
            keeper = %self.address(),
            registry = self.index,
            chain_id = self.chain_id(),
            services = self.services.len(),
            interval_ms = self.pipeline.config.probe.interval_ms,
            "keeper started"
        );
        let pipeline = &self.pipeline;
        let count = self.services.len() as u32;
        // Each service runs its own rounds, phased evenly over the interval, so the probes of
        // many services are spread over the second instead of all starting at once.
        join_all(self.services.iter_mut().enumerate().map(|(k, service)| {
            let phase = pipeline.config.probe.interval() * k as u32 / count.max(1);
            pipeline.rounds(service, phase, shutdown.clone())
        }))
        .await;
        Ok(())
    }
}

/// First and longest pause between startup attempts of a registry unreachable at startup.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The keeper on every configured registry: one [`Engine`] per `[[registry]]`, each run as a
/// task of its own, so one registry's trouble never delays another's attestations.
#[derive(Debug)]
pub struct Engines {
    engines: Vec<Engine>,
    /// Registries unreachable at startup (only with several): retried while the others run.
    pending: Vec<usize>,
    config: KeeperConfig,
    signer: alloy::signers::local::PrivateKeySigner,
    metrics: Metrics,
}

impl Engines {
    /// Starts an engine per registry, all at once. With one registry any startup error stops
    /// the keeper (as it always did). With several, a misconfiguration still stops it, naming
    /// the registry (`registry[1] (0x..): ...`); a registry that cannot be reached now is
    /// retried in the background by [`Engines::run`] while the others attest.
    pub async fn start(
        config: KeeperConfig,
        signer: alloy::signers::local::PrivateKeySigner,
        metrics: Metrics,
    ) -> Result<Self, StartupError> {
        let several = config.registries.len() > 1;
        let started = join_all(
            (0..config.registries.len())
                .map(|index| Engine::new(config.clone(), index, signer.clone(), metrics.clone())),
        )
        .await;
        let (mut engines, mut pending) = (Vec::new(), Vec::new());
        for (index, started) in started.into_iter().enumerate() {
            match started {
                Ok(engine) => engines.push(engine),
                Err(e) if !several => return Err(e),
                Err(e) => {
                    let address = config.registries[index].address;
                    let e = StartupError::InRegistry { index, address, source: Box::new(e) };
                    if !e.is_unreachable() {
                        return Err(e);
                    }
                    metrics.for_registry(index).set_registry_reachable(false);
                    warn!(target: "keeper", registry = index, error = %e, "registry unreachable at startup: attesting on the others, retrying this one with backoff");
                    pending.push(index);
                }
            }
        }
        Ok(Self { engines, pending, config, signer, metrics })
    }

    /// The engines running now (registries unreachable at startup are not among them yet).
    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    /// Runs every engine until `shutdown` turns true, each in its own task; registries that
    /// were unreachable at startup are retried (1 s, 2 s, ... 30 s) and start once they
    /// answer. Returns the first engine error, after every engine has ended.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> eyre::Result<()> {
        let Self { engines, pending, config, signer, metrics } = self;
        let mut tasks = Vec::new();
        for engine in engines {
            tasks.push(tokio::spawn(engine.run(shutdown.clone())));
        }
        for index in pending {
            let (config, signer, metrics) = (config.clone(), signer.clone(), metrics.clone());
            let mut shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut pause = RETRY_FIRST;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    match Engine::new(config.clone(), index, signer.clone(), metrics.clone()).await {
                        Ok(engine) => {
                            info!(target: "keeper", registry = index, "registry reachable: attesting on it too");
                            return engine.run(shutdown).await;
                        }
                        Err(e) if e.is_unreachable() => {
                            debug!(target: "keeper", registry = index, error = %e, "registry still unreachable");
                            pause = (pause * 2).min(RETRY_MAX);
                        }
                        Err(e) => {
                            error!(target: "keeper", registry = index, error = %e, "registry cannot be used; not attesting on it");
                            return Err(eyre::Report::new(e));
                        }
                    }
                }
            }));
        }
        let mut first_error = None;
        for task in tasks {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(eyre::eyre!("a registry's engine ended abnormally: {e}")),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Pipeline {
    /// Runs `service`'s rounds, the first after `phase`, then one per interval (each moved by
    /// its jitter, which averages zero so the rate stays one round per interval), until
    /// `shutdown` turns true; a round in progress finishes first. A round that overruns its
    /// interval is followed by the next one at once (no burst to catch up).
    async fn rounds(
        &self,
        service: &mut ServiceWatch,
        phase: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let interval = self.config.probe.interval();
        let mut scheduled = Instant::now() + phase;
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(scheduled.into()) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                if let Some(handle) = service.inflight.take() {
                    info!(target: "keeper", service = %service.config.name, rounds = round, "shutting down; waiting for the submission in flight");
                    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
                }
                return;
            }
            self.check_membership().await;
            self.round(service, scheduled).await;
            round += 1;
            let (early, late) = jitter(interval, self.config.probe.jitter_pct, round);
            scheduled = (scheduled + interval + late).checked_sub(early).unwrap_or(scheduled);
            scheduled = scheduled.max(Instant::now());
        }
    }

    /// One pass of the pipeline for one service, scheduled at `scheduled`. Registry trouble
    /// skips only the attest step.
    async fn round(&self, service: &mut ServiceWatch, scheduled: Instant) {
        // Settle the last submission first, so the refresh below sees its votes.
        let can_attest = self.settle(service).await;
        if service.keeper_bit == 0 && self.in_set() {
            // Joined the keeper set since the last read: read my bit with everything else.
            service.refreshed = None;
        }
        let synced = self.sync(service).await;
        match &synced {
            Ok(()) => self.registry_answered(),
            Err(e) => self.registry_failed(e),
        }

        // Collect + judge, on the endpoints last read (even while the registry is down).
        let now = unix_now();
        let findings = self.collect_and_judge(service, now, scheduled).await;
        let judge_config = &self.config.judge;
        let name = &service.config.name;
        let mut order = Vec::with_capacity(findings.len());
        for Observed { index, finding, latency_ms, head_lag } in findings {
            let tracker = service.trackers.entry(index).or_default();
            let before = tracker.verdict();
            let verdict = tracker.record(judge_config, finding.clone(), latency_ms);
            tracker.head_lag = head_lag;
            self.metrics.probe(name, finding.label());
            log_change(name, index, before, verdict, &finding);
            order.push(index);
        }
        // A failed probe is confirmed at once instead of a round later: the endpoint must fail
        // `fail_after` probes in a row either way (hysteresis), but a dead endpoint is flagged
        // within one round.
        self.confirm_suspects(service).await;
        let name = &service.config.name;
        let mut counts = [0u32; 3];
        let mut verdicts = Vec::with_capacity(order.len());
        for index in order {
            let Some(tracker) = service.trackers.get(&index) else { continue };
            let verdict = tracker.verdict();
            counts[match verdict {
                Verdict::Healthy => 0,
                Verdict::Unhealthy => 1,
                Verdict::Unknown => 2,
            }] += 1;
            verdicts.push((index, verdict, tracker.median_latency_ms(), tracker.head_lag));
        }
        for (label, n) in ["healthy", "unhealthy", "unknown"].into_iter().zip(counts) {
            self.metrics.set_verdicts(name, label, n);
        }

        // Attest: only votes that differ from mine on chain, else a heartbeat when due; one
        // submission in flight per service; never while the registry is unreachable or the key
        // is not in the keeper set.
        if synced.is_err() || !can_attest || !self.in_set() {
            return;
        }
        let bit = service.keeper_bit;
        let mut wire = Vec::new();
        for (index, verdict, latency_ms, head_lag) in verdicts {
            let Some(endpoint) = service.endpoints.iter().find(|e| e.index == index) else {
                continue;
            };
            if let Some(healthy) = vote_to_cast(verdict, &endpoint.chain, bit, now) {
                wire.push(WireVerdict {
                    endpoint: index,
                    revision: endpoint.chain.revision,
                    healthy,
                    latencyMs: u32::try_from(latency_ms).unwrap_or(u32::MAX),
                    headLag: u32::try_from(head_lag).unwrap_or(u32::MAX),
                });
            }
        }
        let heartbeat_due = service
            .last_submission
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.config.submit.heartbeat_secs));
        if wire.is_empty() && !heartbeat_due {
            return;
        }
        let kind = if wire.is_empty() { "heartbeat" } else { "votes" };
        let id = service.id;
        debug!(target: "keeper::attest", service = %name, kind, votes = wire.len(), "submitting");
        // The submission runs beside the probes: a slow chain never delays the next round.
        let submitter = self.submitter.clone();
        service.inflight = Some(tokio::spawn(
            async move { (kind, submitter.submit(id, wire).await) }.in_current_span(),
        ));
    }

    /// Re-probes, after [`CONFIRM_GAP`], every endpoint whose last probe failed outright
    /// (unreachable, timeout, HTTP or RPC error) and that is not flagged yet, up to
    /// `fail_after - 1` times; each failure counts as one failed probe for the hysteresis. A
    /// re-probe that answers ends the confirmation (the next round judges the endpoint fully, so
    /// one good answer never clears anything here). Lag, forks and the other findings that need
    /// the other endpoints' answers wait for the next round as before.
    async fn confirm_suspects(&self, service: &mut ServiceWatch) {
        let judge_config = &self.config.judge;
        let mut suspects: Vec<(u16, Url)> = service
            .endpoints
            .iter()
            .filter(|e| {
                service.trackers.get(&e.index).is_some_and(|t| {
                    matches!(t.last, Finding::Probe(_)) && t.verdict() != Verdict::Unhealthy
                })
            })
            .map(|e| (e.index, e.url.clone()))
            .collect();
        for _ in 1..judge_config.fail_after {
            if suspects.is_empty() {
                return;
            }
            tokio::time::sleep(CONFIRM_GAP).await;
            let service_ref = &*service;
            let results = join_all(suspects.drain(..).map(|(index, url)| async move {
                let _permit = self.limit.acquire().await;
                let result = self.probe_once(service_ref, &url).await;
                (index, url, result)
            }))
            .await;
            let name = &service.config.name;
            for (index, url, result) in results {
                // It answered: not confirmed, and judged in full next round.
                let Err(failure) = result else { continue };
                let Some(tracker) = service.trackers.get_mut(&index) else { continue };
                let finding = Finding::Probe(failure);
                let before = tracker.verdict();
                let verdict = tracker.record(judge_config, finding.clone(), None);
                self.metrics.probe(name, finding.label());
                debug!(target: "keeper::judge", service = %name, endpoint = index, finding = ?finding, "failed probe confirmed");
                log_change(name, index, before, verdict, &finding);
                if verdict != Verdict::Unhealthy {
                    suspects.push((index, url));
                }
            }
        }
    }

    /// One probe of the service's kind, pass or fail only.
    async fn probe_once(&self, service: &ServiceWatch, url: &Url) -> Result<(), ProbeFailure> {
        match service.config.probe {
            ProbeKind::Jsonrpc => self.prober.head(url).await.1.map(drop),
            ProbeKind::Http => {
                let url = url.join(&service.config.health_path).unwrap_or_else(|_| url.clone());
                self.prober.http(&url).await.1
            }
            ProbeKind::Tcp => self.prober.tcp(url).await.1,
        }
    }

    /// Reads the epoch, and the whole service at one block when stale or the epoch moved.
    async fn sync(&self, service: &mut ServiceWatch) -> Result<(), lifeline_bindings::Error> {
        let refresh_every = Duration::from_secs(self.config.probe.refresh_secs);
        let stale = service.refreshed.is_none_or(|t| t.elapsed() >= refresh_every);
        if !stale {
            let epoch_now = self.client.contract().service(service.id).call().await?.epoch;
            if epoch_now == service.epoch {
                return Ok(());
            }
        }
        let snapshot = self.snapshot(service).await?;
        debug!(target: "keeper::refresh", service = %service.config.name, block = snapshot.block, epoch = snapshot.epoch, "registry read");
        service.chain_id = snapshot.chain_id;
        service.epoch = snapshot.epoch;
        // A new revision is a new target (URL changed, or a retired slot reused): what was judged
        // about the old one must not vote for it; endpoints no longer read (retired) are forgotten.
        let old = &service.endpoints;
        service.trackers.retain(|index, _| {
            snapshot.endpoints.iter().any(|e| {
                e.index == *index
                    && old
                        .iter()
                        .all(|o| o.index != e.index || o.chain.revision == e.chain.revision)
            })
        });
        service.endpoints = snapshot.endpoints;
        self.metrics.set_epoch(&service.config.name, snapshot.epoch);
        match snapshot.keeper {
            Some(bit) => {
                service.keeper_bit = bit;
                self.set_in_set(true);
            }
            None => self.set_in_set(false),
        }
        service.refreshed = Some(Instant::now());
        Ok(())
    }

    /// The service's config, epoch, endpoints and this keeper's state, all at one block.
    async fn snapshot(&self, service: &ServiceWatch) -> Result<Snapshot, lifeline_bindings::Error> {
        let contract = self.client.contract();
        let block = contract.provider().get_block_number().await?;
        let at = BlockId::number(block);
        let id = service.id;
        let view_call = contract.service(id).block(at);
        let keeper_call = contract.keeperState(self.submitter.address(), id).block(at);
        let (view, keeper) = tokio::try_join!(view_call.call(), keeper_call.call())?;
        let reads = (0..view.endpointCount).map(|i| {
            let call = contract.endpoint(id, i).block(at);
            async move { call.call().await.map(|e| (i, e)) }
        });
        // Bounded: a service of 64 endpoints (and many services) never opens a socket per read.
        let views: Vec<_> = stream::iter(reads).buffered(REGISTRY_READS).try_collect().await?;
        let name = &service.config.name;
        let mut endpoints = Vec::with_capacity(views.len());
        let mut unusable = Vec::new();
        for (index, e) in views {
            let Some(status) = status(e.status) else {
                error!(target: "keeper::refresh", service = %name, endpoint = index, status = e.status, "unknown on-chain endpoint status; endpoint skipped (are the bindings older than the registry?)");
                continue;
            };
            if status == Status::Retired {
                continue;
            }
            // A template is filled from [secrets] only; the resolved URL is used for probes
            // and never shown.
            let url = match self.secrets.resolve(&e.url) {
                Ok(url) => url,
                Err(error) => {
                    error!(target: "keeper::refresh", service = %name, endpoint = index, %error, "endpoint URL cannot be used; not probed");
                    unusable.push((index, error.to_string()));
                    continue;
                }
            };
            endpoints.push(Endpoint {
                index,
                url,
                chain: OnChain {
                    status,
                    ready: e.ready,
                    cooldown_until: e.cooldownUntil,
                    down_votes: e.downVotes,
                    up_votes: e.upVotes,
                    revision: e.revision,
                },
            });
        }
        Ok(Snapshot {
            block,
            chain_id: view.config.chainId,
            epoch: view.epoch,
            keeper: keeper.active.then(|| 1u32 << keeper.index),
            endpoints,
            unusable,
        })
    }

    /// Takes the outcome of the service's last submission, if it finished. Returns false while
    /// one is still in flight (the round then casts no new votes).
    async fn settle(&self, service: &mut ServiceWatch) -> bool {
        match &service.inflight {
            None => return true,
            Some(handle) if !handle.is_finished() => return false,
            Some(_) => {}
        }
        let Some(handle) = service.inflight.take() else { return true };
        let name = &service.config.name;
        let outcome = handle.await;
        // My votes changed on chain (or may have): read them back next round. A heartbeat that
        // landed changed no vote, so it costs no re-read of every endpoint.
        if !matches!(
            outcome,
            Ok(("heartbeat", Ok(Submitted::Accepted { .. } | Submitted::Landed { .. })))
        ) {
            service.refreshed = None;
        }
        match outcome {
            Ok((kind, Ok(Submitted::Accepted { gas_used, .. }))) => {
                service.last_submission = Some(Instant::now());
                self.metrics.submission("accepted", kind);
                self.metrics.add_gas_used(gas_used);
            }
            Ok((kind, Ok(Submitted::Landed { .. }))) => {
                service.last_submission = Some(Instant::now());
                self.metrics.submission("accepted", kind);
            }
            Ok((kind, Ok(Submitted::Superseded(reason)))) => {
                info!(target: "keeper::attest", service = %name, %reason, "superseded; re-judging next round");
                self.metrics.submission("superseded", kind);
            }
            Ok((kind, Err(e))) => {
                self.metrics.submission("failed", kind);
                self.metrics.submission_failure(e.label());
                if let SubmitError::NotAKeeper(_) = e {
                    self.set_in_set(false);
                } else {
                    warn!(target: "keeper::attest", service = %name, error = %e, "submission failed");
                }
            }
            Err(e) => {
                warn!(target: "keeper::attest", service = %name, error = %e, "submission task ended abnormally")
            }
        }
        true
    }

    fn registry_answered(&self) {
        let mut r = lock(&self.registry);
        if let Some(since) = r.down_since.take() {
            info!(target: "keeper", down_secs = since.elapsed().as_secs(), "registry RPC reachable again; attesting resumes");
            // The next outage is warned about at once.
            r.next_warn = Instant::now();
            r.warn_every = WARN_FIRST;
        }
        self.metrics.set_registry_reachable(true);
    }

    /// Records a failed registry read; warns at once, then ever less often while it lasts.
    fn registry_failed(&self, e: &lifeline_bindings::Error) {
        let mut r = lock(&self.registry);
        let now = Instant::now();
        self.metrics.set_registry_reachable(false);
        let since = *r.down_since.get_or_insert(now);
        if now < r.next_warn {
            debug!(target: "keeper", error = %e, "registry RPC still unreachable");
            return;
        }
        warn!(
            target: "keeper",
            error = %e,
            down_secs = now.duration_since(since).as_secs(),
            "registry RPC unreachable: probing and judging continue, attesting waits (next warning in {}s)",
            r.warn_every.as_secs()
        );
        r.next_warn = now + r.warn_every;
        r.warn_every = (r.warn_every * 2).min(WARN_MAX);
    }

    fn in_set(&self) -> bool {
        lock(&self.membership).in_set
    }

    fn set_in_set(&self, in_set: bool) {
        let mut m = lock(&self.membership);
        self.metrics.set_keeper_in_set(in_set);
        if m.in_set == in_set {
            return;
        }
        m.in_set = in_set;
        m.check_every = MEMBERSHIP_FIRST;
        m.next_check = Instant::now() + MEMBERSHIP_FIRST;
        let keeper = self.submitter.address();
        if in_set {
            info!(target: "keeper", %keeper, "this key is in the registry's keeper set: attesting");
        } else {
            warn!(target: "keeper", %keeper, "this key is no longer in the registry's keeper set: probing and judging, not attesting; re-checking with backoff");
        }
    }

    /// While the key is not in the keeper set, looks again when due (1 s, 2 s, ... 60 s).
    async fn check_membership(&self) {
        {
            let m = lock(&self.membership);
            if m.in_set || Instant::now() < m.next_check {
                return;
            }
        }
        let me = self.submitter.address();
        // Membership only: any service id reads it.
        match self.client.contract().keeperState(me, B256::ZERO).call().await {
            Ok(state) if state.active => {
                // Votes and bits change with the set: read everything again.
                self.set_in_set(true);
            }
            Ok(_) => {
                let mut m = lock(&self.membership);
                m.next_check = Instant::now() + m.check_every;
                m.check_every = (m.check_every * 2).min(MEMBERSHIP_MAX);
                debug!(target: "keeper", keeper = %me, next_secs = m.check_every.as_secs(), "not in the keeper set yet");
            }
            Err(e) => {
                let mut m = lock(&self.membership);
                m.next_check = Instant::now() + m.check_every;
                drop(m);
                self.registry_failed(&e.into());
            }
        }
    }

    /// Probes every endpoint of `service` and judges each one for this round.
    async fn collect_and_judge(
        &self,
        service: &ServiceWatch,
        now: u64,
        scheduled: Instant,
    ) -> Vec<Observed> {
        match service.config.probe {
            ProbeKind::Jsonrpc => {
                let endpoints: Vec<(u16, Url)> =
                    service.endpoints.iter().map(|e| (e.index, e.url.clone())).collect();
                let round = JsonRpcRound {
                    prober: &self.prober,
                    limit: &self.limit,
                    metrics: &self.metrics,
                    judge: &self.config.judge,
                    chain_id: service.chain_id,
                    proof_account: service.config.proof_account,
                    scheduled,
                };
                round.observe(&endpoints, now).await
            }
            ProbeKind::Http | ProbeKind::Tcp => {
                let probes = service.endpoints.iter().map(|e| async move {
                    let _permit = self.limit.acquire().await;
                    self.metrics.probe_start_delay.observe(scheduled.elapsed().as_secs_f64());
                    let (latency, result) = if service.config.probe == ProbeKind::Http {
                        let url = e
                            .url
                            .join(&service.config.health_path)
                            .unwrap_or_else(|_| e.url.clone());
                        self.prober.http(&url).await
                    } else {
                        self.prober.tcp(&e.url).await
                    };
                    let finding = result.map_or_else(Finding::Probe, |()| Finding::Ok);
                    let ms = finding.is_ok().then_some(latency.as_millis() as u64);
                    if finding.is_ok() {
                        self.metrics.observe_probe(latency.as_secs_f64());
                    }
                    Observed { index: e.index, finding, latency_ms: ms, head_lag: 0 }
                });
                join_all(probes).await
            }
        }
    }
}

/// Logs a verdict that changed.
fn log_change(service: &str, endpoint: u16, before: Verdict, verdict: Verdict, finding: &Finding) {
    if verdict != before {
        info!(
            target: "keeper::judge",
            service = %service,
            endpoint,
            ?verdict,
            finding = ?finding,
            "verdict changed"
        );
    }
}

/// The contract's `EndpointStatus`; `None` for a value these bindings do not know (never
/// guessed as standby).
fn status(raw: u8) -> Option<Status> {
    Status::from_raw(raw)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A deterministic-per-round, keeper-specific shift of a round's start: `(early, late)`, one of
/// them zero, uniform over [-span/2, +span/2) with span = interval * pct / 100, so keepers do
/// not align and the mean period stays the interval.
fn jitter(interval: Duration, pct: u8, round: u64) -> (Duration, Duration) {
    let span = interval.as_millis() as u64 * u64::from(pct) / 100;
    if span == 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let seed = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    let offset = seed % span;
    let half = span / 2;
    if offset < half {
        (Duration::from_millis(half - offset), Duration::ZERO)
    } else {
        (Duration::ZERO, Duration::from_millis(offset - half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_statuses_are_not_standby() {
        assert_eq!(status(1), Some(Status::Standby));
        assert_eq!(status(4), Some(Status::Retired));
        assert_eq!(status(0), None, "a slot not in use");
        assert_eq!(status(9), None, "a status newer than these bindings");
    }
}
