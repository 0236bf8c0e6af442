//! The gateway with real clients through an outage of the active route: keeper processes
//! demote it on-chain while cast, viem and ethers (npm, unmodified) read blocks, balances and
//! logs and send locally signed transactions through `/rpc/<service>`, and a WebSocket
//! subscriber must see every block and every matching log exactly once.

use std::{
    collections::{BTreeMap, HashMap},
    process::Stdio,
    time::{Duration, Instant},
};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, TxKind, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
};
use futures_util::{SinkExt, StreamExt};
use lifeline_devnet::{DEVNET_SERVICE, Fault, emitter::LogEmitter};
use lifeline_gateway::{Gateway, GatewayConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::world::{FAILOVER_BOUND, World, ids};

/// How long the clients run; the outage starts 4 s in.
const RUN: Duration = Duration::from_secs(16);
/// Recipient of the clients' 1-wei transfers.
const SINK: &str = "0x000000000000000000000000000000000000dEaD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_real_clients_and_subscribers_across_an_outage() -> eyre::Result<()> {
    let world = World::start(&[1, 2, 3]).await?;
    let devnet = &world.devnet;
    let emitter =
        LogEmitter::start(&devnet.rpc_url(), devnet.account(9), Duration::from_millis(400)).await?;
    let gateway = start_gateway(&world).await?;
    let (http, ws) = (gateway.http_url(DEVNET_SERVICE), gateway.ws_url(DEVNET_SERVICE));

    // A WebSocket subscriber: newHeads and the emitter's logs.
    let subscriber =
        tokio::spawn(subscribe(ws.clone(), emitter.address(), RUN + Duration::from_secs(4)));

    // viem and ethers, each with its own key (from the environment only).
    let root = world.toolchain.root().to_path_buf();
    let node_client = |client: &'static str, key_account: usize| {
        let key = devnet.account(key_account).to_bytes();
        let mut cmd = tokio::process::Command::new("node");
        cmd.current_dir(&root)
            .arg("tests/js/client.mjs")
            .args(["--client", client, "--http", &http, "--ws", &ws])
            .args(["--duration-ms", &RUN.as_millis().to_string(), "--to", SINK])
            .args(["--log-address", &emitter.address().to_string()])
            .args(["--log-topic", &emitter.topic().to_string()])
            .args(["--chain-id", &devnet.chain_id().to_string(), "--tx-every-ms", "700"])
            .env("LIFELINE_CLIENT_KEY", key.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn()
    };
    let viem = node_client("viem", 6)?;
    let ethers = node_client("ethers", 7)?;
    let cast = tokio::spawn(cast_loop(
        world.toolchain.cast(),
        http.clone(),
        devnet.account(8),
        devnet.chain_id(),
        RUN,
    ));

    // The outage: the active route dies; keepers demote it; the gateway follows.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = world.routes().await?;
    let victim = before.routes[0].id;
    world.proxy(victim).set(Fault::Down);
    let after = world
        .wait_until("keepers demote the dead route", FAILOVER_BOUND, |s| !ids(s).contains(&victim))
        .await?;
    let started = Instant::now();
    while gateway.services()[0].transport().epoch() < Some(after.epoch) {
        eyre::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "gateway never reached epoch {}",
            after.epoch
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let viem = finish(viem).await?;
    let ethers = finish(ethers).await?;
    let cast = cast.await??;
    eprintln!("viem   {viem}\nethers {ethers}\ncast   {cast:?}");
    for (name, report) in [("viem", &viem), ("ethers", &ethers)] {
        let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
        assert!(n("requests") > 50, "{name} made requests: {report}");
        assert_eq!(n("errors"), 0, "{name} saw errors through the gateway: {report}");
        assert!(n("tx_sent") >= 5, "{name} sent transactions: {report}");
        assert_eq!(n("tx_mined"), n("tx_sent"), "{name}: every transaction mined: {report}");
        assert_eq!(n("ws_errors"), 0, "{name}: WebSocket errors: {report}");
        let heads: Vec<u64> = report["heads"]
            .as_array()
            .map_or(Vec::new(), |h| h.iter().filter_map(Value::as_u64).collect());
        assert!(heads.len() >= 8, "{name} received heads over WebSocket: {report}");
        assert!(
            heads.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: heads without gap or repeat: {heads:?}"
        );
    }
    assert!(cast.reads > 20, "cast ran: {cast:?}");
    assert_eq!(cast.errors, 0, "cast saw errors through the gateway: {cast:?}");
    assert!(cast.published >= 3, "cast published transactions: {cast:?}");

    // The subscriber against anvil itself: every block and every matching log exactly once.
    let seen = subscriber.await??;
    let anvil = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let (first, last) = (
        *seen.heads.keys().next().ok_or_else(|| eyre::eyre!("no head delivered"))?,
        *seen.heads.keys().next_back().unwrap_or(&0),
    );
    assert!(last - first >= 10, "heads over the run: {first}..{last}");
    for number in first..=last {
        let block = anvil
            .get_block_by_number(number.into())
            .await?
            .ok_or_else(|| eyre::eyre!("anvil has no block {number}"))?;
        let delivered = seen.heads.get(&number).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            delivered,
            [block.header.hash],
            "block {number} delivered exactly once, canonical"
        );
    }
    let filter = Filter::new().address(emitter.address()).from_block(first).to_block(last);
    let expected: Vec<(B256, u64)> = anvil
        .get_logs(&filter)
        .await?
        .iter()
        .map(|l| (l.block_hash.unwrap_or_default(), l.log_index.unwrap_or_default()))
        .collect();
    assert!(expected.len() >= 10, "the emitter logged: {}", expected.len());
    let mut counts: HashMap<(B256, u64), u32> = HashMap::new();
    for key in &seen.logs {
        *counts.entry(*key).or_default() += 1;
    }
    for key in &expected {
        assert_eq!(counts.get(key).copied().unwrap_or(0), 1, "log {key:?} delivered exactly once");
    }
    gateway.shutdown().await;
    Ok(())
}

