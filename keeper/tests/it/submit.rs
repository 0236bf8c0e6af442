//! The submitter against a real registry: a transaction that is not mined in time is replaced
//! with higher fees, and the replacement lands; a transaction whose receipt lags is counted as
//! landed, never sent again.

use std::time::Duration;

use alloy::{
    consensus::Transaction as _,
    providers::{Provider, ProviderBuilder, ext::AnvilApi},
};
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
    let keeper = devnet.account(1).address();
    assert_eq!(chain.get_transaction_count(keeper).await?, 1, "one transaction landed, not two");
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
    let registry = lifeline_bindings::RouteRegistry::new(devnet.registry(), &chain);
    assert_eq!(chain.get_transaction_count(keeper).await?, 1, "one transaction sent, not more");
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
