//! Probe classification: a real anvil (1 s blocks) behind fault-injecting proxies; one proxy
//! misbehaves, the others are honest, and the round's findings must name the fault.

use std::time::Duration;

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::Address,
    transports::http::reqwest::Url,
};
use lifeline_devnet::{Fault, FaultProxy, Toolchain};
use lifeline_keeper::{
    collect::{JsonRpcRound, Observed},
    config::JudgeConfig,
    judge::{Finding, Tracker, Verdict},
    metrics::Metrics,
    probe::{ProbeFailure, Prober},
};
use tokio::sync::Semaphore;

const HONEST: usize = 3;

struct Bench {
    _anvil: AnvilInstance,
    proxies: Vec<FaultProxy>,
    chain_id: u64,
}

async fn bench() -> eyre::Result<Bench> {
    let anvil = Anvil::at(Toolchain::locate()?.anvil())
        .arg("--host")
        .arg("127.0.0.1")
        .block_time(1)
        .try_spawn()?;
    let url = format!("http://127.0.0.1:{}", anvil.port());
    let mut proxies = Vec::new();
    for _ in 0..=HONEST {
        proxies.push(FaultProxy::start(url.clone()).await?);
    }
    // Some history, so that "lag" has blocks to lag behind.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Ok(Bench { chain_id: anvil.chain_id(), _anvil: anvil, proxies })
}

/// One round with proxy 0 set to `fault`; returns proxy 0's observation and the honest ones'.
async fn observe(
    bench: &Bench,
    fault: Fault,
    proof_account: Option<Address>,
    max_bytes: usize,
) -> (Observed, Vec<Observed>) {
    bench.proxies[0].set(fault);
    let prober = Prober::new(Duration::from_millis(400), max_bytes);
    let limit = Semaphore::new(16);
    let metrics = Metrics::default();
    let judge = JudgeConfig { max_head_age_secs: 3, ..Default::default() };
    let round = JsonRpcRound {
        prober: &prober,
        limit: &limit,
        metrics: &metrics,
        judge: &judge,
        chain_id: bench.chain_id,
        proof_account,
        scheduled: std::time::Instant::now(),
    };
    let endpoints: Vec<(u16, Url)> = bench
        .proxies
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u16, p.url().parse().expect("url")))
        .collect();
    let mut observed = round.observe(&endpoints, now()).await;
    let first = observed.remove(0);
    (first, observed)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn assert_honest_ok(honest: &[Observed]) {
    for o in honest {
        assert_eq!(o.finding, Finding::Ok, "honest endpoint {} misjudged", o.index);
    }
}

#[tokio::test]
async fn healthy_endpoints_are_ok() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::Up, None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Ok);
    assert!(first.latency_ms.is_some());
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn down_endpoint_is_unreachable() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::Down, None, 1 << 20).await;
    assert!(
        matches!(first.finding, Finding::Probe(ProbeFailure::Unreachable(_))),
        "{:?}",
        first.finding
    );
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn hanging_endpoint_times_out() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::Hang, None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Probe(ProbeFailure::Timeout));
    assert_honest_ok(&honest);
    bench.proxies[0].set(Fault::Up);
    Ok(())
}

#[tokio::test]
async fn slow_endpoint_fails_the_latency_window() -> eyre::Result<()> {
    let bench = bench().await?;
    let config =
        JudgeConfig { latency_window: 2, max_latency_ms: 100, fail_after: 2, ..Default::default() };
    let mut tracker = Tracker::default();
    let mut verdict = Verdict::Unknown;
    for _ in 0..3 {
        let (first, _) =
            observe(&bench, Fault::Slow(Duration::from_millis(250)), None, 1 << 20).await;
        assert_eq!(first.finding, Finding::Ok, "answers, only slowly");
        verdict = tracker.record(&config, first.finding, first.latency_ms);
    }
    assert_eq!(verdict, Verdict::Unhealthy);
    assert!(
        matches!(tracker.last, Finding::Slow { median_ms } if median_ms >= 250),
        "{:?}",
        tracker.last
    );
    Ok(())
}

#[tokio::test]
async fn wrong_chain_id_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::WrongChainId(1), None, 1 << 20).await;
    assert_eq!(first.finding, Finding::WrongChain { reported: 1 });
    assert_honest_ok(&honest);
    Ok(())
}

/// One round in which every endpoint reports chain id `reported`, judged against `expected`.
async fn observe_all(bench: &Bench, reported: u64, expected: u64) -> Vec<Observed> {
    for proxy in &bench.proxies {
        proxy.set(Fault::WrongChainId(reported));
    }
    let prober = Prober::new(Duration::from_millis(400), 1 << 20);
    let limit = Semaphore::new(16);
    let metrics = Metrics::default();
    let judge = JudgeConfig { max_head_age_secs: 3, ..Default::default() };
    let round = JsonRpcRound {
        prober: &prober,
        limit: &limit,
        metrics: &metrics,
        judge: &judge,
        chain_id: expected,
        proof_account: None,
        scheduled: std::time::Instant::now(),
    };
    let endpoints: Vec<(u16, Url)> = bench
        .proxies
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u16, p.url().parse().expect("url")))
        .collect();
    round.observe(&endpoints, now()).await
}

