//! A failed probe is confirmed by an immediate re-probe, not a round later: with one round an
//! hour, a dead endpoint is still flagged after the first round (today's vote then goes out in
//! that same round), while the hysteresis (`fail_after` failed probes in a row) still holds.
//! (On this fresh devnet the endpoints are not-ready standbys, so no vote is due; the votes of
//! a flagged active endpoint are the failover scenarios' and the failover benchmark's subject.)

use std::time::Duration;

use lifeline_devnet::Fault;

use crate::fixture::{Net, eventually};

const SERVICE: &str = lifeline_devnet::DEVNET_SERVICE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoint_is_flagged_within_one_round() -> eyre::Result<()> {
    let net = Net::start().await?;
    net.devnet.proxies()[0].set(Fault::Down);
    // One round an hour: anything flagged during this test was flagged in the first round.
    let toml = format!(
        r#"
[registry]
rpc_urls = ["{rpc}"]
address = "{registry}"

[probe]
interval_ms = 3600000
timeout_ms = 400
jitter_pct = 0

[judge]
fail_after = 2
recover_after = 1

[[service]]
name = "{SERVICE}"
"#,
        rpc = net.devnet.rpc_url(),
        registry = net.devnet.registry(),
    );
    let keeper = net.keeper(1, &toml).await?;
    eventually("endpoint 0 flagged in the first round", Duration::from_secs(60), async || {
        Ok(keeper.sample("lifeline_verdicts", &[("service", SERVICE), ("verdict", "unhealthy")])
            == 1.0)
    })
    .await?;
    // Two failed probes of endpoint 0 (the round's and the confirmation), one each of the rest.
    let failed = keeper
        .sample("lifeline_probes_total", &[("service", SERVICE), ("finding", "unreachable")])
        + keeper
            .sample("lifeline_probes_total", &[("service", SERVICE), ("finding", "http_status")])
        + keeper.sample("lifeline_probes_total", &[("service", SERVICE), ("finding", "timeout")]);
    assert_eq!(failed, 2.0, "fail_after = 2 probes in a row, no more: {}", keeper.metrics.render());
    keeper.stop().await
}
