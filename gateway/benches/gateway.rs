//! `make bench-gateway`: what the gateway costs, and whether subscriptions survive failover.
//! Writes `target/bench/gateway.json` (every top-level value a number) and prints a summary.
//!
//! Everything runs in this process on 127.0.0.1 and shares the machine:
//!
//! ```text
//!  client (hyper HTTP/1.1, keep-alive) --> direct       synthetic JSON-RPC upstream (hyper)
//!                                      --> gateway      /rpc/eth-devnet/rpc --> synthetic
//!                                      --> plain proxy  (hyper + hyper-util legacy client,
//!                                                        no logic: the yardstick) --> synthetic
//! ```
//!
//! 1. Setup: a devnet with no endpoints (anvil + registry, an empty route set), so the gateway
//!    routes through its bootstrap route, the synthetic upstream (`eth_blockNumber` -> `0x1234`,
//!    `eth_getBalance` -> 1 ether, ids echoed, batches answered as batches). Hedging is off
//!    (`transport.hedge_after_ms = 0`): with one route there is nothing to hedge to.
//! 2. Throughput: 64 workers, one keep-alive connection each, sequential POSTs (50/50
//!    `eth_blockNumber` / `eth_getBalance`), 1 s warm-up then 5 s counted, per target; three
//!    rounds with the targets in rotating order, median per target. `direct_rps`,
//!    `gateway_rps`, `plain_proxy_rps`, `rps_ratio` (gateway / direct),
//!    `gateway_vs_plain_proxy` (gateway / plain proxy, goal >= 0.8), `gateway_errors` (non-200
//!    or JSON-RPC error answers, warm-up included).
//! 3. Latency: one client, sequential, 3,000 requests per target interleaved (targets in
//!    rotating order, methods alternating): `direct_p50_us`, `gateway_p50_us`, `added_p50_us`
//!    (goal <= 150), `added_p99_us`, and `by_method` (p50 per method). The same loop counts
//!    heap allocations per request, client and upstream included (`*_allocs_per_request`: the
//!    gateway's own are its figure minus the direct one).
//! 4. Memory: `baseline_rss_mb` (peak RSS before the gateway starts) and
//!    `gateway_peak_rss_mb` (peak RSS of the whole process right after the 64-client gateway
//!    load: bench client, upstream and proxy included).
//! 5. WebSocket failover: a devnet with 1 s blocks and three fault proxies registered as
//!    endpoints, the route set filled by real attestations, a gateway following it, and a log
//!    emitter (one Tick log every 250 ms, several per block). One WebSocket subscribes to `logs`
//!    (the emitter's address and topic) and `newHeads`; meanwhile the gateway's best route is
//!    taken down for 2 s at a time, never two at once. The heads expected are every block from
//!    the first head received to the last head of the window (hashes from anvil directly); the
//!    logs expected are anvil's `eth_getLogs` over that range. `ws_failovers`,
//!    `heads_expected`, `heads_missed`, `logs_expected`, `logs_missed`, `duplicates` (a head or
//!    log delivered more than once, `removed: true` re-deliveries not counted). What was missed
//!    is printed in detail.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::B256,
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    client::conn::http1::SendRequest,
    header::{CONTENT_TYPE, HOST},
    service::service_fn,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use lifeline_devnet::{
    DEVNET_SERVICE, Devnet, DevnetOptions, Fault, LogEmitter, Toolchain, write_report,
};
use lifeline_gateway::{Gateway, GatewayConfig};
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

/// Concurrent clients of the throughput test, one connection each.
const WORKERS: usize = 64;
/// Not counted, per target and round.
const WARMUP: Duration = Duration::from_secs(1);
/// Counted, per target and round.
const MEASURE: Duration = Duration::from_secs(5);
/// Throughput rounds (targets in rotating order); the median is reported.
const ROUNDS: usize = 3;
/// Sequential requests per target in the latency test.
const LATENCY_REQUESTS: usize = 3_000;
/// Sequential requests per target before the latency test.
const LATENCY_WARMUP: usize = 200;
/// Route kills in the WebSocket section.
const KILLS: usize = 12;
/// How long a killed route stays down.
const DOWN: Duration = Duration::from_secs(2);
/// Between a route coming back and the next kill.
const BETWEEN_KILLS: Duration = Duration::from_millis(1_500);
/// The log emitter's period (1 s blocks: several logs per block).
const EMIT_PERIOD: Duration = Duration::from_millis(250);
/// The account whose balance is asked for.
const BALANCE_OF: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// What the synthetic upstream answers.
const BLOCK_NUMBER: &str = "0x1234";
const BALANCE: &str = "0xde0b6b3a7640000";

