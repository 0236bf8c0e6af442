//! The failover transport against a real anvil behind fault-injecting proxies the test controls.

use std::time::{Duration, Instant};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, U256},
    providers::{Provider, ProviderBuilder},
    rpc::{
        client::RpcClient,
        types::{Filter, Log, TransactionRequest},
    },
    sol_types::SolEvent,
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RouteRegistry,
    client::{Route, RouteSet},
    transport::freshness::FreshnessConfig,
};
use lifeline_devnet::{Fault, FaultProxy};

use crate::support::Chain;

/// anvil plus `n` proxies in front of it.
async fn proxies(chain: &Chain, n: usize) -> eyre::Result<Vec<FaultProxy>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(FaultProxy::start(chain.rpc_url()).await?);
    }
    Ok(out)
}

fn route_set(epoch: u32, proxies: &[&FaultProxy]) -> RouteSet {
    RouteSet {
        epoch,
        last_attested: 0,
        stale: false,
        routes: proxies
            .iter()
            .enumerate()
            .map(|(i, p)| Route {
                id: i as u16,
                url: p.url(),
                region: "local".into(),
                provider: "anvil".into(),
                // Keeper-attested latency seeds the ranking: proxy 0 first.
                latency_ms: 5 + i as u32,
                degraded: false,
            })
            .collect(),
        ..Default::default()
    }
}

fn config() -> FailoverConfig {
    FailoverConfig {
        attempt_timeout: Duration::from_millis(500),
        hedge_after: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn killing_the_route_in_use_during_a_request_stream_fails_zero_requests() -> eyre::Result<()>
{
    let chain = Chain::start().await?;
    let p = proxies(&chain, 3).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1], &p[2]]));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    // The route in use is the best-ranked one; kill it (down), then kill the next one in use
    // (hang), then bring the first back.
    let in_use = |transport: &FailoverTransport| {
        let best = transport.routes()[0].url.to_string();
        p.iter().position(|proxy| best.starts_with(&proxy.url())).expect("a known route")
    };
    let mut errors = 0;
    let mut killed = Vec::new();
    for i in 0..300 {
        if i == 50 || i == 120 {
            let victim = in_use(&transport);
            assert!(p[victim].requests() > 0, "the victim was serving");
            p[victim].set(if i == 50 { Fault::Down } else { Fault::Hang });
            killed.push(victim);
        }
        if i == 200 {
            p[killed[0]].set(Fault::Up);
        }
        if provider.get_block_number().await.is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, 0, "no request failed while a healthy route existed");
    assert_ne!(killed[0], killed[1], "the second kill hit the route that took over");
    assert!(transport.stats().failovers >= 1, "{:?}", transport.stats());
    p[killed[1]].set(Fault::Up); // release hung connections
    Ok(())
}

#[tokio::test]
async fn http_5xx_429_garbage_and_lagging_node_errors_fail_over() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 2).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1]]));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    for fault in [
        Fault::HttpStatus(503),
        Fault::HttpStatus(500),
        Fault::HttpStatus(429),
        Fault::Garbage,
        Fault::RpcError { code: -32000, message: "header not found".into() },
        Fault::RpcError { code: -32000, message: "missing trie node abc".into() },
    ] {
        p[0].set(fault.clone());
        let before = p[1].requests();
        provider.get_block_number().await.map_err(|e| eyre::eyre!("{fault:?}: {e}"))?;
        assert!(p[1].requests() > before, "{fault:?}: answered by the second route");
    }
    Ok(())
}

#[tokio::test]
async fn reverts_are_returned_not_retried() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 2).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1]]));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
    let registry = RouteRegistry::new(chain.registry, &provider);

    let err = registry.authorisedRoutes(B256::ZERO).call().await.expect_err("reverts");
    let decoded = lifeline_bindings::Error::from(err);
    assert!(
        matches!(decoded.revert(), Some(RouteRegistry::RouteRegistryErrors::UnknownService(_))),
        "{decoded}"
    );
    assert_eq!(
        callers_requests(&p[1]),
        0,
        "a revert is an answer: the second route was never asked"
    );
    Ok(())
}

#[tokio::test]
async fn all_routes_down_gives_one_error_naming_every_route() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 3).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1], &p[2]]));
    p[0].set(Fault::Down);
    p[1].set(Fault::HttpStatus(502));
    p[2].set(Fault::Hang);
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport, false));

    let err = provider.get_block_number().await.expect_err("nothing healthy").to_string();
    for proxy in &p {
        assert!(err.contains(&proxy.url()), "{} named in: {err}", proxy.url());
    }
    assert!(err.contains("HTTP 502") && err.contains("no answer within"), "{err}");
    p[2].set(Fault::Up);
    Ok(())
}

#[tokio::test]
async fn slow_reads_are_hedged_to_the_next_route() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 2).await?;
    // Head-aware routing would skip the slow route outright (its head poll never answers in
    // time); hedging is what is tested here.
    let transport = FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_secs(10),
        hedge_after: Some(Duration::from_millis(50)),
        freshness: FreshnessConfig { enabled: false, ..Default::default() },
        ..Default::default()
    });
    transport.apply(&route_set(1, &[&p[0], &p[1]]));
    p[0].set(Fault::Slow(Duration::from_secs(5)));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport, false));

    let started = Instant::now();
    provider.get_block_number().await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered by the hedge, not the slow route"
    );
    assert_eq!((p[0].requests(), p[1].requests()), (1, 1), "both routes were asked");
    Ok(())
}

