//! A fault-injecting JSON-RPC proxy: an HTTP server on 127.0.0.1 that forwards to an upstream
//! node (anvil) and misbehaves on command. The devnet puts one in front of the chain per
//! endpoint, so the monitored network is real and every fault is controllable.
//!
//! The proxy also passes WebSocket connections through: an HTTP Upgrade request
//! (`Connection: upgrade`, `Upgrade: websocket`) on any path opens a WebSocket to the upstream
//! (its URL with `http` swapped for `ws`, e.g. anvil's `ws://127.0.0.1:PORT`) and frames are
//! piped both ways (text, binary, ping, pong, close).
//!
//! ```text
//!  client --HTTP POST--> FaultProxy --reqwest POST--> anvil (http://127.0.0.1:PORT)
//!  client --WS upgrade-> FaultProxy --connect_async--> anvil (ws://127.0.0.1:PORT)
//!                          |  every text frame client->upstream counts as a request
//!                          |  Down: upgrades refused, open WebSockets dropped at once
//!                          |  Hang: frames held (both ways) until the fault changes
//!                          |  rewriting faults: requests answered as over HTTP (below),
//!                          '  Lag/StalledHead: notifications held until the reported head has them
//!
//!  WrongChain { upstream } --every request--> a second anvil (another chain id)
//!  Forked { upstream }     --every request--> an anvil forked from the chain (forks.rs)
//! ```
//!
//! Faults bite every method, the way a real misbehaving node would:
//!
//! - [`Fault::Lag`] and [`Fault::StalledHead`] report a head below the chain's, and every call
//!   whose block parameter is `latest`/`pending`/`safe`/`finalized` (or omitted) is answered at
//!   that head: the tag is rewritten to its number before the call is forwarded (state reads,
//!   `eth_call`, `eth_estimateGas`, `eth_getProof`, block reads, `eth_feeHistory`'s newest block,
//!   `eth_getLogs`'s range). Blocks above the reported head do not exist: block reads answer
//!   `null`, state reads the `header not found` error, transactions and receipts in those
//!   blocks `null`.
//! - [`Fault::WrongChain`] and [`Fault::Forked`] forward everything (HTTP and new WebSocket
//!   connections) to another node: real wrong-chain data, real divergent hashes.
//! - [`Fault::Flaky`] fails every Nth HTTP request with a status, [`Fault::Censor`] swallows
//!   `eth_sendRawTransaction` (answering the right hash).
//!
//! The rewriting faults ([`Fault::WrongChainId`], [`Fault::Lag`], [`Fault::FutureHead`],
//! [`Fault::StalledHead`], [`Fault::DivergentHash`], [`Fault::BadProof`], [`Fault::Censor`]) answer
//! the same over HTTP and over WebSocket (`eth_subscribe`/`eth_unsubscribe` pass unchanged). The
//! HTTP-level faults ([`Fault::Slow`], [`Fault::HttpStatus`], [`Fault::RpcError`],
//! [`Fault::Garbage`], [`Fault::Oversized`], [`Fault::Flaky`]) leave WebSocket frames alone.
//! Filters (`eth_newFilter`, `eth_getFilterChanges`) are not rewritten.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, handshake::derive_accept_key, protocol::Role},
};
use tracing::debug;

use crate::{Error, Result};

/// Largest request body the proxy accepts.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Longest a WebSocket upgrade is held under [`Fault::Hang`] before a 504 (as long as the HTTP
/// hang loop in `handle` holds a request).
const MAX_HANG: Duration = Duration::from_secs(60);
/// Longest the proxy waits for the upstream's WebSocket handshake.
const UPSTREAM_WS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often WebSocket notifications held under [`Fault::Lag`]/[`Fault::StalledHead`] are checked
/// against the reported head (besides every frame from the upstream).
const HOLD_RECHECK: Duration = Duration::from_millis(250);
/// The JSON-RPC error code of a node's server errors (geth's `-32000`).
const SERVER_ERROR: i64 = -32000;

/// How a proxy behaves.
///
/// Rewrites apply to HTTP and to requests over WebSocket; see the module docs for what each
/// fault does to WebSocket frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    Up,
    /// Accept the connection and close it without answering (the endpoint is down). WebSocket
    /// upgrades are refused the same way and, when set, every open WebSocket connection through
    /// the proxy is dropped at once (no close frame: clients see the connection fail).
    Down,
    /// Accept and never answer. A WebSocket upgrade is held too; on an open WebSocket connection
    /// no frame is forwarded either way until the fault changes.
    Hang,
    /// Forward after a delay (HTTP only).
    Slow(Duration),
    /// Answer every HTTP request with this status (e.g. 500, 503, 429) and no JSON.
    HttpStatus(u16),
    /// Answer every HTTP request with HTTP 200 and this JSON-RPC error.
    RpcError {
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// Answer HTTP requests with HTTP 200 and a body that is not JSON.
    Garbage,
    /// Answer HTTP requests with a body of this many bytes (spaces, so not JSON either).
    Oversized(usize),
    /// Report a chain id other than the chain's (`eth_chainId`, `net_version`); everything else
    /// still comes from the chain. See [`Fault::WrongChain`] for a node really on another chain.
    WrongChainId(u64),
    /// A node this many blocks behind: `eth_blockNumber` reports the chain's head minus `n`, and
    /// every call at `latest`/`pending`/`safe`/`finalized` (or with the block omitted) is
    /// answered at that head, its tag rewritten to the number before forwarding: state reads
    /// (`eth_getBalance`, `eth_getCode`, `eth_getTransactionCount`, `eth_getStorageAt`,
    /// `eth_getProof`), `eth_call`, `eth_estimateGas`, `eth_createAccessList`, block reads by
    /// number, `eth_feeHistory`'s newest block and `eth_getLogs` (`toBlock` clamped to the head;
    /// `fromBlock` above it answers `[]`). A block above the reported head does not exist: block
    /// reads answer `null`, state reads `-32000 header not found`, `eth_feeHistory`
    /// `request beyond head block`, and transactions, receipts and blocks by hash in such blocks
    /// `null`. Over WebSocket, notifications (`newHeads`, `logs`) are held until the reported
    /// head reaches their block.
    Lag(u64),
    /// Report the head this many blocks ahead (a fabricated future block): `eth_blockNumber`
    /// and `eth_getBlockByNumber("latest")` only.
    FutureHead(u64),
    /// A stalled node: the head it reports stays the one it saw at the first request after the
    /// fault was set, and every call is answered at that head exactly as under [`Fault::Lag`]
    /// (over WebSocket, notifications of later blocks are held until the fault changes).
    StalledHead,
    /// Report block hashes that differ from the chain's (`eth_getBlockByNumber`,
    /// `eth_getBlockByHash`, `newHeads`). See [`Fault::Forked`] for a node really on a fork.
    DivergentHash,
    /// Serve `eth_getProof` answers whose account proof does not verify.
    BadProof,
    /// A node on another chain: every HTTP request, and every WebSocket connection opened while
    /// the fault is set, goes to `upstream` instead of the proxy's own node (WebSocket
    /// connections open when the fault is set or cleared are dropped, as a switched backend
    /// would). Start that node with [`crate::forks::other_chain`]; `chain_id` is the chain id it
    /// reports (for schedules and reports to name; the proxy rewrites nothing, every answer,
    /// `eth_chainId` included, comes from `upstream`). [`crate::forks::wrong_chain`] builds the
    /// fault from the node.
    WrongChain {
        /// The chain id `upstream` reports.
        chain_id: u64,
        /// The other node's HTTP URL, e.g. `http://127.0.0.1:PORT`.
        upstream: String,
    },
    /// A node on a fork of the chain: everything goes to `upstream` as under
    /// [`Fault::WrongChain`]. Start that node with [`crate::forks::fork_of`] (same chain id and
    /// history up to the fork point, its own blocks after it, so hashes at shared heights past
    /// the fork really differ); [`crate::forks::forked`] builds the fault from the node.
    Forked {
        /// The forked node's HTTP URL, e.g. `http://127.0.0.1:PORT`.
        upstream: String,
    },
    /// Intermittent failure: every `every`th HTTP request since the fault was set (the 1-based
    /// count is a multiple of `every`) is answered with the HTTP `status` (e.g. 503, 429) and no
    /// JSON; the others are forwarded. `every: 1` fails them all, `every: 0` none. Deterministic:
    /// a batch counts one request, WebSocket frames pass unchanged and are not counted.
    Flaky {
        /// Fail one request in this many.
        every: u32,
        /// The HTTP status of a failed request.
        status: u16,
    },
    /// A censoring node: `eth_sendRawTransaction` is answered with the transaction's hash
    /// (keccak256 of the raw bytes, as a node would) and never forwarded, so the transaction
    /// never lands; everything else is forwarded.
    Censor,
    /// A lying RPC: every `eth_call` to `to` is answered with `result` (hex), as if the contract
    /// had returned it; everything else is forwarded. (A registry RPC that forges
    /// `authorisedRoutes`, say.)
    ForgeCall {
        /// The contract whose calls are forged.
        to: alloy::primitives::Address,
        /// The forged return data, `0x`-prefixed hex.
        result: String,
    },
}