#[tokio::test]
async fn every_endpoint_on_wrong_chain_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    // No endpoint corroborates a head on the expected chain: each is still checked on its own.
    for o in observe_all(&bench, 1, bench.chain_id).await {
        assert_eq!(o.finding, Finding::WrongChain { reported: 1 }, "endpoint {}", o.index);
    }
    Ok(())
}

#[tokio::test]
async fn expected_chain_id_zero_checks_no_chain_id() -> eyre::Result<()> {
    let bench = bench().await?;
    for o in observe_all(&bench, 1, 0).await {
        assert_eq!(o.finding, Finding::Ok, "endpoint {}: chain id 0 is not checked", o.index);
    }
    Ok(())
}

#[tokio::test]
async fn lagging_endpoint_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // enough blocks to lag 5 behind
    let (first, honest) = observe(&bench, Fault::Lag(5), None, 1 << 20).await;
    assert!(matches!(first.finding, Finding::Lagging { blocks: 5 }), "{:?}", first.finding);
    assert_eq!(first.head_lag, 5);
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn stalled_head_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    bench.proxies[0].set(Fault::StalledHead);
    let (first, _) = observe(&bench, Fault::StalledHead, None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Ok, "fresh when it stalls");
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Same fault (the proxy keeps its stalled head: `set` is not called again).
    let prober = Prober::new(Duration::from_millis(400), 1 << 20);
    let (_, head) = prober.head(&bench.proxies[0].url().parse()?).await;
    let head = head.map_err(|e| eyre::eyre!("{e}"))?;
    assert!(now() - head.timestamp >= 4, "the head stopped moving");
    let judge = JudgeConfig { max_head_age_secs: 3, max_lag_blocks: 100, ..Default::default() };
    let finding =
        lifeline_keeper::judge::judge_head(&judge, bench.chain_id, head.number, &head, now());
    assert!(matches!(finding, Finding::Stalled { .. }), "{finding:?}");
    Ok(())
}

#[tokio::test]
async fn divergent_hash_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::DivergentHash, None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Divergent);
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn one_far_future_head_does_not_make_the_others_lag() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::FutureHead(1_000_000), None, 1 << 20).await;
    assert!(matches!(first.finding, Finding::AheadOfMajority { .. }), "{:?}", first.finding);
    assert_honest_ok(&honest);
    for o in &honest {
        assert_eq!(o.head_lag, 0, "measured against the corroborated head, not the max");
    }
    Ok(())
}

#[tokio::test]
async fn garbage_json_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::Garbage, None, 1 << 20).await;
    assert!(
        matches!(first.finding, Finding::Probe(ProbeFailure::Garbage(_))),
        "{:?}",
        first.finding
    );
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn http_200_with_a_json_rpc_error_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    let fault = Fault::RpcError { code: -32603, message: "internal error".into() };
    let (first, honest) = observe(&bench, fault, None, 1 << 20).await;
    // A batch answered by a single error object is not a batch answer.
    assert!(
        matches!(
            first.finding,
            Finding::Probe(ProbeFailure::RpcError(..) | ProbeFailure::Garbage(_))
        ),
        "{:?}",
        first.finding
    );
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn http_5xx_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, _) = observe(&bench, Fault::HttpStatus(503), None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Probe(ProbeFailure::HttpStatus(503)));
    Ok(())
}

#[tokio::test]
async fn oversized_body_is_cut_off() -> eyre::Result<()> {
    let bench = bench().await?;
    let (first, honest) = observe(&bench, Fault::Oversized(4 << 20), None, 1 << 20).await;
    assert_eq!(first.finding, Finding::Probe(ProbeFailure::TooLarge(1 << 20)));
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn forged_state_proof_is_caught() -> eyre::Result<()> {
    let bench = bench().await?;
    // anvil's first dev account: funded, so its proof has a real leaf.
    let account: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse()?;
    let (first, honest) = observe(&bench, Fault::BadProof, Some(account), 1 << 20).await;
    assert!(matches!(first.finding, Finding::BadStateProof(_)), "{:?}", first.finding);
    assert_honest_ok(&honest);
    Ok(())
}

#[tokio::test]
async fn http_probe_reports_status() -> eyre::Result<()> {
    let bench = bench().await?;
    let prober = Prober::new(Duration::from_millis(400), 1 << 20);
    let url: Url = bench.proxies[0].url().parse()?;
    let (_, ok) = prober.http(&url).await;
    assert_eq!(ok, Ok(()), "a reachable HTTP endpoint answers 2xx");
    bench.proxies[0].set(Fault::HttpStatus(503));
    assert_eq!(prober.http(&url).await.1, Err(ProbeFailure::HttpStatus(503)));
    bench.proxies[0].set(Fault::Hang);
    assert_eq!(prober.http(&url).await.1, Err(ProbeFailure::Timeout));
    bench.proxies[0].set(Fault::Up);
    Ok(())
}

#[tokio::test]
async fn tcp_probe_reports_connect() -> eyre::Result<()> {
    let bench = bench().await?;
    let prober = Prober::new(Duration::from_millis(400), 1 << 20);
    let (latency, ok) = prober.tcp(&bench.proxies[0].url().parse()?).await;
    assert_eq!(ok, Ok(()));
    assert!(latency < Duration::from_millis(400));
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let (_, closed) = prober.tcp(&format!("http://127.0.0.1:{port}").parse()?).await;
    assert!(matches!(closed, Err(ProbeFailure::Unreachable(_))), "{closed:?}");
    Ok(())
}
