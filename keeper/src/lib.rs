//! # lifeline-keeper
//!
//! The keeper agent (run by `lifeline keeper`, in the `lifeline` crate). A keeper is a pipeline; keepers never talk to
//! each other, the registry is their only shared state.
//!
//! ```text
//!             +--------------------- engine (one round per probe interval per service) -------+
//!  registry --+-> refresh: endpoints, epoch, my votes                                           |
//!             |      |                                                                          |
//!  endpoints <+-- collect (probe, collect): head / block / proof, bounded, timed, size-capped    |
//!             |      |                                                                          |
//!             |   judge (judge, proof): corroborated head, divergence, state proof, hysteresis  |
//!             |      |                                                                          |
//!             |   attest (decide): votes that differ from mine on chain, or a heartbeat         |
//!             |      |                                                                          |
//!  registry <-+-- submit (submit): EIP-712 sign, simulate, send, bump fees, failover RPC        |
//!             +---------------------------------------------------------------------------------+
//! ```
//!
//! Operating: [`config`] (TOML, every default documented), [`signer`] (keystore or environment,
//! never the command line), [`metrics`] (Prometheus).

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
