//! Endpoints serving another chain than the service's, end to end: keepers (in process) and the
//! registry on a devnet whose endpoint proxies report another chain id. The chain id is checked
//! for every endpoint on its own, whether or not the others corroborate a head.

use std::time::Duration;

use lifeline_bindings::client::Status;
use lifeline_devnet::Fault;

use crate::fixture::{Keeper, Net, eventually};

const SERVICE: &str = lifeline_devnet::DEVNET_SERVICE;

/// Waits until every keeper ran at least `rounds` rounds over the four endpoints, then one more
/// block time or two so that any vote they cast has landed.
async fn run_rounds(keepers: &[Keeper], rounds: f64) -> eyre::Result<()> {
    eventually("keepers run their rounds", Duration::from_secs(40), async || {
        Ok(keepers.iter().all(|k| k.probes() >= 4.0 * rounds))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

fn verdicts(keeper: &Keeper, verdict: &str) -> f64 {
    keeper.sample("lifeline_verdicts", &[("service", SERVICE), ("verdict", verdict)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_endpoints_on_wrong_chain_are_never_promoted() -> eyre::Result<()> {
    let net = Net::start().await?;
    for proxy in net.devnet.proxies() {
        proxy.set(Fault::WrongChainId(1));
    }
    let keepers = net.keepers(&[1, 2]).await?;
    run_rounds(&keepers, 8.0).await?;

    for keeper in &keepers {
        assert!(keeper.is_running(), "keeper {} runs", keeper.k);
        assert_eq!(
            verdicts(keeper, "unhealthy"),
            4.0,
            "keeper {}: every endpoint unhealthy",
            keeper.k
        );
        assert_eq!(verdicts(keeper, "healthy"), 0.0, "keeper {}", keeper.k);
        assert!(
            keeper.sample(
                "lifeline_probes_total",
                &[("service", SERVICE), ("finding", "wrong_chain")]
            ) > 0.0,
            "keeper {} names the finding",
            keeper.k
        );
    }
    let endpoints = net.registry.endpoints(net.devnet.service_id()).await?;
    for e in &endpoints {
        assert_ne!(e.status, Status::Active, "endpoint {} promoted: {e:?}", e.id);
        assert!(!e.ready, "endpoint {} made ready: {e:?}", e.id);
        assert_eq!(e.up_votes, 0, "endpoint {} vouched for: {e:?}", e.id);
    }
    assert!(net.registry.routes(net.devnet.service_id()).await?.routes.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_on_wrong_chain_only_the_right_half_is_promoted() -> eyre::Result<()> {
    let net = Net::start().await?;
    net.devnet.proxies()[0].set(Fault::WrongChainId(1));
    net.devnet.proxies()[1].set(Fault::WrongChainId(1));
    let keepers = net.keepers(&[1, 2]).await?;
    let service = net.devnet.service_id();
    eventually("the right half fills the set", Duration::from_secs(40), async || {
        Ok(net.registry.routes(service).await?.routes.len() == 2)
    })
    .await?;
    run_rounds(&keepers, 4.0).await?;

    let set = net.registry.routes(service).await?;
    let mut ids: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 3], "only the endpoints on the service's chain serve: {set:?}");
    for e in &net.registry.endpoints(service).await?[..2] {
        assert!(
            !e.ready && e.up_votes == 0,
            "endpoint {} on the wrong chain vouched for: {e:?}",
            e.id
        );
    }
    for keeper in &keepers {
        assert_eq!(verdicts(keeper, "unhealthy"), 2.0, "keeper {}", keeper.k);
        assert_eq!(verdicts(keeper, "healthy"), 2.0, "keeper {}", keeper.k);
    }
    Ok(())
}

/// A service registered with chain id 0 (a non-EVM service, or one that opts out) has no chain
/// to check: its endpoints are judged on head, hash and latency only, whatever chain id they
/// report (see `chainId` in config/example.json and the keeper's `judge`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_chain_id_zero_checks_no_chain_id() -> eyre::Result<()> {
    let net = Net::start().await?;
    // Re-configure the service with chain id 0 (Configure.s.sol is idempotent).
    let port = net.devnet.rpc_url().rsplit(':').next().unwrap_or_default().to_string();
    let dir = net.toolchain.root().join(format!("target/devnet/{port}"));
    let generated: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let mut config = generated.clone();
    config["services"][0]["config"]["chainId"] = serde_json::json!(0);
    let path = dir.join("config-chain-0.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    net.devnet.configure(&net.toolchain, &path).await?;
    let service = net.devnet.service_id();
    assert_eq!(net.registry.service(service).await?.config.chainId, 0);

    for proxy in net.devnet.proxies() {
        proxy.set(Fault::WrongChainId(1));
    }
    let keepers = net.keepers(&[1, 2]).await?;
    eventually("the set fills", Duration::from_secs(40), async || {
        Ok(net.registry.routes(service).await?.routes.len() == 2)
    })
    .await?;
    for keeper in &keepers {
        assert_eq!(
            keeper.sample(
                "lifeline_probes_total",
                &[("service", SERVICE), ("finding", "wrong_chain")]
            ),
            0.0,
            "keeper {}: chain id 0 is not checked",
            keeper.k
        );
    }
    Ok(())
}
