//! # lifeline-keeper
//!
//! The keeper agent (run by `lifeline keeper`, in the `lifeline` crate). A keeper is a pipeline; keepers never talk to
//! each other, the registry is their only shared state.
//!
//! ```text
//!             +--------------------- engine (one round per probe interval per service) -------+
//!  registry --+-> refresh (one block): endpoints, epoch, my votes (down: only attest waits)     |
//!             |      |                                                                          |
//!  endpoints <+-- collect (probe, collect): head / block / proof, bounded, timed, size-capped    |
//!             |      |                                                                          |
//!             |   judge (judge, proof): chain id, corroborated head, divergence, hysteresis     |
//!             |      |                                                                          |
//!             |   attest (decide): votes that differ from mine on chain, or a heartbeat         |
//!             |      |                                                                          |
//!  registry <-+-- submit (submit): sign, simulate, send, watch every hash, capped fee bumps     |
//!             +---------------------------------------------------------------------------------+
//! ```
//!
//! One engine per `[[registry]]` ([`engine::Engines`]): each registry its own chain pin,
//! submitter (nonces, fees) and task, so a stuck registry never delays another.
//! The registry chain: [`rpc`] (every `registry.rpc_urls` entry pinned to the registry's chain,
//! failover, transactions to every URL). Operating: [`config`] (TOML, every default documented),
//! [`startup`] (what stops the keeper at startup, said once), [`signer`] (keystore or
//! environment, never the command line), [`metrics`] (Prometheus, `prometheus-client`).

pub mod collect;
pub mod config;
pub mod decide;
pub mod engine;
pub mod judge;
pub mod metrics;
pub mod probe;
pub mod proof;
pub mod rpc;
pub mod signer;
pub mod startup;
pub mod submit;
