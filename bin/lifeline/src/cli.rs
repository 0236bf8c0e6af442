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
    /// The log filter when `RUST_LOG` is not set: `lifeline devnet` prints its own timeline on
    /// stdout, so only warnings and errors from the libraries go to stderr.
    pub(crate) fn default_log_filter(&self) -> &'static str {
        match self {
            Self::Devnet(_) => "warn",
            _ => "info",
        }
    }

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

/// Sets up `tracing` on stderr; `RUST_LOG` overrides `default_filter`. Colours only when
/// stderr is a terminal (never escape codes in a log file or a pipe).
pub(crate) fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
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

/// A service, by name (`eth-mainnet/rpc`) or by 32-byte id (`0x` and 64 hex digits). Anything
/// else that looks like hex (`0x1234`) is refused rather than hashed as a name.
#[derive(Debug, Clone)]
pub(crate) struct ServiceRef {
    /// What the user typed, for messages.
    pub(crate) label: String,
    /// The service id.
    pub(crate) id: B256,
    /// Given as an id, not a name.
    by_id: bool,
}

impl std::str::FromStr for ServiceRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("service: empty (give a name such as eth-mainnet/rpc, or a 0x id)".into());
        }
        let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
        let (id, by_id) = match hex {
            Some(_) if s.len() == 66 => (
                s.parse::<B256>()
                    .map_err(|e| format!("service `{s}`: not a 32-byte hex id: {e}"))?,
                true,
            ),
            Some(digits) if digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
                return Err(format!(
                    "service `{s}`: a service id is 32 bytes (0x and 64 hex digits), this has {} \
                     digits; give the whole id (`cast keccak \"<name>\"`) or the service's name",
                    digits.len()
                ));
            }
            _ => (lifeline_bindings::service_id(s), false),
        };
        Ok(Self { label: s.to_string(), id, by_id })
    }
}

impl ServiceRef {
    /// The name the user typed, unless they gave an id.
    pub(crate) fn name(&self) -> Option<&str> {
        (!self.by_id).then_some(&self.label)
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
        assert_eq!(s.name(), None);
    }

    #[test]
    fn a_short_hex_id_is_refused_not_hashed() {
        for short in ["0x1234", "0x", "0xabcdef"] {
            let err = short.parse::<ServiceRef>().expect_err("rejects");
            assert!(err.contains("32 bytes (0x and 64 hex digits)"), "{err}");
            assert!(err.contains(&format!("`{short}`")), "{err}");
        }
        // A name that merely starts with 0x is still a name.
        let s: ServiceRef = "0xchain/rpc".parse().expect("a name");
        assert_eq!(s.id, lifeline_bindings::service_id("0xchain/rpc"));
        assert_eq!(s.name(), Some("0xchain/rpc"));
    }

    #[test]
    fn bad_service_names_the_value() {
        let err = format!("0x{}", "zz".repeat(32)).parse::<ServiceRef>().expect_err("rejects");
        assert!(err.contains("not a 32-byte hex id"), "{err}");
        assert!("".parse::<ServiceRef>().expect_err("rejects").contains("empty"));
    }
}
