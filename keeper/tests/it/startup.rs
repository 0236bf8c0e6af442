//! Startup: permanent misconfiguration stops the keeper with one clear message; a key not (yet)
//! in the keeper set is normal while a keeper-set change is pending: the keeper probes and
//! judges, says so in `lifeline_keeper_in_set`, and attests once the registry lists it.

use std::time::Duration;

use crate::fixture::{Net, eventually};

async fn start_error(net: &Net, toml: &str) -> String {
    match net.keeper(1, toml).await {
        Ok(_) => panic!("the keeper started with:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn registry_address_without_code_stops_the_keeper_at_startup() -> eyre::Result<()> {
    let net = Net::start().await?;
    let nothing = "0x000000000000000000000000000000000000dEaD";
    let toml = net.config(None, "").replace(&net.devnet.registry().to_string(), nothing);
    let err = start_error(&net, &toml).await;
    assert!(
        err.starts_with(&format!(
            "no contract at registry.address {nothing} on chain {}",
            net.devnet.chain_id()
        )),
        "{err}"
    );
    assert!(err.contains(&net.devnet.rpc_url()), "names the URL asked: {err}");
    Ok(())
}

#[tokio::test]
async fn unknown_service_stops_the_keeper_at_startup() -> eyre::Result<()> {
    let net = Net::start().await?;
    let toml = net.config(None, "").replace(lifeline_devnet::DEVNET_SERVICE, "no-such/rpc");
    let err = start_error(&net, &toml).await;
    assert_eq!(
        err,
        format!(
            "service \"no-such/rpc\" is not registered in the registry at {} (chain {}): check [[service]] name",
            net.devnet.registry(),
            net.devnet.chain_id()
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_outside_the_keeper_set_waits_then_attests() -> eyre::Result<()> {
    let net = Net::start().await?;
    // anvil account 5 is not among the devnet's keepers (1..=3).
    let keeper = net.keeper(5, &net.config(None, "")).await?;
    eventually(
        "it probes meanwhile",
        Duration::from_secs(20),
        async || Ok(keeper.probes() >= 16.0),
    )
    .await?;
    assert_eq!(keeper.sample("lifeline_keeper_in_set", &[]), 0.0);
    assert_eq!(net.sent_by(5).await?, 0, "nothing attested from outside the set");
    assert!(keeper.is_running());

    // Governance adds it (Configure.s.sol with one more keeper).
    let port = net.devnet.rpc_url().rsplit(':').next().unwrap_or_default().to_string();
    let dir = net.toolchain.root().join(format!("target/devnet/{port}"));
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let keepers = config["keepers"].as_array_mut().ok_or_else(|| eyre::eyre!("no keepers"))?;
    keepers.push(serde_json::json!({
        "address": net.devnet.account(5).address().to_string(),
        "vantage": "sa-east",
    }));
    let path = dir.join("config-keeper-5.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    net.devnet.configure(&net.toolchain, &path).await?;

    eventually("it joins and attests", Duration::from_secs(40), async || {
        Ok(keeper.sample("lifeline_keeper_in_set", &[]) == 1.0 && net.sent_by(5).await? > 0)
    })
    .await?;
    keeper.stop().await
}
