//! Watching a devnet from the outside: waiting for the on-chain route set to reach a state, and
//! writing benchmark reports.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy::{primitives::B256, providers::Provider};
use lifeline_bindings::{RegistryClient, RouteSet};

use crate::{Error, Result, Toolchain};

/// Polls `service`'s route set every 100 ms until `done` holds; fails after `limit` with the
/// last set seen (and `what`, to say what was awaited).
pub async fn wait_for_routes<P: Provider>(
    registry: &RegistryClient<P>,
    service: B256,
    what: &str,
    limit: Duration,
    done: impl Fn(&RouteSet) -> bool,
) -> Result<RouteSet> {
    let started = Instant::now();
    loop {
        let set = registry.routes(service).await.map_err(|e| Error::Chain(e.to_string()))?;
        if done(&set) {
            return Ok(set);
        }
        if started.elapsed() > limit {
            return Err(Error::Chain(format!(
                "{what}: not within {limit:?} (epoch {}, routes {:?}); keeper logs are under target/devnet/",
                set.epoch,
                set.routes.iter().map(|r| r.id).collect::<Vec<_>>()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a benchmark report to `target/bench/<name>.json`, prints it, and returns the path.
pub fn write_report(
    toolchain: &Toolchain,
    name: &str,
    report: &serde_json::Value,
) -> Result<PathBuf> {
    let dir = toolchain.root().join("target/bench");
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, &text))
        .map_err(|source| Error::Io { context: format!("writing {}", path.display()), source })?;
    print!("{text}");
    println!("wrote {}", path.display());
    Ok(path)
}
