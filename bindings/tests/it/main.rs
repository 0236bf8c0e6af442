//! Integration tests of lifeline-bindings against a real anvil running the real registry.

mod digest;
mod freshness;
mod quorum;
mod support;
mod transport;
mod watch;
