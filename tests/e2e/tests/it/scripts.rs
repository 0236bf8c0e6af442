//! `script/Deploy.s.sol` and `script/Configure.s.sol` run with `forge script --broadcast`
//! against a real anvil; the result is read back with `cast`.

use std::process::Command;

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
        "endpoint(bytes32,uint16)((uint8,bool,bool,uint32,uint64,uint32,uint32,string,string,string,address))",
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
        "endpoint(bytes32,uint16)((uint8,bool,bool,uint32,uint64,uint32,uint32,string,string,string,address))",
        &[id.to_string(), "4".into()],
    );
    assert!(count.is_err(), "no endpoint added twice");
    Ok(())
}

fn example_config() -> DevnetOptions {
    DevnetOptions { config: Some("config/example.json".into()), ..Default::default() }
}
