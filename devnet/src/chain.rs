//! anvil plus a registry deployed and configured by the Foundry scripts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    node_bindings::NodeError,
    primitives::{Address, B256, TxHash},
    providers::{Provider, ProviderBuilder},
    signers::{k256::SecretKey, local::PrivateKeySigner},
};
use lifeline_bindings::{Attestation, RouteRegistry, Verdict, attestation, service_id};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
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
    /// The last endpoint demands this API key, as a paid provider does, and is registered as
    /// the template `http://127.0.0.1:PORT/${DEVNET_API_KEY}` ([`DEVNET_SECRET`]): generated
    /// keeper configurations name the secret, and keepers get the value in their environment.
    pub api_key: Option<String>,
    /// The chain id anvil runs with (`--chain-id`); `None` keeps anvil's 31337. Registry
    /// chains of one devnet need different ids, as real chains have.
    pub chain_id: Option<u64>,
    /// Registry chains (default 1). With more, the others are registry-only chains (chain ids
    /// following the first's: 31338, ...) deployed and configured by the same Foundry scripts
    /// with the same service, endpoints (this devnet's proxies) and keepers
    /// ([`Devnet::secondaries`]); generated keeper configurations attest on every one.
    pub registries: usize,
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
            api_key: None,
            chain_id: None,
            registries: 1,
        }
    }
}

/// The service every generated devnet configures.
pub const DEVNET_SERVICE: &str = "eth-devnet/rpc";

/// The secret a keyed devnet endpoint's URL template names (see [`DevnetOptions::api_key`]).
pub const DEVNET_SECRET: &str = "DEVNET_API_KEY";

/// A running devnet. Dropping it stops the proxies and kills anvil (so does the death of this
/// process, however it dies: see [`die_with_parent`]).
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilProcess,
    registry: Address,
    deploy_block: u64,
    proxies: Vec<FaultProxy>,
    keepers: usize,
    api_key: Option<String>,
    /// The service's endpoints as registered (the proxies' URLs, or another devnet's).
    endpoint_urls: Vec<String>,
    /// Registry-only chains of the same network ([`DevnetOptions::registries`]).
    secondaries: Vec<Devnet>,
}

/// The chain a registry-only devnet's service runs on (see [`Devnet::start_registry_for`]).
struct Served {
    chain_id: u64,
    urls: Vec<String>,
}

impl Devnet {
    /// Starts anvil on 127.0.0.1 (free port) and deploys and configures the registry with the
    /// project's Foundry scripts. Anvil's first account deploys and governs.
    pub async fn start(toolchain: &Toolchain, options: &DevnetOptions) -> Result<Self> {
        let mut devnet = Self::start_inner(toolchain, options, None).await?;
        for i in 1..options.registries {
            let secondary = DevnetOptions {
                chain_id: Some(devnet.chain_id() + i as u64),
                registries: 1,
                config: None,
                ..options.clone()
            };
            let started =
                Box::pin(Self::start_registry_for(toolchain, &secondary, &devnet)).await?;
            devnet.secondaries.push(started);
        }
        Ok(devnet)
    }

    /// The registry-only chains started with [`DevnetOptions::registries`], in order.
    pub fn secondaries(&self) -> &[Devnet] {
        &self.secondaries
    }

    /// Stops block production (`anvil_setAutomine false`, `evm_setIntervalMining 0`): the chain
    /// halts, its RPC still answers with an ageing head.
    pub async fn halt(&self) -> Result<()> {
        self.raw("anvil_setAutomine", serde_json::json!([false])).await?;
        self.raw("evm_setIntervalMining", serde_json::json!([0])).await
    }

    /// Resumes block production every `block_time` seconds (whole seconds, at least 1).
    pub async fn resume(&self, block_time: u64) -> Result<()> {
        self.raw("evm_setIntervalMining", serde_json::json!([block_time.max(1)])).await
    }

    async fn raw(&self, method: &'static str, params: serde_json::Value) -> Result<()> {
        let url = self.rpc_url().parse().map_err(|e| Error::Chain(format!("{e}")))?;
        let provider = ProviderBuilder::new().connect_http(url);
        provider
            .raw_request::<_, serde_json::Value>(method.into(), params)
            .await
            .map_err(|e| Error::Chain(format!("{method}: {e}")))?;
        Ok(())
    }

