//! anvil plus a registry deployed and configured by the Foundry scripts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::Address,
    signers::local::PrivateKeySigner,
};
use tokio::process::Command;
use tracing::info;

use crate::{Error, Result, Toolchain};

/// How to bring the devnet up.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<f64>,
    /// The configuration applied by `script/Configure.s.sol`, relative to the repository root or
    /// absolute (it must lie inside the repository: forge only reads files it is allowed to).
    pub config: PathBuf,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self { block_time: None, config: PathBuf::from("config/example.json") }
    }
}

/// A running devnet. Dropping it kills anvil.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilInstance,
    registry: Address,
    deploy_block: u64,
}

impl Devnet {
    /// Starts anvil on 127.0.0.1 (free port) and deploys and configures the registry with the
    /// project's Foundry scripts. Anvil's first account deploys and governs.
    pub async fn start(toolchain: &Toolchain, options: &DevnetOptions) -> Result<Self> {
        let mut anvil = Anvil::at(toolchain.anvil()).arg("--host").arg("127.0.0.1");
        if let Some(block_time) = options.block_time {
            anvil = anvil.block_time_f64(block_time);
        }
        let anvil = anvil.try_spawn()?;
        let rpc_url = format!("http://127.0.0.1:{}", anvil.port());
        info!(target: "devnet", url = %rpc_url, chain_id = anvil.chain_id(), "anvil started");

        let deployments = PathBuf::from(format!("target/devnet/{}", anvil.port()));
        let env = [
            ("DEPLOYER_PRIVATE_KEY", hex_key(&anvil.keys()[0])),
            ("LIFELINE_DEPLOYMENTS", deployments.display().to_string()),
        ];
        run_script(toolchain, "script/Deploy.s.sol", &rpc_url, &env).await?;
        let record = toolchain.root().join(&deployments).join(format!("{}.json", anvil.chain_id()));
        let (registry, deploy_block) = read_deployment(&record)?;
        info!(target: "devnet", %registry, "registry deployed");

        let devnet = Self { anvil, registry, deploy_block };
        devnet.configure(toolchain, &options.config).await?;
        Ok(devnet)
    }

    /// Applies a configuration file with `script/Configure.s.sol` (idempotent: re-running it
    /// re-configures services and adds only new endpoints).
    pub async fn configure(&self, toolchain: &Toolchain, config: &Path) -> Result<()> {
        let env = [
            ("GOVERNOR_PRIVATE_KEY", hex_key(&self.anvil.keys()[0])),
            ("LIFELINE_REGISTRY", self.registry.to_string()),
            ("LIFELINE_CONFIG", relative_to(toolchain.root(), config)),
        ];
        run_script(toolchain, "script/Configure.s.sol", &self.rpc_url(), &env).await?;
        info!(target: "devnet", config = %config.display(), "registry configured");
        Ok(())
    }

    /// The chain's JSON-RPC URL (always 127.0.0.1, never a name that could resolve elsewhere).
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.anvil.port())
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// The deployed RouteRegistry.
    pub fn registry(&self) -> Address {
        self.registry
    }

    /// A block at or before the registry's deployment (a safe start for log scans).
    pub fn deploy_block(&self) -> u64 {
        self.deploy_block
    }

    /// anvil's funded dev account `index` (0 deploys and governs; the example config's keepers
    /// are 1, 2 and 3). These are anvil's public test keys, for the devnet only.
    pub fn account(&self, index: usize) -> PrivateKeySigner {
        self.anvil.keys()[index].clone().into()
    }
}

async fn run_script(
    toolchain: &Toolchain,
    script: &str,
    rpc_url: &str,
    env: &[(&str, String)],
) -> Result<()> {
    info!(target: "devnet", script, "forge script");
    // Keys travel in the environment, never on the command line.
    let output = Command::new(toolchain.forge())
        .current_dir(toolchain.root())
        .args(["script", script, "--rpc-url", rpc_url, "--broadcast", "--slow"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| Error::Io {
            context: format!("running {}", toolchain.forge().display()),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    Err(Error::Script {
        script: script.to_string(),
        status: output.status,
        output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

fn read_deployment(path: &Path) -> Result<(Address, u64)> {
    let bad = |reason: String| Error::Deployment { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let registry = json["registry"]
        .as_str()
        .ok_or_else(|| bad("no `registry` field".into()))?
        .parse::<Address>()
        .map_err(|e| bad(format!("`registry` is not an address: {e}")))?;
    let block = json["block"].as_u64().ok_or_else(|| bad("no numeric `block` field".into()))?;
    Ok((registry, block))
}

fn hex_key(key: &alloy::signers::k256::SecretKey) -> String {
    format!("0x{}", alloy::hex::encode(key.to_bytes()))
}

fn relative_to(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}
