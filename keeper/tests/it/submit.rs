//! The submitter against a real registry: a transaction that is not mined in time is replaced
//! with higher fees, and the replacement lands.

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
