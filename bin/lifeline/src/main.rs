//! `lifeline`: the Lifeline command. Thin: argument parsing and logging setup live here; each
//! subcommand (one file under `cmd/`) dispatches to a library: `lifeline-keeper`,
//! `lifeline-gateway`, `lifeline-bindings`, and (for `lifeline devnet` only) the devnet harness.

mod cli;
mod cmd;

use clap::Parser;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.log_format);
    cli.command.run().await
}
