//! The keeper pipeline, one round per probe interval for every service:
//!
//! ```text
//!  refresh (registry: endpoints, epoch, my votes; when stale)
//!    -> collect (probe every endpoint, bounded concurrency)
//!    -> judge   (corroborated head, divergence, state proof, hysteresis)
//!    -> attest  (votes that differ from mine on chain, or a heartbeat) -> submit
//! ```

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256},
    providers::DynProvider,
    transports::http::reqwest::Url,
};
use futures_util::future::join_all;
use lifeline_bindings::{RegistryClient, Verdict as WireVerdict, client::Status, service_id};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use crate::{
    collect::{JsonRpcRound, Observed},
    config::{KeeperConfig, ProbeKind, ServiceConfig},
    decide::{OnChain, vote_to_cast},
    judge::{Finding, Tracker, Verdict},
    metrics::Metrics,
    probe::Prober,
    submit::{Submitted, Submitter},
};

/// One endpoint as the keeper knows it.
#[derive(Debug, Clone)]
struct Endpoint {
    index: u16,
    url: Url,
    chain: OnChain,
}

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
    inflight: Option<
        tokio::task::JoinHandle<(&'static str, Result<Submitted, crate::submit::SubmitError>)>,
    >,
}

/// The running keeper.
#[derive(Debug)]
pub struct Engine {
    pipeline: Pipeline,
    services: Vec<ServiceWatch>,
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
}

impl Engine {
    /// Wires the pipeline: the submitter (and reads) over `config.registry.rpc_urls`.
    pub async fn new(
        config: KeeperConfig,
        signer: alloy::signers::local::PrivateKeySigner,
        metrics: Metrics,
    ) -> eyre::Result<Self> {
        let urls = config
            .registry
            .rpc_urls
            .iter()
            .map(|u| u.parse::<Url>())
            .collect::<Result<Vec<_>, _>>()?;
        let submitter =
            Submitter::connect(&urls, config.registry.address, signer, config.submit.clone())
                .await?;
        let client = submitter.client();
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
        let pipeline = Pipeline {
            prober: Prober::new(config.probe.timeout(), config.probe.max_response_bytes),
            limit: Arc::new(Semaphore::new(config.probe.max_concurrency)),
            config,
            submitter,
            client,
            metrics,
        };
        Ok(Self { pipeline, services })
    }

    /// The keeper's address.
    pub fn address(&self) -> Address {
        self.pipeline.submitter.address()
    }

    /// Runs rounds until `shutdown` turns true; a round in progress finishes first.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> eyre::Result<()> {
        info!(
            target: "keeper",
            keeper = %self.address(),
            services = self.services.len(),
            interval_ms = self.pipeline.config.probe.interval_ms,
            "keeper started"
        );
        let mut round: u64 = 0;
        let pipeline = &self.pipeline;
        loop {
            let started = Instant::now();
            // Services' rounds run concurrently; submissions are serialised in the submitter.
            join_all(self.services.iter_mut().map(|service| async move {
                if let Err(e) = pipeline.round(service).await {
                    warn!(target: "keeper", service = %service.config.name, error = %e, "round failed");
                }
            }))
            .await;
            round += 1;
            let interval = pipeline.config.probe.interval();
            let jitter = jitter(interval, pipeline.config.probe.jitter_pct, round);
            let sleep = interval.saturating_sub(started.elapsed()) + jitter;
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                info!(target: "keeper", rounds = round, "shutting down; waiting for submissions in flight");
                for service in &mut self.services {
                    if let Some(handle) = service.inflight.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
                    }
                }
                return Ok(());
            }
        }
    }
}

