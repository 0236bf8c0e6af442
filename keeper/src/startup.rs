//! What stops a keeper at startup: permanent misconfiguration, said once and clearly (the field
//! or the URL, the value, what to do), instead of a warning every round forever.

use alloy::primitives::Address;

/// Why the keeper cannot start. Each message is one line and names every cause once.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No registry RPC URL answered `eth_chainId`.
    #[error("no registry RPC URL answered eth_chainId: {0}")]
    NoRegistryRpc(String),
    /// The registry RPC URLs do not agree on one chain holding the registry.
    #[error("{0}")]
    ChainDisagreement(String),
    /// The registry address holds no contract on the registry's chain.
    #[error(
        "no contract at registry.address {address} on chain {chain_id} (asked {urls}): check registry.address and registry.rpc_urls"
    )]
    NoContract {
        /// `registry.address`.
        address: Address,
        /// The registry's chain.
        chain_id: u64,
        /// The URLs asked.
        urls: String,
    },
    /// A configured service is not registered.
    #[error(
        "service \"{name}\" is not registered in the registry at {address} (chain {chain_id}): check [[service]] name"
    )]
    UnknownService {
        /// The name as configured.
        name: String,
        /// `registry.address`.
        address: Address,
        /// The registry's chain.
        chain_id: u64,
    },
    /// A `[secrets]` entry cannot be loaded.
    #[error(transparent)]
    Secrets(#[from] lifeline_bindings::secrets::SecretError),
    /// A registered endpoint URL cannot be used (`probe.unusable_urls = "fail"`).
    #[error(
        "service \"{service}\" endpoint #{endpoint}: {reason} (configure the secret, or set probe.unusable_urls = \"skip\")"
    )]
    UnusableUrl {
        /// The service.
        service: String,
        /// The endpoint index.
        endpoint: u16,
        /// Why (names the template, never a value).
        reason: String,
    },
    /// A registry read failed at startup.
    #[error("reading the registry at {address}: {reason}")]
    Registry {
        /// `registry.address`.
        address: Address,
        /// Why.
        reason: String,
    },
    /// One of several `[[registry]]` entries cannot be used (said with its index).
    #[error("registry[{index}] ({address}): {source}")]
    InRegistry {
        /// Its index in `[[registry]]`.
        index: usize,
        /// Its address.
        address: Address,
        /// Why.
        source: Box<StartupError>,
    },
}

impl StartupError {
    /// True when the cause may pass by itself (no registry RPC answered, a read failed), as
    /// opposed to a misconfiguration no retry fixes.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::NoRegistryRpc(_) | Self::Registry { .. } => true,
            Self::InRegistry { source, .. } => source.is_unreachable(),
            _ => false,
        }
    }
}
