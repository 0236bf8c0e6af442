//! The JSON-RPC edge: every kind of bad input gets its error and reaches no upstream; batches
//! are answered in order; services are found by name (with `/`) or by id.

use alloy::transports::http::reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_by_the_gateway_and_never_reaches_an_upstream() -> eyre::Result<()> {
    let f = Fixture::start("[limits]\nmax_batch = 3\nmax_body_bytes = 4096").await?;
    let before = f.upstream_requests();
    let url = f.url();

    let (status, body) = f.post(&url, "{\"jsonrpc\":").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), -32700, "malformed JSON: {body}");

    for invalid in [
        json!({"jsonrpc": "1.0", "id": 1, "method": "eth_blockNumber"}),
        json!({"jsonrpc": "2.0", "id": 1}),
        json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "eth_blockNumber"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": 5}),
        json!([]),
        json!(42),
    ] {
        let (_, body) = f.post(&url, invalid.to_string()).await?;
        assert_eq!(code(&body), -32600, "{invalid} -> {body}");
    }

    for refused in [
        "eth_sendTransaction",
        "eth_sign",
        "admin_peers",
        "debug_traceCall",
        "personal_sign",
        "miner_start",
        "anvil_mine",
        "eth_subscribe",
    ] {
        let (_, body) = f
            .post(
                &url,
                json!({"jsonrpc": "2.0", "id": 7, "method": refused, "params": []}).to_string(),
            )
            .await?;
        assert_eq!(code(&body), -32601, "{refused}: {body}");
        assert!(body.contains(refused), "the error names the method: {body}");
    }

    let (status, body) = f.post(&f.url().replace("eth-devnet/rpc", "nope"), "{}").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("nope") && body.contains("eth-devnet/rpc"), "names the services: {body}");

    let (status, _) = f.post(&url, vec![b' '; 8192]).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"});
    let (_, body) = f.post(&url, json!([call, call, call, call]).to_string()).await?;
    assert_eq!(code(&body), -32600, "batch over max_batch: {body}");
    assert!(body.contains("limits.max_batch"), "{body}");

    assert_eq!(f.upstream_requests(), before, "no bad input reached an upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_their_order_and_services_resolve_by_name_or_id() -> eyre::Result<()> {
    let f = Fixture::start("").await?;
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "latest"]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_sendTransaction", "params": [{}]},
        {"bogus": true},
        {"jsonrpc": "2.0", "id": null, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"}
    ]);
    let answer = f.call(batch).await?;
    let items =
        answer.as_array().ok_or_else(|| eyre::eyre!("batch answered as a batch: {answer}"))?;
    assert_eq!(items.len(), 5, "the notification gets no answer: {answer}");
    assert_eq!(items[0]["id"], "a");
    assert_eq!(items[0]["result"], format!("{:#x}", f.devnet.chain_id()));
    assert_eq!(items[1]["id"], 2);
    assert!(items[1]["result"].as_str().is_some_and(|b| b.len() > 10), "{answer}");
    assert_eq!(items[2]["error"]["code"], -32601);
    assert_eq!(items[3]["error"]["code"], -32600);
    assert_eq!(items[4]["id"], Value::Null);
    assert!(items[4]["result"].is_string());

    let by_id = format!("http://{}/rpc/{}", f.gateway.rpc_addr(), f.devnet.service_id());
    let (_, body) = f
        .post(&by_id, json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).to_string())
        .await?;
    assert!(body.contains("result"), "service by 0x id: {body}");

    // A revert is the upstream's answer, passed through with its code and data.
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "eth_call", "params": [{"to": f.devnet.registry(), "data": "0xdeadbeef"}, "latest"]});
    let answer = f.call(call).await?;
    assert!(answer["error"]["code"].as_i64().is_some() && answer["id"] == 9, "{answer}");
    Ok(())
}

fn code(body: &str) -> i64 {
    serde_json::from_str::<Value>(body).ok().and_then(|v| v["error"]["code"].as_i64()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_made_through_the_gateway_survive_the_loss_of_their_route() -> eyre::Result<()> {
    let f = Fixture::start("").await?;
    let filter = f.call(json!({"jsonrpc": "2.0", "id": 1, "method": "eth_newBlockFilter"})).await?;
    let id =
        filter["result"].as_str().ok_or_else(|| eyre::eyre!("filter id: {filter}"))?.to_string();
    // The route that served the call (the best one) goes down; a block is mined on anvil.
    let best = f.gateway.services()[0].transport().routes()[0].url.to_string();
    for proxy in f.devnet.proxies() {
        if best.starts_with(&proxy.url()) {
            proxy.set(lifeline_devnet::Fault::Down);
        }
    }
    let anvil = alloy::providers::ProviderBuilder::new().connect_http(f.devnet.rpc_url().parse()?);
    alloy::providers::Provider::raw_request::<_, Value>(&anvil, "evm_mine".into(), ()).await?;
    let changes = f
        .call(json!({"jsonrpc": "2.0", "id": 2, "method": "eth_getFilterChanges", "params": [id]}))
        .await?;
    let hashes = changes["result"].as_array().ok_or_else(|| eyre::eyre!("changes: {changes}"))?;
    assert_eq!(hashes.len(), 1, "the new block, once, from another route: {changes}");
    let again = f
        .call(json!({"jsonrpc": "2.0", "id": 3, "method": "eth_getFilterChanges", "params": [id]}))
        .await?;
    assert_eq!(again["result"], json!([]), "nothing new: {again}");
    Ok(())
}
