//! The whole pipeline: three `lifeline keeper` processes, each with its own key, watching a
//! devnet whose endpoints are fault-injecting proxies, against the registry deployed by the
//! Foundry scripts. Nothing is scripted on the keepers' behalf: they fill the route set, see the
//! failure, reach quorum and fail over by themselves.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::sol_types::SolCall;
use alloy::{
    consensus::Transaction as _,
    eips::BlockNumberOrTag,
    network::TransactionResponse,
    providers::{Provider, ProviderBuilder},
};
use lifeline_bindings::{RegistryClient, RouteSet, registry::RouteRegistry::attestCall};
use lifeline_devnet::{
    Devnet, DevnetOptions, Fault, KeeperOptions, KeeperProcess, Toolchain, wait_for_routes,
};
use lifeline_keeper::submit::service_sender;

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

async fn devnet_with_keepers(toolchain: &Toolchain) -> eyre::Result<(Devnet, Vec<KeeperProcess>)> {
    let devnet =
        Devnet::start(toolchain, &DevnetOptions { block_time: Some(1.0), ..Default::default() })
            .await?;
    let mut keepers = Vec::new();
    for k in 1..=3 {
        let config = devnet.keeper_config(toolchain, k, &KeeperOptions::default())?;
        keepers.push(devnet.spawn_keeper(toolchain, Path::new(LIFELINE), k, &config)?);
    }
    Ok((devnet, keepers))
}

/// Polls the route set until `done` holds, for at most `limit`.
async fn wait_for<P: Provider>(
    client: &RegistryClient<P>,
    devnet: &Devnet,
    limit: Duration,
    done: impl Fn(&RouteSet) -> bool,
) -> eyre::Result<RouteSet> {
    Ok(wait_for_routes(client, devnet.service_id(), "route set condition", limit, done).await?)
}

fn ids(set: &RouteSet) -> Vec<u16> {
    set.routes.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn keepers_fill_the_set_then_fail_over_a_dead_endpoint() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let (devnet, mut keepers) = devnet_with_keepers(&toolchain).await?;
    let client = RegistryClient::new(
        devnet.registry(),
        ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?),
    );

    let set = wait_for(&client, &devnet, Duration::from_secs(40), |s| s.routes.len() == 2).await?;
    let victim = set.routes[0].id;

    devnet.proxies()[usize::from(victim)].set(Fault::Down);
    let killed = Instant::now();
    let set =
        wait_for(&client, &devnet, Duration::from_secs(40), |s| !ids(s).contains(&victim)).await?;
    let mttr = killed.elapsed();
    assert_eq!(set.routes.len(), 2, "a standby was promoted: {set:?}");
    assert!(set.epoch >= 2);
    eprintln!("failover took {mttr:?}");
    for keeper in &mut keepers {
        assert!(
            keeper.is_running(),
            "keeper {} still running (log: {})",
            keeper.keeper(),
            keeper.log().display()
        );
    }
    Ok(())
}

#[tokio::test]
async fn restarted_keeper_continues_without_replaying_or_losing_attestations() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let (devnet, mut keepers) = devnet_with_keepers(&toolchain).await?;
    let provider = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let client = RegistryClient::new(devnet.registry(), provider.clone());
    wait_for(&client, &devnet, Duration::from_secs(40), |s| s.routes.len() == 2).await?;

    // Crash keeper 1 mid-flight, then start it again.
    let keeper = devnet.account(1).address();
    let before = client.contract().keeperState(keeper, devnet.service_id()).call().await?.lastNonce;
    keepers[0].kill();
    let config = devnet.keeper_config(&toolchain, 1, &KeeperOptions::default())?;
    keepers[0] = devnet.spawn_keeper(&toolchain, Path::new(LIFELINE), 1, &config)?;

    // A fault it must vote on after the restart.
    let set = client.routes(devnet.service_id()).await?;
    let victim = set.routes[0].id;
    devnet.proxies()[usize::from(victim)].set(Fault::Down);
    wait_for(&client, &devnet, Duration::from_secs(40), |s| !ids(s).contains(&victim)).await?;
    let started = Instant::now();
    loop {
        let after =
            client.contract().keeperState(keeper, devnet.service_id()).call().await?.lastNonce;
        if after > before {
            break;
        }
        eyre::ensure!(
            started.elapsed() < Duration::from_secs(40),
            "restarted keeper never attested"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Keeper 1's attestations, in chain order: each carries an attestation nonce above every one
    // accepted before it, so none is a replay or a duplicate of an accepted one, across the
    // restart. (A transaction may still revert when another keeper's vote in the same block
    // moved the epoch first: that is "superseded", not a duplicate.)
    let sender = service_sender(&devnet.account(1), devnet.service_id()).address();
    let head = provider.get_block_number().await?;
    let mut sent = 0;
    let mut accepted_up_to = 0;
    for number in 0..=head {
        let Some(block) =
            provider.get_block_by_number(BlockNumberOrTag::Number(number)).full().await?
        else {
            continue;
        };
        for tx in block.transactions.txns() {
            // Its attestations for the service go out from the service's sender account.
            if tx.from() != sender {
                continue;
            }
            sent += 1;
            let call = attestCall::abi_decode(tx.input())?;
            let nonce = call.attestation.nonce;
            assert!(
                nonce > accepted_up_to,
                "tx {} replays attestation nonce {nonce}",
                tx.tx_hash()
            );
            let receipt = provider.get_transaction_receipt(tx.tx_hash()).await?.expect("mined");
            if receipt.status() {
                accepted_up_to = nonce;
            }
        }
    }
    assert_eq!(
        accepted_up_to,
        client.contract().keeperState(keeper, devnet.service_id()).call().await?.lastNonce
    );
    assert!(sent >= 2, "keeper 1 attested before and after its restart ({sent} txs)");
    Ok(())
}