impl Fault {
    /// A short stable name of the fault's kind, e.g. `"lag"`, `"wrong_chain"` (for reports and
    /// fault schedules; the variant's data is not part of it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Hang => "hang",
            Self::Slow(_) => "slow",
            Self::HttpStatus(_) => "http_status",
            Self::RpcError { .. } => "rpc_error",
            Self::Garbage => "garbage",
            Self::Oversized(_) => "oversized",
            Self::WrongChainId(_) => "wrong_chain_id",
            Self::Lag(_) => "lag",
            Self::FutureHead(_) => "future_head",
            Self::StalledHead => "stalled_head",
            Self::DivergentHash => "divergent_hash",
            Self::BadProof => "bad_proof",
            Self::WrongChain { .. } => "wrong_chain",
            Self::Forked { .. } => "forked",
            Self::Flaky { .. } => "flaky",
            Self::Censor => "censor",
            Self::ForgeCall { .. } => "forge_call",
        }
    }

    /// Faults that still forward to the proxy's own node, answering or rewriting some calls.
    fn rewrites(&self) -> bool {
        matches!(
            self,
            Self::WrongChainId(_)
                | Self::Lag(_)
                | Self::FutureHead(_)
                | Self::StalledHead
                | Self::DivergentHash
                | Self::BadProof
                | Self::Censor
                | Self::ForgeCall { .. }
        )
    }

    /// Faults that answer every call at a head below the chain's.
    fn lags(&self) -> bool {
        matches!(self, Self::Lag(_) | Self::StalledHead)
    }

    /// A lying registry RPC ([`Fault::ForgeCall`]): `authorisedRoutes` of the registry at
    /// `registry` answers a set of one route, to `url`, at `epoch`.
    pub fn forged_route_set(registry: alloy::primitives::Address, url: &str, epoch: u32) -> Self {
        use alloy::sol_types::SolCall;
        use lifeline_bindings::registry::RouteRegistry;
        let forged = RouteRegistry::RouteSet {
            epoch,
            lastAttestedAt: 0,
            stale: false,
            routes: vec![RouteRegistry::Route {
                id: 0,
                url: url.into(),
                region: "eu-west".into(),
                provider: "forged".into(),
                latencyMs: 1,
                degraded: false,
            }],
        };
        let result = RouteRegistry::authorisedRoutesCall::abi_encode_returns(&forged);
        Self::ForgeCall { to: registry, result: alloy::primitives::hex::encode_prefixed(result) }
    }

    /// The node this fault sends everything to instead of the proxy's own.
    fn alternate(&self) -> Option<&str> {
        match self {
            Self::WrongChain { upstream, .. } | Self::Forked { upstream } => Some(upstream),
            _ => None,
        }
    }
}

