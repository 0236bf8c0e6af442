//! Integration tests of the `lifeline` command: keeper processes end to end against a real
//! registry on anvil (pipeline, scenarios, chaos), the CLI's bad-input handling, and the
//! gateway with real clients (cast, viem, ethers, a WebSocket subscriber) across an outage.

mod chaos;
mod cli;
mod devnet_signals;
mod gateway;
mod keeper_startup;
mod pipeline;
mod registry_halt;
mod scenarios;
mod secrets;
mod world;
