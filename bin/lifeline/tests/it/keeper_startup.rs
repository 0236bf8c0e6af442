//! `lifeline keeper` stops at startup, with one clear message, on what no retry can fix: a
//! registry address without code, a service that is not registered, registry RPC URLs that do
//! not serve the registry's chain, an ambiguous configuration.

use std::{path::PathBuf, process::Stdio, time::Duration};

use alloy::node_bindings::Anvil;
use lifeline_devnet::{DEVNET_SERVICE, Devnet, DevnetOptions, Toolchain};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

struct Run {
    success: bool,
    stderr: String,
}

/// Runs `lifeline keeper` with this configuration as anvil account 1; it must exit within 30 s.
async fn keeper(name: &str, toml: &str, key: &str) -> eyre::Result<Run> {
    let dir = std::env::temp_dir().join(format!("lifeline-keeper-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config: PathBuf = dir.join("keeper.toml");
    std::fs::write(&config, toml)?;
    let child = tokio::process::Command::new(LIFELINE)
        .args(["keeper", "--config"])
        .arg(&config)
        .env("LIFELINE_KEEPER_KEY", key)
        .env_remove("LIFELINE_KEEPER_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let output =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .map_err(|_| eyre::eyre!("`lifeline keeper` ({name}) did not stop within 30 s"))??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn config(rpc_urls: &[String], registry: &str, service: &str) -> String {
    config_with(rpc_urls, registry, "", service)
}

/// `registry_extra` goes into [registry] (e.g. `chain_id = 1`).
fn config_with(rpc_urls: &[String], registry: &str, registry_extra: &str, service: &str) -> String {
    let urls: Vec<String> = rpc_urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[registry]\nrpc_urls = [{}]\naddress = \"{registry}\"\n{registry_extra}\n\n[[service]]\nname = \"{service}\"\n",
        urls.join(", ")
    )
}

/// The message is there once, and no Rust Debug rendering of an error is.
fn assert_said_once(run: &Run, message: &str) {
    assert!(!run.success, "exits non-zero:\n{}", run.stderr);
    assert_eq!(run.stderr.matches(message).count(), 1, "said once: {message}\n{}", run.stderr);
    for debug in ["StartupError", "NoContract {", "UnknownService(", "ChainDisagreement("] {
        assert!(!run.stderr.contains(debug), "no Debug output ({debug}):\n{}", run.stderr);
    }
}

#[tokio::test]
async fn keeper_stops_at_startup_on_a_registry_without_code_or_an_unknown_service()
-> eyre::Result<()> {
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    let key = devnet.account(1).to_bytes().to_string();
    let rpc = [devnet.rpc_url()];

    let nothing = "0x000000000000000000000000000000000000dEaD";
    let run = keeper("no-code", &config(&rpc, nothing, DEVNET_SERVICE), &key).await?;
    assert_said_once(
        &run,
        &format!("no contract at registry.address {nothing} on chain {}", devnet.chain_id()),
    );

    let registry = devnet.registry().to_string();
    let run = keeper("unknown-service", &config(&rpc, &registry, "no-such/rpc"), &key).await?;
    assert_said_once(&run, "service \"no-such/rpc\" is not registered in the registry at");
    Ok(())
}

#[tokio::test]
async fn keeper_stops_at_startup_when_no_registry_rpc_serves_the_registry_chain() -> eyre::Result<()>
{
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &DevnetOptions::default()).await?;
    let other =
        Anvil::at(toolchain.anvil()).arg("--host").arg("127.0.0.1").chain_id(4242).try_spawn()?;
    let other_url = format!("http://127.0.0.1:{}", other.port());
    let key = devnet.account(1).to_bytes().to_string();
    let registry = devnet.registry().to_string();
    let chain_id = format!("chain_id = {}", devnet.chain_id());
    let toml = config_with(std::slice::from_ref(&other_url), &registry, &chain_id, DEVNET_SERVICE);
    let run = keeper("wrong-chain", &toml, &key).await?;
    assert_said_once(
        &run,
        &format!(
            "no registry RPC URL serves the registry's chain {}: {other_url}/ (chain 4242, no contract at {registry})",
            devnet.chain_id()
        ),
    );
    Ok(())
}

#[tokio::test]
async fn keeper_refuses_duplicate_services_and_two_password_sources() -> eyre::Result<()> {
    let base = config(
        &["http://127.0.0.1:1".into()],
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        DEVNET_SERVICE,
    );
    let twice = format!("{base}\n[[service]]\nname = \"{DEVNET_SERVICE}\"\n");
    let run = keeper("twice", &twice, "0x01").await?;
    assert_said_once(
        &run,
        "service.name = \"eth-devnet/rpc\": appears in two [[service]] sections; each service once",
    );

    let both = format!(
        "{base}\n[signer]\nkeystore = \"k.json\"\npassword_file = \"p\"\npassword_env = \"P\"\n"
    );
    let run = keeper("passwords", &both, "0x01").await?;
    assert_said_once(&run, "set either password_file or password_env, not both");
    Ok(())
}
