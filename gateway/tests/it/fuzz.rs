//! Random bytes and random JSON thrown at the HTTP and WebSocket paths: the gateway answers
//! every one (or closes the socket cleanly), never crashes, and forwards none of it upstream.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lifeline_devnet::DEVNET_SERVICE;
use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::Fixture;

/// Random JSON values (bounded depth and size).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map("[a-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Random request-shaped objects whose method is never one the gateway forwards.
fn refused_calls() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        "(admin|debug|personal|miner|anvil|evm|txpool)_[a-zA-Z]{0,10}",
        Just("eth_sendTransaction".to_string()),
        Just("eth_sign".to_string()),
        "[a-z]{1,10}",
    ];
    (method, any_json(), any_json()).prop_map(|(method, id, params)| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        refused_calls().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(refused_calls(), 1..5)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_input_over_http_and_websocket_never_crashes_or_reaches_an_upstream()
-> eyre::Result<()> {
    let f = Fixture::start("").await?;
    let before = f.upstream_requests();
    let mut runner = TestRunner::deterministic();
    let strategy = inputs();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(f.gateway.ws_url(DEVNET_SERVICE)).await?;
    for case in 0..300 {
        let input = strategy.new_tree(&mut runner).map_err(|e| eyre::eyre!("{e}"))?.current();
        let (status, body) = f.post(&f.url(), input.clone()).await?;
        assert!(
            status.is_success() || status.is_client_error(),
            "case {case}: HTTP {status} for {input:?}"
        );
        if status == 200 && !body.is_empty() {
            let answer: Value = serde_json::from_str(&body)
                .map_err(|e| eyre::eyre!("case {case}: answer is not JSON ({e}): {body}"))?;
            let items = answer.as_array().cloned().unwrap_or_else(|| vec![answer.clone()]);
            assert!(items.iter().all(|i| i["error"]["code"].is_i64()), "case {case}: {body}");
        }
        // Over WebSocket, as text when it is UTF-8 (else binary): an answer or nothing (a
        // notification), and the connection stays usable.
        let message = match String::from_utf8(input.clone()) {
            Ok(text) => Message::Text(text.into()),
            Err(_) => Message::Binary(input.clone().into()),
        };
        socket.send(message).await?;
    }
    // The socket still answers after all that, in order behind the fuzz answers.
    socket
        .send(Message::Text(
            json!({"jsonrpc": "2.0", "id": "last", "method": "eth_chainId"}).to_string().into(),
        ))
        .await?;
    let mut answered = false;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await
    {
        if let Message::Text(text) = message? {
            let v: Value = serde_json::from_str(&text)?;
            if v["id"] == "last" {
                answered = v["result"].is_string();
                break;
            }
            let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
            assert!(
                items.iter().all(|i| i["error"]["code"].is_i64()),
                "fuzz over WS answered: {text}"
            );
        }
    }
    assert!(answered, "the WebSocket connection survived random input");
    // Only the one valid call above went upstream.
    assert!(f.upstream_requests() <= before + 1, "random input reached an upstream");
    let answer = f.call(json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})).await?;
    assert!(answer["result"].is_string(), "still serving: {answer}");
    Ok(())
}
