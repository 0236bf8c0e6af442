//! The registry read through a quorum of RPC URLs: one that forges `authorisedRoutes` cannot
//! redirect the gateway's traffic (alone, it can: the forgery is real).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    providers::{Provider, ProviderBuilder},
    sol_types::SolCall,
};
use lifeline_bindings::registry::RouteRegistry;
use lifeline_devnet::{DEVNET_SERVICE, Devnet, DevnetOptions, Fault, FaultProxy, Toolchain};
use lifeline_gateway::{Gateway, GatewayConfig};

/// Counts the TCP connections made to a listener on 127.0.0.1 (the forged route).
async fn counting_listener() -> eyre::Result<(u16, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok((port, accepted))
}

async fn gateway(devnet: &Devnet, rpc: &str, more: &[String]) -> eyre::Result<Gateway> {
    let more: Vec<String> = more.iter().map(|u| format!("\"{u}\"")).collect();
    let config = GatewayConfig::parse(&format!(
        r#"
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        [registry]
        rpc_url = "{rpc}"
        rpc_urls = [{}]
        address = "{}"
        poll_interval_ms = 100
        [[service]]
        name = "{DEVNET_SERVICE}"
        "#,
        more.join(", "),
        devnet.registry()
    ))?;
    let gateway = Gateway::start(config).await?;
    eyre::ensure!(gateway.ready(Duration::from_secs(10)).await, "gateway found no route");
    Ok(gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_rpc_that_forges_the_route_set_cannot_redirect_the_gateway() -> eyre::Result<()>
{
    let toolchain = Toolchain::locate()?;
    let devnet =
        Devnet::start(&toolchain, &DevnetOptions { endpoints: 2, ..Default::default() }).await?;
    devnet.bootstrap_routes().await?;
    let (port, accepted) = counting_listener().await?;
    let mut rpcs = Vec::new();
    for _ in 0..3 {
        rpcs.push(FaultProxy::start(devnet.rpc_url()).await?);
    }
    let forged = RouteRegistry::RouteSet {
        epoch: 7,
        lastAttestedAt: 0,
        stale: false,
        routes: vec![RouteRegistry::Route {
            id: 0,
            url: format!("http://127.0.0.1:{port}/"),
            region: "eu-west".into(),
            provider: "p".into(),
            latencyMs: 1,
            degraded: false,
        }],
    };
    let result = RouteRegistry::authorisedRoutesCall::abi_encode_returns(&forged);
    rpcs[2].set(Fault::ForgeCall {
        to: devnet.registry(),
        result: alloy::primitives::hex::encode_prefixed(result),
    });

    // Through a quorum of the three: every read served, none sent to the forged route.
    let urls: Vec<String> = rpcs.iter().map(FaultProxy::url).collect();
    let guarded = gateway(&devnet, &urls[0], &urls[1..]).await?;
    let client = ProviderBuilder::new().connect_http(guarded.http_url(DEVNET_SERVICE).parse()?);
    for _ in 0..20 {
        client.get_block_number().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 0, "no connection to the forged route");
    guarded.shutdown().await;

    // Through the liar alone, the forgery works: the gateway sends traffic to it.
    let fooled = gateway(&devnet, &urls[2], &[]).await;
    let client = fooled.as_ref().map(|g| {
        ProviderBuilder::new().connect_http(g.http_url(DEVNET_SERVICE).parse().expect("url"))
    });
    if let Ok(client) = &client {
        let _ = tokio::time::timeout(Duration::from_secs(3), client.get_block_number()).await;
    }
    assert!(accepted.load(Ordering::Relaxed) > 0, "alone, the lying RPC redirects traffic");
    if let Ok(g) = fooled {
        g.shutdown().await;
    }
    Ok(())
}
