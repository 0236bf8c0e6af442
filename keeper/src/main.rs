//! `lifeline`: the Lifeline command. Thin: parsing and logging setup live here, the work in
//! `lifeline_keeper::cmd`.

use clap::Parser;
use lifeline_keeper::cli::Cli;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    lifeline_keeper::cli::init_tracing(cli.log_format);
    cli.command.run().await
}
