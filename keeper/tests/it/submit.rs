//! The submitter against a real registry: a transaction that is not mined in time is replaced
//! with higher fees, and the replacement lands; a transaction whose receipt lags is counted as
//! landed, never sent again; a transaction stuck for one service holds back no other service.

use std::time::Duration;

use alloy::{
    consensus::Transaction as _,
    network::EthereumWallet,
    primitives::{U256, keccak256},
    providers::{Provider, ProviderBuilder, ext::AnvilApi},
};
use lifeline_bindings::Verdict;
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};
use lifeline_keeper::{
    config::SubmitConfig,
    submit::{Submitted, Submitter},
};

use crate::{
    fixture::{Net, sample},
    rpc_proxy::RpcProxy,
};

#[tokio::test]
async fn stuck_transaction_is_replaced_with_higher_fees() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let chain = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let config = SubmitConfig { receipt_timeout_secs: 2, ..Default::default() };
    let submitter = Submitter::connect(
        &[devnet.rpc_url().parse()?],
        devnet.registry(),
        devnet.account(1),
        config,
    )
    .await?;

    // The service's sender is funded already (a top-up would need mining).
    let sender = submitter.sender_of(devnet.service_id());
    chain.anvil_set_balance(sender, U256::from(10).pow(U256::from(18))).await?;
    // Stop mining: the first send sits in the mempool past the receipt timeout.
    chain.anvil_set_auto_mine(false).await?;
    let miner = chain.clone();
    let unstick = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        miner.anvil_set_auto_mine(true).await?;
        miner.anvil_mine(Some(1), None).await?;
        eyre::Ok(())
    });
    let fees = chain.estimate_eip1559_fees().await?;
    let outcome = submitter.submit(devnet.service_id(), Vec::new()).await?;
    unstick.await??;

    let Submitted::Accepted { tx, .. } = outcome else {
        panic!("expected acceptance, got {outcome:?}")
    };
    let mined = chain.get_transaction_by_hash(tx).await?.expect("mined transaction");
    assert!(
        mined.inner.max_fee_per_gas() > fees.max_fee_per_gas,
        "the mined transaction is the fee-bumped replacement ({} > {})",
        mined.inner.max_fee_per_gas(),
        fees.max_fee_per_gas
    );
    assert_eq!(chain.get_transaction_count(sender).await?, 1, "one transaction landed, not two");
    Ok(())
}

/// An RPC whose receipts lag (answers `null` for a while): the transaction landed, the keeper
/// must count it as landed and not send it again with a new nonce or a new attestation.
#[tokio::test]
async fn lagging_receipt_counts_the_landed_attestation() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let chain = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let proxy = RpcProxy::start(devnet.rpc_url()).await?;
    proxy.null_receipts(true);
    let config = SubmitConfig { receipt_timeout_secs: 2, ..Default::default() };
    let submitter =
        Submitter::connect(&[proxy.url().parse()?], devnet.registry(), devnet.account(1), config)
            .await?;

    let outcome = submitter.submit(devnet.service_id(), Vec::new()).await;
    let keeper = devnet.account(1).address();
    let sender = submitter.sender_of(devnet.service_id());
    let registry = lifeline_bindings::RouteRegistry::new(devnet.registry(), &chain);
    assert_eq!(chain.get_transaction_count(sender).await?, 1, "one transaction sent, not more");
    assert_eq!(
        registry.keeperState(keeper, devnet.service_id()).call().await?.lastNonce,
        1,
        "and it was accepted"
    );
    let outcome = outcome?;
    assert!(!matches!(outcome, Submitted::Superseded(_)), "landed, not superseded: {outcome:?}");
    Ok(())
}

/// The whole keeper behind that RPC: a heartbeat every 600 s and a steady network, so only a
/// handful of attestations are due in the window (the first heartbeat, the vouches for the
/// standbys); each landed one counts as landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_receipts_do_not_make_the_keeper_resend() -> eyre::Result<()> {
    let net = Net::start().await?;
    let proxy = RpcProxy::start(net.devnet.rpc_url()).await?;
    proxy.null_receipts(true);
    let toml = net
        .config(Some(&[proxy.url()]), "[submit]\nheartbeat_secs = 600\nreceipt_timeout_secs = 2\n");
    let keeper = net.keeper(1, &toml).await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let sent = net.sent_by(1).await?;
    let address = net.devnet.account(1).address();
    let accepted = net
        .registry
        .contract()
        .keeperState(address, net.devnet.service_id())
        .call()
        .await?
        .lastNonce;
    let text = keeper.metrics.render();
    keeper.stop().await?;
    assert!((1..=3).contains(&sent), "{sent} attestation transactions in 12 s, expected 1 to 3");
    assert_eq!(accepted, sent, "every one sent was accepted");
    let superseded = sample(&text, "lifeline_submissions_total", &[("result", "superseded")]);
    assert_eq!(superseded, 0.0, "landed attestations are not 'superseded':\n{text}");
    assert!(
        sample(&text, "lifeline_submissions_total", &[("result", "accepted")]) >= 1.0,
        "{text}"
    );
    Ok(())
}

