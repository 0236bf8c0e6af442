//! `make bench`: one keeper probing many local endpoints once a second, at two sizes in one run:
//! 1,008 endpoints (16 services x 63) and 10,000 (157 services, 64 each but the last: the
//! registry's limit per service), all registered in the registry; each measured for 30 s after a
//! 10 s warm-up. The keeper attests as in production (heartbeats per service). The endpoints are
//! synthetic JSON-RPC servers in this process, so the figures are the keeper process's own (CPU
//! from /proc/<pid>/stat, peak RSS from VmHWM, the p99 probe start delay from its
//! `lifeline_probe_start_delay_seconds` histogram: the upper bound of the bucket holding the
//! 99th percentile). The open-file limit is raised to at least 32,768 (10,000 listeners, their
//! connections and the keeper's); when it cannot be, the 10,000 run is not attempted and the
//! benchmark fails saying so (after writing the 1,008 run). Writes
//! `target/bench/keeper-scale.json`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    providers::{Provider, ProviderBuilder},
};
use futures_util::{FutureExt, StreamExt, TryStreamExt, stream};
use lifeline_bindings::{RouteRegistry, service_id};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, KeeperOptions, SyntheticEndpoints, Toolchain,
    write_report,
};

/// (services, endpoints) per run.
const RUNS: [(usize, usize); 2] = [(16, 1_008), (157, 10_000)];
/// The registry's `MAX_ENDPOINTS` per service.
const MAX_PER_SERVICE: usize = 64;
const INTERVAL_MS: u64 = 1000;
const WARMUP: Duration = Duration::from_secs(10);
const MEASURE: Duration = Duration::from_secs(30);
const MIN_OPEN_FILES: u64 = 32_768;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let open_files = raise_open_files(MIN_OPEN_FILES);
    let mut runs = Vec::new();
    let mut failure = None;
    for (services, endpoints) in RUNS {
        if let (true, Err(e)) = (endpoints > 1_008, &open_files) {
            runs.push(serde_json::json!({
                "endpoints": endpoints, "services": services, "error": e.to_string(),
            }));
            failure = Some(eyre::eyre!("{e}"));
            break;
        }
        runs.push(run(&toolchain, services, endpoints).await?);
    }
    let first = runs[0].clone();
    let mut report = serde_json::json!({
        "benchmark": "keeper-scale",
        "probe_interval_ms": INTERVAL_MS,
        "open_file_limit": open_files.as_ref().ok(),
        "goals": {
            "cpu_pct_of_one_core": { "1008": 10, "10000": 50 },
            "peak_rss_mb": { "1008": 100, "10000": 300 },
            "probes_per_second": "0.95 x endpoints",
        },
        "runs": runs,
    });
    // Today's top-level keys: the 1,008 run.
    if let (Some(map), Some(first)) = (report.as_object_mut(), first.as_object()) {
        for (k, v) in first {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    write_report(&toolchain, "keeper-scale", &report)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One keeper over `endpoints` endpoints in `services` services, measured.
async fn run(
    toolchain: &Toolchain,
    services: usize,
    count: usize,
) -> eyre::Result<serde_json::Value> {
    eprintln!("== {count} endpoints in {services} services ==");
    let devnet =
        Devnet::start(toolchain, &DevnetOptions { endpoints: 0, keepers: 2, ..Default::default() })
            .await?;
    let endpoints = SyntheticEndpoints::start(count, devnet.chain_id()).await?;
    eprintln!("{} synthetic endpoints up; registering them...", endpoints.urls().len());

    let governor = devnet.account(0);
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(governor.clone()))
        .connect_http(devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(devnet.registry(), &provider);
    let base = registry.service(devnet.service_id()).call().await?.config;
    let mut names = vec![DEVNET_SERVICE.to_string()];
    for s in 1..services {
        names.push(format!("scale-{s}/rpc"));
    }
    // Explicit nonces, gas and fees, several in flight: registering 10,000 endpoints one
    // receipt at a time would take longer than the measurement.
    let started = Instant::now();
    let mut nonce = provider.get_transaction_count(governor.address()).await?;
    let fees = provider.estimate_eip1559_fees().await?;
    let (max_fee, tip) = (fees.max_fee_per_gas * 2, fees.max_priority_fee_per_gas);
    let mut creates = Vec::new();
    for name in &names[1..] {
        let call = registry
            .createService(service_id(name), name.clone(), base.clone())
            .nonce(nonce)
            .gas(1_000_000)
            .max_fee_per_gas(max_fee)
            .max_priority_fee_per_gas(tip);
        creates.push(async move { call.send().await }.boxed());
        nonce += 1;
    }
    let per = count.div_ceil(services).min(MAX_PER_SERVICE);
    eyre::ensure!(
        count.div_ceil(per) <= services,
        "{count} endpoints do not fit {services} services"
    );
    let mut adds = Vec::new();
    for (k, url) in endpoints.urls().iter().enumerate() {
        let call = registry
            .addEndpoint(
                service_id(&names[k / per]),
                url.clone(),
                "local".into(),
                "synthetic".into(),
                devnet.account(9).address(),
            )
            .nonce(nonce)
            .gas(1_000_000)
            .max_fee_per_gas(max_fee)
            .max_priority_fee_per_gas(tip);
        adds.push(async move { call.send().await }.boxed());
        nonce += 1;
    }
    // Services first (their endpoints need them), then endpoints.
    for batch in [creates, adds] {
        let pending: Vec<_> = stream::iter(batch).buffered(32).try_collect().await?;
        if let Some(last) = pending.into_iter().last() {
            let receipt = last.get_receipt().await?;
            eyre::ensure!(receipt.status(), "registration failed");
        }
    }
    for (s, name) in names.iter().enumerate() {
        let n = registry.service(service_id(name)).call().await?.endpointCount;
        let expected = per.min(count.saturating_sub(s * per));
        eyre::ensure!(
            usize::from(n) == expected,
            "{name}: {n} endpoints registered, not {expected}"
        );
    }
    eprintln!("registered in {:.1} s", started.elapsed().as_secs_f64());

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = devnet.keeper_config(
        toolchain,
        1,
        &KeeperOptions {
            probe_interval_ms: INTERVAL_MS,
            metrics_port: Some(metrics_port),
            ..Default::default()
        },
    )?;
    // One [[service]] per registered service.
    let mut text = std::fs::read_to_string(&config)?;
    for name in &names[1..] {
        text.push_str(&format!("\n[[service]]\nname = \"{name}\"\n"));
    }
    text = text.replace("max_head_age_secs = 10", "max_head_age_secs = 30");
    std::fs::write(&config, text)?;
    let mut keeper =
        devnet.spawn_keeper(toolchain, Path::new(env!("CARGO_BIN_EXE_lifeline")), 1, &config)?;
    let pid = keeper.pid().ok_or_else(|| eyre::eyre!("keeper has no pid"))?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");

    tokio::time::sleep(WARMUP).await;
    let text0 = metrics(&metrics_url).await?;
    let (cpu0, t0) = (cpu_ticks(pid)?, Instant::now());
    tokio::time::sleep(MEASURE).await;
    let text1 = metrics(&metrics_url).await?;
    let (cpu1, seconds) = (cpu_ticks(pid)?, t0.elapsed().as_secs_f64());
    let peak_rss_kb = status_kb(pid, "VmHWM:")?;
    eyre::ensure!(keeper.is_running(), "the keeper died; see {}", keeper.log().display());
    keeper.stop(Duration::from_secs(5));

    let probes = sum(&text1, "lifeline_probes_total{") - sum(&text0, "lifeline_probes_total{");
    let accepted = sum(&text1, "lifeline_submissions_total{result=\"accepted\"")
        - sum(&text0, "lifeline_submissions_total{result=\"accepted\"");
    let delay_p99 = histogram_quantile(&text0, &text1, "lifeline_probe_start_delay_seconds", 0.99)
        .map(|s| (s * 1000.0 * 10.0).round() / 10.0);
    let clk_tck = 100.0; // Linux USER_HZ
    let cpu_pct = (cpu1 - cpu0) as f64 / clk_tck / seconds * 100.0;
    Ok(serde_json::json!({
        "endpoints": count,
        "services": services,
        "probe_interval_ms": INTERVAL_MS,
        "seconds": (seconds * 10.0).round() / 10.0,
        "probes": probes,
        "probes_per_second": (probes / seconds).round(),
        "probes_per_second_per_endpoint": ((probes / seconds / count as f64) * 1000.0).round() / 1000.0,
        "cpu_pct_of_one_core": (cpu_pct * 10.0).round() / 10.0,
        "peak_rss_mb": (peak_rss_kb as f64 / 1024.0 * 10.0).round() / 10.0,
        "probe_start_delay_p99_ms": delay_p99,
        "attestations_accepted": accepted,
    }))
}

/// Raises the soft open-file limit to the hard one; fails unless that reaches `min`.
fn raise_open_files(min: u64) -> eyre::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        eyre::ensure!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0, "getrlimit failed");
        if limit.rlim_cur < min {
            let wanted = libc::rlimit {
                rlim_cur: min.max(limit.rlim_max.min(65_536)),
                rlim_max: limit.rlim_max.max(min),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                // Without privilege only the soft limit can move, up to the hard one.
                let soft = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
        eyre::ensure!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0, "getrlimit failed");
    }
    eyre::ensure!(
        limit.rlim_cur >= min,
        "the open-file limit is {} (hard limit {}) and could not be raised to {min}: 10,000 endpoints need their listeners, their connections and the keeper's sockets; raise the hard limit (e.g. `ulimit -Hn {min}` as root, or LimitNOFILE) and run again",
        limit.rlim_cur,
        limit.rlim_max
    );
    Ok(limit.rlim_cur)
}

async fn metrics(url: &str) -> eyre::Result<String> {
    Ok(alloy::transports::http::reqwest::get(url).await?.text().await?)
}

/// The sum of every series starting with `prefix` (e.g. `name{` for every label set).
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The upper bound of the bucket holding quantile `q` of what histogram `name` observed
/// between two expositions (`None` when it observed nothing).
fn histogram_quantile(before: &str, after: &str, name: &str, q: f64) -> Option<f64> {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix("_bucket{le=\""))
            .filter_map(|rest| {
                let (le, value) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, value.trim().parse().ok()?))
            })
            .collect()
    };
    let (b0, b1) = (buckets(before), buckets(after));
    let counts: Vec<(f64, f64)> = b1
        .iter()
        .map(|&(le, n)| (le, n - b0.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, n)| *n)))
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    counts.iter().find(|(_, n)| *n >= total * q).map(|(le, _)| *le)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> eyre::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn status_kb(pid: u32, key: &str) -> eyre::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line =
        status.lines().find(|l| l.starts_with(key)).ok_or_else(|| eyre::eyre!("no {key}"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}
