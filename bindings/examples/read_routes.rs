//! Prints a service's authorised route set.
//!
//! Against a running devnet (`cargo run -p lifeline-keeper -- devnet --hold` prints these):
//!
//! ```sh
//! LIFELINE_RPC_URL=http://127.0.0.1:PORT LIFELINE_REGISTRY=0x... \
//!     cargo run -p lifeline-bindings --example read_routes -- eth-devnet/rpc
//! ```
//!
//! Without `LIFELINE_REGISTRY` it starts its own devnet (anvil, the registry deployed by the
//! Foundry scripts, two keepers' healthy attestations) and reads that.

use alloy::providers::ProviderBuilder;
use lifeline_bindings::{RegistryClient, service_id};
use lifeline_devnet::{DEVNET_SERVICE, Devnet, DevnetOptions, Toolchain};

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let service = std::env::args().nth(1).unwrap_or_else(|| DEVNET_SERVICE.to_string());
    let (_devnet, rpc_url, registry) = match std::env::var("LIFELINE_REGISTRY") {
        Ok(registry) => {
            let rpc = std::env::var("LIFELINE_RPC_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8545".into());
            (None, rpc, registry.parse()?)
        }
        Err(_) => {
            eprintln!("LIFELINE_REGISTRY not set: starting a devnet...");
            let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
            devnet.bootstrap_routes().await?;
            let (rpc, registry) = (devnet.rpc_url(), devnet.registry());
            (Some(devnet), rpc, registry)
        }
    };

    let client =
        RegistryClient::new(registry, ProviderBuilder::new().connect_http(rpc_url.parse()?));
    let set = client.routes(service_id(&service)).await?;
    println!(
        "{service}: epoch {}, last attested at {}{}",
        set.epoch,
        set.last_attested,
        if set.stale { " (STALE)" } else { "" }
    );
    for route in &set.routes {
        println!(
            "  #{:<2} {:<28} {:<9} {:<8} {:>4} ms{}",
            route.id,
            route.url,
            route.region,
            route.provider,
            route.latency_ms,
            if route.degraded { "  degraded" } else { "" }
        );
    }
    Ok(())
}