/// Counts heap allocations while [`COUNTING`] is set (one relaxed load per allocation
/// otherwise).
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

impl CountingAllocator {
    fn count(&self) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let started = Instant::now();
    let toolchain = Toolchain::locate()?;

    // 1. Setup.
    let devnet =
        Devnet::start(&toolchain, &DevnetOptions { endpoints: 0, ..Default::default() }).await?;
    let upstream = Server::start(synthetic).await?;
    let upstream_url = format!("http://{}/", upstream.addr);
    let proxy = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build(connector);
        let to = upstream_url.clone();
        Server::start(move |request| plain_proxy(client.clone(), to.clone(), request)).await?
    };
    let baseline_rss_mb = peak_rss_mb();
    let config = GatewayConfig::parse(&format!(
        r#"
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        [registry]
        rpc_url = "{rpc}"
        address = "{registry}"
        [transport]
        hedge_after_ms = 0
        [[service]]
        name = "{DEVNET_SERVICE}"
        bootstrap = ["{upstream_url}"]
        "#,
        rpc = devnet.rpc_url(),
        registry = devnet.registry(),
    ))?;
    let gateway = Gateway::start(config).await?;
    if let Err(e) = gateway.services()[0].health() {
        eyre::bail!("gateway not usable: {e}");
    }
    let targets = [
        Target::new("direct", upstream.addr, "/"),
        Target::new("gateway", gateway.rpc_addr(), &format!("/rpc/{DEVNET_SERVICE}")),
        Target::new("plain_proxy", proxy.addr, "/"),
    ];
    for target in &targets {
        let mut conn = Conn::open(target).await?;
        let (ok, answer) = conn.call(Method::BlockNumber, 1).await?;
        if !ok {
            eyre::bail!("{}: first call failed: {}", target.name, String::from_utf8_lossy(&answer));
        }
    }
    println!(
        "setup done in {:.1}s; gateway {}",
        started.elapsed().as_secs_f64(),
        gateway.rpc_addr()
    );

    // 2. Throughput, targets rotating per round.
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut errors = vec![0u64; targets.len()];
    for round in 0..ROUNDS {
        for k in 0..targets.len() {
            let t = (round + k) % targets.len();
            let (r, e) = throughput(&targets[t]).await;
            println!("  round {} {:<12} {:>9.0} req/s  {e} errors", round + 1, targets[t].name, r);
            rps[t].push(r);
            errors[t] += e;
        }
    }
    let gateway_peak_rss_mb = peak_rss_mb();
    let [direct_rps, gateway_rps, plain_proxy_rps] = [0, 1, 2].map(|t| median(rps[t].clone()));

    // 3. Latency, one client, sequential, on its own thread (as a client process would be).
    let clients: Vec<Target> = targets.to_vec();
    let Latency { samples, errors: latency_errors, allocations } =
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(latency(&clients))
        })
        .await??;
    let [direct_allocs, gateway_allocs, proxy_allocs] =
        [0, 1, 2].map(|t| (allocations[t] as f64 / LATENCY_REQUESTS as f64 * 10.0).round() / 10.0);
    let all = |t: usize| -> Vec<f64> { samples[t].iter().flatten().copied().collect() };
    let (direct_all, gateway_all, proxy_all) = (all(0), all(1), all(2));
    let direct_p50 = percentile(direct_all.clone(), 0.5);
    let gateway_p50 = percentile(gateway_all.clone(), 0.5);
    let direct_p99 = percentile(direct_all, 0.99);
    let gateway_p99 = percentile(gateway_all, 0.99);
    let proxy_p50 = percentile(proxy_all, 0.5);
    let mut by_method = serde_json::Map::new();
    for method in [Method::BlockNumber, Method::GetBalance] {
        let m = method as usize;
        let d = percentile(samples[0][m].clone(), 0.5);
        let g = percentile(samples[1][m].clone(), 0.5);
        by_method.insert(
            method.name().into(),
            json!({ "direct_p50_us": us(d), "gateway_p50_us": us(g), "added_p50_us": us(g - d) }),
        );
    }
    gateway.shutdown().await;
    drop(proxy);
    drop(upstream);
    devnet.shutdown().await;
    println!("HTTP sections done at {:.1}s", started.elapsed().as_secs_f64());

    // 5. WebSocket failover.
    let ws = ws_failover(&toolchain).await?;

    let report = json!({
        "direct_rps": direct_rps.round(),
        "gateway_rps": gateway_rps.round(),
        "plain_proxy_rps": plain_proxy_rps.round(),
        "rps_ratio": ratio(gateway_rps, direct_rps),
        "gateway_vs_plain_proxy": ratio(gateway_rps, plain_proxy_rps),
        "gateway_errors": errors[1] + latency_errors[1],
        "direct_errors": errors[0] + latency_errors[0],
        "plain_proxy_errors": errors[2] + latency_errors[2],
        "workers": WORKERS,
        "rounds": ROUNDS,
        "measure_s": MEASURE.as_secs(),
        "direct_p50_us": us(direct_p50),
        "gateway_p50_us": us(gateway_p50),
        "plain_proxy_p50_us": us(proxy_p50),
        "added_p50_us": us(gateway_p50 - direct_p50),
        "added_p99_us": us(gateway_p99 - direct_p99),
        "direct_p99_us": us(direct_p99),
        "gateway_p99_us": us(gateway_p99),
        "latency_requests": LATENCY_REQUESTS,
        "by_method": by_method,
        "direct_allocs_per_request": direct_allocs,
        "gateway_allocs_per_request": gateway_allocs,
        "plain_proxy_allocs_per_request": proxy_allocs,
        "baseline_rss_mb": baseline_rss_mb,
        "gateway_peak_rss_mb": gateway_peak_rss_mb,
        "ws_failovers": ws.kills,
        "heads_expected": ws.heads_expected,
        "heads_missed": ws.heads_missed,
        "logs_expected": ws.logs_expected,
        "logs_missed": ws.logs_missed,
        "duplicates": ws.duplicates,
        "elapsed_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    write_report(&toolchain, "gateway", &report)?;
    println!(
        "\ngateway: {gateway_rps:.0} req/s vs direct {direct_rps:.0} ({:.2}x), plain proxy \
         {plain_proxy_rps:.0} (gateway/proxy {:.2}, goal >= 0.8); {} errors",
        ratio(gateway_rps, direct_rps),
        ratio(gateway_rps, plain_proxy_rps),
        errors[1] + latency_errors[1],
    );
    println!(
        "latency: p50 direct {:.0} us, gateway {:.0} us, added {:.0} us (goal <= 150); added p99 {:.0} us",
        direct_p50,
        gateway_p50,
        gateway_p50 - direct_p50,
        gateway_p99 - direct_p99
    );
    println!(
        "memory: peak RSS {baseline_rss_mb} MB before the gateway, {gateway_peak_rss_mb} MB after its load"
    );
    println!(
        "websocket: {} route kills; heads {}/{} delivered, logs {}/{} delivered, {} duplicates",
        ws.kills,
        ws.heads_expected - ws.heads_missed,
        ws.heads_expected,
        ws.logs_expected - ws.logs_missed,
        ws.logs_expected,
        ws.duplicates
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Servers: the synthetic upstream and the plain proxy.

/// An HTTP/1.1 server on 127.0.0.1 (free port); dropping it stops it and its connections.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    async fn start<F, Fut>(handler: F) -> eyre::Result<Self>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Connection tasks live in the set: aborting the server drops (aborts) them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                while connections.try_join_next().is_some() {}
                let handler = handler.clone();
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service_fn(handler))
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One JSON-RPC request as the synthetic upstream reads it (params ignored).
#[derive(Deserialize)]
struct RpcRequest<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: &'a str,
}

fn synthetic_result(method: &str) -> String {
    match method {
        "eth_blockNumber" => format!("\"{BLOCK_NUMBER}\""),
        "eth_getBalance" => format!("\"{BALANCE}\""),
        "eth_chainId" => "\"0x7a69\"".into(),
        "eth_getBlockByNumber" => json!({
            "number": BLOCK_NUMBER,
            "hash": format!("0x{}", "12".repeat(32)),
            "parentHash": format!("0x{}", "11".repeat(32)),
            "timestamp": "0x65000000",
            "gasLimit": "0x1c9c380",
            "gasUsed": "0x0",
            "miner": "0x0000000000000000000000000000000000000000",
            "transactions": [],
        })
        .to_string(),
        _ => "\"0x0\"".into(),
    }
}

fn synthetic_answer(request: &RpcRequest<'_>) -> String {
    let id = request.id.map_or("null", RawValue::get);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#, synthetic_result(request.method))
}

/// The synthetic upstream: fixed answers, ids echoed, batches answered as batches.
async fn synthetic(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        match serde_json::from_slice::<Vec<RpcRequest<'_>>>(&body) {
            Ok(batch) => {
                format!("[{}]", batch.iter().map(synthetic_answer).collect::<Vec<_>>().join(","))
            }
            Err(_) => PARSE_ERROR.into(),
        }
    } else {
        match serde_json::from_slice::<RpcRequest<'_>>(&body) {
            Ok(single) => synthetic_answer(&single),
            Err(_) => PARSE_ERROR.into(),
        }
    };
    Ok(json_response(StatusCode::OK, Bytes::from(text)))
}

