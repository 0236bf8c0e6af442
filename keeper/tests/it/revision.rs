//! Issue 13 F01 end to end: governance points an active route at a new URL; the registry takes it
//! out of service under a new endpoint revision, and keepers (in process) judge the new URL and
//! vote about that revision (read from the registry's endpoint view) until it is ready again.

use std::time::Duration;

use alloy::{network::EthereumWallet, providers::ProviderBuilder};
use lifeline_bindings::{RouteRegistry, client::Status};

use crate::fixture::{Net, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_url_is_judged_afresh_under_its_new_revision() -> eyre::Result<()> {
    let net = Net::start().await?;
    let service = net.devnet.service_id();
    let _keepers = net.keepers(&[1, 2]).await?;
    eventually("the set fills", Duration::from_secs(40), async || {
        Ok(net.registry.routes(service).await?.routes.len() == 2)
    })
    .await?;

    let set = net.registry.routes(service).await?;
    let victim = set.routes[0].id;
    // Another proxy's URL: a healthy target the keepers never judged as this endpoint.
    let other =
        (0..net.devnet.proxies().len()).find(|&i| i != usize::from(victim)).expect("4 proxies");
    let new_url = net.devnet.proxies()[other].url();
    let governor = ProviderBuilder::new()
        .wallet(EthereumWallet::from(net.devnet.account(0)))
        .connect_http(net.devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(net.devnet.registry(), &governor);
    let before = registry.endpoint(service, victim).call().await?;
    registry
        .updateEndpoint(service, victim, new_url.clone(), before.provider.clone(), before.operator)
        .send()
        .await?
        .get_receipt()
        .await?;

    let after = registry.endpoint(service, victim).call().await?;
    assert_eq!(after.revision, before.revision + 1, "revision bumped");
    assert_eq!(Status::from_raw(after.status), Some(Status::Standby), "out of the set");
    assert!(!after.ready, "not ready: no keeper judged the new URL yet");
    assert!(
        net.registry.routes(service).await?.routes.iter().all(|r| r.id != victim),
        "no longer a route"
    );

    // Only verdicts naming revision 1 count: the keepers must read it and put it in their votes.
    eventually("the re-pointed endpoint is ready again", Duration::from_secs(40), async || {
        let e = registry.endpoint(service, victim).call().await?;
        Ok(e.ready || Status::from_raw(e.status) == Some(Status::Active))
    })
    .await?;
    assert_eq!(registry.endpoint(service, victim).call().await?.url, new_url);
    Ok(())
}
