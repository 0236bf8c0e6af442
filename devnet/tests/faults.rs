//! The proxy's faults against a real anvil (automine): every fault kind bites every method it
//! claims to, the way a real misbehaving node would.

use std::time::Duration;

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{hex, keccak256},
    transports::http::reqwest,
};
use futures_util::{SinkExt, StreamExt};
use lifeline_devnet::{Fault, FaultProxy, Toolchain, emitter::TICK_BYTECODE, forks};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// anvil's first dev account (unlocked, funded).
const ALICE: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
/// An account nobody else uses.
const CAROL: &str = "0x00000000000000000000000000000000000ca201";
/// Creation code that returns `block.number` as one word: an `eth_call` without `to` runs it
/// and answers the block it ran at (`NUMBER PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN`).
const BLOCK_NUMBER_CODE: &str = "0x4360005260206000f3";
/// Bound of every single wait in these tests.
const STEP: Duration = Duration::from_secs(10);

fn toolchain() -> Toolchain {
    Toolchain::locate().expect("toolchain: run `npm ci` first")
}

/// anvil on 127.0.0.1 (free port, automine), killed on drop.
fn anvil() -> AnvilInstance {
    Anvil::at(toolchain().anvil()).host("127.0.0.1").try_spawn().expect("anvil starts")
}

async fn proxied_anvil() -> (AnvilInstance, String, FaultProxy) {
    let anvil = anvil();
    let url = forks::rpc_url(&anvil);
    let proxy = FaultProxy::start(url.clone()).await.expect("proxy starts");
    (anvil, url, proxy)
}

/// One JSON-RPC call; the whole response object.
async fn call(url: &str, method: &str, params: Value) -> Value {
    let request = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
    post(url, &request).await
}

async fn post(url: &str, body: &Value) -> Value {
    let resp = tokio::time::timeout(STEP, reqwest::Client::new().post(url).json(body).send())
        .await
        .expect("answered in time")
        .expect("answered");
    assert!(resp.status().is_success(), "{} answered HTTP {}", url, resp.status());
    resp.json().await.expect("a JSON answer")
}

/// One JSON-RPC call's `result` (panics on an error answer).
async fn result(url: &str, method: &str, params: Value) -> Value {
    let answer = call(url, method, params.clone()).await;
    assert_eq!(answer["id"], json!(7), "{answer}");
    match answer.get("result") {
        Some(result) => result.clone(),
        None => panic!("{method}({params}) at {url}: {answer}"),
    }
}

fn number(value: &Value) -> u64 {
    let hex = value.as_str().unwrap_or_else(|| panic!("a hex quantity: {value}"));
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).expect("hex")
}

/// The word an `eth_call` answered, as a number.
fn word(value: &Value) -> u64 {
    let hex = value.as_str().expect("call output");
    u64::from_str_radix(&hex[hex.len() - 16..], 16).expect("hex word")
}

fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

/// Sends a transaction from ALICE (automine: mined in its own block) and returns its hash.
async fn send(url: &str, tx: Value) -> String {
    let mut tx = tx;
    tx["from"] = json!(ALICE);
    let hash = result(url, "eth_sendTransaction", json!([tx])).await;
    let receipt = receipt(url, &hash).await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    hash.as_str().expect("a hash").to_string()
}

