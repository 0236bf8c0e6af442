//! The `lifeline` command's read-only faces: `routes` on a live devnet, and refusing bad input.

use std::process::Command;

use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

#[tokio::test]
async fn routes_prints_the_set_and_every_endpoint_state() -> eyre::Result<()> {
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;
    let output = Command::new(LIFELINE)
        .args(["routes", "--service", "eth-devnet/rpc"])
        .env("LIFELINE_RPC_URL", devnet.rpc_url())
        .env("LIFELINE_REGISTRY", devnet.registry().to_string())
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("epoch     1"), "{text}");
    assert!(text.contains("2 authorised (target 2, floor 1, quorum 2 keepers)"), "{text}");
    assert_eq!(text.matches("serving").count(), 2, "{text}");
    assert_eq!(text.matches("ready to promote").count(), 2, "{text}");

    let json = Command::new(LIFELINE)
        .args(["routes", "--service", "eth-devnet/rpc", "--json"])
        .env("LIFELINE_RPC_URL", devnet.rpc_url())
        .env("LIFELINE_REGISTRY", devnet.registry().to_string())
        .output()?;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(value["routeSet"]["routes"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[test]
fn keeper_refuses_a_bad_config_naming_the_field() -> eyre::Result<()> {
    let dir = std::env::temp_dir().join(format!("lifeline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("keeper.toml");
    std::fs::write(
        &config,
        "[registry]\nrpc_urls = [\"http://127.0.0.1:1\"]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
         [probe]\ninterval_ms = 10\n[[service]]\nname = \"x\"\n",
    )?;
    let output = Command::new(LIFELINE).args(["keeper", "--config"]).arg(&config).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("probe.interval_ms = 10: must be at least 50"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn keeper_without_a_key_names_the_variable() -> eyre::Result<()> {
    let dir = std::env::temp_dir().join(format!("lifeline-cli-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("keeper.toml");
    std::fs::write(
        &config,
        "[registry]\nrpc_urls = [\"http://127.0.0.1:1\"]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
         [signer]\nprivate_key_env = \"LIFELINE_TEST_NO_SUCH_KEY\"\n[[service]]\nname = \"x\"\n",
    )?;
    let output = Command::new(LIFELINE).args(["keeper", "--config"]).arg(&config).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("LIFELINE_TEST_NO_SUCH_KEY"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
