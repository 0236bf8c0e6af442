//! One served service: its failover transport (fed by the registry follower), its method
//! policy, its subscription hubs, and the call path every HTTP and WebSocket request takes.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::B256,
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{
        client::RpcClient,
        json_rpc::{Id, Request, RequestPacket, ResponsePacket, ResponsePayload},
    },
    transports::http::reqwest::Url,
};
use lifeline_bindings::{
    EndpointState, FailoverConfig, FailoverTransport, RegistryClient, RouteSet, WatchConfig,
    quorum::{QuorumReader, RegistrySet},
    transport::{ConsensusConfig, freshness::FreshnessConfig},
};
use serde_json::value::RawValue;
use tower::Service as _;
use tracing::{debug, info, warn};

use crate::{
    config::{GatewayConfig, ServiceSection},
    metrics::Metrics,
    rpc::{self, Call, MethodPolicy, code},
    subscribe::{HeadFollower, PendingFollower},
    upstream::{RouteNames, UpstreamConnector},
};

/// How often the endpoint table (standbys included) is re-read for `/routes`.
const ENDPOINTS_REFRESH: Duration = Duration::from_secs(3);

/// What `/routes` shows of a service.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RouteView {
    /// The authorised set in use (`None` until the registry was read).
    pub set: Option<RouteSet>,
    /// Every endpoint's registry state (standbys included), refreshed every few seconds.
    pub endpoints: Vec<EndpointState>,
    /// Unix time of the last successful registry read (0 = never).
    pub registry_read_at: u64,
    /// The last registry read error, if the last read failed.
    pub registry_error: Option<String>,
    /// Index of the registry whose set is in force (0, the primary, with one registry).
    pub registry_in_force: usize,
    /// With several registries: each one's agreed set as last read, side by side.
    pub registries: Vec<RegistryView>,
}

/// One registry of a service followed on several (`/routes`, `lifeline routes`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegistryView {
    /// Its index in `[[registry]]` (0 = the primary).
    pub index: usize,
    /// Its address.
    pub address: alloy::primitives::Address,
    /// Its set as its RPC quorum last agreed on it (`None`: unreadable or no quorum).
    pub set: Option<RouteSet>,
    /// Unix time of the block that set was read at.
    pub block_time: u64,
    /// Its chain was live (the block at most `live_bound` old) at the last read.
    pub live: bool,
    /// Its set is the one in force.
    pub in_force: bool,
}

/// One served service.
pub struct ServiceHandle {
    /// The service name (`/rpc/<name>`).
    pub name: String,
    /// Its id, `keccak256(name)` (`/rpc/<0x id>`).
    pub id: B256,
    transport: FailoverTransport<UpstreamConnector>,
    client: RpcClient,
    policy: MethodPolicy,
    metrics: Metrics,
    names: RouteNames,
    view: RwLock<RouteView>,
    next_id: AtomicU64,
    timeout: Duration,
    /// Per-method metric series, looked up once.
    series: crate::metrics::SeriesCache,
    /// Transport counters already exported.
    counted: std::sync::Mutex<lifeline_bindings::transport::TransportStats>,
    /// Heads (and the logs under them) for `newHeads` and `logs` subscriptions.
    pub heads: HeadFollower,
    /// Pending transaction hashes for `newPendingTransactions` subscriptions.
    pub pending: PendingFollower,
}

impl std::fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHandle").field("name", &self.name).field("id", &self.id).finish()
    }
}

