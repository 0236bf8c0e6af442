//! `lifeline gateway`: the route-aware JSON-RPC gateway (HTTP + WebSocket) for every client.

use std::path::PathBuf;

use clap::Args;
use eyre::WrapErr;
use lifeline_gateway::{Gateway, GatewayConfig};
use tracing::info;

/// Arguments of `lifeline gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's TOML configuration (see config/gateway.example.toml).
    #[arg(long, env = "LIFELINE_GATEWAY_CONFIG")]
    config: PathBuf,
}

impl GatewayArgs {
    /// Serves until SIGINT or SIGTERM, then drains in-flight requests.
    pub(crate) async fn run(self) -> eyre::Result<()> {
        let config = GatewayConfig::load(&self.config)?;
        let services: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
        let gateway = Gateway::start(config).await.wrap_err("starting the gateway")?;
        for name in &services {
            info!(target: "gateway", service = %name, http = %gateway.http_url(name), ws = %gateway.ws_url(name), "serving");
        }
        info!(target: "gateway", admin = %gateway.admin_addr(), "admin: /routes /healthz /metrics");
        crate::cmd::wait_for_signal().await;
        info!(target: "gateway", "signal received; draining");
        gateway.shutdown().await;
        Ok(())
    }
}
