//! Synthetic JSON-RPC endpoints for scale tests: many listeners on 127.0.0.1 answering from
//! memory for a chain that makes one block per second. Enough for a keeper's probes
//! (`eth_chainId`, `eth_blockNumber`, `eth_getBlockByNumber`, batches) without a node behind.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::primitives::keccak256;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{Error, Result};

/// `count` synthetic endpoints; dropping it stops them all.
#[derive(Debug)]
pub struct SyntheticEndpoints {
    urls: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

struct Chain {
    chain_id: u64,
    genesis: u64,
}

impl SyntheticEndpoints {
    /// Starts `count` endpoints of a chain with id `chain_id`.
    pub async fn start(count: usize, chain_id: u64) -> Result<Self> {
        let genesis = now().saturating_sub(100);
        let chain = Arc::new(Chain { chain_id, genesis });
        let mut urls = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| {
                Error::Io { context: "binding a synthetic endpoint".into(), source }
            })?;
            let addr = listener.local_addr().map_err(|source| Error::Io {
                context: "reading a synthetic endpoint address".into(),
                source,
            })?;
            urls.push(format!("http://{addr}"));
            let chain = chain.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let chain = chain.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| answer(chain.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }));
        }
        Ok(Self { urls, tasks })
    }

    /// The endpoints' URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

impl Drop for SyntheticEndpoints {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn answer(
    chain: Arc<Chain>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let reply = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(calls)) => Value::Array(calls.iter().map(|c| call(&chain, c)).collect()),
        Ok(single) => call(&chain, &single),
        Err(_) => {
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": "parse error" } })
        }
    };
    Ok(Response::new(Full::new(Bytes::from(reply.to_string()))))
}

fn call(chain: &Chain, request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let head = now().saturating_sub(chain.genesis);
    let block = |n: u64| {
        json!({
            "number": format!("{n:#x}"),
            "hash": keccak256(n.to_be_bytes()).to_string(),
            "stateRoot": keccak256([b"state".as_slice(), &n.to_be_bytes()].concat()).to_string(),
            "timestamp": format!("{:#x}", chain.genesis + n),
        })
    };
    let result = match request.get("method").and_then(Value::as_str) {
        Some("eth_chainId") => json!(format!("{:#x}", chain.chain_id)),
        Some("eth_blockNumber") => json!(format!("{head:#x}")),
        Some("eth_getBlockByNumber") => {
            let tag = request.pointer("/params/0").and_then(Value::as_str).unwrap_or("latest");
            let n = match tag {
                "latest" | "safe" | "finalized" | "pending" => head,
                hex => u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap_or(head),
            };
            if n > head { Value::Null } else { block(n) }
        }
        _ => {
            return json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "method not found" } });
        }
    };
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}