impl ServiceHandle {
    /// Builds a service from its config section (not yet following the registry).
    pub fn new(
        section: &ServiceSection,
        config: &GatewayConfig,
        secrets: &lifeline_bindings::secrets::Secrets,
        metrics: Metrics,
    ) -> Arc<Self> {
        let names = RouteNames::default();
        let connector = UpstreamConnector::new(
            &section.name,
            config.limits.max_response_bytes,
            metrics.clone(),
            names.clone(),
        );
        let hedge = config.transport.hedge_after_ms;
        let transport = FailoverTransport::with_connector(
            connector,
            FailoverConfig {
                bootstrap: section.bootstrap.iter().filter_map(|u| u.parse().ok()).collect(),
                attempt_timeout: Duration::from_millis(config.transport.attempt_timeout_ms),
                hedge_after: (hedge > 0).then(|| Duration::from_millis(hedge)),
                freshness: FreshnessConfig {
                    enabled: config.freshness.enabled,
                    max_lag_blocks: config.freshness.max_lag_blocks,
                    max_head_age: Duration::from_millis(config.freshness.max_head_age_ms),
                    poll_interval: Duration::from_millis(config.freshness.poll_interval_ms),
                    expected_chain_id: config.freshness.expected_chain_id,
                    allow_stale: config.freshness.allow_stale,
                },
                consensus: (!config.freshness.consensus_methods.is_empty()).then(|| {
                    ConsensusConfig {
                        methods: config.freshness.consensus_methods.clone(),
                        ask: config.freshness.consensus_ask,
                        agree: config.freshness.consensus_agree,
                    }
                }),
                secrets: secrets.clone(),
                ..Default::default()
            },
        );
        let client = RpcClient::new(transport.clone(), true);
        let poll = Duration::from_millis(config.subscriptions.poll_interval_ms);
        Arc::new(Self {
            name: section.name.clone(),
            id: section.id(),
            heads: HeadFollower::new(
                section.name.clone(),
                client.clone(),
                poll,
                config.subscriptions.max_backfill_blocks,
                metrics.clone(),
                {
                    // The doorbell rings from the best route that reads may use.
                    let transport = transport.clone();
                    Arc::new(move || {
                        transport
                            .routes()
                            .into_iter()
                            .find(|r| r.skip.is_none() && !r.breaker_open)
                            .map(|r| r.url)
                    })
                },
            ),
            pending: PendingFollower::new(client.clone(), poll),
            transport,
            client,
            policy: MethodPolicy::new(&section.allow_methods, &section.deny_methods),
            metrics,
            names,
            view: RwLock::new(RouteView::default()),
            next_id: AtomicU64::new(1),
            counted: Default::default(),
            series: Default::default(),
            timeout: config.limits.request_timeout(),
        })
    }

    /// The failover transport (for tests and benchmarks).
    pub fn transport(&self) -> &FailoverTransport<UpstreamConnector> {
        &self.transport
    }

    /// A JSON-RPC client over the failover transport.
    pub fn client(&self) -> &RpcClient {
        &self.client
    }

