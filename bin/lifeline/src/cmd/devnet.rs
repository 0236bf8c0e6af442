//! `lifeline devnet` (what `make demo` runs): a whole Lifeline on 127.0.0.1, then a scripted
//! outage with a readable timeline.
//!
//! anvil (1 s blocks) -> the registry deployed and configured by the Foundry scripts -> four
//! fault-injecting endpoint proxies -> three `lifeline keeper` processes, each with its own key
//! -> a client streaming requests through the failover transport -> a gateway (`lifeline
//! gateway`, in process) with `cast` reading through it as a non-Rust client. Then the active
//! endpoint dies and the timeline shows: endpoint down -> first keeper flags it -> quorum
//! reached (tx, block) -> new route set -> client switched, with both clients' request and
//! error counts.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy::{
    primitives::B256,
    providers::{Provider, ProviderBuilder},
    rpc::{client::RpcClient, types::Filter},
    sol_types::SolEvent,
};
use clap::Args;
use eyre::{WrapErr, bail};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RegistryClient, RouteSet, WatchConfig,
    registry::RouteRegistry::RouteSetChanged,
};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, Fault, KeeperOptions, KeeperProcess, RequestStream,
    Toolchain, die_with_parent, free_port, wait_for_routes,
};
use lifeline_gateway::{Gateway, GatewayConfig};

/// Arguments of `lifeline devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Apply this configuration (keepers, services, endpoints) and stop there: no proxies,
    /// keepers or outage (for trying a configuration file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seconds between blocks.
    #[arg(long, default_value_t = 1.0)]
    block_time: f64,
    /// Keeper processes (the quorum is a strict majority of them: 2 of the default 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=9))]
    keepers: u8,
    /// Keepers' probe interval, milliseconds.
    #[arg(long, default_value_t = 500)]
    probe_interval_ms: u64,
    /// Keep everything running after the scenario, and print how to explore it.
    #[arg(long)]
    hold: bool,
    /// Registry chains: with 2, a second anvil (chain id 31338) gets its own registry, deployed
    /// and configured by the same Foundry scripts with the same service and endpoints; the
    /// keepers attest on both and the gateway follows both (the primary's set while it is live).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    registries: u8,
}

impl DevnetArgs {
    /// Runs the demo. SIGINT or SIGTERM at any point stops the keepers, the gateway and anvil
    /// before exiting (and the kernel kills every child if this process is killed outright).
    pub(crate) async fn run(self) -> eyre::Result<()> {
        let mut signals =
            crate::cmd::Signals::install().wrap_err("installing the SIGINT/SIGTERM handlers")?;
        let mut running = Running::default();
        let outcome = tokio::select! {
            result = self.scenario(&mut running) => result.map(|()| None),
            signal = signals.recv() => Ok(Some(signal)),
        };
        if let Ok(Some(signal)) = outcome {
            println!();
            println!("{signal}: stopping the keepers, the gateway and anvil");
        }
        // A second signal while stopping: leave now (the kernel still kills every child).
        let impatient = tokio::spawn(async move {
            let signal = signals.recv().await;
            eprintln!("{signal} again: exiting without waiting");
            std::process::exit(130);
        });
        running.shutdown().await;
        impatient.abort();
        match outcome? {
            Some(signal) if !running.holding => bail!("interrupted by {signal}"),
            _ => Ok(()),
        }
    }

