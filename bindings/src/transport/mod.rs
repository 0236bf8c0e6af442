//! # The failover transport
//!
//! An alloy transport (a `tower::Service<RequestPacket>`, usable with `RpcClient::new` and
//! `ProviderBuilder::connect_client`) that sends each request to the best *authorised* route
//! and fails over within the same call. Two speeds of failover meet here: per request, in
//! milliseconds, among the routes the registry authorises; and per route set, when the registry
//! changes the set for everyone ([`FailoverTransport::apply`], fed by
//! [`FailoverTransport::follow`]).
//!
//! ```text
//!  request --> filter method (Single)? --> answered here, state kept here (see below)
//!          --> rank routes (EWMA latency x error rate, breaker, registry `degraded`)
//!          --> route 1 --(connection error, timeout, HTTP 5xx/429, node behind,
//!          |              head below the head already served)--> route 2 --> ...
//!          |     '-- no answer after `hedge_after` (reads) --> route 2 in parallel; first answer wins
//!          '-- eth_sendRawTransaction --> every route at once (same hash: one inclusion)
//!  JSON-RPC execution errors (reverts) are answers: returned, never retried.
//!  freshness (see [`freshness`], [`pin`], [`verify`]): only fresh routes read the head; a
//!  state read of `latest` is pinned to a block the routes agree on; a block or head answer
//!  that does not fit the majority's chain is refused (after a poll round run at once).
//!  All routes failed --> one error naming every route tried and why.
//!
//!  filters (eth_newFilter, eth_newBlockFilter, eth_getFilterChanges, eth_getFilterLogs,
//!           eth_uninstallFilter): ids, criteria and cursors live in the transport; changes are
//!           read with eth_blockNumber / eth_getBlockByNumber / eth_getLogs through the failover
//!           above, so a filter survives any route switch. eth_newPendingTransactionFilter is
//!           node-local: pinned to the route that made it, a clear error if that route is gone.
//! ```
//!
//! **The head never goes backwards.** The transport remembers the highest block number it has
//! returned for a head query ([`FailoverTransport::served_head`]: `eth_blockNumber`, and the
//! `number` of `eth_getBlockByNumber("latest" | "pending")`, a pending block counting as its
//! parent). A route that answers below it is behind: its answer is not returned, the attempt
//! counts as a retry ("behind the head already served (0x.. < 0x..)") and the next route is
//! tried; if every route is behind, the caller gets the usual [`AllRoutesFailed`] naming each
//! one. A behind answer lowers the route's rank (its error rate) but does not count toward its
//! breaker: a lagging node is not down. Only Single requests are judged and answered this way: a
//! batch passes through unchanged (filter methods included).
//!
//! **Filters survive failover** ([`filters`] has the details): the transport answers the filter
//! methods itself with ids of its own, delivers each new block or log once from a cursor per
//! filter, re-delivers from the fork point after a reorg (best effort), and expires filters
//! unused for 5 minutes. Answers keep the caller's JSON-RPC id.
//!
//! Fail static: the transport keeps the last route set it was given; if it was never given one,
//! it uses the configured bootstrap list.

mod classify;
pub mod filters;
pub mod freshness;
mod head;
pub mod health;
mod pin;
mod verify;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{
        TransportError, TransportErrorKind, TransportFut,
        http::{Http, reqwest::Url},
    },
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tower::Service;
use tracing::{debug, warn};

use self::{
    classify::{Outcome, classify, is_transaction_submission},
    freshness::{BlockNeed, FreshnessConfig, HeadTracker, Judgement, Skip},
    head::{HeadProbe, ServedHead},
    health::{BreakerConfig, RouteHealth, rank},
    pin::PinnedBlock,
    verify::BlockAnswer,
};
use crate::{
    client::{RegistryClient, RouteSet},
    watch::WatchConfig,
};

/// Creates the per-route transport for a URL. The default is alloy's HTTP transport; tests use
/// mocks.
pub trait Connector: Send + Sync + 'static {
    /// The per-route transport.
    type Transport: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Clone
        + Send
        + Sync
        + 'static;

    /// A transport for the route `route` (as registered: a URL template names its secrets,
    /// never their values; this is what logs, errors and metrics may show), sending to
    /// `target` (the resolved URL; the same as `route` when it names no secret).
    fn connect(&self, route: &Url, target: &Url) -> Self::Transport;
}

/// alloy's reqwest HTTP transport, one connection pool shared by every route.
#[derive(Debug, Clone, Default)]
pub struct HttpConnector {
    client: alloy::transports::http::reqwest::Client,
}

impl Connector for HttpConnector {
    type Transport = Redacted<Http<alloy::transports::http::reqwest::Client>>;

    fn connect(&self, route: &Url, target: &Url) -> Self::Transport {
        Redacted::new(Http::with_client(self.client.clone(), target.clone()), route, target)
    }
}

/// A route transport whose errors never show the resolved URL of a templated route (reqwest
/// puts the URL in its messages): it is replaced by the template.
#[derive(Debug, Clone)]
pub struct Redacted<T> {
    inner: T,
    /// (resolved, template) when they differ.
    swap: Option<Arc<(String, String)>>,
}

impl<T> Redacted<T> {
    /// `inner`, sending to `target`, shown as `route`.
    pub fn new(inner: T, route: &Url, target: &Url) -> Self {
        let swap = (route != target).then(|| Arc::new((target.to_string(), route.to_string())));
        Self { inner, swap }
    }
}

impl<T> Service<RequestPacket> for Redacted<T>
where
    T: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        >,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let call = self.inner.call(request);
        let Some(swap) = self.swap.clone() else { return call };
        Box::pin(async move {
            call.await.map_err(|error| match error {
                alloy::rpc::json_rpc::RpcError::Transport(TransportErrorKind::Custom(inner)) => {
                    let mut text = inner.to_string();
                    let mut source = inner.source();
                    while let Some(cause) = source {
                        text = format!("{text}: {cause}");
                        source = cause.source();
                    }
                    TransportErrorKind::custom_str(&text.replace(&swap.0, &swap.1))
                }
                other => other,
            })
        })
    }
}

/// Tuning of the failover transport.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// Routes to use until a route set arrives (and if none ever does).
    pub bootstrap: Vec<Url>,
    /// Longest wait for one route's answer before trying the next.
    pub attempt_timeout: Duration,
    /// For reads: if the first route has not answered after this long, ask the next one in
    /// parallel and take the first answer (`None`: no hedging).
    pub hedge_after: Option<Duration>,
    /// Circuit breaker per route.
    pub breaker: BreakerConfig,
    /// Head-aware routing: stale, lagging, forked and wrong-chain routes are not read from.
    pub freshness: FreshnessConfig,
    /// Per-request consensus for the methods named (`None`: off).
    pub consensus: Option<ConsensusConfig>,
    /// The secrets route URL templates may name (see [`crate::secrets`]); none by default, so
    /// a templated route is skipped with a warning.
    pub secrets: crate::secrets::Secrets,
}

/// Per-request consensus: ask `ask` fresh routes, answer when `agree` of them return the same
/// result (the same block, since the reads are pinned to fresh routes); the others are
/// dissenters (logged, counted, and their breaker fed, so a route that keeps dissenting is
/// skipped).
#[derive(Debug, Clone)]
pub struct ConsensusConfig {
    /// The methods asked this way, e.g. `eth_call`.
    pub methods: Vec<String>,
    /// How many routes are asked.
    pub ask: usize,
    /// How many identical answers are needed.
    pub agree: usize,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self { methods: vec!["eth_call".into()], ask: 3, agree: 2 }
    }
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            attempt_timeout: Duration::from_secs(2),
            hedge_after: Some(Duration::from_millis(250)),
            breaker: BreakerConfig::default(),
            freshness: FreshnessConfig::default(),
            consensus: None,
            secrets: crate::secrets::Secrets::none(),
        }
    }
}

/// One route as the transport holds it.
struct Route<T> {
    url: Url,
    transport: T,
    health: Mutex<RouteHealth>,
}

struct Table<T> {
    /// The registry epoch of the current set; `None` while on the bootstrap list.
    epoch: Option<u32>,
    routes: Vec<Arc<Route<T>>>,
}

/// A point-in-time view of one route, for metrics and demos.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteReport {
    /// The route.
    pub url: Url,
    /// Latency EWMA, milliseconds.
    pub latency_ms: f64,
    /// Error-rate EWMA, 0..1.
    pub error_rate: f64,
    /// The breaker keeps it out of rotation right now.
    pub breaker_open: bool,
    /// The route's last known head.
    pub head: Option<u64>,
    /// Why reads skip it right now (lagging, stalled, ahead, wrong chain, forked, no head).
    pub skip: Option<Skip>,
}

