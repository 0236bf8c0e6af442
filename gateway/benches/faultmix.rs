//! `make bench-faultmix`: the same request stream through six clients, side by side, while a
//! seeded random schedule of faults hits a minority of five routes. Writes
//! `target/bench/faultmix.json` and prints a table plus, for every bad answer a Lifeline client
//! got, the request and the fault behind it.
//!
//! Everything runs on 127.0.0.1:
//!
//! ```text
//!  anvil (THE chain, 1 s blocks; + registry, no endpoints) <--judge: head timeline (50 ms),
//!     ^  ^  ^  ^  ^                                            hashes, witness balance per block,
//!     |  |  |  |  |                                            receipts
//!  proxy 0..4 (FaultProxy) --WrongChain--> anvil --chain-id 1     (forks::other_chain)
//!     ^                     --Forked-----> anvil --fork-url chain  (forks::fork_of, own blocks)
//!     |
//!     +-- (a) lifeline_transport            FailoverTransport over the 5 URLs
//!     +-- (g) lifeline_transport_consensus  the same, eth_call answered by 2 of 3 routes
//!     +-- (b) lifeline_gateway              Gateway (in process, 5 bootstrap routes) <- alloy HTTP
//!     +-- (c) alloy_fallback                FallbackLayer::default() over the 5 URLs
//!     +-- (d) viem_fallback                 tests/js/fallback.mjs: fallback([...], {rank: true})
//!     +-- (e) ethers_fallback               tests/js/fallback.mjs: FallbackProvider (quorum 3/5)
//!     '-- (f) single                        alloy HTTP provider on proxy 0
//! ```
//!
//! Every client runs, from the same instant, the same loop: every 250 ms `eth_blockNumber`,
//! `eth_getBlockByNumber("latest")`, `eth_getBalance(witness, "latest")` and `eth_call` to a
//! hand-assembled contract returning `(block.number, blockhash(block.number - 1))`, one after
//! the other (a slow answer delays the next tick); and every 2 s a locally signed 1-wei EIP-1559
//! transfer from its own anvil account (`eth_sendRawTransaction`). Each request is bounded at
//! 10 s (viem's default HTTP timeout); the nonce of each transfer is read from anvil directly
//! (bookkeeping, not a measured request: a lost transfer never wedges the next ones) and its gas
//! limit carries a sequence number, so no two transfers are the same bytes.
//!
//! The faults: a seeded schedule (`LIFELINE_FAULTMIX_SEED` replays one; the seed is printed and
//! in the JSON) of 50 faults, 5 of each kind: down, hang, lag (3-10 blocks), stalled head,
//! future head (5-20 blocks), wrong chain, forked, flaky (every 3rd request 503 or 429), censor,
//! divergent hash; each 2-5 s, on two lanes that never fault the same route at once, so at most
//! 2 of the 5 routes are faulted at any moment.
//!
//! Judging, against anvil directly, each answer at the moment it arrived:
//! - `wrong`: a block hash (latest block) or a `blockhash` (eth_call) that is not the chain's at
//!   that height, an eth_call answer that is not the contract's (another chain has no code
//!   there), a witness balance no block of the chain had, or a head more than `max_lag_blocks`
//!   above the true head (a fabricated future block);
//! - `stale` (when not wrong): the block the answer reflects (the number; for eth_getBalance the
//!   last block whose witness balance it is: a helper gives the witness 1 wei per block; for
//!   eth_call the returned `block.number`) more than `max_lag_blocks` (2) behind the true head;
//! - `errors`: failed requests (reads and sends); `tx_lost`: a transfer that got a hash but is not
//!   in the chain 10 s after the run; `p50_ms`/`p99_ms` over every request, failed ones included.

use std::{
    collections::{BTreeMap, HashMap},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::{BlockId, BlockNumberOrTag, Encodable2718},
    network::{EthereumWallet, TxSignerSync},
    primitives::{Address, B256, TxKind, U256, address},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{client::RpcClient, types::TransactionRequest},
    signers::local::PrivateKeySigner,
    transports::{
        http::{Http, reqwest::Url},
        layers::FallbackLayer,
    },
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport,
    transport::{ConsensusConfig, RouteReport, freshness::FreshnessConfig},
};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, Fault, FaultProxy, Toolchain, block_probe, forks,
    write_report,
};
use lifeline_gateway::{Gateway, GatewayConfig};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// Seconds between blocks of every chain.
const BLOCK_TIME: f64 = 1.0;
/// Routes of the service.
const ROUTES: usize = 5;
/// Faults of each kind in the schedule.
const PER_KIND: usize = 5;
/// Shortest and longest fault, ms.
const FAULT_MS: (u64, u64) = (2_000, 5_000);
/// Pause between two faults of one lane, ms.
const GAP_MS: (u64, u64) = (500, 1_500);
/// Where each lane's first fault may start, ms after the clients start.
const LANE_START_MS: [u64; 2] = [2_000, 3_500];
/// Period of the read loop (four reads per tick).
const TICK: Duration = Duration::from_millis(250);
/// Period of the transfers.
const TX_EVERY: Duration = Duration::from_secs(2);
/// Longest one request may take (viem's default HTTP timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After the run, before looking for the transfers in the chain.
const GRACE: Duration = Duration::from_secs(10);
/// An answer more than this many blocks behind the true head is stale.
const MAX_LAG: u64 = 2;
/// How often the judge samples anvil's head.
const TIMELINE_EVERY: Duration = Duration::from_millis(50);
/// Receives 1 wei per block: its balance says which block a `latest` state read saw.
const WITNESS: Address = address!("0x000000000000000000000000000000000000bEEF");
/// Receives the clients' 1-wei transfers.
const SINK: Address = address!("0x000000000000000000000000000000000000dEaD");
/// Fees of the transfers: fixed, far above anvil's base fee.
const MAX_FEE: u128 = 100_000_000_000;
const TIP: u128 = 1_000_000_000;
/// Gas limit of a transfer, plus its sequence number.
const GAS_BASE: u64 = 50_000;

