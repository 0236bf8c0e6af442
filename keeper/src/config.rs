//! `keeper.toml`: what a keeper watches, how it judges, where it writes. Every field has a
//! documented default except the registries and the services; `keeper.example.toml` in the
//! repository is the commented reference. A bad value is rejected with an error naming the
//! field and the value.
//!
//! The registries are a list, `[[registry]]` (the same services attested on every one, each
//! registry with its own chain, RPC URLs, nonces and fees); a single `[registry]` table, the
//! older form, is read as a list of one.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::Address;
use serde::Deserialize;

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and key.
        message: String,
    },
    /// A value is out of range.
    #[error("{field} = {value}: {reason}")]
    Invalid {
        /// Dotted path of the field (`registry[1].rpc_urls` when several registries are
        /// configured).
        field: String,
        /// The value given.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeeperConfig {
    /// The registries attested on, each on its own chain (`[[registry]]`; a single
    /// `[registry]` table is a list of one). The keeper runs one engine per registry.
    #[serde(rename = "registry", deserialize_with = "one_or_many")]
    pub registries: Vec<RegistryConfig>,
    /// Where the signing key comes from.
    #[serde(default)]
    pub signer: SignerConfig,
    /// Probe schedule and limits.
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Verdict rules.
    #[serde(default)]
    pub judge: JudgeConfig,
    /// Submission behaviour.
    #[serde(default)]
    pub submit: SubmitConfig,
    /// Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The services this keeper watches (endpoints are read from the registry).
    #[serde(rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// Secrets endpoint URL templates may name (`[secrets.NAME]`: `env` or `file`, and the
    /// `hosts` it may be sent to); see `lifeline_bindings::secrets`.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, lifeline_bindings::secrets::SecretSource>,
}

/// `[[registry]]`: one registry the keeper attests on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// JSON-RPC URLs of the registry chain; writes and reads fail over between them.
    pub rpc_urls: Vec<String>,
    /// The RouteRegistry address.
    pub address: Address,
    /// The chain the registry is deployed on, and so the chain id attestations are signed for.
    /// Optional: without it, the chain on which most `rpc_urls` hold the registry (a tie stops
    /// the keeper). URLs on another chain are dropped at startup with an error naming them.
    #[serde(default)]
    pub chain_id: Option<u64>,
}

/// `[signer]`: exactly one source. Keys never come from the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// Encrypted JSON keystore file.
    pub keystore: Option<PathBuf>,
    /// File holding the keystore password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the keystore password.
    pub password_env: Option<String>,
    /// Environment variable holding a hex private key (default `LIFELINE_KEEPER_KEY`, used
    /// when no keystore is configured).
    #[serde(default = "default_key_env")]
    pub private_key_env: String,
}

impl Default for SignerConfig {
    fn default() -> Self {
        Self {
            keystore: None,
            password_file: None,
            password_env: None,
            private_key_env: default_key_env(),
        }
    }
}

fn default_key_env() -> String {
    "LIFELINE_KEEPER_KEY".into()
}

/// `[probe]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Time between probe rounds, ms (default 1000).
    pub interval_ms: u64,
    /// Per-probe timeout, ms (default 800).
    pub timeout_ms: u64,
    /// Largest accepted response body, bytes (default 1 MiB).
    pub max_response_bytes: usize,
    /// Probes in flight at once (default 256).
    pub max_concurrency: usize,
    /// Random shift of each round's start, up to half this percentage of the interval early or
    /// late, so keepers do not align while the mean period stays the interval (default 10).
    pub jitter_pct: u8,
    /// Re-read the endpoint list from the registry at least this often, s (default 30).
    pub refresh_secs: u64,
    /// An endpoint whose URL cannot be used (a template naming a secret that is not
    /// configured, or one not allowed for its host): `fail` stops the keeper at startup naming
    /// it (default); `skip` leaves it unprobed with an error line. Found after startup, it is
    /// always skipped with an error line.
    pub unusable_urls: UnusableUrls,
}

/// What to do at startup about an endpoint URL that cannot be used (`probe.unusable_urls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnusableUrls {
    /// Stop with a message naming the endpoint and the reason.
    #[default]
    Fail,
    /// Leave the endpoint unprobed, with an error line.
    Skip,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            timeout_ms: 800,
            max_response_bytes: 1 << 20,
            max_concurrency: 256,
            jitter_pct: 10,
            refresh_secs: 30,
            unusable_urls: UnusableUrls::Fail,
        }
    }
}