/// A running proxy. Dropping it stops the server and drops its WebSocket connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    /// The current fault; per-connection WebSocket tasks watch it (and end when it is dropped).
    fault: watch::Sender<Fault>,
    stalled_at: Arc<Mutex<Option<u64>>>,
    /// HTTP requests seen since the fault was set (for [`Fault::Flaky`]).
    since_set: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
    ws_connections: Arc<AtomicUsize>,
    /// The API key the proxy demands in its path, if any (see [`Self::require_key`]).
    key: watch::Sender<Option<String>>,
    unauthorized: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (free port) in front of `upstream` (an `http://` URL;
    /// WebSocket connections go to the same URL with the scheme swapped for `ws://`).
    pub async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| Error::Io {
            context: "binding a proxy on 127.0.0.1".into(),
            source,
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Io { context: "reading the proxy address".into(), source })?;
        let (fault, fault_rx) = watch::channel(Fault::Up);
        let requests = Arc::new(AtomicU64::new(0));
        let since_set = Arc::new(AtomicU64::new(0));
        let methods = Arc::new(Mutex::new(HashMap::new()));
        let stalled_at = Arc::new(Mutex::new(None));
        let ws_connections = Arc::new(AtomicUsize::new(0));
        let (key, key_rx) = watch::channel(None);
        let unauthorized = Arc::new(AtomicU64::new(0));
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::new(ProxyState {
            ws_upstream: ws_upstream(&upstream),
            upstream: upstream.clone(),
            client: alloy::transports::http::reqwest::Client::new(),
            fault: fault_rx,
            stalled_at: stalled_at.clone(),
            since_set: since_set.clone(),
            requests: requests.clone(),
            methods: methods.clone(),
            ws_connections: ws_connections.clone(),
            key: key_rx,
            unauthorized: unauthorized.clone(),
        });
        let task = tokio::spawn(serve(listener, state, stop));
        debug!(target: "devnet::proxy", %addr, "proxy started");
        Ok(Self {
            addr,
            upstream,
            fault,
            stalled_at,
            since_set,
            requests,
            methods,
            ws_connections,
            key,
            unauthorized,
            shutdown,
            task,
        })
    }

    /// Demands an API key from now on, as a paid provider does: only requests (and WebSocket
    /// upgrades) to the path `/<key>` are served; any other path gets 401 and reaches nothing.
    pub fn require_key(&self, key: &str) {
        self.key.send_replace(Some(key.to_string()));
    }

    /// Requests refused for a missing or wrong key so far.
    pub fn unauthorized(&self) -> u64 {
        self.unauthorized.load(Ordering::Relaxed)
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's WebSocket URL, e.g. `ws://127.0.0.1:40123` (same port as [`Self::url`]).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The node the proxy forwards to (unless a fault routes elsewhere).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Changes the behaviour for every later request (in-flight hangs are released by `Up`).
    /// [`Fault::Down`] also drops every open WebSocket connection at once. Setting a fault
    /// (even the same one again) restarts [`Fault::StalledHead`]'s head and [`Fault::Flaky`]'s
    /// count.
    pub fn set(&self, fault: Fault) {
        debug!(target: "devnet::proxy", addr = %self.addr, ?fault, "fault set");
        *self.stalled_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.since_set.store(0, Ordering::Relaxed);
        self.fault.send_replace(fault);
    }

    /// The current behaviour.
    pub fn fault(&self) -> Fault {
        self.fault.borrow().clone()
    }

    /// Requests received so far (answered or not; a dropped connection counts as one). Over
    /// WebSocket, each text frame from the client counts one; the upgrade itself does not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// JSON-RPC calls of `method` received so far (batch members count one each), over HTTP
    /// and WebSocket.
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.lock().unwrap_or_else(|p| p.into_inner()).get(method).copied().unwrap_or(0)
    }

    /// WebSocket connections currently open through the proxy (both handshakes done).
    pub fn ws_connections(&self) -> usize {
        self.ws_connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

struct ProxyState {
    upstream: String,
    /// `upstream` with the scheme swapped for its WebSocket one.
    ws_upstream: String,
    client: alloy::transports::http::reqwest::Client,
    fault: watch::Receiver<Fault>,
    stalled_at: Arc<Mutex<Option<u64>>>,
    since_set: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
    ws_connections: Arc<AtomicUsize>,
    key: watch::Receiver<Option<String>>,
    unauthorized: Arc<AtomicU64>,
}

impl ProxyState {
    fn count_methods(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<Value>(body) else { return };
        let calls = match json {
            Value::Array(calls) => calls,
            single => vec![single],
        };
        let mut methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        for call in calls {
            if let Some(method) = call.get("method").and_then(|m| m.as_str()) {
                *methods.entry(method.to_string()).or_default() += 1;
            }
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<ProxyState>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let fault = state.fault.borrow().clone();
            if fault == Fault::Down {
                state.requests.fetch_add(1, Ordering::Relaxed);
                // Dropping the stream closes the connection before any answer.
                return;
            }
            let service = service_fn(move |req| handle(state.clone(), req));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let authorised = match &*state.key.borrow() {
        Some(key) => req.uri().path().strip_prefix('/') == Some(key.as_str()),
        None => true,
    };
    if !authorised {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Ok(status(StatusCode::UNAUTHORIZED));
    }
    if is_websocket_upgrade(&req) {
        return Ok(upgrade(state, req).await);
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let seen = state.since_set.fetch_add(1, Ordering::Relaxed) + 1;
    let fault = state.fault.borrow().clone();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(status(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    state.count_methods(&body);
    if fault.rewrites() {
        return Ok(match rewrite(&state, &fault, &body).await {
            Ok(Some(json)) => json_response(Bytes::from(json.to_string())),
            Ok(None) => forward(&state, &state.upstream, body).await,
            Err(UpstreamFailed) => status(StatusCode::BAD_GATEWAY),
        });
    }
    if let Some(alternate) = fault.alternate() {
        return Ok(forward(&state, alternate, body).await);
    }
    match fault {
        Fault::Up => Ok(forward(&state, &state.upstream, body).await),
        Fault::Down => Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
        Fault::Hang => {
            // Hang until the fault changes (so a test can release it) or for a long time.
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if *state.fault.borrow() != Fault::Hang {
                    return Ok(forward(&state, &state.upstream, body).await);
                }
            }
            Ok(status(StatusCode::GATEWAY_TIMEOUT))
        }
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(forward(&state, &state.upstream, body).await)
        }
        Fault::HttpStatus(code) => Ok(status(status_code(code))),
        Fault::Flaky { every, status: code } => {
            if every > 0 && seen.is_multiple_of(u64::from(every)) {
                Ok(status(status_code(code)))
            } else {
                Ok(forward(&state, &state.upstream, body).await)
            }
        }
        Fault::RpcError { code, message } => {
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null);
            Ok(json_response(Bytes::from(error_reply(&id, code, &message).to_string())))
        }
        Fault::Garbage => Ok(json_response(Bytes::from_static(b"<html>bad gateway</html>"))),
        Fault::Oversized(size) => Ok(json_response(Bytes::from(vec![b' '; size]))),
        // Handled by `rewrite` and `alternate` above.
        _ => Ok(forward(&state, &state.upstream, body).await),
    }
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The upstream node could not be reached (or did not answer JSON) while the proxy composed an
/// answer: HTTP answers 502, a WebSocket connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpstreamFailed;

/// What the proxy answers in the node's place: `Some` a whole response (object or batch array),
/// `None` forward the request unchanged.
type Rewritten = std::result::Result<Option<Value>, UpstreamFailed>;

/// Answers a JSON-RPC request (single or batch) the way a misbehaving node would; `None`
/// forwards it as is.
async fn rewrite(state: &ProxyState, fault: &Fault, body: &[u8]) -> Rewritten {
    let Ok(request) = serde_json::from_slice::<Value>(body) else { return Ok(None) };
    let mut node = Rewriter { state, fault, head: None };
    match request {
        Value::Array(calls) if !calls.is_empty() => {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                let answer = match node.one(&call).await? {
                    Some(answer) => answer,
                    None => node.send(&call).await?,
                };
                answers.push(answer);
            }
            Ok(Some(Value::Array(answers)))
        }
        single => node.one(&single).await,
    }
}

/// Where a method takes its block parameter, and what a node answers for a block above its
/// head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockArg {
    /// The parameter's index.
    index: usize,
    missing: Missing,
}

/// A node's answer for a block it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// `result: null` (block reads).
    Null,
    /// `-32000 header not found` (state reads).
    HeaderNotFound,
    /// `-32000 request beyond head block` (`eth_feeHistory`).
    BeyondHead,
}

/// The block parameter of the methods that take one (`eth_getLogs` aside).
fn block_arg(method: &str) -> Option<BlockArg> {
    let (index, missing) = match method {
        "eth_getBalance"
        | "eth_getCode"
        | "eth_getTransactionCount"
        | "eth_call"
        | "eth_estimateGas"
        | "eth_createAccessList"
        | "eth_getAccount"
        | "eth_simulateV1"
        | "debug_traceCall" => (1, Missing::HeaderNotFound),
        "eth_getStorageAt" | "eth_getProof" => (2, Missing::HeaderNotFound),
        "eth_getBlockByNumber"
        | "eth_getHeaderByNumber"
        | "eth_getBlockTransactionCountByNumber"
        | "eth_getUncleCountByBlockNumber"
        | "eth_getTransactionByBlockNumberAndIndex"
        | "eth_getRawTransactionByBlockNumberAndIndex"
        | "eth_getUncleByBlockNumberAndIndex"
        | "eth_getBlockReceipts" => (0, Missing::Null),
        "eth_feeHistory" => (1, Missing::BeyondHead),
        _ => return None,
    };
    Some(BlockArg { index, missing })
}

/// The block a block parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    number: u64,
    /// Named by a tag (or omitted): the proxy rewrites it to `number`, which is at most the
    /// reported head.
    by_tag: bool,
}

