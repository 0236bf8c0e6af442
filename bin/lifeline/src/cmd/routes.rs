//! `lifeline routes`: what a service's clients are authorised to use right now, and why.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::providers::ProviderBuilder;
use clap::Args;
use eyre::WrapErr;
use lifeline_bindings::{RegistryClient, client::Status};

use crate::cli::{RegistryOpts, ServiceRef};

/// Arguments of `lifeline routes`.
#[derive(Debug, Args)]
pub(crate) struct RoutesArgs {
    #[command(flatten)]
    registry: RegistryOpts,
    /// The service, by name (e.g. eth-devnet/rpc) or 0x id.
    #[arg(long, env = "LIFELINE_SERVICE")]
    service: ServiceRef,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl RoutesArgs {
    /// Reads the registry and prints the route set and the endpoint table.
    pub(crate) async fn run(self) -> eyre::Result<()> {
        let url = self
            .registry
            .rpc_url
            .parse()
            .wrap_err_with(|| format!("--rpc-url `{}` is not a URL", self.registry.rpc_url))?;
        let provider = ProviderBuilder::new().connect_http(url);
        let client = RegistryClient::new(self.registry.registry, provider);
        let context = || {
            format!(
                "reading service `{}` from registry {} at {}",
                self.service.label, self.registry.registry, self.registry.rpc_url
            )
        };
        let set = client.routes(self.service.id).await.wrap_err_with(context)?;
        let service = client.service(self.service.id).await.wrap_err_with(context)?;
        let endpoints = client.endpoints(self.service.id).await.wrap_err_with(context)?;

        if self.json {
            let out = serde_json::json!({ "service": self.service.id, "routeSet": set, "endpoints": endpoints });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }

        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let age = now.saturating_sub(set.last_attested);
        println!("service   {} ({})", self.service.label, self.service.id);
        println!(
            "epoch     {}   last attestation {}s ago{}",
            set.epoch,
            age,
            if set.stale { "  STALE: keepers silent, set is fail-static" } else { "" }
        );
        println!(
            "routes    {} authorised (target {}, floor {}, quorum {} keepers)",
            set.routes.len(),
            service.config.targetActive,
            service.config.floor,
            service.config.quorum
        );
        println!();
        println!(
            "{:>3}  {:<8} {:<22} {:<40} {:<10} {:<12} {:>8}  {:>5}",
            "ID", "STATE", "NOTE", "URL", "REGION", "PROVIDER", "LATENCY", "VOTES"
        );
        for e in &endpoints {
            let note = match e.status {
                Status::Active if e.degraded => "DEGRADED (kept)".to_string(),
                Status::Active => "serving".to_string(),
                Status::Standby if e.ready => "ready to promote".to_string(),
                Status::Standby => "awaiting healthy quorum".to_string(),
                Status::Demoted if e.cooldown_until > now => {
                    format!("cooling down {}s", e.cooldown_until - now)
                }
                Status::Demoted => "awaiting healthy quorum".to_string(),
                Status::Retired => "retired".to_string(),
            };
            println!(
                "{:>3}  {:<8} {:<22} {:<40} {:<10} {:<12} {:>6}ms  {:>2}/{:<2}",
                e.id,
                e.status.to_string(),
                note,
                e.url,
                e.region,
                e.provider,
                e.latency_ms,
                e.down_votes.count_ones(),
                e.up_votes.count_ones()
            );
        }
        println!();
        println!("VOTES = keepers voting unhealthy / healthy under the current keeper set");
        Ok(())
    }
}