    /// Starts a second registry chain for `served`'s network: anvil (give it another
    /// [`DevnetOptions::chain_id`]), the registry deployed and configured by the Foundry
    /// scripts with the same service ([`DEVNET_SERVICE`]), the same endpoints (`served`'s
    /// proxies, in the same order) and the same keepers. It starts no proxies of its own.
    pub async fn start_registry_for(
        toolchain: &Toolchain,
        options: &DevnetOptions,
        served: &Devnet,
    ) -> Result<Self> {
        let served = Served { chain_id: served.chain_id(), urls: served.endpoint_urls.clone() };
        Self::start_inner(toolchain, options, Some(served)).await
    }

    async fn start_inner(
        toolchain: &Toolchain,
        options: &DevnetOptions,
        served: Option<Served>,
    ) -> Result<Self> {
        let anvil = AnvilProcess::spawn(toolchain, options.block_time, options.chain_id).await?;
        let rpc_url = format!("http://127.0.0.1:{}", anvil.port);
        info!(target: "devnet", url = %rpc_url, chain_id = anvil.chain_id, "anvil started");

        // Deploy.s.sol leaves a pending record; Configure.s.sol (run next, without an explicit
        // registry) records it once it sees the registry's code, as an operator's run would.
        let deployments = PathBuf::from(format!("target/devnet/{}", anvil.port));
        // Governance delays as short as the registry allows: none on chain 31337, one second
        // for the keeper set elsewhere (then Configure.s.sol runs twice, below).
        let dev_chain = anvil.chain_id == 31337;
        let env = [
            ("DEPLOYER_PRIVATE_KEY", hex_key(&anvil.keys[0])),
            ("LIFELINE_DEPLOYMENTS", deployments.display().to_string()),
            ("LIFELINE_ADMIN_DELAY", "0".into()),
            ("LIFELINE_KEEPER_SET_DELAY", if dev_chain { "0" } else { "1" }.into()),
        ];
        run_script(toolchain, "script/Deploy.s.sol", &rpc_url, &env).await?;

        let mut devnet = Self {
            anvil,
            registry: Address::ZERO,
            deploy_block: 0,
            proxies: Vec::new(),
            keepers: options.keepers,
            api_key: options.api_key.clone(),
            endpoint_urls: Vec::new(),
            secondaries: Vec::new(),
        };
        let config = match &options.config {
            Some(config) => config.clone(),
            None => {
                let served_chain = match served {
                    Some(served) => {
                        devnet.endpoint_urls = served.urls;
                        served.chain_id
                    }
                    None => {
                        for _ in 0..options.endpoints {
                            devnet.proxies.push(FaultProxy::start(rpc_url.clone()).await?);
                        }
                        if let (Some(key), Some(last)) = (&options.api_key, devnet.proxies.last()) {
                            last.require_key(key);
                        }
                        devnet.endpoint_urls = devnet.registered_urls();
                        devnet.chain_id()
                    }
                };
                let path = deployments.join("config.json");
                let json = devnet.generated_config(options, served_chain);
                std::fs::write(toolchain.root().join(&path), json).map_err(|source| Error::Io {
                    context: format!("writing {}", path.display()),
                    source,
                })?;
                path
            }
        };
        let env = [
            ("GOVERNOR_PRIVATE_KEY", hex_key(&devnet.anvil.keys[0])),
            ("LIFELINE_DEPLOYMENTS", deployments.display().to_string()),
            ("LIFELINE_CONFIG", relative_to(toolchain.root(), &config)),
        ];
        run_script(toolchain, "script/Configure.s.sol", &rpc_url, &env).await?;
        if !dev_chain {
            // The first run proposed the keeper set (delay 1 s) and skipped the services: let
            // the delay pass on chain, then activate the set and apply the services.
            devnet.advance_time(2).await?;
            run_script(toolchain, "script/Configure.s.sol", &rpc_url, &env).await?;
        }
        let record =
            toolchain.root().join(&deployments).join(format!("{}.json", devnet.anvil.chain_id));
        (devnet.registry, devnet.deploy_block) = read_deployment(&record)?;
        info!(target: "devnet", registry = %devnet.registry, config = %config.display(), "registry deployed and configured");
        Ok(devnet)
    }

    /// Stops the proxies and anvil, and waits for anvil to exit.
    pub async fn shutdown(self) {
        let Self { anvil, proxies, secondaries, .. } = self;
        for secondary in secondaries {
            Box::pin(secondary.shutdown()).await;
        }
        drop(proxies);
        anvil.shutdown().await;
    }

    /// The proxies' URLs as registered (the keyed one as a template).
    fn registered_urls(&self) -> Vec<String> {
        let keyed = |i: usize| self.api_key.is_some() && i + 1 == self.proxies.len();
        self.proxies
            .iter()
            .enumerate()
            .map(|(i, proxy)| {
                if keyed(i) { format!("{}/${{{DEVNET_SECRET}}}", proxy.url()) } else { proxy.url() }
            })
            .collect()
    }

