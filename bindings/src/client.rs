//! Read side of the registry for apps: a service's authorised [`RouteSet`] and the state of
//! each endpoint, as plain Rust types.

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, keccak256},
    providers::Provider,
};
use serde::Serialize;

use crate::{
    Result,
    registry::RouteRegistry::{self, RouteRegistryInstance},
};

/// One authorised route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Index of the endpoint within its service.
    pub id: u16,
    /// Where to send requests.
    pub url: String,
    /// Region tag.
    pub region: String,
    /// Provider tag.
    pub provider: String,
    /// Latency last attested by a keeper, in milliseconds.
    pub latency_ms: u32,
    /// A keeper quorum judged it unhealthy but it could not be replaced yet.
    pub degraded: bool,
}

/// A block of the registry chain: its number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// The authorised route set of a service at one epoch.
///
/// A set is identified by its epoch and its [`content_hash`](Self::content_hash), not by its
/// epoch alone: after a reorganisation of the registry chain the canonical set may carry the
/// same epoch as a set that no longer exists, with other routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteSet {
    /// Topology epoch: increases with every change of the set, and only then (on one chain: a
    /// reorganisation can bring it back, see [`after_reorg`](Self::after_reorg)).
    pub epoch: u32,
    /// Unix time of the last attestation the registry accepted for the service.
    pub last_attested: u64,
    /// No attestation within the service's TTL: keepers are silent, the set is fail-static.
    pub stale: bool,
    /// The active routes, by endpoint index.
    pub routes: Vec<Route>,
    /// The block the set was read at ([`RegistryClient::routes_at`], and every set a
    /// [`RouteSetWatcher`](crate::watch::RouteSetWatcher) yields); `None` for a set read at
    /// `latest` ([`RegistryClient::routes`]) or built by hand.
    pub block: Option<BlockRef>,
    /// The registry chain reorganised since the previous set a watcher yielded, and this set is
    /// the canonical one now: it replaces a set the reorganisation removed, so its epoch may be
    /// lower than or equal to that set's. [`FailoverTransport::apply`] takes such a set whatever
    /// its epoch; it never goes back to a lower or equal epoch otherwise.
    ///
    /// [`FailoverTransport::apply`]: crate::transport::FailoverTransport::apply
    pub after_reorg: bool,
}

impl RouteSet {
    /// What the set routes to: keccak256 over each route's id, URL, region, provider and
    /// `degraded` flag, in order. Latencies, `last_attested`, `stale`, the epoch and the block
    /// are left out (they change without the routes changing). Two sets are the same set when
    /// their `(epoch, content_hash)` are equal.
    pub fn content_hash(&self) -> B256 {
        let mut bytes = Vec::new();
        for route in &self.routes {
            bytes.extend_from_slice(&route.id.to_be_bytes());
            bytes.push(u8::from(route.degraded));
            for text in [&route.url, &route.region, &route.provider] {
                bytes.extend_from_slice(&(text.len() as u64).to_be_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
        }
        keccak256(&bytes)
    }
}

/// Lifecycle state of an endpoint (mirrors `EndpointStatus` in the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Member, not serving.
    Standby,
    /// In the authorised set.
    Active,
    /// Removed by a keeper quorum, cooling down.
    Demoted,
    /// Removed by governance for good.
    Retired,
}

impl Status {
    /// The contract's `EndpointStatus`; `None` for a value these bindings do not know (a slot
    /// not in use, or a status newer than the bindings): never guessed.
    pub fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::Standby),
            2 => Some(Self::Active),
            3 => Some(Self::Demoted),
            4 => Some(Self::Retired),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standby => "standby",
            Self::Active => "active",
            Self::Demoted => "demoted",
            Self::Retired => "retired",
        })
    }
}

/// Everything the registry knows about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointState {
    /// Index within the service.
    pub id: u16,
    /// Lifecycle state.
    pub status: Status,
    /// Standby with a healthy quorum: may be promoted.
    pub ready: bool,
    /// Active but judged unhealthy by a quorum (kept by the floor, blast radius or a freeze).
    pub degraded: bool,
    /// Latency last attested healthy, in milliseconds.
    pub latency_ms: u32,
    /// While demoted: unix time before which healthy votes are ignored.
    pub cooldown_until: u64,
    /// Keepers currently voting unhealthy.
    pub down_votes: u32,
    /// Keepers currently voting healthy (standby and demoted endpoints).
    pub up_votes: u32,
    /// Where it serves.
    pub url: String,
    /// Region tag.
    pub region: String,
    /// Provider tag.
    pub provider: String,
    /// Who runs it.
    pub operator: Address,
}

/// Reads a Lifeline registry.
#[derive(Debug, Clone)]
pub struct RegistryClient<P> {
    contract: RouteRegistryInstance<P>,
}

impl<P: Provider> RegistryClient<P> {
    /// A client for the registry at `address`, reading through `provider`.
    pub fn new(address: Address, provider: P) -> Self {
        Self { contract: RouteRegistry::new(address, provider) }
    }

    /// The typed contract instance, for calls this client does not wrap.
    pub fn contract(&self) -> &RouteRegistryInstance<P> {
        &self.contract
    }

    /// The authorised route set of `service`, in one call at `latest` (`block` is `None`).
    pub async fn routes(&self, service: B256) -> Result<RouteSet> {
        self.read_routes(service, BlockId::latest(), None).await
    }

    /// The authorised route set of `service` as of `block`, read at that block's hash (EIP-1898),
    /// so the set is the one of exactly that block (an error if the node does not have it, e.g.
    /// once it was reorganised away). The set's `block` is `Some(block)`.
    pub async fn routes_at(&self, service: B256, block: BlockRef) -> Result<RouteSet> {
        self.read_routes(service, BlockId::hash(block.hash), Some(block)).await
    }

    async fn read_routes(
        &self,
        service: B256,
        at: BlockId,
        block: Option<BlockRef>,
    ) -> Result<RouteSet> {
        let set = self.contract.authorisedRoutes(service).block(at).call().await?;
        Ok(RouteSet {
            epoch: set.epoch,
            last_attested: set.lastAttestedAt,
            stale: set.stale,
            routes: set
                .routes
                .into_iter()
                .map(|r| Route {
                    id: r.id,
                    url: r.url,
                    region: r.region,
                    provider: r.provider,
                    latency_ms: r.latencyMs,
                    degraded: r.degraded,
                })
                .collect(),
            block,
            after_reorg: false,
        })
    }

    /// Config and live state of `service`.
    pub async fn service(&self, service: B256) -> Result<RouteRegistry::ServiceView> {
        Ok(self.contract.service(service).call().await?)
    }

    /// Every endpoint of `service`, in index order (read concurrently).
    pub async fn endpoints(&self, service: B256) -> Result<Vec<EndpointState>> {
        let count = self.service(service).await?.endpointCount;
        let reads = (0..count).map(|id| async move {
            self.contract.endpoint(service, id).call().await.map(|e| (id, e))
        });
        let views = futures_util::future::try_join_all(reads).await?;
        let mut out = Vec::with_capacity(usize::from(count));
        for (id, e) in views {
            out.push(EndpointState {
                id,
                status: Status::from_raw(e.status)
                    .ok_or(crate::Error::UnknownStatus { endpoint: id, status: e.status })?,
                ready: e.ready,
                degraded: e.degraded,
                latency_ms: e.latencyMs,
                cooldown_until: e.cooldownUntil,
                down_votes: e.downVotes,
                up_votes: e.upVotes,
                url: e.url,
                region: e.region,
                provider: e.provider,
                operator: e.operator,
            });
        }
        Ok(out)
    }
}
