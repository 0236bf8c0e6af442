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
//!  request --> rank routes (EWMA latency x error rate, breaker, registry `degraded`)
//!          --> route 1 --(connection error, timeout, HTTP 5xx/429, node behind)--> route 2 --> ...
//!          |     '-- no answer after `hedge_after` (reads) --> route 2 in parallel; first answer wins
//!          '-- eth_sendRawTransaction --> every route at once (same hash: one inclusion)
//!  JSON-RPC execution errors (reverts) are answers: returned, never retried.
//!  All routes failed --> one error naming every route tried and why.
//! ```
//!
//! Fail static: the transport keeps the last route set it was given; if it was never given one,
//! it uses the configured bootstrap list.

mod classify;
pub mod health;

use std::{
    sync::{Arc, Mutex, RwLock},
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
    health::{BreakerConfig, RouteHealth, rank},
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

    /// A transport for `url`.
    fn connect(&self, url: &Url) -> Self::Transport;
}

/// alloy's reqwest HTTP transport, one connection pool shared by every route.
#[derive(Debug, Clone, Default)]
pub struct HttpConnector {
    client: alloy::transports::http::reqwest::Client,
}

impl Connector for HttpConnector {
    type Transport = Http<alloy::transports::http::reqwest::Client>;

    fn connect(&self, url: &Url) -> Self::Transport {
        Http::with_client(self.client.clone(), url.clone())
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
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            attempt_timeout: Duration::from_secs(2),
            hedge_after: Some(Duration::from_millis(250)),
            breaker: BreakerConfig::default(),
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
}

/// Counters of the transport's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Requests the caller made.
    pub requests: u64,
    /// Requests that needed more than one route.
    pub failovers: u64,
    /// Requests that failed on every route.
    pub failures: u64,
}