async fn start_gateway(world: &World) -> eyre::Result<Gateway> {
    let mut config = GatewayConfig::loopback(
        &world.devnet.rpc_url(),
        world.devnet.registry(),
        &[DEVNET_SERVICE],
    );
    config.transport.attempt_timeout_ms = 800;
    let gateway = Gateway::start(config).await?;
    eyre::ensure!(gateway.ready(Duration::from_secs(10)).await, "gateway found no route");
    Ok(gateway)
}

async fn finish(child: tokio::process::Child) -> eyre::Result<Value> {
    let out =
        tokio::time::timeout(RUN + Duration::from_secs(40), child.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| {
        eyre::eyre!(
            "client output is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What the WebSocket subscriber received.
#[derive(Debug, Default)]
struct Seen {
    /// Block number -> hashes delivered at that number (in order).
    heads: BTreeMap<u64, Vec<B256>>,
    /// (block hash, log index) of every log delivered with `removed: false`, minus the ones
    /// later delivered with `removed: true`.
    logs: Vec<(B256, u64)>,
}

async fn subscribe(url: String, address: Address, run: Duration) -> eyre::Result<Seen> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let ask = |id: u64, params: Value| {
        Message::Text(
            json!({"jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": params})
                .to_string()
                .into(),
        )
    };
    socket.send(ask(1, json!(["newHeads"]))).await?;
    socket.send(ask(2, json!(["logs", {"address": address}]))).await?;
    let mut subs: HashMap<String, &'static str> = HashMap::new();
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + run;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => break,
            Ok(None) => eyre::bail!("the gateway closed the subscription connection"),
            Ok(Some(message)) => message?,
        };
        let Message::Text(text) = message else { continue };
        let v: Value = serde_json::from_str(&text)?;
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            let sub = v["result"].as_str().ok_or_else(|| eyre::eyre!("subscribe failed: {v}"))?;
            subs.insert(sub.to_string(), if id == 1 { "heads" } else { "logs" });
            continue;
        }
        let sub = v["params"]["subscription"].as_str().unwrap_or_default();
        let result = &v["params"]["result"];
        let hex = |k: &str| {
            u64::from_str_radix(result[k].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)
        };
        match subs.get(sub) {
            Some(&"heads") => {
                let hash: B256 = result["hash"].as_str().unwrap_or_default().parse()?;
                seen.heads.entry(hex("number")?).or_default().push(hash);
            }
            Some(&"logs") => {
                let key =
                    (result["blockHash"].as_str().unwrap_or_default().parse()?, hex("logIndex")?);
                if result["removed"].as_bool() == Some(true) {
                    seen.logs.retain(|k| *k != key);
                } else {
                    seen.logs.push(key);
                }
            }
            _ => eyre::bail!("notification for an unknown subscription: {v}"),
        }
    }
    let _ = socket.close(None).await;
    // Heads after the last log read may be partial; the caller checks up to the last head.
    Ok(seen)
}

/// What the `cast` loop did.
#[derive(Debug, Default)]
struct CastRun {
    reads: u64,
    published: u64,
    errors: u64,
    last_error: Option<String>,
}

/// `cast block-number`, `cast balance`, `cast logs` and `cast publish` (of a transaction signed
/// here, so no key is on a command line) through the gateway, back to back, for `run`.
async fn cast_loop(
    cast: std::path::PathBuf,
    url: String,
    signer: alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    run: Duration,
) -> eyre::Result<CastRun> {
    let anvil_nonce = {
        let provider = ProviderBuilder::new().connect_http(url.parse()?);
        provider.get_transaction_count(signer.address()).await?
    };
    let mut nonce = anvil_nonce;
    let mut out = CastRun::default();
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < run {
        round += 1;
        let mut commands: Vec<Vec<String>> = vec![
            vec!["block-number".into()],
            vec!["balance".into(), SINK.into()],
            vec![
                "logs".into(),
                "--from-block".into(),
                "latest".into(),
                "--address".into(),
                SINK.into(),
            ],
        ];
        if round.is_multiple_of(3) {
            let mut tx = TxEip1559 {
                chain_id,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 20_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: TxKind::Call(SINK.parse()?),
                value: U256::from(1),
                ..Default::default()
            };
            let signature = signer.sign_transaction_sync(&mut tx)?;
            let raw = TxEnvelope::from(tx.into_signed(signature)).encoded_2718();
            commands
                .push(vec!["publish".into(), format!("0x{}", alloy::primitives::hex::encode(raw))]);
        }
        for args in commands {
            let publish = args[0] == "publish";
            let output = tokio::process::Command::new(&cast)
                .args(&args)
                .args(["--rpc-url", &url])
                .kill_on_drop(true)
                .output()
                .await?;
            if output.status.success() {
                if publish {
                    out.published += 1;
                    nonce += 1;
                } else {
                    out.reads += 1;
                }
            } else {
                out.errors += 1;
                out.last_error = Some(format!(
                    "cast {}: {}",
                    args[0],
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    Ok(out)
}
