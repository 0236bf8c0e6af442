//! Command-line surface: the subcommands and the option groups they share.

use alloy::primitives::{Address, B256};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd::{
    devnet::DevnetArgs, gateway::GatewayArgs, keeper::KeeperArgs, routes::RoutesArgs,
};

/// Lifeline: autonomous, verifiable failover for DeFi infrastructure.
#[derive(Debug, Parser)]
#[command(name = "lifeline", version, about)]
pub(crate) struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "LIFELINE_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the keeper agent: probe, judge, attest (config: --config keeper.toml).
    Keeper(KeeperArgs),
    /// Serve JSON-RPC (HTTP + WebSocket) through the authorised routes (config: --config gateway.toml).
    Gateway(GatewayArgs),
    /// Print a service's authorised route set and every endpoint's state.
    Routes(RoutesArgs),
    /// Start a local devnet (anvil + registry deployed by the Foundry scripts).
    Devnet(DevnetArgs),
}

impl Command {
    /// Runs the subcommand.
    pub(crate) async fn run(self) -> eyre::Result<()> {
        match self {
            Self::Keeper(args) => args.run().await,
            Self::Gateway(args) => args.run().await,
            Self::Routes(args) => args.run().await,
            Self::Devnet(args) => args.run().await,
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` on stderr; `RUST_LOG` overrides the default `info` level.
pub(crate) fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Where the registry lives.
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryOpts {
    /// JSON-RPC URL of the registry chain.
    #[arg(long, env = "LIFELINE_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub(crate) rpc_url: String,
    /// Address of the RouteRegistry contract.
    #[arg(long, env = "LIFELINE_REGISTRY")]
    pub(crate) registry: Address,
}

/// A service, by name (`eth-mainnet/rpc`) or by 32-byte id (`0x...`).
#[derive(Debug, Clone)]
pub(crate) struct ServiceRef {
    /// What the user typed, for messages.
    pub(crate) label: String,
    /// The service id.
    pub(crate) id: B256,
}

impl std::str::FromStr for ServiceRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("service: empty (give a name such as eth-mainnet/rpc, or a 0x id)".into());
        }
        let id = if s.starts_with("0x") && s.len() == 66 {
            s.parse::<B256>().map_err(|e| format!("service `{s}`: not a 32-byte hex id: {e}"))?
        } else {
            lifeline_bindings::service_id(s)
        };
        Ok(Self { label: s.to_string(), id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_by_name_hashes_the_name() {
        let s: ServiceRef = "eth-devnet/rpc".parse().expect("parses");
        assert_eq!(s.id, lifeline_bindings::service_id("eth-devnet/rpc"));
    }

    #[test]
    fn service_by_id_is_taken_as_is() {
        let hex = format!("0x{}", "ab".repeat(32));
        let s: ServiceRef = hex.parse().expect("parses");
        assert_eq!(s.id, B256::repeat_byte(0xab));
    }

    #[test]
    fn bad_service_names_the_value() {
        let err = format!("0x{}", "zz".repeat(32)).parse::<ServiceRef>().expect_err("rejects");
        assert!(err.contains("not a 32-byte hex id"), "{err}");
        assert!("".parse::<ServiceRef>().expect_err("rejects").contains("empty"));
    }
}