/// Answers calls the way the faulty node would, for one HTTP request or WebSocket frame.
struct Rewriter<'a> {
    state: &'a ProxyState,
    fault: &'a Fault,
    /// The reported head, once asked (one upstream call per request, not per batch member).
    head: Option<u64>,
}

impl Rewriter<'_> {
    /// The head the faulty node reports.
    async fn head(&mut self) -> Result<u64, UpstreamFailed> {
        if let Some(head) = self.head {
            return Ok(head);
        }
        let stalled = *self.state.stalled_at.lock().unwrap_or_else(|p| p.into_inner());
        let head = match (self.fault, stalled) {
            (Fault::StalledHead, Some(head)) => head,
            _ => {
                let real = self.result("eth_blockNumber", json!([])).await?;
                let real = real.as_ref().and_then(hex_u64).ok_or(UpstreamFailed)?;
                reported_head(self.state, self.fault, real)
            }
        };
        self.head = Some(head);
        Ok(head)
    }

    /// Sends one call to the proxy's node and returns its whole response.
    async fn send(&self, call: &Value) -> Result<Value, UpstreamFailed> {
        let resp = self
            .state
            .client
            .post(&self.state.upstream)
            .json(call)
            .send()
            .await
            .map_err(|_| UpstreamFailed)?;
        resp.json().await.map_err(|_| UpstreamFailed)
    }

    /// Calls the proxy's node; its `result` (`None` for an error answer).
    async fn result(&self, method: &str, params: Value) -> Result<Option<Value>, UpstreamFailed> {
        let call = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        Ok(self.send(&call).await?.get_mut("result").map(Value::take))
    }

    /// One call (not a batch).
    async fn one(&mut self, request: &Value) -> Rewritten {
        let Some(method) = request.get("method").and_then(Value::as_str) else { return Ok(None) };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let params = request.get("params").cloned().unwrap_or(json!([]));
        let reply =
            |result: Value| Ok(Some(json!({ "jsonrpc": "2.0", "id": id, "result": result })));

        match (self.fault, method) {
            (Fault::WrongChainId(chain_id), "eth_chainId") => {
                reply(json!(format!("{chain_id:#x}")))
            }
            (Fault::WrongChainId(chain_id), "net_version") => reply(json!(chain_id.to_string())),
            (Fault::Censor, "eth_sendRawTransaction") => {
                let raw = params.get(0).and_then(Value::as_str).map(alloy::primitives::hex::decode);
                match raw {
                    Some(Ok(raw)) => reply(json!(alloy::primitives::keccak256(raw).to_string())),
                    // Not a transaction: let the node reject it.
                    _ => Ok(None),
                }
            }
            (Fault::ForgeCall { to, result }, "eth_call")
                if params
                    .pointer("/0/to")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<alloy::primitives::Address>().ok())
                    == Some(*to) =>
            {
                reply(json!(result))
            }
            (Fault::DivergentHash, "eth_getBlockByNumber" | "eth_getBlockByHash") => {
                let mut answer = self.send(request).await?;
                if let Some(block) = answer.get_mut("result") {
                    fork_block(block);
                }
                Ok(Some(answer))
            }
            (Fault::BadProof, "eth_getProof") => {
                let mut answer = self.send(request).await?;
                if let Some(Value::String(node)) = answer
                    .pointer_mut("/result/accountProof")
                    .and_then(|p| p.as_array_mut())
                    .and_then(|p| p.last_mut())
                {
                    // Flip the last hex digit of the leaf: the proof no longer hashes to the root.
                    let flipped = match node.pop() {
                        Some('0') => '1',
                        _ => '0',
                    };
                    node.push(flipped);
                }
                Ok(Some(answer))
            }
            (Fault::FutureHead(_), "eth_blockNumber") => {
                let head = self.head().await?;
                reply(json!(format!("{head:#x}")))
            }
            (Fault::FutureHead(_), "eth_getBlockByNumber")
                if params.get(0).and_then(Value::as_str) == Some("latest") =>
            {
                let target = self.head().await?;
                let full = params.get(1).cloned().unwrap_or(json!(false));
                // A block from the future: the real head, renumbered, with a hash nobody else
                // has (or the head itself when the fault is `FutureHead(0)`).
                let block = self.result("eth_getBlockByNumber", json!(["latest", full])).await?;
                let mut block = block.ok_or(UpstreamFailed)?;
                if block.get("number").and_then(hex_u64) != Some(target) {
                    block["number"] = json!(format!("{target:#x}"));
                    fork_block(&mut block);
                }
                reply(block)
            }
            (Fault::Lag(_) | Fault::StalledHead, _) => self.lagging(method, request).await,
            _ => Ok(None),
        }
    }

    /// One call to a node whose head is the reported one (below the chain's).
    async fn lagging(&mut self, method: &str, request: &Value) -> Rewritten {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        if method == "eth_blockNumber" {
            let head = self.head().await?;
            return Ok(Some(result_reply(&id, json!(format!("{head:#x}")))));
        }
        if method == "eth_getLogs" {
            return self.logs(request).await;
        }
        if let Some(arg) = block_arg(method) {
            return self.at_block(arg, request).await;
        }
        match method {
            "eth_getTransactionByHash"
            | "eth_getTransactionReceipt"
            | "eth_getTransactionByBlockHashAndIndex" => {
                self.null_if_above(request, "blockNumber").await
            }
            "eth_getBlockByHash" | "eth_getHeaderByHash" | "eth_getUncleByBlockHashAndIndex" => {
                self.null_if_above(request, "number").await
            }
            "eth_getBlockTransactionCountByHash"
            | "eth_getUncleCountByBlockHash"
            | "eth_getRawTransactionByBlockHashAndIndex" => {
                let head = self.head().await?;
                let target = self.resolve(request.pointer("/params/0")).await?;
                Ok(target.filter(|t| t.number > head).map(|_| result_reply(&id, Value::Null)))
            }
            _ => Ok(None),
        }
    }

    /// A call with a block parameter: rewritten to the reported head when tagged, answered
    /// like a missing block when above it.
    async fn at_block(&mut self, arg: BlockArg, request: &Value) -> Rewritten {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(params) = request.get("params").and_then(Value::as_array) else { return Ok(None) };
        if params.len() < arg.index {
            // Malformed: the node says so.
            return Ok(None);
        }
        let head = self.head().await?;
        let Some(target) = self.resolve(params.get(arg.index)).await? else { return Ok(None) };
        if target.number > head {
            return Ok(Some(match arg.missing {
                Missing::Null => result_reply(&id, Value::Null),
                Missing::HeaderNotFound => error_reply(&id, SERVER_ERROR, "header not found"),
                Missing::BeyondHead => error_reply(
                    &id,
                    SERVER_ERROR,
                    &format!("request beyond head block: requested {}, head {head}", target.number),
                ),
            }));
        }
        if !target.by_tag {
            return Ok(None);
        }
        let mut request = request.clone();
        let at = json!(format!("{:#x}", target.number));
        if let Some(params) = request.get_mut("params").and_then(Value::as_array_mut) {
            if params.len() == arg.index {
                params.push(at);
            } else {
                params[arg.index] = at;
            }
        }
        Ok(Some(self.send(&request).await?))
    }

    /// `eth_getLogs`: the range clamped to the reported head.
    async fn logs(&mut self, request: &Value) -> Rewritten {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(filter) = request.pointer("/params/0").and_then(Value::as_object) else {
            return Ok(None);
        };
        let head = self.head().await?;
        if let Some(hash) = filter.get("blockHash") {
            let target = self.resolve(Some(hash)).await?;
            return Ok(target
                .filter(|t| t.number > head)
                .map(|_| error_reply(&id, SERVER_ERROR, "unknown block")));
        }
        let from = self.resolve(filter.get("fromBlock")).await?;
        let to = self.resolve(filter.get("toBlock")).await?;
        let (Some(from), Some(to)) = (from, to) else { return Ok(None) };
        if from.number > head {
            return Ok(Some(result_reply(&id, json!([]))));
        }
        if !from.by_tag && !to.by_tag && to.number <= head {
            return Ok(None);
        }
        let mut request = request.clone();
        if let Some(filter) = request.pointer_mut("/params/0").and_then(Value::as_object_mut) {
            if from.by_tag {
                filter.insert("fromBlock".into(), json!(format!("{:#x}", from.number)));
            }
            filter.insert("toBlock".into(), json!(format!("{:#x}", to.number.min(head))));
        }
        Ok(Some(self.send(&request).await?))
    }

    /// Forwards, then answers `null` when the result's `field` (its block number) is above the
    /// reported head.
    async fn null_if_above(&mut self, request: &Value, field: &str) -> Rewritten {
        let head = self.head().await?;
        let mut answer = self.send(request).await?;
        if let Some(result) = answer.get_mut("result")
            && result.get(field).and_then(hex_u64).is_some_and(|number| number > head)
        {
            *result = Value::Null;
        }
        Ok(Some(answer))
    }

    /// The block a block parameter names (`None` when it cannot tell: the node answers).
    async fn resolve(&mut self, param: Option<&Value>) -> Result<Option<Target>, UpstreamFailed> {
        match param {
            None | Some(Value::Null) => self.resolve_str("latest").await,
            Some(Value::String(param)) => self.resolve_str(param).await,
            // EIP-1898: `{ "blockNumber": ... }` or `{ "blockHash": ..., "requireCanonical": ... }`.
            Some(Value::Object(object)) => {
                match (object.get("blockNumber"), object.get("blockHash")) {
                    (Some(Value::String(number)), _) => self.resolve_str(number).await,
                    (_, Some(Value::String(hash))) => self.resolve_str(hash).await,
                    _ => Ok(None),
                }
            }
            Some(_) => Ok(None),
        }
    }

    async fn resolve_str(&mut self, param: &str) -> Result<Option<Target>, UpstreamFailed> {
        let head = self.head().await?;
        let named = |number: Option<u64>| number.map(|number| Target { number, by_tag: false });
        Ok(match param {
            "latest" | "pending" => Some(Target { number: head, by_tag: true }),
            "earliest" => named(Some(0)),
            "safe" | "finalized" => {
                let block = self.result("eth_getBlockByNumber", json!([param, false])).await?;
                block
                    .as_ref()
                    .and_then(|b| b.get("number"))
                    .and_then(hex_u64)
                    .map(|number| Target { number: number.min(head), by_tag: true })
            }
            hash if hash.len() == 66 => {
                let block = self.result("eth_getBlockByHash", json!([hash, false])).await?;
                named(block.as_ref().and_then(|b| b.get("number")).and_then(hex_u64))
            }
            number => named(parse_hex(number)),
        })
    }
}

