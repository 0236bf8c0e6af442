//! A small JSON-RPC proxy for the keeper's registry RPC, in front of anvil, with the faults the
//! devnet's `FaultProxy` does not have: receipts that lag (`eth_getTransactionReceipt` answers
//! `null`), `eth_call` answered with empty data, gas estimates that revert, transactions of one account accepted and
//! never forwarded (stuck), and a record of the `eth_call`s it saw.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use alloy::{
    consensus::{TxEnvelope, transaction::SignerRecoverable},
    eips::eip2718::Decodable2718,
    primitives::{Address, Bytes as TxBytes},
    transports::http::reqwest,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

#[derive(Default)]
struct State {
    upstream: Mutex<String>,
    down: AtomicBool,
    client: reqwest::Client,
    null_receipts: AtomicBool,
    empty_calls: AtomicBool,
    calls: Mutex<Vec<Value>>,
    stuck: Mutex<Option<Address>>,
    estimate_revert: Mutex<Option<TxBytes>>,
}

/// The proxy; stops on drop.
pub(crate) struct RpcProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl RpcProxy {
    pub(crate) async fn start(upstream: String) -> eyre::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State { upstream: Mutex::new(upstream), ..Default::default() });
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While set, every `eth_getTransactionReceipt` is answered `null` (the receipt lags).
    pub(crate) fn null_receipts(&self, on: bool) {
        self.state.null_receipts.store(on, Ordering::SeqCst);
    }

    /// While set, every `eth_call` is answered `0x` (a node without the contract).
    pub(crate) fn empty_calls(&self, on: bool) {
        self.state.empty_calls.store(on, Ordering::SeqCst);
    }

    /// While set, every transaction `from` sends is answered with its hash, as a node that
    /// accepted it would, and never forwarded: it stays "pending" for good.
    pub(crate) fn stick_sends_from(&self, from: Option<Address>) {
        *self.state.stuck.lock().unwrap_or_else(|p| p.into_inner()) = from;
    }

    /// While set, every `eth_estimateGas` is answered with an execution revert carrying `data`
    /// (the state moved between the keeper's simulation and its gas estimate).
    pub(crate) fn revert_estimates(&self, data: Option<TxBytes>) {
        *self.state.estimate_revert.lock().unwrap_or_else(|p| p.into_inner()) = data;
    }

    /// While set, every request is answered HTTP 503 (the URL is down).
    pub(crate) fn down(&self, on: bool) {
        self.state.down.store(on, Ordering::SeqCst);
    }

    /// Forwards to another node from now on (e.g. one of another chain).
    pub(crate) fn set_upstream(&self, upstream: String) {
        *self.state.upstream.lock().unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    /// The `eth_call` requests seen so far (each the whole JSON-RPC request object).
    pub(crate) fn calls(&self) -> Vec<Value> {
        self.state.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if state.down.load(Ordering::SeqCst) {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"down")));
        *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        return Ok(resp);
    }
    let answer = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(calls)) => {
            let mut answers = Vec::new();
            for call in calls {
                answers.push(one(&state, call).await);
            }
            Value::Array(answers)
        }
        Ok(call) => one(&state, call).await,
        Err(_) => {
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": "parse error" } })
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    resp.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}

async fn one(state: &State, call: Value) -> Value {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let method = call.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
    if method == "eth_call" {
        state.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call.clone());
        if state.empty_calls.load(Ordering::SeqCst) {
            return json!({ "jsonrpc": "2.0", "id": id, "result": "0x" });
        }
    }
    if method == "eth_sendRawTransaction"
        && let Some(stuck) = *state.stuck.lock().unwrap_or_else(|p| p.into_inner())
        && let Some(tx) = raw_transaction(&call)
        && tx.recover_signer().is_ok_and(|from| from == stuck)
    {
        return json!({ "jsonrpc": "2.0", "id": id, "result": tx.tx_hash() });
    }
    if method == "eth_estimateGas"
        && let Some(data) = state.estimate_revert.lock().unwrap_or_else(|p| p.into_inner()).clone()
    {
        let error = json!({ "code": 3, "message": "execution reverted", "data": data });
        return json!({ "jsonrpc": "2.0", "id": id, "error": error });
    }
    if method == "eth_getTransactionReceipt" && state.null_receipts.load(Ordering::SeqCst) {
        return json!({ "jsonrpc": "2.0", "id": id, "result": null });
    }
    let upstream = state.upstream.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let forwarded =
        async { state.client.post(&upstream).json(&call).send().await?.json::<Value>().await };
    match forwarded.await {
        Ok(answer) => answer,
        Err(e) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": e.to_string() } })
        }
    }
}

/// The transaction an `eth_sendRawTransaction` request carries.
fn raw_transaction(call: &Value) -> Option<TxEnvelope> {
    let raw: TxBytes = serde_json::from_value(call.get("params")?.get(0)?.clone()).ok()?;
    TxEnvelope::decode_2718(&mut raw.as_ref()).ok()
}
