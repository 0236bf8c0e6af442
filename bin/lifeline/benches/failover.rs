//! `make bench`: the failover benchmark, at 250 ms, 1 s and 2 s blocks. Each run is a devnet
//! (four endpoint proxies) with three keeper processes (quorum 2) configured exactly as
//! `config/keeper.example.toml` ships except `probe.interval_ms = 500`. Each kill takes down the
//! first active endpoint, at a random moment of a block, and measures the time until the
//! on-chain set excludes it (MTTR), split from the keepers' logs into detect (kill -> the
//! quorum-completing keeper flags it), submit (flag -> its vote transaction sent) and include
//! (sent -> the set seen without it).
//!
//! At 1 s blocks three clients face the same kills side by side: (a) Lifeline's failover
//! transport following the registry, (b) a plain alloy HTTP provider on the initially active
//! endpoint, (c) alloy's FallbackLayer over the initial route list; their figures are the
//! file's top-level keys. Writes `target/bench/failover.json`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::B256,
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
    transports::{http::Http, layers::FallbackLayer},
};
use lifeline_bindings::{FailoverConfig, FailoverTransport, RegistryClient, RouteSet, WatchConfig};
use lifeline_devnet::{
    Devnet, DevnetOptions, Fault, KeeperOptions, RequestStream, Toolchain, free_port,
    wait_for_routes, write_report,
};
use tower::ServiceBuilder;

const KILLS: usize = 20;
const PROBE_INTERVAL_MS: u64 = 500;
const BLOCK_TIMES_MS: [u64; 3] = [250, 1000, 2000];
/// The block time whose run also carries the three clients (the file's top-level keys).
const CLIENTS_AT_MS: u64 = 1000;
const KEEPERS: usize = 3;
const QUORUM: u8 = 2;

/// One kill: MTTR and its breakdown (ms; the breakdown `None` when a log line was missing).
struct Kill {
    mttr_ms: u64,
    detect_ms: Option<u64>,
    submit_ms: Option<u64>,
    include_ms: Option<u64>,
}

/// One block time's figures.
struct Run {
    block_time_ms: u64,
    fail_after: u64,
    kills: Vec<Kill>,
    clients: Option<serde_json::Value>,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let mut runs = Vec::new();
    for block_time_ms in BLOCK_TIMES_MS {
        runs.push(run(&toolchain, block_time_ms).await?);
    }

