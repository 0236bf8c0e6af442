//! # lifeline-keeper
//!
//! The `lifeline` command and the keeper agent.
//!
//! ```text
//!  lifeline routes  --> RegistryClient (lifeline-bindings) --> RouteRegistry.authorisedRoutes
//!  lifeline devnet  --> lifeline-devnet: anvil + Deploy.s.sol + Configure.s.sol
//! ```
//!
//! Subcommands live one per file under [`cmd`]; [`cli`] holds the shared option groups.

pub mod cli;
pub mod cmd;
pub mod collect;
pub mod config;
pub mod decide;
pub mod engine;
pub mod judge;
pub mod metrics;
pub mod probe;
pub mod proof;
pub mod signer;
pub mod submit;
