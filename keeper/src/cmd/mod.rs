//! One module per subcommand, each an `XxxArgs` with `async fn run(self)`.

pub mod devnet;
pub mod keeper;
pub mod routes;