/// The transaction's receipt, once mined (anvil's automine answers the send before the block
/// is in).
async fn receipt(url: &str, hash: &Value) -> Value {
    let mined = async {
        loop {
            let receipt = result(url, "eth_getTransactionReceipt", json!([hash])).await;
            if receipt.is_object() {
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(STEP, mined).await.expect("mined in time")
}

/// Deploys the Tick contract (one log per call, keeps the value it is sent) in block 1, then
/// calls it `calls` times with 1000, 2000, ... wei, one block each. Returns the contract and
/// the call hashes (call `i` in block `i + 2`).
async fn ticks(url: &str, calls: u64) -> (String, Vec<String>) {
    let deploy = send(url, json!({ "data": hex::encode_prefixed(TICK_BYTECODE) })).await;
    let receipt = receipt(url, &json!(deploy)).await;
    let tick = receipt["contractAddress"].as_str().expect("deployed").to_string();
    let mut hashes = Vec::new();
    for i in 1..=calls {
        let data = format!("0x{i:064x}");
        let value = quantity(i * 1000);
        hashes.push(send(url, json!({ "to": tick, "data": data, "value": value })).await);
    }
    (tick, hashes)
}

#[tokio::test]
async fn lag_answers_every_latest_call_at_the_lagging_head() {
    let (_anvil, chain, proxy) = proxied_anvil().await;
    let (tick, calls) = ticks(&chain, 5).await;
    assert_eq!(number(&result(&chain, "eth_blockNumber", json!([])).await), 6);
    proxy.set(Fault::Lag(3));
    let url = proxy.url();
    let at = quantity(3);

    assert_eq!(result(&url, "eth_blockNumber", json!([])).await, json!(at));
    // State at `latest`, `pending` and with the block omitted: the chain's state at head - 3.
    let balance_then = result(&chain, "eth_getBalance", json!([tick, at])).await;
    assert_eq!(number(&balance_then), 3000, "calls 1 and 2 by block 3");
    assert_eq!(number(&result(&chain, "eth_getBalance", json!([tick, "latest"])).await), 15000);
    assert_eq!(result(&url, "eth_getBalance", json!([tick, "latest"])).await, balance_then);
    assert_eq!(result(&url, "eth_getBalance", json!([tick])).await, balance_then);
    assert_eq!(
        result(&url, "eth_getBalance", json!([tick, { "blockNumber": "latest" }])).await,
        balance_then
    );
    assert_eq!(
        number(&result(&url, "eth_getTransactionCount", json!([ALICE, "pending"])).await),
        3
    );
    let code = result(&url, "eth_getCode", json!([tick, "latest"])).await;
    assert_eq!(code, result(&chain, "eth_getCode", json!([tick, at])).await);
    // eth_call runs at the lagging block.
    let number_call = json!({ "data": BLOCK_NUMBER_CODE });
    assert_eq!(word(&result(&chain, "eth_call", json!([number_call, "latest"])).await), 6);
    assert_eq!(word(&result(&url, "eth_call", json!([number_call, "latest"])).await), 3);
    assert_eq!(word(&result(&url, "eth_call", json!([number_call])).await), 3);
    assert_eq!(word(&result(&url, "eth_call", json!([number_call, "0x2"])).await), 2);
    let proof = result(&url, "eth_getProof", json!([tick, [], "latest"])).await;
    assert_eq!(number(&proof["balance"]), 3000);
    assert_eq!(
        number(&result(&url, "eth_feeHistory", json!(["0x1", "latest", []])).await["oldestBlock"]),
        3
    );

    // Blocks: `latest` is head - 3, and nothing above it exists.
    let block3 = result(&chain, "eth_getBlockByNumber", json!([at, false])).await;
    let latest = result(&url, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(latest["hash"], block3["hash"]);
    assert_eq!(result(&url, "eth_getBlockByNumber", json!(["0x5", false])).await, Value::Null);
    let block5 = result(&chain, "eth_getBlockByNumber", json!(["0x5", false])).await;
    assert_eq!(
        result(&url, "eth_getBlockByHash", json!([block5["hash"], false])).await,
        Value::Null
    );
    assert_eq!(
        result(&url, "eth_getBlockTransactionCountByNumber", json!(["0x5"])).await,
        Value::Null
    );
    let above = call(&url, "eth_getBalance", json!([tick, "0x5"])).await;
    assert_eq!(above["error"]["code"], json!(-32000), "{above}");
    assert_eq!(above["error"]["message"], json!("header not found"), "{above}");

    // Transactions and receipts: only those at or below the reported head.
    let (old, new) = (&calls[0], &calls[3]); // blocks 2 and 5
    assert!(result(&url, "eth_getTransactionReceipt", json!([old])).await.is_object());
    assert_eq!(result(&url, "eth_getTransactionReceipt", json!([new])).await, Value::Null);
    assert_eq!(result(&url, "eth_getTransactionByHash", json!([new])).await, Value::Null);

    // Logs: the range is clamped to the reported head.
    let logs = |filter: Value| {
        let url = url.clone();
        async move { result(&url, "eth_getLogs", json!([filter])).await }
    };
    let all = result(&chain, "eth_getLogs", json!([{ "address": tick, "fromBlock": "0x0" }])).await;
    assert_eq!(all.as_array().map(Vec::len), Some(5));
    let lagging = logs(json!({ "address": tick, "fromBlock": "0x0" })).await;
    assert_eq!(lagging.as_array().map(Vec::len), Some(2), "{lagging}");
    let clamped = logs(json!({ "address": tick, "fromBlock": "0x0", "toBlock": "0x6" })).await;
    assert_eq!(clamped, lagging);
    assert_eq!(logs(json!({ "address": tick, "fromBlock": "0x5" })).await, json!([]));
    assert_eq!(logs(json!({ "address": tick })).await.as_array().map(Vec::len), Some(1));

    // A batch answers every member at the same lagging head.
    let batch = post(
        &url,
        &json!([
            { "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": [] },
            { "jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": [tick, "latest"] },
            { "jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": [] },
        ]),
    )
    .await;
    assert_eq!(batch[0]["result"], json!(at), "{batch}");
    assert_eq!(batch[1]["result"], balance_then, "{batch}");
    assert_eq!(batch[2]["result"], json!("0x7a69"), "{batch}");

    // Over WebSocket too.
    let (mut ws, _) = connect_async(proxy.ws_url()).await.expect("WebSocket");
    let request = json!({ "jsonrpc": "2.0", "id": 9, "method": "eth_getBalance", "params": [tick, "latest"] });
    ws.send(Message::text(request.to_string())).await.expect("sent");
    let answer = tokio::time::timeout(STEP, ws.next()).await.expect("answered").expect("open");
    let answer: Value =
        serde_json::from_str(answer.expect("frame").to_text().expect("text")).expect("JSON");
    assert_eq!(answer["result"], balance_then, "{answer}");

    proxy.set(Fault::Up);
    assert_eq!(number(&result(&url, "eth_getBalance", json!([tick, "latest"])).await), 15000);
}

#[tokio::test]
async fn stalled_head_freezes_every_latest_read() {
    let (_anvil, chain, proxy) = proxied_anvil().await;
    let (tick, _) = ticks(&chain, 1).await;
    proxy.set(Fault::StalledHead);
    let url = proxy.url();
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 2, "stalls here");

    let data = format!("0x{:064x}", 2);
    let later = send(&chain, json!({ "to": tick, "data": data, "value": "0x7d0" })).await;
    result(&chain, "evm_mine", json!([])).await;
    assert_eq!(number(&result(&chain, "eth_blockNumber", json!([])).await), 4);

    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 2);
    assert_eq!(number(&result(&url, "eth_getBalance", json!([tick, "latest"])).await), 1000);
    let number_call = json!({ "data": BLOCK_NUMBER_CODE });
    assert_eq!(word(&result(&url, "eth_call", json!([number_call, "latest"])).await), 2);
    let latest = result(&url, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(number(&latest["number"]), 2);
    assert_eq!(result(&url, "eth_getTransactionReceipt", json!([later])).await, Value::Null);
    let logs = result(&url, "eth_getLogs", json!([{ "address": tick }])).await;
    assert_eq!(logs.as_array().map(Vec::len), Some(1), "the block-2 log only: {logs}");
    assert_eq!(
        number(&result(&url, "eth_getTransactionCount", json!([ALICE, "pending"])).await),
        2
    );

    proxy.set(Fault::Up);
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 4);
    assert_eq!(number(&result(&url, "eth_getBalance", json!([tick, "latest"])).await), 3000);
}

#[tokio::test]
async fn wrong_chain_answers_from_the_other_chain() {
    let (_anvil, chain, proxy) = proxied_anvil().await;
    let other = forks::other_chain(&toolchain(), 1, None).await.expect("other chain starts");
    let other_url = forks::rpc_url(&other);
    for _ in 0..3 {
        result(&other_url, "evm_mine", json!([])).await;
    }
    send(&chain, json!({ "to": CAROL, "value": "0xde0b6b3a7640000" })).await;

    let fault = forks::wrong_chain(&other);
    assert_eq!(fault, Fault::WrongChain { chain_id: 1, upstream: other_url.clone() });
    assert_eq!(fault.kind(), "wrong_chain");
    proxy.set(fault);
    let url = proxy.url();
    assert_eq!(result(&url, "eth_chainId", json!([])).await, json!("0x1"));
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 3);
    let latest = result(&url, "eth_getBlockByNumber", json!(["latest", false])).await;
    let theirs = result(&other_url, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(latest["hash"], theirs["hash"]);
    assert_eq!(number(&result(&url, "eth_getBalance", json!([CAROL, "latest"])).await), 0);
    assert_eq!(
        number(&result(&chain, "eth_getBalance", json!([CAROL, "latest"])).await),
        1_000_000_000_000_000_000
    );

    // A WebSocket opened under the fault reaches the other chain; switching the fault off drops
    // it (the backend changed), and a new one reaches the chain again.
    let (mut ws, _) = connect_async(proxy.ws_url()).await.expect("WebSocket");
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] });
    ws.send(Message::text(request.to_string())).await.expect("sent");
    let answer = tokio::time::timeout(STEP, ws.next()).await.expect("in time").expect("open");
    assert!(answer.expect("frame").to_text().expect("text").contains("\"0x1\""));
    proxy.set(Fault::Up);
    let ended = tokio::time::timeout(STEP, async { while let Some(Ok(_)) = ws.next().await {} });
    ended.await.expect("the WebSocket to the other chain is dropped");
    assert_eq!(result(&url, "eth_chainId", json!([])).await, json!("0x7a69"));

    // WrongChainId still only reports the id.
    proxy.set(Fault::WrongChainId(1));
    assert_eq!(result(&url, "eth_chainId", json!([])).await, json!("0x1"));
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 1);
}

