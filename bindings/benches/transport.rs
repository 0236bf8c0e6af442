//! `make bench`: per-request latency through the failover transport vs a direct alloy HTTP
//! transport, against the same local anvil, interleaved in one run so both face the same
//! machine noise. Writes `target/bench/transport.json`.

use std::time::{Duration, Instant};

use alloy::{
    node_bindings::Anvil,
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport,
    client::{Route, RouteSet},
};
use lifeline_devnet::Toolchain;

const WARMUP: usize = 200;
const REQUESTS: usize = 3_000;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let anvil = Anvil::at(toolchain.anvil()).arg("--host").arg("127.0.0.1").try_spawn()?;
    let url = format!("http://127.0.0.1:{}", anvil.port());

    let direct = ProviderBuilder::new().connect_http(url.parse()?);
    let transport = FailoverTransport::new(FailoverConfig::default());
    transport.apply(&RouteSet {
        epoch: 1,
        last_attested: 0,
        stale: false,
        routes: vec![Route {
            id: 0,
            url: url.clone(),
            region: "local".into(),
            provider: "anvil".into(),
            latency_ms: 1,
            degraded: false,
        }],
        ..Default::default()
    });
    let failover = ProviderBuilder::new().connect_client(RpcClient::new(transport, false));

    for _ in 0..WARMUP {
        direct.get_block_number().await?;
        failover.get_block_number().await?;
    }
    let mut direct_samples = Vec::with_capacity(REQUESTS);
    let mut failover_samples = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        // Alternate which goes first so neither always hits a warmer connection.
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for use_direct in order {
            let started = Instant::now();
            if use_direct {
                direct.get_block_number().await?;
                direct_samples.push(started.elapsed());
            } else {
                failover.get_block_number().await?;
                failover_samples.push(started.elapsed());
            }
        }
    }
    let direct_p50 = median(&mut direct_samples);
    let failover_p50 = median(&mut failover_samples);
    let ratio = failover_p50.as_secs_f64() / direct_p50.as_secs_f64();
    let report = serde_json::json!({
        "benchmark": "transport",
        "server": "anvil on 127.0.0.1 (eth_blockNumber)",
        "requests": REQUESTS,
        "direct_p50_us": direct_p50.as_micros(),
        "failover_p50_us": failover_p50.as_micros(),
        "direct_p90_us": percentile(&direct_samples, 0.9).as_micros(),
        "failover_p90_us": percentile(&failover_samples, 0.9).as_micros(),
        "overhead_ratio": (ratio * 1000.0).round() / 1000.0,
        "goal_overhead_ratio": 1.10,
    });
    lifeline_devnet::write_report(&toolchain, "transport", &report)?;
    Ok(())
}
