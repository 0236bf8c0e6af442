//! Private endpoint URLs end to end: an endpoint that demands an API key is registered as a
//! template (`http://127.0.0.1:PORT/${DEVNET_API_KEY}`); keeper processes (the key in their
//! environment), the Rust failover transport and the gateway (the key in a 0600 file) serve it,
//! and the key appears in no log line, metric, route listing or status page. A registered URL
//! that would send a secret where it does not belong is refused before any connection.

use std::{path::Path, time::Duration};

use alloy::{
    primitives::keccak256,
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
};
use lifeline_bindings::{
    FailoverConfig, FailoverTransport, WatchConfig,
    client::{Route, RouteSet},
    secrets::{SecretSource, Secrets},
};
use lifeline_devnet::{
    CountingListener, DEVNET_SECRET, DEVNET_SERVICE, Devnet, DevnetOptions, Fault, KeeperOptions,
    Toolchain,
};
use lifeline_gateway::{Gateway, GatewayConfig};

use crate::world::{FAILOVER_BOUND, World, ids};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

/// A key no test run shares with another.
fn fresh_key() -> String {
    let seed = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
    alloy::primitives::hex::encode(keccak256(seed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_endpoint_is_served_with_the_key_only_in_local_config() -> eyre::Result<()> {
    let key = fresh_key();
    let options = DevnetOptions { api_key: Some(key.clone()), ..Default::default() };
    let world = World::start_with(&[1, 2, 3], options).await?;
    let keyed: u16 = 3;
    let template = format!("{}/${{{DEVNET_SECRET}}}", world.proxy(keyed).url());

    // The keepers can only judge the keyed endpoint healthy by sending the key: with every
    // other endpoint down, the registry promotes it.
    for endpoint in 0..keyed {
        world.proxy(endpoint).set(Fault::Down);
    }
    let set = world
        .wait_until("keepers promote the keyed endpoint", FAILOVER_BOUND * 2, |s| {
            ids(s) == vec![keyed]
        })
        .await?;
    assert_eq!(set.routes[0].url, template, "the registry holds the template");
    let keeper_requests = world.proxy(keyed).requests();
    assert!(keeper_requests > 0, "keepers probed the keyed endpoint");

    // The Rust client: a failover transport following the registry, the key from a file.
    let toolchain = Toolchain::locate()?;
    let sources = world.devnet.secret_sources(&toolchain)?;
    let transport = FailoverTransport::new(FailoverConfig {
        secrets: Secrets::load(&sources)?,
        ..Default::default()
    });
    let _follower = transport.follow(
        world.registry.clone(),
        world.devnet.service_id(),
        WatchConfig { poll_interval: Duration::from_millis(200), ..Default::default() },
    );
    let client = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), false));
    let mut head = 0;
    for _ in 0..50 {
        if let Ok(n) = client.get_block_number().await {
            head = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(head > 0, "the client read through the keyed endpoint");
    client.get_balance(world.devnet.account(1).address()).await?;

    // The gateway, the key from the same file.
    let mut config = GatewayConfig::loopback(
        &world.devnet.rpc_url(),
        world.devnet.registry(),
        &[DEVNET_SERVICE],
    );
    config.secrets = sources;
    let gateway = Gateway::start(config).await?;
    eyre::ensure!(gateway.ready(Duration::from_secs(10)).await, "gateway found no route");
    let through = ProviderBuilder::new().connect_http(gateway.http_url(DEVNET_SERVICE).parse()?);
    assert!(through.get_block_number().await? > 0, "the gateway served a read");
    through.get_balance(world.devnet.account(1).address()).await?;
    assert!(world.proxy(keyed).requests() > keeper_requests, "client and gateway used it");
    assert_eq!(world.proxy(keyed).unauthorized(), 0, "nobody ever asked without the key");

    // Everything shown: gateway admin pages and metrics, keeper logs and metrics, the
    // transport's route reports, `lifeline routes`.
    let admin = gateway.admin_addr();
    let mut shown = Vec::new();
    for page in ["routes", "metrics", "status.json"] {
        let url = format!("http://{admin}/{page}");
        shown.push((url.clone(), alloy::transports::http::reqwest::get(&url).await?.text().await?));
    }
    assert!(
        shown[0].1.contains(&format!("${{{DEVNET_SECRET}}}")),
        "/routes shows the template: {}",
        shown[0].1
    );
    let dir = world.devnet.dir(&toolchain);
    for keeper in world.keepers.iter().flatten() {
        let log = std::fs::read_to_string(keeper.log())?;
        shown.push((keeper.log().display().to_string(), log));
        let config = std::fs::read_to_string(dir.join(format!("keeper-{}.toml", keeper.keeper())))?;
        assert!(!config.contains(&key), "the key is not in the keeper's config file");
        let listen = config
            .lines()
            .find_map(|l| l.strip_prefix("listen = \""))
            .and_then(|l| l.strip_suffix('"'))
            .ok_or_else(|| eyre::eyre!("keeper metrics address"))?;
        let url = format!("http://{listen}/metrics");
        shown.push((url.clone(), alloy::transports::http::reqwest::get(&url).await?.text().await?));
    }
    shown.push(("transport routes".into(), format!("{:?}", transport.routes())));
    let routes = tokio::process::Command::new(LIFELINE)
        .args(["routes", "--service", DEVNET_SERVICE])
        .env("LIFELINE_RPC_URL", world.devnet.rpc_url())
        .env("LIFELINE_REGISTRY", world.devnet.registry().to_string())
        .output()
        .await?;
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains(&template),
        "`lifeline routes` shows the template"
    );
    shown.push((
        "lifeline routes".into(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&routes.stdout),
            String::from_utf8_lossy(&routes.stderr)
        ),
    ));
    for (what, text) in &shown {
        assert!(!text.is_empty(), "{what} is not empty");
        assert!(!text.contains(&key), "the key appears in {what}");
    }
    gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_urls_that_would_leak_a_secret_are_refused_with_no_connection()
-> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let sink = CountingListener::start().await?;
    let port = sink.port();
    // Whoever governs the registry names the keeper's own key, or sends a configured secret
    // to a host it is not for ("localhost" is not "127.0.0.1" in `hosts`).
    let steal_key = format!("http://127.0.0.1:{port}/${{LIFELINE_KEEPER_KEY}}");
    let move_secret = format!("http://localhost:{port}/${{{DEVNET_SECRET}}}");

    // The Rust client never requests either.
    let dir = toolchain.root().join(format!("target/devnet/secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("key");
    {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let mut options = std::fs::OpenOptions::new();
        options.create(true).write(true).truncate(true).mode(0o600);
        options.open(&file)?.write_all(fresh_key().as_bytes())?;
    }
    let sources = [(
        DEVNET_SECRET.to_string(),
        SecretSource { env: None, file: Some(file), hosts: vec!["127.0.0.1".into()] },
    )]
    .into_iter()
    .collect();
    let transport = FailoverTransport::new(FailoverConfig {
        secrets: Secrets::load(&sources)?,
        ..Default::default()
    });
    let route = |id: u16, url: &str| Route {
        id,
        url: url.to_string(),
        region: "eu".into(),
        provider: "p".into(),
        latency_ms: 1,
        degraded: false,
    };
    let set = RouteSet {
        epoch: 1,
        routes: vec![route(0, &steal_key), route(1, &move_secret)],
        ..Default::default()
    };
    assert!(!transport.apply(&set), "a set of unusable routes is not applied");
    let client = ProviderBuilder::new().connect_client(RpcClient::new(transport, false));
    assert!(client.get_block_number().await.is_err(), "no route to ask");

    // A keeper refuses them at startup, naming each (with the key in its environment and the
    // secret configured), and with `skip` runs without ever requesting them.
    let config = dir.join("devnet.json");
    let keepers: Vec<_> = (1..=3)
        .map(|i| serde_json::json!({ "address": anvil_address(i), "vantage": "eu-west" }))
        .collect();
    let endpoint = |url: &str| serde_json::json!({ "url": url, "region": "eu-west", "provider": "p", "operator": anvil_address(9) });
    std::fs::write(
        &config,
        serde_json::json!({
            "keepers": keepers,
            "services": [{
                "name": DEVNET_SERVICE,
                "config": { "chainId": 31337, "targetActive": 1, "floor": 1, "minRegions": 1,
                    "quorum": 2, "minVantages": 0, "maxDemotions": 3, "demotionWindow": 600,
                    "cooldown": 30, "attestationTtl": 120 },
                "endpoints": [endpoint(&steal_key), endpoint(&move_secret)],
            }],
        })
        .to_string(),
    )?;
    let devnet =
        Devnet::start(&toolchain, &DevnetOptions { config: Some(config), ..Default::default() })
            .await?;
    let keeper_config = devnet.keeper_config(&toolchain, 1, &KeeperOptions::default())?;
    let base = std::fs::read_to_string(&keeper_config)?;
    let secret = format!(
        "\n[secrets.{DEVNET_SECRET}]\nfile = {:?}\nhosts = [\"127.0.0.1\"]\n",
        dir.join("key")
    );
    std::fs::write(&keeper_config, format!("{base}{secret}"))?;
    let run = run_keeper(&devnet, &toolchain, &keeper_config, Duration::from_secs(30)).await?;
    assert!(!run.0, "the keeper stops at startup:\n{}", run.1);
    assert!(
        run.1.contains("endpoint #0: ")
            && run.1.contains("${LIFELINE_KEEPER_KEY} is not in [secrets]"),
        "names the endpoint and the placeholder:\n{}",
        run.1
    );
    let skip = base.replace("refresh_secs = 10", "refresh_secs = 10\nunusable_urls = \"skip\"");
    std::fs::write(&keeper_config, format!("{skip}{secret}"))?;
    let run = run_keeper(&devnet, &toolchain, &keeper_config, Duration::from_secs(4)).await?;
    assert!(
        run.1.contains(&format!("secret {DEVNET_SECRET} may not be sent to host localhost")),
        "the moved secret is named:\n{}",
        run.1
    );
    assert_eq!(sink.accepted(), 0, "no connection was ever made");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Anvil's default accounts 1, 2, 3 and 9 (from its well-known test mnemonic).
fn anvil_address(index: u32) -> &'static str {
    match index {
        1 => "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        2 => "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        3 => "0x90F79bf6EB2c4f870365E6B8cB7F6f9eEb3fD4A4",
        _ => "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
    }
}

/// Runs `lifeline keeper` as keeper 1 with `config` (its key in its environment) until it exits
/// or `limit` passes; returns whether it was still running then, and its output.
async fn run_keeper(
    devnet: &Devnet,
    toolchain: &Toolchain,
    config: &Path,
    limit: Duration,
) -> eyre::Result<(bool, String)> {
    let keeper = devnet.spawn_keeper(toolchain, Path::new(LIFELINE), 1, config)?;
    let log = keeper.log().to_path_buf();
    let mut keeper = keeper;
    let started = std::time::Instant::now();
    while keeper.is_running() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = keeper.is_running();
    keeper.shutdown(Duration::from_secs(5)).await;
    let text = std::fs::read_to_string(&log)?;
    std::fs::write(&log, "")?;
    Ok((still, text))
}
