//! End-to-end tests: one binary, one module per area.

mod registry_flow;
mod scripts;
