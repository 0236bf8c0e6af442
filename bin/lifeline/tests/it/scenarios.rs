//! Failure scenarios end to end: keeper processes, the registry, the failover client. Each
//! asserts the final on-chain route set and the client's error count.

use std::time::Duration;

use alloy::{providers::Provider, rpc::types::Filter, sol_types::SolEvent};
use lifeline_bindings::{Verdict, registry::RouteRegistry::DemotionDeferred};
use lifeline_devnet::{Fault, FaultProxy, KeeperOptions};

use crate::world::{FAILOVER_BOUND, World, ids};

/// Puts `fault` on the first active endpoint and waits for the registry to replace it.
async fn fail_over_on(fault: Fault) -> eyre::Result<World> {
    let world = World::start(&[1, 2, 3]).await?;
    let victim = world.routes().await?.routes[0].id;
    world.proxy(victim).set(fault.clone());
    let set = world
        .wait_until(&format!("{fault:?} endpoint replaced"), FAILOVER_BOUND, |s| {
            !ids(s).contains(&victim)
        })
        .await?;
    assert_eq!(set.routes.len(), 2, "a standby took its place: {set:?}");
    world.wait_for_client(set.epoch).await?;
    world.assert_client_clean();
    Ok(world)
}

#[tokio::test]
async fn killed_endpoint_is_replaced() -> eyre::Result<()> {
    fail_over_on(Fault::Down).await.map(drop)
}

#[tokio::test]
async fn stalled_endpoint_is_replaced() -> eyre::Result<()> {
    // Stalled = head older than the keepers' 10 s limit, so this one takes longer.
    let world = World::start(&[1, 2, 3]).await?;
    let victim = world.routes().await?.routes[0].id;
    world.proxy(victim).set(Fault::StalledHead);
    world
        .wait_until("stalled endpoint replaced", FAILOVER_BOUND + Duration::from_secs(15), |s| {
            !ids(s).contains(&victim) && s.routes.len() == 2
        })
        .await?;
    world.assert_client_clean();
    Ok(())
}

#[tokio::test]
async fn lagging_endpoint_is_replaced() -> eyre::Result<()> {
    fail_over_on(Fault::Lag(10)).await.map(drop)
}

#[tokio::test]
async fn forked_endpoint_is_replaced() -> eyre::Result<()> {
    fail_over_on(Fault::DivergentHash).await.map(drop)
}

#[tokio::test]
async fn slow_endpoint_is_replaced() -> eyre::Result<()> {
    // Slower than the keepers' probe timeout; the client hedges around it meanwhile.
    fail_over_on(Fault::Slow(Duration::from_secs(2))).await.map(drop)
}