/// Counters of the transport's work. A filter method answered by the transport counts as one
/// request (and as a failure if it ends in a transport error); the requests it makes to the
/// routes count toward `failovers` when they need more than one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Requests the caller made.
    pub requests: u64,
    /// Requests that needed more than one route.
    pub failovers: u64,
    /// Requests that failed on every route.
    pub failures: u64,
    /// Slow reads also sent to a second route (hedged).
    pub hedges: u64,
    /// Reads refused because no route was fresh (`all authorised routes are stale`).
    pub stale_refusals: u64,
    /// Consensus answers a route disagreed with (or failed to give).
    pub dissents: u64,
}

struct Shared<C: Connector> {
    connector: C,
    config: FailoverConfig,
    table: RwLock<Table<C::Transport>>,
    stats: Mutex<TransportStats>,
    /// The highest head returned to a caller (see [`FailoverTransport::served_head`]).
    served: Arc<ServedHead>,
    /// Filters the transport answers itself (see [`filters`]).
    filters: filters::Filters,
    /// Every route's head and chain id (see [`freshness`]).
    heads: Arc<Mutex<HeadTracker>>,
    /// The highest block of a transaction receipt returned to a caller: state reads are pinned
    /// at or above it (the caller reads its own writes).
    receipts: Arc<ServedHead>,
    /// Completed head-poll rounds; the poller starts with the first route set or request.
    polls: tokio::sync::watch::Sender<u64>,
    /// Rung when an answer shows a head the polls have not seen: the next round starts at once.
    ring: Arc<tokio::sync::Notify>,
    /// The latest head-poll round started, and which routes have answered it so far.
    round: tokio::sync::watch::Sender<Round>,
    /// A polled block of this chain hashed as an Ethereum header does: block answers whose hash
    /// is not their header's are refused from then on (see [`verify`]).
    sealed_headers: Arc<AtomicBool>,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The last freshness verdict, reused while nothing changed.
    judged: Mutex<Option<Judged>>,
}

/// How long an unchanged freshness verdict is reused.
const JUDGEMENT_REUSE: Duration = Duration::from_millis(50);

/// A cached freshness verdict and what it was computed from.
struct Judged {
    generation: u64,
    served: Option<u64>,
    at: Instant,
    urls: Vec<Url>,
    judgement: Arc<Judgement>,
}

impl<C: Connector> Drop for Shared<C> {
    fn drop(&mut self) {
        if let Some(poller) = self.poller.lock().unwrap_or_else(|p| p.into_inner()).take() {
            poller.abort();
        }
    }
}

/// The failover transport. Cheap to clone: clones share routes, health and counters.
pub struct FailoverTransport<C: Connector = HttpConnector> {
    shared: Arc<Shared<C>>,
}

impl<C: Connector> std::fmt::Debug for FailoverTransport<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.routes().into_iter().map(|r| r.url.to_string()).collect();
        f.debug_struct("FailoverTransport")
            .field("epoch", &self.epoch())
            .field("routes", &urls)
            .finish()
    }
}

impl<C: Connector> Clone for FailoverTransport<C> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl FailoverTransport<HttpConnector> {
    /// An HTTP failover transport starting on `config.bootstrap`.
    pub fn new(config: FailoverConfig) -> Self {
        Self::with_connector(HttpConnector::default(), config)
    }
}