    /// What `/routes` shows.
    pub fn view(&self) -> RouteView {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a request could be routed now, and if not, why.
    pub fn health(&self) -> Result<(), String> {
        let routes = self.transport.routes();
        if routes.is_empty() {
            return Err(format!(
                "service {}: no authorised route yet and no bootstrap route configured",
                self.name
            ));
        }
        if routes.iter().all(|r| r.breaker_open) {
            return Err(format!("service {}: every route's circuit breaker is open", self.name));
        }
        Ok(())
    }

    /// Follows the registry: applies each new route set to the transport (read through a
    /// quorum of registry RPCs when `quorum` is given, see `lifeline_bindings::quorum`; chosen
    /// among several registries by the rule of `RegistrySet` when `registries` is given), and
    /// refreshes the endpoint table for `/routes` (from `registry`, the primary) every few
    /// seconds. Runs until the task is aborted.
    pub async fn follow(
        self: Arc<Self>,
        registry: RegistryClient<DynProvider>,
        quorum: Option<QuorumReader<DynProvider>>,
        registries: Option<RegistrySet<DynProvider>>,
        poll: Duration,
    ) {
        let labels = Metrics::service(&self.name);
        let addresses: Vec<alloy::primitives::Address> = registries
            .as_ref()
            .map(|r| r.registries.iter().map(|q| q.address()).collect())
            .unwrap_or_default();
        let sets = async {
            if let Some(registries) = registries {
                let mut watcher = registries.watch(self.id, poll);
                loop {
                    let round = watcher.next().await;
                    if round.disagreement_reported {
                        self.metrics.registry_disagreements.get_or_create(&labels).inc();
                    }
                    let in_force = round.choice.as_ref().map_or(0, |c| c.registry);
                    let views = round
                        .agreed
                        .iter()
                        .zip(&round.live)
                        .enumerate()
                        .map(|(index, (agreed, live))| RegistryView {
                            index,
                            address: addresses.get(index).copied().unwrap_or_default(),
                            set: agreed.as_ref().map(|a| a.set.clone()),
                            block_time: agreed.as_ref().map_or(0, |a| a.block_time),
                            live: *live,
                            in_force: round.choice.is_some() && index == in_force,
                        })
                        .collect();
                    {
                        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                        view.registries = views;
                        view.registry_in_force = in_force;
                    }
                    let Some(choice) = round.choice.filter(|_| round.changed) else { continue };
                    self.metrics.registry_in_force.get_or_create(&labels).set(in_force as i64);
                    info!(target: "gateway::routes", service = %self.name, registry = in_force, epoch = choice.set.epoch, "route set in force from registry {in_force}");
                    // Epochs of different registries are not comparable: the choice is applied
                    // whatever its epoch.
                    self.apply(choice.set, true, &labels);
                }
            } else {
                let mut watcher = registry
                    .watch(self.id, WatchConfig { poll_interval: poll, ..Default::default() });
                let mut agreed = quorum.map(|reader| reader.watch(self.id, poll));
                loop {
                    let set = match &mut agreed {
                        Some(agreed) => agreed.next().await,
                        None => watcher.next().await,
                    };
                    self.apply(set, false, &labels);
                }
            }
        };
        let endpoints = async {
            loop {
                let read = registry.endpoints(self.id).await;
                {
                    let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                    match read {
                        Ok(endpoints) => {
                            view.endpoints = endpoints;
                            view.registry_error = None;
                        }
                        Err(e) => {
                            debug!(target: "gateway::routes", service = %self.name, error = %e, "registry read failed");
                            view.registry_error = Some(e.to_string());
                        }
                    }
                }
                tokio::time::sleep(ENDPOINTS_REFRESH).await;
            }
        };
        tokio::join!(sets, endpoints);
    }

    /// Routes by `set` from now on (`canonical`: whatever its epoch).
    fn apply(&self, set: RouteSet, canonical: bool, labels: &crate::metrics::ServiceLabels) {
        let names = set
            .routes
            .iter()
            .filter_map(|r| r.url.parse::<Url>().ok().map(|url| (url, format!("{}", r.id))));
        self.names.set(names);
        let applied = if canonical {
            self.transport.apply_canonical(&set);
            true
        } else {
            self.transport.apply(&set)
        };
        if applied {
            info!(target: "gateway::routes", service = %self.name, epoch = set.epoch, routes = set.routes.len(), "route set applied");
        }
        self.metrics.epoch.get_or_create(labels).set(i64::from(set.epoch));
        self.metrics.routes.get_or_create(labels).set(set.routes.len() as i64);
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        view.set = Some(set);
        view.registry_read_at = unix_now();
    }

    /// Answers one call: the JSON text of the response object.
    pub async fn call(&self, call: &Call) -> String {
        let started = Instant::now();
        let method = rpc::method_label(&call.method);
        let series = self.series.get(method, || self.metrics.call_series(&self.name, method));
        let answer = self.route(call).await;
        series.requests.inc();
        series.latency.observe(started.elapsed().as_secs_f64());
        match answer {
            Ok(text) => text,
            Err((code, message)) => {
                series.errors.inc();
                rpc::error(call.id.as_deref(), code, &message).to_string()
            }
        }
    }

    /// The gateway's own refusal of a call, or `None` when it may go upstream.
    pub fn refuse(&self, call: &Call) -> Option<(i64, String)> {
        match call.method.as_str() {
            "eth_subscribe" | "eth_unsubscribe" => Some((
                code::METHOD_NOT_FOUND,
                format!(
                    "{} needs a WebSocket connection (ws://.../rpc/{})",
                    call.method, self.name
                ),
            )),
            method if !self.policy.allows(method) => Some((
                code::METHOD_NOT_FOUND,
                format!("method {method} is not available on this gateway (service {})", self.name),
            )),
            _ => None,
        }
    }

    async fn route(&self, call: &Call) -> Result<String, (i64, String)> {
        if let Some(refusal) = self.refuse(call) {
            return Err(refusal);
        }
        let id = Id::Number(self.next_id.fetch_add(1, Ordering::Relaxed));
        let request = Request::new(call.method.clone(), id, call.params.clone())
            .serialize()
            .map_err(|e| (code::INVALID_PARAMS, format!("invalid params: {e}")))?;
        let mut transport = self.transport.clone();
        let sent =
            tokio::time::timeout(self.timeout, transport.call(RequestPacket::Single(request)))
                .await;
        let packet = match sent {
            Err(_) => {
                return Err((
                    code::INTERNAL_ERROR,
                    format!(
                        "no route answered within limits.request_timeout_ms ({:?})",
                        self.timeout
                    ),
                ));
            }
            Ok(Err(e)) => {
                warn!(target: "gateway::rpc", service = %self.name, method = %call.method, error = %e, "call failed on every route");
                return Err((code::INTERNAL_ERROR, format!("service {}: {e}", self.name)));
            }
            Ok(Ok(packet)) => packet,
        };
        let ResponsePacket::Single(response) = packet else {
            return Err((
                code::INTERNAL_ERROR,
                "upstream answered a batch to a single call".into(),
            ));
        };
        Ok(match &response.payload {
            ResponsePayload::Success(result) => rpc::success_text(call.id.as_deref(), result),
            ResponsePayload::Failure(err) => {
                rpc::failure_text(call.id.as_deref(), err.code, &err.message, err.data.as_deref())
            }
        })
    }

    /// Brings the failover and hedge counters up to the transport's own counts (called before
    /// each `/metrics` scrape).
    pub fn sync_counters(&self) {
        let stats = self.transport.stats();
        let labels = Metrics::service(&self.name);
        let mut seen = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics
            .failovers
            .get_or_create(&labels)
            .inc_by(stats.failovers.saturating_sub(seen.failovers));
        self.metrics.hedges.get_or_create(&labels).inc_by(stats.hedges.saturating_sub(seen.hedges));
        self.metrics
            .stale_refusals
            .get_or_create(&labels)
            .inc_by(stats.stale_refusals.saturating_sub(seen.stale_refusals));
        self.metrics
            .dissents
            .get_or_create(&labels)
            .inc_by(stats.dissents.saturating_sub(seen.dissents));
        for route in self.transport.routes() {
            if let Some(skip) = route.skip {
                let labels = crate::metrics::SkipLabels {
                    service: self.name.clone(),
                    url: route.url.to_string(),
                    reason: skip.label().into(),
                };
                self.metrics.route_skipped.get_or_create(&labels).set(1);
            }
        }
        *seen = stats;
    }

    /// A raw JSON value call through the failover transport, for the gateway's own reads.
    pub async fn request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.client.request::<_, serde_json::Value>(method, params).await.map_err(|e| e.to_string())
    }
}

