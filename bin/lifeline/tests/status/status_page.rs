//! The gateway's status page in a real browser: headless Chromium (Debian's `chromium`, driven
//! over the DevTools protocol by `chromiumoxide`) opens `/status` on the admin listener of a
//! gateway following a devnet with three keeper processes; the active endpoint dies; the page,
//! by its own polling, must show the new epoch, the demoted endpoint and the transaction that
//! promoted its replacement within seconds. Every run writes a screenshot of the page to
//! `target/status/status.png`: the moment it first showed the failover (or the page as it was
//! when the test gave up).
//!
//! Chromium is found at `/usr/bin/chromium` (or `LIFELINE_CHROMIUM`); `make deps` installs it
//! as root. Without it the test fails with the command to run: it never skips.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{B256, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use chromiumoxide::{
    Browser, BrowserConfig, Page, handler::viewport::Viewport, page::ScreenshotParams,
};
use futures_util::StreamExt;
use lifeline_bindings::registry::RouteRegistry::RouteSetChanged;
use lifeline_devnet::{DEVNET_SERVICE, Fault};
use lifeline_gateway::{Gateway, GatewayConfig};
use serde::Deserialize;

use crate::world::{FAILOVER_BOUND, World, ids};

/// Where Debian's package puts Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The page must show the failover this long after the kill (longer only if the keepers
/// themselves took more than `SHOW_WITHIN - PAGE_LAG` to change the set on-chain).
const SHOW_WITHIN: Duration = Duration::from_secs(15);
/// How long the page may take to show an on-chain change (it polls every second).
const PAGE_LAG: Duration = Duration::from_secs(6);
/// The browser window: a laptop screen.
const WIDTH: u32 = 1440;
const HEIGHT: u32 = 900;

/// What the test reads back from the page: text as a person sees it.
#[derive(Debug, Default, Deserialize)]
struct Dom {
    /// The service heading's epoch badge, e.g. "epoch 2".
    epoch: String,
    /// Endpoint index -> the text of its State cell in the routes table.
    states: std::collections::HashMap<String, String>,
    /// The route set history table's text.
    history: String,
    /// The timeline's SVG text.
    timeline: String,
    /// The keepers table's rows.
    keepers: usize,
    /// The live indicator.
    live: String,
}

/// Reads [`Dom`] from the page.
const READ_DOM: &str = r#"(() => {
  const svc = document.querySelector("section.service");
  if (!svc) return JSON.stringify({ epoch: "", states: {}, history: "", timeline: "", keepers: 0,
    live: (document.getElementById("live") || {}).innerText || "" });
  const states = {};
  for (const tr of svc.querySelectorAll("table.routes tbody tr[data-endpoint]")) {
    states[tr.dataset.endpoint] = tr.querySelector("td.state").innerText;
  }
  return JSON.stringify({
    epoch: svc.querySelector("[data-role=epoch]").innerText,
    states,
    history: svc.querySelector("table.history").innerText,
    timeline: (svc.querySelector(".timeline svg") || {}).textContent || "",
    keepers: document.querySelectorAll("section.keepers tbody tr[data-keeper]").length,
    live: document.getElementById("live").innerText,
  });
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_failover() -> eyre::Result<()> {
    // Every browser call below is bounded too; this bounds the whole run, so a browser that stops
    // answering fails the test instead of hanging the suite.
    tokio::time::timeout(Duration::from_secs(180), shows_failover())
        .await
        .map_err(|_| eyre::eyre!("status_page_shows_failover did not finish within 180 s"))?
}