fn result_reply(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn error_reply(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// A hex quantity (`"0x1a"`).
fn hex_u64(value: &Value) -> Option<u64> {
    parse_hex(value.as_str()?)
}

fn parse_hex(quantity: &str) -> Option<u64> {
    u64::from_str_radix(quantity.strip_prefix("0x")?, 16).ok()
}

fn reported_head(state: &ProxyState, fault: &Fault, head: u64) -> u64 {
    match fault {
        Fault::Lag(n) => head.saturating_sub(*n),
        Fault::FutureHead(n) => head.saturating_add(*n),
        Fault::StalledHead => {
            *state.stalled_at.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(head)
        }
        _ => head,
    }
}

fn fork_block(block: &mut Value) {
    if let Some(hash) = block.get("hash").and_then(|h| h.as_str()) {
        let forked = alloy::primitives::keccak256(format!("fork:{hash}").as_bytes());
        block["hash"] = json!(forked.to_string());
    }
}

/// Forwards an HTTP request body to `upstream` and relays its status and body.
async fn forward(state: &ProxyState, upstream: &str, body: Bytes) -> Response<Full<Bytes>> {
    let sent = state
        .client
        .post(upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let code = resp.status().as_u16();
            match resp.bytes().await {
                Ok(bytes) => {
                    let mut out = json_response(bytes);
                    *out.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
                    out
                }
                Err(_) => status(StatusCode::BAD_GATEWAY),
            }
        }
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

/// `upstream` with `http`/`https` swapped for `ws`/`wss` (other URLs are used as they are).
fn ws_upstream(upstream: &str) -> String {
    if let Some(rest) = upstream.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = upstream.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        upstream.to_string()
    }
}

/// True for a WebSocket upgrade request (`Connection: upgrade`, `Upgrade: websocket`).
fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Answers a WebSocket upgrade: opens the upstream WebSocket first (a 502 if it cannot), then
/// switches protocols and pipes frames in a task of its own. Under [`Fault::WrongChain`] and
/// [`Fault::Forked`] the upstream is the fault's node.
async fn upgrade(state: Arc<ProxyState>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let accept = derive_accept_key(key.as_bytes());
    let mut fault = state.fault.clone();
    // A hanging node does not answer the handshake either.
    if !wait_while_hang(&mut fault).await {
        return status(StatusCode::GATEWAY_TIMEOUT);
    }
    let current = fault.borrow_and_update().clone();
    if current == Fault::Down {
        // Down set after this connection was accepted: answer like an HTTP request would be.
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let route = current.alternate().map(str::to_string);
    let target = route.as_deref().map_or_else(|| state.ws_upstream.clone(), ws_upstream);
    let connect = tokio_tungstenite::connect_async(target.as_str());
    let upstream = match tokio::time::timeout(UPSTREAM_WS_TIMEOUT, connect).await {
        Ok(Ok((upstream, _))) => upstream,
        Ok(Err(error)) => {
            debug!(target: "devnet::proxy", %error, "upstream WebSocket refused");
            return status(StatusCode::BAD_GATEWAY);
        }
        Err(_) => return status(StatusCode::GATEWAY_TIMEOUT),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let _open = OpenConnection::new(&state.ws_connections);
        pipe(&state, client, upstream, fault, route).await;
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

/// Waits while the fault is [`Fault::Hang`]; false if it still is after [`MAX_HANG`] or the
/// proxy was dropped.
async fn wait_while_hang(fault: &mut watch::Receiver<Fault>) -> bool {
    let wait = async {
        loop {
            if *fault.borrow_and_update() != Fault::Hang {
                return true;
            }
            if fault.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(MAX_HANG, wait).await.unwrap_or(false)
}

/// Counts an open WebSocket connection for as long as it lives.
struct OpenConnection<'a>(&'a AtomicUsize);

impl<'a> OpenConnection<'a> {
    fn new(open: &'a AtomicUsize) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pipes frames between the client and the upstream until either side ends, a frame cannot be
/// delivered, the fault turns [`Fault::Down`] (or the proxy is dropped), or the fault moves the
/// connection's `route` (the node of [`Fault::WrongChain`]/[`Fault::Forked`], `None` for the
/// proxy's own). Both connections are then dropped, without a close frame. While the fault is
/// [`Fault::Hang`] nothing is read either way, so frames wait in the sockets until it changes.
///
/// Under a rewriting fault, requests from the client are answered as over HTTP (the proxy asks
/// its node over HTTP) unless they are `eth_subscribe`/`eth_unsubscribe`; under
/// [`Fault::Lag`]/[`Fault::StalledHead`], subscription notifications of blocks above the
/// reported head are held (in order) until it reaches them or the fault changes; under
/// [`Fault::DivergentHash`], `newHeads` carry forked hashes.
async fn pipe<C, U>(
    state: &ProxyState,
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    mut fault: watch::Receiver<Fault>,
    route: Option<String>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut held: VecDeque<(u64, Message)> = VecDeque::new();
    let mut recheck = tokio::time::interval(HOLD_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let current = fault.borrow_and_update().clone();
        match current {
            Fault::Down => return,
            Fault::Hang => {
                if fault.changed().await.is_err() {
                    return;
                }
                continue;
            }
            _ => {}
        }
        if current.alternate() != route.as_deref() {
            debug!(target: "devnet::proxy", "fault switched the node: WebSocket dropped");
            return;
        }
        if !held.is_empty() && !release(state, &current, &mut held, &mut client, &mut fault).await {
            return;
        }
        tokio::select! {
            changed = fault.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            frame = client.next() => {
                let Some(Ok(frame)) = frame else { return };
                if let Message::Text(text) = &frame {
                    state.requests.fetch_add(1, Ordering::Relaxed);
                    state.count_methods(text.as_str().as_bytes());
                    if current.rewrites() && !is_subscription_call(text.as_str()) {
                        match rewrite(state, &current, text.as_str().as_bytes()).await {
                            Ok(Some(answer)) => {
                                let answer = Message::text(answer.to_string());
                                if !forward_frame(&mut client, answer, &mut fault).await {
                                    return;
                                }
                                continue;
                            }
                            Ok(None) => {}
                            Err(UpstreamFailed) => return,
                        }
                    }
                }
                if !forward_frame(&mut upstream, frame, &mut fault).await {
                    return;
                }
            }
            frame = upstream.next() => {
                let Some(Ok(mut frame)) = frame else { return };
                if current.lags()
                    && let Some(number) = notification_block(&frame)
                {
                    held.push_back((number, frame));
                    continue;
                }
                if current == Fault::DivergentHash {
                    fork_new_head(&mut frame);
                }
                if !forward_frame(&mut client, frame, &mut fault).await {
                    return;
                }
            }
            _ = recheck.tick(), if !held.is_empty() => {}
        }
    }
}

/// Sends the held notifications the reported head has reached (all of them once the fault no
/// longer lags), in order; false when the client cannot be reached or the node cannot.
async fn release<C>(
    state: &ProxyState,
    current: &Fault,
    held: &mut VecDeque<(u64, Message)>,
    client: &mut WebSocketStream<C>,
    fault: &mut watch::Receiver<Fault>,
) -> bool
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let head = if current.lags() {
        match (Rewriter { state, fault: current, head: None }).head().await {
            Ok(head) => head,
            Err(UpstreamFailed) => return false,
        }
    } else {
        u64::MAX
    };
    while held.front().is_some_and(|(number, _)| *number <= head) {
        let Some((_, frame)) = held.pop_front() else { break };
        if !forward_frame(client, frame, fault).await {
            return false;
        }
    }
    true
}

/// True for a frame that is (or whose batch holds) `eth_subscribe` or `eth_unsubscribe`.
fn is_subscription_call(text: &str) -> bool {
    let Ok(json) = serde_json::from_str::<Value>(text) else { return false };
    let is_one = |call: &Value| {
        matches!(
            call.get("method").and_then(Value::as_str),
            Some("eth_subscribe" | "eth_unsubscribe")
        )
    };
    match &json {
        Value::Array(calls) => calls.iter().any(is_one),
        call => is_one(call),
    }
}

/// The block of a subscription notification: `newHeads`' `number`, `logs`' `blockNumber`.
fn notification_block(frame: &Message) -> Option<u64> {
    let Message::Text(text) = frame else { return None };
    let json = serde_json::from_str::<Value>(text.as_str()).ok()?;
    if json.get("method").and_then(Value::as_str) != Some("eth_subscription") {
        return None;
    }
    let result = json.pointer("/params/result")?;
    result.get("number").or_else(|| result.get("blockNumber")).and_then(hex_u64)
}

/// Forks the hash of a `newHeads` notification.
fn fork_new_head(frame: &mut Message) {
    let Message::Text(text) = frame else { return };
    let Ok(mut json) = serde_json::from_str::<Value>(text.as_str()) else { return };
    if json.get("method").and_then(Value::as_str) != Some("eth_subscription") {
        return;
    }
    let Some(result) = json.pointer_mut("/params/result") else { return };
    if result.get("parentHash").is_none() {
        return;
    }
    fork_block(result);
    *frame = Message::text(json.to_string());
}

/// Sends `frame` on `to`; false when that fails or the fault turns [`Fault::Down`] meanwhile.
async fn forward_frame<S>(
    to: &mut WebSocketStream<S>,
    frame: Message,
    fault: &mut watch::Receiver<Fault>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::select! {
        sent = to.send(frame) => sent.is_ok(),
        () = until_down(fault) => false,
    }
}

/// Returns once the fault is [`Fault::Down`] or the proxy is dropped.
async fn until_down(fault: &mut watch::Receiver<Fault>) {
    loop {
        if *fault.borrow_and_update() == Fault::Down {
            return;
        }
        if fault.changed().await.is_err() {
            return;
        }
    }
}

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}

#[cfg(test)]
mod tests {
    use alloy::node_bindings::{Anvil, AnvilInstance};
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio_tungstenite::{MaybeTlsStream, connect_async};

    use super::*;
    use crate::Toolchain;

    type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

    /// Bound of every single wait in these tests.
    const STEP: Duration = Duration::from_secs(10);

    /// anvil on 127.0.0.1 (free port, automine), killed on drop, and a proxy in front of it.
    async fn proxied_anvil() -> (AnvilInstance, FaultProxy) {
        let toolchain = Toolchain::locate().expect("toolchain: run `npm ci` first");
        let anvil = Anvil::at(toolchain.anvil())
            .arg("--host")
            .arg("127.0.0.1")
            .try_spawn()
            .expect("anvil starts");
        let proxy = FaultProxy::start(format!("http://127.0.0.1:{}", anvil.port()))
            .await
            .expect("proxy starts");
        (anvil, proxy)
    }

    async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(STEP, connect_async(url))
            .await
            .expect("handshake in time")
            .expect("handshake succeeds");
        ws
    }

    async fn send(ws: &mut Client, id: u64, method: &str, params: Value) {
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        ws.send(Message::text(request.to_string())).await.expect("request sent");
    }

    /// The next JSON text frame.
    async fn next_json(ws: &mut Client) -> Value {
        loop {
            let frame = tokio::time::timeout(STEP, ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame readable");
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).expect("JSON frame");
            }
        }
    }

    /// Sends one call and returns the answer with its id (notifications in between skipped).
    async fn call(ws: &mut Client, id: u64, method: &str, params: Value) -> Value {
        send(ws, id, method, params).await;
        loop {
            let answer = next_json(ws).await;
            if answer["id"] == json!(id) {
                return answer;
            }
        }
    }

    /// Waits until the connection ends (closed, reset or errored).
    async fn ended(ws: &mut Client) {
        while let Some(Ok(_)) = ws.next().await {}
    }

    #[tokio::test]
    async fn websocket_call_passes_through_and_counts() {
        let (_anvil, proxy) = proxied_anvil().await;
        assert!(proxy.ws_url().starts_with("ws://127.0.0.1:"));
        let mut ws = connect(&proxy.ws_url()).await;
        let answer = call(&mut ws, 1, "eth_blockNumber", json!([])).await;
        assert_eq!(answer["result"], json!("0x0"), "{answer}");
        assert_eq!(proxy.ws_connections(), 1);
        assert_eq!(proxy.requests(), 1, "the upgrade is not a request, the frame is");
        assert_eq!(proxy.calls("eth_blockNumber"), 1);

        // Plain HTTP still works on the same port.
        let http: Value = alloy::transports::http::reqwest::Client::new()
            .post(proxy.url())
            .json(&json!({ "jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": [] }))
            .send()
            .await
            .expect("HTTP answered")
            .json()
            .await
            .expect("HTTP JSON");
        assert_eq!(http["result"], json!("0x7a69"), "{http}");
        assert_eq!(proxy.requests(), 2);

        ws.close(None).await.expect("close sent");
        tokio::time::timeout(STEP, ended(&mut ws)).await.expect("closed in time");
        tokio::time::timeout(STEP, async {
            while proxy.ws_connections() != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("connection released");
    }

    #[tokio::test]
    async fn websocket_subscription_delivers_new_heads() {
        let (_anvil, proxy) = proxied_anvil().await;
        let mut ws = connect(&proxy.ws_url()).await;
        let answer = call(&mut ws, 1, "eth_subscribe", json!(["newHeads"])).await;
        let subscription = answer["result"].as_str().expect("a subscription id").to_string();
        send(&mut ws, 2, "evm_mine", json!([])).await;
        send(&mut ws, 3, "evm_mine", json!([])).await;
        let mut heads = Vec::new();
        while heads.len() < 2 {
            let frame = next_json(&mut ws).await;
            if frame["method"] == json!("eth_subscription") {
                assert_eq!(frame["params"]["subscription"], json!(subscription), "{frame}");
                heads.push(frame["params"]["result"]["number"].clone());
            }
        }
        assert_eq!(heads, [json!("0x1"), json!("0x2")]);
        assert_eq!(proxy.calls("eth_subscribe"), 1);
        assert_eq!(proxy.calls("evm_mine"), 2);
    }

    #[tokio::test]
    async fn websocket_down_drops_connections_and_refuses_upgrades() {
        let (_anvil, proxy) = proxied_anvil().await;
        let mut ws = connect(&proxy.ws_url()).await;
        assert!(call(&mut ws, 1, "eth_blockNumber", json!([])).await["result"].is_string());

        proxy.set(Fault::Down);
        tokio::time::timeout(Duration::from_secs(1), ended(&mut ws))
            .await
            .expect("the open WebSocket ends within 1 s of Down");
        tokio::time::timeout(STEP, async {
            while proxy.ws_connections() != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("connection released");
        let refused = tokio::time::timeout(STEP, connect_async(proxy.ws_url()))
            .await
            .expect("refused in time");
        assert!(refused.is_err(), "an upgrade while Down must fail");

        proxy.set(Fault::Up);
        let mut ws = connect(&proxy.ws_url()).await;
        assert!(call(&mut ws, 2, "eth_blockNumber", json!([])).await["result"].is_string());
        assert_eq!(proxy.ws_connections(), 1);

        // Dropping the proxy drops its WebSocket connections too.
        drop(proxy);
        tokio::time::timeout(Duration::from_secs(1), ended(&mut ws))
            .await
            .expect("the open WebSocket ends within 1 s of the proxy's drop");
    }

    #[tokio::test]
    async fn websocket_hang_holds_frames_until_released() {
        let (_anvil, proxy) = proxied_anvil().await;
        let mut ws = connect(&proxy.ws_url()).await;
        proxy.set(Fault::Hang);
        send(&mut ws, 1, "eth_chainId", json!([])).await;
        let held = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        assert!(held.is_err(), "no answer while hanging: {held:?}");

        proxy.set(Fault::Up);
        let answer = next_json(&mut ws).await;
        assert_eq!(answer["result"], json!("0x7a69"), "{answer}");

        // Rewriting faults answer over WebSocket as over HTTP.
        proxy.set(Fault::WrongChainId(5));
        let answer = call(&mut ws, 2, "eth_chainId", json!([])).await;
        assert_eq!(answer["result"], json!("0x5"), "{answer}");
        // HTTP-level faults leave WebSocket frames alone.
        proxy.set(Fault::HttpStatus(503));
        let answer = call(&mut ws, 3, "eth_chainId", json!([])).await;
        assert_eq!(answer["result"], json!("0x7a69"), "{answer}");
    }

    #[tokio::test]
    async fn websocket_lag_answers_at_the_lagging_head_and_holds_new_heads() {
        let (_anvil, proxy) = proxied_anvil().await;
        let mut ws = connect(&proxy.ws_url()).await;
        for id in 1..=2 {
            call(&mut ws, id, "evm_mine", json!([])).await;
        }
        proxy.set(Fault::Lag(2));
        let answer = call(&mut ws, 3, "eth_blockNumber", json!([])).await;
        assert_eq!(answer["result"], json!("0x0"), "{answer}");
        let answer = call(&mut ws, 4, "eth_getBlockByNumber", json!(["latest", false])).await;
        assert_eq!(answer["result"]["number"], json!("0x0"), "{answer}");

        // newHeads of blocks 3..=6: only those the lagging head (4) has reached arrive.
        let answer = call(&mut ws, 5, "eth_subscribe", json!(["newHeads"])).await;
        assert!(answer["result"].is_string(), "{answer}");
        for id in 6..=9 {
            send(&mut ws, id, "evm_mine", json!([])).await;
        }
        let mut heads = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
            let frame: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
            if frame["method"] == json!("eth_subscription") {
                heads.push(frame["params"]["result"]["number"].clone());
            }
        }
        assert_eq!(heads, [json!("0x3"), json!("0x4")]);

        // Caught up: the held heads follow, in order.
        proxy.set(Fault::Up);
        let mut heads = Vec::new();
        while heads.len() < 2 {
            let frame = next_json(&mut ws).await;
            heads.push(frame["params"]["result"]["number"].clone());
        }
        assert_eq!(heads, [json!("0x5"), json!("0x6")]);
    }

    #[tokio::test]
    async fn websocket_censor_and_divergent_hash_apply_to_frames() {
        let (anvil, proxy) = proxied_anvil().await;
        let mut ws = connect(&proxy.ws_url()).await;
        proxy.set(Fault::Censor);
        let raw = "0x02f868827a69800184773594008252089470997970c51812dc3a010c7d01b50e0d17dc79c8\
                   0180c001a0a47eb869be1e4a07b681e7063df0270355cb7c5a899b179a80cb601de381a8f3a0\
                   44967264754ab0d27600532eb0049fc2d29d8b11f8ec1ce53d2d30b481e53d69";
        let hash = alloy::primitives::keccak256(alloy::primitives::hex::decode(raw).expect("hex"));
        let answer = call(&mut ws, 1, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(answer["result"], json!(hash.to_string()), "{answer}");
        let pending = call(&mut ws, 2, "eth_getTransactionByHash", json!([hash])).await;
        assert_eq!(pending["result"], Value::Null, "never forwarded: {pending}");

        proxy.set(Fault::DivergentHash);
        call(&mut ws, 3, "eth_subscribe", json!(["newHeads"])).await;
        // Not `call`: the head may arrive before evm_mine's answer.
        send(&mut ws, 4, "evm_mine", json!([])).await;
        let head = loop {
            let frame = next_json(&mut ws).await;
            if frame["method"] == json!("eth_subscription") {
                break frame["params"]["result"].clone();
            }
        };
        let url = format!("http://127.0.0.1:{}", anvil.port());
        let block: Value = alloy::transports::http::reqwest::Client::new()
            .post(url)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x1", false] }))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        assert_eq!(head["number"], json!("0x1"));
        assert!(head["hash"].is_string());
        assert_ne!(head["hash"], block["result"]["hash"], "a forked hash");
    }

    #[test]
    fn block_parameters_are_where_each_method_takes_them() {
        let at = |method| block_arg(method).map(|arg| (arg.index, arg.missing));
        assert_eq!(at("eth_getBalance"), Some((1, Missing::HeaderNotFound)));
        assert_eq!(at("eth_call"), Some((1, Missing::HeaderNotFound)));
        assert_eq!(at("eth_getStorageAt"), Some((2, Missing::HeaderNotFound)));
        assert_eq!(at("eth_getProof"), Some((2, Missing::HeaderNotFound)));
        assert_eq!(at("eth_getBlockByNumber"), Some((0, Missing::Null)));
        assert_eq!(at("eth_feeHistory"), Some((1, Missing::BeyondHead)));
        assert_eq!(at("eth_chainId"), None);
        assert_eq!(at("eth_getLogs"), None, "handled on its own");
    }

    #[test]
    fn notifications_and_subscription_calls_are_recognised() {
        let head = json!({ "jsonrpc": "2.0", "method": "eth_subscription",
            "params": { "subscription": "0x1", "result": { "number": "0x1a", "parentHash": "0x00" } } });
        let log = json!({ "jsonrpc": "2.0", "method": "eth_subscription",
            "params": { "subscription": "0x2", "result": { "blockNumber": "0x7" } } });
        let answer = json!({ "jsonrpc": "2.0", "id": 1, "result": { "number": "0x1" } });
        assert_eq!(notification_block(&Message::text(head.to_string())), Some(26));
        assert_eq!(notification_block(&Message::text(log.to_string())), Some(7));
        assert_eq!(notification_block(&Message::text(answer.to_string())), None);
        assert!(is_subscription_call(r#"{"id":1,"method":"eth_subscribe","params":["newHeads"]}"#));
        assert!(is_subscription_call(r#"[{"id":1,"method":"eth_unsubscribe","params":["0x1"]}]"#));
        assert!(!is_subscription_call(r#"{"id":1,"method":"eth_blockNumber"}"#));
        assert_eq!(parse_hex("0x10"), Some(16));
        assert_eq!(parse_hex("16"), None);
    }

    #[test]
    fn fault_kinds_name_every_variant() {
        let faults = [
            Fault::Up,
            Fault::Lag(3),
            Fault::WrongChain { chain_id: 1, upstream: "http://127.0.0.1:1".into() },
            Fault::Forked { upstream: "http://127.0.0.1:1".into() },
            Fault::Flaky { every: 3, status: 503 },
            Fault::Censor,
        ];
        let kinds: Vec<_> = faults.iter().map(Fault::kind).collect();
        assert_eq!(kinds, ["up", "lag", "wrong_chain", "forked", "flaky", "censor"]);
        assert_eq!(faults[2].alternate(), Some("http://127.0.0.1:1"));
        assert!(faults[1].lags() && Fault::StalledHead.lags() && !Fault::FutureHead(1).lags());
        assert!(Fault::Censor.rewrites() && !faults[4].rewrites());
    }

    #[test]
    fn websocket_upstream_swaps_the_scheme() {
        assert_eq!(ws_upstream("http://127.0.0.1:8545"), "ws://127.0.0.1:8545");
        assert_eq!(ws_upstream("https://127.0.0.1:8545/rpc"), "wss://127.0.0.1:8545/rpc");
        assert_eq!(ws_upstream("ws://127.0.0.1:8545"), "ws://127.0.0.1:8545");
    }
}

/// A listener on 127.0.0.1 that accepts connections and only counts them: a place traffic must
/// never go (a forged route, a host a secret must not reach). Stops when dropped.
#[derive(Debug)]
pub struct CountingListener {
    port: u16,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CountingListener {
    /// Binds a free port on 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| Error::Io {
            context: "binding a counting listener on 127.0.0.1".into(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| Error::Io { context: "reading the listener address".into(), source })?
            .port();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Self { port, accepted, task })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