/// Service A's transaction is stuck (its node accepts it and never passes it on); service B's
/// vote, submitted after it, still lands while A's submission is waiting. Each service sends
/// from an account of its own (`submit.senders = "per-service"`); with one account
/// (`"signer"`) B would wait behind A's nonce and A's submission.
#[tokio::test]
async fn one_stuck_service_does_not_hold_back_another() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let governor = ProviderBuilder::new()
        .wallet(EthereumWallet::from(devnet.account(0)))
        .connect_http(devnet.rpc_url().parse()?);
    let registry = lifeline_bindings::RouteRegistry::new(devnet.registry(), &governor);
    let (a, b) = (devnet.service_id(), keccak256("second/rpc"));
    let config = registry.service(a).call().await?.config;
    registry.createService(b, "second/rpc".into(), config).send().await?.get_receipt().await?;
    registry
        .addEndpoint(
            b,
            devnet.rpc_url(),
            "eu-west".into(),
            "anvil".into(),
            devnet.account(9).address(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;

    let proxy = RpcProxy::start(devnet.rpc_url()).await?;
    let config = SubmitConfig { receipt_timeout_secs: 4, max_attempts: 3, ..Default::default() };
    let submitter =
        Submitter::connect(&[proxy.url().parse()?], devnet.registry(), devnet.account(1), config)
            .await?;
    assert_ne!(submitter.sender_of(a), submitter.sender_of(b), "one sender per service");
    proxy.stick_sends_from(Some(submitter.sender_of(a)));

    let stuck = submitter.clone();
    let service_a = tokio::spawn(async move { stuck.submit(a, Vec::new()).await });
    // A's transaction is out and stuck before B's vote is submitted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!service_a.is_finished(), "A's submission is waiting on its stuck transaction");
    let vote = Verdict { endpoint: 0, revision: 0, healthy: true, latencyMs: 5, headLag: 0 };
    let outcome = submitter.submit(b, vec![vote]).await?;
    assert!(matches!(outcome, Submitted::Accepted { .. }), "B's vote landed: {outcome:?}");
    assert!(!service_a.is_finished(), "B's vote landed while A's transaction was still stuck");
    let keeper = devnet.account(1).address();
    assert_eq!(registry.keeperState(keeper, b).call().await?.lastNonce, 1, "B's vote is on chain");
    assert_eq!(registry.keeperState(keeper, a).call().await?.lastNonce, 0, "A's is not");

    let a_outcome = service_a.await?;
    assert!(a_outcome.is_err(), "A's stuck transaction never showed: {a_outcome:?}");
    Ok(())
}

/// The epoch moves between the keeper's simulation and its gas estimate (a block landed in
/// between): the estimate's `WrongEpoch` revert means another keeper's attestation changed the
/// set, which is "superseded", not a failed submission.
#[tokio::test]
async fn an_epoch_moved_at_gas_estimation_is_superseded_not_a_failure() -> eyre::Result<()> {
    use alloy::sol_types::SolError;
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let proxy = RpcProxy::start(devnet.rpc_url()).await?;
    let moved = lifeline_bindings::registry::RouteRegistry::WrongEpoch { signed: 1, current: 2 };
    proxy.revert_estimates(Some(moved.abi_encode().into()));
    let submitter = Submitter::connect(
        &[proxy.url().parse()?],
        devnet.registry(),
        devnet.account(1),
        SubmitConfig::default(),
    )
    .await?;
    let outcome = submitter.submit(devnet.service_id(), Vec::new()).await?;
    let Submitted::Superseded(why) = outcome else {
        panic!("expected superseded, got {outcome:?}")
    };
    assert!(why.contains("epoch moved from 1 to 2"), "{why}");
    Ok(())
}
