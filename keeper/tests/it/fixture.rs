//! In-process keepers against a devnet: each keeper is an [`Engine`] on the test's runtime,
//! with its own key and metrics, so a test can read its verdicts and counters directly.

use std::time::{Duration, Instant};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use lifeline_bindings::RegistryClient;
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};
use lifeline_keeper::{
    config::KeeperConfig, engine::Engines, metrics::Metrics, submit::service_sender,
};
use tokio::{sync::watch, task::JoinHandle};

/// A devnet (1 s blocks, four endpoint proxies, three registered keepers, quorum 2).
pub(crate) struct Net {
    pub(crate) toolchain: Toolchain,
    pub(crate) devnet: Devnet,
    pub(crate) registry: RegistryClient<DynProvider>,
}

impl Net {
    pub(crate) async fn start() -> eyre::Result<Self> {
        let toolchain = Toolchain::locate()?;
        let devnet = Devnet::start(
            &toolchain,
            &DevnetOptions { block_time: Some(1.0), ..Default::default() },
        )
        .await?;
        let reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?).erased();
        let registry = RegistryClient::new(devnet.registry(), reader);
        Ok(Self { toolchain, devnet, registry })
    }

    /// A keeper configuration for this devnet: fast rounds, the given registry RPC URLs
    /// (default: anvil directly), then `extra` TOML appended (sections not set here).
    pub(crate) fn config(&self, rpc_urls: Option<&[String]>, extra: &str) -> String {
        let urls = rpc_urls.map_or_else(|| vec![self.devnet.rpc_url()], <[String]>::to_vec);
        let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        format!(
            r#"
[registry]
rpc_urls = [{urls}]
address = "{registry}"

[probe]
interval_ms = 500
timeout_ms = 400
jitter_pct = 10
refresh_secs = 10

[judge]
fail_after = 2
recover_after = 2
max_head_age_secs = 10

[[service]]
name = "{service}"
{extra}
"#,
            urls = urls.join(", "),
            registry = self.devnet.registry(),
            service = lifeline_devnet::DEVNET_SERVICE,
        )
    }

    /// Starts keeper `k` (1-based: anvil account `k`) in process with this configuration.
    pub(crate) async fn keeper(&self, k: usize, toml: &str) -> eyre::Result<Keeper> {
        let config = KeeperConfig::parse(toml)?;
        let metrics = Metrics::default();
        let engine = Engines::start(config, self.devnet.account(k), metrics.clone()).await?;
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(async move { engine.run(shutdown).await });
        Ok(Keeper { k, metrics, stop, task: Some(task) })
    }

    /// Starts keepers `ks` with the default configuration.
    pub(crate) async fn keepers(&self, ks: &[usize]) -> eyre::Result<Vec<Keeper>> {
        let mut out = Vec::new();
        for &k in ks {
            out.push(self.keeper(k, &self.config(None, "")).await?);
        }
        Ok(out)
    }

    /// Attestation transactions sent so far by keeper `k` for the devnet's service: the
    /// account nonce of its sender for the service (see `submit.senders`).
    pub(crate) async fn sent_by(&self, k: usize) -> eyre::Result<u64> {
        let sender = service_sender(&self.devnet.account(k), self.devnet.service_id());
        Ok(self.registry.contract().provider().get_transaction_count(sender.address()).await?)
    }
}

/// One in-process keeper; stopped (and its task aborted) on drop.
pub(crate) struct Keeper {
    pub(crate) k: usize,
    pub(crate) metrics: Metrics,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<eyre::Result<()>>>,
}

impl Keeper {
    /// A sample from the keeper's Prometheus exposition: the series `name` whose labels include
    /// every `key="value"` of `labels` (0 when absent).
    pub(crate) fn sample(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample(&self.metrics.render(), name, labels)
    }

    /// Probes run so far, over every finding.
    pub(crate) fn probes(&self) -> f64 {
        sum(&self.metrics.render(), "lifeline_probes_total")
    }

    /// True while its engine runs.
    pub(crate) fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks it to stop and waits for its engine to return.
    pub(crate) async fn stop(mut self) -> eyre::Result<()> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task).await???;
        }
        Ok(())
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The sum of every series `name{...}` (e.g. probes over all findings).
pub(crate) fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{')?.split_once("} "))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

/// The value of the first series `name{...}` whose labels include all of `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        if labels.iter().all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\""))) {
            return value.trim().parse().unwrap_or(0.0);
        }
    }
    0.0
}

/// Polls `check` every 100 ms until it holds; fails after `limit` saying `what`.
pub(crate) async fn eventually(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> eyre::Result<bool>,
) -> eyre::Result<()> {
    let started = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        eyre::ensure!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
