//! `make bench`: the failover benchmark. A devnet (1 s blocks, four endpoint proxies), three
//! keeper processes probing every 500 ms (quorum 2), and three clients side by side facing the
//! same kills: (a) Lifeline's failover transport following the registry, (b) a plain alloy
//! HTTP provider on the initially active endpoint, (c) alloy's FallbackLayer over the initial
//! route list. Each kill takes down the first active endpoint and measures the time until the
//! on-chain set excludes it (MTTR). Writes `target/bench/failover.json`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
    transports::{http::Http, layers::FallbackLayer},
};
use lifeline_bindings::{FailoverConfig, FailoverTransport, RegistryClient, RouteSet, WatchConfig};
use lifeline_devnet::{
    Devnet, DevnetOptions, Fault, KeeperOptions, RequestStream, Toolchain, wait_for_routes,
    write_report,
};
use tower::ServiceBuilder;

const KILLS: usize = 20;
const PROBE_INTERVAL_MS: u64 = 500;
const BLOCK_TIME_MS: u64 = 1000;
const KEEPERS: usize = 3;
const QUORUM: u8 = 2;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(
        &toolchain,
        &DevnetOptions {
            block_time: Some(BLOCK_TIME_MS as f64 / 1000.0),
            keepers: KEEPERS,
            quorum: QUORUM,
            // Short, so killed endpoints come back as standbys between kills.
            cooldown: 4,
            // Twenty kills in a few minutes: lift the blast-radius rail for the benchmark.
            max_demotions: 100,
            ..Default::default()
        },
    )
    .await?;
    let lifeline = Path::new(env!("CARGO_BIN_EXE_lifeline"));
    let options = KeeperOptions { probe_interval_ms: PROBE_INTERVAL_MS, ..Default::default() };
    let mut keepers = Vec::new();
    for k in 1..=KEEPERS {
        let config = devnet.keeper_config(&toolchain, k, &options)?;
        keepers.push(devnet.spawn_keeper(&toolchain, lifeline, k, &config)?);
    }

    let reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let registry = RegistryClient::new(devnet.registry(), reader);
    let service = devnet.service_id();
    let initial = wait_for_routes(&registry, service, "two routes", Duration::from_secs(60), |s| {
        s.routes.len() == 2
    })
    .await?;
    eprintln!("keepers filled the set: {:?}", ids(&initial));

    // (a) Lifeline.
    let transport = FailoverTransport::new(FailoverConfig::default());
    let _follower = transport.follow(
        registry.clone(),
        service,
        WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() },
    );
    while transport.epoch() < Some(initial.epoch) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let lifeline_client =
        ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
    // (b) A plain provider on the initially active endpoint.
    let single = ProviderBuilder::new().connect_http(initial.routes[0].url.parse()?);
    // (c) alloy's FallbackLayer over the initial route list, as configured out of the box
    // (it races each request on up to 3 transports: here both routes).
    let fallback_transport = ServiceBuilder::new().layer(FallbackLayer::default()).service(
        initial
            .routes
            .iter()
            .map(|r| r.url.parse().map(Http::new))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let fallback = ProviderBuilder::new()
        .connect_client(RpcClient::builder().transport(fallback_transport, false));

    let period = Duration::from_millis(25);
    let load_lifeline = RequestStream::start(lifeline_client, period);
    let load_single = RequestStream::start(single, period);
    let load_fallback = RequestStream::start(fallback, period);

    let mut mttr_ms = Vec::new();
    for kill in 1..=KILLS {
        let set = wait_for_routes(&registry, service, "two routes", Duration::from_secs(60), |s| {
            s.routes.len() == 2
        })
        .await?;
        let victim = set.routes[0].id;
        devnet.proxies()[usize::from(victim)].set(Fault::Down);
        let killed = Instant::now();
        wait_for_routes(&registry, service, "victim excluded", Duration::from_secs(60), |s| {
            !ids(s).contains(&victim)
        })
        .await?;
        let ms = killed.elapsed().as_millis() as u64;
        eprintln!("kill {kill:>2}/{KILLS}: endpoint {victim} excluded after {ms} ms");
        mttr_ms.push(ms);
        // Revive it; it returns as a standby after its cooldown and a fresh healthy quorum.
        tokio::time::sleep(Duration::from_secs(1)).await;
        devnet.proxies()[usize::from(victim)].set(Fault::Up);
        wait_ready(&registry, service, victim).await?;
    }

    mttr_ms.sort_unstable();
    let pct = |p: f64| mttr_ms[((mttr_ms.len() as f64 - 1.0) * p).round() as usize];
    let report = serde_json::json!({
        "benchmark": "failover",
        "kills": KILLS,
        "mttr_ms_p50": pct(0.5),
        "mttr_ms_p95": pct(0.95),
        "mttr_ms_max": mttr_ms.last(),
        "client_requests": load_lifeline.requests(),
        "client_errors": load_lifeline.errors(),
        "baseline_single_requests": load_single.requests(),
        "baseline_single_errors": load_single.errors(),
        "baseline_alloy_fallback_requests": load_fallback.requests(),
        "baseline_alloy_fallback_errors": load_fallback.errors(),
        "baseline_alloy_fallback_routes": initial.routes.len(),
        "baseline_alloy_fallback_config": "FallbackLayer::default() (races up to 3 transports per request)",
        "probe_interval_ms": PROBE_INTERVAL_MS,
        "block_time_ms": BLOCK_TIME_MS,
        "keepers": KEEPERS,
        "quorum": QUORUM,
        "goals": { "mttr_ms_p50": 2500, "mttr_ms_p95": 4000, "client_errors": 0 },
    });
    write_report(&toolchain, "failover", &report)?;
    for keeper in &mut keepers {
        keeper.stop(Duration::from_secs(3));
    }
    Ok(())
}

fn ids(set: &RouteSet) -> Vec<u16> {
    set.routes.iter().map(|r| r.id).collect()
}

async fn wait_ready<P: Provider>(
    registry: &RegistryClient<P>,
    service: alloy::primitives::B256,
    endpoint: u16,
) -> eyre::Result<()> {
    let started = Instant::now();
    loop {
        let e = registry.contract().endpoint(service, endpoint).call().await?;
        if e.ready || e.status == 2 {
            return Ok(());
        }
        eyre::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "endpoint {endpoint} never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
