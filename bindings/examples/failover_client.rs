//! A client that sends its requests through Lifeline's failover transport: it follows the
//! registry's route set and fails over per request. It starts its own devnet (anvil behind four
//! fault-injecting endpoint proxies, the registry, keeper attestations), then:
//!
//! 1. streams requests through the authorised routes;
//! 2. kills the route in use: requests keep succeeding (per-request failover, milliseconds);
//! 3. two keepers attest it unhealthy: the registry swaps it out and the client follows the new
//!    epoch (route-set failover, for everyone).
//!
//! ```sh
//! cargo run -p lifeline-bindings --example failover_client
//! ```

use std::time::{Duration, Instant};

use alloy::{
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
};
use lifeline_bindings::{FailoverConfig, FailoverTransport, RegistryClient, Verdict, WatchConfig};
use lifeline_devnet::{Devnet, DevnetOptions, Fault, Toolchain};

#[tokio::main]
async fn main() -> eyre::Result<()> {
    println!("starting a devnet (anvil, registry, 4 endpoint proxies)...");
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;

    let registry_reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let registry = RegistryClient::new(devnet.registry(), registry_reader);
    let transport = FailoverTransport::new(FailoverConfig::default());
    let watch = WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() };
    let _follower = transport.follow(registry.clone(), devnet.service_id(), watch);
    let client = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    let started = Instant::now();
    while transport.epoch().is_none() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let set = registry.routes(devnet.service_id()).await?;
    let active: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    println!("epoch {}: authorised routes {active:?}", set.epoch);

    let mut errors = 0u32;
    let mut requests = 0u32;
    let victim = usize::from(active[0]);
    for i in 0..400 {
        if i == 100 {
            println!("killing endpoint {victim} ({})", devnet.proxies()[victim].url());
            devnet.proxies()[victim].set(Fault::Down);
        }
        if i == 200 {
            println!("keepers 1 and 2 attest endpoint {victim} unhealthy");
            for keeper in 1..=2 {
                let verdict = Verdict {
                    endpoint: victim as u16,
                    revision: 0,
                    healthy: false,
                    latencyMs: 0,
                    headLag: 0,
                };
                devnet.attest(keeper, vec![verdict]).await?;
            }
        }
        requests += 1;
        if client.get_block_number().await.is_err() {
            errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let set = registry.routes(devnet.service_id()).await?;
    let active: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    println!(
        "epoch {}: authorised routes {active:?}; client on epoch {:?}",
        set.epoch,
        transport.epoch()
    );
    let stats = transport.stats();
    println!(
        "client: {requests} requests, {errors} errors, {} served after a failover within the call",
        stats.failovers
    );
    eyre::ensure!(errors == 0, "the client saw {errors} errors");
    Ok(())
}
