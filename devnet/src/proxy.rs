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
}

/// A running proxy. Dropping it stops the server.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
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
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::new(ProxyState {
            upstream,
            client: alloy::transports::http::reqwest::Client::new(),
            fault: fault.clone(),
            requests: requests.clone(),
            methods: methods.clone(),
        });
        let task = tokio::spawn(serve(listener, state, stop));
        debug!(target: "devnet::proxy", %addr, "proxy started");
        Ok(Self { addr, fault, requests, methods, shutdown, task })
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the behaviour for every later request (in-flight hangs are released by `Up`).
    pub fn set(&self, fault: Fault) {
        debug!(target: "devnet::proxy", addr = %self.addr, ?fault, "fault set");
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
    }
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