#[tokio::test]
async fn flapping_endpoint_does_not_thrash_the_set() -> eyre::Result<()> {
    let world = World::start(&[1, 2, 3]).await?;
    let start = world.routes().await?;
    let victim = start.routes[0].id;
    for i in 0..24 {
        world.proxy(victim).set(if i % 2 == 0 { Fault::Down } else { Fault::Up });
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    world.proxy(victim).set(Fault::Up);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = world.routes().await?;
    assert!(
        end.epoch <= start.epoch + 1,
        "at most one change while flapping: {} -> {}",
        start.epoch,
        end.epoch
    );
    assert_eq!(end.routes.len(), 2);
    world.assert_client_clean();
    Ok(())
}

#[tokio::test]
async fn every_endpoint_down_keeps_the_floor_and_fires_the_alarm() -> eyre::Result<()> {
    let world = World::start(&[1, 2, 3]).await?;
    for proxy in world.devnet.proxies() {
        proxy.set(Fault::Down);
    }
    let set = world
        .wait_until(
            "floor holds with a degraded route",
            FAILOVER_BOUND + Duration::from_secs(10),
            |s| s.routes.len() == 1 && s.routes[0].degraded,
        )
        .await?;
    assert_eq!(set.routes.len(), 1, "never below the floor of 1");
    let reader = world.registry.contract().provider();
    let alarms = reader
        .get_logs(
            &Filter::new()
                .address(world.devnet.registry())
                .event_signature(DemotionDeferred::SIGNATURE_HASH)
                .from_block(0),
        )
        .await?;
    assert!(!alarms.is_empty(), "DemotionDeferred(Floor) alarm fired");
    // Nothing healthy exists, so client errors are expected here; the set still stands.
    assert!(world.client_errors() > 0);
    Ok(())
}

#[tokio::test]
async fn keeper_crash_and_restart_does_not_stop_failover() -> eyre::Result<()> {
    let mut world = World::start(&[1, 2, 3]).await?;
    if let Some(keeper) = world.keepers[0].as_mut() {
        keeper.kill();
    }
    // Two keepers are still a quorum.
    let victim = world.routes().await?.routes[0].id;
    world.proxy(victim).set(Fault::Down);
    let set = world
        .wait_until("failover without keeper 1", FAILOVER_BOUND, |s| !ids(s).contains(&victim))
        .await?;
    // Restart keeper 1: it catches up and keeps attesting (nonces read back from the chain).
    let config = world.devnet.keeper_config(&world.toolchain, 1, &KeeperOptions::default())?;
    let lifeline = std::path::Path::new(env!("CARGO_BIN_EXE_lifeline"));
    world.keepers[0] = Some(world.devnet.spawn_keeper(&world.toolchain, lifeline, 1, &config)?);
    let keeper = world.devnet.account(1).address();
    let before = world
        .registry
        .contract()
        .keeperState(keeper, world.devnet.service_id())
        .call()
        .await?
        .lastNonce;
    let mut after = before;
    for _ in 0..150 {
        after = world
            .registry
            .contract()
            .keeperState(keeper, world.devnet.service_id())
            .call()
            .await?
            .lastNonce;
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(after > before, "restarted keeper attests again");
    assert_eq!(world.routes().await?.epoch, set.epoch, "no spurious change on restart");
    world.assert_client_clean();
    Ok(())
}

#[tokio::test]
async fn lying_minority_cannot_change_the_set() -> eyre::Result<()> {
    // Keepers 1 and 2 are honest processes; keeper 3 is a liar driven by the test.
    let world = World::start(&[1, 2]).await?;
    let start = world.routes().await?;
    for _ in 0..5 {
        let lies: Vec<Verdict> = start
            .routes
            .iter()
            .map(|r| Verdict {
                endpoint: r.id,
                revision: 0,
                healthy: false,
                latencyMs: 0,
                headLag: 0,
            })
            .collect();
        world.devnet.attest(3, lies).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let end = world.routes().await?;
    assert_eq!(end.epoch, start.epoch, "one liar is not a quorum");
    assert_eq!(ids(&end), ids(&start));
    world.assert_client_clean();
    Ok(())
}

#[tokio::test]
async fn keeper_losing_its_registry_rpc_does_not_block_failover() -> eyre::Result<()> {
    // Keeper 3 is restarted to reach the registry chain only through a proxy the test kills.
    let mut world = World::start(&[1, 2, 3]).await?;
    let proxy = FaultProxy::start(world.devnet.rpc_url()).await?;
    if let Some(keeper) = world.keepers[2].as_mut() {
        keeper.kill();
    }
    let options = KeeperOptions { registry_rpc: Some(vec![proxy.url()]), ..Default::default() };
    let config = world.devnet.keeper_config(&world.toolchain, 3, &options)?;
    let lifeline = std::path::Path::new(env!("CARGO_BIN_EXE_lifeline"));
    world.keepers[2] = Some(world.devnet.spawn_keeper(&world.toolchain, lifeline, 3, &config)?);
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.set(Fault::Down);
    let victim = world.routes().await?.routes[0].id;
    world.proxy(victim).set(Fault::Down);
    let set = world
        .wait_until("failover with keeper 3 cut off from the registry", FAILOVER_BOUND, |s| {
            !ids(s).contains(&victim)
        })
        .await?;
    assert_eq!(set.routes.len(), 2);
    assert!(
        world.keepers[2].as_mut().is_some_and(|k| k.is_running()),
        "keeper 3 survives the outage"
    );
    world.assert_client_clean();
    Ok(())
}

/// The registry chain reorganises the demotion away (its attestations' transactions vanish with
/// the blocks that held them): the keepers, still seeing the endpoint dead, get it demoted
/// again, their transactions not stuck behind nonces the chain no longer knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_reorganised_away_is_attested_again() -> eyre::Result<()> {
    let world = World::start(&[1, 2, 3]).await?;
    let chain = world.registry.contract().provider().clone();
    let before = world.routes().await?;
    let victim = before.routes[0].id;
    let snapshot: alloy::primitives::U256 = chain.raw_request("evm_snapshot".into(), ()).await?;
    world.proxy(victim).set(Fault::Down);
    let demoted = world
        .wait_until("dead endpoint demoted", FAILOVER_BOUND, |s| !ids(s).contains(&victim))
        .await?;
    // The chain goes back to before the demotion, and then on (a reorganisation).
    let reverted: bool = chain.raw_request("evm_revert".into(), (snapshot,)).await?;
    assert!(reverted, "evm_revert");
    let back = world.routes().await?;
    assert!(ids(&back).contains(&victim), "the demotion is gone: {back:?}");
    let again = world
        .wait_until("demoted again after the reorganisation", FAILOVER_BOUND, |s| {
            !ids(s).contains(&victim)
        })
        .await?;
    assert!(
        again.routes.len() == 2,
        "a standby took its place again: {again:?} (first {demoted:?})"
    );
    Ok(())
}
