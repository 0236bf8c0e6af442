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
//!                          '  Down: upgrades refused, open WebSockets dropped at once
//!                             Hang: frames held (both ways) until the fault changes
//! ```
//!
//! Rewrites apply to HTTP; WebSocket frames pass unchanged except under [`Fault::Down`] and
//! [`Fault::Hang`].

use std::{
    collections::HashMap,
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

/// How a proxy behaves.
///
/// Rewrites apply to HTTP; WebSocket frames pass unchanged except under [`Fault::Down`] (upgrades
/// refused, open WebSocket connections dropped at once) and [`Fault::Hang`] (frames held).
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
    /// Forward after a delay.
    Slow(Duration),
    /// Answer every request with this HTTP status (e.g. 500, 503, 429) and no JSON.
    HttpStatus(u16),
    /// Answer every request with HTTP 200 and this JSON-RPC error.
    RpcError {
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// Answer with HTTP 200 and a body that is not JSON.
    Garbage,
    /// Answer with a valid response padded to this many bytes.
    Oversized(usize),
    /// Report a chain id other than the chain's.
    WrongChainId(u64),
    /// Report the head this many blocks behind the chain's.
    Lag(u64),
    /// Report the head this many blocks ahead (a fabricated future block).
    FutureHead(u64),
    /// Keep reporting the head seen when the fault was set (a stalled node).
    StalledHead,
    /// Report block hashes that differ from the chain's (a forked node).
    DivergentHash,
    /// Serve `eth_getProof` answers whose account proof does not verify.
    BadProof,
}

impl Fault {
    /// Faults that still forward, rewriting some answers.
    fn rewrites(&self) -> bool {
        matches!(
            self,
            Self::WrongChainId(_)
                | Self::Lag(_)
                | Self::FutureHead(_)
                | Self::StalledHead
                | Self::DivergentHash
                | Self::BadProof
        )
    }
}

/// A running proxy. Dropping it stops the server and drops its WebSocket connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    /// The current fault; per-connection WebSocket tasks watch it (and end when it is dropped).
    fault: watch::Sender<Fault>,
    stalled_at: Arc<Mutex<Option<u64>>>,
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
    ws_connections: Arc<AtomicUsize>,
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
        let methods = Arc::new(Mutex::new(HashMap::new()));
        let stalled_at = Arc::new(Mutex::new(None));
        let ws_connections = Arc::new(AtomicUsize::new(0));
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::new(ProxyState {
            ws_upstream: ws_upstream(&upstream),
            upstream,
            client: alloy::transports::http::reqwest::Client::new(),
            fault: fault_rx,
            stalled_at: stalled_at.clone(),
            requests: requests.clone(),
            methods: methods.clone(),
            ws_connections: ws_connections.clone(),
        });
        let task = tokio::spawn(serve(listener, state, stop));
        debug!(target: "devnet::proxy", %addr, "proxy started");
        Ok(Self { addr, fault, stalled_at, requests, methods, ws_connections, shutdown, task })
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's WebSocket URL, e.g. `ws://127.0.0.1:40123` (same port as [`Self::url`]).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Changes the behaviour for every later request (in-flight hangs are released by `Up`).
    /// [`Fault::Down`] also drops every open WebSocket connection at once.
    pub fn set(&self, fault: Fault) {
        debug!(target: "devnet::proxy", addr = %self.addr, ?fault, "fault set");
        *self.stalled_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
    ws_connections: Arc<AtomicUsize>,
}

impl ProxyState {
    fn count_methods(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else { return };
        let calls = match json {
            serde_json::Value::Array(calls) => calls,
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
    if is_websocket_upgrade(&req) {
        return Ok(upgrade(state, req).await);
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let fault = state.fault.borrow().clone();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(status(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    state.count_methods(&body);
    if fault.rewrites() {
        return Ok(match rewrite(&state, &fault, &body).await {
            Some(json) => json_response(Bytes::from(json.to_string())),
            None => forward(&state, body).await,
        });
    }
    match fault {
        Fault::Up => Ok(forward(&state, body).await),
        Fault::Down => Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
        Fault::Hang => {
            // Hang until the fault changes (so a test can release it) or for a long time.
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if *state.fault.borrow() != Fault::Hang {
                    return Ok(forward(&state, body).await);
                }
            }
            Ok(status(StatusCode::GATEWAY_TIMEOUT))
        }
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(forward(&state, body).await)
        }
        Fault::HttpStatus(code) => {
            Ok(status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)))
        }
        Fault::RpcError { code, message } => {
            let id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(serde_json::Value::Null);
            let json = serde_json::json!({
                "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message }
            });
            Ok(json_response(Bytes::from(json.to_string())))
        }
        Fault::Garbage => Ok(json_response(Bytes::from_static(b"<html>bad gateway</html>"))),
        Fault::Oversized(size) => Ok(json_response(Bytes::from(vec![b' '; size]))),
        // Handled by `rewrite` above.
        _ => Ok(forward(&state, body).await),
    }
}

/// Answers a JSON-RPC request (single or batch) the way a misbehaving node would; `None`
/// forwards it as is.
async fn rewrite(state: &ProxyState, fault: &Fault, body: &[u8]) -> Option<serde_json::Value> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    match request {
        serde_json::Value::Array(calls) => {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                let answer = match rewrite_one(state, fault, &call).await {
                    Some(answer) => answer,
                    None => forward_one(state, &call).await?,
                };
                answers.push(answer);
            }
            Some(serde_json::Value::Array(answers))
        }
        single => rewrite_one(state, fault, &single).await,
    }
}

