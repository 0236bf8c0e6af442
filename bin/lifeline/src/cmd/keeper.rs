//! `lifeline keeper`: the long-running agent keeper operators run.

use std::path::PathBuf;

use clap::Args;
use eyre::WrapErr;
use tokio::sync::watch;
use tracing::{error, info};

use lifeline_keeper::{config::KeeperConfig, engine::Engines, metrics::Metrics, signer};

/// Arguments of `lifeline keeper`. The signing key comes from the file's `[signer]` section
/// (keystore, or an environment variable), never from the command line.
#[derive(Debug, Args)]
pub(crate) struct KeeperArgs {
    /// The keeper's TOML configuration (see config/keeper.example.toml).
    #[arg(long, env = "LIFELINE_KEEPER_CONFIG")]
    config: PathBuf,
}

impl KeeperArgs {
    /// Runs the keeper until SIGINT or SIGTERM.
    pub(crate) async fn run(self) -> eyre::Result<()> {
        let config = KeeperConfig::load(&self.config)?;
        let signer = signer::load(&config.signer)?;
        let metrics = Metrics::default();
        if let Some(addr) = config.metrics.listen {
            let server = metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(addr).await {
                    error!(target: "keeper::metrics", %addr, error = %e, "metrics endpoint failed");
                }
            });
        }
        // One engine per [[registry]], each in its own task.
        let engines =
            Engines::start(config, signer, metrics).await.wrap_err("starting the keeper")?;
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            crate::cmd::wait_for_signal().await;
            info!(target: "keeper", "signal received; finishing the current round");
            let _ = stop.send(true);
        });
        engines.run(shutdown).await
    }
}
