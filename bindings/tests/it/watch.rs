//! Reorg-safe following: a registry on anvil whose chain is reorganised (`anvil_reorg`,
//! `evm_snapshot`/`evm_revert`) under a running watcher and a following failover transport.
//!
//! The registry is set up like the devnet's (3 keepers, quorum 2, 4 endpoints of which 2 are
//! active, 2 regions wanted), its endpoints are fault proxies in front of the same anvil so that
//! the test can count the requests each one receives. Keepers sign with
//! `lifeline_bindings::attestation::sign`; anvil's account 0 governs and relays.

use std::time::{Duration, Instant};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{client::RpcClient, types::TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use lifeline_bindings::{
    Attestation, FailoverConfig, FailoverTransport, RegistryClient, RouteRegistry, RouteSet,
    RouteSetWatcher, Verdict, WatchConfig, attestation, service_id,
    transport::freshness::FreshnessConfig,
};
use lifeline_devnet::FaultProxy;

use crate::support::Chain;

const SERVICE: &str = "eth-devnet/rpc";
const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "eu-west"];

/// A configured registry on a fresh anvil, its endpoints behind proxies.
struct Net {
    chain: Chain,
    proxies: Vec<FaultProxy>,
    service: B256,
}

impl Net {
    async fn start() -> eyre::Result<Self> {
        let chain = Chain::start().await?;
        let mut proxies = Vec::new();
        for _ in 0..4 {
            proxies.push(FaultProxy::start(chain.rpc_url()).await?);
        }
        let net = Self { chain, proxies, service: service_id(SERVICE) };
        let registry = RouteRegistry::new(net.chain.registry, net.governor()?);
        let keepers: Vec<Address> = (1..=3).map(|k| net.keeper(k).address()).collect();
        let vantages: Vec<B256> = ["eu-west", "us-east", "ap-south"].map(keccak256).into();
        registry.setKeepers(keepers, vantages).send().await?.get_receipt().await?;
        let config = RouteRegistry::ServiceConfig {
            chainId: net.chain.chain_id(),
            targetActive: 2,
            floor: 1,
            minRegions: 2,
            quorum: 2,
            minVantages: 0,
            maxDemotions: 3,
            demotionWindow: 600,
            cooldown: 30,
            attestationTtl: 120,
        };
        let receipt = registry
            .createService(net.service, SERVICE.into(), config)
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "createService reverted");
        for (i, proxy) in net.proxies.iter().enumerate() {
            let receipt = registry
                .addEndpoint(
                    net.service,
                    proxy.url(),
                    REGIONS[i].into(),
                    format!("node-{i}"),
                    net.keeper(9).address(),
                )
                .send()
                .await?
                .get_receipt()
                .await?;
            eyre::ensure!(receipt.status(), "addEndpoint reverted");
        }
        Ok(net)
    }

    /// Account 0 (admin, governor, relayer), with a fresh nonce cache: the chain goes back.
    fn governor(&self) -> eyre::Result<DynProvider> {
        let signer: PrivateKeySigner = self.chain.anvil.keys()[0].clone().into();
        Ok(ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(self.chain.rpc_url().parse()?)
            .erased())
    }

    fn keeper(&self, index: usize) -> PrivateKeySigner {
        self.chain.anvil.keys()[index].clone().into()
    }

    fn client(&self) -> RegistryClient<DynProvider> {
        RegistryClient::new(self.chain.registry, self.chain.provider.clone())
    }

    /// Calldata of `attest` for keeper `keeper`'s attestation of `verdicts`, valid against the
    /// registry's state now (epoch, config version, next nonce).
    async fn attestation(&self, keeper: usize, verdicts: Vec<Verdict>) -> eyre::Result<Bytes> {
        let signer = self.keeper(keeper);
        let registry = RouteRegistry::new(self.chain.registry, &self.chain.provider);
        let epoch = registry.service(self.service).call().await?.epoch;
        let nonce =
            registry.keeperState(signer.address(), self.service).call().await?.lastNonce + 1;
        let version = registry.keepers().call().await?._0;
        let now = self
            .chain
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| eyre::eyre!("no latest block"))?
            .header
            .timestamp;
        let report = Attestation {
            service: self.service,
            epoch,
            configVersion: version,
            nonce,
            deadline: now + 60,
            verdicts,
        };
        let signature =
            attestation::sign(&signer, &report, self.chain.chain_id(), self.chain.registry)?;
        Ok(RouteRegistry::attestCall { attestation: report, signature: signature.into() }
            .abi_encode()
            .into())
    }

    /// Keeper `keeper` attests `verdicts` (relayed by account 0, mined).
    async fn attest(&self, keeper: usize, verdicts: Vec<Verdict>) -> eyre::Result<()> {
        let input = self.attestation(keeper, verdicts).await?;
        let tx = TransactionRequest::default().to(self.chain.registry).input(input.into());
        let receipt = self.governor()?.send_transaction(tx).await?.get_receipt().await?;
        eyre::ensure!(receipt.status(), "attestation {} reverted", receipt.transaction_hash);
        Ok(())
    }

    /// Keepers 1 and 2 attest every endpoint healthy (lower index, lower latency): epoch 1 =
    /// [0, 1] (the best latency, then an uncovered region).
    async fn bootstrap(&self) -> eyre::Result<()> {
        let all: Vec<Verdict> = (0..4)
            .map(|i| Verdict {
                endpoint: i,
                revision: 0,
                healthy: true,
                latencyMs: 10 + u32::from(i),
                headLag: 0,
            })
            .collect();
        self.attest(1, all.clone()).await?;
        self.attest(2, all).await?;
        Ok(())
    }

    /// `anvil_reorg`: replaces the last `depth` blocks with as many new ones, the `attest`
    /// calls `txs` (relayed by account 0) in the first ones, one per block.
    async fn reorg(&self, depth: u64, txs: &[Bytes]) -> eyre::Result<()> {
        let from = self.keeper(0).address();
        let pairs: Vec<(serde_json::Value, u64)> = txs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let tx = serde_json::json!({
                    "from": from,
                    "to": self.chain.registry,
                    "input": input,
                    "gas": "0x1e8480",
                });
                (tx, i as u64)
            })
            .collect();
        let before = self.chain.provider.get_block_number().await?;
        self.chain
            .provider
            .raw_request::<_, serde_json::Value>("anvil_reorg".into(), (depth, pairs))
            .await?;
        let after = self.chain.provider.get_block_number().await?;
        eyre::ensure!(before == after, "anvil_reorg keeps the height ({before} -> {after})");
        Ok(())
    }

    /// The head: (number, hash).
    async fn head(&self) -> eyre::Result<(u64, B256)> {
        let latest = alloy::eips::BlockNumberOrTag::Latest;
        let head = self.chain.provider.get_block_by_number(latest).await?;
        let head = head.ok_or_else(|| eyre::eyre!("no head"))?.header;
        Ok((head.number, head.hash))
    }

    async fn mine(&self, blocks: u64) -> eyre::Result<()> {
        for _ in 0..blocks {
            self.chain.provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
        }
        Ok(())
    }

    /// Endpoint indices the transport routes by, sorted.
    fn routed(&self, transport: &FailoverTransport) -> Vec<usize> {
        let mut ids: Vec<usize> = transport
            .routes()
            .iter()
            .filter_map(|r| self.proxies.iter().position(|p| r.url.as_str().starts_with(&p.url())))
            .collect();
        ids.sort_unstable();
        ids
    }
}

