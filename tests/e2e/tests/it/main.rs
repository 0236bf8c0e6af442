//! End-to-end tests: one binary, one module per area.

mod client;
mod hardfork;
mod registry_flow;
mod scripts;
