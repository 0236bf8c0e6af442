//! `make bench-registry-halt`: the primary registry chain halts, again and again. A devnet with
//! two registry chains (`DevnetOptions::registries = 2`, 1 s blocks, four endpoint proxies), three
//! keeper processes attesting on both, and two clients streaming a request every 25 ms: a Rust
//! client (a failover transport kept on the set the bindings' `RegistrySet` chooses) and the
//! gateway (following both registries). Each registry's primary is read through three RPCs, one
//! of which forges `authorisedRoutes` (a set of one route to a listener that counts connections).
//!
//! Each of `HALTS` cycles: the primary stops mining (`anvil_setAutomine false`,
//! `evm_setIntervalMining 0`); `switch_ms` = halt -> both clients route by the secondary's set;
//! then an active endpoint is killed (`mttr_ms` = kill -> neither client routes to it: only the
//! secondary can fail it over); then the primary mines again, both clients return to it, and the
//! endpoint comes back. Writes `target/bench/registry-halt.json`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RegistryClient,
    quorum::{QuorumReader, RegistrySet},
};
use lifeline_devnet::{
    CountingListener, DEVNET_SERVICE, Devnet, DevnetOptions, Fault, FaultProxy, KeeperOptions,
    RequestStream, Toolchain, wait_for_routes, write_report,
};
use lifeline_gateway::{Gateway, GatewayConfig};

const HALTS: usize = 10;
const LIVE_BOUND: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(200);
const STEP_LIMIT: Duration = Duration::from_secs(30);

fn client(url: &str, devnet: &Devnet) -> eyre::Result<RegistryClient<DynProvider>> {
    let provider = ProviderBuilder::new().connect_http(url.parse()?).erased();
    Ok(RegistryClient::new(devnet.registry(), provider))
}