    /// Moves the chain's clock `seconds` ahead and mines a block (anvil's `evm_increaseTime`).
    async fn advance_time(&self, seconds: u64) -> Result<()> {
        let url = self.rpc_url().parse().map_err(|e| Error::Chain(format!("{e}")))?;
        let provider = ProviderBuilder::new().connect_http(url);
        let chain = |e: &dyn std::fmt::Display| Error::Chain(e.to_string());
        provider
            .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (seconds,))
            .await
            .map_err(|e| chain(&e))?;
        provider
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await
            .map_err(|e| chain(&e))?;
        Ok(())
    }

    fn generated_config(&self, options: &DevnetOptions, served_chain: u64) -> String {
        let keepers: Vec<_> = (1..=options.keepers)
            .map(|i| {
                serde_json::json!({
                    "address": self.account(i).address().to_string(),
                    "vantage": VANTAGES[(i - 1) % VANTAGES.len()],
                })
            })
            .collect();
        let endpoints: Vec<_> = self
            .endpoint_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                serde_json::json!({
                    "url": url,
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
                    "chainId": served_chain,
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
            ("GOVERNOR_PRIVATE_KEY", hex_key(&self.anvil.keys[0])),
            ("LIFELINE_CONFIGURE_REGISTRY", self.registry.to_string()),
            ("LIFELINE_CONFIG", relative_to(toolchain.root(), config)),
        ];
        run_script(toolchain, "script/Configure.s.sol", &self.rpc_url(), &env).await?;
        info!(target: "devnet", config = %config.display(), "registry configured");
        Ok(())
    }

    /// The chain's JSON-RPC URL (always 127.0.0.1, never a name that could resolve elsewhere).
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.anvil.port)
    }

    /// The chain's WebSocket URL: anvil serves it on the same port as [`Self::rpc_url`].
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.anvil.port)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id
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
        self.anvil.keys[index].clone().into()
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
    /// keeper's next nonce for the service; returns the transaction hash once mined.
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
            registry.keeperState(signer.address(), service).call().await.map_err(|e| chain(&e))?;
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

    /// Where this devnet's files are: generated configurations, keeper logs, the API key file
    /// (`target/devnet/<anvil port>` under the repository).
    pub fn dir(&self, toolchain: &Toolchain) -> PathBuf {
        toolchain.root().join(format!("target/devnet/{}", self.anvil.port))
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
        let dir = toolchain.root().join(format!("target/devnet/{}", self.anvil.port));
        let path = dir.join(format!("keeper-{keeper}.toml"));
        let text = format!(
            r#"# generated by lifeline-devnet for keeper {keeper} ({address})
[[registry]]
rpc_urls = [{rpc}]
address = "{registry}"
{secondaries}
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
listen = "127.0.0.1:{metrics_port}"

[[service]]
name = "{service}"
{secrets}"#,
            secrets = if self.api_key.is_some() {
                format!(
                    "\n[secrets.{DEVNET_SECRET}]\nenv = \"{DEVNET_SECRET}\"\nhosts = [\"127.0.0.1\"]\n"
                )
            } else {
                String::new()
            },
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
            secondaries = self
                .secondaries
                .iter()
                .map(|d| format!(
                    "\n[[registry]]\nrpc_urls = [\"{}\"]\naddress = \"{}\"\nchain_id = {}\n",
                    d.rpc_url(),
                    d.registry,
                    d.chain_id()
                ))
                .collect::<String>(),
            interval = options.probe_interval_ms,
            timeout = options.probe_interval_ms.clamp(100, 800),
            fail_after = options.fail_after,
            heartbeat = options.heartbeat_secs,
            metrics_port = match options.metrics_port {
                Some(port) => port,
                None => free_port()?,
            },
            service = DEVNET_SERVICE,
        );
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)).map_err(
            |source| Error::Io { context: format!("writing {}", path.display()), source },
        )?;
        Ok(path)
    }

    /// Starts `lifeline keeper` (the binary at `lifeline`) as keeper `keeper`, its key in the
    /// environment, its log in `target/devnet/<port>/keeper-<n>.log`. Killed (by PID) when the
    /// returned handle is dropped, and when this process dies (see [`die_with_parent`]). Call
    /// it from async code (it needs the Tokio runtime), not from `spawn_blocking`.
    pub fn spawn_keeper(
        &self,
        toolchain: &Toolchain,
        lifeline: &Path,
        keeper: usize,
        config: &Path,
    ) -> Result<KeeperProcess> {
        let log_path =
            toolchain.root().join(format!("target/devnet/{}/keeper-{keeper}.log", self.anvil.port));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(
            |source| Error::Io { context: format!("opening {}", log_path.display()), source },
        )?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            context: format!("opening {}", log_path.display()),
            source,
        })?;
        let mut command = Command::new(lifeline);
        command
            .args(["keeper", "--config"])
            .arg(config)
            .env("LIFELINE_KEEPER_KEY", hex_key(&self.anvil.keys[keeper]))
            .env("RUST_LOG", "info")
            .env_remove("LIFELINE_KEEPER_CONFIG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        if let Some(key) = &self.api_key {
            command.env(DEVNET_SECRET, key);
        }
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| Error::Io {
            context: format!("starting {}", lifeline.display()),
            source,
        })?;
        info!(target: "devnet", keeper, pid = child.id(), "keeper started");
        Ok(KeeperProcess { child: Some(child), keeper, log: log_path })
    }

    /// A `[secrets]` table giving [`DEVNET_SECRET`] for in-process clients and gateways: the
    /// key is written to a file only this user can read (`target/devnet/<port>/api-key`, mode
    /// 0600). Empty without [`DevnetOptions::api_key`].
    pub fn secret_sources(
        &self,
        toolchain: &Toolchain,
    ) -> Result<std::collections::BTreeMap<String, lifeline_bindings::secrets::SecretSource>> {
        let mut table = std::collections::BTreeMap::new();
        let Some(key) = &self.api_key else { return Ok(table) };
        let path = toolchain.root().join(format!("target/devnet/{}/api-key", self.anvil.port));
        let io = |source| Error::Io { context: format!("writing {}", path.display()), source };
        {
            use std::io::Write;
            #[cfg(unix)]
            use std::os::unix::fs::OpenOptionsExt;
            let mut options = std::fs::OpenOptions::new();
            options.create(true).write(true).truncate(true);
            #[cfg(unix)]
            options.mode(0o600);
            options.open(&path).and_then(|mut f| f.write_all(key.as_bytes())).map_err(io)?;
        }
        table.insert(
            DEVNET_SECRET.to_string(),
            lifeline_bindings::secrets::SecretSource {
                env: None,
                file: Some(path),
                hosts: vec!["127.0.0.1".into()],
            },
        );
        Ok(table)
    }

    /// Has keepers 1 and 2 attest every endpoint healthy (lower index, lower latency), so the
    /// set fills to its target: what the keeper agents do on a healthy network.
    pub async fn bootstrap_routes(&self) -> Result<()> {
        let verdicts: Vec<Verdict> = (0..self.endpoint_urls.len() as u16)
            .map(|i| Verdict {
                endpoint: i,
                revision: 0,
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
    /// Serve /metrics on this port (127.0.0.1); `None` picks a free one, so that keepers on one
    /// machine never compete for the default port.
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

/// A keeper process (a `tokio::process` child, killed on drop).
#[derive(Debug)]
pub struct KeeperProcess {
    child: Option<Child>,
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

    /// Its process id, until it has been stopped or has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Asks it to stop (SIGTERM) and returns at once; [`Self::shutdown`] then waits for it.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            terminate(child);
        }
    }

    /// Asks it to stop (SIGTERM), waits up to `grace` for it to exit, then kills it. Only this
    /// task waits; no runtime thread is blocked.
    pub async fn shutdown(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        terminate(&child);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    /// As [`Self::shutdown`], for callers that are not async: blocks the calling thread (moved
    /// off the runtime's workers with `block_in_place` on a multi-threaded runtime).
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        terminate(&child);
        off_the_runtime(|| {
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.start_kill();
            reap(&mut child);
        });
    }

    /// Kills it at once (a crash, SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            off_the_runtime(|| reap(&mut child));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// Makes the process `command` starts die (SIGKILL) when the thread that starts it exits: in
/// practice when this process exits, however it exits (even SIGKILL), so a devnet never leaves
/// an orphaned anvil, keeper or forge behind. Start children from async code (a runtime worker
/// or the `block_on` thread, which live as long as the runtime), never from `spawn_blocking`,
/// whose threads exit when idle. Linux only (`prctl(PR_SET_PDEATHSIG)`); elsewhere a no-op, and
/// kill-on-drop still covers every orderly exit.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the hook runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid).
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died between fork and prctl: do not outlive it.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited before the child started"));
                }
                Ok(())
            });
        }
    }
    command
}

