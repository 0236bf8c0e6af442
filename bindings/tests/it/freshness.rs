//! Head-aware routing against anvil behind the fault proxies: for each fault that answers
//! without an error (lagging, stalled, wrong chain, forked, a forged block hash, a fabricated
//! future head), the faulty route ranks first, the chain moves on, and no stale or wrong answer
//! reaches the caller: neither once the head polls have seen the fault, nor from the moment it
//! begins (`*_from_its_first_moment`: the polls run every 30 s, so only the checks on each
//! answer and the pinned state reads stand between the fault and the caller).

use std::time::{Duration, Instant};

use alloy::node_bindings::AnvilInstance;
use alloy::{
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    rpc::{client::RpcClient, types::TransactionRequest},
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport,
    client::{Route, RouteSet},
    transport::freshness::FreshnessConfig,
};
use lifeline_devnet::{Fault, FaultProxy, Toolchain, block_probe, forks};

use crate::support::Chain;

/// Receives 1 wei per block, so its balance tells which block a state read was answered at.
const WITNESS: Address = Address::repeat_byte(0x77);
const MAX_LAG: u64 = 2;

/// Routes: the faulty one first (lowest attested latency), two honest ones.
fn set(proxies: &[FaultProxy]) -> RouteSet {
    RouteSet {
        epoch: 1,
        last_attested: 0,
        stale: false,
        routes: proxies
            .iter()
            .enumerate()
            .map(|(i, p)| Route {
                id: i as u16,
                url: p.url(),
                region: "eu".into(),
                provider: "p".into(),
                latency_ms: if i == 0 { 1 } else { 50 },
                degraded: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// When the reads start.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Onset {
    /// After the head polls (every 150 ms) have seen the fault.
    Polled,
    /// The moment the fault begins, with head polls every 30 s.
    Sudden,
}

/// Runs reads through the transport for 4 s while the chain makes a block every 250 ms, with
/// `fault` on the first route; returns (reads, errors) after asserting none was stale or wrong.
async fn reads_under(
    label: &str,
    onset: Onset,
    fault: impl AsyncFnOnce(&Chain) -> eyre::Result<(Fault, Option<AnvilInstance>)>,
) -> eyre::Result<(u64, u64)> {
    let chain = Chain::start().await?;
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(FaultProxy::start(chain.rpc_url()).await?);
    }
    let transport = FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_millis(800),
        freshness: FreshnessConfig {
            max_lag_blocks: MAX_LAG,
            poll_interval: match onset {
                Onset::Polled => Duration::from_millis(150),
                Onset::Sudden => Duration::from_secs(30),
            },
            ..Default::default()
        },
        ..Default::default()
    });
    transport.apply(&set(&proxies));
    let client = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));

    // The chain moves: one transfer to the witness per block (automine), straight to anvil.
    let miner = chain.provider.clone();
    let blocks = tokio::spawn(async move {
        for _ in 0..60 {
            let tx = TransactionRequest::default().to(WITNESS).value(U256::from(1));
            if let Ok(pending) = miner.send_transaction(tx).await {
                let _ = pending.get_receipt().await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (fault, _other_node) = fault(&chain).await?;
    // Every route answered before the fault (so the faulty one ranks first and is trusted),
    // and the transport knows where the head is at the onset (with polls 30 s apart, only
    // answers that show a new head make it look again).
    for _ in 0..3 {
        client.get_block_number().await?;
    }
    proxies[0].set(fault);
    if onset == Onset::Polled {
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let probe = block_probe::deploy(&chain.provider).await?;

    let (mut reads, mut errors) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let truth = chain.provider.get_block_number().await?;
        reads += 3;
        match client.get_block_number().await {
            Ok(n) => assert!(n + MAX_LAG >= truth, "{label}: stale head {n} (chain at {truth})"),
            Err(_) => errors += 1,
        }
        match client.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await {
            Ok(Some(block)) => {
                let n = block.header.number;
                assert!(n + MAX_LAG >= truth, "{label}: stale latest block {n} (chain at {truth})");
                let canonical = chain.provider.get_block_by_number(n.into()).await?;
                assert_eq!(
                    canonical.map(|b| b.header.hash),
                    Some(block.header.hash),
                    "{label}: block {n} is not the chain's"
                );
            }
            Ok(None) | Err(_) => errors += 1,
        }
        let truth_balance = chain.provider.get_balance(WITNESS).await?;
        match client.get_balance(WITNESS).await {
            Ok(balance) => assert!(
                balance + U256::from(MAX_LAG) >= truth_balance,
                "{label}: stale state: balance {balance}, chain has {truth_balance}"
            ),
            Err(_) => errors += 1,
        }
        // eth_call of a contract that returns (block.number, blockhash(block.number - 1)).
        reads += 1;
        let truth = chain.provider.get_block_number().await?;
        let call = TransactionRequest::default().to(probe);
        match client.call(call).await.map(|answer| block_probe::read(&answer).ok_or(answer)) {
            Ok(Ok((n, parent_hash))) => {
                assert!(n + MAX_LAG >= truth, "{label}: stale eth_call at {n} (chain at {truth})");
                let parent = chain.provider.get_block_by_number((n - 1).into()).await?;
                assert_eq!(
                    parent.map(|b| b.header.hash),
                    Some(parent_hash),
                    "{label}: eth_call saw another chain's block {}",
                    n - 1
                );
            }
            Ok(Err(answer)) => {
                panic!("{label}: eth_call answered {answer} (not this chain's contract)")
            }
            Err(_) => errors += 1,
        }
    }
    blocks.abort();
    let skipped =
        transport.routes().into_iter().find(|r| r.url.as_str().starts_with(&proxies[0].url()));
    if onset == Onset::Polled {
        assert!(
            skipped.as_ref().is_some_and(|r| r.skip.is_some()),
            "{label}: the faulty route is reported skipped: {skipped:?}"
        );
    }
    Ok((reads, errors))
}

async fn plain(fault: Fault) -> eyre::Result<(Fault, Option<AnvilInstance>)> {
    Ok((fault, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_route_never_answers_a_read() -> eyre::Result<()> {
    lagging(Onset::Polled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_route_never_answers_a_read_from_its_first_moment() -> eyre::Result<()> {
    lagging(Onset::Sudden).await
}

async fn lagging(onset: Onset) -> eyre::Result<()> {
    let (reads, errors) = reads_under("lag", onset, async |_| plain(Fault::Lag(6)).await).await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_route_never_answers_a_read() -> eyre::Result<()> {
    let (reads, errors) =
        reads_under("stalled", Onset::Polled, async |_| plain(Fault::StalledHead).await).await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_head_liar_does_not_make_the_honest_routes_lag() -> eyre::Result<()> {
    future_head(Onset::Polled, 1_000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_head_is_never_served_from_its_first_moment() -> eyre::Result<()> {
    // Five blocks ahead: the least the fault-mix benchmark fabricates.
    future_head(Onset::Sudden, 5).await
}

async fn future_head(onset: Onset, ahead: u64) -> eyre::Result<()> {
    let (reads, errors) =
        reads_under("future head", onset, async |_| plain(Fault::FutureHead(ahead)).await).await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_block_hash_is_never_served() -> eyre::Result<()> {
    forged_hash(Onset::Polled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_block_hash_is_never_served_from_its_first_moment() -> eyre::Result<()> {
    forged_hash(Onset::Sudden).await
}

async fn forged_hash(onset: Onset) -> eyre::Result<()> {
    let (reads, errors) =
        reads_under("divergent hash", onset, async |_| plain(Fault::DivergentHash).await).await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_chain_route_never_answers_a_read() -> eyre::Result<()> {
    wrong_chain(Onset::Polled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_chain_route_never_answers_a_read_from_its_first_moment() -> eyre::Result<()> {
    wrong_chain(Onset::Sudden).await
}

async fn wrong_chain(onset: Onset) -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let (reads, errors) = reads_under("wrong chain", onset, async |_| {
        let other = forks::other_chain(&toolchain, 1, Some(0.25)).await?;
        Ok((forks::wrong_chain(&other), Some(other)))
    })
    .await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_route_never_answers_a_read() -> eyre::Result<()> {
    forked(Onset::Polled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_route_never_answers_a_read_from_its_first_moment() -> eyre::Result<()> {
    forked(Onset::Sudden).await
}

async fn forked(onset: Onset) -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    // A fork of the chain that mines its own blocks: same history, then other hashes.
    let (reads, errors) = reads_under("forked", onset, async |chain| {
        let fork = forks::fork_of(&toolchain, &chain.rpc_url(), Some(0.25)).await?;
        Ok((forks::forked(&fork), Some(fork)))
    })
    .await?;
    assert!(reads > 10 && errors == 0, "reads {reads}, errors {errors}");
    Ok(())
}

/// A state read right after the caller's own transaction was mined sees it (read your own
/// writes), though the head polls (every 30 s here) have not seen that block: the receipt's
/// block is the least a pinned read is asked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reads_see_the_callers_own_writes() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(FaultProxy::start(chain.rpc_url()).await?);
    }
    let transport = FailoverTransport::new(FailoverConfig {
        freshness: FreshnessConfig { poll_interval: Duration::from_secs(30), ..Default::default() },
        ..Default::default()
    });
    transport.apply(&set(&proxies));
    let signer: alloy::signers::local::PrivateKeySigner = chain.anvil.keys()[1].clone().into();
    let sender = signer.address();
    let client = ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(signer))
        .connect_client(RpcClient::new(transport.clone(), false));
    let start_nonce = client.get_transaction_count(sender).await?;
    let start_balance = client.get_balance(WITNESS).await?;
    for i in 1..=5u64 {
        let tx = TransactionRequest::default().to(WITNESS).value(U256::from(1));
        let receipt = client.send_transaction(tx).await?.get_receipt().await?;
        assert!(receipt.status(), "transfer {i} mined");
        assert_eq!(client.get_transaction_count(sender).await?, start_nonce + i, "nonce after {i}");
        assert_eq!(
            client.get_balance(WITNESS).await?,
            start_balance + U256::from(i),
            "balance after {i}"
        );
    }
    Ok(())
}