fn unhealthy(endpoint: u16) -> Vec<Verdict> {
    vec![Verdict { endpoint, revision: 0, healthy: false, latencyMs: 0, headLag: 0 }]
}

fn ids(set: &RouteSet) -> Vec<u16> {
    set.routes.iter().map(|r| r.id).collect()
}

fn transport() -> FailoverTransport {
    FailoverTransport::new(FailoverConfig {
        attempt_timeout: Duration::from_millis(500),
        hedge_after: None,
        freshness: FreshnessConfig {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn follow_config() -> WatchConfig {
    WatchConfig { poll_interval: Duration::from_millis(50), ..Default::default() }
}

/// A watcher the test polls itself (no log-less resync in the way).
fn manual_config() -> WatchConfig {
    WatchConfig {
        poll_interval: Duration::from_millis(50),
        resync_every: 1000,
        ..Default::default()
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) -> eyre::Result<()> {
    let started = Instant::now();
    while !done() {
        eyre::ensure!(started.elapsed() < Duration::from_secs(10), "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The case: epoch 2 = [1, 2] is reorganised away and the canonical chain has another
/// epoch 2 = [0, 2]. The watcher yields the canonical set (same epoch, other routes) and the
/// transport following the registry routes by it: endpoint 1 gets no request afterwards.
#[tokio::test]
async fn reorg_to_the_same_epoch_with_other_routes_is_followed_and_the_demoted_route_unused()
-> eyre::Result<()> {
    let net = Net::start().await?;
    net.bootstrap().await?;
    let client = net.client();
    let mut watcher = client.watch(net.service, manual_config());
    let first = watcher.poll().await?.ok_or_else(|| eyre::eyre!("the current set first"))?;
    assert_eq!((first.epoch, ids(&first)), (1, vec![0, 1]));
    let transport = transport();
    let _follower = transport.follow(client.clone(), net.service, follow_config());
    eventually("the follower applies epoch 1", || net.routed(&transport) == [0, 1]).await?;

    // The canonical change (endpoint 1 demoted) is signed against the state the change that
    // will be reorganised away (endpoint 0 demoted) is made on: same epoch, same nonces.
    let canonical =
        [net.attestation(1, unhealthy(1)).await?, net.attestation(2, unhealthy(1)).await?];
    net.attest(1, unhealthy(0)).await?;
    net.attest(2, unhealthy(0)).await?;
    let orphan = watcher.poll().await?.ok_or_else(|| eyre::eyre!("epoch 2 seen"))?;
    assert_eq!((orphan.epoch, ids(&orphan)), (2, vec![1, 2]));
    eventually("the follower applies epoch 2 = [1, 2]", || net.routed(&transport) == [1, 2])
        .await?;
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
    for _ in 0..10 {
        provider.get_block_number().await?;
    }
    assert!(net.proxies[1].requests() > 0, "endpoint 1 served while it was in the set");

    net.reorg(2, &canonical).await?;
    let now = client.routes(net.service).await?;
    assert_eq!((now.epoch, ids(&now)), (2, vec![0, 2]), "the canonical chain's epoch 2");

    let set = watcher.poll().await?.ok_or_else(|| eyre::eyre!("the canonical set is yielded"))?;
    assert_eq!((set.epoch, ids(&set)), (2, vec![0, 2]));
    assert!(set.after_reorg);
    let read_at = set.block.map(|b| (b.number, b.hash));
    assert_eq!(read_at, Some(net.head().await?), "read at the new head");
    assert!(watcher.poll().await?.is_none(), "nothing more");

    eventually("the follower applies the canonical [0, 2]", || net.routed(&transport) == [0, 2])
        .await?;
    assert_eq!(transport.epoch(), Some(2));
    // Let head polls of the old set finish, then only [0, 2] may be asked anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let demoted = net.proxies[1].requests();
    let others = net.proxies[0].requests() + net.proxies[2].requests();
    let mut answered = 0;
    for _ in 0..50 {
        answered += u32::from(provider.get_block_number().await.is_ok());
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // a few head-poll rounds too
    assert!(answered > 0, "the canonical routes answer");
    assert_eq!(net.proxies[1].requests(), demoted, "no request went to endpoint 1");
    assert!(net.proxies[0].requests() + net.proxies[2].requests() > others);
    Ok(())
}

/// A reorganisation back to before a change lowers the epoch: the watcher yields the lower
/// epoch's set and the transport goes back to it, then takes the registry's next epoch.
#[tokio::test]
async fn reorg_that_lowers_the_epoch_is_followed_and_then_the_next_epoch() -> eyre::Result<()> {
    let net = Net::start().await?;
    net.bootstrap().await?;
    let snapshot: serde_json::Value =
        net.chain.provider.raw_request("evm_snapshot".into(), ()).await?;
    let client = net.client();
    let mut watcher = client.watch(net.service, manual_config());
    assert_eq!(watcher.poll().await?.map(|s| s.epoch), Some(1));
    let transport = transport();
    let _follower = transport.follow(client.clone(), net.service, follow_config());
    eventually("the follower applies epoch 1", || net.routed(&transport) == [0, 1]).await?;

    net.attest(1, unhealthy(0)).await?;
    net.attest(2, unhealthy(0)).await?;
    let two = watcher.poll().await?.ok_or_else(|| eyre::eyre!("epoch 2 seen"))?;
    assert_eq!((two.epoch, ids(&two)), (2, vec![1, 2]));
    eventually("the follower applies epoch 2", || net.routed(&transport) == [1, 2]).await?;

    // Back to before the demotion; the new chain is shorter than the old one for a while.
    let reverted: bool = net.chain.provider.raw_request("evm_revert".into(), (snapshot,)).await?;
    assert!(reverted);
    net.mine(1).await?;
    assert_eq!(client.routes(net.service).await?.epoch, 1, "the canonical epoch is 1");

    let one = watcher.poll().await?.ok_or_else(|| eyre::eyre!("the lower epoch is yielded"))?;
    assert_eq!((one.epoch, ids(&one)), (1, vec![0, 1]));
    assert!(one.after_reorg);
    eventually("the follower goes back to epoch 1", || {
        net.routed(&transport) == [0, 1] && transport.epoch() == Some(1)
    })
    .await?;

    // The registry's next change has epoch 2 again: an ordinary update, taken.
    net.attest(1, unhealthy(1)).await?;
    net.attest(2, unhealthy(1)).await?;
    let next = watcher.poll().await?.ok_or_else(|| eyre::eyre!("the new epoch 2"))?;
    assert_eq!((next.epoch, ids(&next)), (2, vec![0, 2]));
    assert!(!next.after_reorg);
    eventually("the follower applies the new epoch 2", || {
        net.routed(&transport) == [0, 2] && transport.epoch() == Some(2)
    })
    .await?;
    Ok(())
}

/// One poll of a watcher with `confirmations`, asserting that a set it yields was read at a
/// block with at least that many blocks on top (the chain only moves when the test mines).
async fn poll_confirmed(
    net: &Net,
    watcher: &mut RouteSetWatcher<DynProvider>,
    confirmations: u64,
) -> eyre::Result<Option<RouteSet>> {
    let set = watcher.poll().await?;
    if let Some(set) = &set {
        let block = set.block.ok_or_else(|| eyre::eyre!("a set read at a block"))?;
        let head = net.chain.provider.get_block_number().await?;
        assert!(
            head >= block.number + confirmations,
            "epoch {} from block {} yielded at head {head}",
            set.epoch,
            block.number
        );
    }
    Ok(set)
}

/// With `confirmations = 3` a set is only yielded once 3 blocks were built on the block it was
/// read at; a reorganisation shallower than that is never seen, a deeper one is.
#[tokio::test]
async fn confirmations_never_yield_a_set_from_a_block_with_fewer_confirmations() -> eyre::Result<()>
{
    const N: u64 = 3;
    let net = Net::start().await?;
    net.mine(N).await?;
    let client = net.client();
    let mut watcher =
        client.watch(net.service, WatchConfig { confirmations: N, ..manual_config() });

    let first = poll_confirmed(&net, &mut watcher, N).await?;
    let first = first.ok_or_else(|| eyre::eyre!("a confirmed set"))?;
    assert_eq!((first.epoch, first.routes.len()), (0, 0), "nothing authorised 3 blocks ago");
    net.bootstrap().await?;
    let changed = net.chain.provider.get_block_number().await?;
    assert_eq!(client.routes(net.service).await?.epoch, 1, "epoch 1 at the head");
    for confirmations in 0..N {
        let set = poll_confirmed(&net, &mut watcher, N).await?;
        assert!(set.is_none(), "epoch 1 with {confirmations} confirmations yielded");
        net.mine(1).await?;
    }
    let one = poll_confirmed(&net, &mut watcher, N).await?;
    let one = one.ok_or_else(|| eyre::eyre!("epoch 1, confirmed"))?;
    assert_eq!((one.epoch, ids(&one)), (1, vec![0, 1]));
    assert_eq!(one.block.map(|b| b.number), Some(changed));

    // A reorganisation of the 2 newest blocks does not reach the block read at.
    net.reorg(2, &[]).await?;
    let set = poll_confirmed(&net, &mut watcher, N).await?;
    assert!(set.is_none(), "a shallow reorganisation changes nothing");
    // One of N + 1 blocks removes the second bootstrap vote, and the new chain grows by a
    // block: the block read at is now the parent of the one to read at, and not canonical.
    net.reorg(N + 1, &[]).await?;
    net.mine(1).await?;
    let back = poll_confirmed(&net, &mut watcher, N).await?;
    let back = back.ok_or_else(|| eyre::eyre!("the canonical set after a deep reorganisation"))?;
    assert_eq!((back.epoch, back.routes.len()), (0, 0), "the canonical epoch is 0 again");
    assert!(back.after_reorg);
    assert_eq!(back.block.map(|b| b.number), Some(changed + 1));
    Ok(())
}

fn hand_set(epoch: u32, ports: &[u16], after_reorg: bool) -> RouteSet {
    RouteSet {
        epoch,
        routes: ports
            .iter()
            .map(|&port| lifeline_bindings::Route {
                id: port,
                url: format!("http://127.0.0.1:{port}"),
                region: "eu".into(),
                provider: "p".into(),
                latency_ms: 10,
                degraded: false,
            })
            .collect(),
        after_reorg,
        ..Default::default()
    }
}

/// `apply` never goes back to a lower or equal epoch for an ordinary set; the canonical set
/// after a reorganisation (`after_reorg`, or `apply_canonical`) is taken whatever its epoch, and
/// an empty one keeps the routes (fail static) but takes the epoch, so the next set applies.
#[tokio::test]
async fn transport_goes_back_only_for_the_canonical_set_after_a_reorg() {
    let t = FailoverTransport::new(FailoverConfig {
        freshness: FreshnessConfig { enabled: false, ..Default::default() },
        ..Default::default()
    });
    let ports = |t: &FailoverTransport| {
        let mut ports: Vec<u16> = t.routes().iter().filter_map(|r| r.url.port()).collect();
        ports.sort_unstable();
        ports
    };
    assert!(t.apply(&hand_set(2, &[1, 2], false)));
    assert!(!t.apply(&hand_set(2, &[1, 3], false)), "same epoch, ordinary: ignored");
    assert!(!t.apply(&hand_set(1, &[1, 3], false)), "lower epoch, ordinary: ignored");
    assert_eq!((t.epoch(), ports(&t)), (Some(2), vec![1, 2]));
    assert!(t.apply(&hand_set(2, &[1, 3], true)), "same epoch, canonical after a reorg");
    assert_eq!((t.epoch(), ports(&t)), (Some(2), vec![1, 3]));
    assert!(t.apply(&hand_set(1, &[1, 2], true)), "lower epoch, canonical after a reorg");
    assert_eq!((t.epoch(), ports(&t)), (Some(1), vec![1, 2]));
    assert!(!t.apply_canonical(&hand_set(0, &[], false)), "empty: nothing to route by");
    assert_eq!((t.epoch(), ports(&t)), (Some(0), vec![1, 2]), "routes kept, epoch taken");
    assert!(t.apply(&hand_set(1, &[3, 4], false)), "the registry's next epoch applies");
    assert_eq!((t.epoch(), ports(&t)), (Some(1), vec![3, 4]));
}

/// A set is identified by (epoch, content hash): latencies and attestation times are not
/// content; ids, URLs, regions, providers and the degraded flag are.
#[test]
fn content_hash_covers_the_routes_not_the_latencies() {
    let a = hand_set(1, &[1, 2], false);
    let mut b = a.clone();
    b.routes[0].latency_ms = 99;
    b.last_attested = 7;
    b.stale = true;
    assert_eq!(a.content_hash(), b.content_hash());
    for change in [
        |s: &mut RouteSet| s.routes[1].degraded = true,
        |s: &mut RouteSet| s.routes[1].url.push('/'),
        |s: &mut RouteSet| s.routes[1].region = "us".into(),
        |s: &mut RouteSet| s.routes.reverse(),
        |s: &mut RouteSet| s.routes.truncate(1),
    ] {
        let mut c = a.clone();
        change(&mut c);
        assert_ne!(a.content_hash(), c.content_hash(), "{c:?}");
    }
}