    /// The demo itself; what must be stopped afterwards goes into `running`.
    async fn scenario(&self, running: &mut Running) -> eyre::Result<()> {
        let clock = Instant::now();
        let toolchain = Toolchain::locate()?;
        let options = DevnetOptions {
            block_time: Some(self.block_time),
            keepers: usize::from(self.keepers),
            config: self.config.clone(),
            registries: usize::from(self.registries),
            ..Default::default()
        };
        say(clock, "starting anvil and deploying the registry with the Foundry scripts...");
        let devnet = &*running
            .devnet
            .insert(Devnet::start(&toolchain, &options).await.wrap_err("bringing the devnet up")?);
        say(clock, &format!("chain    {} (chain id {})", devnet.rpc_url(), devnet.chain_id()));
        say(clock, &format!("registry {}", devnet.registry()));
        for secondary in devnet.secondaries() {
            say(
                clock,
                &format!(
                    "registry {} on a second chain {} (chain id {}): same service, endpoints and keepers",
                    secondary.registry(),
                    secondary.rpc_url(),
                    secondary.chain_id()
                ),
            );
        }
        if self.config.is_some() {
            say(clock, "configuration applied; no keepers or outage with --config");
            return self.hold(devnet, None, &[], &mut running.holding).await;
        }
        for (i, proxy) in devnet.proxies().iter().enumerate() {
            say(
                clock,
                &format!("endpoint {i}  {} (fault-injecting proxy in front of anvil)", proxy.url()),
            );
        }

        let lifeline = std::env::current_exe().wrap_err("locating the lifeline binary")?;
        let mut metrics = Vec::new();
        for k in 1..=usize::from(self.keepers) {
            // Each keeper its own metrics port (they would all default to 9464).
            let port = free_port()?;
            let keeper_options = KeeperOptions {
                probe_interval_ms: self.probe_interval_ms,
                metrics_port: Some(port),
                ..Default::default()
            };
            let config = devnet.keeper_config(&toolchain, k, &keeper_options)?;
            let process = devnet.spawn_keeper(&toolchain, &lifeline, k, &config)?;
            let log = process.log();
            say(
                clock,
                &format!(
                    "keeper {k}  {} (pid {}, metrics http://127.0.0.1:{port}/metrics, log {})",
                    devnet.account(k).address(),
                    process.pid().unwrap_or_default(),
                    log.strip_prefix(toolchain.root()).unwrap_or(log).display()
                ),
            );
            running.keepers.push(process);
            metrics.push(format!("http://127.0.0.1:{port}/metrics"));
        }

        let reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
        let registry = RegistryClient::new(devnet.registry(), reader.clone());
        let transport = FailoverTransport::new(FailoverConfig::default());
        let watch = WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() };
        let _follower = transport.follow(registry.clone(), devnet.service_id(), watch);
        let service = devnet.service_id();
        let set = wait_for_routes(
            &registry,
            service,
            "keepers fill the set",
            Duration::from_secs(60),
            |s| s.routes.len() >= 2,
        )
        .await?;
        say(
            clock,
            &format!("keepers filled the route set: epoch {}, {}", set.epoch, describe(&set)),
        );
        let _ = wait_for_client(&transport, set.epoch).await;
        let client =
            ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
        let load = RequestStream::start(client, Duration::from_millis(20));
        say(clock, "client   streaming eth_blockNumber every 20 ms through the failover transport");
        let gateway = &*running.gateway.insert(start_gateway(devnet).await?);
        say(
            clock,
            &format!(
                "gateway  {} (WebSocket {})",
                gateway.http_url(DEVNET_SERVICE),
                gateway.ws_url(DEVNET_SERVICE)
            ),
        );
        say(
            clock,
            &format!(
                "gateway  status page http://{0}/status (admin: /routes /healthz /metrics)",
                gateway.admin_addr()
            ),
        );
        let cast = CastReader::start(toolchain.cast(), gateway.http_url(DEVNET_SERVICE));
        say(
            clock,
            "cast     reading the balance of a funded account through the gateway, back to back (a non-Rust client)",
        );
        tokio::time::sleep(Duration::from_secs(1)).await;

        // The outage.
        let victim = set.routes[0].id;
        let outage = Instant::now();
        devnet.proxies()[usize::from(victim)].set(Fault::Down);
        let (requests_before, errors_before) = (load.requests(), load.errors());
        let (cast_before, cast_errors_before) = cast.counts();
        println!();
        println!("  outage of endpoint {victim} ({})", set.routes[0].url);
        step(outage, &format!("endpoint {victim} down"));

