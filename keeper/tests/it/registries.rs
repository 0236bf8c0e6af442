//! One keeper, two registries on two chains (`[[registry]]`): it attests on both, each with its
//! own chain pin and nonces; a registry unreachable at startup is retried while the other one
//! attests, and a registry RPC that hangs never delays the attestations on the other.

use std::time::{Duration, Instant};

use alloy::providers::{Provider, ProviderBuilder};
use lifeline_devnet::{Devnet, DevnetOptions, Fault, FaultProxy};
use lifeline_keeper::submit::service_sender;

use crate::fixture::{Net, eventually};

/// Attestation transactions keeper `k` sent for the devnet's service on the chain at `url`:
/// the account nonce of its sender for the service (see `submit.senders`).
async fn sent_on(url: &str, net: &Net, k: usize) -> eyre::Result<u64> {
    let provider = ProviderBuilder::new().connect_http(url.parse()?);
    let sender = service_sender(&net.devnet.account(k), net.devnet.service_id());
    Ok(provider.get_transaction_count(sender.address()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_attests_on_two_registries_and_a_stuck_one_delays_nothing() -> eyre::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let net = Net::start().await?;
    let secondary = Devnet::start(
        &net.toolchain,
        &DevnetOptions { block_time: Some(1.0), chain_id: Some(31_338), ..Default::default() },
    )
    .await?;
    assert_ne!(secondary.chain_id(), net.devnet.chain_id());
    // The keeper reads the secondary registry through a proxy the test controls: down at start.
    let rpc = FaultProxy::start(secondary.rpc_url()).await?;
    rpc.set(Fault::Down);
    let (primary_url, secondary_url) = (net.devnet.rpc_url(), secondary.rpc_url());
    let toml = net
        .config(None, "")
        .replacen("[registry]", "[[registry]]", 1)
        .replacen(
            "[probe]",
            &format!(
                "[[registry]]\nrpc_urls = [\"{}\"]\naddress = \"{}\"\nchain_id = {}\n\n[submit]\nheartbeat_secs = 2\n\n[probe]",
                rpc.url(),
                secondary.registry(),
                secondary.chain_id()
            ),
            1,
        );
    let keeper = net.keeper(1, &toml).await?;

    // Registry 1 is down at startup: the keeper runs and attests on registry 0 meanwhile.
    eventually("the keeper attests on the primary registry", Duration::from_secs(20), async || {
        Ok(sent_on(&primary_url, &net, 1).await? >= 1)
    })
    .await?;
    assert_eq!(
        sent_on(&secondary_url, &net, 1).await?,
        0,
        "nothing sent to a registry it cannot reach"
    );
    assert_eq!(keeper.sample("lifeline_registry_reachable", &[("registry", "1")]), 0.0);
    assert_eq!(keeper.sample("lifeline_registry_reachable", &[("registry", "0")]), 1.0);

    // It comes up: the keeper starts attesting there too (retried with backoff).
    rpc.set(Fault::Up);
    eventually(
        "the keeper attests on the secondary registry",
        Duration::from_secs(30),
        async || Ok(sent_on(&secondary_url, &net, 1).await? >= 1),
    )
    .await?;
    eventually("both registries' endpoints judged", Duration::from_secs(20), async || {
        Ok(keeper.sample("lifeline_verdicts", &[("verdict", "healthy"), ("registry", "0")]) == 4.0
            && keeper.sample("lifeline_verdicts", &[("verdict", "healthy"), ("registry", "1")])
                == 4.0)
    })
    .await?;

    // The secondary's RPC hangs (a stuck registry): attestations on the primary keep their
    // pace (a heartbeat every 2 s), and the keeper says which registry is unreachable.
    rpc.set(Fault::Hang);
    let hung = Instant::now();
    let before = sent_on(&primary_url, &net, 1).await?;
    eventually(
        "the hanging registry is reported unreachable",
        Duration::from_secs(20),
        async || Ok(keeper.sample("lifeline_registry_reachable", &[("registry", "1")]) == 0.0),
    )
    .await?;
    let window = Duration::from_secs(10).saturating_sub(hung.elapsed()).max(Duration::from_secs(6));
    tokio::time::sleep(window).await;
    let after = sent_on(&primary_url, &net, 1).await?;
    let elapsed = hung.elapsed().as_secs();
    // One heartbeat every 2 s (plus the next block): at least one per 4 s, whatever the other
    // registry does.
    assert!(
        after >= before + elapsed / 4,
        "the primary kept its pace while the secondary hung: {before} -> {after} in {elapsed} s"
    );
    assert_eq!(keeper.sample("lifeline_registry_reachable", &[("registry", "0")]), 1.0);
    assert!(keeper.is_running());
    keeper.stop().await
}