async fn until(what: &str, check: impl Fn() -> bool) -> eyre::Result<Duration> {
    let started = Instant::now();
    loop {
        if check() {
            return Ok(started.elapsed());
        }
        eyre::ensure!(started.elapsed() < STEP_LIMIT, "{what}: not within {STEP_LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(values: &[u64], p: f64) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[((v.len() as f64 - 1.0) * p).round() as usize])
}

fn urls<C>(transport: &FailoverTransport<C>) -> Vec<String>
where
    C: lifeline_bindings::transport::Connector,
{
    transport
        .routes()
        .into_iter()
        .map(|r| r.url.to_string().trim_end_matches('/').to_string())
        .collect()
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let started = Instant::now();
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(
        &toolchain,
        &DevnetOptions {
            block_time: Some(1.0),
            registries: 2,
            cooldown: 4,
            max_demotions: 100,
            ..Default::default()
        },
    )
    .await?;
    let secondary = &devnet.secondaries()[0];
    let lifeline = std::path::Path::new(env!("CARGO_BIN_EXE_lifeline"));
    let mut keepers = Vec::new();
    for k in 1..=3 {
        let config = devnet.keeper_config(&toolchain, k, &KeeperOptions::default())?;
        keepers.push(devnet.spawn_keeper(&toolchain, lifeline, k, &config)?);
    }
    let service = devnet.service_id();
    for chain in [&devnet, secondary] {
        wait_for_routes(
            &client(&chain.rpc_url(), chain)?,
            service,
            "keepers fill the set",
            STEP_LIMIT,
            |s| s.routes.len() == 2,
        )
        .await?;
    }

    // The primary read through three RPCs, one of them lying.
    let honest = FaultProxy::start(devnet.rpc_url()).await?;
    let liar = FaultProxy::start(devnet.rpc_url()).await?;
    let trap = CountingListener::start().await?;
    liar.set(Fault::forged_route_set(
        devnet.registry(),
        &format!("http://127.0.0.1:{}/", trap.port()),
        1_000_000,
    ));
    let primary_urls = [devnet.rpc_url(), honest.url(), liar.url()];

    // The Rust client: the bindings' rule, applied to a failover transport, the registry in
    // force recorded.
    let readers = vec![
        QuorumReader::new(
            primary_urls.iter().map(|u| client(u, &devnet)).collect::<eyre::Result<Vec<_>>>()?,
            2,
            0,
        ),
        QuorumReader::new(vec![client(&secondary.rpc_url(), secondary)?], 1, 0),
    ];
    // Kept to count the forged answers the quorum outvoted (clones share the counter).
    let primary_reader = readers[0].clone();
    let transport = FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_millis(800),
        ..Default::default()
    });
    let client_in_force = Arc::new(AtomicUsize::new(usize::MAX));
    let follower = {
        let (transport, in_force) = (transport.clone(), client_in_force.clone());
        let mut watcher =
            RegistrySet::new(readers, LIVE_BOUND, Duration::from_secs(30)).watch(service, POLL);
        tokio::spawn(async move {
            loop {
                let round = watcher.next().await;
                if let (true, Some(choice)) = (round.changed, &round.choice) {
                    transport.apply_canonical(&choice.set);
                    in_force.store(choice.registry, Ordering::Relaxed);
                }
            }
        })
    };
    // The gateway, following both registries, the primary through the same three RPCs.
    let mut config =
        GatewayConfig::loopback(&devnet.rpc_url(), devnet.registry(), &[DEVNET_SERVICE]);
    config.registries[0].rpc_urls = primary_urls[1..].to_vec();
    config.registries[0].quorum = Some(2);
    let mut second = config.primary().clone();
    second.rpc_url = secondary.rpc_url();
    second.address = secondary.registry();
    second.rpc_urls = Vec::new();
    second.quorum = None;
    config.registries.push(second);
    config.registry_choice.live_bound_ms = LIVE_BOUND.as_millis() as u64;
    let gateway = Gateway::start(config).await?;
    let handle = gateway.services()[0].clone();
    let on = |registry: usize| {
        client_in_force.load(Ordering::Relaxed) == registry
            && handle.view().registry_in_force == registry
            && handle.view().set.is_some()
    };
    until("both clients follow the primary", || on(0)).await?;
    let rust_client = ProviderBuilder::new()
        .connect_client(alloy::rpc::client::RpcClient::new(transport.clone(), false));
    let load = RequestStream::start(rust_client, Duration::from_millis(25));
    let gateway_client =
        ProviderBuilder::new().connect_http(gateway.http_url(DEVNET_SERVICE).parse()?);
    let gateway_load = RequestStream::start(gateway_client, Duration::from_millis(25));

    let (mut switch_ms, mut mttr_ms, mut back_ms) = (Vec::new(), Vec::new(), Vec::new());
    let primary = client(&devnet.rpc_url(), &devnet)?;
    let second_reader = client(&secondary.rpc_url(), secondary)?;
    for halt in 0..HALTS {
        // Both registries settled: two routes each, none dead, both clients on the primary.
        until("both clients on the primary", || on(0)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        devnet.halt().await?;
        let halted = Instant::now();
        until("both clients on the secondary", || on(1)).await?;
        switch_ms.push(halted.elapsed().as_millis() as u64);

        // An active endpoint of the secondary's set (of both sets when they share one) dies
        // while the primary is halted.
        let set = second_reader.routes(service).await?;
        let frozen = primary.routes(service).await?;
        let victim = set
            .routes
            .iter()
            .find(|r| frozen.routes.iter().any(|f| f.id == r.id))
            .or(set.routes.first())
            .cloned()
            .ok_or_else(|| eyre::eyre!("the secondary's set is empty"))?;
        let proxy = &devnet.proxies()[usize::from(victim.id)];
        let url = victim.url.trim_end_matches('/').to_string();
        proxy.set(Fault::Down);
        let killed = Instant::now();
        until("neither client routes to the dead endpoint", || {
            !urls(&transport).contains(&url) && !urls(handle.transport()).contains(&url)
        })
        .await?;
        mttr_ms.push(killed.elapsed().as_millis() as u64);

        // The primary mines again: the pending votes land, and the clients return to it.
        devnet.resume(1).await?;
        let resumed = Instant::now();
        until("both clients back on the primary", || on(0)).await?;
        back_ms.push(resumed.elapsed().as_millis() as u64);
        proxy.set(Fault::Up);
        // The endpoint cools down (4 s) and comes back as a standby; both sets full again.
        for reader in [&primary, &second_reader] {
            wait_for_routes(reader, service, "the set full again", STEP_LIMIT, |s| {
                s.routes.len() == 2 && s.routes.iter().all(|r| r.id != victim.id || !r.degraded)
            })
            .await?;
        }
        eprintln!(
            "halt {}: switch {} ms, mttr {} ms, back {} ms",
            halt + 1,
            switch_ms[halt],
            mttr_ms[halt],
            back_ms[halt]
        );
    }
    let client_errors = load.errors() + gateway_load.errors();
    let report = serde_json::json!({
        "benchmark": "registry-halt",
        "halts": HALTS,
        "switch_ms_p50": percentile(&switch_ms, 0.5),
        "switch_ms_p95": percentile(&switch_ms, 0.95),
        "switch_ms_p95_goal": LIVE_BOUND.as_millis() as u64 + 2000,
        "live_bound_ms": LIVE_BOUND.as_millis() as u64,
        "endpoint_kills_while_halted": mttr_ms.len(),
        "mttr_ms_p50_while_halted": percentile(&mttr_ms, 0.5),
        "mttr_ms_p95_while_halted": percentile(&mttr_ms, 0.95),
        "return_ms_p50": percentile(&back_ms, 0.5),
        "return_ms_p95": percentile(&back_ms, 0.95),
        "client_errors": client_errors,
        "client_requests": load.requests() + gateway_load.requests(),
        "forged_route_requests": trap.accepted(),
        "forged_answers_outvoted_rust_client": primary_reader.dissents(),
        "liar_eth_calls": liar.calls("eth_call"),
        "block_time_ms": 1000,
        "registry_poll_ms": POLL.as_millis() as u64,
        "clients": "a Rust failover transport on RegistrySet + the gateway, a request every 25 ms each; the primary read through 3 RPCs (quorum 2), one forging authorisedRoutes",
        "per_halt": switch_ms.iter().zip(&mttr_ms).zip(&back_ms).map(|((s, m), b)| serde_json::json!({
            "switch_ms": s, "mttr_ms": m, "return_ms": b,
        })).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs(),
    });
    follower.abort();
    gateway.shutdown().await;
    drop(keepers);
    write_report(&toolchain, "registry-halt", &report)?;
    eyre::ensure!(
        client_errors == 0,
        "{client_errors} client errors (last: {:?} / {:?})",
        load.last_error(),
        gateway_load.last_error()
    );
    eyre::ensure!(trap.accepted() == 0, "a request reached the forged route");
    Ok(())
}
