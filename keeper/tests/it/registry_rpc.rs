//! The keeper's registry RPC URLs are pinned to the registry's chain: a URL of another chain is
//! dropped (never read from, never signed for, never sent to), and a URL whose `eth_call`
//! answers with empty data is not an answer: the next URL is asked. Reads that belong together
//! name one block.

use std::time::Duration;

use alloy::{
    node_bindings::Anvil,
    providers::{Provider, ProviderBuilder},
};
use lifeline_bindings::{RegistryClient, RouteRegistry};
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};
use lifeline_keeper::{
    config::SubmitConfig,
    rpc::RegistryRpc,
    submit::{Submitted, Submitter},
};

use crate::{
    fixture::{Net, eventually},
    rpc_proxy::RpcProxy,
};

fn config() -> SubmitConfig {
    SubmitConfig { receipt_timeout_secs: 2, ..Default::default() }
}

#[tokio::test]
async fn registry_rpc_on_another_chain_is_dropped() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    // Another chain, same dev accounts (funded there too), no registry.
    let other =
        Anvil::at(toolchain.anvil()).arg("--host").arg("127.0.0.1").chain_id(4242).try_spawn()?;
    let other_url = format!("http://127.0.0.1:{}", other.port());
    let urls = [other_url.parse()?, devnet.rpc_url().parse()?];
    let keeper = devnet.account(1);
    let address = keeper.address();
    let submitter = Submitter::connect(&urls, devnet.registry(), keeper, config()).await?;

    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        submitter.submit(devnet.service_id(), Vec::new()),
    )
    .await??;
    assert!(matches!(outcome, Submitted::Accepted { .. }), "{outcome:?}");

    let chain = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(devnet.registry(), &chain);
    assert_eq!(
        registry.keeperState(address, devnet.service_id()).call().await?.lastNonce,
        1,
        "landed on the registry"
    );
    let elsewhere = ProviderBuilder::new().connect_http(other_url.parse()?);
    for account in [address, submitter.sender_of(devnet.service_id())] {
        assert_eq!(
            elsewhere.get_transaction_count(account).await?,
            0,
            "nothing sent to the other chain from {account}"
        );
    }
    Ok(())
}

/// A URL that failed shows its chain again before it serves again: one that comes back on
/// another chain is dropped, never read from.
#[tokio::test]
async fn registry_rpc_that_comes_back_on_another_chain_is_dropped() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let other =
        Anvil::at(toolchain.anvil()).arg("--host").arg("127.0.0.1").chain_id(4242).try_spawn()?;
    let (p1, p2) =
        (RpcProxy::start(devnet.rpc_url()).await?, RpcProxy::start(devnet.rpc_url()).await?);
    let urls = [p1.url().parse()?, p2.url().parse()?];
    let rpc = RegistryRpc::connect(&urls, devnet.registry(), None).await?;
    assert_eq!(rpc.chain_id(), devnet.chain_id());
    let client = RegistryClient::new(devnet.registry(), rpc.provider());
    let service = devnet.service_id();
    client.service(service).await?;

    p1.down(true);
    client.service(service).await?; // from p2
    p1.set_upstream(format!("http://127.0.0.1:{}", other.port()));
    p1.down(false);
    p2.down(true);
    let err = client.service(service).await.expect_err("p1 serves another chain now, p2 is down");
    assert!(err.to_string().contains("serves chain 4242"), "{err}");
    assert_eq!(rpc.urls(), [urls[1].clone()], "p1 dropped for good");
    p2.down(false);
    client.service(service).await?;
    Ok(())
}

#[tokio::test]
async fn empty_call_result_moves_to_the_next_url() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let proxy = RpcProxy::start(devnet.rpc_url()).await?;
    proxy.empty_calls(true);
    let urls = [proxy.url().parse()?, devnet.rpc_url().parse()?];
    let keeper = devnet.account(1);
    let address = keeper.address();
    let submitter = Submitter::connect(&urls, devnet.registry(), keeper, config()).await?;

    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        submitter.submit(devnet.service_id(), Vec::new()),
    )
    .await??;
    assert!(matches!(outcome, Submitted::Accepted { .. }), "{outcome:?}");
    let chain = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(devnet.registry(), &chain);
    assert_eq!(registry.keeperState(address, devnet.service_id()).call().await?.lastNonce, 1);
    Ok(())
}

/// The keeper's reads that belong together (a service's config, epoch and endpoints with this
/// keeper's state; the epoch, keeper nonce and config version an attestation is signed with)
/// name one block, so they never mix two states of the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_reads_that_belong_together_come_from_one_block() -> eyre::Result<()> {
    use alloy::sol_types::SolCall;
    use lifeline_bindings::registry::RouteRegistry::{
        endpointCall, keeperStateCall, keepersCall, serviceCall,
    };

    let net = Net::start().await?;
    let proxy = RpcProxy::start(net.devnet.rpc_url()).await?;
    let keeper = net.keeper(1, &net.config(Some(&[proxy.url()]), "")).await?;
    eventually("a refresh and a submission", Duration::from_secs(30), async || {
        Ok(net.sent_by(1).await? >= 1 && keeper.probes() >= 8.0)
    })
    .await?;
    keeper.stop().await?;

    // (selector, block) of every eth_call.
    let calls: Vec<([u8; 4], Option<u64>)> = proxy
        .calls()
        .iter()
        .filter_map(|call| {
            let params = call.get("params")?;
            let tx = params.get(0)?;
            let input = tx.get("input").or_else(|| tx.get("data"))?.as_str()?;
            let bytes = alloy::hex::decode(input).ok()?;
            let selector: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            let block = params
                .get(1)
                .and_then(|b| b.as_str())
                .and_then(|b| u64::from_str_radix(b.strip_prefix("0x")?, 16).ok());
            Some((selector, block))
        })
        .collect();
    let at = |selector: [u8; 4]| -> Vec<Option<u64>> {
        calls.iter().filter(|(s, _)| *s == selector).map(|(_, b)| *b).collect()
    };
    let endpoints = at(endpointCall::SELECTOR);
    let versions = at(keepersCall::SELECTOR);
    assert!(!endpoints.is_empty() && !versions.is_empty(), "a refresh and a signature happened");
    for block in endpoints.iter().chain(&versions) {
        let Some(block) = block else {
            panic!("a read that belongs with others names no block: {calls:?}")
        };
        // The rest of its group was read at the same block.
        assert!(at(serviceCall::SELECTOR).contains(&Some(*block)), "service() at {block}");
        assert!(at(keeperStateCall::SELECTOR).contains(&Some(*block)), "keeperState() at {block}");
    }
    Ok(())
}
