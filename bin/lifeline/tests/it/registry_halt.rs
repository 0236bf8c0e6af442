//! The primary registry chain halts (mining stopped): the Rust client (the bindings'
//! `RegistrySet` follower) and the gateway switch to the secondary registry's set within the
//! documented bound (`live_bound` + one block + one poll), an endpoint that dies while the
//! primary is halted is still failed over through the secondary, and when the primary mines
//! again both return to it, once, without flapping. Keeper processes attest on both registries
//! (`lifeline devnet --registries 2`'s setup: `[[registry]]` in their configuration).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RegistryClient,
    quorum::{QuorumReader, RegistrySet},
};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, Fault, KeeperOptions, RequestStream, Toolchain,
    wait_for_routes,
};
use lifeline_gateway::{Gateway, GatewayConfig};

/// A registry chain is live while its head is at most this old.
const LIVE_BOUND: Duration = Duration::from_secs(3);
/// The documented bound on a switch: `live_bound` + one block (1 s) + polls, with slack for a
/// busy 2-core machine.
const SWITCH_BOUND: Duration = Duration::from_secs(7);

fn client(devnet: &Devnet) -> eyre::Result<RegistryClient<DynProvider>> {
    let provider = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?).erased();
    Ok(RegistryClient::new(devnet.registry(), provider))
}

