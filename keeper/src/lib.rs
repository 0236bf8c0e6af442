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