const PARSE_ERROR: &str =
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#;

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, "application/json".parse().expect("valid"));
    response
}

/// The yardstick: forwards the body to the upstream and returns its answer, nothing else.
async fn plain_proxy(
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let forward = Request::post(upstream)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("valid request");
    let answer = match client.request(forward).await {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Ok(body) => json_response(status, body.to_bytes()),
                Err(_) => json_response(StatusCode::BAD_GATEWAY, Bytes::new()),
            }
        }
        Err(_) => json_response(StatusCode::BAD_GATEWAY, Bytes::new()),
    };
    Ok(answer)
}

// ---------------------------------------------------------------------------------------------
// The client.

#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: String,
}

impl Target {
    fn new(name: &'static str, addr: SocketAddr, path: &str) -> Self {
        Self { name, addr, path: path.to_string() }
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    BlockNumber = 0,
    GetBalance = 1,
}

impl Method {
    fn of(i: usize) -> Self {
        if i.is_multiple_of(2) { Self::BlockNumber } else { Self::GetBalance }
    }

    fn name(self) -> &'static str {
        match self {
            Self::BlockNumber => "eth_blockNumber",
            Self::GetBalance => "eth_getBalance",
        }
    }

    fn body(self, id: u64) -> Bytes {
        Bytes::from(match self {
            Self::BlockNumber => {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_blockNumber","params":[]}}"#)
            }
            Self::GetBalance => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_getBalance","params":["{BALANCE_OF}","latest"]}}"#
            ),
        })
    }

    fn expected(self) -> &'static [u8] {
        match self {
            Self::BlockNumber => BLOCK_NUMBER.as_bytes(),
            Self::GetBalance => BALANCE.as_bytes(),
        }
    }
}