impl ProbeConfig {
    /// `interval_ms` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `[judge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Consecutive failed probes before flagging an endpoint (F, default 2); a probe that fails
    /// outright is re-probed at once, so a dead endpoint is flagged within one round.
    pub fail_after: u32,
    /// Consecutive good rounds before clearing it (R, default 2).
    pub recover_after: u32,
    /// Blocks behind the corroborated head before "lagging" (default 3).
    pub max_lag_blocks: u64,
    /// Blocks ahead of the corroborated head before "fabricated future head" (default 3).
    pub max_ahead_blocks: u64,
    /// Seconds since the head block's timestamp before "stalled" (default 30).
    pub max_head_age_secs: u64,
    /// Median latency over the window above which the endpoint is "slow", ms (default 1000).
    pub max_latency_ms: u64,
    /// Rounds in the latency window (default 5).
    pub latency_window: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            fail_after: 2,
            recover_after: 2,
            max_lag_blocks: 3,
            max_ahead_blocks: 3,
            max_head_age_secs: 30,
            max_latency_ms: 1000,
            latency_window: 5,
        }
    }
}

/// `[submit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmitConfig {
    /// Send a liveness-only attestation at least this often, s (default 30).
    pub heartbeat_secs: u64,
    /// Seconds an attestation stays valid (default 60; capped by the service's TTL).
    pub deadline_secs: u64,
    /// Seconds to wait for a receipt before bumping fees (default 12).
    pub receipt_timeout_secs: u64,
    /// Fee increase per bump, percent (default 25).
    pub fee_bump_pct: u64,
    /// Sends per submission (the first, then fee-bumped replacements at the same nonce) before
    /// giving up until the next round (default 4). `receipt_timeout_secs x max_attempts` must be
    /// below `deadline_secs`: every send happens while the attestation is valid.
    pub max_attempts: u32,
    /// Highest fee per gas the keeper ever offers, gwei (default 500).
    pub max_fee_gwei: u64,
    /// Highest priority fee (tip) per gas the keeper ever offers, gwei (default 50).
    pub max_priority_fee_gwei: u64,
    /// Which account sends each service's attestations (default `per-service`).
    pub senders: Senders,
    /// With `per-service` senders: a sender holding less than this, in ether, is topped up from
    /// the signing key's account before it sends (default "0.05").
    pub sender_min_balance: String,
    /// With `per-service` senders: how much each top-up sends, in ether (default "0.25").
    pub sender_topup: String,
}

/// Which account pays for each service's attestations (`submit.senders`). The signing key is
/// always the keeper's one key; attestations are relayable, so any account can send them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Senders {
    /// Each service from an account of its own, derived from the signing key and topped up from
    /// its account (`lifeline_keeper::submit::service_sender`): a transaction stuck for one
    /// service never holds back another's.
    #[default]
    PerService,
    /// Everything from the signing key's account, one transaction at a time: a stuck
    /// transaction holds back every service until it lands or is replaced.
    Signer,
}

impl Default for SubmitConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: 30,
            deadline_secs: 60,
            receipt_timeout_secs: 12,
            fee_bump_pct: 25,
            max_attempts: 4,
            max_fee_gwei: 500,
            max_priority_fee_gwei: 50,
            senders: Senders::PerService,
            sender_min_balance: "0.05".into(),
            sender_topup: "0.25".into(),
        }
    }
}

impl SubmitConfig {
    /// `sender_min_balance` in wei (validated at load).
    pub fn sender_min_balance_wei(&self) -> alloy::primitives::U256 {
        parse_ether(&self.sender_min_balance).unwrap_or_default()
    }

    /// `sender_topup` in wei (validated at load).
    pub fn sender_topup_wei(&self) -> alloy::primitives::U256 {
        parse_ether(&self.sender_topup).unwrap_or_default()
    }
}

fn parse_ether(text: &str) -> Option<alloy::primitives::U256> {
    alloy::primitives::utils::parse_ether(text.trim()).ok()
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `/metrics` listens; empty disables it (default 127.0.0.1:9464).
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))) }
    }
}

/// How endpoints of a service are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// JSON-RPC node: chain id, head number/hash/timestamp, latency, optional state proof.
    Jsonrpc,
    /// HTTP health URL: status and latency.
    Http,
    /// TCP connect time.
    Tcp,
}

/// `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's name, as registered (its id is keccak256 of it).
    pub name: String,
    /// Probe kind (default jsonrpc).
    #[serde(default = "default_kind")]
    pub probe: ProbeKind,
    /// For `http` probes: path appended to the endpoint URL (default "/health").
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// For `jsonrpc` probes: verify `eth_getProof` of this account against the majority's
    /// state root at the corroborated block.
    pub proof_account: Option<Address>,
}

