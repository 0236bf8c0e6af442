//! A whole Lifeline for scenario tests: a devnet (1 s blocks, four endpoint proxies), keeper
//! processes, and a client streaming requests through the failover transport.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::client::RpcClient,
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, RegistryClient, RouteSet, WatchConfig, transport::Follower,
};
use lifeline_devnet::{
    Devnet, DevnetOptions, FaultProxy, KeeperOptions, KeeperProcess, RequestStream, Toolchain,
    wait_for_routes,
};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

/// Bound on one failover in these tests (detection F x 0.5 s + a block + slack for a busy CI).
pub(crate) const FAILOVER_BOUND: Duration = Duration::from_secs(30);

pub(crate) struct World {
    pub(crate) toolchain: Toolchain,
    pub(crate) devnet: Devnet,
    pub(crate) keepers: Vec<Option<KeeperProcess>>,
    pub(crate) registry: RegistryClient<DynProvider>,
    pub(crate) transport: FailoverTransport,
    pub(crate) load: Option<RequestStream>,
    _follower: Follower,
}

impl World {
    /// Devnet + keeper processes for the keepers in `spawn` (1-based; the others are registered
    /// but not run) + a client; returns once the keepers filled the set and the client follows it.
    pub(crate) async fn start(spawn: &[usize]) -> eyre::Result<Self> {
        Self::start_with(spawn, DevnetOptions::default()).await
    }

    /// As [`World::start`], with these devnet options (blocks are always 1 s).
    pub(crate) async fn start_with(spawn: &[usize], options: DevnetOptions) -> eyre::Result<Self> {
        let toolchain = Toolchain::locate()?;
        let options = DevnetOptions { block_time: Some(1.0), ..options };
        let devnet = Devnet::start(&toolchain, &options).await?;
        let mut keepers: Vec<Option<KeeperProcess>> = (0..3).map(|_| None).collect();
        for &k in spawn {
            let config = devnet.keeper_config(&toolchain, k, &KeeperOptions::default())?;
            keepers[k - 1] =
                Some(devnet.spawn_keeper(&toolchain, Path::new(LIFELINE), k, &config)?);
        }
        let reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?).erased();
        let registry = RegistryClient::new(devnet.registry(), reader);
        let transport = FailoverTransport::new(FailoverConfig {
            attempt_timeout: Duration::from_millis(800),
            ..Default::default()
        });
        let watch = WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() };
        let follower = transport.follow(registry.clone(), devnet.service_id(), watch);
        let mut world = Self {
            toolchain,
            devnet,
            keepers,
            registry,
            transport,
            load: None,
            _follower: follower,
        };
        let set = world
            .wait_until("keepers fill the set", Duration::from_secs(60), |s| s.routes.len() == 2)
            .await?;
        world.wait_for_client(set.epoch).await?;
        let client =
            ProviderBuilder::new().connect_client(RpcClient::new(world.transport.clone(), false));
        world.load = Some(RequestStream::start(client, Duration::from_millis(25)));
        Ok(world)
    }

    pub(crate) fn proxy(&self, endpoint: u16) -> &FaultProxy {
        &self.devnet.proxies()[usize::from(endpoint)]
    }

    pub(crate) async fn routes(&self) -> eyre::Result<RouteSet> {
        Ok(self.registry.routes(self.devnet.service_id()).await?)
    }

    /// Polls the on-chain set until `done`, at most `limit`.
    pub(crate) async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&RouteSet) -> bool,
    ) -> eyre::Result<RouteSet> {
        let set =
            wait_for_routes(&self.registry, self.devnet.service_id(), what, limit, done).await;
        set.map_err(|e| {
            let logs: Vec<String> =
                self.keepers.iter().flatten().map(|k| k.log().display().to_string()).collect();
            eyre::eyre!("{e}; keeper logs: {logs:?}")
        })
    }

    pub(crate) async fn wait_for_client(&self, epoch: u32) -> eyre::Result<()> {
        let started = Instant::now();
        while self.transport.epoch() < Some(epoch) {
            eyre::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "client never reached epoch {epoch}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// Client errors so far.
    pub(crate) fn client_errors(&self) -> u64 {
        self.load.as_ref().map_or(0, RequestStream::errors)
    }

    pub(crate) fn client_requests(&self) -> u64 {
        self.load.as_ref().map_or(0, RequestStream::requests)
    }

    pub(crate) fn assert_client_clean(&self) {
        assert!(self.client_requests() > 0, "the client ran");
        assert_eq!(
            self.client_errors(),
            0,
            "client errors while a healthy route existed; last: {:?}",
            self.load.as_ref().and_then(RequestStream::last_error)
        );
    }
}

pub(crate) fn ids(set: &RouteSet) -> Vec<u16> {
    set.routes.iter().map(|r| r.id).collect()
}
