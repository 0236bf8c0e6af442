//! Read side of the registry for apps: a service's authorised [`RouteSet`] and the state of
//! each endpoint, as plain Rust types.

use alloy::{
    primitives::{Address, B256},
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

/// The authorised route set of a service at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSet {
    /// Topology epoch: increases with every change of the set, and only then.
    pub epoch: u32,
    /// Unix time of the last attestation the registry accepted for the service.
    pub last_attested: u64,
    /// No attestation within the service's TTL: keepers are silent, the set is fail-static.
    pub stale: bool,
    /// The active routes, by endpoint index.
    pub routes: Vec<Route>,
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

    /// The authorised route set of `service`, in one call.
    pub async fn routes(&self, service: B256) -> Result<RouteSet> {
        let set = self.contract.authorisedRoutes(service).call().await?;
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