struct Shared<C: Connector> {
    connector: C,
    config: FailoverConfig,
    table: RwLock<Table<C::Transport>>,
    stats: Mutex<TransportStats>,
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
                    transport: connector.connect(url),
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
            }),
        }
    }

    /// Switches to the registry's route set if it is newer than the current one (a lower or
    /// equal epoch is ignored: the transport never goes back). Routes that stay keep their
    /// health; new ones are added; removed ones drain (in-flight requests finish, new ones do
    /// not go there). An empty set is ignored (fail static: keep what works).
    /// Returns true when the set was applied.
    pub fn apply(&self, set: &RouteSet) -> bool {
        let mut table = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
        if table.epoch.is_some_and(|epoch| set.epoch <= epoch) {
            return false;
        }
        if set.routes.is_empty() {
            // Epoch 0 with no routes is a registry whose keepers have not filled the set yet.
            if set.epoch == 0 {
                debug!(target: "lifeline::transport", "registry has no authorised routes yet");
            } else {
                warn!(target: "lifeline::transport", epoch = set.epoch, "empty route set ignored");
            }
            return false;
        }
        let mut next = Vec::with_capacity(set.routes.len());
        for route in &set.routes {
            let Ok(url) = route.url.parse::<Url>() else {
                warn!(target: "lifeline::transport", url = %route.url, "route with an invalid URL skipped");
                continue;
            };
            let existing = table.routes.iter().find(|r| r.url == url).cloned();
            let kept = existing.unwrap_or_else(|| {
                Arc::new(Route {
                    transport: self.shared.connector.connect(&url),
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
            return false;
        }
        debug!(target: "lifeline::transport", epoch = set.epoch, routes = next.len(), "route set applied");
        table.epoch = Some(set.epoch);
        table.routes = next;
        true
    }

    /// Follows `service` in the registry behind `client` and applies every new route set, in a
    /// background task that lives as long as the returned [`Follower`].
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
        self.ranked(now)
            .into_iter()
            .map(|route| {
                let health = route.health.lock().unwrap_or_else(|p| p.into_inner());
                RouteReport {
                    url: route.url.clone(),
                    latency_ms: health.latency_ms(),
                    error_rate: health.error_rate(),
                    breaker_open: health.is_open(now),
                }
            })
            .collect()
    }

    /// Counters since creation.
    pub fn stats(&self) -> TransportStats {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner())
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
        let routes = self.ranked(Instant::now());
        self.count(|s| s.requests += 1);
        if routes.is_empty() {
            self.count(|s| s.failures += 1);
            return Err(TransportErrorKind::custom(AllRoutesFailed { attempts: Vec::new() }));
        }
        let result = if is_transaction_submission(&request) {
            self.broadcast(routes, request).await
        } else {
            self.one_at_a_time(routes, request).await
        };
        if result.is_err() {
            self.count(|s| s.failures += 1);
        }
        result
    }

    /// Tries routes in rank order (hedging reads), returning the first real answer.
    async fn one_at_a_time(
        &self,
        routes: Vec<Arc<Route<C::Transport>>>,
        request: RequestPacket,
    ) -> Result<ResponsePacket, TransportError> {
        let mut attempts = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut pending = routes.into_iter();
        let mut started = 0usize;
        let hedge_after = self.shared.config.hedge_after;

        if let Some(route) = pending.next() {
            in_flight.push(self.attempt(route, request.clone()));
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
                            return Ok(packet);
                        }
                        Outcome::Fatal(err) => return Err(err),
                        Outcome::Retry(reason) => {
                            debug!(target: "lifeline::transport", %url, %reason, "route failed, trying the next");
                            attempts.push((url, reason));
                            if let Some(route) = pending.next() {
                                in_flight.push(self.attempt(route, request.clone()));
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
                        in_flight.push(self.attempt(route, request.clone()));
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
    ) -> Result<ResponsePacket, TransportError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(routes.len());
        let total = routes.len();
        for route in routes {
            let attempt = self.attempt(route, request.clone());
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
                Outcome::Done(packet) if packet.is_success() => return Ok(packet),
                // "already known" / "nonce too low" from one route while another accepted the
                // same bytes is expected: wait for the others before answering with an error.
                Outcome::Done(packet) => rejections.push(packet),
                Outcome::Fatal(err) => return Err(err),
                Outcome::Retry(reason) => attempts.push((url, reason)),
            }
        }
        debug!(target: "lifeline::transport", total, rejected = rejections.len(), "no route accepted the transaction");
        match rejections.into_iter().next() {
            Some(packet) => Ok(packet),
            None => Err(TransportErrorKind::custom(AllRoutesFailed { attempts })),
        }
    }

    /// One request to one route, bounded in time, with its health recorded.
    fn attempt(
        &self,
        route: Arc<Route<C::Transport>>,
        request: RequestPacket,
    ) -> impl Future<Output = (Url, Outcome)> + Send + 'static {
        let timeout = self.shared.config.attempt_timeout;
        let breaker = self.shared.config.breaker;
        let mut transport = route.transport.clone();
        async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, transport.call(request)).await {
                Ok(result) => classify(result),
                Err(_) => Outcome::Retry(format!("no answer within {timeout:?}")),
            };
            let mut health = route.health.lock().unwrap_or_else(|p| p.into_inner());
            match &outcome {
                Outcome::Done(_) => health.record_success(started.elapsed()),
                Outcome::Retry(_) => health.record_failure(Instant::now(), &breaker),
                Outcome::Fatal(_) => {}
            }
            drop(health);
            (route.url.clone(), outcome)
        }
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

/// Keeps a [`FailoverTransport::follow`] task alive; dropping it stops following (the transport
/// keeps its last set).
#[derive(Debug)]
pub struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        providers::{Provider, ProviderBuilder},
        rpc::{client::RpcClient, json_rpc::ErrorPayload},
        transports::mock::{Asserter, MockTransport},
    };

    use super::*;
    use crate::client::Route as RegistryRoute;

    /// Routes backed by alloy's mock transport, one `Asserter` per URL.
    #[derive(Default)]
    struct MockConnector(HashMap<Url, Asserter>);

    impl Connector for MockConnector {
        type Transport = MockTransport;

        fn connect(&self, url: &Url) -> MockTransport {
            MockTransport::new(self.0.get(url).cloned().unwrap_or_default())
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
        }
    }

    fn transport(asserters: &[(u16, Asserter)]) -> FailoverTransport<MockConnector> {
        let connector =
            MockConnector(asserters.iter().map(|(p, a)| (url(*p), a.clone())).collect());
        let config = FailoverConfig { hedge_after: None, ..Default::default() };
        FailoverTransport::with_connector(connector, config)
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
        let connector = MockConnector([(url(9), a)].into_iter().collect());
        let config = FailoverConfig { bootstrap: vec![url(9)], ..Default::default() };
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
}