/// Waits until `check` holds; returns how long it took.
async fn until(what: &str, limit: Duration, check: impl Fn() -> bool) -> eyre::Result<Duration> {
    let started = Instant::now();
    loop {
        if check() {
            return Ok(started.elapsed());
        }
        eyre::ensure!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_the_secondary_registry_while_the_primary_chain_halts() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(
        &toolchain,
        &DevnetOptions { block_time: Some(1.0), registries: 2, cooldown: 4, ..Default::default() },
    )
    .await?;
    let secondary = &devnet.secondaries()[0];
    assert_ne!(secondary.chain_id(), devnet.chain_id(), "two chains");
    // The same first set on both registries (keepers 1 and 2 attest every endpoint healthy,
    // lower index = lower latency): which endpoints fill a set first otherwise depends on which
    // votes land first on each chain.
    devnet.bootstrap_routes().await?;
    secondary.bootstrap_routes().await?;
    let mut keepers = Vec::new();
    for k in 1..=3 {
        let config = devnet.keeper_config(&toolchain, k, &KeeperOptions::default())?;
        assert!(std::fs::read_to_string(&config)?.matches("[[registry]]").count() == 2);
        keepers.push(devnet.spawn_keeper(
            &toolchain,
            Path::new(env!("CARGO_BIN_EXE_lifeline")),
            k,
            &config,
        )?);
    }
    let service = devnet.service_id();
    for (name, chain) in [("primary", &devnet), ("secondary", secondary)] {
        wait_for_routes(
            &client(chain)?,
            service,
            &format!("keepers fill the {name} registry's set"),
            Duration::from_secs(60),
            |s| s.routes.len() == 2,
        )
        .await?;
    }

    // The Rust client: a failover transport kept on the chosen set by RegistrySet::follow.
    let registries = RegistrySet::new(
        vec![
            QuorumReader::new(vec![client(&devnet)?], 1, 0),
            QuorumReader::new(vec![client(secondary)?], 1, 0),
        ],
        LIVE_BOUND,
        Duration::from_secs(30),
    );
    let transport = FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_millis(800),
        ..Default::default()
    });
    let _follower = registries.follow(&transport, service, Duration::from_millis(200));
    // The gateway, following both registries.
    let mut config =
        GatewayConfig::loopback(&devnet.rpc_url(), devnet.registry(), &[DEVNET_SERVICE]);
    let mut second = config.primary().clone();
    second.rpc_url = secondary.rpc_url();
    second.address = secondary.registry();
    config.registries.push(second);
    config.registry_choice.live_bound_ms = LIVE_BOUND.as_millis() as u64;
    let gateway = Gateway::start(config).await?;
    let handle = gateway.services()[0].clone();
    until("the gateway follows the primary", Duration::from_secs(10), || {
        let view = handle.view();
        view.set.is_some() && view.registries.first().is_some_and(|r| r.in_force)
    })
    .await?;
    // Every change of the registry in force the gateway shows, sampled every 20 ms.
    let history = Arc::new(Mutex::new(vec![0usize]));
    let sampler = {
        let (history, handle) = (history.clone(), handle.clone());
        tokio::spawn(async move {
            loop {
                let now = handle.view().registry_in_force;
                {
                    let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
                    if h.last() != Some(&now) {
                        h.push(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let rust_client = ProviderBuilder::new()
        .connect_client(alloy::rpc::client::RpcClient::new(transport.clone(), false));
    let load = RequestStream::start(rust_client, Duration::from_millis(25));
    let gateway_client =
        ProviderBuilder::new().connect_http(gateway.http_url(DEVNET_SERVICE).parse()?);
    let gateway_load = RequestStream::start(gateway_client, Duration::from_millis(25));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The primary chain halts.
    devnet.halt().await?;
    let halted_at = client(&devnet)?.contract().provider().get_block_number().await?;
    let switched = until("the gateway routes by the secondary's set", SWITCH_BOUND, || {
        handle.view().registry_in_force == 1
    })
    .await?;
    eprintln!("gateway switched to the secondary {switched:?} after the halt");
    assert!(switched >= LIVE_BOUND - Duration::from_secs(1), "not before the head aged");
    // `lifeline routes` shows both registries side by side and which one is in force.
    let routes = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeline"))
        .args(["routes", "--rpc-url", &devnet.rpc_url(), "--registry"])
        .arg(devnet.registry().to_string())
        .args(["--service", DEVNET_SERVICE, "--live-bound-secs", "3", "--also"])
        .arg(format!("{}@{}", secondary.rpc_url(), secondary.registry()))
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .output();
    let routes = tokio::time::timeout(Duration::from_secs(20), routes).await??;
    let text = String::from_utf8_lossy(&routes.stdout);
    assert!(routes.status.success(), "{text}{}", String::from_utf8_lossy(&routes.stderr));
    let row = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).unwrap_or_default();
    assert!(row("0 (primary)").contains("(halted?)"), "{text}");
    assert!(!row("0 (primary)").contains("in force"), "{text}");
    assert!(row("1 ").ends_with("<- in force"), "{text}");

    // An active endpoint dies while the primary is halted: only the secondary can fail it over.
    // (One the primary's frozen set also lists, so only the secondary can have removed it.)
    let set = client(secondary)?.routes(service).await?;
    let frozen = client(&devnet)?.routes(service).await?;
    let victim = set
        .routes
        .iter()
        .find(|r| frozen.routes.iter().any(|f| f.id == r.id))
        .cloned()
        .ok_or_else(|| eyre::eyre!("no route in both sets: {set:?} {frozen:?}"))?;
    devnet.proxies()[usize::from(victim.id)].set(Fault::Down);
    let killed = Instant::now();
    let victim_url = victim.url.trim_end_matches('/').to_string();
    let uses_victim =
        |urls: Vec<String>| urls.iter().any(|u| u.trim_end_matches('/') == victim_url);
    until("the Rust client stops routing to the dead endpoint", Duration::from_secs(30), || {
        !uses_victim(transport.routes().into_iter().map(|r| r.url.to_string()).collect())
    })
    .await?;
    until("the gateway stops routing to the dead endpoint", Duration::from_secs(30), || {
        !uses_victim(handle.transport().routes().into_iter().map(|r| r.url.to_string()).collect())
    })
    .await?;
    eprintln!("failed over through the secondary {:?} after the kill", killed.elapsed());
    assert_eq!(handle.view().registry_in_force, 1, "still the secondary's set");
    let primary = client(&devnet)?;
    assert_eq!(primary.contract().provider().get_block_number().await?, halted_at, "halted");
    assert!(
        primary.routes(service).await?.routes.iter().any(|r| r.id == victim.id),
        "the halted primary still lists it: the failover came from the secondary"
    );

    // The primary mines again: clients return to it, once.
    devnet.resume(1).await?;
    let back = until("the gateway routes by the primary's set again", SWITCH_BOUND, || {
        handle.view().registry_in_force == 0
    })
    .await?;
    eprintln!("gateway back on the primary {back:?} after it resumed");
    tokio::time::sleep(Duration::from_secs(4)).await;
    sampler.abort();
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(history, [0, 1, 0], "one switch there and one back, no flapping");
    // The pending votes were mined with the primary's first blocks: its set excludes the dead
    // endpoint too, and the clients still do not route to it.
    assert!(!uses_victim(transport.routes().into_iter().map(|r| r.url.to_string()).collect()));
    assert!(!uses_victim(
        handle.transport().routes().into_iter().map(|r| r.url.to_string()).collect()
    ));
    assert_eq!(load.errors(), 0, "Rust client errors: {:?}", load.last_error());
    assert_eq!(gateway_load.errors(), 0, "gateway client errors: {:?}", gateway_load.last_error());
    assert!(load.requests() > 100 && gateway_load.requests() > 100);
    gateway.shutdown().await;
    Ok(())
}