/// A port on 127.0.0.1 that was free a moment ago (for a child process to listen on).
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| Error::Io { context: "finding a free port on 127.0.0.1".into(), source })
}

/// SIGTERM to a child that has not been reaped (so its PID is still its own).
fn terminate(child: &Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: kill(2) with our own child's PID; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// Waits (at most 2 s, polling) for a killed child to be reaped; past that, tokio's orphan
/// reaper takes it over when it is dropped.
fn reap(child: &mut Child) {
    for _ in 0..200 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs blocking `f` without stalling the runtime's other tasks when on a multi-threaded runtime.
fn off_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// anvil, started here rather than with alloy's `Anvil` builder (which takes no pre-exec hook,
/// and blocks a thread reading anvil's banner and again, up to 10 s, when dropped): a
/// `tokio::process` child, killed on drop and when this process dies.
#[derive(Debug)]
struct AnvilProcess {
    child: Child,
    port: u16,
    chain_id: u64,
    keys: Vec<SecretKey>,
}

impl AnvilProcess {
    /// Starts anvil on 127.0.0.1 (a free port) and reads its banner: keys, chain id, port.
    async fn spawn(
        toolchain: &Toolchain,
        block_time: Option<f64>,
        chain_id: Option<u64>,
    ) -> Result<Self> {
        let mut command = Command::new(toolchain.anvil());
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("NO_COLOR", "1")
            .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(block_time) = block_time {
            command.arg("--block-time").arg(block_time.to_string());
        }
        if let Some(chain_id) = chain_id {
            command.arg("--chain-id").arg(chain_id.to_string());
        }
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(NodeError::SpawnError)?;
        let stdout = child.stdout.take().ok_or(NodeError::NoStdout)?;
        let mut lines = BufReader::new(stdout).lines();
        let banner = async {
            let (mut section, mut keys, mut chain_id) = ("", Vec::new(), None);
            while let Some(line) = lines.next_line().await.map_err(NodeError::ReadLineError)? {
                let line = line.trim();
                if let Some(addr) = line.strip_prefix("Listening on") {
                    let port = addr
                        .trim()
                        .parse::<std::net::SocketAddr>()
                        .map_err(|e| NodeError::Fatal(format!("listening address `{addr}`: {e}")))?
                        .port();
                    return Ok((port, keys, chain_id));
                }
                match line {
                    "Private Keys" => section = "keys",
                    "Chain ID" => section = "chain id",
                    "Available Accounts" | "Wallet" | "Base Fee" | "Gas Limit" => section = "",
                    _ if section == "keys" && line.starts_with('(') => {
                        let hex = line.rsplit("0x").next().unwrap_or_default();
                        let bytes = alloy::hex::decode(hex)?;
                        keys.push(
                            SecretKey::from_slice(&bytes)
                                .map_err(|_| NodeError::DeserializePrivateKeyError)?,
                        );
                    }
                    _ if section == "chain id" && chain_id.is_none() => {
                        chain_id = line.parse::<u64>().ok();
                    }
                    _ => {}
                }
            }
            Err(NodeError::Fatal("anvil exited before listening".into()))
        };
        let (port, keys, chain_id) = tokio::time::timeout(Duration::from_secs(10), banner)
            .await
            .map_err(|_| NodeError::Timeout)??;
        if keys.len() < 10 {
            return Err(
                NodeError::Fatal(format!("anvil listed {} keys, expected 10", keys.len())).into()
            );
        }
        // Close the pipe now, as alloy's `Anvil` does: anvil's request log then fails to write
        // and is skipped. A task draining it would stall anvil (full pipe) whenever the runtime
        // that owns the task is blocked, e.g. a test waiting on `cast` on a current-thread
        // runtime.
        drop(lines);
        Ok(Self { child, port, chain_id: chain_id.unwrap_or(31337), keys })
    }

    async fn shutdown(mut self) {
        let _ = self.child.kill().await;
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
    let mut command = Command::new(toolchain.forge());
    command
        .current_dir(toolchain.root())
        .args(["script", script, "--rpc-url", rpc_url, "--broadcast", "--slow"])
        // The scripts read these from `env` only, never from the caller's environment (e.g. a
        // shell set up for another registry).
        .env_remove("LIFELINE_CONFIGURE_REGISTRY")
        .env_remove("LIFELINE_DEPLOYMENTS")
        .env_remove("LIFELINE_CONFIG")
        .env_remove("LIFELINE_ADMIN")
        .env_remove("LIFELINE_GUARDIAN")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = die_with_parent(&mut command).output().await.map_err(|source| Error::Io {
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