    let by_block_time: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let mttr: Vec<u64> = r.kills.iter().map(|k| k.mttr_ms).collect();
            let part = |f: fn(&Kill) -> Option<u64>| {
                let v: Vec<u64> = r.kills.iter().filter_map(f).collect();
                percentile(&v, 0.5)
            };
            let goal = PROBE_INTERVAL_MS + r.block_time_ms + 250;
            let p95 = percentile(&mttr, 0.95);
            serde_json::json!({
                "block_time_ms": r.block_time_ms,
                "probe_interval_ms": PROBE_INTERVAL_MS,
                "fail_after": r.fail_after,
                "kills": r.kills.len(),
                "mttr_ms_p50": percentile(&mttr, 0.5),
                "mttr_ms_p95": p95,
                "mttr_ms_max": mttr.iter().max(),
                "mttr_ms_p95_goal": goal,
                "goal_met": p95.is_some_and(|p| p <= goal),
                "client_errors": r.clients.as_ref().and_then(|c| c.get("client_errors").cloned()),
                "detect_ms_p50": part(|k| k.detect_ms),
                "submit_ms_p50": part(|k| k.submit_ms),
                "include_ms_p50": part(|k| k.include_ms),
                "per_kill": r.kills.iter().map(|k| serde_json::json!({
                    "mttr_ms": k.mttr_ms,
                    "detect_ms": k.detect_ms,
                    "submit_ms": k.submit_ms,
                    "include_ms": k.include_ms,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();

    let main_run = runs
        .iter()
        .find(|r| r.block_time_ms == CLIENTS_AT_MS)
        .ok_or_else(|| eyre::eyre!("no {CLIENTS_AT_MS} ms run"))?;
    let mttr: Vec<u64> = main_run.kills.iter().map(|k| k.mttr_ms).collect();
    let mut report = serde_json::json!({
        "benchmark": "failover",
        "kills": main_run.kills.len(),
        "mttr_ms_p50": percentile(&mttr, 0.5),
        "mttr_ms_p95": percentile(&mttr, 0.95),
        "mttr_ms_max": mttr.iter().max(),
        "probe_interval_ms": PROBE_INTERVAL_MS,
        "block_time_ms": CLIENTS_AT_MS,
        "keepers": KEEPERS,
        "quorum": QUORUM,
        "keeper_config": "config/keeper.example.toml with probe.interval_ms = 500",
        "goals": {
            "mttr_ms_p50": 2500,
            "mttr_ms_p95": 4000,
            "client_errors": 0,
            "by_block_time_mttr_ms_p95": "probe interval + 1 block + 250 ms",
        },
        "by_block_time": by_block_time,
    });
    if let (Some(c), Some(map)) =
        (main_run.clients.as_ref().and_then(|c| c.as_object()), report.as_object_mut())
    {
        for (k, v) in c {
            map.insert(k.clone(), v.clone());
        }
    }
    write_report(&toolchain, "failover", &report)?;
    Ok(())
}

/// One devnet at `block_time_ms`, three keepers, `KILLS` kills.
async fn run(toolchain: &Toolchain, block_time_ms: u64) -> eyre::Result<Run> {
    eprintln!("== {block_time_ms} ms blocks ==");
    let devnet = Devnet::start(
        toolchain,
        &DevnetOptions {
            block_time: Some(block_time_ms as f64 / 1000.0),
            keepers: KEEPERS,
            quorum: QUORUM,
            // Short, so killed endpoints come back as standbys between kills.
            cooldown: 4,
            // Twenty kills in a few minutes: lift the blast-radius rail for the benchmark.
            max_demotions: 100,
            ..Default::default()
        },
    )
    .await?;
    let lifeline = Path::new(env!("CARGO_BIN_EXE_lifeline"));
    let shipped = std::fs::read_to_string(toolchain.root().join("config/keeper.example.toml"))?;
    let fail_after = toml_u64(&shipped, "fail_after")?;
    let mut keepers = Vec::new();
    let mut logs = Vec::new();
    for k in 1..=KEEPERS {
        // The generated file's path; its contents are replaced by the shipped configuration.
        let path = devnet.keeper_config(toolchain, k, &KeeperOptions::default())?;
        std::fs::write(&path, shipped_config(&shipped, &devnet)?)?;
        let keeper = devnet.spawn_keeper(toolchain, lifeline, k, &path)?;
        logs.push(keeper.log().to_path_buf());
        keepers.push(keeper);
    }

    let reader = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let registry = RegistryClient::new(devnet.registry(), reader);
    let service = devnet.service_id();
    let initial = wait_for_routes(&registry, service, "two routes", Duration::from_secs(60), |s| {
        s.routes.len() == 2
    })
    .await?;
    eprintln!("keepers filled the set: {:?}", ids(&initial));

    let clients = if block_time_ms == CLIENTS_AT_MS {
        // (a) Lifeline.
        let transport = FailoverTransport::new(FailoverConfig::default());
        let follower = transport.follow(
            registry.clone(),
            service,
            WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() },
        );
        while transport.epoch() < Some(initial.epoch) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let lifeline_client =
            ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
        // (b) A plain provider on the initially active endpoint.
        let single = ProviderBuilder::new().connect_http(initial.routes[0].url.parse()?);
        // (c) alloy's FallbackLayer over the initial route list, as configured out of the box
        // (it races each request on up to 3 transports: here both routes).
        let fallback_transport = ServiceBuilder::new().layer(FallbackLayer::default()).service(
            initial
                .routes
                .iter()
                .map(|r| r.url.parse().map(Http::new))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let fallback = ProviderBuilder::new()
            .connect_client(RpcClient::builder().transport(fallback_transport, false));
        let period = Duration::from_millis(25);
        Some((
            follower,
            RequestStream::start(lifeline_client, period),
            RequestStream::start(single, period),
            RequestStream::start(fallback, period),
            initial.routes.len(),
        ))
    } else {
        None
    };

    let mut kills = Vec::new();
    for kill in 1..=KILLS {
        let victim = ready_to_kill(&registry, service).await?;
        // Readiness is seen right after a block: without this pause every kill would fall just
        // after one (the worst phase for inclusion). Outages come at any moment of a block.
        let phase = random_below(block_time_ms, kill as u64);
        tokio::time::sleep(Duration::from_millis(phase)).await;
        devnet.proxies()[usize::from(victim)].set(Fault::Down);
        let (killed, killed_at) = (Instant::now(), SystemTime::now());
        let excluded_at = loop {
            let set = registry.routes(service).await?;
            if !ids(&set).contains(&victim) {
                break SystemTime::now();
            }
            eyre::ensure!(
                killed.elapsed() < Duration::from_secs(60),
                "endpoint {victim} not excluded within 60 s; keeper logs: {logs:?}"
            );
            // Fine-grained, so the measurement adds little to the MTTR.
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mttr_ms = ms_between(killed_at, excluded_at);
        let (detect_ms, submit_ms, include_ms) =
            breakdown(&logs, victim, killed_at, excluded_at).unwrap_or((None, None, None));
        eprintln!(
            "kill {kill:>2}/{KILLS}: endpoint {victim} excluded after {mttr_ms} ms (detect {detect_ms:?}, submit {submit_ms:?}, include {include_ms:?})"
        );
        kills.push(Kill { mttr_ms, detect_ms, submit_ms, include_ms });
        // Revive it; it returns as a standby after its cooldown and a fresh healthy quorum,
        // while the next kills go on (each waits for a ready standby to promote).
        tokio::time::sleep(Duration::from_secs(1)).await;
        devnet.proxies()[usize::from(victim)].set(Fault::Up);
    }

    let clients = clients.map(|(_follower, lifeline, single, fallback, routes)| {
        serde_json::json!({
            "client_requests": lifeline.requests(),
            "client_errors": lifeline.errors(),
            "baseline_single_requests": single.requests(),
            "baseline_single_errors": single.errors(),
            "baseline_alloy_fallback_requests": fallback.requests(),
            "baseline_alloy_fallback_errors": fallback.errors(),
            "baseline_alloy_fallback_routes": routes,
            "baseline_alloy_fallback_config": "FallbackLayer::default() (races up to 3 transports per request)",
        })
    });
    for keeper in &mut keepers {
        keeper.stop(Duration::from_secs(3));
    }
    Ok(Run { block_time_ms, fail_after, kills, clients })
}

/// `config/keeper.example.toml` pointed at this devnet: its registry, a free metrics port and
/// `probe.interval_ms = 500`; every other value as shipped.
fn shipped_config(shipped: &str, devnet: &Devnet) -> eyre::Result<String> {
    let mut out = String::new();
    let mut replaced = 0;
    for line in shipped.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        let line = match key {
            "rpc_urls" => format!("rpc_urls = [\"{}\"]", devnet.rpc_url()),
            "address" => format!("address = \"{}\"", devnet.registry()),
            "interval_ms" => format!("interval_ms = {PROBE_INTERVAL_MS}"),
            "listen" => format!("listen = \"127.0.0.1:{}\"", free_port()?),
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        replaced += 1;
        out.push_str(&line);
        out.push('\n');
    }
    eyre::ensure!(replaced == 4, "keeper.example.toml changed shape ({replaced} of 4 keys found)");
    eyre::ensure!(out.contains(&format!("name = \"{}\"", lifeline_devnet::DEVNET_SERVICE)));
    Ok(out)
}

fn toml_u64(text: &str, key: &str) -> eyre::Result<u64> {
    text.lines()
        .find(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.split('#').next())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| eyre::eyre!("no {key} in keeper.example.toml"))
}

/// Waits until the set has two routes and a ready standby (one to promote); returns the first
/// active endpoint.
async fn ready_to_kill<P: Provider>(
    registry: &RegistryClient<P>,
    service: B256,
) -> eyre::Result<u16> {
    let started = Instant::now();
    loop {
        let set = registry.routes(service).await?;
        if set.routes.len() == 2 {
            let count = registry.contract().service(service).call().await?.endpointCount;
            for i in 0..count {
                let e = registry.contract().endpoint(service, i).call().await?;
                if e.status == 1 && e.ready {
                    return Ok(set.routes[0].id);
                }
            }
        }
        eyre::ensure!(started.elapsed() < Duration::from_secs(90), "no ready standby within 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Splits one kill's MTTR using the keepers' logs: per keeper, the first "verdict changed ...
/// endpoint=<victim> verdict=Unhealthy" after the kill and its first "sent" after that. The
/// quorum-completing vote is the `QUORUM`-th sent; detect = kill -> its flag, submit = flag ->
/// sent, include = sent -> the set seen without the victim.
fn breakdown(
    logs: &[PathBuf],
    victim: u16,
    killed: SystemTime,
    excluded: SystemTime,
) -> Option<(Option<u64>, Option<u64>, Option<u64>)> {
    let flag = format!("endpoint={victim} verdict=Unhealthy");
    let mut votes = Vec::new();
    for log in logs {
        let text = std::fs::read(log).ok()?;
        let text = String::from_utf8_lossy(&text);
        let mut flagged = None;
        for line in text.lines() {
            let Some(at) = line.split_whitespace().next().and_then(parse_rfc3339) else {
                continue;
            };
            if at < killed || at > excluded {
                continue;
            }
            match flagged {
                None if line.contains("verdict changed") && line.contains(&flag) => {
                    flagged = Some(at);
                }
                Some(f) if line.contains("keeper::submit") && line.contains(" sent ") => {
                    votes.push((f, at));
                    break;
                }
                _ => {}
            }
        }
    }
    votes.sort_by_key(|&(_, sent)| sent);
    let &(flagged, sent) = votes.get(usize::from(QUORUM) - 1)?;
    Some((
        Some(ms_between(killed, flagged)),
        Some(ms_between(flagged, sent)),
        Some(ms_between(sent, excluded)),
    ))
}

/// `2026-11-25T16:52:56.750608Z` (tracing's UTC timestamps) as a time.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let micros: i64 = format!("{frac:0<6}")[..6].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_micros(u64::try_from(secs * 1_000_000 + micros).ok()?))
}

/// A pseudo-random number below `bound` (splitmix64 of the clock and `salt`).
fn random_below(bound: u64, salt: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % bound.max(1)
}

fn ms_between(from: SystemTime, to: SystemTime) -> u64 {
    to.duration_since(from).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn percentile(values: &[u64], p: f64) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[((v.len() as f64 - 1.0) * p).round() as usize])
}

fn ids(set: &RouteSet) -> Vec<u16> {
    set.routes.iter().map(|r| r.id).collect()
}
