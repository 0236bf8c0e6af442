//! One module per subcommand, each an `XxxArgs` with `async fn run(self)`.

pub(crate) mod devnet;
pub(crate) mod gateway;
pub(crate) mod keeper;
pub(crate) mod routes;

/// Resolves on SIGINT or SIGTERM (one place for every long-running subcommand).
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
