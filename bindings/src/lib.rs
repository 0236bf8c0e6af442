//! # lifeline-bindings
//!
//! What apps and keepers depend on to use a Lifeline [`RouteRegistry`](registry::RouteRegistry):
//!
//! - [`registry`]: typed bindings generated from the compiled contract (calls, events, custom
//!   errors, deploy bytecode), read from the committed artifact so that a downstream build needs
//!   neither node nor solc. Regenerate with `make bindings`; `make test` fails when they drift.
//! - [`attestation`]: the EIP-712 attestation a keeper signs: domain, digest and signing. The
//!   one Rust definition of the report type, proven equal to the contract's digest by a test.
//! - [`client`]: [`RegistryClient`](client::RegistryClient) reads a service's authorised
//!   [`RouteSet`](client::RouteSet) and each endpoint's state.
//! - [`watch`]: [`RouteSetWatcher`](watch::RouteSetWatcher) follows a service's set (events,
//!   polling fallback, reads pinned to a block, reorg-safe: sets identified by epoch and content).
//! - [`transport`]: [`FailoverTransport`](transport::FailoverTransport), an alloy transport that
//!   sends each request to the best authorised route and fails over within the call.
//! - [`error`]: errors, with registry reverts decoded into readable custom errors.
//!
//! ```text
//!  keepers --sign Attestation--> RouteRegistry --authorisedRoutes / RouteSetChanged--> apps
//!          (attestation.rs)      (registry.rs)         (client.rs)
//! ```

pub mod attestation;
pub mod client;
pub mod error;
pub mod quorum;
pub mod registry;
pub mod secrets;
pub mod transport;
pub mod watch;

pub use attestation::{Attestation, Verdict};
pub use client::{EndpointState, RegistryClient, Route, RouteSet};
pub use error::{Error, Result};
pub use registry::RouteRegistry;
pub use transport::{FailoverConfig, FailoverTransport};
pub use watch::{RouteSetWatcher, WatchConfig};

/// A service id from its name: `keccak256(name)`, as the configure script derives it.
pub fn service_id(name: &str) -> alloy::primitives::B256 {
    alloy::primitives::keccak256(name.as_bytes())
}