/// One HTTP/1.1 keep-alive connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    path: String,
    task: JoinHandle<()>,
}

impl Conn {
    async fn open(target: &Target) -> eyre::Result<Self> {
        let stream = tokio::net::TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, host: target.addr.to_string(), path: target.path.clone(), task })
    }

    /// One call; `ok` when HTTP 200 and the expected JSON-RPC result came back.
    async fn call(&mut self, method: Method, id: u64) -> eyre::Result<(bool, Bytes)> {
        self.sender.ready().await?;
        let request = Request::post(self.path.as_str())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(method.body(id)))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let ok = status == StatusCode::OK
            && contains(&body, b"\"result\"")
            && contains(&body, method.expected())
            && !contains(&body, b"\"error\"");
        Ok((ok, body))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the latency test measured, per target.
struct Latency {
    /// Microseconds, per method.
    samples: Vec<[Vec<f64>; 2]>,
    errors: Vec<u64>,
    allocations: Vec<u64>,
}

/// One client, sequential: [`LATENCY_REQUESTS`] per target, targets in rotating order,
/// methods alternating.
async fn latency(targets: &[Target]) -> eyre::Result<Latency> {
    let mut conns = Vec::new();
    for target in targets {
        conns.push(Conn::open(target).await?);
    }
    let mut samples: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; targets.len()];
    let mut errors = vec![0u64; targets.len()];
    let mut allocations = vec![0u64; targets.len()];
    for i in 0..LATENCY_WARMUP {
        for conn in &mut conns {
            conn.call(Method::of(i), i as u64).await?;
        }
    }
    COUNTING.store(true, Ordering::Relaxed);
    for i in 0..LATENCY_REQUESTS {
        let method = Method::of(i);
        // Rotate which target goes first so none always follows the same one.
        for k in 0..targets.len() {
            let t = (i / 2 + k) % targets.len();
            let allocated = ALLOCATIONS.load(Ordering::Relaxed);
            let sent = Instant::now();
            let (ok, _) = conns[t].call(method, i as u64).await?;
            samples[t][method as usize].push(sent.elapsed().as_secs_f64() * 1e6);
            allocations[t] += ALLOCATIONS.load(Ordering::Relaxed) - allocated;
            if !ok {
                errors[t] += 1;
            }
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    Ok(Latency { samples, errors, allocations })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// 64 workers against one target: successful answers per second over [`MEASURE`] after
/// [`WARMUP`], and the errors seen (warm-up included).
async fn throughput(target: &Target) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let (done, errors, stop) = (done.clone(), errors.clone(), stop.clone());
        let target = Target::new(target.name, target.addr, &target.path);
        workers.spawn(async move {
            let mut conn = None;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    match Conn::open(&target).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                i += 1;
                match c.call(Method::of(i), i as u64).await {
                    Ok((true, _)) => done.fetch_add(1, Ordering::Relaxed),
                    Ok((false, _)) => errors.fetch_add(1, Ordering::Relaxed),
                    Err(_) => {
                        conn = None;
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
    }
    tokio::time::sleep(WARMUP).await;
    let from = done.load(Ordering::Relaxed);
    let counting = Instant::now();
    tokio::time::sleep(MEASURE).await;
    let counted = done.load(Ordering::Relaxed) - from;
    let elapsed = counting.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    (counted as f64 / elapsed, errors.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// WebSocket failover.

#[derive(Default)]
struct WsFigures {
    kills: u64,
    heads_expected: u64,
    heads_missed: u64,
    logs_expected: u64,
    logs_missed: u64,
    duplicates: u64,
}

/// One subscription notification as received.
struct Note {
    subscription: String,
    result: Value,
    at: Duration,
}

async fn ws_failover(toolchain: &Toolchain) -> eyre::Result<WsFigures> {
    let devnet = Devnet::start(
        toolchain,
        &DevnetOptions { endpoints: 3, block_time: Some(1.0), ..Default::default() },
    )
    .await?;
    devnet.bootstrap_routes().await?;
    let emitter = LogEmitter::start(&devnet.rpc_url(), devnet.account(8), EMIT_PERIOD).await?;
    let config = GatewayConfig::parse(&format!(
        r#"
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        [registry]
        rpc_url = "{rpc}"
        address = "{registry}"
        [[service]]
        name = "{DEVNET_SERVICE}"
        "#,
        rpc = devnet.rpc_url(),
        registry = devnet.registry(),
    ))?;
    let gateway = Gateway::start(config).await?;
    if !gateway.ready(Duration::from_secs(30)).await {
        eyre::bail!("the gateway did not get the devnet's route set within 30 s");
    }
    let service = gateway.services()[0].clone();
    println!(
        "websocket section: routes {:?}, emitter {}",
        service.transport().routes().iter().map(|r| r.url.to_string()).collect::<Vec<_>>(),
        emitter.address()
    );

    let (socket, _) = tokio_tungstenite::connect_async(gateway.ws_url(DEVNET_SERVICE)).await?;
    let (mut sink, mut stream) = socket.split();
    let t0 = Instant::now();
    let notes: Arc<Mutex<Vec<Note>>> = Arc::default();
    // logs first: the head follower starts with the first subscription, so the logs
    // subscription sees every head the newHeads one does.
    let (emitter_address, topic) = (emitter.address(), emitter.topic());
    let logs_filter = json!({ "address": emitter_address, "topics": [topic] });
    let mut sub_ids = Vec::new();
    for (id, params) in [(1, json!(["logs", logs_filter])), (2, json!(["newHeads"]))] {
        let call =
            json!({ "jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": params });
        sink.send(Message::Text(call.to_string().into())).await?;
        let answer = loop {
            let Some(message) = stream.next().await else { eyre::bail!("WebSocket closed") };
            let Ok(text) = message?.into_text() else { continue };
            let value: Value = serde_json::from_str(&text)?;
            if value["id"] == json!(id) {
                break value;
            }
            record(&notes, value, t0);
        };
        let Some(sub) = answer["result"].as_str() else { eyre::bail!("eth_subscribe: {answer}") };
        sub_ids.push(sub.to_string());
    }
    let (logs_sub, heads_sub) = (sub_ids[0].clone(), sub_ids[1].clone());
    let (stop, mut stopped) = watch::channel(false);
    let reader = {
        let notes = notes.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = stream.next() => message,
                    _ = stopped.changed() => return None,
                };
                match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(value) = serde_json::from_str::<Value>(&text) {
                            record(&notes, value, t0);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Some(format!("closed by the gateway: {frame:?}"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Some(format!("WebSocket error: {e}")),
                    None => return Some("WebSocket ended".into()),
                }
            }
        })
    };

    // Kill the best route, 2 s at a time, never two at once.
    let anvil = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let mut kills = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..KILLS {
        let routes = service.transport().routes();
        let best = routes.iter().find(|r| !r.breaker_open).or(routes.first());
        let Some(best) = best else { eyre::bail!("the gateway has no route") };
        let port = best.url.port();
        let Some((index, proxy)) = devnet
            .proxies()
            .iter()
            .enumerate()
            .find(|(_, p)| p.url().rsplit(':').next().and_then(|s| s.parse().ok()) == port)
        else {
            eyre::bail!("route {} is none of the devnet's proxies", best.url);
        };
        let block = anvil.get_block_number().await?;
        let at = t0.elapsed();
        proxy.set(Fault::Down);
        tokio::time::sleep(DOWN).await;
        proxy.set(Fault::Up);
        let back = anvil.get_block_number().await?;
        kills.push((index, at, block, back));
        tokio::time::sleep(BETWEEN_KILLS).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The window ends at the last head received now; what comes later is not expected.
    let window_end = {
        let notes = notes.lock().unwrap_or_else(|p| p.into_inner());
        notes
            .iter()
            .filter(|n| n.subscription == heads_sub)
            .filter_map(|n| hex_u64(&n.result["number"]))
            .max()
    };
    // Let the logs of the window's last blocks arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(true);
    let closed = reader.await.ok().flatten();
    let _ = sink.close().await;
    let stats = service.transport().stats();
    drop(service);
    gateway.shutdown().await;
    drop(emitter);

    let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|p| p.into_inner()));
    let heads: Vec<&Note> = notes.iter().filter(|n| n.subscription == heads_sub).collect();
    let logs: Vec<&Note> = notes.iter().filter(|n| n.subscription == logs_sub).collect();
    let Some(first) = heads.first().and_then(|n| hex_u64(&n.result["number"])) else {
        eyre::bail!("no head received over the WebSocket ({closed:?})");
    };
    let last = window_end.unwrap_or(first);

    let mut figures = WsFigures { kills: kills.len() as u64, ..Default::default() };
    // Heads: (number, hash) as received.
    let mut head_counts: HashMap<(u64, B256), u64> = HashMap::new();
    let mut head_at: HashMap<u64, Duration> = HashMap::new();
    for note in &heads {
        let (Some(number), Some(hash)) =
            (hex_u64(&note.result["number"]), b256(&note.result["hash"]))
        else {
            continue;
        };
        *head_counts.entry((number, hash)).or_default() += 1;
        head_at.entry(number).or_insert(note.at);
    }
    let mut missed_heads = Vec::new();
    for number in first..=last {
        figures.heads_expected += 1;
        let block = anvil.get_block_by_number(BlockNumberOrTag::Number(number)).await?;
        let Some(block) = block else { eyre::bail!("anvil has no block {number}") };
        if !head_counts.contains_key(&(number, block.header.hash)) {
            missed_heads.push(number);
        }
    }
    figures.heads_missed = missed_heads.len() as u64;
    let head_dups: u64 = head_counts.values().map(|c| c.saturating_sub(1)).sum();

    // Logs: (blockHash, logIndex) as received, removed: true not counted.
    let mut log_counts: HashMap<(B256, u64), u64> = HashMap::new();
    let mut removed = 0u64;
    for note in &logs {
        if note.result["removed"] == json!(true) {
            removed += 1;
            continue;
        }
        let (Some(hash), Some(index)) =
            (b256(&note.result["blockHash"]), hex_u64(&note.result["logIndex"]))
        else {
            continue;
        };
        *log_counts.entry((hash, index)).or_default() += 1;
    }
    let filter = Filter::new()
        .address(emitter_address)
        .event_signature(topic)
        .from_block(first)
        .to_block(last);
    let expected = anvil.get_logs(&filter).await?;
    let mut missed_logs = Vec::new();
    for log in &expected {
        figures.logs_expected += 1;
        let key = (log.block_hash.unwrap_or_default(), log.log_index.unwrap_or_default());
        if !log_counts.contains_key(&key) {
            missed_logs.push((log.block_number.unwrap_or_default(), key.1));
        }
    }
    figures.logs_missed = missed_logs.len() as u64;
    let log_dups: u64 = log_counts.values().map(|c| c.saturating_sub(1)).sum();
    figures.duplicates = head_dups + log_dups;

    println!(
        "websocket: blocks {first}..={last}; {} heads and {} logs received ({removed} removed: true); \
         transport {} requests, {} failovers, {} failures",
        heads.len(),
        logs.len(),
        stats.requests,
        stats.failovers,
        stats.failures
    );
    for (index, at, block, back) in &kills {
        println!(
            "  kill: endpoint {index} down at {:>5.1}s (block {block}) for {DOWN:?}, up at block {back}",
            at.as_secs_f64()
        );
    }
    if let Some(reason) = &closed {
        println!("  the WebSocket did not stay open: {reason}");
    }
    if !missed_heads.is_empty() {
        println!("  missed heads: {missed_heads:?}");
    }
    if !missed_logs.is_empty() {
        let mut by_block: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for (block, index) in &missed_logs {
            by_block.entry(*block).or_default().push(*index);
        }
        println!("  missed logs (block: log indexes): {by_block:?}");
        for block in by_block.keys() {
            let head = head_at.get(block).map(|t| format!("{:.1}s", t.as_secs_f64()));
            println!("    block {block}: head delivered at {}", head.as_deref().unwrap_or("never"));
        }
    }
    if head_dups + log_dups > 0 {
        let dup_heads: Vec<_> =
            head_counts.iter().filter(|(_, c)| **c > 1).map(|((n, _), c)| (*n, *c)).collect();
        println!("  duplicate heads (number, times): {dup_heads:?}; duplicate logs: {log_dups}");
    }
    devnet.shutdown().await;
    Ok(figures)
}

fn record(notes: &Mutex<Vec<Note>>, value: Value, t0: Instant) {
    if value["method"] != "eth_subscription" {
        return;
    }
    let Some(subscription) = value["params"]["subscription"].as_str() else { return };
    let note = Note {
        subscription: subscription.to_string(),
        result: value["params"]["result"].clone(),
        at: t0.elapsed(),
    };
    notes.lock().unwrap_or_else(|p| p.into_inner()).push(note);
}

fn hex_u64(value: &Value) -> Option<u64> {
    u64::from_str_radix(value.as_str()?.trim_start_matches("0x"), 16).ok()
}

fn b256(value: &Value) -> Option<B256> {
    value.as_str()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Figures.

fn median(values: Vec<f64>) -> f64 {
    percentile(values, 0.5)
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn us(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { (a / b * 1000.0).round() / 1000.0 } else { 0.0 }
}

/// Peak resident set size of this process (VmHWM), MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (kb / 1024.0 * 10.0).round() / 10.0
}