impl<C: Connector> FailoverTransport<C> {
    /// A failover transport whose routes are made by `connector`.
    pub fn with_connector(connector: C, config: FailoverConfig) -> Self {
        let routes = config
            .bootstrap
            .iter()
            .map(|url| {
                Arc::new(Route {
                    url: url.clone(),
                    transport: connector.connect(url, url),
                    health: Mutex::new(RouteHealth::new(50.0, false)),
                })
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                connector,
                config,
                table: RwLock::new(Table { epoch: None, routes }),
                stats: Mutex::new(TransportStats::default()),
                served: Arc::default(),
                filters: filters::Filters::default(),
                heads: Arc::default(),
                receipts: Arc::default(),
                polls: tokio::sync::watch::channel(0).0,
                ring: Arc::default(),
                round: tokio::sync::watch::channel(Round::default()).0,
                sealed_headers: Arc::default(),
                poller: Mutex::new(None),
                judged: Mutex::new(None),
            }),
        }
    }

    /// Switches to the registry's route set if it is newer than the current one (a lower or
    /// equal epoch is ignored: the transport never goes back), or whatever its epoch when the
    /// set is flagged [`after_reorg`](RouteSet::after_reorg) (see [`Self::apply_canonical`]).
    /// Routes that stay keep their health; new ones are added; removed ones drain (in-flight
    /// requests finish, new ones do not go there). An empty set is ignored (fail static: keep
    /// what works). Returns true when the set was applied.
    pub fn apply(&self, set: &RouteSet) -> bool {
        self.replace(set, set.after_reorg)
    }

    /// Switches to `set` whatever its epoch: for the registry's canonical set after a
    /// reorganisation of the registry chain removed the change that raised the epoch (the
    /// canonical set may carry a lower epoch, or the same epoch with other routes). Routes are
    /// kept, added and drained as in [`Self::apply`]. An empty set leaves the routes in use
    /// (fail static) but still takes its epoch, so that the registry's next set is applied.
    /// [`Self::apply`] (and so [`Self::follow`]) does the same for a set flagged
    /// [`RouteSet::after_reorg`], as a [`RouteSetWatcher`](crate::watch::RouteSetWatcher)
    /// yields it after a reorganisation.
    pub fn apply_canonical(&self, set: &RouteSet) -> bool {
        self.replace(set, true)
    }

    fn replace(&self, set: &RouteSet, canonical: bool) -> bool {
        let mut table = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
        if !canonical && table.epoch.is_some_and(|epoch| set.epoch <= epoch) {
            return false;
        }
        // A canonical set moves the epoch even when its routes cannot be used.
        let rebase = |table: &mut Table<C::Transport>| {
            if canonical && table.epoch.is_some() {
                table.epoch = Some(set.epoch);
            }
        };
        if set.routes.is_empty() {
            // Epoch 0 with no routes is a registry whose keepers have not filled the set yet.
            if set.epoch == 0 {
                debug!(target: "lifeline::transport", "registry has no authorised routes yet");
            } else {
                warn!(target: "lifeline::transport", epoch = set.epoch, "empty route set ignored");
            }
            rebase(&mut table);
            return false;
        }
        let mut next = Vec::with_capacity(set.routes.len());
        for route in &set.routes {
            // A template is resolved from the local secrets, or the route is not used (and
            // never requested); see [`crate::secrets`].
            let target = match self.shared.config.secrets.resolve(&route.url) {
                Ok(target) => target,
                Err(error) => {
                    warn!(target: "lifeline::transport", %error, "route skipped: its URL cannot be used");
                    continue;
                }
            };
            // The route is known by its URL as registered (a template shows no secret).
            let url = if crate::secrets::is_template(&route.url) {
                match route.url.parse::<Url>() {
                    Ok(url) => url,
                    Err(_) => continue,
                }
            } else {
                target.clone()
            };
            let existing = table.routes.iter().find(|r| r.url == url).cloned();
            let kept = existing.unwrap_or_else(|| {
                Arc::new(Route {
                    transport: self.shared.connector.connect(&url, &target),
                    health: Mutex::new(RouteHealth::new(
                        f64::from(route.latency_ms),
                        route.degraded,
                    )),
                    url,
                })
            });
            kept.health.lock().unwrap_or_else(|p| p.into_inner()).degraded = route.degraded;
            next.push(kept);
        }
        if next.is_empty() {
            rebase(&mut table);
            return false;
        }
        if canonical && table.epoch.is_some_and(|epoch| set.epoch <= epoch) {
            tracing::info!(target: "lifeline::transport", epoch = set.epoch, previous = ?table.epoch, routes = next.len(), "canonical route set applied after a registry reorganisation");
        } else {
            debug!(target: "lifeline::transport", epoch = set.epoch, routes = next.len(), "route set applied");
        }
        table.epoch = Some(set.epoch);
        table.routes = next;
        drop(table);
        // Start judging heads as soon as there are routes (when called inside a runtime).
        if tokio::runtime::Handle::try_current().is_ok() {
            self.ensure_poller();
        }
        true
    }

    /// Follows `service` in the registry behind `client` and applies every new route set, in a
    /// background task that lives as long as the returned [`Follower`]. The watcher reads each
    /// set at a block and detects reorganisations of the registry chain (see
    /// [`crate::watch`]): the canonical set it then yields is applied even with a lower or
    /// equal epoch, so no request goes to a route that only a reorganised-away change
    /// authorised.
    pub fn follow<P>(
        &self,
        client: RegistryClient<P>,
        service: alloy::primitives::B256,
        config: WatchConfig,
    ) -> Follower
    where
        P: alloy::providers::Provider + Clone + Send + Sync + 'static,
    {
        let transport = self.clone();
        let mut watcher = client.watch(service, config);
        Follower(tokio::spawn(async move {
            loop {
                let set = watcher.next().await;
                transport.apply(&set);
            }
        }))
    }

    /// The epoch of the route set in use (`None` on the bootstrap list).
    pub fn epoch(&self) -> Option<u32> {
        self.shared.table.read().unwrap_or_else(|p| p.into_inner()).epoch
    }

    /// Health of every route, best first.
    pub fn routes(&self) -> Vec<RouteReport> {
        let now = Instant::now();
        let ranked = self.ranked(now);
        let judgement = self.judge(&ranked, now);
        ranked
            .into_iter()
            .map(|route| {
                let health = route.health.lock().unwrap_or_else(|p| p.into_inner());
                RouteReport {
                    url: route.url.clone(),
                    latency_ms: health.latency_ms(),
                    error_rate: health.error_rate(),
                    breaker_open: health.is_open(now),
                    head: judgement.as_ref().and_then(|j| j.heads.get(&route.url).copied()),
                    skip: judgement.as_ref().and_then(|j| j.skipped.get(&route.url).cloned()),
                }
            })
            .collect()
    }

    /// The reference head: the highest block a strict majority of the routes with recent head
    /// data reached (`None` before any head data, or with head-aware routing off).
    pub fn reference_head(&self) -> Option<u64> {
        let now = Instant::now();
        self.judge(&self.ranked(now), now).and_then(|j| j.reference)
    }

    /// The freshness verdict on `routes` (`None` when head-aware routing is off).
    fn judge(&self, routes: &[Arc<Route<C::Transport>>], now: Instant) -> Option<Arc<Judgement>> {
        let config = &self.shared.config.freshness;
        if !config.enabled {
            return None;
        }
        let served = self.shared.served.get();
        let heads = self.shared.heads.lock().unwrap_or_else(|p| p.into_inner());
        let generation = heads.generation();
        // The verdict is reused while nothing changed (same heads, served head and routes) and
        // it is younger than 50 ms (stalls are measured in time).
        let mut cache = self.shared.judged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.as_ref()
            && cached.generation == generation
            && cached.served == served
            && now.duration_since(cached.at) < JUDGEMENT_REUSE
            && cached.urls.len() == routes.len()
            && routes.iter().all(|r| cached.urls.contains(&r.url))
        {
            return Some(cached.judgement.clone());
        }
        let urls: Vec<Url> = routes.iter().map(|r| r.url.clone()).collect();
        let judgement = Arc::new(heads.judge(&urls, config, served, now));
        *cache = Some(Judged { generation, served, at: now, urls, judgement: judgement.clone() });
        Some(judgement)
    }

    /// The last freshness verdict, as cached (for checking answers without judging again).
    fn cached_judgement(&self) -> Option<Arc<Judgement>> {
        self.shared
            .judged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|j| j.judgement.clone())
    }

    /// Starts the head poller (once), in the caller's runtime.
    fn ensure_poller(&self) {
        if !self.shared.config.freshness.enabled {
            return;
        }
        let mut poller = self.shared.poller.lock().unwrap_or_else(|p| p.into_inner());
        if poller.is_none() {
            let weak = Arc::downgrade(&self.shared);
            *poller = Some(tokio::spawn(poll_heads(weak)));
        }
    }

    /// Waits (at most a second) for the first round of head polls, so the very first reads are
    /// judged too (a route whose poll is slower than that is left out until it answers).
    async fn first_poll(&self) {
        let mut polls = self.shared.polls.subscribe();
        let timeout = self.shared.config.attempt_timeout.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(timeout, polls.wait_for(|n| *n > 0)).await;
    }

    /// The routes a Single read may use, in rank order: fresh ones for the head, ones that have
    /// the block for a specific block; an error naming every route and why when none may.
    async fn eligible(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: &RequestPacket,
    ) -> Result<Vec<Arc<Route<C::Transport>>>, TransportError> {
        let config = &self.shared.config.freshness;
        if !config.enabled {
            return Ok(routes);
        }
        let RequestPacket::Single(single) = request else { return Ok(routes) };
        let transaction = is_transaction_submission(request);
        let need = if transaction {
            BlockNeed::Any
        } else {
            freshness::block_need(single.method(), single.params())
        };
        if *self.shared.polls.borrow() == 0 {
            self.first_poll().await;
        }
        let mut judgement = self.judge(&routes, Instant::now());
        if let (BlockNeed::AtLeast(n), Some(j)) = (need, &judgement)
            && !routes.iter().any(|r| j.has_block(&r.url, n))
            && routes.iter().any(|r| j.is_fresh(&r.url))
        {
            // A block just past what the polls have seen (the caller learnt of it from an
            // answer): poll now and judge again.
            self.corroborate(None, false).await;
            judgement = self.judge(&routes, Instant::now());
        }
        let Some(judgement) = judgement else { return Ok(routes) };
        // A head served from a route since found to be ahead of the majority was a lie: the
        // caller is brought back to what the majority has (logged; the only way back).
        if let (Some(served), Some(ceiling)) = (self.shared.served.get(), judgement.ceiling)
            && served > ceiling + config.max_lag_blocks
            && judgement.skipped.values().any(|s| matches!(s, Skip::Ahead(_)))
        {
            warn!(target: "lifeline::transport", served, ceiling, "a head served earlier came from a route ahead of the majority; trusting the majority");
            self.shared.served.reset(ceiling);
        }
        if judgement.reference.is_none() {
            // No route has recent head data (start-up, or every route silent): nothing to judge
            // freshness by, so the routes are tried and their failures, if any, named.
            return Ok(routes
                .into_iter()
                .filter(|r| !matches!(judgement.skipped.get(&r.url), Some(Skip::WrongChain(_))))
                .collect());
        }
        let allowed = |route: &Arc<Route<C::Transport>>| match need {
            // Anything may go to a route on the right chain.
            BlockNeed::Any => {
                !matches!(judgement.skipped.get(&route.url), Some(Skip::WrongChain(_)))
            }
            BlockNeed::Head => judgement.is_fresh(&route.url),
            BlockNeed::AtLeast(n) => judgement.has_block(&route.url, n),
        };
        let (mut ok, skipped): (Vec<_>, Vec<_>) = routes.into_iter().partition(|r| allowed(r));
        if !ok.is_empty() {
            if need == BlockNeed::Head {
                // Routes at the head first (in rank order), those a block or two behind after.
                ok.sort_by_key(|r| !judgement.is_synced(&r.url));
            }
            return Ok(ok);
        }
        if config.allow_stale {
            return Ok(skipped);
        }
        self.count(|s| s.stale_refusals += 1);
        let reasons = skipped
            .iter()
            .map(|r| {
                let why = judgement.skipped.get(&r.url).map_or_else(
                    || "does not have the block asked for".to_string(),
                    ToString::to_string,
                );
                (r.url.clone(), why)
            })
            .collect();
        Err(TransportErrorKind::custom(AllRoutesStale { reference: judgement.reference, reasons }))
    }

    /// Counters since creation.
    pub fn stats(&self) -> TransportStats {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest block number this transport has returned for a head query (`eth_blockNumber`,
    /// or the `number` of `eth_getBlockByNumber("latest" | "pending")`, a pending block counting
    /// as its parent); `None` before the first. Head answers below it are never returned: the
    /// route that gave one is behind, and the next route is tried.
    pub fn served_head(&self) -> Option<u64> {
        self.shared.served.get()
    }

    /// The route with this URL in the current set, if it is still there.
    fn route_by_url(&self, url: &Url) -> Option<Arc<Route<C::Transport>>> {
        let table = self.shared.table.read().unwrap_or_else(|p| p.into_inner());
        table.routes.iter().find(|route| route.url == *url).cloned()
    }

    fn ranked(&self, now: Instant) -> Vec<Arc<Route<C::Transport>>> {
        let routes = self.shared.table.read().unwrap_or_else(|p| p.into_inner()).routes.clone();
        let guards: Vec<_> =
            routes.iter().map(|r| r.health.lock().unwrap_or_else(|p| p.into_inner())).collect();
        let refs: Vec<&RouteHealth> = guards.iter().map(|g| &**g).collect();
        let order = rank(&refs, now);
        drop(guards);
        order.into_iter().map(|i| routes[i].clone()).collect()
    }

    async fn dispatch(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        self.count(|s| s.requests += 1);
        let result = match request {
            RequestPacket::Single(single) if filters::is_filter_method(single.method()) => {
                self.answer_filter(single).await
            }
            request => self.route(request).await.map(|(_, packet)| packet),
        };
        if result.is_err() {
            self.count(|s| s.failures += 1);
        }
        result
    }

    /// Sends a request to the routes (every route for a transaction, otherwise one at a time);
    /// returns the answer and the route that gave it.
    async fn route(&self, request: RequestPacket) -> Result<(Url, ResponsePacket), TransportError> {
        self.ensure_poller();
        let routes = self.ranked(Instant::now());
        if routes.is_empty() {
            return Err(TransportErrorKind::custom(AllRoutesFailed { attempts: Vec::new() }));
        }
        let routes = self.eligible(routes, &request).await?;

        if is_transaction_submission(&request) {
            return self.broadcast(routes, request).await;
        }
        if pin::reads_latest_state(&request)
            && let Some(block) = self.pin_block().await
            && let Some(pinned) = pin::pin(&request, block)
        {
            match self.send_read(routes.clone(), pinned).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    debug!(target: "lifeline::transport", error = %e, block = block.number(), "no route answered the pinned read; asking unpinned");
                }
            }
        }
        if let Some(consensus) = self.consensus_for(&request) {
            return self.consensus(routes, request, consensus).await;
        }
        let tried: Vec<Url> = routes.iter().map(|r| r.url.clone()).collect();
        let first = self.one_at_a_time(routes, request.clone()).await;
        if first.is_ok() || !self.shared.config.freshness.enabled {
            return first;
        }
        // Every route judged fresh failed; that failure is news (they are now silent), so the
        // routes left out are judged again and, if one now qualifies, tried.
        let rest: Vec<_> =
            self.ranked(Instant::now()).into_iter().filter(|r| !tried.contains(&r.url)).collect();
        if rest.is_empty() {
            return first;
        }
        match self.eligible(rest, &request).await {
            Ok(again) if !again.is_empty() => self.one_at_a_time(again, request).await,
            _ => first,
        }
    }

    /// A read (already pinned or not) through the consensus if its method is named, else one
    /// route at a time.
    async fn send_read(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: RequestPacket,
    ) -> Result<(Url, ResponsePacket), TransportError> {
        match self.consensus_for(&request) {
            Some(consensus) => self.consensus(routes, request, consensus).await,
            None => self.one_at_a_time(routes, request).await,
        }
    }

    /// The consensus settings, if `request` is a Single of a method they name.
    fn consensus_for(&self, request: &RequestPacket) -> Option<ConsensusConfig> {
        let consensus = self.shared.config.consensus.as_ref()?;
        let RequestPacket::Single(single) = request else { return None };
        consensus.methods.iter().any(|m| m == single.method()).then(|| consensus.clone())
    }

    /// The block a state read of `latest` is pinned to (see [`pin`]): the effective head (and at
    /// least the last receipt's block), by the majority's hash when one is known there. When
    /// the wanted height is above every height the majority agrees on, one head-poll round is
    /// run first (bounded) so the hash can be known.
    async fn pin_block(&self) -> Option<PinnedBlock> {
        // A receipt's block counts up to what the chain can have reached (a liar's receipt far
        // ahead would otherwise make every pinned read miss).
        let want = |j: &Judgement| {
            let floor = self.shared.receipts.get().unwrap_or(0);
            let floor = j.head_limit(Instant::now()).map_or(floor, |limit| floor.min(limit));
            j.effective.map(|e| e.max(floor))
        };
        let now = Instant::now();
        let mut judgement = self.judge(&self.ranked(now), now)?;
        let mut target = want(&judgement)?;
        if judgement.agreed_top().is_none_or(|(top, _)| top < target) {
            self.corroborate(None, false).await;
            let now = Instant::now();
            judgement = self.judge(&self.ranked(now), now)?;
            target = want(&judgement)?;
        }
        Some(match judgement.agreed_top() {
            Some((top, hash)) if top >= target => PinnedBlock::Agreed(top, hash),
            _ => PinnedBlock::Number(target),
        })
    }

    /// Waits until a head-poll round has heard from a strict majority of the routes (and from
    /// `route`, if named): a round that starts after this call when `after_now` (one already
    /// under way may have asked the routes before the answer being judged), else the one under
    /// way if any. Rings for a new round when it needs one. At most 500 ms, or the attempt
    /// timeout (a round waits for no route longer than that).
    async fn corroborate(&self, route: Option<&Url>, after_now: bool) {
        let mut rounds = self.shared.round.subscribe();
        let (latest, under_way) = {
            let round = rounds.borrow_and_update();
            (round.number, round.answered.len() < round.routes)
        };
        let wanted = if under_way && !after_now { latest } else { latest + 1 };
        if wanted > latest {
            self.shared.ring.notify_one();
        }
        let heard = |round: &Round| {
            round.number > wanted
                || (round.number == wanted
                    && 2 * round.answered.len() > round.routes
                    && route.is_none_or(|url| round.answered.contains(url)))
        };
        let bound = self.shared.config.attempt_timeout.min(Duration::from_millis(500));
        let _ = tokio::time::timeout(bound, rounds.wait_for(heard)).await;
    }

    /// Asks up to `ask` routes at once; the first result `agree` of them return is the answer.
    async fn consensus(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: RequestPacket,
        config: ConsensusConfig,
    ) -> Result<(Url, ResponsePacket), TransportError> {
        let asked: Vec<_> = routes.into_iter().take(config.ask.max(1)).collect();
        let agree = config.agree.clamp(1, asked.len().max(1));
        let mut in_flight: FuturesUnordered<_> =
            asked.iter().map(|route| self.attempt(route.clone(), request.clone(), None)).collect();
        let mut answers: Vec<(Url, String, ResponsePacket)> = Vec::new();
        let mut failed: Vec<(Url, String)> = Vec::new();
        while let Some((url, outcome)) = in_flight.next().await {
            match outcome {
                Outcome::Done(packet) => {
                    let key = match &packet {
                        ResponsePacket::Single(r) => match &r.payload {
                            alloy::rpc::json_rpc::ResponsePayload::Success(raw) => {
                                raw.get().to_string()
                            }
                            alloy::rpc::json_rpc::ResponsePayload::Failure(e) => {
                                format!("error {} {}", e.code, e.message)
                            }
                        },
                        ResponsePacket::Batch(_) => String::new(),
                    };
                    answers.push((url, key.clone(), packet));
                    let same = answers.iter().filter(|(_, k, _)| *k == key).count();
                    if same >= agree {
                        // The others (answered or not) dissent only if they answered otherwise.
                        for (other, k, _) in &answers {
                            if *k != key {
                                self.dissent(other, "answered differently");
                            }
                        }
                        let (url, _, packet) =
                            answers.into_iter().find(|(_, k, _)| *k == key).expect("present");
                        return Ok((url, packet));
                    }
                }
                Outcome::Fatal(err) => return Err(err),
                Outcome::Retry(reason) => failed.push((url, reason)),
            }
        }
        for (url, key, _) in &answers {
            self.dissent(
                url,
                &format!("no {agree} routes agreed (this one: {})", &key[..key.len().min(80)]),
            );
        }
        failed.extend(
            answers
                .into_iter()
                .map(|(url, _, _)| (url, format!("no {agree} of {} routes agreed", asked.len()))),
        );
        Err(TransportErrorKind::custom(AllRoutesFailed { attempts: failed }))
    }

    fn dissent(&self, url: &Url, why: &str) {
        warn!(target: "lifeline::transport", %url, why, "route dissented from the consensus answer");
        self.count(|s| s.dissents += 1);
        if let Some(route) = self.route_by_url(url) {
            route
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record_failure(Instant::now(), &self.shared.config.breaker);
        }
    }

    /// Tries routes in rank order (hedging reads), returning the first real answer and its route.
    /// A head query answered below the head already served is not an answer: the route is
    /// behind, the next one is tried.
    async fn one_at_a_time(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: RequestPacket,
    ) -> Result<(Url, ResponsePacket), TransportError> {
        let probe = HeadProbe::of(&request);
        let mut attempts = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut pending = routes.into_iter();
        let mut started = 0usize;
        let hedge_after = self.shared.config.hedge_after;

        if let Some(route) = pending.next() {
            in_flight.push(self.attempt(route, request.clone(), probe));
            started += 1;
        }
        loop {
            let can_hedge = hedge_after.is_some() && pending.len() > 0;
            let hedge = async {
                match hedge_after {
                    Some(delay) if can_hedge => tokio::time::sleep(delay).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                finished = in_flight.next() => {
                    let Some((url, outcome)) = finished else { break };
                    match outcome {
                        Outcome::Done(packet) => {
                            if started > 1 || !attempts.is_empty() {
                                self.count(|s| s.failovers += 1);
                            }
                            return Ok((url, packet));
                        }
                        Outcome::Fatal(err) => return Err(err),
                        Outcome::Retry(reason) => {
                            debug!(target: "lifeline::transport", %url, %reason, "route failed, trying the next");
                            attempts.push((url, reason));
                            if let Some(route) = pending.next() {
                                in_flight.push(self.attempt(route, request.clone(), probe));
                                started += 1;
                            } else if in_flight.is_empty() {
                                break;
                            }
                        }
                    }
                }
                () = hedge => {
                    if let Some(route) = pending.next() {
                        debug!(target: "lifeline::transport", url = %route.url, "hedging a slow read");
                        self.count(|s| s.hedges += 1);
                        in_flight.push(self.attempt(route, request.clone(), probe));
                        started += 1;
                    }
                }
            }
        }
        Err(TransportErrorKind::custom(AllRoutesFailed { attempts }))
    }

    /// Sends a transaction through every route at once; the first acceptance answers. The other
    /// sends run to completion in the background so every route gets the transaction.
    async fn broadcast(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: RequestPacket,
    ) -> Result<(Url, ResponsePacket), TransportError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(routes.len());
        let total = routes.len();
        for route in routes {
            let attempt = self.attempt(route, request.clone(), None);
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(attempt.await).await;
            });
        }
        drop(tx);
        let mut attempts = Vec::new();
        let mut rejections = Vec::new();
        while let Some((url, outcome)) = rx.recv().await {
            match outcome {
                Outcome::Done(packet) if packet.is_success() => return Ok((url, packet)),
                // "already known" / "nonce too low" from one route while another accepted the
                // same bytes is expected: wait for the others before answering with an error.
                Outcome::Done(packet) => rejections.push((url, packet)),
                Outcome::Fatal(err) => return Err(err),
                Outcome::Retry(reason) => attempts.push((url, reason)),
            }
        }
        debug!(target: "lifeline::transport", total, rejected = rejections.len(), "no route accepted the transaction");
        match rejections.into_iter().next() {
            Some(answer) => Ok(answer),
            None => Err(TransportErrorKind::custom(AllRoutesFailed { attempts })),
        }
    }

    /// One request to one route, bounded in time, with its health recorded and its answer
    /// inspected (see [`Self::inspect`]): an answer behind the head already served becomes a
    /// retry recorded as lag (a lagging node is not down); a refused answer becomes a retry
    /// recorded as a failure.
    fn attempt(
        &self,
        route: Arc<Route<C::Transport>>,
        request: RequestPacket,
        probe: Option<HeadProbe>,
    ) -> impl Future<Output = (Url, Outcome)> + Send + 'static {
        let timeout = self.shared.config.attempt_timeout;
        let breaker = self.shared.config.breaker;
        let this = self.clone();
        let method = match &request {
            RequestPacket::Single(single) => Some(single.meta().method.clone()),
            RequestPacket::Batch(_) => None,
        };
        let mut transport = route.transport.clone();
        async move {
            let started = Instant::now();
            let mut outcome = match tokio::time::timeout(timeout, transport.call(request)).await {
                Ok(result) => classify(result),
                Err(_) => Outcome::Retry(format!("no answer within {timeout:?}")),
            };
            let mut behind = false;
            if let Outcome::Done(packet) = &outcome {
                match this.inspect(&route.url, method.as_deref(), probe, packet).await {
                    Inspection::Serve => {}
                    Inspection::Behind(reason) => {
                        behind = true;
                        outcome = Outcome::Retry(reason);
                    }
                    Inspection::Refuse(reason) => outcome = Outcome::Retry(reason),
                }
            }
            let heads = &this.shared.heads;
            if matches!(outcome, Outcome::Retry(_)) && !behind {
                // A route that just failed has no head to trust until its next answer.
                heads.lock().unwrap_or_else(|p| p.into_inner()).observe_silence(&route.url);
            }
            let mut health = route.health.lock().unwrap_or_else(|p| p.into_inner());
            match &outcome {
                Outcome::Retry(_) if behind => health.record_lag(),
                Outcome::Done(_) => health.record_success(started.elapsed()),
                Outcome::Retry(_) => health.record_failure(Instant::now(), &breaker),
                Outcome::Fatal(_) => {}
            }
            drop(health);
            (route.url.clone(), outcome)
        }
    }

    /// Whether an answer of `url` to `method` may be served (see [`verify`]): a block whose hash
    /// is not its header's is refused; a block or head the majority contradicts, or a head
    /// beyond what the chain can have reached, is refused unless a head-poll round run at once
    /// corroborates it; a head below the one already served is behind. A served head raises
    /// the served head, a served receipt the receipt floor of pinned reads.
    async fn inspect(
        &self,
        url: &Url,
        method: Option<&str>,
        probe: Option<HeadProbe>,
        packet: &ResponsePacket,
    ) -> Inspection {
        let judged = self.shared.config.freshness.enabled;
        let block =
            method.filter(|m| verify::answers_a_block(m)).and_then(|_| BlockAnswer::of(packet));
        if let Some(block) = block
            && block.sealed == Some(false)
            && self.shared.sealed_headers.load(Ordering::Relaxed)
        {
            return Inspection::Refuse(format!(
                "block {:#x}: its hash is not the hash of its header",
                block.number
            ));
        }
        let head = probe.and_then(|p| p.head(packet));
        if judged
            && (block.is_some() || head.is_some())
            && let Some(cached) = self.cached_judgement()
            && verify::suspect(&cached, url, block, head, Instant::now()).is_some()
        {
            // Possibly a fault that began since the last poll, possibly news: poll now and
            // judge the answer against what the routes say this moment.
            self.corroborate(Some(url), true).await;
            let now = Instant::now();
            if let Some(judgement) = self.judge(&self.ranked(now), now)
                && let Some(refusal) = verify::refuse(&judgement, url, block, head, now)
            {
                return refusal;
            }
        }
        if let Some(head) = head {
            let mut heads = self.shared.heads.lock().unwrap_or_else(|p| p.into_inner());
            let news = heads.top().is_some_and(|top| head > top);
            heads.observe_answer(url, head, Instant::now());
            drop(heads);
            if let Err(already) = self.shared.served.raise(head) {
                return Inspection::Behind(format!(
                    "behind the head already served ({head:#x} < {already:#x})"
                ));
            }
            if news && judged {
                // A block the polls have not seen: poll now, so pinned reads can name its hash.
                self.shared.ring.notify_one();
            }
        }
        if method == Some("eth_getTransactionReceipt")
            && let Some(number) = verify::receipt_block(packet)
        {
            let _ = self.shared.receipts.raise(number);
        }
        Inspection::Serve
    }

    fn count(&self, update: impl FnOnce(&mut TransportStats)) {
        update(&mut self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl<C: Connector> Service<RequestPacket> for FailoverTransport<C> {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().dispatch(request))
    }
}

