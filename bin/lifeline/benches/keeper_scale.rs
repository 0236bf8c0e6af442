//! `make bench`: one keeper probing 1,008 local endpoints (16 services x 63, all registered in
//! the registry) once a second, measured for 30 s after a 10 s warm-up. The endpoints are
//! synthetic JSON-RPC servers in this process, so the figures are the keeper process's own
//! (CPU from /proc/<pid>/stat, peak RSS from VmHWM). Writes `target/bench/keeper-scale.json`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use alloy::{network::EthereumWallet, providers::ProviderBuilder};
use lifeline_bindings::{RouteRegistry, service_id};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, KeeperOptions, SyntheticEndpoints, Toolchain,
    write_report,
};

const SERVICES: usize = 16;
const PER_SERVICE: usize = 63;
const INTERVAL_MS: u64 = 1000;
const WARMUP: Duration = Duration::from_secs(10);
const MEASURE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(
        &toolchain,
        &DevnetOptions { endpoints: 0, keepers: 2, ..Default::default() },
    )
    .await?;
    let endpoints = SyntheticEndpoints::start(SERVICES * PER_SERVICE, devnet.chain_id()).await?;
    eprintln!("{} synthetic endpoints up; registering them...", endpoints.urls().len());

    let governor = ProviderBuilder::new()
        .wallet(EthereumWallet::from(devnet.account(0)))
        .connect_http(devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(devnet.registry(), &governor);
    let base = registry.service(devnet.service_id()).call().await?.config;
    let mut names = vec![DEVNET_SERVICE.to_string()];
    for s in 1..SERVICES {
        let name = format!("scale-{s}/rpc");
        registry
            .createService(service_id(&name), name.clone(), base.clone())
            .send()
            .await?
            .watch()
            .await?;
        names.push(name);
    }
    for (s, name) in names.iter().enumerate() {
        for url in &endpoints.urls()[s * PER_SERVICE..(s + 1) * PER_SERVICE] {
            registry
                .addEndpoint(
                    service_id(name),
                    url.clone(),
                    "local".into(),
                    "synthetic".into(),
                    devnet.account(9).address(),
                )
                .send()
                .await?
                .watch()
                .await?;
        }
    }

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = devnet.keeper_config(
        &toolchain,
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
        devnet.spawn_keeper(&toolchain, Path::new(env!("CARGO_BIN_EXE_lifeline")), 1, &config)?;
    let pid = keeper.pid().ok_or_else(|| eyre::eyre!("keeper has no pid"))?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");

    tokio::time::sleep(WARMUP).await;
    let (cpu0, probes0, t0) = (cpu_ticks(pid)?, probes(&metrics_url).await?, Instant::now());
    tokio::time::sleep(MEASURE).await;
    let (cpu1, probes1, seconds) =
        (cpu_ticks(pid)?, probes(&metrics_url).await?, t0.elapsed().as_secs_f64());
    let peak_rss_kb = status_kb(pid, "VmHWM:")?;
    eyre::ensure!(keeper.is_running(), "the keeper died; see {}", keeper.log().display());
    keeper.stop(Duration::from_secs(5));

    let clk_tck = 100.0; // Linux USER_HZ
    let cpu_pct = (cpu1 - cpu0) as f64 / clk_tck / seconds * 100.0;
    let report = serde_json::json!({
        "benchmark": "keeper-scale",
        "endpoints": SERVICES * PER_SERVICE,
        "services": SERVICES,
        "probe_interval_ms": INTERVAL_MS,
        "seconds": (seconds * 10.0).round() / 10.0,
        "probes": probes1 - probes0,
        "probes_per_second": ((probes1 - probes0) / seconds).round(),
        "cpu_pct_of_one_core": (cpu_pct * 10.0).round() / 10.0,
        "peak_rss_mb": (peak_rss_kb as f64 / 1024.0 * 10.0).round() / 10.0,
        "goals": { "cpu_pct_of_one_core": 10, "peak_rss_mb": 100 },
    });
    write_report(&toolchain, "keeper-scale", &report)?;
    Ok(())
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

/// Sum of lifeline_probes_total over all labels.
async fn probes(url: &str) -> eyre::Result<f64> {
    let text = alloy::transports::http::reqwest::get(url).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("lifeline_probes_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum())
}
