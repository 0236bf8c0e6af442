//! Integration tests of the gateway against a real registry on anvil, its endpoints behind
//! fault-injecting proxies: the JSON-RPC edge (bad input answered, never forwarded), batches,
//! the admin endpoints, a property test throwing random input at HTTP and WebSocket, and
//! graceful shutdown.

use std::time::Duration;

use alloy::transports::http::reqwest::{Client, StatusCode};
use futures_util::{SinkExt, StreamExt};
use lifeline_devnet::{DEVNET_SERVICE, Devnet, DevnetOptions, Fault, Toolchain};
use lifeline_gateway::{Gateway, GatewayConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod edge;
mod fuzz;
mod registry;

/// A devnet (automine, two endpoint proxies, set filled by attestations) and a gateway on it.
pub(crate) struct Fixture {
    pub(crate) devnet: Devnet,
    pub(crate) gateway: Gateway,
    pub(crate) http: Client,
}

impl Fixture {
    pub(crate) async fn start(extra: &str) -> eyre::Result<Self> {
        let toolchain = Toolchain::locate()?;
        let devnet =
            Devnet::start(&toolchain, &DevnetOptions { endpoints: 2, ..Default::default() })
                .await?;
        devnet.bootstrap_routes().await?;
        let config = GatewayConfig::parse(&format!(
            r#"
            listen = "127.0.0.1:0"
            admin_listen = "127.0.0.1:0"
            [registry]
            rpc_url = "{}"
            address = "{}"
            poll_interval_ms = 100
            [[service]]
            name = "{DEVNET_SERVICE}"
            {extra}
            "#,
            devnet.rpc_url(),
            devnet.registry()
        ))?;
        let gateway = Gateway::start(config).await?;
        eyre::ensure!(gateway.ready(Duration::from_secs(10)).await, "gateway found no route");
        Ok(Self { devnet, gateway, http: Client::new() })
    }

    pub(crate) fn url(&self) -> String {
        self.gateway.http_url(DEVNET_SERVICE)
    }

    /// Requests the upstream proxies received so far, minus the transport's own head polls
    /// (`eth_chainId`, `eth_getBlockByNumber`), which run in the background.
    pub(crate) fn upstream_requests(&self) -> u64 {
        self.devnet
            .proxies()
            .iter()
            .map(|p| p.requests() - p.calls("eth_chainId") - p.calls("eth_getBlockByNumber"))
            .sum()
    }

    /// POSTs `body` to `url`; (status, body text).
    pub(crate) async fn post(
        &self,
        url: &str,
        body: impl Into<Vec<u8>>,
    ) -> eyre::Result<(StatusCode, String)> {
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await?;
        Ok((resp.status(), resp.text().await?))
    }

    /// POSTs one JSON value and parses the answer.
    pub(crate) async fn call(&self, body: Value) -> eyre::Result<Value> {
        let (status, text) = self.post(&self.url(), body.to_string()).await?;
        eyre::ensure!(status == StatusCode::OK, "HTTP {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    pub(crate) async fn admin(&self, path: &str) -> eyre::Result<(StatusCode, String)> {
        let resp =
            self.http.get(format!("http://{}{path}", self.gateway.admin_addr())).send().await?;
        Ok((resp.status(), resp.text().await?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_show_routes_health_and_metrics() -> eyre::Result<()> {
    let f = Fixture::start("").await?;
    f.call(json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})).await?;
    let (status, routes) = f.admin("/routes").await?;
    assert_eq!(status, StatusCode::OK);
    let routes: Value = serde_json::from_str(&routes)?;
    let service = &routes["services"][0];
    assert_eq!(service["service"], DEVNET_SERVICE);
    assert!(service["epoch"].as_u64() >= Some(1), "{service}");
    assert_eq!(service["active"].as_array().map(Vec::len), Some(2), "{service}");
    assert_eq!(f.admin("/healthz").await?.0, StatusCode::OK);
    let (_, metrics) = f.admin("/metrics").await?;
    for needle in [
        r#"lifeline_gateway_requests_total{service="eth-devnet/rpc",method="eth_blockNumber"} 1"#,
        "lifeline_gateway_route_requests_total{",
        r#"lifeline_gateway_epoch{service="eth-devnet/rpc"}"#,
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}:\n{metrics}");
    }

    // Every route down: calls fail with a JSON-RPC error naming the routes, breakers open,
    // and /healthz says why.
    for proxy in f.devnet.proxies() {
        proxy.set(Fault::Down);
    }
    let mut unhealthy = None;
    for _ in 0..40 {
        let answer =
            f.call(json!({"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"})).await?;
        assert_eq!(answer["error"]["code"], -32603, "{answer}");
        let (status, body) = f.admin("/healthz").await?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            unhealthy = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = unhealthy.ok_or_else(|| eyre::eyre!("/healthz stayed 200 with every route down"))?;
    assert!(body.contains("circuit breaker"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_websockets_with_a_close_frame() -> eyre::Result<()> {
    let f = Fixture::start("").await?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(f.gateway.ws_url(DEVNET_SERVICE)).await?;
    socket
        .send(Message::Text(
            json!({"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]})
                .to_string()
                .into(),
        ))
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next()).await?;
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "subscribed: {first:?}");
    let shutdown = tokio::spawn(f.gateway.shutdown());
    let mut close = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(6), socket.next()).await
    {
        if let Ok(Message::Close(frame)) = message {
            close = frame;
            break;
        }
    }
    let frame = close.ok_or_else(|| eyre::eyre!("no close frame"))?;
    assert_eq!(u16::from(frame.code), 1001, "going away");
    tokio::time::timeout(Duration::from_secs(8), shutdown).await??;
    Ok(())
}

/// A `newPendingTransactions` subscription over the gateway's WebSocket is told the hash of a
/// transaction sent through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transaction_subscribers_see_a_sent_transaction() -> eyre::Result<()> {
    use alloy::{
        network::EthereumWallet,
        primitives::{Address, U256},
        providers::{Provider, ProviderBuilder},
    };
    let f = Fixture::start("").await?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(f.gateway.ws_url(DEVNET_SERVICE)).await?;
    let subscribe = json!({"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newPendingTransactions"]});
    socket.send(Message::Text(subscribe.to_string().into())).await?;
    let Some(Ok(Message::Text(answer))) =
        tokio::time::timeout(Duration::from_secs(5), socket.next()).await?
    else {
        eyre::bail!("no answer to eth_subscribe");
    };
    let id = serde_json::from_str::<Value>(&answer)?["result"].clone();
    eyre::ensure!(id.is_string(), "subscribed: {answer}");
    // Give the follower its first poll (it creates the filter) before sending.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sender = ProviderBuilder::new()
        .wallet(EthereumWallet::from(f.devnet.account(2)))
        .connect_http(f.url().parse()?);
    let sent = sender
        .send_transaction(
            alloy::rpc::types::TransactionRequest::default()
                .to(Address::with_last_byte(1))
                .value(U256::from(1)),
        )
        .await?;
    let hash = format!("{:#x}", sent.tx_hash());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| eyre::eyre!("no notification carried {hash}"))?;
        let Some(Ok(Message::Text(text))) = message else {
            eyre::bail!("socket ended: {message:?}")
        };
        let note: Value = serde_json::from_str(&text)?;
        assert_eq!(note["params"]["subscription"], id, "{text}");
        if note["params"]["result"] == Value::String(hash.clone()) {
            return Ok(());
        }
    }
}
