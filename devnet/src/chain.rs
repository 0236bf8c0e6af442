//! anvil plus a registry deployed and configured by the Foundry scripts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, TxHash},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use lifeline_bindings::{Attestation, RouteRegistry, Verdict, attestation, service_id};
use tokio::process::Command;
use tracing::info;

use crate::{Error, FaultProxy, Result, Toolchain};

/// Regions of the devnet's endpoints, in order (two in eu-west, so diversity matters).
const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "eu-west"];
/// Vantages of the devnet's keepers, in order.
const VANTAGES: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// How to bring the devnet up.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<f64>,
    /// Fault-injecting proxies in front of anvil, registered as the service's endpoints.
    pub endpoints: usize,
    /// Keepers registered (anvil accounts 1..=keepers).
    pub keepers: usize,
    /// The service's quorum.
    pub quorum: u8,
    /// Active routes the service aims for.
    pub target_active: u8,
    /// Seconds a demoted endpoint cools down.
    pub cooldown: u32,
    /// Demotions allowed per 600 s window (blast radius).
    pub max_demotions: u8,
    /// Apply this configuration file instead of generating one (no proxies are started). It
    /// must lie inside the repository: forge only reads files it is allowed to.
    pub config: Option<PathBuf>,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            block_time: None,
            endpoints: 4,
            keepers: 3,
            quorum: 2,
            target_active: 2,
            cooldown: 30,
            max_demotions: 3,
            config: None,
        }
    }
}

/// The service every generated devnet configures.
pub const DEVNET_SERVICE: &str = "eth-devnet/rpc";

