//! # lifeline-gateway
//!
//! The route-aware JSON-RPC gateway behind `lifeline gateway`: any client that takes an RPC URL
//! (cast, viem, ethers, web3.py, Go services) gets Lifeline's failover by pointing at
//! `http(s)://gateway/rpc/<service>` or `ws://gateway/rpc/<service>`. The routes are the ones a
//! keeper quorum authorised on-chain, followed from the registry; each request goes through the
//! failover transport of lifeline-bindings (ranking, hedging, breaker, transaction broadcast,
//! per-request failover).
//!
//! ```text
//!  clients --HTTP POST / WebSocket /rpc/<service>--> server (axum; limits, method policy)
//!                                                      |  rpc: parse, validate (-32700/-32600/-32601)
//!                                                      v
//!  registry --RouteSetChanged / authorisedRoutes--> service: FailoverTransport --> routes
//!   (follow)                                            |  filters kept by the transport
//!                                                       '- subscribe: head follower (backfill,
//!                                                          reorgs) -> newHeads / logs / pending
//!  admin listener: /routes  /healthz  /metrics (Prometheus)  /status (the status page)
//! ```
//!
//! Modules: [`config`] (TOML, every default documented in `config/gateway.example.toml`),
//! [`rpc`] (the JSON-RPC edge), [`service`] (one served service and its call path),
//! [`subscribe`] (subscriptions that survive failover), [`upstream`] (the per-route HTTP
//! transport), [`metrics`].

pub mod config;
pub mod metrics;
pub mod rpc;
pub mod service;
pub mod subscribe;
pub mod upstream;

mod server;
mod status;
mod ws;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tracing::{info, warn};

pub use config::GatewayConfig;
pub use metrics::Metrics;
pub use service::ServiceHandle;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the field and the value.
    #[error("gateway config: {0}")]
    Config(String),
    /// The registry cannot be used (no code at the address, unreachable at startup).
    #[error("registry: {0}")]
    Registry(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway. [`Gateway::shutdown`] (or dropping it) stops it.
#[derive(Debug)]
pub struct Gateway {
    rpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    services: Vec<Arc<ServiceHandle>>,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
}

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

impl Gateway {
    /// Binds both listeners, checks the registry, starts following every service, and serves.
    pub async fn start(config: GatewayConfig) -> Result<Self> {
        config.validate()?;
        let registry = service::registry_client(&config)?;
        let registries = service::registry_set(&config)?;
        match &registries {
            None => service::check_registry(&registry).await?,
            // With several registries one may be down now (that is what they are for): only a
            // registry with no contract stops the gateway; unreachable ones are warned about.
            Some(set) => {
                for (index, reader) in set.registries.iter().enumerate() {
                    if let Err(e) = service::check_registry(&reader.client()).await {
                        if alloy::providers::Provider::get_block_number(
                            reader.client().contract().provider(),
                        )
                        .await
                        .is_ok()
                        {
                            return Err(e);
                        }
                        warn!(target: "gateway", registry = index, error = %e, "registry unreachable at startup; following the others meanwhile");
                    }
                }
            }
        }
        let quorum = service::quorum_reader(&config)?;
        let secrets = lifeline_bindings::secrets::Secrets::load(&config.secrets)
            .map_err(|e| Error::Config(e.to_string()))?;
        let metrics = Metrics::default();
        let services: Vec<Arc<ServiceHandle>> = config
            .services
            .iter()
            .map(|section| ServiceHandle::new(section, &config, &secrets, metrics.clone()))
            .collect();
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr).await.map_err(|source| Error::Io {
                context: format!("binding the {what} listener on {addr}"),
                source,
            })
        };
        let rpc_listener = bind(config.listen, "JSON-RPC").await?;
        let admin_listener = bind(config.admin_listen, "admin").await?;
        let local = |l: &TcpListener| {
            l.local_addr().map_err(|source| Error::Io {
                context: "reading a listener address".into(),
                source,
            })
        };
        let (rpc_addr, admin_addr) = (local(&rpc_listener)?, local(&admin_listener)?);

        let (stop, shutdown) = watch::channel(false);
        let poll = Duration::from_millis(config.primary().poll_interval_ms);
        let max_connections = config.limits.max_connections;
        let mut state =
            server::AppState::new(config, metrics.clone(), services.clone(), shutdown.clone());
        let mut tasks = JoinSet::new();
        if state.config.status {
            let tracker = status::Tracker::new(registry.clone(), services.clone(), metrics.clone());
            state.status = Some(tracker.clone());
            let mut stop_status = shutdown.clone();
            tasks.spawn(async move {
                tokio::select! {
                    () = tracker.run() => {}
                    _ = stop_status.wait_for(|s| *s) => {}
                }
            });
        }
        let state = Arc::new(state);
        let sessions = state.sessions.clone();
        for service in &services {
            let follower =
                service.clone().follow(registry.clone(), quorum.clone(), registries.clone(), poll);
            let mut stop_follow = shutdown.clone();
            tasks.spawn(async move {
                tokio::select! {
                    () = follower => {}
                    _ = stop_follow.wait_for(|s| *s) => {}
                }
            });
        }
        let listener = server::LimitedListener::new(rpc_listener, max_connections, metrics.clone());
        let app =
            server::rpc_router(state.clone()).into_make_service_with_connect_info::<server::Peer>();
        let mut stop_rpc = shutdown.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_rpc.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                warn!(target: "gateway::server", error = %e, "JSON-RPC listener failed");
            }
        });
        let admin = server::admin_router(state);
        let mut stop_admin = shutdown;
        tasks.spawn(async move {
            let serve = axum::serve(admin_listener, admin).with_graceful_shutdown(async move {
                let _ = stop_admin.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                warn!(target: "gateway::server", error = %e, "admin listener failed");
            }
        });
        info!(target: "gateway", %rpc_addr, %admin_addr, services = services.len(), "gateway serving");
        Ok(Self { rpc_addr, admin_addr, services, metrics, stop, tasks, sessions })
    }

    /// The JSON-RPC listener's address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://<listen>/rpc/<service>`.
    pub fn http_url(&self, service: &str) -> String {
        format!("http://{}/rpc/{service}", self.rpc_addr)
    }

    /// `ws://<listen>/rpc/<service>`.
    pub fn ws_url(&self, service: &str) -> String {
        format!("ws://{}/rpc/{service}", self.rpc_addr)
    }

    /// The served services.
    pub fn services(&self) -> &[Arc<ServiceHandle>] {
        &self.services
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits until every served service has a usable route, or `timeout`.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.services.iter().all(|s| s.health().is_ok() && s.transport().epoch().is_some()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (at most 5 s), close
    /// WebSocket connections with a close frame.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let sessions = self.sessions.clone();
        let drained = tokio::time::timeout(DRAIN, async {
            while self.tasks.join_next().await.is_some() {}
            // WebSocket sessions run detached: wait for each to send its close frame.
            while sessions.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if drained.is_err() {
            warn!(target: "gateway", "in-flight requests still running after {DRAIN:?}; stopping them");
            self.tasks.abort_all();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
