//! `script/Deploy.s.sol` and `script/Configure.s.sol` run with `forge script --broadcast`
//! against a real anvil; the result is read back with `cast`. Bad input and failed broadcasts
//! change nothing: an out-of-range number is refused naming its field, a deployment that did not
//! land is never recorded, and `LIFELINE_REGISTRY` (the `lifeline` command's) never steers
//! Configure.s.sol.

use std::{path::PathBuf, process::Command};

use lifeline_bindings::service_id;
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};

fn cast_call(
    toolchain: &Toolchain,
    devnet: &Devnet,
    sig: &str,
    args: &[String],
) -> eyre::Result<String> {
    let output = Command::new(toolchain.cast())
        .arg("call")
        .arg(devnet.registry().to_string())
        .arg(sig)
        .args(args)
        .args(["--rpc-url", &devnet.rpc_url()])
        .output()?;
    eyre::ensure!(
        output.status.success(),
        "cast call {sig} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

#[tokio::test]
async fn deploy_and_configure_scripts_broadcast_and_read_back_with_cast() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &example_config()).await?;

    // The deployment record points at real code.
    let code = Command::new(toolchain.cast())
        .args(["code", &devnet.registry().to_string(), "--rpc-url", &devnet.rpc_url()])
        .output()?;
    assert!(code.stdout.len() > 1000, "registry has code");

    // Keepers from config/example.json.
    let keepers = cast_call(&toolchain, &devnet, "keepers()(uint32,address[],bytes32[])", &[])?;
    assert!(keepers.starts_with('1'), "keeper-set version 1: {keepers}");
    for keeper in [
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    ] {
        assert!(keepers.contains(keeper), "{keeper} registered: {keepers}");
    }

    // The service and its four endpoints.
    let id = service_id("eth-devnet/rpc");
    let ids = cast_call(&toolchain, &devnet, "serviceIds()(bytes32[])", &[])?;
    assert_eq!(ids, format!("[{id}]"));
    let endpoint = cast_call(
        &toolchain,
        &devnet,
        "endpoint(bytes32,uint16)((uint8,bool,bool,uint32,uint64,uint32,uint32,uint32,string,string,string,address))",
        &[id.to_string(), "3".into()],
    )?;
    assert!(
        endpoint.contains("http://127.0.0.1:18548") && endpoint.contains("node-d"),
        "{endpoint}"
    );

    // Re-running the configure script changes nothing (idempotent).
    let before = cast_call(&toolchain, &devnet, "keepers()(uint32,address[],bytes32[])", &[])?;
    devnet.configure(&toolchain, "config/example.json".as_ref()).await?;
    let after = cast_call(&toolchain, &devnet, "keepers()(uint32,address[],bytes32[])", &[])?;
    assert_eq!(before, after, "no keeper rotation on re-run");
    let count = cast_call(
        &toolchain,
        &devnet,
        "endpoint(bytes32,uint16)((uint8,bool,bool,uint32,uint64,uint32,uint32,uint32,string,string,string,address))",
        &[id.to_string(), "4".into()],
    );
    assert!(count.is_err(), "no endpoint added twice");
    Ok(())
}

/// `forge script <script>` against the devnet from the repository root, with only `env` among
/// the scripts' variables; (success, stdout + stderr).
fn forge_script(
    toolchain: &Toolchain,
    devnet: &Devnet,
    script: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> eyre::Result<(bool, String)> {
    let mut command = Command::new(toolchain.forge());
    command
        .current_dir(toolchain.root())
        .args(["script", script, "--rpc-url", &devnet.rpc_url()])
        .args(extra);
    for var in [
        "LIFELINE_REGISTRY",
        "LIFELINE_CONFIGURE_REGISTRY",
        "LIFELINE_DEPLOYMENTS",
        "LIFELINE_CONFIG",
        "LIFELINE_ADMIN",
        "LIFELINE_GUARDIAN",
    ] {
        command.env_remove(var);
    }
    let output = command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

fn hex_key(devnet: &Devnet, account: usize) -> String {
    alloy::hex::encode_prefixed(devnet.account(account).to_bytes())
}

/// The devnet's deployment records directory, relative to the repository root.
fn deployments(devnet: &Devnet) -> String {
    let port = devnet.rpc_url().rsplit(':').next().unwrap_or_default().to_string();
    format!("target/devnet/{port}")
}

#[tokio::test]
async fn configure_rejects_out_of_range_numbers_naming_field_and_value() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &example_config()).await?;

    // config/example.json with quorum 258 (a uint8 on chain: it used to be stored as 2) and a
    // new service name, so that nothing else would change.
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        toolchain.root().join("config/example.json"),
    )?)?;
    config["services"][0]["name"] = "eth-range/rpc".into();
    config["services"][0]["config"]["quorum"] = 258.into();
    let path = PathBuf::from(deployments(&devnet)).join("quorum-258.json");
    std::fs::write(toolchain.root().join(&path), serde_json::to_string(&config)?)?;

    let err =
        devnet.configure(&toolchain, &path).await.expect_err("Configure.s.sol refuses quorum 258");
    let text = err.to_string();
    assert!(
        text.contains(".services[0].config.quorum = 258 is out of range (at most 255)"),
        "{text}"
    );
    let ids = cast_call(&toolchain, &devnet, "serviceIds()(bytes32[])", &[])?;
    assert!(!ids.contains(&service_id("eth-range/rpc").to_string()), "not created: {ids}");
    Ok(())
}