/// Forwards one call and returns the node's whole response object.
async fn forward_one(state: &ProxyState, call: &serde_json::Value) -> Option<serde_json::Value> {
    let resp = state.client.post(&state.upstream).json(call).send().await.ok()?;
    resp.json().await.ok()
}

async fn rewrite_one(
    state: &ProxyState,
    fault: &Fault,
    request: &serde_json::Value,
) -> Option<serde_json::Value> {
    use serde_json::{Value, json};
    let method = request.get("method")?.as_str()?.to_string();
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let reply = |result: Value| json!({ "jsonrpc": "2.0", "id": id.clone(), "result": result });

    match (fault, method.as_str()) {
        (Fault::WrongChainId(chain_id), "eth_chainId") => {
            Some(reply(json!(format!("{chain_id:#x}"))))
        }
        (Fault::DivergentHash, "eth_getBlockByNumber" | "eth_getBlockByHash") => {
            let mut answer = upstream(state, &method, params).await?;
            fork_block(&mut answer);
            Some(reply(answer))
        }
        (Fault::BadProof, "eth_getProof") => {
            let mut answer = upstream(state, &method, params).await?;
            if let Some(Value::String(node)) = answer
                .get_mut("accountProof")
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
            Some(reply(answer))
        }
        (Fault::Lag(_) | Fault::FutureHead(_) | Fault::StalledHead, "eth_blockNumber") => {
            let head = upstream_head(state).await?;
            Some(reply(json!(format!("{:#x}", reported_head(state, fault, head)))))
        }
        (Fault::Lag(_) | Fault::FutureHead(_) | Fault::StalledHead, "eth_getBlockByNumber")
            if params.get(0).and_then(Value::as_str) == Some("latest") =>
        {
            let head = upstream_head(state).await?;
            let target = reported_head(state, fault, head);
            let full = params.get(1).cloned().unwrap_or(json!(false));
            if target <= head {
                let block = upstream(state, &method, json!([format!("{target:#x}"), full])).await?;
                return Some(reply(block));
            }
            // A block from the future: the real head, renumbered, with a hash nobody else has.
            let mut block = upstream(state, &method, json!(["latest", full])).await?;
            block["number"] = json!(format!("{target:#x}"));
            fork_block(&mut block);
            Some(reply(block))
        }
        _ => None,
    }
}

fn reported_head(state: &ProxyState, fault: &Fault, head: u64) -> u64 {
    match fault {
        Fault::Lag(n) => head.saturating_sub(*n),
        Fault::FutureHead(n) => head + n,
        Fault::StalledHead => {
            *state.stalled_at.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(head)
        }
        _ => head,
    }
}

fn fork_block(block: &mut serde_json::Value) {
    if let Some(hash) = block.get("hash").and_then(|h| h.as_str()) {
        let forked = alloy::primitives::keccak256(format!("fork:{hash}").as_bytes());
        block["hash"] = serde_json::json!(forked.to_string());
    }
}

async fn upstream_head(state: &ProxyState) -> Option<u64> {
    let head = upstream(state, "eth_blockNumber", serde_json::json!([])).await?;
    u64::from_str_radix(head.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// Calls the upstream node directly and returns its `result`.
async fn upstream(
    state: &ProxyState,
    method: &str,
    params: serde_json::Value,
) -> Option<serde_json::Value> {
    let request =
        serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let resp = state.client.post(&state.upstream).json(&request).send().await.ok()?;
    let mut answer: serde_json::Value = resp.json().await.ok()?;
    Some(answer.get_mut("result")?.take())
}

async fn forward(state: &ProxyState, body: Bytes) -> Response<Full<Bytes>> {
    let sent = state
        .client
        .post(&state.upstream)
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
/// switches protocols and pipes frames in a task of its own.
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
    if *fault.borrow_and_update() == Fault::Down {
        // Down set after this connection was accepted: answer like an HTTP request would be.
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let connect = tokio_tungstenite::connect_async(state.ws_upstream.as_str());
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
        pipe(&state, client, upstream, fault).await;
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
/// delivered, or the fault turns [`Fault::Down`] (or the proxy is dropped). Both connections
/// are then dropped, without a close frame. While the fault is [`Fault::Hang`] nothing is read
/// either way, so frames wait in the sockets until it changes.
async fn pipe<C, U>(
    state: &ProxyState,
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    mut fault: watch::Receiver<Fault>,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
                }
                if !forward_frame(&mut upstream, frame, &mut fault).await {
                    return;
                }
            }
            frame = upstream.next() => {
                let Some(Ok(frame)) = frame else { return };
                if !forward_frame(&mut client, frame, &mut fault).await {
                    return;
                }
            }
        }
    }
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

        // Rewriting faults leave WebSocket frames alone.
        proxy.set(Fault::WrongChainId(5));
        let answer = call(&mut ws, 2, "eth_chainId", json!([])).await;
        assert_eq!(answer["result"], json!("0x7a69"), "{answer}");
    }

    #[test]
    fn websocket_upstream_swaps_the_scheme() {
        assert_eq!(ws_upstream("http://127.0.0.1:8545"), "ws://127.0.0.1:8545");
        assert_eq!(ws_upstream("https://127.0.0.1:8545/rpc"), "wss://127.0.0.1:8545/rpc");
        assert_eq!(ws_upstream("ws://127.0.0.1:8545"), "ws://127.0.0.1:8545");
    }
}
