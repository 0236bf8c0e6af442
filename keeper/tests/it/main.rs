//! Integration tests of the keeper: probe classification against endpoints the test controls,
//! and the whole pipeline (keeper processes, real registry, anvil).

mod chaos;
mod cli;
mod pipeline;
mod probes;
mod scenarios;
mod submit;
mod world;
