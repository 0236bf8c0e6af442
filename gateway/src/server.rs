//! The two listeners: JSON-RPC (`/rpc/<service>`, HTTP POST and WebSocket) and admin
//! (`/routes`, `/healthz`, `/metrics`, and the status page `/status` with `/status.json`). axum
//! routers over a connection-limited listener, with state in an `Arc`, body limits as tower
//! layers, and one shutdown signal every task watches.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Path, State, ws::WebSocketUpgrade},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tracing::warn;

use crate::{
    config::GatewayConfig,
    metrics::Metrics,
    rpc::{self, Call, Incoming, code},
    service::ServiceHandle,
};

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) config: GatewayConfig,
    pub(crate) metrics: Metrics,
    services: Vec<Arc<ServiceHandle>>,
    by_name: HashMap<String, Arc<ServiceHandle>>,
    limiter: Option<RateLimiter>,
    shutdown: watch::Receiver<bool>,
    /// Open WebSocket sessions (axum runs them detached; shutdown waits for them to close).
    pub(crate) sessions: Arc<std::sync::atomic::AtomicUsize>,
    /// The status page's collector (`None` when `status = false`).
    pub(crate) status: Option<Arc<crate::status::Tracker>>,
}

impl AppState {
    pub(crate) fn new(
        config: GatewayConfig,
        metrics: Metrics,
        services: Vec<Arc<ServiceHandle>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut by_name = HashMap::new();
        for service in &services {
            by_name.insert(service.name.clone(), service.clone());
            by_name.insert(service.id.to_string(), service.clone());
        }
        let limiter =
            (config.limits.rate_per_ip > 0).then(|| RateLimiter::new(config.limits.rate_per_ip));
        let sessions = Arc::default();
        Self { config, metrics, services, by_name, limiter, shutdown, sessions, status: None }
    }

    fn service(&self, path: &str) -> Option<Arc<ServiceHandle>> {
        let path = path.trim_end_matches('/');
        self.by_name.get(path).or_else(|| self.by_name.get(&path.to_ascii_lowercase())).cloned()
    }

    fn unknown_service(&self, path: &str) -> Response {
        let served: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let body = rpc::error(
            None,
            code::METHOD_NOT_FOUND,
            &format!("unknown service {path:?}; this gateway serves: {}", served.join(", ")),
        );
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    }