        let mut flagged = false;
        let mut next_block = reader.get_block_number().await? + 1;
        let new_set = loop {
            if outage.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the registry did not fail over within 60 s; see the keeper logs under target/devnet/"
                );
            }
            // Keepers' votes, read from the attest transactions of each new block.
            let head = reader.get_block_number().await?;
            while !flagged && next_block <= head {
                if let Some((keeper, block)) =
                    first_flag(&reader, devnet, next_block, victim).await?
                {
                    flagged = true;
                    step(
                        outage,
                        &format!(
                            "keeper {keeper} flagged endpoint {victim} unhealthy (block {block}; quorum is {})",
                            self.keepers / 2 + 1
                        ),
                    );
                }
                next_block += 1;
            }
            let now = registry.routes(service).await?;
            if now.epoch > set.epoch {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let filter = Filter::new()
            .address(devnet.registry())
            .event_signature(RouteSetChanged::SIGNATURE_HASH)
            .topic1(service)
            .topic2(B256::from(alloy::primitives::U256::from(new_set.epoch)))
            .from_block(0);
        if let Some(log) = reader.get_logs(&filter).await?.first() {
            step(
                outage,
                &format!(
                    "quorum reached: demote + promote in tx {} (block {})",
                    log.transaction_hash.unwrap_or_default(),
                    log.block_number.unwrap_or_default()
                ),
            );
        }
        step(outage, &format!("new route set: epoch {}, {}", new_set.epoch, describe(&new_set)));
        if wait_for_client(&transport, new_set.epoch).await {
            step(outage, &format!("client switched to epoch {}", new_set.epoch));
        } else {
            step(outage, &format!("client did NOT switch to epoch {} within 5 s", new_set.epoch));
        }
        if wait_for_client(gateway.services()[0].transport(), new_set.epoch).await {
            step(outage, &format!("gateway switched to epoch {}", new_set.epoch));
        } else {
            step(outage, &format!("gateway did NOT switch to epoch {} within 5 s", new_set.epoch));
        }
        // The same keepers fail the endpoint over on every other registry chain too.
        for secondary in devnet.secondaries() {
            let reader = ProviderBuilder::new().connect_http(secondary.rpc_url().parse()?);
            let other = RegistryClient::new(secondary.registry(), reader);
            let limit = Duration::from_secs(10);
            match wait_for_routes(&other, service, "the second registry fails over", limit, |s| {
                s.routes.iter().all(|r| r.id != victim)
            })
            .await
            {
                Ok(set) => step(
                    outage,
                    &format!(
                        "second registry (chain {}): epoch {}, {}",
                        secondary.chain_id(),
                        set.epoch,
                        describe(&set)
                    ),
                ),
                Err(e) => step(outage, &format!("second registry did NOT fail over: {e}")),
            }
        }
        // A few more reads after the switch, so both clients are seen on the new set.
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!();
        say(
            clock,
            &format!(
                "client   {} requests, {} errors ({} during the outage window of {} requests); {} answered after an in-call failover",
                load.requests(),
                load.errors(),
                load.errors() - errors_before,
                load.requests() - requests_before,
                transport.stats().failovers
            ),
        );
        if let Some(e) = load.last_error() {
            say(clock, &format!("client   last error: {e}"));
        }
        let (cast_total, cast_errors) = cast.counts();
        say(
            clock,
            &format!(
                "cast     {cast_total} reads through the gateway, {cast_errors} errors ({} during the outage window of {} reads)",
                cast_errors - cast_errors_before,
                cast_total - cast_before,
            ),
        );
        if let Some(e) = cast.last_error() {
            say(clock, &format!("cast     last error: {e}"));
        }
        drop(cast);
        self.hold(devnet, Some(gateway), &metrics, &mut running.holding).await
    }

    /// With `--hold`, prints how to explore the devnet and waits (for the signal that `run`
    /// listens to); without, returns at once.
    async fn hold(
        &self,
        devnet: &Devnet,
        gateway: Option<&Gateway>,
        metrics: &[String],
        holding: &mut bool,
    ) -> eyre::Result<()> {
        if !self.hold {
            return Ok(());
        }
        println!();
        println!(
            "holding (Ctrl-C or SIGTERM stops everything). Explore, from the repository root:"
        );
        println!("  export PATH=$PWD/node_modules/.bin:$PATH   # cast, forge and anvil 1.7.1");
        println!(
            "  export LIFELINE_RPC_URL={} LIFELINE_REGISTRY={}   # read by lifeline, not by the Foundry scripts",
            devnet.rpc_url(),
            devnet.registry()
        );
        let also: String = devnet
            .secondaries()
            .iter()
            .map(|d| format!(" --also {}@{}", d.rpc_url(), d.registry()))
            .collect();
        println!(
            "  cargo run -q -p lifeline -- routes --service {DEVNET_SERVICE}{also}   # or `lifeline routes ...` after `cargo install --path bin/lifeline`"
        );
        println!(
            "  cast call $LIFELINE_REGISTRY 'authorisedRoutes(bytes32)((uint32,uint64,bool,(uint16,string,string,string,uint32,bool)[]))' $(cast keccak {DEVNET_SERVICE}) --rpc-url $LIFELINE_RPC_URL"
        );
        if let Some(gateway) = gateway {
            println!("  # any JSON-RPC client, through the gateway (HTTP and WebSocket):");
            println!("  cast block-number --rpc-url {}", gateway.http_url(DEVNET_SERVICE));
            println!("  # WebSocket: {}", gateway.ws_url(DEVNET_SERVICE));
            println!("  open http://{}/status   # the status page", gateway.admin_addr());
            println!("  curl -s http://{}/routes", gateway.admin_addr());
        }
        if !metrics.is_empty() {
            println!("  # keeper metrics: {}", metrics.join(" "));
        }
        *holding = true;
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// What a devnet run started and must stop, whichever way it ends.
#[derive(Default)]
struct Running {
    devnet: Option<Devnet>,
    keepers: Vec<KeeperProcess>,
    gateway: Option<Gateway>,
    /// The scenario finished and `--hold` was waiting for a signal.
    holding: bool,
}

impl Running {
    /// Stops the keepers (SIGTERM, then SIGKILL after 2 s) and the gateway (at most 3 s)
    /// together, then anvil. Waits on tasks, never blocking a runtime thread.
    async fn shutdown(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        for keeper in &self.keepers {
            keeper.terminate();
        }
        let gateway = self.gateway.take();
        let keepers = &mut self.keepers;
        tokio::join!(
            async {
                for keeper in keepers.iter_mut() {
                    keeper
                        .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
                        .await;
                }
            },
            async {
                if let Some(gateway) = gateway {
                    let _ = tokio::time::timeout(Duration::from_secs(3), gateway.shutdown()).await;
                }
            }
        );
        if let Some(devnet) = self.devnet.take() {
            devnet.shutdown().await;
        }
    }
}

fn say(clock: Instant, text: &str) {
    println!("[{:>5.1}s] {text}", clock.elapsed().as_secs_f64());
}

fn step(outage: Instant, text: &str) {
    println!("  +{:>6.2}s  {text}", outage.elapsed().as_secs_f64());
}

fn describe(set: &RouteSet) -> String {
    let routes: Vec<String> =
        set.routes.iter().map(|r| format!("#{} {}", r.id, r.region)).collect();
    format!("routes [{}]", routes.join(", "))
}

/// The keeper whose attest transaction in block `number` flags `victim` unhealthy, if any.
async fn first_flag<P: Provider>(
    reader: &P,
    devnet: &Devnet,
    number: u64,
    victim: u16,
) -> eyre::Result<Option<(alloy::primitives::Address, u64)>> {
    use alloy::{consensus::Transaction as _, sol_types::SolCall};
    use lifeline_bindings::{attestation, registry::RouteRegistry::attestCall};
    let Some(block) = reader.get_block_by_number(number.into()).full().await? else {
        return Ok(None);
    };
    for tx in block.transactions.txns() {
        if tx.to() != Some(devnet.registry()) {
            continue;
        }
        let Ok(call) = attestCall::abi_decode(tx.input()) else { continue };
        if call.attestation.verdicts.iter().any(|v| v.endpoint == victim && !v.healthy) {
            // The keeper is who signed it; the transaction's sender only relayed it.
            if let Some(keeper) = attestation::signer_of(
                &call.attestation,
                &call.signature,
                devnet.chain_id(),
                devnet.registry(),
            ) {
                return Ok(Some((keeper, number)));
            }
        }
    }
    Ok(None)
}

/// Waits (at most 5 s) for the transport to route by `epoch`; false if it did not.
async fn wait_for_client<C: lifeline_bindings::transport::Connector>(
    transport: &FailoverTransport<C>,
    epoch: u32,
) -> bool {
    for _ in 0..200 {
        if transport.epoch() >= Some(epoch) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The devnet's gateway, in process, on free loopback ports, following the devnet's registry.
async fn start_gateway(devnet: &Devnet) -> eyre::Result<Gateway> {
    let mut config =
        GatewayConfig::loopback(&devnet.rpc_url(), devnet.registry(), &[DEVNET_SERVICE]);
    // Every registry chain of the devnet, the primary first; a chain halted for 5 s (5 blocks)
    // hands over to a live one.
    for secondary in devnet.secondaries() {
        let mut registry = config.primary().clone();
        registry.rpc_url = secondary.rpc_url();
        registry.address = secondary.registry();
        config.registries.push(registry);
        config.registry_choice.live_bound_ms = 5_000;
    }
    let gateway = Gateway::start(config).await.wrap_err("starting the gateway")?;
    if !gateway.ready(Duration::from_secs(10)).await {
        bail!("the gateway found no usable route within 10 s");
    }
    Ok(gateway)
}

/// `cast balance` through the gateway, one process after another, counting failures: what any
/// non-Rust client pointed at the gateway's URL sees.
struct CastReader {
    counts: std::sync::Arc<std::sync::Mutex<(u64, u64, Option<String>)>>,
    task: tokio::task::JoinHandle<()>,
}

impl CastReader {
    fn start(cast: PathBuf, url: String) -> Self {
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0, 0, None)));
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let mut command = tokio::process::Command::new(&cast);
                command
                    .args([
                        "balance",
                        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                        "--rpc-url",
                        &url,
                    ])
                    .kill_on_drop(true);
                let output = die_with_parent(&mut command).output().await;
                let failure = match output {
                    Ok(out) if out.status.success() => None,
                    Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
                    Err(e) => Some(e.to_string()),
                };
                {
                    let mut c = shared.lock().unwrap_or_else(|p| p.into_inner());
                    c.0 += 1;
                    if failure.is_some() {
                        c.1 += 1;
                        c.2 = failure;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { counts, task }
    }

    /// (reads, errors).
    fn counts(&self) -> (u64, u64) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.0, c.1)
    }

    fn last_error(&self) -> Option<String> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).2.clone()
    }
}

impl Drop for CastReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}
