//! Collect: probes of one endpoint, bounded in time and size. JSON-RPC endpoints report chain id
//! and head (number, hash, timestamp); HTTP endpoints a health status; TCP endpoints connect
//! time. One HTTP client (connection reuse) serves every probe.

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    transports::http::reqwest::{self, Url},
};
use serde_json::{Value, json};

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No connection (refused, reset, closed early).
    Unreachable(String),
    /// No complete answer within the timeout.
    Timeout,
    /// A non-success HTTP status.
    HttpStatus(u16),
    /// The node answered with a JSON-RPC error.
    RpcError(i64, String),
    /// The answer is not the JSON expected.
    Garbage(String),
    /// The answer exceeded the size cap.
    TooLarge(usize),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "unreachable: {e}"),
            Self::Timeout => f.write_str("timeout"),
            Self::HttpStatus(s) => write!(f, "HTTP {s}"),
            Self::RpcError(code, msg) => write!(f, "JSON-RPC error {code}: {msg}"),
            Self::Garbage(e) => write!(f, "unreadable answer: {e}"),
            Self::TooLarge(n) => write!(f, "answer larger than {n} bytes"),
        }
    }
}

/// A JSON-RPC node's head as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// `eth_chainId`.
    pub chain_id: u64,
    /// Latest block number.
    pub number: u64,
    /// Latest block hash.
    pub hash: B256,
    /// Latest block timestamp, unix seconds.
    pub timestamp: u64,
    /// Latest block state root.
    pub state_root: B256,
}

/// A block at a given height as an endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAt {
    /// Block hash.
    pub hash: B256,
    /// State root.
    pub state_root: B256,
}

/// An account proof as an endpoint serves it (`eth_getProof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// Nonce claimed.
    pub nonce: u64,
    /// Balance claimed.
    pub balance: U256,
    /// Storage root claimed.
    pub storage_hash: B256,
    /// Code hash claimed.
    pub code_hash: B256,
    /// Trie nodes from the state root to the account.
    pub account_proof: Vec<Bytes>,
}

/// The head probe, the same for every endpoint and round: `eth_chainId` and the latest block
/// in one batch (serialised once, not per probe).
const HEAD_BATCH: &[u8] = br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":2,"method":"eth_getBlockByNumber","params":["latest",false]}]"#;

/// The prober: a shared HTTP client plus limits.
#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
    timeout: Duration,
    max_bytes: usize,
}

impl Prober {
    /// A prober with a per-probe `timeout` and a response cap of `max_bytes`.
    pub fn new(timeout: Duration, max_bytes: usize) -> Self {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        Self { client, timeout, max_bytes }
    }

    /// `eth_chainId` and the latest block, in one batch; returns the head and the latency.
    pub async fn head(&self, url: &Url) -> (Duration, Result<Head, ProbeFailure>) {
        let started = Instant::now();
        let result = self
            .post_bytes(url, bytes::Bytes::from_static(HEAD_BATCH))
            .await
            .and_then(|answer| parse_head(&answer));
        (started.elapsed(), result)
    }