/// A running devnet. Dropping it stops the proxies and kills anvil.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilInstance,
    registry: Address,
    deploy_block: u64,
    proxies: Vec<FaultProxy>,
    keepers: usize,
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

        let mut devnet =
            Self { anvil, registry, deploy_block, proxies: Vec::new(), keepers: options.keepers };
        let config = match &options.config {
            Some(config) => config.clone(),
            None => {
                for _ in 0..options.endpoints {
                    devnet.proxies.push(FaultProxy::start(rpc_url.clone()).await?);
                }
                let path = deployments.join("config.json");
                let json = devnet.generated_config(options);
                std::fs::write(toolchain.root().join(&path), json).map_err(|source| Error::Io {
                    context: format!("writing {}", path.display()),
                    source,
                })?;
                path
            }
        };
        devnet.configure(toolchain, &config).await?;
        Ok(devnet)
    }

    fn generated_config(&self, options: &DevnetOptions) -> String {
        let keepers: Vec<_> = (1..=options.keepers)
            .map(|i| {
                serde_json::json!({
                    "address": self.account(i).address().to_string(),
                    "vantage": VANTAGES[(i - 1) % VANTAGES.len()],
                })
            })
            .collect();
        let endpoints: Vec<_> = self
            .proxies
            .iter()
            .enumerate()
            .map(|(i, proxy)| {
                serde_json::json!({
                    "url": proxy.url(),
                    "region": REGIONS[i % REGIONS.len()],
                    "provider": format!("node-{}", (b'a' + i as u8) as char),
                    "operator": self.account(9).address().to_string(),
                })
            })
            .collect();
        let config = serde_json::json!({
            "keepers": keepers,
            "services": [{
                "name": DEVNET_SERVICE,
                "config": {
                    "chainId": self.chain_id(),
                    "targetActive": options.target_active,
                    "floor": 1,
                    "minRegions": 2,
                    "quorum": options.quorum,
                    "minVantages": 0,
                    "maxDemotions": options.max_demotions,
                    "demotionWindow": 600,
                    "cooldown": options.cooldown,
                    "attestationTtl": 120,
                },
                "endpoints": endpoints,
            }],
        });
        serde_json::to_string_pretty(&config).unwrap_or_default()
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

    /// The chain's WebSocket URL: anvil serves it on the same port as [`Self::rpc_url`].
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.anvil.port())
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

    /// anvil's funded dev account `index` (0 deploys and governs; keepers are 1..=keepers).
    /// These are anvil's public test keys, for the devnet only.
    pub fn account(&self, index: usize) -> PrivateKeySigner {
        self.anvil.keys()[index].clone().into()
    }

    /// The fault-injecting proxies, one per endpoint, in endpoint-index order. Each also passes
    /// WebSocket connections through to anvil (see [`FaultProxy::ws_url`]).
    pub fn proxies(&self) -> &[FaultProxy] {
        &self.proxies
    }

    /// The id of the generated service ([`DEVNET_SERVICE`]).
    pub fn service_id(&self) -> B256 {
        service_id(DEVNET_SERVICE)
    }

    /// Keeper `keeper` (1-based: anvil account `keeper`) signs and submits an attestation of
    /// `verdicts` about the devnet service, at the current epoch and config version, with the
    /// next nonce; returns the transaction hash once mined.
    pub async fn attest(&self, keeper: usize, verdicts: Vec<Verdict>) -> Result<TxHash> {
        debug_assert!((1..=self.keepers).contains(&keeper), "keeper {keeper} not registered");
        let signer = self.account(keeper);
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(self.rpc_url().parse().map_err(|e| Error::Chain(format!("{e}")))?);
        let registry = RouteRegistry::new(self.registry, &provider);
        let chain = |e: &dyn std::fmt::Display| Error::Chain(e.to_string());
        let service = self.service_id();
        let epoch = registry.service(service).call().await.map_err(|e| chain(&e))?.epoch;
        let keeper_state =
            registry.keeperState(signer.address()).call().await.map_err(|e| chain(&e))?;
        let (version, _, _) =
            registry.keepers().call().await.map(|k| (k._0, k._1, k._2)).map_err(|e| chain(&e))?;
        let now = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| chain(&e))?
            .map(|b| b.header.timestamp)
            .unwrap_or_default();
        let report = Attestation {
            service,
            epoch,
            configVersion: version,
            nonce: keeper_state.lastNonce + 1,
            deadline: now + 60,
            verdicts,
        };
        let signature = attestation::sign(&signer, &report, self.chain_id(), self.registry)
            .map_err(|e| chain(&e))?;
        let receipt = registry
            .attest(report, signature.into())
            .send()
            .await
            .map_err(|e| chain(&lifeline_bindings::Error::from(e)))?
            .get_receipt()
            .await
            .map_err(|e| chain(&e))?;
        Ok(receipt.transaction_hash)
    }

    /// Writes a keeper configuration for keeper `keeper` (1-based) watching the devnet service
    /// and returns its path. The key is not in the file: [`Devnet::spawn_keeper`] passes it in
    /// the environment.
    pub fn keeper_config(
        &self,
        toolchain: &Toolchain,
        keeper: usize,
        options: &KeeperOptions,
    ) -> Result<PathBuf> {
        let dir = toolchain.root().join(format!("target/devnet/{}", self.anvil.port()));
        let path = dir.join(format!("keeper-{keeper}.toml"));
        let text = format!(
            r#"# generated by lifeline-devnet for keeper {keeper} ({address})
[registry]
rpc_urls = [{rpc}]
address = "{registry}"

[probe]
interval_ms = {interval}
timeout_ms = {timeout}
jitter_pct = 10
refresh_secs = 10

[judge]
fail_after = {fail_after}
recover_after = 2
max_head_age_secs = 10

[submit]
heartbeat_secs = {heartbeat}
receipt_timeout_secs = 5

[metrics]
{metrics}

[[service]]
name = "{service}"
"#,
            address = self.account(keeper).address(),
            rpc = options
                .registry_rpc
                .clone()
                .unwrap_or_else(|| vec![self.rpc_url()])
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", "),
            registry = self.registry,
            interval = options.probe_interval_ms,
            timeout = options.probe_interval_ms.clamp(100, 800),
            fail_after = options.fail_after,
            heartbeat = options.heartbeat_secs,
            metrics = match options.metrics_port {
                Some(port) => format!("listen = \"127.0.0.1:{port}\""),
                None => "# disabled".into(),
            },
            service = DEVNET_SERVICE,
        );
        let text = if options.metrics_port.is_none() {
            text.replace("[metrics]\n# disabled\n", "")
        } else {
            text
        };
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)).map_err(
            |source| Error::Io { context: format!("writing {}", path.display()), source },
        )?;
        Ok(path)
    }

    /// Starts `lifeline keeper` (the binary at `lifeline`) as keeper `keeper`, its key in the
    /// environment, its log in `target/devnet/<port>/keeper-<n>.log`. Killed (by PID) when the
    /// returned handle is dropped.
    pub fn spawn_keeper(
        &self,
        toolchain: &Toolchain,
        lifeline: &Path,
        keeper: usize,
        config: &Path,
    ) -> Result<KeeperProcess> {
        let log_path = toolchain
            .root()
            .join(format!("target/devnet/{}/keeper-{keeper}.log", self.anvil.port()));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(
            |source| Error::Io { context: format!("opening {}", log_path.display()), source },
        )?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            context: format!("opening {}", log_path.display()),
            source,
        })?;
        let child = std::process::Command::new(lifeline)
            .args(["keeper", "--config"])
            .arg(config)
            .env("LIFELINE_KEEPER_KEY", hex_key(&self.anvil.keys()[keeper]))
            .env("RUST_LOG", "info")
            .env_remove("LIFELINE_KEEPER_CONFIG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| Error::Io {
                context: format!("starting {}", lifeline.display()),
                source,
            })?;
        info!(target: "devnet", keeper, pid = child.id(), "keeper started");
        Ok(KeeperProcess { child: Some(child), keeper, log: log_path })
    }

    /// Has keepers 1 and 2 attest every endpoint healthy (lower index, lower latency), so the
    /// set fills to its target: what the keeper agents do on a healthy network.
    pub async fn bootstrap_routes(&self) -> Result<()> {
        let verdicts: Vec<Verdict> = (0..self.proxies.len() as u16)
            .map(|i| Verdict {
                endpoint: i,
                healthy: true,
                latencyMs: 10 + u32::from(i),
                headLag: 0,
            })
            .collect();
        for keeper in 1..=2 {
            self.attest(keeper, verdicts.clone()).await?;
        }
        Ok(())
    }
}