impl Pipeline {
    /// One pass of the pipeline for one service.
    async fn round(&self, service: &mut ServiceWatch) -> eyre::Result<()> {
        // Settle the last submission first, so the refresh below sees its votes.
        let can_attest = self.settle(service).await;
        let refresh_every = Duration::from_secs(self.config.probe.refresh_secs);
        let stale = service.refreshed.is_none_or(|t| t.elapsed() >= refresh_every);
        let epoch_now = self.client.service(service.id).await?.epoch;
        if stale || epoch_now != service.epoch {
            self.refresh(service).await?;
        }

        // Collect + judge.
        let now = unix_now();
        let findings = self.collect_and_judge(service, now).await;
        let judge_config = self.config.judge.clone();
        let mut counts = [0u32; 3];
        let mut verdicts = Vec::new();
        for Observed { index, finding, latency_ms, head_lag } in findings {
            let label = finding.label();
            let tracker = service.trackers.entry(index).or_default();
            let before = tracker.verdict();
            let verdict = tracker.record(&judge_config, finding.clone(), latency_ms);
            tracker.head_lag = head_lag;
            self.metrics.add(
                "lifeline_probes_total",
                format!("service=\"{}\",finding=\"{label}\"", service.config.name),
                1.0,
            );
            if verdict != before {
                info!(
                    target: "keeper::judge",
                    service = %service.config.name,
                    endpoint = index,
                    ?verdict,
                    finding = ?finding,
                    "verdict changed"
                );
            }
            counts[match verdict {
                Verdict::Healthy => 0,
                Verdict::Unhealthy => 1,
                Verdict::Unknown => 2,
            }] += 1;
            verdicts.push((index, verdict, tracker.median_latency_ms(), tracker.head_lag));
        }
        for (label, n) in ["healthy", "unhealthy", "unknown"].iter().zip(counts) {
            self.metrics.set(
                "lifeline_verdicts",
                format!("service=\"{}\",verdict=\"{label}\"", service.config.name),
                f64::from(n),
            );
        }

        // Attest: only votes that differ from mine on chain, else a heartbeat when due; one
        // submission in flight per service.
        if !can_attest {
            return Ok(());
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
            return Ok(());
        }
        let kind = if wire.is_empty() { "heartbeat" } else { "votes" };
        let (id, name) = (service.id, service.config.name.clone());
        debug!(target: "keeper::attest", service = %name, kind, votes = wire.len(), "submitting");
        // The submission runs beside the probes: a slow chain never delays the next round.
        let submitter = self.submitter.clone();
        service.inflight =
            Some(tokio::spawn(async move { (kind, submitter.submit(id, wire).await) }));
        Ok(())
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
        // My votes changed on chain (or may have): read them back next round.
        service.refreshed = None;
        match handle.await {
            Ok((kind, Ok(Submitted::Accepted { gas_used, .. }))) => {
                service.last_submission = Some(Instant::now());
                self.metrics.add(
                    "lifeline_submissions_total",
                    format!("result=\"accepted\",kind=\"{kind}\""),
                    1.0,
                );
                self.metrics.add("lifeline_gas_used_total", String::new(), gas_used as f64);
            }
            Ok((_, Ok(Submitted::Superseded(reason)))) => {
                info!(target: "keeper::attest", service = %name, %reason, "superseded; re-judging next round");
                self.metrics.add("lifeline_submissions_total", "result=\"superseded\"".into(), 1.0);
            }
            Ok((_, Err(e))) => {
                warn!(target: "keeper::attest", service = %name, error = %e, "submission failed");
                self.metrics.add("lifeline_submissions_total", "result=\"failed\"".into(), 1.0);
                self.metrics.add(
                    "lifeline_submission_failures_total",
                    format!("reason=\"{}\"", short(&e.to_string())),
                    1.0,
                );
            }
            Err(e) => {
                warn!(target: "keeper::attest", service = %name, error = %e, "submission task ended abnormally")
            }
        }
        true
    }

    /// Reads the service's endpoints, chain id, epoch and the on-chain votes.
    async fn refresh(&self, service: &mut ServiceWatch) -> eyre::Result<()> {
        let id = service.id;
        let view = self.client.service(id).await?;
        let endpoints = self.client.endpoints(id).await?;
        service.keeper_bit = self.submitter.keeper_bit().await?;
        service.chain_id = view.config.chainId;
        service.epoch = view.epoch;
        self.metrics.set(
            "lifeline_onchain_epoch",
            format!("service=\"{}\"", service.config.name),
            f64::from(view.epoch),
        );
        service.endpoints = endpoints
            .into_iter()
            .filter(|e| e.status != Status::Retired)
            .filter_map(|e| {
                let url = e.url.parse::<Url>().ok()?;
                Some(Endpoint {
                    index: e.id,
                    url,
                    chain: OnChain {
                        status: e.status,
                        ready: e.ready,
                        cooldown_until: e.cooldown_until,
                        down_votes: e.down_votes,
                        up_votes: e.up_votes,
                    },
                })
            })
            .collect();
        service.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Probes every endpoint of `service` and judges each one for this round.
    async fn collect_and_judge(&self, service: &ServiceWatch, now: u64) -> Vec<Observed> {
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
                };
                round.observe(&endpoints, now).await
            }
            ProbeKind::Http | ProbeKind::Tcp => {
                let probes = service.endpoints.iter().map(|e| async move {
                    let _permit = self.limit.acquire().await;
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

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A deterministic-per-round, keeper-specific spread in [0, interval * pct / 100).
fn jitter(interval: Duration, pct: u8, round: u64) -> Duration {
    let span = interval.as_millis() as u64 * u64::from(pct) / 100;
    if span == 0 {
        return Duration::ZERO;
    }
    let seed = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    Duration::from_millis(seed % span)
}

fn short(text: &str) -> String {
    text.chars().take(40).filter(|c| c.is_ascii_alphanumeric() || *c == ' ').collect()
}
