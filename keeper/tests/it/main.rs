//! Integration tests of the keeper library: probe classification against endpoints the test
//! controls, submission against a real registry on anvil, and keepers run in process against a
//! devnet (wrong chains, a registry RPC that goes down or lags, startup checks). (Tests that run the `lifeline` binary live with it, in
//! bin/lifeline/tests.)

mod chain;
mod confirm;
mod fixture;
mod probes;
mod registries;
mod registry_down;
mod registry_rpc;
mod revision;
mod rpc_proxy;
mod startup;
mod submit;
