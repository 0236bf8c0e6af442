//! The gateway's TOML configuration (`config/gateway.example.toml` documents every field).
//!
//! Every field but the registry address and the services has a default; a bad value is refused
//! at startup with the field and the value, e.g. `limits.max_batch = 0: must be at least 1`.

use std::{net::SocketAddr, path::Path, time::Duration};

use alloy::primitives::{Address, B256};
use serde::Deserialize;

use crate::{Error, Result};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where JSON-RPC is served (HTTP POST and WebSocket on `/rpc/<service>`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `/routes`, `/healthz` and `/metrics` are served; keep it private.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Serve the status page (`/status`, `/status.json`) on the admin listener.
    #[serde(default = "default_status")]
    pub status: bool,
    /// The registries followed, the primary first (`[[registry]]`; a single `[registry]` table
    /// is a list of one). With several, every service follows all of them and routes by one
    /// rule (see [`RegistryChoice`]).
    #[serde(rename = "registry", deserialize_with = "one_or_many")]
    pub registries: Vec<RegistrySection>,
    /// How the set in force is chosen among several registries.
    #[serde(default)]
    pub registry_choice: RegistryChoice,
    /// The services served (at least one).
    #[serde(rename = "service", default)]
    pub services: Vec<ServiceSection>,
    /// Limits a public-facing gateway needs.
    #[serde(default)]
    pub limits: Limits,
    /// Per-request failover tuning.
    #[serde(default)]
    pub transport: TransportSection,
    /// Subscriptions (`eth_subscribe`) over WebSocket.
    #[serde(default)]
    pub subscriptions: SubscriptionSection,
    /// Head-aware routing: which routes are fresh enough to read from.
    #[serde(default)]
    pub freshness: FreshnessSection,
    /// Secrets endpoint URL templates may name (`[secrets.NAME]`: `env` or `file`, and the
    /// `hosts` it may be sent to); see `lifeline_bindings::secrets`.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, lifeline_bindings::secrets::SecretSource>,
}

/// `[freshness]`: never serve stale or wrong-chain data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreshnessSection {
    /// Track every route's head and skip stale routes for reads.
    pub enabled: bool,
    /// A route more than this many blocks behind (or ahead of) the majority's head is skipped.
    pub max_lag_blocks: u64,
    /// Head data older than this does not count, milliseconds.
    pub max_head_age_ms: u64,
    /// How often every route's head is polled, milliseconds (about the block time).
    pub poll_interval_ms: u64,
    /// The chain id every route must serve (default: the majority's).
    pub expected_chain_id: Option<u64>,
    /// When no route is fresh, read from stale ones instead of answering an error.
    pub allow_stale: bool,
    /// Methods answered only when `consensus_agree` of `consensus_ask` fresh routes return the
    /// same result (e.g. the `eth_call` that prices an order); empty = off.
    pub consensus_methods: Vec<String>,
    /// Routes asked for a consensus method.
    pub consensus_ask: usize,
    /// Identical answers needed.
    pub consensus_agree: usize,
}

impl Default for FreshnessSection {
    fn default() -> Self {
        let d = lifeline_bindings::transport::freshness::FreshnessConfig::default();
        Self {
            enabled: d.enabled,
            max_lag_blocks: d.max_lag_blocks,
            max_head_age_ms: d.max_head_age.as_millis() as u64,
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            expected_chain_id: None,
            allow_stale: false,
            consensus_methods: Vec::new(),
            consensus_ask: 3,
            consensus_agree: 2,
        }
    }
}

/// `[registry_choice]`: with several registries, which one's set is in force
/// (`lifeline_bindings::quorum::RegistrySet`): the primary's (the first `[[registry]]`) while its
/// chain is live, else the live registry attested most recently; none live: the last set stays.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryChoice {
    /// A registry chain is live while the block its set was read at is at most this old,
    /// milliseconds (default 30,000; rounded down to whole seconds, block times are seconds).
    pub live_bound_ms: u64,
    /// Live registries whose route contents differ for longer than this are reported (a
    /// warning and `lifeline_gateway_registry_disagreements_total`), milliseconds (default
    /// 30,000).
    pub disagree_after_ms: u64,
}

impl Default for RegistryChoice {
    fn default() -> Self {
        Self { live_bound_ms: 30_000, disagree_after_ms: 30_000 }
    }
}