/// A head-poll round: its number (rounds started so far), how many routes it asks, and which
/// of them have answered (or failed to) so far.
#[derive(Debug, Default)]
struct Round {
    number: u64,
    routes: usize,
    answered: Vec<Url>,
}

/// What [`FailoverTransport::inspect`] makes of an answer.
enum Inspection {
    Serve,
    /// Behind the head already served: try the next route (lag, not a failure).
    Behind(String),
    /// Not to be served: try the next route (a failure of this one).
    Refuse(String),
}

/// Keeps a [`FailoverTransport::follow`] task alive; dropping it stops following (the transport
/// keeps its last set).
#[derive(Debug)]
pub struct Follower(tokio::task::JoinHandle<()>);

impl Follower {
    /// Runs `task` until the returned follower is dropped.
    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// No route is fresh enough for a read; lists each route and why it was skipped.
#[derive(Debug, thiserror::Error)]
#[error("all authorised routes are stale{}: {}", reference.map(|r| format!(" (reference head {r})")).unwrap_or_default(), describe(reasons))]
pub struct AllRoutesStale {
    /// The reference head, if any route had recent head data.
    pub reference: Option<u64>,
    /// Each route and why it was skipped.
    pub reasons: Vec<(Url, String)>,
}

/// Polls every route's head at `poll_interval` (and its chain id until known, then every 30
/// rounds) while the transport lives.
async fn poll_heads<C: Connector>(shared: std::sync::Weak<Shared<C>>) {
    let mut round: u64 = 0;
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let interval = strong.config.freshness.poll_interval;
        // A head poll slower than a poll interval (at least 500 ms) is a silent route: rounds
        // keep their cadence whatever one route does.
        let timeout = strong.config.attempt_timeout.min(interval.max(Duration::from_millis(500)));
        let routes = strong.table.read().unwrap_or_else(|p| p.into_inner()).routes.clone();
        let heads = strong.heads.clone();
        let polls = strong.polls.clone();
        let ring = strong.ring.clone();
        let sealed = strong.sealed_headers.clone();
        let progress = strong.round.clone();
        drop(strong);
        progress.send_modify(|r| {
            r.number += 1;
            r.routes = routes.len();
            r.answered.clear();
        });
        let urls: Vec<Url> = routes.iter().map(|r| r.url.clone()).collect();
        heads.lock().unwrap_or_else(|p| p.into_inner()).retain(&urls);
        let probes = routes.into_iter().map(|route| {
            let heads = heads.clone();
            let sealed = sealed.clone();
            let progress = progress.clone();
            async move {
                let mut transport = route.transport.clone();
                // The chain id every round: a route that moves to another chain (or back) is
                // judged by it at the next round, not 30 s later.
                {
                    let ask = single("eth_chainId", serde_json::json!([]));
                    if let Ok(Ok(packet)) = tokio::time::timeout(timeout, transport.call(ask)).await
                        && let Some(id) = result_as::<alloy::primitives::U64>(&packet)
                    {
                        heads
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .observe_chain(&route.url, id.to::<u64>());
                    }
                }
                let ask = single("eth_getBlockByNumber", serde_json::json!(["latest", false]));
                let sent = Instant::now();
                let answer = tokio::time::timeout(timeout, transport.call(ask)).await;
                let block = match &answer {
                    Ok(Ok(packet)) => BlockAnswer::of(packet),
                    _ => None,
                };
                if block.is_some_and(|b| b.sealed == Some(true)) {
                    sealed.store(true, Ordering::Relaxed);
                }
                match block {
                    Some(block) => heads.lock().unwrap_or_else(|p| p.into_inner()).observe(
                        &route.url,
                        block.number,
                        Some(block.hash),
                        sent,
                        Instant::now(),
                    ),
                    None => {
                        heads.lock().unwrap_or_else(|p| p.into_inner()).observe_silence(&route.url)
                    }
                }
                progress.send_modify(|r| r.answered.push(route.url.clone()));
            }
        });
        futures_util::future::join_all(probes).await;
        round += 1;
        polls.send_replace(round);
        // The next round after `interval`, or sooner when rung (an answer showed a head the
        // polls have not seen, or looked suspect), but at most one round per 25 ms.
        let gap = Duration::from_millis(25).min(interval);
        tokio::time::sleep(gap).await;
        let _ = tokio::time::timeout(interval.saturating_sub(gap), ring.notified()).await;
    }
}

