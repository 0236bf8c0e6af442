//! `lifeline devnet`: a local Lifeline on 127.0.0.1 (what `make demo` runs): anvil, and the
//! registry deployed and configured by the project's Foundry scripts.

use std::{path::PathBuf, time::Instant};

use alloy::providers::ProviderBuilder;
use clap::Args;
use eyre::WrapErr;
use lifeline_bindings::RegistryClient;
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};

/// Arguments of `lifeline devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Apply this configuration (keepers, services, endpoints) instead of the generated one
    /// (four fault-injecting endpoint proxies, three keepers).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seconds between blocks (default: one block per transaction).
    #[arg(long)]
    block_time: Option<f64>,
    /// Keep everything running until Ctrl-C, and print how to explore it.
    #[arg(long)]
    hold: bool,
}

impl DevnetArgs {
    /// Brings the devnet up, prints what was deployed, and exits (or holds).
    pub async fn run(self) -> eyre::Result<()> {
        let started = Instant::now();
        let toolchain = Toolchain::locate()?;
        println!("starting anvil and deploying the registry with the Foundry scripts...");
        let options = DevnetOptions {
            block_time: self.block_time,
            config: self.config.clone(),
            ..Default::default()
        };
        let devnet =
            Devnet::start(&toolchain, &options).await.wrap_err("bringing the devnet up")?;

        println!();
        println!("chain      {} (chain id {})", devnet.rpc_url(), devnet.chain_id());
        println!("registry   {}", devnet.registry());
        for (i, proxy) in devnet.proxies().iter().enumerate() {
            println!("endpoint   {i}: {} (fault-injecting proxy in front of anvil)", proxy.url());
        }

        let provider = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
        let client = RegistryClient::new(devnet.registry(), provider);
        let services = client.contract().serviceIds().call().await?;
        let (version, keepers, _) =
            client.contract().keepers().call().await.map(|k| (k._0, k._1, k._2))?;
        println!("keepers    {} (keeper-set version {version})", keepers.len());
        for id in &services {
            let set = client.routes(*id).await?;
            let service = client.service(*id).await?;
            println!(
                "service    {id}: {} endpoints, epoch {}, {} authorised routes (keepers make them serve)",
                service.endpointCount,
                set.epoch,
                set.routes.len()
            );
        }
        println!("ready in   {:.1}s", started.elapsed().as_secs_f64());

        if self.hold {
            println!();
            println!("explore it (Ctrl-C stops everything):");
            println!(
                "  export LIFELINE_RPC_URL={} LIFELINE_REGISTRY={}",
                devnet.rpc_url(),
                devnet.registry()
            );
            println!("  cargo run -q -p lifeline-keeper -- routes --service eth-devnet/rpc");
            println!(
                "  node_modules/.bin/cast call {} 'serviceIds()(bytes32[])' --rpc-url {}",
                devnet.registry(),
                devnet.rpc_url()
            );
            tokio::signal::ctrl_c().await.wrap_err("waiting for Ctrl-C")?;
        }
        Ok(())
    }
}