/// `registry` as a table or a list of tables, keeping serde's messages for either form.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<RegistrySection>, D::Error> {
    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<RegistrySection>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a [registry] table or [[registry]] entries")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let one =
                RegistrySection::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            Ok(vec![one])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
    }
    deserializer.deserialize_any(OneOrMany)
}

/// `[[registry]]`: one registry the route sets come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// JSON-RPC URL of the registry chain.
    pub rpc_url: String,
    /// Address of the RouteRegistry contract.
    pub address: Address,
    /// How often the route set is polled for changes, milliseconds.
    #[serde(default = "default_registry_poll_ms")]
    pub poll_interval_ms: u64,
    /// More RPC URLs of the same registry chain. With any, every route set is read through
    /// `rpc_url` and all of these at one block and counts only when `quorum` of them agree
    /// (`lifeline_bindings::quorum`): one lying RPC cannot redirect the gateway's traffic.
    #[serde(default)]
    pub rpc_urls: Vec<String>,
    /// Agreeing URLs a route set needs (default: a strict majority of all the URLs).
    #[serde(default)]
    pub quorum: Option<usize>,
}

impl RegistrySection {
    /// Every RPC URL of the registry chain: `rpc_url` first.
    pub fn all_rpc_urls(&self) -> Vec<&str> {
        std::iter::once(self.rpc_url.as_str())
            .chain(self.rpc_urls.iter().map(String::as_str))
            .collect()
    }

    /// The agreeing URLs a route set needs.
    pub fn effective_quorum(&self) -> usize {
        self.quorum.unwrap_or(self.all_rpc_urls().len() / 2 + 1)
    }
}

/// `[[service]]`: one service served at `/rpc/<name>` (and `/rpc/<0x id>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The service name as registered (its id is `keccak256(name)`), e.g. `eth-mainnet/rpc`.
    pub name: String,
    /// Routes used until the registry's set arrives (and if none ever does).
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Methods allowed in addition to the default list (exact names, or a prefix ending in
    /// `*`, e.g. `debug_*`).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Methods refused even if the default list allows them (same syntax).
    #[serde(default)]
    pub deny_methods: Vec<String>,
}

impl ServiceSection {
    /// The service id: `keccak256(name)`.
    pub fn id(&self) -> B256 {
        lifeline_bindings::service_id(&self.name)
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (HTTP) or message (WebSocket), bytes; larger bodies get HTTP 413.
    pub max_body_bytes: usize,
    /// Largest upstream response accepted, bytes; a larger one counts as that route failing.
    pub max_response_bytes: usize,
    /// Most calls in one batch.
    pub max_batch: usize,
    /// Most client connections open at once (HTTP and WebSocket); more wait to be accepted.
    pub max_connections: usize,
    /// Most subscriptions on one WebSocket connection.
    pub max_subscriptions_per_connection: usize,
    /// Longest time one call may take, milliseconds.
    pub request_timeout_ms: u64,
    /// Requests per second allowed per client IP (a batch counts each call); 0 = no limit.
    pub rate_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_response_bytes: 32 << 20,
            max_batch: 100,
            max_connections: 1024,
            max_subscriptions_per_connection: 64,
            request_timeout_ms: 10_000,
            rate_per_ip: 0,
        }
    }
}

impl Limits {
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// `[transport]`: the failover transport of lifeline-bindings, per service.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSection {
    /// Longest wait for one route before trying the next, milliseconds.
    pub attempt_timeout_ms: u64,
    /// A read still unanswered after this long is also sent to the next route, milliseconds;
    /// 0 = no hedging.
    pub hedge_after_ms: u64,
}

impl Default for TransportSection {
    fn default() -> Self {
        Self { attempt_timeout_ms: 2_000, hedge_after_ms: 250 }
    }
}

/// `[subscriptions]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionSection {
    /// How often the chain head is polled for subscriptions, milliseconds.
    pub poll_interval_ms: u64,
    /// Most blocks fetched in one catch-up step after a failover or a stall.
    pub max_backfill_blocks: u64,
}

impl Default for SubscriptionSection {
    fn default() -> Self {
        Self { poll_interval_ms: 250, max_backfill_blocks: 256 }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8645))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9645))
}

fn default_status() -> bool {
    true
}