/// A registry client of the primary registry, for the gateway's follower tasks.
pub fn registry_client(config: &GatewayConfig) -> crate::Result<RegistryClient<DynProvider>> {
    client_of(config.primary(), &config.primary().rpc_url)
}

fn client_of(
    registry: &crate::config::RegistrySection,
    url: &str,
) -> crate::Result<RegistryClient<DynProvider>> {
    let parsed: Url =
        url.parse().map_err(|e| crate::Error::Config(format!("registry.rpc_url = {url}: {e}")))?;
    let provider = ProviderBuilder::new().connect_http(parsed).erased();
    Ok(RegistryClient::new(registry.address, provider))
}

/// A reader of `registry` through every one of its RPC URLs, needing its quorum of them.
fn reader_of(
    registry: &crate::config::RegistrySection,
) -> crate::Result<QuorumReader<DynProvider>> {
    let clients = registry
        .all_rpc_urls()
        .into_iter()
        .map(|u| client_of(registry, u))
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(QuorumReader::new(clients, registry.effective_quorum(), 0))
}

/// With one registry and more than one of its RPC URLs configured, a reader that needs a
/// quorum of them.
pub fn quorum_reader(config: &GatewayConfig) -> crate::Result<Option<QuorumReader<DynProvider>>> {
    if config.registries.len() > 1 || config.primary().rpc_urls.is_empty() {
        return Ok(None);
    }
    reader_of(config.primary()).map(Some)
}

/// With several registries configured, every one (each through its quorum of RPC URLs) and the
/// rule that picks the set in force.
pub fn registry_set(config: &GatewayConfig) -> crate::Result<Option<RegistrySet<DynProvider>>> {
    if config.registries.len() < 2 {
        return Ok(None);
    }
    let readers = config.registries.iter().map(reader_of).collect::<crate::Result<Vec<_>>>()?;
    let choice = &config.registry_choice;
    Ok(Some(RegistrySet::new(
        readers,
        Duration::from_millis(choice.live_bound_ms),
        Duration::from_millis(choice.disagree_after_ms),
    )))
}

/// Raw JSON for a value (serialising a `Value` cannot fail).
pub fn raw(value: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_default()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Reads the registry's code once at startup so a wrong address fails fast.
pub async fn check_registry(registry: &RegistryClient<DynProvider>) -> crate::Result<()> {
    let address = *registry.contract().address();
    let code = registry
        .contract()
        .provider()
        .get_code_at(address)
        .await
        .map_err(|e| crate::Error::Registry(format!("reading the code at {address}: {e}")))?;
    if code.is_empty() {
        return Err(crate::Error::Registry(format!(
            "registry.address = {address}: no contract there on this chain"
        )));
    }
    Ok(())
}