async fn shows_failover() -> eyre::Result<()> {
    let started = Instant::now();
    let chromium = chromium()?;
    let world = World::start(&[1, 2, 3]).await?;
    let out = world.toolchain.root().join("target/status");
    std::fs::create_dir_all(&out)?;
    let shot = out.join("status.png");
    let _ = std::fs::remove_file(&shot);

    let gateway = start_gateway(&world, true).await?;
    let url = format!("http://{}/status", gateway.admin_addr());
    // `status = false`: neither the page nor its JSON is served.
    let dark = start_gateway(&world, false).await?;
    for path in ["status", "status.json"] {
        let code = http_status(&format!("http://{}/{path}", dark.admin_addr())).await?;
        assert_eq!(code, 404, "/{path} with status = false");
    }
    dark.shutdown().await;

    // A client reading through the gateway, so the page has calls and latencies to show.
    let client = ProviderBuilder::new().connect_http(gateway.http_url(DEVNET_SERVICE).parse()?);
    let traffic = tokio::spawn(async move {
        loop {
            let _ = client.get_block_number().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let chrome = Chrome::launch(&chromium, &out.join("chromium-profile")).await?;
    let page = open_page(&chrome, url.as_str()).await?;
    eprintln!("[{:5.1}s] browser on {url}", started.elapsed().as_secs_f64());

    // The page shows the set in force before anything fails.
    let before = world.routes().await?;
    let victim = before.routes[0].id;
    let shown = wait_for_page(&page, Duration::from_secs(15), &shot, |dom| {
        dom.epoch == format!("epoch {}", before.epoch)
            && before
                .routes
                .iter()
                .all(|r| dom.states.get(&r.id.to_string()).is_some_and(|s| s.contains("active")))
            && dom.keepers == 3
            && dom.live.contains("live")
    })
    .await
    .map_err(|e| eyre::eyre!("before the outage: {e}"))?;
    eprintln!(
        "[{:5.1}s] page shows epoch {} ({:?})",
        started.elapsed().as_secs_f64(),
        before.epoch,
        shown.states
    );

    // The outage: the active endpoint dies; the keepers demote it on-chain.
    world.proxy(victim).set(Fault::Down);
    let killed = Instant::now();
    let after = world
        .wait_until("keepers demote the dead route", FAILOVER_BOUND, |s| !ids(s).contains(&victim))
        .await?;
    let on_chain = killed.elapsed();
    let tx = promoting_transaction(&world, after.epoch).await?;
    eprintln!(
        "[{:5.1}s] on-chain: epoch {} in tx {tx}, {:.2}s after the kill",
        started.elapsed().as_secs_f64(),
        after.epoch,
        on_chain.as_secs_f64()
    );

    // The page shows it: the new epoch, the demoted endpoint, the promoting transaction.
    let limit = SHOW_WITHIN.max(on_chain + PAGE_LAG).saturating_sub(killed.elapsed());
    let tx_text = tx.to_string();
    let dom = wait_for_page(&page, limit, &shot, |dom| {
        page_epoch(dom).is_some_and(|e| e >= after.epoch)
            && dom.states.get(&victim.to_string()).is_some_and(|s| s.contains("demoted"))
            && dom.history.contains(&tx_text)
            && dom.history.contains(&format!("demoted #{victim}"))
            && dom.timeline.contains(&format!("epoch {}", after.epoch))
    })
    .await
    .map_err(|e| {
        eyre::eyre!(
            "the page did not show the failover (epoch {}, demoted #{victim}, tx {tx}) within \
             {:.1}s of the kill: {e}",
            after.epoch,
            killed.elapsed().as_secs_f64()
        )
    })?;
    let seen = killed.elapsed();
    eprintln!(
        "[{:5.1}s] page shows {}: #{victim} {:?}, tx {tx}, {:.2}s after the kill \
         ({:.2}s after the chain); screenshot {}",
        started.elapsed().as_secs_f64(),
        dom.epoch,
        dom.states.get(&victim.to_string()),
        seen.as_secs_f64(),
        seen.saturating_sub(on_chain).as_secs_f64(),
        shot.display()
    );
    assert!(dom.live.contains("live"), "the page is live: {:?}", dom.live);
    assert!(std::fs::metadata(&shot)?.len() > 10_000, "screenshot written");

    chrome.close().await;
    traffic.abort();
    gateway.shutdown().await;
    eprintln!("[{:5.1}s] done", started.elapsed().as_secs_f64());
    Ok(())
}

/// The system Chromium, or an error with the command that installs it.
fn chromium() -> eyre::Result<PathBuf> {
    let path = std::env::var_os("LIFELINE_CHROMIUM")
        .map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    if path.is_file() {
        return Ok(path);
    }
    eyre::bail!(
        "Chromium is needed by the status page test and is not at {}.\n  Install it with:  \
         sudo apt-get update && sudo apt-get install -y chromium\n  (or run `make deps` as root; \
         LIFELINE_CHROMIUM=/path/to/chromium points the test at another build)",
        path.display()
    )
}

/// A headless Chromium with a fresh profile, killed (by its own process handle) when dropped.
struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    profile: PathBuf,
}

impl Chrome {
    async fn launch(executable: &Path, profile: &Path) -> eyre::Result<Self> {
        let _ = std::fs::remove_dir_all(profile);
        std::fs::create_dir_all(profile)?;
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            // Exactly these flags (plus --headless, --remote-debugging-port=0 and the profile).
            .disable_default_args()
            .no_sandbox()
            .args([
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "no-default-browser-check",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "disable-dev-shm-usage",
                "hide-scrollbars",
                "mute-audio",
            ])
            .user_data_dir(profile)
            .window_size(WIDTH, HEIGHT)
            .viewport(Viewport {
                width: WIDTH,
                height: HEIGHT,
                device_scale_factor: Some(1.0),
                ..Default::default()
            })
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| eyre::eyre!("browser config: {e}"))?;
        let (browser, mut events) = Browser::launch(config)
            .await
            .map_err(|e| eyre::eyre!("launching {}: {e}", executable.display()))?;
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Ok(Self { browser, handler, profile: profile.to_path_buf() })
    }

    /// Closes the browser, then makes sure its process is gone.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.close()).await;
        if tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await.is_err() {
            let _ = self.browser.kill().await;
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // The browser process is killed on drop (kill_on_drop on its own child handle).
        self.handler.abort();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Polls the page's DOM until `done`, at most `limit`; screenshots it either way (the moment it
/// was done, or when the wait gave up).
async fn wait_for_page(
    page: &Page,
    limit: Duration,
    shot: &Path,
    done: impl Fn(&Dom) -> bool,
) -> eyre::Result<Dom> {
    let deadline = Instant::now() + limit;
    let mut last = Dom::default();
    loop {
        if let Ok(dom) = read_dom(page).await {
            if done(&dom) {
                screenshot(page, shot).await?;
                return Ok(dom);
            }
            last = dom;
        }
        if Instant::now() >= deadline {
            screenshot(page, shot).await?;
            eyre::bail!(
                "after {limit:?} the page showed: {last:#?} (screenshot {})",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_dom(page: &Page) -> eyre::Result<Dom> {
    let text: String = tokio::time::timeout(Duration::from_secs(5), page.evaluate(READ_DOM))
        .await
        .map_err(|_| eyre::eyre!("the browser took over 5 s to evaluate"))??
        .into_value()?;
    Ok(serde_json::from_str(&text)?)
}

async fn screenshot(page: &Page, path: &Path) -> eyre::Result<()> {
    let params = ScreenshotParams::builder().full_page(true).build();
    tokio::time::timeout(Duration::from_secs(15), page.save_screenshot(params, path))
        .await
        .map_err(|_| eyre::eyre!("the browser took over 15 s to take a screenshot"))??;
    Ok(())
}

/// Opens `url` in a new tab, bounded in time (a few tries: under load the first navigation can
/// be slow to report).
async fn open_page(chrome: &Chrome, url: &str) -> eyre::Result<Page> {
    let mut last = String::new();
    for attempt in 1..=3 {
        match tokio::time::timeout(Duration::from_secs(15), chrome.browser.new_page(url)).await {
            Ok(Ok(page)) => return Ok(page),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within 15 s (attempt {attempt})"),
        }
    }
    eyre::bail!("opening {url} in Chromium: {last}")
}

fn page_epoch(dom: &Dom) -> Option<u32> {
    dom.epoch.strip_prefix("epoch ")?.trim().parse().ok()
}

/// The transaction whose `RouteSetChanged` began `epoch`.
async fn promoting_transaction(world: &World, epoch: u32) -> eyre::Result<B256> {
    let filter = Filter::new()
        .address(world.devnet.registry())
        .event_signature(RouteSetChanged::SIGNATURE_HASH)
        .topic1(world.devnet.service_id())
        .topic2(B256::from(U256::from(epoch)))
        .from_block(0);
    let logs = world.registry.contract().provider().get_logs(&filter).await?;
    logs.last()
        .and_then(|log| log.transaction_hash)
        .ok_or_else(|| eyre::eyre!("no RouteSetChanged log for epoch {epoch}"))
}

async fn start_gateway(world: &World, status: bool) -> eyre::Result<Gateway> {
    let mut config = GatewayConfig::loopback(
        &world.devnet.rpc_url(),
        world.devnet.registry(),
        &[DEVNET_SERVICE],
    );
    config.status = status;
    config.transport.attempt_timeout_ms = 800;
    let gateway = Gateway::start(config).await?;
    eyre::ensure!(gateway.ready(Duration::from_secs(10)).await, "gateway found no route");
    Ok(gateway)
}

/// The HTTP status of a GET (127.0.0.1 only).
async fn http_status(url: &str) -> eyre::Result<u16> {
    Ok(alloy::transports::http::reqwest::get(url).await?.status().as_u16())
}
