//! The registry read through a quorum of RPC URLs: one that forges `authorisedRoutes` cannot
//! redirect the gateway's traffic (alone, it can: the forgery is real).

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use lifeline_devnet::{
    CountingListener, DEVNET_SERVICE, Devnet, DevnetOptions, Fault, FaultProxy, Toolchain,
};
use lifeline_gateway::{Gateway, GatewayConfig};

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
    let sink = CountingListener::start().await?;
    let mut rpcs = Vec::new();
    for _ in 0..3 {
        rpcs.push(FaultProxy::start(devnet.rpc_url()).await?);
    }
    rpcs[2].set(Fault::forged_route_set(
        devnet.registry(),
        &format!("http://127.0.0.1:{}/", sink.port()),
        7,
    ));

    // Through a quorum of the three: every read served, none sent to the forged route.
    let urls: Vec<String> = rpcs.iter().map(FaultProxy::url).collect();
    let guarded = gateway(&devnet, &urls[0], &urls[1..]).await?;
    let client = ProviderBuilder::new().connect_http(guarded.http_url(DEVNET_SERVICE).parse()?);
    for _ in 0..20 {
        client.get_block_number().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.accepted(), 0, "no connection to the forged route");
    guarded.shutdown().await;

    // Through the liar alone, the forgery works: the gateway sends traffic to it.
    let fooled = gateway(&devnet, &urls[2], &[]).await;
    let client = fooled.as_ref().map(|g| {
        ProviderBuilder::new().connect_http(g.http_url(DEVNET_SERVICE).parse().expect("url"))
    });
    if let Ok(client) = &client {
        let _ = tokio::time::timeout(Duration::from_secs(3), client.get_block_number()).await;
    }
    assert!(sink.accepted() > 0, "alone, the lying RPC redirects traffic");
    if let Ok(g) = fooled {
        g.shutdown().await;
    }
    Ok(())
}