#[tokio::test]
async fn forked_node_serves_divergent_hashes_past_the_fork() {
    let (_anvil, chain, proxy) = proxied_anvil().await;
    result(&chain, "evm_mine", json!([])).await;
    result(&chain, "evm_mine", json!([])).await;
    let fork = forks::fork_of(&toolchain(), &chain, None).await.expect("fork starts");
    let fork_url = forks::rpc_url(&fork);
    // Both grow past block 2, each with its own block 3.
    send(&chain, json!({ "to": CAROL, "value": "0x1" })).await;
    result(&fork_url, "evm_mine", json!([])).await;

    proxy.set(forks::forked(&fork));
    let url = proxy.url();
    assert_eq!(result(&url, "eth_chainId", json!([])).await, json!("0x7a69"), "same chain id");
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 3);
    let ours = |n: &str| {
        let (chain, n) = (chain.clone(), n.to_string());
        async move { result(&chain, "eth_getBlockByNumber", json!([n, false])).await["hash"].clone() }
    };
    let theirs = |n: &str| {
        let (url, n) = (url.clone(), n.to_string());
        async move { result(&url, "eth_getBlockByNumber", json!([n, false])).await["hash"].clone() }
    };
    assert_eq!(theirs("0x2").await, ours("0x2").await, "shared history up to the fork");
    let (forked, real) = (theirs("0x3").await, ours("0x3").await);
    assert!(forked.is_string() && real.is_string());
    assert_ne!(forked, real, "a different block 3");
    assert_eq!(number(&result(&url, "eth_getBalance", json!([CAROL, "latest"])).await), 0);

    // DivergentHash still rewrites hashes of the chain's own blocks.
    proxy.set(Fault::DivergentHash);
    assert_ne!(theirs("0x2").await, ours("0x2").await);
}

