//! # lifeline-devnet
//!
//! The local devnet harness behind `lifeline devnet` (what `make demo` runs) and the end-to-end
//! tests: a real anvil chain on 127.0.0.1 and the registry deployed and configured by the
//! project's own Foundry scripts (`script/Deploy.s.sol`, `script/Configure.s.sol`).
//!
//! ```text
//!  Toolchain (node_modules: anvil, forge, cast)
//!     |
//!     v
//!  Devnet::start --spawn--> anvil (127.0.0.1, free port, killed on drop)
//!     |--forge script Deploy.s.sol--> RouteRegistry      (keys passed by environment only)
//!     '--forge script Configure.s.sol (config JSON)--> keepers, services, endpoints
//!
//!  Devnet::spawn_keeper --spawn--> `lifeline keeper` (own key and metrics port, log file)
//!
//!  Every child (anvil, keepers, forge) is a `tokio::process` child killed on drop and, on
//!  Linux, by the kernel when this process dies however it dies (PR_SET_PDEATHSIG): no orphans.
//!
//!  FaultProxy (127.0.0.1, one per endpoint) --forward--> anvil
//!     |  HTTP JSON-RPC and WebSocket pass-through (ws://, same port; frames piped both ways)
//!     |  faults on command: down, hang, slow, HTTP 5xx/429, intermittent 5xx/429 (flaky),
//!     |  JSON-RPC error, garbage, oversized, wrong chain id, lag, future head, stalled head,
//!     |  divergent hash, bad state proof, censoring (eth_sendRawTransaction swallowed);
//!     |  lag and stalled head answer every `latest` call at the lagging block (HTTP and WS)
//!     '--wrong chain / forked: everything to another node, started by forks.rs:
//!          forks::other_chain --spawn--> anvil --chain-id N      (127.0.0.1, killed on drop)
//!          forks::fork_of     --spawn--> anvil --fork-url <chain's URL>
//!
//!  LogEmitter --deploy (hand-assembled bytecode)--> Tick contract
//!     '--one call every period--> LOG1 Tick(uint256) per call (aborted on drop)
//! ```

pub mod block_probe;
pub mod emitter;
pub mod forks;
pub mod load;
pub mod observe;
pub mod proxy;
pub mod synthetic;
pub mod toolchain;

mod chain;

pub use chain::{
    DEVNET_SECRET, DEVNET_SERVICE, Devnet, DevnetOptions, KeeperOptions, KeeperProcess,
    die_with_parent, free_port,
};
pub use emitter::{LogEmitter, TICK_TOPIC};
pub use load::RequestStream;
pub use observe::{wait_for_routes, write_report};
pub use proxy::{CountingListener, Fault, FaultProxy};
pub use synthetic::SyntheticEndpoints;
pub use toolchain::Toolchain;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong bringing a devnet up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool installed by `npm ci` is missing.
    #[error("{tool} not found at {path}: run `make demo` or `npm ci` in the repository root first")]
    ToolMissing {
        /// The tool's name.
        tool: &'static str,
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
    /// anvil did not start.
    #[error("starting anvil")]
    Anvil(#[from] alloy::node_bindings::NodeError),
    /// A Foundry script failed; `output` is the end of what it printed.
    #[error("`forge script {script}` failed ({status}):\n{output}")]
    Script {
        /// The script path.
        script: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stdout and stderr.
        output: String,
    },
    /// A file could not be read or written, or a process started.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A call to the devnet chain failed.
    #[error("devnet chain: {0}")]
    Chain(String),
    /// The deployment record is not what the deploy script writes.
    #[error("deployment record {path}: {reason}")]
    Deployment {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
