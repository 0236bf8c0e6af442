//! Apps' view: the watcher and the failover transport following the registry on a devnet whose
//! endpoints are fault-injecting proxies.

use std::time::Duration;

use alloy::{
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
};
use lifeline_bindings::{FailoverConfig, FailoverTransport, RegistryClient, Verdict, WatchConfig};
use lifeline_devnet::{Devnet, DevnetOptions, Fault, FaultProxy, Toolchain};

fn unhealthy(endpoint: u16) -> Vec<Verdict> {
    vec![Verdict { endpoint, revision: 0, healthy: false, latencyMs: 0, headLag: 0 }]
}

#[tokio::test]
async fn watcher_picks_up_a_change_within_one_poll_and_resumes_after_rpc_errors() -> eyre::Result<()>
{
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;
    // The watcher reads the registry chain through a proxy the test can break.
    let chain_proxy = FaultProxy::start(devnet.rpc_url()).await?;
    let client = RegistryClient::new(
        devnet.registry(),
        ProviderBuilder::new().connect_http(chain_proxy.url().parse()?),
    );
    let config = WatchConfig {
        poll_interval: Duration::from_millis(50),
        resync_every: 1000,
        ..Default::default()
    };
    let mut watcher = client.watch(devnet.service_id(), config);

    let first = watcher.poll().await?.expect("the first poll yields the current set");
    assert_eq!(first.epoch, 1);
    assert!(watcher.poll().await?.is_none(), "no change, nothing yielded");

    devnet.attest(1, unhealthy(0)).await?;
    devnet.attest(2, unhealthy(0)).await?;
    let next = watcher.poll().await?.expect("picked up by the next poll, from the event");
    assert_eq!(next.epoch, 2);
    assert!(next.routes.iter().all(|r| r.id != 0), "the demoted route is gone");

    chain_proxy.set(Fault::Down);
    assert!(watcher.poll().await.is_err(), "registry unreadable: an error, not a set");
    devnet.attest(1, unhealthy(1)).await?;
    devnet.attest(2, unhealthy(1)).await?;
    chain_proxy.set(Fault::Up);
    let resumed = tokio::time::timeout(Duration::from_secs(10), watcher.next()).await?;
    assert_eq!(resumed.epoch, 3, "resumed and caught the change made while it was blind");
    Ok(())
}

#[tokio::test]
async fn failover_client_follows_the_registry_and_fails_no_request() -> eyre::Result<()> {
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;
    let registry = RegistryClient::new(
        devnet.registry(),
        ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?),
    );
    let transport = FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_millis(500),
        ..Default::default()
    });
    let watch = WatchConfig { poll_interval: Duration::from_millis(50), ..Default::default() };
    let _follower = transport.follow(registry, devnet.service_id(), watch);
    let client = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    for _ in 0..200 {
        if transport.epoch() == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(transport.epoch(), Some(1), "the client took the registry's set");

    let mut errors = 0;
    for i in 0..300 {
        if i == 50 {
            devnet.proxies()[0].set(Fault::Down);
        }
        if i == 100 {
            devnet.attest(1, unhealthy(0)).await?;
            devnet.attest(2, unhealthy(0)).await?;
        }
        if client.get_block_number().await.is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, 0);
    for _ in 0..200 {
        if transport.epoch() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(transport.epoch(), Some(2), "the client followed the new set");
    let urls: Vec<String> = transport.routes().iter().map(|r| r.url.to_string()).collect();
    assert!(
        !urls.contains(&format!("{}/", devnet.proxies()[0].url())),
        "dead route drained: {urls:?}"
    );
    Ok(())
}