#[tokio::test]
async fn flaky_fails_every_nth_request() {
    let (_anvil, _chain, proxy) = proxied_anvil().await;
    let client = reqwest::Client::new();
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] });
    let statuses = |n: usize| {
        let (client, url, request) = (client.clone(), proxy.url(), request.clone());
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                let resp = client.post(&url).json(&request).send().await.expect("answered");
                statuses.push(resp.status().as_u16());
            }
            statuses
        }
    };
    proxy.set(Fault::Flaky { every: 3, status: 503 });
    assert_eq!(statuses(9).await, [200, 200, 503, 200, 200, 503, 200, 200, 503]);
    proxy.set(Fault::Flaky { every: 2, status: 429 });
    assert_eq!(statuses(4).await, [200, 429, 200, 429], "the count restarts when set");
    proxy.set(Fault::Flaky { every: 0, status: 503 });
    assert_eq!(statuses(3).await, [200, 200, 200]);
}

#[tokio::test]
async fn censor_answers_the_hash_and_never_forwards() {
    let (_anvil, chain, proxy) = proxied_anvil().await;
    let tx = json!({
        "from": ALICE, "to": CAROL, "value": "0x1", "gas": "0x5208", "nonce": "0x0",
        "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1", "chainId": "0x7a69",
    });
    let raw = result(&chain, "eth_signTransaction", json!([tx])).await;
    let expected = keccak256(hex::decode(raw.as_str().expect("raw tx")).expect("hex")).to_string();

    proxy.set(Fault::Censor);
    let url = proxy.url();
    let hash = result(&url, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(hash, json!(expected));
    assert_eq!(proxy.calls("eth_sendRawTransaction"), 1);
    // Never reached the node: not pending, not mined, nonce and balance untouched.
    result(&chain, "evm_mine", json!([])).await;
    assert_eq!(result(&chain, "eth_getTransactionByHash", json!([hash])).await, Value::Null);
    assert_eq!(
        number(&result(&chain, "eth_getTransactionCount", json!([ALICE, "pending"])).await),
        0
    );
    assert_eq!(number(&result(&chain, "eth_getBalance", json!([CAROL, "latest"])).await), 0);
    // Everything else is forwarded.
    assert_eq!(number(&result(&url, "eth_blockNumber", json!([])).await), 1);
    assert_eq!(result(&url, "eth_getTransactionReceipt", json!([hash])).await, Value::Null);

    // The node itself computes the same hash once the route stops censoring.
    proxy.set(Fault::Up);
    assert_eq!(result(&url, "eth_sendRawTransaction", json!([raw])).await, json!(expected));
    assert_eq!(receipt(&chain, &json!(expected)).await["status"], json!("0x1"));
}
