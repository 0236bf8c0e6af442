//! Route sets no single RPC can forge, and a service on two registries (see
//! `lifeline_bindings::quorum`), against registries deployed by the Foundry scripts on anvil.

use std::time::{Duration, Instant};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RegistryClient, RouteSet,
    quorum::{QuorumError, QuorumReader, RegistrySet},
};
use lifeline_devnet::{Devnet, DevnetOptions, Fault, FaultProxy, Toolchain};

fn client(devnet: &Devnet, url: &str) -> eyre::Result<RegistryClient<DynProvider>> {
    let provider = ProviderBuilder::new().connect_http(url.parse()?).erased();
    Ok(RegistryClient::new(devnet.registry(), provider))
}

/// The URLs the transport routes by.
fn routed(transport: &FailoverTransport) -> Vec<String> {
    transport.routes().into_iter().map(|r| r.url.to_string()).collect()
}

/// A devnet whose route set is filled, the set as the registry holds it, and three proxies in
/// front of its chain to read the registry through.
async fn registry_behind_three_rpcs() -> eyre::Result<(Devnet, RouteSet, Vec<FaultProxy>)> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;
    let honest = client(&devnet, &devnet.rpc_url())?.routes(devnet.service_id()).await?;
    let mut rpcs = Vec::new();
    for _ in 0..3 {
        rpcs.push(FaultProxy::start(devnet.rpc_url()).await?);
    }
    Ok((devnet, honest, rpcs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_rpc_that_forges_the_route_set_is_outvoted() -> eyre::Result<()> {
    let (devnet, honest, rpcs) = registry_behind_three_rpcs().await?;
    // The third RPC URL answers authorisedRoutes with a forged set that sends everything to an
    // address of the liar's choosing.
    let evil = "http://127.0.0.1:9/steal";
    rpcs[2].set(Fault::forged_route_set(devnet.registry(), evil, honest.epoch + 1));
    let lone = QuorumReader::new(vec![client(&devnet, &rpcs[2].url())?], 1, 0);
    let lied = lone.routes(devnet.service_id()).await?;
    assert_eq!(lied.set.routes[0].url, evil, "alone, the liar decides (the forgery works)");

    let clients =
        rpcs.iter().map(|p| client(&devnet, &p.url())).collect::<eyre::Result<Vec<_>>>()?;
    let reader = QuorumReader::new(clients, 2, 0);
    let agreed = reader.routes(devnet.service_id()).await?;
    assert_eq!(agreed.set.routes, honest.routes, "the quorum's set is the registry's");
    assert_eq!(agreed.agreeing, 2);
    assert_eq!(reader.dissents(), 1, "the liar is counted");

    // A client following through the quorum never routes to the forged address.
    let transport = FailoverTransport::new(FailoverConfig::default());
    let registries =
        RegistrySet::new(vec![reader.clone()], Duration::from_secs(30), Duration::from_secs(30));
    let _follower = registries.follow(&transport, devnet.service_id(), Duration::from_millis(100));
    let started = Instant::now();
    while transport.epoch().is_none() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let urls = routed(&transport);
    assert_eq!(urls.len(), honest.routes.len(), "{urls:?}");
    assert!(urls.iter().all(|u| !u.contains("steal")), "{urls:?}");

    // An honest URL down leaves one honest answer against the liar: no quorum, no set.
    rpcs[1].set(Fault::Down);
    match reader.routes(devnet.service_id()).await {
        Err(QuorumError::TooFew { .. } | QuorumError::Disagreement { .. }) => {}
        other => panic!("one honest answer against a liar is no quorum: {other:?}"),
    }
    Ok(())
}

/// Honest registry RPCs that are down or behind only narrow the margin: with three URLs and a
/// quorum of two, one down still gives the registry's set (two agree), and so does one lagging
/// (the read is at the head the other two reached: a URL behind cannot drag it back to an older
/// set); only when fewer than the quorum answer is there no set (the follower keeps the last
/// one: fail static).
#[tokio::test]
async fn a_registry_rpc_down_or_lagging_only_narrows_the_margin() -> eyre::Result<()> {
    let (devnet, honest, rpcs) = registry_behind_three_rpcs().await?;
    let clients =
        rpcs.iter().map(|p| client(&devnet, &p.url())).collect::<eyre::Result<Vec<_>>>()?;
    let reader = QuorumReader::new(clients, 2, 0);

    rpcs[0].set(Fault::Down);
    let agreed = reader.routes(devnet.service_id()).await?;
    assert_eq!(
        (agreed.set.routes.clone(), agreed.agreeing),
        (honest.routes.clone(), 2),
        "one down"
    );

    rpcs[0].set(Fault::Up);
    rpcs[1].set(Fault::Lag(2));
    let head = client(&devnet, &devnet.rpc_url())?.contract().provider().get_block_number().await?;
    let agreed = reader.routes(devnet.service_id()).await?;
    assert_eq!(
        (agreed.set.routes.clone(), agreed.agreeing),
        (honest.routes.clone(), 2),
        "one behind"
    );
    assert_eq!(agreed.set.block.map(|b| b.number), Some(head), "read at the quorum's head");

    rpcs[1].set(Fault::Down);
    rpcs[2].set(Fault::Down);
    match reader.routes(devnet.service_id()).await {
        Err(QuorumError::TooFew { .. }) => {}
        other => panic!("one answer is below the quorum: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_the_secondary_registry_while_the_primary_chain_halts() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let options = DevnetOptions { block_time: Some(1.0), ..Default::default() };
    let primary = Devnet::start(&toolchain, &options).await?;
    let secondary = Devnet::start(&toolchain, &options).await?;
    primary.bootstrap_routes().await?;
    secondary.bootstrap_routes().await?;
    let service = primary.service_id();
    let urls_of = |devnet: &Devnet| -> Vec<String> {
        devnet.proxies()[..2].iter().map(|p| format!("{}/", p.url())).collect()
    };
    let registries = RegistrySet::new(
        vec![
            QuorumReader::new(vec![client(&primary, &primary.rpc_url())?], 1, 0),
            QuorumReader::new(vec![client(&secondary, &secondary.rpc_url())?], 1, 0),
        ],
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let transport = FailoverTransport::new(FailoverConfig::default());
    let _follower = registries.follow(&transport, service, Duration::from_millis(200));
    let wait_for = async |want: &[String], what: &str, limit: Duration| -> eyre::Result<Duration> {
        let started = Instant::now();
        loop {
            let mut urls = routed(&transport);
            urls.sort();
            if urls == want {
                return Ok(started.elapsed());
            }
            eyre::ensure!(started.elapsed() < limit, "{what}: routing by {urls:?}, want {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (mut on_primary, mut on_secondary) = (urls_of(&primary), urls_of(&secondary));
    on_primary.sort();
    on_secondary.sort();
    wait_for(&on_primary, "the primary's set while it is live", Duration::from_secs(10)).await?;

    // The primary chain halts (no more blocks): after live_bound (3 s) its set is not live.
    let halt = |devnet: &Devnet, seconds: u64| {
        let url = devnet.rpc_url();
        async move {
            let provider = ProviderBuilder::new().connect_http(url.parse()?);
            provider
                .raw_request::<_, serde_json::Value>("evm_setIntervalMining".into(), (seconds,))
                .await?;
            eyre::Ok(())
        }
    };
    halt(&primary, 0).await?;
    let switched = wait_for(
        &on_secondary,
        "the secondary's set while the primary halts",
        Duration::from_secs(10),
    )
    .await?;
    assert!(
        switched >= Duration::from_secs(2),
        "not before the primary's head aged ({switched:?})"
    );

    // The primary comes back: clients return to it.
    halt(&primary, 1).await?;
    wait_for(&on_primary, "the primary's set once it is live again", Duration::from_secs(10))
        .await?;
    Ok(())
}