/// The clients, in report order, and the anvil account each sends from.
const CLIENTS: [(&str, usize); 7] = [
    ("lifeline_transport", 2),
    ("lifeline_gateway", 3),
    ("alloy_fallback", 4),
    ("viem_fallback", 5),
    ("ethers_fallback", 6),
    ("single", 7),
    ("lifeline_transport_consensus", 8),
];

#[tokio::main]
async fn main() -> eyre::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let started = Instant::now();
    let seed = match std::env::var("LIFELINE_FAULTMIX_SEED") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|e| eyre::eyre!("LIFELINE_FAULTMIX_SEED = {text:?}: {e}"))?,
        Err(_) => unix_ms() ^ u64::from(std::process::id()),
    };
    println!("seed {seed} (replay with LIFELINE_FAULTMIX_SEED={seed})");
    let toolchain = Toolchain::locate()?;

    // Setup: the chain (with a registry, no endpoints), the other chain, the fork, 5 proxies.
    let devnet = Devnet::start(
        &toolchain,
        &DevnetOptions { endpoints: 0, block_time: Some(BLOCK_TIME), ..Default::default() },
    )
    .await?;
    let chain_url = devnet.rpc_url();
    let chain_id = devnet.chain_id();
    let anvil = ProviderBuilder::new().connect_http(chain_url.parse()?).erased();
    let other = forks::other_chain(&toolchain, 1, Some(BLOCK_TIME)).await?;
    let fork = forks::fork_of(&toolchain, &chain_url, Some(BLOCK_TIME)).await?;
    let mut proxies = Vec::with_capacity(ROUTES);
    for _ in 0..ROUTES {
        proxies.push(FaultProxy::start(chain_url.clone()).await?);
    }
    let urls: Vec<String> = proxies.iter().map(FaultProxy::url).collect();
    let contract = deploy_probe(&devnet, &chain_url).await?;

    // The judge's view of the chain, from before the first answer to the end.
    let truth: Arc<Mutex<Truth>> = Arc::default();
    let timeline = tokio::spawn(follow_chain(anvil.clone(), truth.clone()));
    let funder = tokio::spawn(fund_witness(chain_url.clone(), devnet.account(1)));

    // The gateway, in process, on the 5 proxies as bootstrap routes (the registry has none).
    let bootstrap = urls.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    let gateway = Gateway::start(GatewayConfig::parse(&format!(
        r#"
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        [registry]
        rpc_url = "{chain_url}"
        address = "{registry}"
        [freshness]
        poll_interval_ms = {poll}
        [[service]]
        name = "{DEVNET_SERVICE}"
        bootstrap = [{bootstrap}]
        "#,
        registry = devnet.registry(),
        poll = (BLOCK_TIME * 1000.0) as u64,
    ))?)
    .await?;
    if let Err(e) = gateway.services()[0].health() {
        eyre::bail!("gateway not usable: {e}");
    }

    // The five Rust clients.
    let parsed: Vec<Url> = urls.iter().map(|u| u.parse()).collect::<Result<_, _>>()?;
    let lifeline = |consensus: Option<ConsensusConfig>| {
        FailoverTransport::new(FailoverConfig {
            bootstrap: parsed.clone(),
            freshness: FreshnessConfig {
                poll_interval: Duration::from_secs_f64(BLOCK_TIME),
                ..Default::default()
            },
            consensus,
            ..Default::default()
        })
    };
    let transport = lifeline(None);
    let consensus =
        lifeline(Some(ConsensusConfig { methods: vec!["eth_call".into()], ask: 3, agree: 2 }));
    let over = |t: &FailoverTransport| {
        ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), false)).erased()
    };
    let fallback = ServiceBuilder::new()
        .layer(FallbackLayer::default())
        .service(parsed.iter().cloned().map(Http::new).collect::<Vec<_>>());
    let rust_clients: Vec<(&str, DynProvider)> = vec![
        ("lifeline_transport", over(&transport)),
        ("lifeline_gateway", http_provider(&gateway.http_url(DEVNET_SERVICE))?),
        (
            "alloy_fallback",
            ProviderBuilder::new()
                .connect_client(RpcClient::builder().transport(fallback, false))
                .erased(),
        ),
        ("single", http_provider(&urls[0])?),
        ("lifeline_transport_consensus", over(&consensus)),
    ];
    // How each Lifeline client sees its routes, sampled (for explaining bad answers).
    let service = gateway.services()[0].clone();
    let watched: Vec<(&'static str, RoutesOf)> = vec![
        ("lifeline_transport", Box::new(move || transport.routes())),
        ("lifeline_gateway", Box::new(move || service.transport().routes())),
        ("lifeline_transport_consensus", Box::new(move || consensus.routes())),
    ];
    let views: Arc<Mutex<Views>> = Arc::default();
    let viewer = tokio::spawn(watch_routes(watched, urls.clone(), views.clone()));

    // The schedule, then everyone starts at the same instant.
    let plan = schedule(seed, &forks::wrong_chain(&other), &forks::forked(&fork));
    let run = Duration::from_millis(plan.iter().map(|p| p.at_ms + p.dur_ms).max().unwrap_or(0))
        + Duration::from_secs(2);
    let start_at = unix_ms() + 4_000;
    let account =
        |name: &str| -> usize { CLIENTS.iter().find(|(n, _)| *n == name).map_or(9, |(_, a)| *a) };
    let ctx = Arc::new(Ctx { anvil: anvil.clone(), contract, chain_id, start_at, run });
    let mut node_clients = Vec::new();
    for (name, library) in [("viem_fallback", "viem"), ("ethers_fallback", "ethers")] {
        let key = devnet.account(account(name)).to_bytes();
        let child = tokio::process::Command::new("node")
            .current_dir(toolchain.root())
            .arg("tests/js/fallback.mjs")
            .args(["--client", library, "--urls", &urls.join(",")])
            .args(["--chain-id", &chain_id.to_string()])
            .args(["--witness", &WITNESS.to_string(), "--contract", &contract.to_string()])
            .args(["--to", &SINK.to_string(), "--nonce-url", &chain_url])
            .args(["--start-at", &start_at.to_string()])
            .args(["--duration-ms", &run.as_millis().to_string()])
            .args(["--tick-ms", &TICK.as_millis().to_string()])
            .args(["--tx-every-ms", &TX_EVERY.as_millis().to_string()])
            .args(["--request-timeout-ms", &REQUEST_TIMEOUT.as_millis().to_string()])
            .env("LIFELINE_CLIENT_KEY", key.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| eyre::eyre!("starting node tests/js/fallback.mjs: {e}"))?;
        node_clients.push((name, child));
    }
    let mut tasks = Vec::new();
    for (name, provider) in rust_clients {
        let signer = devnet.account(account(name));
        tasks.push((name, tokio::spawn(run_client(provider, signer, ctx.clone()))));
    }
    println!(
        "setup done in {:.1}s: chain {chain_url} (chain id {chain_id}), other chain {}, fork {}, \
         probe contract {contract}, gateway {}; {} faults over {:.0}s",
        started.elapsed().as_secs_f64(),
        forks::rpc_url(&other),
        forks::rpc_url(&fork),
        gateway.http_url(DEVNET_SERVICE),
        plan.len(),
        run.as_secs_f64()
    );
    let applied = apply_schedule(&proxies, &plan, start_at).await;

    // Collect every client's log.
    let mut logs: HashMap<&str, ClientLog> = HashMap::new();
    for (name, task) in tasks {
        logs.insert(name, task.await?);
    }
    for (name, child) in node_clients {
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| eyre::eyre!("{name}: node did not finish"))??;
        let line = String::from_utf8_lossy(&output.stdout);
        let log: ClientLog = serde_json::from_str(line.trim()).map_err(|e| {
            eyre::eyre!(
                "{name}: unreadable output ({e}); stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        logs.insert(name, log);
    }
    println!(
        "run done at {:.1}s; {GRACE:?} grace for the transfers",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(GRACE).await;
    funder.abort();
    timeline.abort();
    viewer.abort();
    let views = std::mem::take(&mut *views.lock().unwrap_or_else(|p| p.into_inner()));
    // Fill the truth up to the end (the last blocks may not have been sampled).
    let head = anvil.get_block_number().await?;
    record_blocks(&anvil, &truth, head).await?;

    // Judge.
    let truth = std::mem::take(&mut *truth.lock().unwrap_or_else(|p| p.into_inner()));
    let judge = Judge::new(truth);
    let mut results: Vec<(&str, Figures)> = Vec::new();
    let mut bad: Vec<Bad> = Vec::new();
    for (name, _) in CLIENTS {
        let Some(log) = logs.get(name) else { eyre::bail!("{name}: no log") };
        let figures = judge.client(name, log, &anvil, &mut bad).await?;
        results.push((name, figures));
    }

    // Report.
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for fault in &applied {
        *kinds.entry(fault.fault.kind()).or_default() += 1;
    }
    let figure = |name: &str| -> Value {
        results.iter().find(|(n, _)| *n == name).map_or(Value::Null, |(_, f)| f.json())
    };
    let report = json!({
        "faults": applied.len(),
        "fault_kinds": kinds,
        "seed": seed,
        "clients": {
            "lifeline_transport": figure("lifeline_transport"),
            "lifeline_gateway": figure("lifeline_gateway"),
            "alloy_fallback": figure("alloy_fallback"),
            "viem_fallback": figure("viem_fallback"),
            "ethers_fallback": figure("ethers_fallback"),
            "single": figure("single"),
        },
        "lifeline_transport_consensus": figure("lifeline_transport_consensus"),
    });
    print_schedule(&applied, start_at);
    print_table(&results);
    print_bad(&bad, &applied, start_at, &urls, &views);
    for (name, _) in CLIENTS {
        if let Some(log) = logs.get(name)
            && !log.error_samples.is_empty()
        {
            let samples: Vec<String> = log.error_samples.iter().map(|e| short(e, &urls)).collect();
            println!("  {name} error samples: {samples:?}");
        }
    }
    write_report(&toolchain, "faultmix", &report)?;
    println!("elapsed {:.1}s", started.elapsed().as_secs_f64());

    gateway.shutdown().await;
    drop(proxies);
    drop(other);
    drop(fork);
    devnet.shutdown().await;
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn http_provider(url: &str) -> eyre::Result<DynProvider> {
    Ok(ProviderBuilder::new().connect_http(url.parse()?).erased())
}

/// Deploys the probe contract from anvil's account 0; returns its address.
async fn deploy_probe(devnet: &Devnet, url: &str) -> eyre::Result<Address> {
    let deployer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(devnet.account(0)))
        .connect_http(url.parse()?);
    Ok(block_probe::deploy(&deployer).await?)
}

/// Gives the witness 1 wei per block, from `signer`, directly on the chain.
async fn fund_witness(url: String, signer: PrivateKeySigner) {
    let Ok(url) = url.parse() else { return };
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url);
    let mut last = None;
    loop {
        if let Ok(head) = provider.get_block_number().await
            && last != Some(head)
        {
            last = Some(head);
            let tx = TransactionRequest::default().to(WITNESS).value(U256::from(1));
            if let Err(e) = provider.send_transaction(tx).await {
                eprintln!("witness funding failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The truth: anvil's head over time, every block's hash and the witness balance at it.

#[derive(Debug, Default)]
struct Truth {
    /// (unix ms the sample arrived, head).
    timeline: Vec<(u64, u64)>,
    hashes: HashMap<u64, B256>,
    balances: BTreeMap<u64, U256>,
    /// The highest block recorded.
    recorded: Option<u64>,
}

async fn follow_chain(anvil: DynProvider, truth: Arc<Mutex<Truth>>) {
    loop {
        if let Ok(head) = anvil.get_block_number().await {
            let at = unix_ms();
            truth.lock().unwrap_or_else(|p| p.into_inner()).timeline.push((at, head));
            if let Err(e) = record_blocks(&anvil, &truth, head).await {
                eprintln!("judge: reading block {head}: {e}");
            }
        }
        tokio::time::sleep(TIMELINE_EVERY).await;
    }
}

/// Records hash and witness balance of every block up to `head` not recorded yet (from the
/// first head seen).
async fn record_blocks(anvil: &DynProvider, truth: &Mutex<Truth>, head: u64) -> eyre::Result<()> {
    let from = {
        let truth = truth.lock().unwrap_or_else(|p| p.into_inner());
        truth.recorded.map_or(head, |r| r + 1)
    };
    for number in from..=head {
        let block = anvil
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?
            .ok_or_else(|| eyre::eyre!("anvil has no block {number}"))?;
        let balance = anvil.get_balance(WITNESS).block_id(BlockId::number(number)).await?;
        let mut truth = truth.lock().unwrap_or_else(|p| p.into_inner());
        truth.hashes.insert(number, block.header.hash);
        truth.balances.insert(number, balance);
        truth.recorded = Some(number);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The fault schedule.

/// One planned fault.
#[derive(Debug, Clone)]
struct Planned {
    route: usize,
    fault: Fault,
    at_ms: u64,
    dur_ms: u64,
}

/// A fault as applied: when it was set and cleared (unix ms).
#[derive(Debug, Clone)]
struct Applied {
    route: usize,
    fault: Fault,
    set_ms: u64,
    clear_ms: u64,
}

/// SplitMix64: a seeded generator with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// 5 faults of each kind, shuffled, dealt to two lanes; each lane runs its faults one after the
/// other, and a fault never takes a route the other lane holds at an overlapping time.
fn schedule(seed: u64, wrong_chain: &Fault, forked: &Fault) -> Vec<Planned> {
    let mut rng = Rng(seed);
    let mut faults = Vec::new();
    for _ in 0..PER_KIND {
        faults.push(Fault::Down);
        faults.push(Fault::Hang);
        faults.push(Fault::Lag(rng.range(3, 10)));
        faults.push(Fault::StalledHead);
        faults.push(Fault::FutureHead(rng.range(5, 20)));
        faults.push(wrong_chain.clone());
        faults.push(forked.clone());
        let status = if rng.next().is_multiple_of(2) { 503 } else { 429 };
        faults.push(Fault::Flaky { every: 3, status });
        faults.push(Fault::Censor);
        faults.push(Fault::DivergentHash);
    }
    for i in (1..faults.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        faults.swap(i, j);
    }
    let mut plan: Vec<Planned> = Vec::new();
    for (lane, start) in LANE_START_MS.iter().enumerate() {
        let mut at = *start;
        for fault in faults.iter().skip(lane).step_by(2) {
            let dur = rng.range(FAULT_MS.0, FAULT_MS.1);
            let busy: Vec<usize> = plan
                .iter()
                .filter(|p| p.at_ms < at + dur && at < p.at_ms + p.dur_ms)
                .map(|p| p.route)
                .collect();
            let free: Vec<usize> = (0..ROUTES).filter(|r| !busy.contains(r)).collect();
            let route = free[(rng.next() % free.len() as u64) as usize];
            plan.push(Planned { route, fault: fault.clone(), at_ms: at, dur_ms: dur });
            at += dur + rng.range(GAP_MS.0, GAP_MS.1);
        }
    }
    plan.sort_by_key(|p| p.at_ms);
    plan
}

/// Sets and clears every planned fault on time (offsets from `start_at`, unix ms); returns
/// what was applied, when.
async fn apply_schedule(proxies: &[FaultProxy], plan: &[Planned], start_at: u64) -> Vec<Applied> {
    // (time, set?, index in plan); clears before sets at the same instant.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        events.push((start_at + p.at_ms, true, i));
        events.push((start_at + p.at_ms + p.dur_ms, false, i));
    }
    events.sort_by_key(|(t, set, _)| (*t, *set));
    let mut applied: Vec<Option<Applied>> = vec![None; plan.len()];
    for (t, set, i) in events {
        let now = unix_ms();
        if t > now {
            tokio::time::sleep(Duration::from_millis(t - now)).await;
        }
        let p = &plan[i];
        if set {
            proxies[p.route].set(p.fault.clone());
            applied[i] = Some(Applied {
                route: p.route,
                fault: p.fault.clone(),
                set_ms: unix_ms(),
                clear_ms: 0,
            });
        } else {
            proxies[p.route].set(Fault::Up);
            if let Some(a) = applied[i].as_mut() {
                a.clear_ms = unix_ms();
            }
        }
    }
    applied.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------------
// The clients' loop (the Rust ones; tests/js/fallback.mjs does the same).

struct Ctx {
    /// anvil directly: the nonce of each transfer (bookkeeping, not measured).
    anvil: DynProvider,
    contract: Address,
    chain_id: u64,
    /// When every client starts, unix ms.
    start_at: u64,
    run: Duration,
}

/// What a client saw (also the shape tests/js/fallback.mjs prints).
#[derive(Debug, Default, Deserialize)]
struct ClientLog {
    reads: Vec<Read>,
    txs: Vec<Sent>,
    #[serde(default)]
    error_samples: Vec<String>,
}

/// One read: method, arrival (unix ms), latency, and the answer's fields or the error.
#[derive(Debug, Clone, Default, Deserialize)]
struct Read {
    m: String,
    t: u64,
    ms: f64,
    /// Block number (eth_blockNumber, latest block).
    n: Option<u64>,
    /// Block hash (latest block).
    h: Option<String>,
    /// Witness balance, decimal.
    b: Option<String>,
    /// eth_call return data, hex.
    d: Option<String>,
    /// The error.
    e: Option<String>,
}

/// One transfer: arrival of the answer, latency, the hash or the error.
#[derive(Debug, Clone, Default, Deserialize)]
struct Sent {
    t: u64,
    ms: f64,
    hash: Option<String>,
    e: Option<String>,
}

async fn run_client(provider: DynProvider, signer: PrivateKeySigner, ctx: Arc<Ctx>) -> ClientLog {
    let deadline = ctx.start_at + ctx.run.as_millis() as u64;
    let wait = ctx.start_at.saturating_sub(unix_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let reads = read_loop(&provider, &ctx, deadline);
    let txs = tx_loop(&provider, &signer, &ctx, deadline);
    let (reads, txs) = tokio::join!(reads, txs);
    let mut samples: Vec<String> = Vec::new();
    let read_errors = reads.iter().filter_map(|r| r.e.as_ref().map(|e| format!("{}: {e}", r.m)));
    let tx_errors =
        txs.iter().filter_map(|t| t.e.as_ref().map(|e| format!("eth_sendRawTransaction: {e}")));
    for e in read_errors.chain(tx_errors) {
        if samples.len() < 8 && !samples.contains(&e) {
            samples.push(e);
        }
    }
    ClientLog { reads, txs, error_samples: samples }
}

async fn read_loop(provider: &DynProvider, ctx: &Ctx, deadline: u64) -> Vec<Read> {
    let mut reads = Vec::new();
    let mut next = ctx.start_at;
    while unix_ms() < deadline {
        for method in ["eth_blockNumber", "eth_getBlockByNumber", "eth_getBalance", "eth_call"] {
            let sent = Instant::now();
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, read_once(provider, ctx, method))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
            let mut read = answer.unwrap_or_else(|e| Read { e: Some(e), ..Default::default() });
            read.m = method.into();
            read.t = unix_ms();
            read.ms = sent.elapsed().as_secs_f64() * 1000.0;
            reads.push(read);
        }
        next = (next + TICK.as_millis() as u64).max(unix_ms());
        tokio::time::sleep(Duration::from_millis(next.min(deadline).saturating_sub(unix_ms())))
            .await;
    }
    reads
}

async fn read_once(provider: &DynProvider, ctx: &Ctx, method: &str) -> Result<Read, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string().chars().take(600).collect::<String>();
    Ok(match method {
        "eth_blockNumber" => {
            let n = provider.get_block_number().await.map_err(|e| text(&e))?;
            Read { n: Some(n), ..Default::default() }
        }
        "eth_getBlockByNumber" => {
            let block = provider
                .get_block_by_number(BlockNumberOrTag::Latest)
                .await
                .map_err(|e| text(&e))?
                .ok_or("eth_getBlockByNumber(latest) returned null")?;
            Read {
                n: Some(block.header.number),
                h: Some(block.header.hash.to_string()),
                ..Default::default()
            }
        }
        "eth_getBalance" => {
            let balance = provider.get_balance(WITNESS).latest().await.map_err(|e| text(&e))?;
            Read { b: Some(balance.to_string()), ..Default::default() }
        }
        _ => {
            let call = TransactionRequest::default().to(ctx.contract);
            let data = provider.call(call).block(BlockId::latest()).await.map_err(|e| text(&e))?;
            Read { d: Some(data.to_string()), ..Default::default() }
        }
    })
}

async fn tx_loop(
    provider: &DynProvider,
    signer: &PrivateKeySigner,
    ctx: &Ctx,
    deadline: u64,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let every = TX_EVERY.as_millis() as u64;
    let mut next = ctx.start_at + every / 2;
    tokio::time::sleep(Duration::from_millis(next.saturating_sub(unix_ms()))).await;
    let mut seq = 0u64;
    while unix_ms() < deadline {
        // The chain's pending nonce (bookkeeping: straight from anvil, not through the client).
        if let Ok(nonce) = ctx.anvil.get_transaction_count(signer.address()).pending().await {
            seq += 1;
            let mut tx = TxEip1559 {
                chain_id: ctx.chain_id,
                nonce,
                gas_limit: GAS_BASE + seq,
                max_fee_per_gas: MAX_FEE,
                max_priority_fee_per_gas: TIP,
                to: TxKind::Call(SINK),
                value: U256::from(1),
                ..Default::default()
            };
            match signer.sign_transaction_sync(&mut tx) {
                Ok(signature) => {
                    let raw = TxEnvelope::from(tx.into_signed(signature)).encoded_2718();
                    let started = Instant::now();
                    let answer =
                        tokio::time::timeout(REQUEST_TIMEOUT, provider.send_raw_transaction(&raw))
                            .await;
                    let t = unix_ms();
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    let (hash, e) = match answer {
                        Ok(Ok(pending)) => (Some(pending.tx_hash().to_string()), None),
                        Ok(Err(e)) => (None, Some(e.to_string().chars().take(600).collect())),
                        Err(_) => (None, Some(format!("no answer within {REQUEST_TIMEOUT:?}"))),
                    };
                    sent.push(Sent { t, ms, hash, e });
                }
                Err(e) => eprintln!("signing failed: {e}"),
            }
        }
        next = (next + every).max(unix_ms());
        tokio::time::sleep(Duration::from_millis(next.min(deadline).saturating_sub(unix_ms())))
            .await;
    }
    sent
}

// ---------------------------------------------------------------------------------------------
// Judging.

struct Judge {
    truth: Truth,
    /// Witness balance -> the last block that had it.
    block_of_balance: HashMap<U256, u64>,
    lowest_balance: Option<(u64, U256)>,
}

/// What one answer was.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Good,
    Stale(String),
    Wrong(String),
}

/// Counters of one client.
#[derive(Debug, Default)]
struct Figures {
    requests: u64,
    errors: u64,
    stale: u64,
    wrong: u64,
    tx_submitted: u64,
    tx_lost: u64,
    latencies: Vec<f64>,
}

impl Figures {
    fn p(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        let x = v[((v.len() as f64 - 1.0) * q).round() as usize];
        (x * 10.0).round() / 10.0
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "stale": self.stale,
            "wrong": self.wrong,
            "tx_submitted": self.tx_submitted,
            "tx_lost": self.tx_lost,
            "p50_ms": self.p(0.5),
            "p99_ms": self.p(0.99),
            "unsupported": Vec::<String>::new(),
        })
    }
}

/// A bad outcome, for the detailed report.
#[derive(Debug, Clone)]
struct Bad {
    client: &'static str,
    what: &'static str,
    method: String,
    sent_ms: u64,
    at_ms: u64,
    detail: String,
}

impl Judge {
    fn new(truth: Truth) -> Self {
        let mut block_of_balance = HashMap::new();
        for (block, balance) in &truth.balances {
            block_of_balance.insert(*balance, *block);
        }
        let lowest_balance = truth.balances.iter().next().map(|(b, v)| (*b, *v));
        Self { truth, block_of_balance, lowest_balance }
    }

    /// anvil's head at `t` (the last sample that arrived by then: a lower bound, which favours
    /// the client).
    fn head_at(&self, t: u64) -> u64 {
        let timeline = &self.truth.timeline;
        let i = timeline.partition_point(|(at, _)| *at <= t);
        if i == 0 { timeline.first().map_or(0, |(_, h)| *h) } else { timeline[i - 1].1 }
    }

    fn stale_check(&self, block: u64, t: u64, what: &str) -> Verdict {
        let head = self.head_at(t);
        if block > head + MAX_LAG {
            Verdict::Wrong(format!(
                "{what} {block} is {} blocks above the true head {head}",
                block - head
            ))
        } else if head > block + MAX_LAG {
            Verdict::Stale(format!("{what} {block}, true head {head} ({} behind)", head - block))
        } else {
            Verdict::Good
        }
    }

    fn hash_check(&self, number: u64, hash: &str, what: &str) -> Option<Verdict> {
        let ours = self.truth.hashes.get(&number);
        let theirs: Option<B256> = hash.parse().ok();
        match (ours, theirs) {
            (Some(a), Some(b)) if *a == b => None,
            (Some(a), _) => {
                Some(Verdict::Wrong(format!("{what} at {number} is {hash}, the chain's is {a}")))
            }
            (None, _) => Some(Verdict::Wrong(format!("{what}: the chain has no block {number}"))),
        }
    }

    fn read(&self, read: &Read) -> Verdict {
        let t = read.t;
        match read.m.as_str() {
            "eth_blockNumber" => self.stale_check(read.n.unwrap_or(0), t, "head"),
            "eth_getBlockByNumber" => {
                let n = read.n.unwrap_or(0);
                let head = self.head_at(t);
                if n > head + MAX_LAG {
                    return Verdict::Wrong(format!(
                        "block {n}: {} above the true head {head}",
                        n - head
                    ));
                }
                if let Some(v) = self.hash_check(n, read.h.as_deref().unwrap_or(""), "block hash") {
                    return v;
                }
                self.stale_check(n, t, "block")
            }
            "eth_getBalance" => {
                let Some(balance) = read.b.as_deref().and_then(|b| b.parse::<U256>().ok()) else {
                    return Verdict::Wrong(format!("unreadable balance {:?}", read.b));
                };
                let block = match self.block_of_balance.get(&balance) {
                    Some(block) => *block,
                    None => match self.lowest_balance {
                        // Older than the judge's first block: stale, by at least that much.
                        Some((first, lowest)) if balance < lowest => first.saturating_sub(1),
                        _ => {
                            return Verdict::Wrong(format!(
                                "witness balance {balance} is no block's"
                            ));
                        }
                    },
                };
                self.stale_check(block, t, &format!("balance {balance} = block"))
            }
            _ => {
                let data = read
                    .d
                    .as_deref()
                    .and_then(|d| alloy::primitives::hex::decode(d).ok())
                    .unwrap_or_default();
                let Some((number, hash)) = block_probe::read(&data) else {
                    return Verdict::Wrong(format!(
                        "eth_call returned {} bytes ({:?}), not the probe's 64",
                        data.len(),
                        read.d
                    ));
                };
                let hash = hash.to_string();
                if let Some(v) = self.hash_check(number.saturating_sub(1), &hash, "blockhash") {
                    return v;
                }
                self.stale_check(number, t, "eth_call block.number")
            }
        }
    }

    async fn client(
        &self,
        name: &'static str,
        log: &ClientLog,
        anvil: &DynProvider,
        bad: &mut Vec<Bad>,
    ) -> eyre::Result<Figures> {
        let mut f = Figures::default();
        for read in &log.reads {
            f.requests += 1;
            f.latencies.push(read.ms);
            let sent_ms = read.t.saturating_sub(read.ms as u64);
            let mut push = |what, detail: String| {
                bad.push(Bad {
                    client: name,
                    what,
                    method: read.m.clone(),
                    sent_ms,
                    at_ms: read.t,
                    detail,
                });
            };
            if let Some(e) = &read.e {
                f.errors += 1;
                push("error", e.clone());
                continue;
            }
            match self.read(read) {
                Verdict::Good => {}
                Verdict::Stale(why) => {
                    f.stale += 1;
                    push("stale", why);
                }
                Verdict::Wrong(why) => {
                    f.wrong += 1;
                    push("wrong", why);
                }
            }
        }
        for tx in &log.txs {
            f.requests += 1;
            f.latencies.push(tx.ms);
            let sent_ms = tx.t.saturating_sub(tx.ms as u64);
            let mut push = |what, detail: String| {
                bad.push(Bad {
                    client: name,
                    what,
                    method: "eth_sendRawTransaction".into(),
                    sent_ms,
                    at_ms: tx.t,
                    detail,
                });
            };
            if let Some(e) = &tx.e {
                f.errors += 1;
                push("error", e.clone());
                continue;
            }
            let Some(hash) = tx.hash.as_deref().and_then(|h| h.parse::<B256>().ok()) else {
                f.errors += 1;
                push("error", format!("unreadable hash {:?}", tx.hash));
                continue;
            };
            f.tx_submitted += 1;
            if anvil.get_transaction_receipt(hash).await?.is_none() {
                f.tx_lost += 1;
                push("lost", format!("{hash} not in the chain"));
            }
        }
        Ok(f)
    }
}

// ---------------------------------------------------------------------------------------------
// What the Lifeline clients think of their routes.

/// Reads a Lifeline client's view of its routes.
type RoutesOf = Box<dyn Fn() -> Vec<RouteReport> + Send + Sync>;
/// Per client: (unix ms, the routes in rank order, each with its head and why it is skipped),
/// recorded when it changes.
type Views = HashMap<&'static str, Vec<(u64, String)>>;

/// Every 100 ms, records how each Lifeline client sees its routes (when that changed).
async fn watch_routes(
    watched: Vec<(&'static str, RoutesOf)>,
    urls: Vec<String>,
    views: Arc<Mutex<Views>>,
) {
    loop {
        let at = unix_ms();
        for (name, routes) in &watched {
            let text = routes()
                .iter()
                .map(|r| {
                    let state = match (&r.skip, r.breaker_open) {
                        (_, true) => "breaker open".to_string(),
                        (Some(skip), _) => skip.to_string(),
                        (None, _) => "fresh".to_string(),
                    };
                    let head = r.head.map_or_else(|| "-".into(), |h| h.to_string());
                    format!("{} {head} {state}", short(r.url.as_str(), &urls))
                })
                .collect::<Vec<_>>()
                .join(" | ");
            let mut views = views.lock().unwrap_or_else(|p| p.into_inner());
            let mine = views.entry(name).or_default();
            if mine.last().is_none_or(|(_, last)| *last != text) {
                mine.push((at, text));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Printing.

fn label(fault: &Fault) -> String {
    match fault {
        Fault::Lag(n) => format!("lag({n})"),
        Fault::FutureHead(n) => format!("future_head({n})"),
        Fault::Flaky { every, status } => format!("flaky({status} every {every})"),
        other => other.kind().to_string(),
    }
}

fn print_schedule(applied: &[Applied], start_at: u64) {
    println!("\nfaults (route: kind, seconds from the start):");
    let mut line = String::new();
    for (i, a) in applied.iter().enumerate() {
        let s = |t: u64| t.saturating_sub(start_at) as f64 / 1000.0;
        line.push_str(&format!(
            "  #{}: {} {:.1}-{:.1}",
            a.route,
            label(&a.fault),
            s(a.set_ms),
            s(a.clear_ms)
        ));
        if i % 4 == 3 {
            println!("{line}");
            line.clear();
        }
    }
    if !line.is_empty() {
        println!("{line}");
    }
}

fn print_table(results: &[(&str, Figures)]) {
    println!(
        "\n{:<30} {:>8} {:>7} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "client", "requests", "errors", "stale", "wrong", "tx", "tx_lost", "p50_ms", "p99_ms"
    );
    for (name, f) in results {
        println!(
            "{:<30} {:>8} {:>7} {:>6} {:>6} {:>6} {:>8} {:>8.1} {:>8.1}",
            name,
            f.requests,
            f.errors,
            f.stale,
            f.wrong,
            f.tx_submitted,
            f.tx_lost,
            f.p(0.5),
            f.p(0.99)
        );
    }
}

/// Faults on at any time in `from..=to` (unix ms).
fn active(applied: &[Applied], from: u64, to: u64) -> Vec<&Applied> {
    applied.iter().filter(|a| a.set_ms <= to && from <= a.clear_ms).collect()
}

/// `text` with every route URL replaced by `#<index>`, and digit runs by `N` (for grouping).
fn short(text: &str, urls: &[String]) -> String {
    let mut text = text.to_string();
    for (i, url) in urls.iter().enumerate() {
        text = text.replace(&format!("{url}/"), &format!("#{i}")).replace(url, &format!("#{i}"));
    }
    text
}

/// `text` with numbers and hashes (not route indexes) replaced by `N`.
fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut run = false;
    let mut prev = ' ';
    for c in text.chars() {
        if run && (c.is_ascii_hexdigit() || c == 'x') {
            prev = c;
            continue;
        }
        if c.is_ascii_digit() && prev != '#' {
            run = true;
            out.push('N');
        } else {
            run = false;
            out.push(c);
        }
        prev = c;
    }
    out
}

fn print_bad(bad: &[Bad], applied: &[Applied], start_at: u64, urls: &[String], views: &Views) {
    let s = |t: u64| t.saturating_sub(start_at) as f64 / 1000.0;
    println!(
        "\nbad outcomes by the faults on while the request ran (a request may count several):"
    );
    for (client, _) in CLIENTS {
        let mine: Vec<&Bad> = bad.iter().filter(|b| b.client == client).collect();
        if mine.is_empty() {
            continue;
        }
        let mut by: BTreeMap<(&str, String), u64> = BTreeMap::new();
        for b in &mine {
            // A transfer is lost by what the routes did while it was sent.
            let to = if b.what == "lost" { b.at_ms + 500 } else { b.at_ms };
            let on = active(applied, b.sent_ms, to);
            if on.is_empty() {
                *by.entry((b.what, "none".into())).or_default() += 1;
            }
            for a in on {
                *by.entry((b.what, a.fault.kind().to_string())).or_default() += 1;
            }
        }
        let text: Vec<String> = by.iter().map(|((w, k), n)| format!("{w}/{k} {n}")).collect();
        println!("  {client}: {}", text.join(", "));
    }
    // Lifeline's, one line per run of the same outcome (same client, kind and reason, less
    // than 2 s apart).
    let mut lifeline: Vec<&Bad> = bad.iter().filter(|b| b.client.starts_with("lifeline")).collect();
    if lifeline.is_empty() {
        println!("\nLifeline's clients: no bad outcome.");
        return;
    }
    lifeline.sort_by_key(|b| (b.client, b.sent_ms));
    println!(
        "\nLifeline's bad outcomes (route #i = proxy i; faults on while the request ran, or the last one before):"
    );
    let verbose = std::env::var_os("LIFELINE_FAULTMIX_VERBOSE").is_some();
    let mut i = 0;
    while i < lifeline.len() {
        let first = lifeline[i];
        let key = shape(&short(&first.detail, urls));
        let mut j = i + 1;
        let mut methods = vec![first.method.as_str()];
        while !verbose
            && j < lifeline.len()
            && lifeline[j].client == first.client
            && lifeline[j].what == first.what
            && shape(&short(&lifeline[j].detail, urls)) == key
            && lifeline[j].sent_ms < lifeline[j - 1].at_ms + 2_000
        {
            if !methods.contains(&lifeline[j].method.as_str()) {
                methods.push(&lifeline[j].method);
            }
            j += 1;
        }
        let last = lifeline[j - 1];
        let on = active(applied, first.sent_ms, last.at_ms);
        let faults: Vec<String> = if on.is_empty() {
            applied
                .iter()
                .filter(|a| a.clear_ms <= first.sent_ms)
                .max_by_key(|a| a.clear_ms)
                .map(|a| {
                    format!(
                        "none on; last: #{} {} {:.1}-{:.1}s",
                        a.route,
                        label(&a.fault),
                        s(a.set_ms),
                        s(a.clear_ms)
                    )
                })
                .into_iter()
                .collect()
        } else {
            on.iter()
                .map(|a| {
                    format!(
                        "#{} {} {:.1}-{:.1}s",
                        a.route,
                        label(&a.fault),
                        s(a.set_ms),
                        s(a.clear_ms)
                    )
                })
                .collect()
        };
        let view = views
            .get(first.client)
            .and_then(|v| {
                let k = v.partition_point(|(t, _)| *t <= first.sent_ms);
                k.checked_sub(1).map(|k| &v[k])
            })
            .map_or_else(|| "-".to_string(), |(t, text)| format!("{text} (as of {:.1}s)", s(*t)));
        println!(
            "  {} {:.1}-{:.1}s {} x{} ({}): {}\n      faults: {}\n      routes: {}",
            first.client,
            s(first.sent_ms),
            s(last.at_ms),
            first.what,
            j - i,
            methods.join(", "),
            short(&first.detail, urls),
            faults.join("; "),
            view
        );
        i = j;
    }
}