fn default_registry_poll_ms() -> u64 {
    500
}

impl GatewayConfig {
    /// The primary registry (the first `[[registry]]`): the status page and the endpoint table
    /// read it; route sets come from every registry.
    pub fn primary(&self) -> &RegistrySection {
        &self.registries[0]
    }

    /// A gateway on free loopback ports (127.0.0.1:0) following `services` of the registry at
    /// `address` through `rpc_url`, the registry polled every 200 ms, every other field at its
    /// default: what `lifeline devnet` and the tests run.
    pub fn loopback(rpc_url: &str, address: Address, services: &[&str]) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            listen: loopback,
            admin_listen: loopback,
            status: default_status(),
            registries: vec![RegistrySection {
                rpc_url: rpc_url.to_string(),
                address,
                poll_interval_ms: 200,
                rpc_urls: Vec::new(),
                quorum: None,
            }],
            registry_choice: RegistryChoice::default(),
            services: services
                .iter()
                .map(|name| ServiceSection {
                    name: (*name).to_string(),
                    bootstrap: Vec::new(),
                    allow_methods: Vec::new(),
                    deny_methods: Vec::new(),
                })
                .collect(),
            limits: Limits::default(),
            transport: TransportSection::default(),
            subscriptions: SubscriptionSection::default(),
            freshness: FreshnessSection::default(),
            secrets: std::collections::BTreeMap::new(),
        }
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(reason) => Error::Config(format!("{}: {reason}", path.display())),
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses values the gateway cannot work with, naming the field and the value.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, value: &dyn std::fmt::Display, rule: &str| {
            Err(Error::Config(format!("{field} = {value}: {rule}")))
        };
        if self.services.is_empty() {
            return Err(Error::Config("no [[service]]: serve at least one service".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for service in &self.services {
            if service.name.is_empty() {
                return bad("service.name", &"\"\"", "must not be empty");
            }
            if !seen.insert(service.name.as_str()) {
                return bad("service.name", &service.name, "listed twice");
            }
            for url in &service.bootstrap {
                if url.parse::<alloy::transports::http::reqwest::Url>().is_err() {
                    return bad("service.bootstrap", url, "not a URL");
                }
            }
        }
        if self.registries.is_empty() {
            return Err(Error::Config(
                "registry = []: add at least one [[registry]] with rpc_url and address".into(),
            ));
        }
        let several = self.registries.len() > 1;
        for (i, registry) in self.registries.iter().enumerate() {
            let field = |name: &str| {
                if several { format!("registry[{i}].{name}") } else { format!("registry.{name}") }
            };
            if registry.rpc_url.parse::<alloy::transports::http::reqwest::Url>().is_err() {
                return bad(&field("rpc_url"), &registry.rpc_url, "not a URL");
            }
            for url in &registry.rpc_urls {
                if url.parse::<alloy::transports::http::reqwest::Url>().is_err() {
                    return bad(&field("rpc_urls"), url, "not a URL");
                }
            }
            let urls = registry.all_rpc_urls().len();
            if let Some(quorum) = registry.quorum
                && !(1..=urls).contains(&quorum)
            {
                return bad(
                    &field("quorum"),
                    &quorum,
                    &format!("must be 1 to {urls} (the RPC URLs)"),
                );
            }
            if registry.poll_interval_ms < 50 {
                return bad(
                    &field("poll_interval_ms"),
                    &registry.poll_interval_ms,
                    "must be at least 50",
                );
            }
        }
        let choice = &self.registry_choice;
        if choice.live_bound_ms < 1000 {
            return bad(
                "registry_choice.live_bound_ms",
                &choice.live_bound_ms,
                "must be at least 1000 (block times are whole seconds)",
            );
        }
        if choice.disagree_after_ms == 0 {
            return bad("registry_choice.disagree_after_ms", &0, "must be at least 1");
        }
        let l = &self.limits;
        if l.max_body_bytes < 1024 {
            return bad("limits.max_body_bytes", &l.max_body_bytes, "must be at least 1024");
        }
        if l.max_response_bytes < 1024 {
            return bad(
                "limits.max_response_bytes",
                &l.max_response_bytes,
                "must be at least 1024",
            );
        }
        if l.max_batch == 0 {
            return bad("limits.max_batch", &l.max_batch, "must be at least 1");
        }
        if l.max_connections == 0 {
            return bad("limits.max_connections", &l.max_connections, "must be at least 1");
        }
        if l.request_timeout_ms < 10 {
            return bad("limits.request_timeout_ms", &l.request_timeout_ms, "must be at least 10");
        }
        if self.transport.attempt_timeout_ms < 10 {
            return bad(
                "transport.attempt_timeout_ms",
                &self.transport.attempt_timeout_ms,
                "must be at least 10",
            );
        }
        if self.subscriptions.poll_interval_ms < 20 {
            return bad(
                "subscriptions.poll_interval_ms",
                &self.subscriptions.poll_interval_ms,
                "must be at least 20",
            );
        }
        let f = &self.freshness;
        if f.poll_interval_ms < 20 {
            return bad("freshness.poll_interval_ms", &f.poll_interval_ms, "must be at least 20");
        }
        if f.max_head_age_ms < f.poll_interval_ms {
            return bad(
                "freshness.max_head_age_ms",
                &f.max_head_age_ms,
                "must be at least freshness.poll_interval_ms",
            );
        }
        if !f.consensus_methods.is_empty()
            && (f.consensus_agree == 0 || f.consensus_agree > f.consensus_ask)
        {
            return bad(
                "freshness.consensus_agree",
                &f.consensus_agree,
                "must be between 1 and freshness.consensus_ask",
            );
        }
        if self.subscriptions.max_backfill_blocks == 0 {
            return bad(
                "subscriptions.max_backfill_blocks",
                &self.subscriptions.max_backfill_blocks,
                "must be at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [registry]
        rpc_url = "http://127.0.0.1:8545"
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        [[service]]
        name = "eth-devnet/rpc"
    "#;

    #[test]
    fn registries_are_a_list_the_primary_first() {
        let one = GatewayConfig::parse(MINIMAL).expect("[registry] still accepted");
        assert_eq!(one.registries.len(), 1);
        assert_eq!(one.registry_choice.live_bound_ms, 30_000);
        assert_eq!(one.registry_choice.disagree_after_ms, 30_000);
        let two = r#"
            [[registry]]
            rpc_url = "http://127.0.0.1:8545"
            rpc_urls = ["http://127.0.0.1:8546", "http://127.0.0.1:8547"]
            address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            [[registry]]
            rpc_url = "http://127.0.0.1:9545"
            address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            [registry_choice]
            live_bound_ms = 5000
            [[service]]
            name = "eth-devnet/rpc"
        "#;
        let config = GatewayConfig::parse(two).expect("two registries");
        assert_eq!(config.registries.len(), 2);
        assert_eq!(config.primary().rpc_url, "http://127.0.0.1:8545");
        assert_eq!(config.primary().effective_quorum(), 2);
        assert_eq!(config.registry_choice.live_bound_ms, 5000);
        let err = GatewayConfig::parse(&two.replace("http://127.0.0.1:9545", "nope"))
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("registry[1].rpc_url = nope: not a URL"), "{err}");
        let err = GatewayConfig::parse(&two.replace("live_bound_ms = 5000", "live_bound_ms = 10"))
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("registry_choice.live_bound_ms = 10"), "{err}");
    }

    #[test]
    fn minimal_config_takes_safe_defaults() {
        let config = GatewayConfig::parse(MINIMAL).expect("parses");
        assert!(config.listen.ip().is_loopback());
        assert!(config.admin_listen.ip().is_loopback());
        assert_eq!(config.limits.max_batch, 100);
        assert_eq!(config.services[0].id(), lifeline_bindings::service_id("eth-devnet/rpc"));
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = GatewayConfig::parse(&format!("{MINIMAL}\n[limits]\nmax_batch = 0\n"))
            .expect_err("rejected");
        assert!(err.to_string().contains("limits.max_batch = 0"), "{err}");
        let twice = format!("{MINIMAL}\n[[service]]\nname = \"eth-devnet/rpc\"\n");
        let err = GatewayConfig::parse(&twice).expect_err("rejected");
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err =
            GatewayConfig::parse(&format!("{MINIMAL}\nlisten_typo = 1\n")).expect_err("unknown");
        assert!(err.to_string().contains("listen_typo"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../config/gateway.example.toml");
        GatewayConfig::parse(text).expect("config/gateway.example.toml parses and validates");
    }
}