    /// The block at `number`.
    pub async fn block_at(&self, url: &Url, number: u64) -> Result<BlockAt, ProbeFailure> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
            "params": [format!("{number:#x}"), false]
        });
        let block = result_of(&self.post(url, &body).await?)?;
        Ok(BlockAt { hash: field(&block, "hash")?, state_root: field(&block, "stateRoot")? })
    }

    /// `eth_getProof(account, [], number)`.
    pub async fn account_proof(
        &self,
        url: &Url,
        account: Address,
        number: u64,
    ) -> Result<AccountProof, ProbeFailure> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_getProof",
            "params": [account, [], format!("{number:#x}")]
        });
        let proof = result_of(&self.post(url, &body).await?)?;
        let garbage = |what: &str| ProbeFailure::Garbage(format!("eth_getProof: bad {what}"));
        Ok(AccountProof {
            nonce: hex_u64(proof.get("nonce")).ok_or_else(|| garbage("nonce"))?,
            balance: field(&proof, "balance")?,
            storage_hash: field(&proof, "storageHash")?,
            code_hash: field(&proof, "codeHash")?,
            account_proof: serde_json::from_value(
                proof.get("accountProof").cloned().unwrap_or_default(),
            )
            .map_err(|_| garbage("accountProof"))?,
        })
    }

    /// GET `url`: success on a 2xx status.
    pub async fn http(&self, url: &Url) -> (Duration, Result<(), ProbeFailure>) {
        let started = Instant::now();
        let result =
            match tokio::time::timeout(self.timeout, self.client.get(url.clone()).send()).await {
                Err(_) => Err(ProbeFailure::Timeout),
                Ok(Err(e)) => Err(unreachable(&e)),
                Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
                Ok(Ok(resp)) => Err(ProbeFailure::HttpStatus(resp.status().as_u16())),
            };
        (started.elapsed(), result)
    }

    /// TCP connect to the URL's host and port.
    pub async fn tcp(&self, url: &Url) -> (Duration, Result<(), ProbeFailure>) {
        let started = Instant::now();
        let Some(host) = url.host_str() else {
            return (Duration::ZERO, Err(ProbeFailure::Unreachable("no host in the URL".into())));
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let result =
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((host, port)))
                .await
            {
                Err(_) => Err(ProbeFailure::Timeout),
                Ok(Err(e)) => Err(ProbeFailure::Unreachable(e.to_string())),
                Ok(Ok(_)) => Ok(()),
            };
        (started.elapsed(), result)
    }

    /// POSTs a JSON body and reads at most `max_bytes` of the answer, all within the timeout.
    async fn post(&self, url: &Url, body: &Value) -> Result<Value, ProbeFailure> {
        let body = serde_json::to_vec(body).map_err(|e| ProbeFailure::Garbage(e.to_string()))?;
        self.post_bytes(url, body.into()).await
    }

    /// POSTs a serialised JSON body (see [`Prober::post`]).
    async fn post_bytes(&self, url: &Url, body: bytes::Bytes) -> Result<Value, ProbeFailure> {
        let exchange = async {
            let mut resp = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| unreachable(&e))?;
            if !resp.status().is_success() {
                return Err(ProbeFailure::HttpStatus(resp.status().as_u16()));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(&e))? {
                if bytes.len() + chunk.len() > self.max_bytes {
                    return Err(ProbeFailure::TooLarge(self.max_bytes));
                }
                bytes.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&bytes).map_err(|e| ProbeFailure::Garbage(e.to_string()))
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ProbeFailure::Timeout)?
    }
}

fn unreachable(err: &reqwest::Error) -> ProbeFailure {
    if err.is_timeout() {
        return ProbeFailure::Timeout;
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    // reqwest names the URL; a resolved template carries a secret, so it is never shown.
    if let Some(url) = err.url() {
        text = text.replace(&format!(" for url ({url})"), "").replace(url.as_str(), "[endpoint]");
    }
    ProbeFailure::Unreachable(text)
}

fn parse_head(answer: &Value) -> Result<Head, ProbeFailure> {
    let responses =
        answer.as_array().ok_or_else(|| ProbeFailure::Garbage("expected a batch answer".into()))?;
    let by_id = |id: u64| {
        responses
            .iter()
            .find(|r| r.get("id").and_then(Value::as_u64) == Some(id))
            .ok_or_else(|| ProbeFailure::Garbage(format!("no answer for request {id}")))
            .and_then(result_of)
    };
    let chain_id =
        hex_u64(Some(&by_id(1)?)).ok_or_else(|| ProbeFailure::Garbage("bad eth_chainId".into()))?;
    let block = by_id(2)?;
    Ok(Head {
        chain_id,
        number: hex_u64(block.get("number"))
            .ok_or_else(|| ProbeFailure::Garbage("bad block number".into()))?,
        hash: field(&block, "hash")?,
        timestamp: hex_u64(block.get("timestamp"))
            .ok_or_else(|| ProbeFailure::Garbage("bad block timestamp".into()))?,
        state_root: field(&block, "stateRoot")?,
    })
}

fn result_of(response: &Value) -> Result<Value, ProbeFailure> {
    if let Some(err) = response.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("").to_string();
        return Err(ProbeFailure::RpcError(code, message));
    }
    match response.get("result") {
        Some(Value::Null) | None => Err(ProbeFailure::Garbage("null result".into())),
        Some(result) => Ok(result.clone()),
    }
}

fn field<T: std::str::FromStr>(object: &Value, name: &str) -> Result<T, ProbeFailure> {
    object
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProbeFailure::Garbage(format!("missing or bad `{name}`")))
}

fn hex_u64(value: Option<&Value>) -> Option<u64> {
    u64::from_str_radix(value?.as_str()?.strip_prefix("0x")?, 16).ok()
}