fn single(method: &'static str, params: serde_json::Value) -> RequestPacket {
    let request =
        alloy::rpc::json_rpc::Request::new(method, alloy::rpc::json_rpc::Id::Number(0), params);
    match request.serialize() {
        Ok(serialized) => RequestPacket::Single(serialized),
        // Serialising a JSON value cannot fail; an empty batch is answered with an error.
        Err(_) => RequestPacket::Batch(Vec::new()),
    }
}

fn result_as<T: serde::de::DeserializeOwned>(packet: &ResponsePacket) -> Option<T> {
    let ResponsePacket::Single(response) = packet else { return None };
    response.payload.try_success_as::<T>()?.ok()
}

/// Every route failed; lists each route tried and why.
#[derive(Debug, thiserror::Error)]
#[error("all {} routes failed: {}", attempts.len(), describe(attempts))]
pub struct AllRoutesFailed {
    /// Each route tried, in order, with the reason it failed.
    pub attempts: Vec<(Url, String)>,
}

fn describe(attempts: &[(Url, String)]) -> String {
    if attempts.is_empty() {
        return "no route is authorised and no bootstrap route is configured".into();
    }
    attempts.iter().map(|(url, reason)| format!("{url} ({reason})")).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use alloy::{
        primitives::{Address, B256, U256},
        providers::{Provider, ProviderBuilder},
        rpc::{
            client::RpcClient,
            json_rpc::{ErrorPayload, Id, Request, Response, RpcSend},
        },
        transports::mock::{Asserter, MockTransport},
    };
    use serde_json::{Value, json};

    use super::*;
    use crate::client::Route as RegistryRoute;

    /// Every request the mock routes received: route, method, params (JSON text).
    type Calls = Arc<Mutex<Vec<(Url, String, String)>>>;

    /// Routes backed by alloy's mock transport, one `Asserter` per URL, recording each request.
    #[derive(Default)]
    struct MockConnector(HashMap<Url, Asserter>, Calls);

    impl Connector for MockConnector {
        type Transport = Recorded;

        fn connect(&self, url: &Url, _target: &Url) -> Recorded {
            let asserter = self.0.get(url).cloned().unwrap_or_default();
            Recorded {
                url: url.clone(),
                inner: MockTransport::new(asserter),
                calls: self.1.clone(),
            }
        }
    }

    /// alloy's mock transport, recording what it is asked.
    #[derive(Clone)]
    struct Recorded {
        url: Url,
        inner: MockTransport,
        calls: Calls,
    }

    impl Service<RequestPacket> for Recorded {
        type Response = ResponsePacket;
        type Error = TransportError;
        type Future = TransportFut<'static>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: RequestPacket) -> Self::Future {
            let requests: Vec<_> = match &request {
                RequestPacket::Single(one) => vec![one],
                RequestPacket::Batch(many) => many.iter().collect(),
            };
            let mut calls = self.calls.lock().expect("not poisoned");
            for one in requests {
                let params = one.params().map(|p| p.get().to_string()).unwrap_or_default();
                calls.push((self.url.clone(), one.method().to_string(), params));
            }
            drop(calls);
            self.inner.call(request)
        }
    }

    fn url(n: u16) -> Url {
        format!("http://127.0.0.1:{n}").parse().expect("valid")
    }

    fn set(epoch: u32, ports: &[u16]) -> RouteSet {
        RouteSet {
            epoch,
            last_attested: 0,
            stale: false,
            routes: ports
                .iter()
                .map(|&p| RegistryRoute {
                    id: p,
                    url: url(p).to_string(),
                    region: "eu".into(),
                    provider: "p".into(),
                    latency_ms: u32::from(p),
                    degraded: false,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn transport(asserters: &[(u16, Asserter)]) -> FailoverTransport<MockConnector> {
        recorded(asserters).0
    }

    fn recorded(asserters: &[(u16, Asserter)]) -> (FailoverTransport<MockConnector>, Calls) {
        let calls = Calls::default();
        let connector = MockConnector(
            asserters.iter().map(|(p, a)| (url(*p), a.clone())).collect(),
            calls.clone(),
        );
        // Head-aware routing polls every route; these mocks script each answer, so it is off here
        // (freshness.rs tests the judgement, tests/it/transport.rs the wiring against anvil).
        let config = FailoverConfig {
            hedge_after: None,
            freshness: FreshnessConfig { enabled: false, ..Default::default() },
            ..Default::default()
        };
        (FailoverTransport::with_connector(connector, config), calls)
    }

    /// One JSON-RPC request with id `id`, straight through the transport.
    async fn rpc(
        t: &FailoverTransport<MockConnector>,
        id: u64,
        method: &'static str,
        params: impl RpcSend,
    ) -> Response {
        let request = Request::new(method, Id::Number(id), params).serialize().expect("serializes");
        match t.clone().call(RequestPacket::Single(request)).await.expect("an answer") {
            ResponsePacket::Single(response) => {
                assert_eq!(response.id, Id::Number(id), "the caller's id is kept");
                response
            }
            ResponsePacket::Batch(_) => panic!("a batch answer to a single request"),
        }
    }

    fn result<T: serde::de::DeserializeOwned>(response: &Response) -> T {
        match response.payload.try_success_as::<T>() {
            Some(parsed) => parsed.expect("readable result"),
            None => panic!("an error instead of a result: {:?}", response.payload),
        }
    }

    fn error(response: &Response) -> &ErrorPayload {
        match &response.payload {
            alloy::rpc::json_rpc::ResponsePayload::Failure(error) => error,
            success => panic!("a result instead of an error: {success:?}"),
        }
    }

    /// Requests of `method` the routes received: (route, params as JSON).
    fn sent(calls: &Calls, method: &str) -> Vec<(Url, Value)> {
        let calls = calls.lock().expect("not poisoned");
        calls
            .iter()
            .filter(|(_, m, _)| m == method)
            .map(|(url, _, params)| (url.clone(), serde_json::from_str(params).expect("json")))
            .collect()
    }

    /// Block `n` of fork `fork` (hashes differ per fork).
    fn hash(n: u64, fork: u8) -> B256 {
        let mut hash = B256::from(U256::from(n));
        hash[0] = fork;
        hash
    }

    fn block(n: u64, fork: u8, parent_fork: u8) -> Value {
        json!({
            "number": format!("{n:#x}"),
            "hash": hash(n, fork),
            "parentHash": hash(n - 1, parent_fork),
        })
    }

    fn log(n: u64) -> Value {
        json!({
            "address": Address::repeat_byte(0xaa),
            "topics": [B256::repeat_byte(0x01)],
            "data": "0x",
            "blockNumber": format!("{n:#x}"),
            "blockHash": hash(n, 0),
            "transactionHash": B256::repeat_byte(0x02),
            "transactionIndex": "0x0",
            "logIndex": "0x0",
            "removed": false,
        })
    }

    #[tokio::test]
    async fn lagging_node_error_moves_to_the_next_route() {
        let (a, b) = (Asserter::new(), Asserter::new());
        a.push_failure_msg("header not found");
        b.push_success(&"0x10");
        let t = transport(&[(1, a), (2, b)]);
        t.apply(&set(1, &[1, 2]));
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), true));
        assert_eq!(provider.get_block_number().await.expect("second route answers"), 16);
        assert_eq!(t.stats().failovers, 1);
    }

    #[tokio::test]
    async fn execution_error_is_returned_without_trying_another_route() {
        let (a, b) = (Asserter::new(), Asserter::new());
        a.push_failure(ErrorPayload { code: 3, message: "execution reverted".into(), data: None });
        b.push_success(&"0x10");
        let t = transport(&[(1, a), (2, b.clone())]);
        t.apply(&set(1, &[1, 2]));
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), true));
        let err = provider.get_block_number().await.expect_err("the revert is the answer");
        assert!(err.to_string().contains("execution reverted"), "{err}");
        assert!(!b.read_q().is_empty(), "route 2 was never asked");
        assert_eq!(t.stats().failovers, 0);
    }

    #[tokio::test]
    async fn never_goes_back_to_a_lower_epoch_and_ignores_empty_sets() {
        let t = transport(&[]);
        assert!(t.apply(&set(5, &[1, 2])));
        assert!(!t.apply(&set(4, &[3])), "older epoch ignored");
        assert!(!t.apply(&set(5, &[3])), "same epoch ignored");
        assert!(!t.apply(&set(6, &[])), "empty set ignored: fail static");
        assert_eq!(t.epoch(), Some(5));
        assert!(t.apply(&set(7, &[2, 3])));
        let urls: Vec<Url> = t.routes().into_iter().map(|r| r.url).collect();
        assert_eq!(urls.len(), 2);
        assert!(urls.contains(&url(2)) && urls.contains(&url(3)), "1 drained, 3 added");
    }

    #[tokio::test]
    async fn bootstrap_routes_serve_until_a_set_arrives() {
        let a = Asserter::new();
        a.push_success(&"0x1");
        let connector = MockConnector([(url(9), a)].into_iter().collect(), Calls::default());
        let config = FailoverConfig {
            bootstrap: vec![url(9)],
            freshness: FreshnessConfig { enabled: false, ..Default::default() },
            ..Default::default()
        };
        let t = FailoverTransport::with_connector(connector, config);
        assert_eq!(t.epoch(), None);
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t, true));
        assert_eq!(provider.get_block_number().await.expect("bootstrap answers"), 1);
    }

    #[tokio::test]
    async fn no_routes_at_all_is_a_clear_error() {
        let t = transport(&[]);
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t, true));
        let err = provider.get_block_number().await.expect_err("nothing to ask");
        assert!(err.to_string().contains("no route is authorised"), "{err}");
    }
    #[tokio::test]
    async fn block_number_never_goes_backwards_across_a_failover() {
        let (a, b, c) = (Asserter::new(), Asserter::new(), Asserter::new());
        a.push_success(&"0x10");
        b.push_success(&"0x0f");
        b.push_success(&"0x0f");
        c.push_success(&"0x11");
        let t = transport(&[(1, a), (2, b), (3, c)]);
        t.apply(&set(1, &[1, 2]));
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), true));
        assert_eq!(provider.get_block_number().await.expect("route 1"), 0x10);
        assert_eq!(t.served_head(), Some(0x10));

        // Route 1 leaves; route 2 is one block behind what the caller has already seen.
        t.apply(&set(2, &[2]));
        let err = provider.get_block_number().await.expect_err("0x0f is not returned");
        let err = err.to_string();
        assert!(err.contains("behind the head already served (0xf < 0x10)"), "{err}");
        assert!(err.contains(url(2).as_str()), "{err}");
        assert_eq!(t.served_head(), Some(0x10));

        // A route at 0x11 is ahead: returned.
        t.apply(&set(3, &[2, 3]));
        assert_eq!(provider.get_block_number().await.expect("route 3"), 0x11);
        assert_eq!(t.served_head(), Some(0x11));
        let lagging = t.routes().into_iter().find(|r| r.url == url(2)).expect("route 2");
        assert!(!lagging.breaker_open, "a lagging node is not down");
        assert!(lagging.error_rate > 0.0, "but it ranks lower");
    }

    #[tokio::test]
    async fn latest_blocks_count_as_served_heads_and_batches_pass_through() {
        let (a, b) = (Asserter::new(), Asserter::new());
        a.push_success(&json!({ "number": "0x10", "hash": hash(0x10, 0) }));
        b.push_success(&"0x0c");
        b.push_success(&"0x0c");
        let t = transport(&[(1, a), (2, b)]);
        t.apply(&set(1, &[1]));
        let latest = rpc(&t, 1, "eth_getBlockByNumber", ("latest", false)).await;
        assert_eq!(result::<Value>(&latest)["number"], "0x10");
        assert_eq!(t.served_head(), Some(0x10));

        t.apply(&set(2, &[2]));
        let request =
            Request::new("eth_blockNumber", Id::Number(2), ()).serialize().expect("serializes");
        let batch = t.clone().call(RequestPacket::Batch(vec![request])).await.expect("answered");
        let ResponsePacket::Batch(responses) = batch else { panic!("a batch answer") };
        assert_eq!(result::<String>(&responses[0]), "0x0c", "a batch is not judged");
        assert_eq!(t.served_head(), Some(0x10), "nor counted");
        let single =
            Request::new("eth_blockNumber", Id::Number(3), ()).serialize().expect("serializes");
        let err = t.clone().call(RequestPacket::Single(single)).await.expect_err("behind");
        assert!(err.to_string().contains("behind the head already served (0xc < 0x10)"), "{err}");
    }

    #[tokio::test]
    async fn log_filter_survives_a_route_switch() {
        let (a, b) = (Asserter::new(), Asserter::new());
        a.push_success(&"0x10"); // eth_newFilter: the head becomes the cursor
        b.push_success(&"0x12"); // first poll: head
        b.push_success(&block(0x12, 0, 0)); // the last block's header
        b.push_success(&vec![log(0x11), log(0x12)]); // eth_getLogs 0x11..=0x12
        b.push_success(&"0x12"); // second poll: nothing new
        b.push_success(&"0x13"); // third poll
        b.push_success(&block(0x13, 0, 0)); // parent hash check and header of the last block
        b.push_success(&Vec::<Value>::new()); // eth_getLogs 0x13..=0x13
        let (t, calls) = recorded(&[(1, a.clone()), (2, b.clone())]);
        t.apply(&set(1, &[1]));

        let criteria = json!({
            "address": Address::repeat_byte(0xaa),
            "topics": [B256::repeat_byte(0x01)],
            "fromBlock": "latest",
        });
        let id: String = result(&rpc(&t, 7, "eth_newFilter", (criteria,)).await);
        assert!(id.starts_with("0x") && id.len() == 34, "{id}");
        t.apply(&set(2, &[2])); // route 1, which saw the filter created, is gone

        let changes: Vec<Value> = result(&rpc(&t, 8, "eth_getFilterChanges", (&id,)).await);
        assert_eq!(changes, vec![log(0x11), log(0x12)], "the filter survived the switch");
        let get_logs = sent(&calls, "eth_getLogs");
        assert_eq!(get_logs.len(), 1);
        assert_eq!(get_logs[0].0, url(2));
        let asked = &get_logs[0].1[0];
        assert_eq!((&asked["fromBlock"], &asked["toBlock"]), (&json!("0x11"), &json!("0x12")));
        assert_eq!(asked["address"], json!(Address::repeat_byte(0xaa)));
        assert_eq!(asked["topics"], json!([B256::repeat_byte(0x01)]));

        let again: Vec<Value> = result(&rpc(&t, 9, "eth_getFilterChanges", (&id,)).await);
        assert!(again.is_empty(), "each log once");
        let third: Vec<Value> = result(&rpc(&t, 10, "eth_getFilterChanges", (&id,)).await);
        assert!(third.is_empty());
        let asked = &sent(&calls, "eth_getLogs")[1].1[0];
        assert_eq!((&asked["fromBlock"], &asked["toBlock"]), (&json!("0x13"), &json!("0x13")));
        assert!(a.read_q().is_empty() && b.read_q().is_empty(), "every scripted answer used");
        assert!(sent(&calls, "eth_newFilter").is_empty(), "filters never reach a route");
    }

    #[tokio::test]
    async fn log_filter_keeps_to_its_own_range_and_retries_after_a_route_error() {
        let a = Asserter::new();
        a.push_success(&"0x10"); // eth_newFilter
        a.push_success(&"0x20"); // poll 1: head
        a.push_success(&block(0x20, 0, 0)); // header of the last block covered
        a.push_failure(ErrorPayload {
            code: -32602,
            message: "query exceeds max block range".into(),
            data: None,
        });
        a.push_success(&"0x20"); // poll 2: the same blocks again
        a.push_success(&block(0x20, 0, 0));
        a.push_success(&vec![log(0x13)]);
        a.push_success(&"0x21"); // poll 3: past the filter's toBlock
        a.push_success(&block(0x21, 0, 0));
        let (t, calls) = recorded(&[(1, a.clone())]);
        t.apply(&set(1, &[1]));
        let criteria = json!({ "fromBlock": "0x12", "toBlock": "0x14" });
        let id: String = result(&rpc(&t, 1, "eth_newFilter", (criteria,)).await);

        let failed = rpc(&t, 2, "eth_getFilterChanges", (&id,)).await;
        assert_eq!(error(&failed).code, -32602, "the route's error is the answer");
        let logs: Vec<Value> = result(&rpc(&t, 3, "eth_getFilterChanges", (&id,)).await);
        assert_eq!(logs, vec![log(0x13)], "the cursor did not move on the error");
        let done: Vec<Value> = result(&rpc(&t, 4, "eth_getFilterChanges", (&id,)).await);
        assert!(done.is_empty());
        let ranges: Vec<(Value, Value)> = sent(&calls, "eth_getLogs")
            .into_iter()
            .map(|(_, p)| (p[0]["fromBlock"].clone(), p[0]["toBlock"].clone()))
            .collect();
        let clamped = (json!("0x12"), json!("0x14"));
        assert_eq!(ranges, vec![clamped.clone(), clamped], "clamped to fromBlock..=toBlock");
        assert!(a.read_q().is_empty());
    }

    #[tokio::test]
    async fn log_filter_redelivers_from_the_fork_point_after_a_reorg() {
        let a = Asserter::new();
        a.push_success(&"0x10"); // eth_newFilter
        a.push_success(&"0x12"); // poll 1
        a.push_success(&block(0x12, 0, 0));
        a.push_success(&vec![log(0x12)]);
        a.push_success(&"0x14"); // poll 2
        a.push_success(&block(0x13, 0, 0)); // extends 0x12: no reorg
        a.push_success(&block(0x14, 0, 0));
        a.push_success(&Vec::<Value>::new());
        a.push_success(&"0x15"); // poll 3: 0x15 sits on another 0x14
        a.push_success(&block(0x15, 1, 1));
        a.push_success(&block(0x12, 0, 0)); // 0x12 is still canonical: the fork is above it
        a.push_success(&block(0x15, 1, 1));
        a.push_success(&vec![log(0x14)]);
        let (t, calls) = recorded(&[(1, a.clone())]);
        t.apply(&set(1, &[1]));
        let id: String = result(&rpc(&t, 1, "eth_newFilter", (json!({}),)).await);
        for poll in 0..3 {
            let _: Vec<Value> = result(&rpc(&t, 2 + poll, "eth_getFilterChanges", (&id,)).await);
        }
        let ranges: Vec<(Value, Value)> = sent(&calls, "eth_getLogs")
            .into_iter()
            .map(|(_, p)| (p[0]["fromBlock"].clone(), p[0]["toBlock"].clone()))
            .collect();
        assert_eq!(
            ranges,
            vec![
                (json!("0x11"), json!("0x12")),
                (json!("0x13"), json!("0x14")),
                (json!("0x13"), json!("0x15")),
            ],
            "after the reorg, re-delivered from the block after the newest canonical one"
        );
        assert!(a.read_q().is_empty());
    }

    #[tokio::test]
    async fn block_filter_returns_each_hash_once_and_advances() {
        let a = Asserter::new();
        a.push_success(&"0x10"); // eth_newBlockFilter
        a.push_success(&"0x12"); // poll 1
        a.push_success(&block(0x11, 0, 0));
        a.push_success(&block(0x12, 0, 0));
        a.push_success(&"0x12"); // poll 2: nothing new
        a.push_success(&"0x13"); // poll 3
        a.push_success(&block(0x13, 0, 0));
        let t = transport(&[(1, a.clone())]);
        t.apply(&set(1, &[1]));
        // Through alloy's provider: it carries filter ids as U256.
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), true));
        let id = provider.new_block_filter().await.expect("created");
        let first: Vec<B256> = provider.get_filter_changes(id).await.expect("poll 1");
        assert_eq!(first, vec![hash(0x11, 0), hash(0x12, 0)]);
        let second: Vec<B256> = provider.get_filter_changes(id).await.expect("poll 2");
        assert!(second.is_empty(), "each hash once");
        let third: Vec<B256> = provider.get_filter_changes(id).await.expect("poll 3");
        assert_eq!(third, vec![hash(0x13, 0)]);
        assert!(a.read_q().is_empty());
    }

    #[tokio::test]
    async fn block_filter_covers_at_most_1024_blocks_per_call() {
        let a = Asserter::new();
        let head = 0x10 + 1030;
        a.push_success(&"0x10");
        a.push_success(&format!("{head:#x}"));
        for n in 0x11..0x11 + 1024 {
            a.push_success(&block(n, 0, 0));
        }
        a.push_success(&format!("{head:#x}"));
        for n in 0x11 + 1024..=head {
            a.push_success(&block(n, 0, 0));
        }
        let t = transport(&[(1, a.clone())]);
        t.apply(&set(1, &[1]));
        let id: String = result(&rpc(&t, 1, "eth_newBlockFilter", ()).await);
        let first: Vec<B256> = result(&rpc(&t, 2, "eth_getFilterChanges", (&id,)).await);
        assert_eq!(first.len(), 1024);
        assert_eq!((first[0], first[1023]), (hash(0x11, 0), hash(0x10 + 1024, 0)));
        let rest: Vec<B256> = result(&rpc(&t, 3, "eth_getFilterChanges", (&id,)).await);
        assert_eq!(rest.len(), 6, "the rest on the next call");
        assert_eq!(rest[5], hash(head, 0));
        assert!(a.read_q().is_empty());
    }

    #[tokio::test]
    async fn uninstalled_and_unknown_filters_are_not_found() {
        let a = Asserter::new();
        a.push_success(&"0x10");
        let t = transport(&[(1, a)]);
        t.apply(&set(1, &[1]));
        let id: String = result(&rpc(&t, 1, "eth_newBlockFilter", ()).await);
        assert!(result::<bool>(&rpc(&t, 2, "eth_uninstallFilter", (&id,)).await));
        assert!(!result::<bool>(&rpc(&t, 3, "eth_uninstallFilter", (&id,)).await), "gone");
        for (n, method) in [(4, "eth_getFilterChanges"), (5, "eth_getFilterLogs")] {
            for unknown in [id.as_str(), "0x1234"] {
                let response = rpc(&t, n, method, (unknown,)).await;
                let err = error(&response);
                assert_eq!((err.code, &*err.message), (-32000, "filter not found"), "{method}");
            }
        }
    }

    #[tokio::test]
    async fn pending_filter_stays_on_its_route_and_says_so_when_the_route_leaves() {
        let (a, b) = (Asserter::new(), Asserter::new());
        a.push_success(&"0xabc"); // the node's own id
        a.push_success(&vec![B256::repeat_byte(0x07)]);
        // then nothing: the next poll on route 1 fails
        let (t, calls) = recorded(&[(1, a), (2, b.clone())]);
        t.apply(&set(1, &[1, 2]));
        let id: String = result(&rpc(&t, 1, "eth_newPendingTransactionFilter", ()).await);
        assert_ne!(id, "0xabc", "our own id, not the node's");

        let changes: Vec<B256> = result(&rpc(&t, 2, "eth_getFilterChanges", (&id,)).await);
        assert_eq!(changes, vec![B256::repeat_byte(0x07)]);
        assert_eq!(sent(&calls, "eth_getFilterChanges"), vec![(url(1), json!(["0xabc"]))]);

        let failed = rpc(&t, 3, "eth_getFilterChanges", (&id,)).await;
        let message = &error(&failed).message;
        assert!(
            message.contains(&format!("pending-transaction filter {id}: its route")),
            "{message}"
        );
        assert!(message.contains("failed") && message.contains("create a new filter"), "{message}");

        t.apply(&set(2, &[2]));
        let gone = rpc(&t, 4, "eth_getFilterChanges", (&id,)).await;
        let expected = format!(
            "pending-transaction filter {id}: its route {} left the route set; create a new filter",
            url(1)
        );
        assert_eq!(error(&gone).message, expected);
        assert_eq!(error(&gone).code, -32000);
        assert!(calls.lock().expect("not poisoned").iter().all(|(u, ..)| *u == url(1)));
        assert!(b.read_q().is_empty(), "route 2 never asked");
    }
}