#[tokio::test]
async fn failed_deploy_keeps_the_record_and_lifeline_registry_never_steers_configure()
-> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &example_config()).await?;
    let dir = deployments(&devnet);
    let record = toolchain.root().join(&dir).join(format!("{}.json", devnet.chain_id()));
    let before = std::fs::read_to_string(&record)?;
    assert!(before.contains(&devnet.registry().to_string()), "{before}");

    // A broadcast that fails (the deployer has no ether) leaves the record as it was.
    let unfunded = format!("0x{}", "11".repeat(32));
    let (ok, output) = forge_script(
        &toolchain,
        &devnet,
        "script/Deploy.s.sol",
        &["--broadcast", "--slow"],
        &[("DEPLOYER_PRIVATE_KEY", unfunded), ("LIFELINE_DEPLOYMENTS", dir.clone())],
    )?;
    assert!(!ok || output.contains("Insufficient funds"), "the broadcast fails:\n{output}");
    assert_eq!(std::fs::read_to_string(&record)?, before, "record unchanged:\n{output}");
    // Nothing to record: the pending deployment has no code.
    let (ok, output) = forge_script(
        &toolchain,
        &devnet,
        "script/Deploy.s.sol",
        &["--sig", "record()"],
        &[("LIFELINE_DEPLOYMENTS", dir.clone())],
    )?;
    assert!(!ok, "record() refuses a deployment without code:\n{output}");
    assert!(output.contains("nothing recorded"), "{output}");
    assert_eq!(std::fs::read_to_string(&record)?, before, "record unchanged:\n{output}");

    // A shell set up by `lifeline devnet --hold` exports LIFELINE_REGISTRY: Configure.s.sol
    // ignores it, says so, and configures the recorded registry.
    let elsewhere = "0x000000000000000000000000000000000000dEaD";
    let (ok, output) = forge_script(
        &toolchain,
        &devnet,
        "script/Configure.s.sol",
        &["--broadcast", "--slow"],
        &[
            ("GOVERNOR_PRIVATE_KEY", hex_key(&devnet, 0)),
            ("LIFELINE_DEPLOYMENTS", dir.clone()),
            ("LIFELINE_REGISTRY", elsewhere.into()),
        ],
    )?;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!(
            "configuring registry {} (from {dir}/{}.json)",
            devnet.registry(),
            devnet.chain_id()
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!("note: LIFELINE_REGISTRY={elsewhere} is ignored")),
        "{output}"
    );

    // LIFELINE_CONFIGURE_REGISTRY does steer it, and an address without code is refused.
    let (ok, output) = forge_script(
        &toolchain,
        &devnet,
        "script/Configure.s.sol",
        &["--broadcast", "--slow"],
        &[
            ("GOVERNOR_PRIVATE_KEY", hex_key(&devnet, 0)),
            ("LIFELINE_CONFIGURE_REGISTRY", elsewhere.into()),
        ],
    )?;
    assert!(!ok, "{output}");
    assert!(output.contains(&format!("no contract at registry {elsewhere}")), "{output}");
    Ok(())
}

fn example_config() -> DevnetOptions {
    DevnetOptions { config: Some("config/example.json".into()), ..Default::default() }
}