    /// The per-IP rate check: `calls` more calls from `ip` (a batch counts each member).
    pub(crate) fn rate_check_ip(&self, ip: IpAddr, calls: usize) -> Result<(), String> {
        match &self.limiter {
            Some(limiter) if !limiter.take(ip, calls) => {
                self.metrics.rate_limited.inc();
                Err(format!(
                    "rate limit: limits.rate_per_ip ({} requests/s) exceeded for {ip}",
                    self.config.limits.rate_per_ip
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The JSON-RPC router.
pub(crate) fn rpc_router(state: Arc<AppState>) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/rpc/{*service}", post(http_rpc).get(ws_rpc))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "JSON-RPC is served at /rpc/<service> (POST or WebSocket)\n")
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The admin router.
pub(crate) fn admin_router(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/routes", get(routes))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    let router = match state.status.clone() {
        Some(tracker) => router.merge(crate::status::router(tracker)),
        None => router,
    };
    router.with_state(state)
}

async fn http_rpc(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    body: Bytes,
) -> Response {
    let Some(service) = state.service(&path) else { return state.unknown_service(&path) };
    let incoming = match rpc::parse(&body) {
        Ok(incoming) => incoming,
        Err(answer) => return json_text(answer.to_string()),
    };
    let calls = match &incoming {
        Incoming::Single(_) => 1,
        Incoming::Batch(items) => items.len(),
    };
    if let Err(e) = state.rate_check_ip(peer.ip(), calls) {
        let answer = rpc::error(None, code::LIMIT_EXCEEDED, &e);
        return (StatusCode::TOO_MANY_REQUESTS, Json(answer)).into_response();
    }
    match incoming {
        Incoming::Single(Err(answer)) => json_text(answer.to_string()),
        Incoming::Single(Ok(call)) => {
            let answer = service.call(&call).await;
            if call.id.is_none() {
                return StatusCode::NO_CONTENT.into_response();
            }
            json_text(answer)
        }
        Incoming::Batch(items) => {
            if items.len() > state.config.limits.max_batch {
                let answer = rpc::error(
                    None,
                    code::INVALID_REQUEST,
                    &format!(
                        "batch of {} calls exceeds limits.max_batch ({})",
                        items.len(),
                        state.config.limits.max_batch
                    ),
                );
                return json_text(answer.to_string());
            }
            match answer_batch(&service, &state, items).await {
                Some(text) => json_text(text),
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }
    }
}

/// Answers a batch: every member through the call path concurrently (members may go to
/// different routes), answers in the order of the batch; `None` when it held only notifications.
pub(crate) async fn answer_batch(
    service: &ServiceHandle,
    _state: &AppState,
    items: Vec<Result<Call, Value>>,
) -> Option<String> {
    let answers = join_all(items.iter().map(|item| async move {
        match item {
            Ok(call) => {
                let answer = service.call(call).await;
                call.id.is_some().then_some(answer)
            }
            Err(answer) => Some(answer.to_string()),
        }
    }))
    .await;
    let answers: Vec<String> = answers.into_iter().flatten().collect();
    (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")))
}

async fn ws_rpc(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(service) = state.service(&path) else { return state.unknown_service(&path) };
    let shutdown = state.shutdown.clone();
    let limit = state.config.limits.max_body_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| crate::ws::session(socket, service, state, peer.ip(), shutdown))
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

async fn routes(State(state): State<Arc<AppState>>) -> Json<Value> {
    let services: Vec<Value> = state
        .services
        .iter()
        .map(|service| {
            let view = service.view();
            let transport: Vec<Value> = service
                .transport()
                .routes()
                .into_iter()
                .map(|r| {
                    json!({
                        "url": r.url.to_string(),
                        "latency_ms": r.latency_ms,
                        "error_rate": r.error_rate,
                        "breaker_open": r.breaker_open,
                        "head": r.head,
                        "skipped": r.skip.as_ref().map(ToString::to_string),
                    })
                })
                .collect();
            json!({
                "service": service.name,
                "reference_head": service.transport().reference_head(),
                "id": service.id,
                "epoch": view.set.as_ref().map(|s| s.epoch),
                "stale": view.set.as_ref().map(|s| s.stale),
                "last_attested": view.set.as_ref().map(|s| s.last_attested),
                "active": view.set.as_ref().map(|s| s.routes.clone()).unwrap_or_default(),
                "endpoints": view.endpoints,
                "in_use": transport,
                "registry_read_at": view.registry_read_at,
                "registry_error": view.registry_error,
                "usable": service.health().is_ok(),
            })
        })
        .collect();
    let registries: Vec<_> = state.config.registries.iter().map(|r| r.address).collect();
    Json(
        json!({ "registry": state.config.primary().address, "registries": registries, "services": services }),
    )
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let problems: Vec<String> = state.services.iter().filter_map(|s| s.health().err()).collect();
    if problems.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reasons": problems })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Skips are a point-in-time view: start from none, then mark each skipped route.
    state.metrics.route_skipped.clear();
    for service in &state.services {
        service.sync_counters();
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// A token bucket per client IP: `rate` calls per second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        Self { rate: f64::from(rate), buckets: Mutex::new(HashMap::new()) }
    }

    fn take(&self, ip: IpAddr, calls: usize) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle clients rather than grow without bound.
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(10));
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        // A batch larger than the rate passes when the bucket is full (else it never could).
        let need = (calls as f64).min(self.rate);
        if *tokens >= need {
            *tokens -= need;
            true
        } else {
            false
        }
    }
}

/// The client's address, as the handlers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A TCP listener that holds at most `max` connections open: the next accept waits for one
/// to close. Each accepted stream carries its permit and counts in the `connections` gauge.
pub(crate) struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl LimitedListener {
    pub(crate) fn new(listener: TcpListener, max: usize, metrics: Metrics) -> Self {
        Self { listener, permits: Arc::new(Semaphore::new(max)), metrics }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                // The semaphore is never closed; wait rather than spin if it were.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    self.metrics.connections.inc();
                    let guard = ConnectionGuard { _permit: permit, metrics: self.metrics.clone() };
                    return (LimitedStream { stream, _guard: guard }, addr);
                }
                Err(e) => {
                    warn!(target: "gateway::server", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

struct ConnectionGuard {
    _permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// An accepted connection holding its slot under `limits.max_connections`.
pub(crate) struct LimitedStream {
    stream: TcpStream,
    _guard: ConnectionGuard,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_refuses_past_the_rate_and_refills() {
        let limiter = RateLimiter::new(10);
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.take(ip, 10));
        assert!(!limiter.take(ip, 1), "bucket empty");
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limiter.take(other, 1), "per IP");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.take(ip, 1), "refilled");
    }
}
