//! The registry RPC goes down: the keeper keeps probing and judging the endpoints it last read
//! (only attesting waits), says so in `lifeline_registry_reachable`, and attests again once the
//! registry is back.

use std::time::Duration;

use lifeline_devnet::{Fault, FaultProxy};

use crate::fixture::{Net, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_keeps_probing_and_judging() -> eyre::Result<()> {
    let net = Net::start().await?;
    let rpc = FaultProxy::start(net.devnet.rpc_url()).await?;
    let keeper = net.keeper(1, &net.config(Some(&[rpc.url()]), "")).await?;
    eventually("the keeper judges every endpoint healthy", Duration::from_secs(30), async || {
        Ok(keeper.sample("lifeline_verdicts", &[("verdict", "healthy")]) == 4.0)
    })
    .await?;
    let last_success = keeper.sample("lifeline_registry_last_success_timestamp_seconds", &[]);

    rpc.set(Fault::Down);
    // The round in flight ends; a transaction sent just before may still be mined next block.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = keeper.probes();
    let success_before = keeper.sample("lifeline_registry_last_success_timestamp_seconds", &[]);
    let sent_before = net.sent_by(1).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = keeper.probes();
    // 500 ms rounds over four endpoints: at least 4 rounds in 4 s even on a busy machine.
    assert!(after >= before + 16.0, "probes kept running during the outage: {before} -> {after}");
    assert_eq!(
        keeper.sample("lifeline_verdicts", &[("verdict", "healthy")]),
        4.0,
        "verdicts still reported"
    );
    assert_eq!(keeper.sample("lifeline_registry_reachable", &[]), 0.0);
    assert!(last_success > 1.0e9, "a unix time: {last_success}");
    assert_eq!(
        keeper.sample("lifeline_registry_last_success_timestamp_seconds", &[]),
        success_before,
        "no registry read succeeded during the outage"
    );
    assert_eq!(net.sent_by(1).await?, sent_before, "nothing attested while blind to the registry");
    assert!(keeper.is_running());

    rpc.set(Fault::Up);
    eventually("the registry is reachable again", Duration::from_secs(15), async || {
        Ok(keeper.sample("lifeline_registry_reachable", &[]) == 1.0)
    })
    .await?;
    assert!(
        keeper.sample("lifeline_registry_last_success_timestamp_seconds", &[]) > last_success,
        "last success moves on"
    );
    keeper.stop().await
}