/// Settings of the devnet's generated keeper configurations.
#[derive(Debug, Clone)]
pub struct KeeperOptions {
    /// Probe interval, ms.
    pub probe_interval_ms: u64,
    /// Failed rounds before flagging.
    pub fail_after: u32,
    /// Heartbeat period, s.
    pub heartbeat_secs: u64,
    /// Serve /metrics on this port (127.0.0.1), if set.
    pub metrics_port: Option<u16>,
    /// The registry-chain RPC URLs the keeper uses (default: anvil directly).
    pub registry_rpc: Option<Vec<String>>,
}

impl Default for KeeperOptions {
    fn default() -> Self {
        Self {
            probe_interval_ms: 500,
            fail_after: 2,
            heartbeat_secs: 20,
            metrics_port: None,
            registry_rpc: None,
        }
    }
}

/// A keeper process; dropping it kills it by PID.
#[derive(Debug)]
pub struct KeeperProcess {
    child: Option<std::process::Child>,
    keeper: usize,
    log: PathBuf,
}

impl KeeperProcess {
    /// The keeper number (anvil account).
    pub fn keeper(&self) -> usize {
        self.keeper
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Asks it to stop (SIGTERM) and waits up to `grace` before killing it.
    pub fn stop(&mut self, grace: std::time::Duration) {
        let Some(mut child) = self.child.take() else { return };
        #[cfg(unix)]
        {
            // `kill -TERM <our child PID>`: lets the keeper shut down gracefully.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills it at once (a crash), by PID.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        self.kill();
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