/// `registry` as a table (the older `[registry]`, a list of one) or an array of tables
/// (`[[registry]]`), keeping serde's messages (unknown field, bad type) for either form.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<RegistryConfig>, D::Error> {
    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<RegistryConfig>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a [registry] table or [[registry]] entries")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let one =
                RegistryConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            Ok(vec![one])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
    }
    deserializer.deserialize_any(OneOrMany)
}

/// A validation error naming the field and the value.
fn invalid<T>(
    field: impl Into<String>,
    value: &dyn std::fmt::Display,
    reason: &'static str,
) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { field: field.into(), value: value.to_string(), reason })
}

fn default_kind() -> ProbeKind {
    ProbeKind::Jsonrpc
}

fn default_health_path() -> String {
    "/health".into()
}

impl KeeperConfig {
    /// Reads and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => {
                ConfigError::Parse { path: path.to_path_buf(), message }
            }
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.registries.is_empty() {
            return invalid(
                "registry",
                &"[]",
                "add at least one [[registry]] with rpc_urls and address",
            );
        }
        let several = self.registries.len() > 1;
        for (i, r) in self.registries.iter().enumerate() {
            // One registry keeps the plain names of the older `[registry]` form.
            let field = |name: &str| {
                if several { format!("registry[{i}].{name}") } else { format!("registry.{name}") }
            };
            if r.rpc_urls.is_empty() {
                return invalid(field("rpc_urls"), &"[]", "give at least one JSON-RPC URL");
            }
            for url in &r.rpc_urls {
                if url.parse::<alloy::transports::http::reqwest::Url>().is_err() {
                    return invalid(field("rpc_urls"), url, "not a URL");
                }
            }
            if r.chain_id == Some(0) {
                return invalid(
                    field("chain_id"),
                    &0,
                    "must be a chain id (omit it to use the majority of rpc_urls)",
                );
            }
            let same = |o: &RegistryConfig| {
                o.address == r.address
                    && (o.chain_id.is_some() && o.chain_id == r.chain_id
                        || o.rpc_urls.iter().any(|u| r.rpc_urls.contains(u)))
            };
            if let Some(j) = self.registries[..i].iter().position(same) {
                return invalid(
                    field("address"),
                    &r.address,
                    if j == 0 {
                        "the same registry (address and chain or RPC URL) as registry[0]; each registry once"
                    } else {
                        "the same registry (address and chain or RPC URL) as an earlier [[registry]]; each registry once"
                    },
                );
            }
        }
        if self.services.is_empty() {
            return invalid("service", &"(none)", "add at least one [[service]] with a name");
        }
        if let Some(s) = self.services.iter().find(|s| s.name.is_empty()) {
            return invalid("service.name", &format!("{:?}", s.name), "must not be empty");
        }
        for (i, s) in self.services.iter().enumerate() {
            if self.services[..i].iter().any(|other| other.name == s.name) {
                return invalid(
                    "service.name",
                    &format!("{:?}", s.name),
                    "appears in two [[service]] sections; each service once",
                );
            }
        }
        if let (Some(_), Some(_)) = (&self.signer.password_file, &self.signer.password_env) {
            return invalid(
                "signer.password_env",
                &format!("{:?}", self.signer.password_env.as_deref().unwrap_or_default()),
                "set either password_file or password_env, not both",
            );
        }
        let p = &self.probe;
        if p.interval_ms < 50 {
            return invalid("probe.interval_ms", &p.interval_ms, "must be at least 50");
        }
        if p.timeout_ms == 0 || p.timeout_ms > p.interval_ms * 10 {
            return invalid(
                "probe.timeout_ms",
                &p.timeout_ms,
                "must be > 0 and at most 10 x interval_ms",
            );
        }
        if p.max_concurrency == 0 {
            return invalid("probe.max_concurrency", &0, "must be at least 1");
        }
        if p.max_response_bytes < 1024 {
            return invalid(
                "probe.max_response_bytes",
                &p.max_response_bytes,
                "must be at least 1024",
            );
        }
        if p.jitter_pct > 100 {
            return invalid("probe.jitter_pct", &p.jitter_pct, "must be 0..=100");
        }
        let j = &self.judge;
        if j.fail_after == 0 {
            return invalid("judge.fail_after", &0, "must be at least 1");
        }
        if j.recover_after == 0 {
            return invalid("judge.recover_after", &0, "must be at least 1");
        }
        if j.latency_window == 0 {
            return invalid("judge.latency_window", &0, "must be at least 1");
        }
        let s = &self.submit;
        if s.heartbeat_secs == 0 {
            return invalid("submit.heartbeat_secs", &0, "must be at least 1");
        }
        if s.deadline_secs == 0 {
            return invalid("submit.deadline_secs", &0, "must be at least 1");
        }
        if s.max_attempts == 0 {
            return invalid("submit.max_attempts", &0, "must be at least 1");
        }
        if s.receipt_timeout_secs == 0 {
            return invalid("submit.receipt_timeout_secs", &0, "must be at least 1");
        }
        if s.receipt_timeout_secs.saturating_mul(u64::from(s.max_attempts)) >= s.deadline_secs {
            return invalid(
                "submit.receipt_timeout_secs",
                &s.receipt_timeout_secs,
                "x submit.max_attempts must be below submit.deadline_secs (every send must happen while the attestation is valid)",
            );
        }
        if s.fee_bump_pct < 10 {
            return invalid(
                "submit.fee_bump_pct",
                &s.fee_bump_pct,
                "must be at least 10 (nodes refuse replacements that pay less than 10% more)",
            );
        }
        if s.max_fee_gwei == 0 {
            return invalid("submit.max_fee_gwei", &0, "must be at least 1");
        }
        if s.max_priority_fee_gwei > s.max_fee_gwei {
            return invalid(
                "submit.max_priority_fee_gwei",
                &s.max_priority_fee_gwei,
                "must not exceed submit.max_fee_gwei",
            );
        }
        let min = parse_ether(&s.sender_min_balance);
        if min.is_none_or(|m| m.is_zero()) {
            return invalid(
                "submit.sender_min_balance",
                &format!("{:?}", s.sender_min_balance),
                "must be an amount of ether above 0, e.g. \"0.05\"",
            );
        }
        if parse_ether(&s.sender_topup).is_none_or(|t| Some(t) <= min) {
            return invalid(
                "submit.sender_topup",
                &format!("{:?}", s.sender_topup),
                "must be an amount of ether above submit.sender_min_balance, e.g. \"0.25\"",
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
        rpc_urls = ["http://127.0.0.1:8545"]
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

        [[service]]
        name = "eth-devnet/rpc"
    "#;

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let c = KeeperConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.probe.interval_ms, 1000);
        assert_eq!(c.judge.fail_after, 2);
        assert_eq!(c.services[0].probe, ProbeKind::Jsonrpc);
        assert_eq!(c.signer.private_key_env, "LIFELINE_KEEPER_KEY");
    }

    #[test]
    fn the_example_file_in_the_repository_is_valid() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keeper.example.toml");
        KeeperConfig::load(&path).expect("config/keeper.example.toml parses");
    }

    #[test]
    fn out_of_range_value_names_field_and_value() {
        let text = format!("{MINIMAL}\n[probe]\ninterval_ms = 10\n");
        let err = KeeperConfig::parse(&text).expect_err("rejected").to_string();
        assert_eq!(err, "probe.interval_ms = 10: must be at least 50");
    }

    #[test]
    fn duplicate_services_and_two_password_sources_are_refused() {
        let text = format!("{MINIMAL}\n[[service]]\nname = \"eth-devnet/rpc\"\n");
        let err = KeeperConfig::parse(&text).expect_err("rejected").to_string();
        assert_eq!(
            err,
            "service.name = \"eth-devnet/rpc\": appears in two [[service]] sections; each service once"
        );
        let text = format!(
            "{MINIMAL}\n[signer]\nkeystore = \"k.json\"\npassword_file = \"p\"\npassword_env = \"P\"\n"
        );
        let err = KeeperConfig::parse(&text).expect_err("rejected").to_string();
        assert!(err.contains("either password_file or password_env, not both"), "{err}");
    }

    #[test]
    fn every_send_must_fit_in_the_attestation_deadline() {
        let text = format!(
            "{MINIMAL}\n[submit]\nreceipt_timeout_secs = 15\nmax_attempts = 4\ndeadline_secs = 60\n"
        );
        let err = KeeperConfig::parse(&text).expect_err("rejected").to_string();
        assert!(
            err.starts_with("submit.receipt_timeout_secs = 15: x submit.max_attempts"),
            "{err}"
        );
        let ok = format!(
            "{MINIMAL}\n[submit]\nreceipt_timeout_secs = 14\nmax_attempts = 4\ndeadline_secs = 60\n"
        );
        KeeperConfig::parse(&ok).expect("56 < 60");
        let c = KeeperConfig::parse(MINIMAL).expect("valid");
        assert_eq!((c.submit.max_fee_gwei, c.submit.max_priority_fee_gwei), (500, 50));
        assert_eq!(c.registries[0].chain_id, None);
    }

    const TWO: &str = r#"
        [[registry]]
        rpc_urls = ["http://127.0.0.1:8545"]
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

        [[registry]]
        rpc_urls = ["http://127.0.0.1:9545", "http://127.0.0.1:9546"]
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        chain_id = 31338

        [[service]]
        name = "eth-devnet/rpc"
    "#;

    #[test]
    fn registries_are_a_list_and_the_older_table_is_a_list_of_one() {
        let one = KeeperConfig::parse(MINIMAL).expect("[registry] still accepted");
        assert_eq!(one.registries.len(), 1);
        assert_eq!(one.registries[0].rpc_urls, ["http://127.0.0.1:8545"]);
        let two = KeeperConfig::parse(TWO).expect("[[registry]]");
        assert_eq!(two.registries.len(), 2);
        assert_eq!(two.registries[1].chain_id, Some(31338));
        assert_eq!(two.registries[1].rpc_urls.len(), 2);
        let single_list =
            TWO.split("[[registry]]").take(2).collect::<Vec<_>>().join("[[registry]]");
        let single_list = format!("{single_list}\n[[service]]\nname = \"x\"\n");
        assert_eq!(
            KeeperConfig::parse(&single_list).expect("one [[registry]]").registries.len(),
            1
        );
    }

    #[test]
    fn each_registry_is_validated_by_its_index() {
        KeeperConfig::parse(&TWO.replace("\"http://127.0.0.1:9545\", ", ""))
            .expect("one URL is fine");
        let err = KeeperConfig::parse(&TWO.replace("chain_id = 31338", "chain_id = 0"))
            .expect_err("rejected")
            .to_string();
        assert_eq!(
            err,
            "registry[1].chain_id = 0: must be a chain id (omit it to use the majority of rpc_urls)"
        );
        let err = KeeperConfig::parse(
            &TWO.replace("\"http://127.0.0.1:9546\"", "\"http://127.0.0.1:8545\""),
        )
        .expect_err("the same registry twice")
        .to_string();
        assert!(err.starts_with("registry[1].address = 0x5FbDB2315678afecb367f032d93F642f64180aa3: the same registry"), "{err}");
        let err = KeeperConfig::parse(
            &TWO.replace("rpc_urls = [\"http://127.0.0.1:8545\"]", "rpc_urls = []"),
        )
        .expect_err("rejected")
        .to_string();
        assert_eq!(err, "registry[0].rpc_urls = []: give at least one JSON-RPC URL");
        let err = KeeperConfig::parse(
            &MINIMAL.replace("rpc_urls = [\"http://127.0.0.1:8545\"]", "rpc_urls = []"),
        )
        .expect_err("rejected")
        .to_string();
        assert_eq!(err, "registry.rpc_urls = []: give at least one JSON-RPC URL");
        let err = KeeperConfig::parse(&TWO.replace("chain_id = 31338", "chain_idd = 1"))
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("chain_idd"), "{err}");
    }

    #[test]
    fn sender_amounts_are_ether_and_the_topup_exceeds_the_floor() {
        let c = KeeperConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.submit.senders, Senders::PerService, "one sender per service by default");
        assert_eq!(c.submit.sender_min_balance_wei(), alloy::primitives::U256::from(5e16 as u64));
        for (extra, expected) in [
            ("sender_min_balance = \"lots\"", "submit.sender_min_balance = \"lots\": must be"),
            ("sender_min_balance = \"0\"", "submit.sender_min_balance = \"0\": must be"),
            (
                "sender_topup = \"0.01\"",
                "submit.sender_topup = \"0.01\": must be an amount of ether above submit.sender_min_balance",
            ),
            ("senders = \"everyone\"", "unknown variant `everyone`"),
        ] {
            let err = KeeperConfig::parse(&format!("{MINIMAL}\n[submit]\n{extra}\n"))
                .expect_err(extra)
                .to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
        let c = KeeperConfig::parse(&format!("{MINIMAL}\n[submit]\nsenders = \"signer\"\n"))
            .expect("valid");
        assert_eq!(c.submit.senders, Senders::Signer);
    }

    #[test]
    fn unknown_key_and_bad_type_name_the_key() {
        let err = KeeperConfig::parse(&format!("{MINIMAL}\n[judge]\nfail_afterr = 3\n"))
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("fail_afterr"), "{err}");
        let err = KeeperConfig::parse(&MINIMAL.replace("0x5FbDB", "0xZZ"))
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("address"), "{err}");
    }
}
