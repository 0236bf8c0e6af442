//! Portability (issue 13, item 17): the registry is compiled for a conservative EVM target
//! (`shanghai`, foundry.toml), so a chain without Cancun opcodes runs it. anvil is started with
//! `--hardfork shanghai`, the registry is deployed and configured with `script/Deploy.s.sol` and
//! `script/Configure.s.sol` exactly as an operator would, then read (`service`, `endpoint`,
//! `authorisedRoutes`: compiled for Prague, the registry's MCOPY made these fail on such a chain)
//! and driven by keepers' attestations through a bootstrap and a failover.

use std::{process::Stdio, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    network::EthereumWallet,
    primitives::{Address, Bytes},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use lifeline_bindings::{Attestation, RouteRegistry, Verdict, attestation, service_id};
use lifeline_devnet::{Toolchain, die_with_parent, free_port};
use tokio::process::{Child, Command};

/// anvil's public dev keys for accounts 0 (deployer, governor, relayer) and 1..=3 (the keepers of
/// config/example.json). Test keys, for local chains only.
const DEV_KEYS: [&str; 4] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// The service config/example.json configures.
const SERVICE: &str = "eth-devnet/rpc";

/// anvil at a chosen hardfork on 127.0.0.1 (killed when dropped, and when this process dies).
struct HardforkAnvil {
    _child: Child,
    port: u16,
}

impl HardforkAnvil {
    async fn start(toolchain: &Toolchain, hardfork: &str) -> eyre::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(toolchain.anvil());
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--hardfork", hardfork])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn()?;
        let anvil = Self { _child: child, port };
        let provider = ProviderBuilder::new().connect_http(anvil.url().parse()?);
        for _ in 0..100 {
            if provider.get_chain_id().await.is_ok() {
                return Ok(anvil);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eyre::bail!("anvil --hardfork {hardfork} did not answer on port {port}")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `forge script <script> --broadcast` from the repository root with only `env` among the
/// scripts' variables.
async fn forge_script(
    toolchain: &Toolchain,
    rpc_url: &str,
    script: &str,
    env: &[(&str, &str)],
) -> eyre::Result<()> {
    let mut command = Command::new(toolchain.forge());
    command
        .current_dir(toolchain.root())
        .args(["script", script, "--rpc-url", rpc_url, "--broadcast", "--slow"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
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
    command.envs(env.iter().copied());
    let output = die_with_parent(&mut command).output().await?;
    eyre::ensure!(
        output.status.success(),
        "forge script {script} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Opcodes introduced after Shanghai that the registry must not contain (Cancun: BLOBHASH,
/// BLOBBASEFEE, TLOAD, TSTORE, MCOPY), found by walking the code (PUSH data skipped).
fn post_shanghai_opcodes(code: &[u8]) -> Vec<(usize, u8)> {
    let mut found = Vec::new();
    let mut pc = 0;
    while pc < code.len() {
        let op = code[pc];
        if matches!(op, 0x49 | 0x4a | 0x5c | 0x5d | 0x5e) {
            found.push((pc, op));
        }
        // PUSH1..PUSH32 carry 1..32 bytes of data.
        pc += 1 + if (0x60..=0x7f).contains(&op) { usize::from(op - 0x5f) } else { 0 };
    }
    found
}

async fn attest<P: Provider>(
    registry: &RouteRegistry::RouteRegistryInstance<P>,
    chain_id: u64,
    keeper: &PrivateKeySigner,
    verdicts: Vec<Verdict>,
) -> eyre::Result<()> {
    let service = service_id(SERVICE);
    let epoch = registry.service(service).call().await?.epoch;
    let version = registry.keepers().call().await?._0;
    let nonce = registry.keeperState(keeper.address(), service).call().await?.lastNonce + 1;
    let now = registry
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .ok_or_else(|| eyre::eyre!("no latest block"))?
        .header
        .timestamp;
    let report =
        Attestation { service, epoch, configVersion: version, nonce, deadline: now + 60, verdicts };
    let signature = attestation::sign(keeper, &report, chain_id, *registry.address())?;
    let call = registry.attest(report, signature.into());
    call.call().await.map_err(|e| eyre::eyre!("{}", lifeline_bindings::Error::from(e)))?;
    let receipt = call.send().await?.get_receipt().await?;
    eyre::ensure!(receipt.status(), "attestation {} reverted", receipt.transaction_hash);
    Ok(())
}

fn verdicts(endpoints: &[u16], healthy: bool) -> Vec<Verdict> {
    endpoints
        .iter()
        .map(|&endpoint| Verdict {
            endpoint,
            revision: 0,
            healthy,
            latencyMs: 10 + u32::from(endpoint),
            headLag: 0,
        })
        .collect()
}

#[tokio::test]
async fn scripts_deploy_a_registry_that_serves_and_fails_over_on_a_shanghai_chain()
-> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let anvil = HardforkAnvil::start(&toolchain, "shanghai").await?;
    let rpc_url = anvil.url();
    let deployments = format!("target/devnet/hardfork-{}", anvil.port);

    forge_script(
        &toolchain,
        &rpc_url,
        "script/Deploy.s.sol",
        &[("DEPLOYER_PRIVATE_KEY", DEV_KEYS[0]), ("LIFELINE_DEPLOYMENTS", &deployments)],
    )
    .await?;
    forge_script(
        &toolchain,
        &rpc_url,
        "script/Configure.s.sol",
        &[
            ("GOVERNOR_PRIVATE_KEY", DEV_KEYS[0]),
            ("LIFELINE_DEPLOYMENTS", &deployments),
            ("LIFELINE_CONFIG", "config/example.json"),
        ],
    )
    .await?;

    let relayer: PrivateKeySigner = DEV_KEYS[0].parse()?;
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(relayer)).connect_http(rpc_url.parse()?);
    let chain_id = provider.get_chain_id().await?;
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        toolchain.root().join(&deployments).join(format!("{chain_id}.json")),
    )?)?;
    let address: Address = record["registry"]
        .as_str()
        .ok_or_else(|| eyre::eyre!("no registry in the deployment record: {record}"))?
        .parse()?;

    // The chain really is pre-Cancun: its blocks carry no blob-gas or beacon-root fields.
    let block = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .ok_or_else(|| eyre::eyre!("no latest block"))?;
    assert!(
        block.header.blob_gas_used.is_none() && block.header.parent_beacon_block_root.is_none(),
        "anvil runs Shanghai, not Cancun: {:?}",
        block.header
    );

    // The deployed code uses no opcode newer than Shanghai.
    let code: Bytes = provider.get_code_at(address).await?;
    assert!(code.len() > 1000, "registry has code");
    assert_eq!(post_shanghai_opcodes(&code), vec![], "post-Shanghai opcodes in the registry");

    // The reads keepers and clients make (compiled for Prague, `endpoint` and a non-empty
    // `authorisedRoutes` failed here with "EVM error NotActivated": MCOPY).
    let registry = RouteRegistry::new(address, &provider);
    let id = service_id(SERVICE);
    let view = registry.service(id).call().await?;
    assert_eq!(view.endpointCount, 4, "four endpoints from config/example.json");
    assert_eq!(view.config.quorum, 2, "quorum");
    assert_eq!(view.activeCount, 0, "nothing serves before keepers attest");
    let set = registry.authorisedRoutes(id).call().await?;
    assert_eq!((set.epoch, set.routes.len()), (0, 0), "empty set at epoch 0");
    let endpoint = registry.endpoint(id, 3).call().await?;
    assert_eq!(
        (endpoint.url.as_str(), endpoint.region.as_str()),
        ("http://127.0.0.1:18548", "eu-west"),
        "what keepers read each refresh"
    );

    // Two keepers vouch for every endpoint: the set fills (eu-west #0, us-east #1).
    let keepers: Vec<PrivateKeySigner> =
        DEV_KEYS[1..].iter().map(|k| k.parse()).collect::<Result<_, _>>()?;
    for keeper in &keepers[..2] {
        attest(&registry, chain_id, keeper, verdicts(&[0, 1, 2, 3], true)).await?;
    }
    let set = registry.authorisedRoutes(id).call().await?;
    let routes: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    assert_eq!((set.epoch, routes), (1, vec![0, 1]), "filled to the target");
    assert_eq!(set.routes[0].url, "http://127.0.0.1:18545", "URL from the config");

    // Two keepers flag #0: demoted, and ap-south #2 (a region the set misses) promoted.
    for keeper in &keepers[1..] {
        attest(&registry, chain_id, keeper, verdicts(&[0], false)).await?;
    }
    let set = registry.authorisedRoutes(id).call().await?;
    let routes: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    assert_eq!((set.epoch, routes), (2, vec![1, 2]), "failed over");
    let demoted = registry.endpoint(id, 0).call().await?;
    assert_eq!(demoted.status, 3, "endpoint 0 demoted");
    assert!(!set.stale, "fresh: keepers just attested");

    let _ = std::fs::remove_dir_all(toolchain.root().join(&deployments));
    Ok(())
}

#[test]
fn post_shanghai_opcodes_skips_push_data() {
    // PUSH2 0x5e5e (data, not MCOPY), then MCOPY, then PUSH0 (Shanghai: allowed).
    assert_eq!(post_shanghai_opcodes(&[0x61, 0x5e, 0x5e, 0x5e, 0x5f]), vec![(3, 0x5e)]);
    assert_eq!(post_shanghai_opcodes(&[0x5c, 0x5d, 0x49, 0x4a]).len(), 4);
}