#[tokio::test]
async fn raw_transactions_go_to_every_route_and_land_once() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 3).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1], &p[2]]));
    p[2].set(Fault::Down);
    let sender: alloy::signers::local::PrivateKeySigner = chain.anvil.keys()[1].clone().into();
    let from = sender.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(sender))
        .connect_client(RpcClient::new(transport, false));

    let nonce = provider.get_transaction_count(from).await?;
    let down_before = p[2].requests();
    let tx =
        TransactionRequest::default().with_to(Address::repeat_byte(0x77)).with_value(U256::from(1));
    let receipt = provider.send_transaction(tx).await?.get_receipt().await?;
    assert!(receipt.status());
    assert_eq!(provider.get_transaction_count(from).await?, nonce + 1, "exactly one inclusion");
    for (i, proxy) in p[..2].iter().enumerate() {
        assert_eq!(
            proxy.calls("eth_sendRawTransaction"),
            1,
            "route {i} was sent the transaction once"
        );
    }
    assert!(p[2].requests() > down_before, "the down route was tried too (its connection dropped)");
    Ok(())
}

/// Requests a proxy received from callers: all of them minus the transport's head polls
/// (`eth_chainId`, `eth_getBlockByNumber("latest")`, which these tests make no other way).
fn callers_requests(proxy: &FaultProxy) -> u64 {
    proxy.requests() - proxy.calls("eth_chainId") - proxy.calls("eth_getBlockByNumber")
}

/// Mines `n` empty blocks on anvil directly (not through the transport).
async fn mine(chain: &Chain, n: u64) -> eyre::Result<()> {
    let _: serde_json::Value = chain.provider.raw_request("anvil_mine".into(), (n,)).await?;
    Ok(())
}

#[tokio::test]
async fn filters_survive_the_loss_of_the_route_that_created_them() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let p = proxies(&chain, 2).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1]]));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    let start = chain.provider.get_block_number().await?;
    let blocks = provider.new_block_filter().await?;
    let logs = provider.new_filter(&Filter::new().address(chain.registry)).await?;
    assert_eq!(callers_requests(&p[1]), 0, "both filters were made while route 0 served");
    assert_eq!(p[0].calls("eth_newFilter") + p[0].calls("eth_newBlockFilter"), 0, "kept locally");

    p[0].set(Fault::Down);
    // An event and more blocks, made on the chain directly.
    let registry = RouteRegistry::new(chain.registry, &chain.provider);
    registry
        .setKeepers(vec![Address::repeat_byte(0x11)], vec![B256::repeat_byte(0x22)])
        .send()
        .await?
        .get_receipt()
        .await?;
    mine(&chain, 2).await?;
    let head = chain.provider.get_block_number().await?;
    assert_eq!(head, start + 3);

    let hashes: Vec<B256> = provider.get_filter_changes(blocks).await?;
    let mut expected = Vec::new();
    for n in start + 1..=head {
        let block = chain.provider.get_block_by_number(n.into()).await?;
        expected.push(block.ok_or_else(|| eyre::eyre!("block {n}"))?.header.hash);
    }
    assert_eq!(hashes, expected, "each new block once, answered by route 1");
    let new_logs: Vec<Log> = provider.get_filter_changes(logs).await?;
    assert_eq!(new_logs.len(), 1, "{new_logs:?}");
    assert_eq!(new_logs[0].topic0(), Some(&RouteRegistry::KeeperSetUpdated::SIGNATURE_HASH));
    assert_eq!(new_logs[0].block_number, Some(start + 1));
    assert!(provider.get_filter_changes::<B256>(blocks).await?.is_empty(), "nothing new");
    assert!(p[1].calls("eth_getLogs") > 0, "route 1 answered");
    assert_eq!(p[1].calls("eth_getFilterChanges"), 0, "filters never reach a route");

    assert!(provider.uninstall_filter(blocks).await?);
    let err = provider.get_filter_changes::<B256>(blocks).await.expect_err("uninstalled");
    assert!(err.to_string().contains("filter not found"), "{err}");
    Ok(())
}

#[tokio::test]
async fn block_number_never_goes_backwards_on_failover_to_a_lagging_route() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    mine(&chain, 10).await?;
    let p = proxies(&chain, 2).await?;
    let transport = FailoverTransport::new(config());
    transport.apply(&route_set(1, &[&p[0], &p[1]]));
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    let head = provider.get_block_number().await?;
    assert_eq!(transport.served_head(), Some(head));
    p[1].set(Fault::Lag(3));
    p[0].set(Fault::Down);
    let err = provider.get_block_number().await.expect_err("3 blocks behind").to_string();
    assert!(err.contains(&p[1].url()), "{err}");
    assert!(err.contains("behind the head already served"), "{err}");
    assert_eq!(transport.served_head(), Some(head));

    mine(&chain, 4).await?;
    assert_eq!(provider.get_block_number().await?, head + 1, "ahead again: returned");
    Ok(())
}
