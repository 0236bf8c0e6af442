//! A fault-injecting JSON-RPC proxy: an HTTP server on 127.0.0.1 that forwards to an upstream
//! node (anvil) and misbehaves on command. The devnet puts one in front of the chain per
//! endpoint, so the monitored network is real and every fault is controllable.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tracing::debug;

use crate::{Error, Result};

/// Largest request body the proxy accepts.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// How a proxy behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    Up,
    /// Accept the connection and close it without answering (the endpoint is down).
    Down,
    /// Accept and never answer.
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

/// A running proxy. Dropping it stops the server.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    stalled_at: Arc<Mutex<Option<u64>>>,
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (free port) in front of `upstream`.
    pub async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| Error::Io {
            context: "binding a proxy on 127.0.0.1".into(),
            source,
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Io { context: "reading the proxy address".into(), source })?;
        let fault = Arc::new(Mutex::new(Fault::Up));
        let requests = Arc::new(AtomicU64::new(0));
        let methods = Arc::new(Mutex::new(HashMap::new()));
        let stalled_at = Arc::new(Mutex::new(None));
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::new(ProxyState {
            upstream,
            client: alloy::transports::http::reqwest::Client::new(),
            fault: fault.clone(),
            stalled_at: stalled_at.clone(),
            requests: requests.clone(),
            methods: methods.clone(),
        });
        let task = tokio::spawn(serve(listener, state, stop));
        debug!(target: "devnet::proxy", %addr, "proxy started");
        Ok(Self { addr, fault, stalled_at, requests, methods, shutdown, task })
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the behaviour for every later request (in-flight hangs are released by `Up`).
    pub fn set(&self, fault: Fault) {
        debug!(target: "devnet::proxy", addr = %self.addr, ?fault, "fault set");
        *self.stalled_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// The current behaviour.
    pub fn fault(&self) -> Fault {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests received so far (answered or not; a dropped connection counts as one).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// JSON-RPC calls of `method` received so far (batch members count one each).
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.lock().unwrap_or_else(|p| p.into_inner()).get(method).copied().unwrap_or(0)
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
    client: alloy::transports::http::reqwest::Client,
    fault: Arc<Mutex<Fault>>,
    stalled_at: Arc<Mutex<Option<u64>>>,
    requests: Arc<AtomicU64>,
    methods: Arc<Mutex<HashMap<String, u64>>>,
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
            let fault = state.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if fault == Fault::Down {
                state.requests.fetch_add(1, Ordering::Relaxed);
                // Dropping the stream closes the connection before any answer.
                return;
            }
            let service = service_fn(move |req| handle(state.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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
    state.requests.fetch_add(1, Ordering::Relaxed);
    let fault = state.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
                if *state.fault.lock().unwrap_or_else(|p| p.into_inner()) != Fault::Hang {
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

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}
