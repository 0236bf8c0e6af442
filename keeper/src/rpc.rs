//! The keeper's registry RPC: every `registry.rpc_urls` entry, pinned to the registry's chain.
//!
//! ```text
//!  startup: every URL --eth_chainId + eth_getCode(registry)--> the registry's chain
//!           (registry.chain_id if set, else the chain most URLs holding the registry agree on)
//!           URLs of another chain, or without the contract: dropped, one error line naming them
//!           no URL left: the keeper does not start (one message naming each URL and why)
//!  request: preferred URL --(connection error, timeout, HTTP error, node behind, rate limit,
//!           eth_call answered with empty data)--> next URL --> ...
//!  transaction (eth_sendRawTransaction): every URL at once, first acceptance answers
//!  reconnect: a URL that failed is asked eth_chainId again before it serves again
//! ```
//!
//! The signing chain id is [`RegistryRpc::chain_id`]: the agreed one, never one a single URL
//! happened to report.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use alloy::{
    primitives::{Address, Bytes, U64},
    rpc::{
        client::RpcClient,
        json_rpc::{RequestPacket, ResponsePacket, ResponsePayload, RpcError},
    },
    transports::{
        TransportError, TransportErrorKind, TransportFut,
        http::{
            Http,
            reqwest::{self, Url},
        },
    },
};
use futures_util::future::join_all;
use tower::Service;
use tracing::{debug, error, info};

use crate::startup::StartupError;

/// Longest wait for one URL's answer before the next is asked.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Messages of nodes that lack the block or state asked for (another URL may have it).
const LAGGING_NODE: &[&str] = &[
    "header not found",
    "missing trie node",
    "unknown block",
    "block not found",
    "state not available",
    "state histories haven't been fully indexed",
];

/// What one URL said at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Survey {
    /// It answered.
    Answered {
        /// Its `eth_chainId`.
        chain_id: u64,
        /// The registry address holds code there.
        has_code: bool,
    },
    /// It did not answer (why).
    Unreachable(String),
}

/// What to do with each URL, from the startup survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The registry's chain: the signing chain id.
    pub chain_id: u64,
    /// Per URL (same order): `Some(true)` verified, `Some(false)` kept but not verified yet
    /// (it did not answer; checked before its first use), `None` dropped.
    pub keep: Vec<Option<bool>>,
    /// The dropped URLs' reasons, by index.
    pub dropped: Vec<(usize, String)>,
}

/// Decides the registry's chain and which URLs serve it. `configured` is `registry.chain_id`.
/// Without it, the chain is the one on which most URLs hold code at the registry address (a tie
/// is refused: set `registry.chain_id`).
pub fn pin(
    urls: &[Url],
    surveys: &[Survey],
    address: Address,
    configured: Option<u64>,
) -> Result<Pin, StartupError> {
    let listed = |pick: &dyn Fn(&Survey) -> bool| -> String {
        let mut out = Vec::new();
        for (url, survey) in urls.iter().zip(surveys) {
            if pick(survey) {
                out.push(match survey {
                    Survey::Answered { chain_id, has_code: true } => {
                        format!("{url} (chain {chain_id})")
                    }
                    Survey::Answered { chain_id, has_code: false } => {
                        format!("{url} (chain {chain_id}, no contract at {address})")
                    }
                    Survey::Unreachable(why) => format!("{url} ({why})"),
                });
            }
        }
        out.join(", ")
    };
    if surveys.iter().all(|s| matches!(s, Survey::Unreachable(_))) {
        return Err(StartupError::NoRegistryRpc(listed(&|_| true)));
    }
    let chain_id = match configured {
        Some(chain_id) => chain_id,
        None => {
            let mut counts: Vec<(u64, usize)> = Vec::new();
            for survey in surveys {
                if let Survey::Answered { chain_id, has_code: true } = survey {
                    match counts.iter_mut().find(|(c, _)| c == chain_id) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((*chain_id, 1)),
                    }
                }
            }
            counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            match counts.as_slice() {
                [] => {
                    let chains: Vec<u64> = surveys
                        .iter()
                        .filter_map(|s| match s {
                            Survey::Answered { chain_id, .. } => Some(*chain_id),
                            Survey::Unreachable(_) => None,
                        })
                        .collect();
                    return Err(StartupError::NoContract {
                        address,
                        chain_id: chains[0],
                        urls: listed(&|s| matches!(s, Survey::Answered { .. })),
                    });
                }
                [(_, n), (_, m), ..] if n == m => {
                    return Err(StartupError::ChainDisagreement(format!(
                        "registry.rpc_urls disagree on the registry's chain and none is in the majority: {}; set registry.chain_id",
                        listed(&|s| matches!(s, Survey::Answered { .. }))
                    )));
                }
                [(chain_id, _), ..] => *chain_id,
            }
        }
    };
    let mut keep = Vec::with_capacity(surveys.len());
    let mut dropped = Vec::new();
    for (i, survey) in surveys.iter().enumerate() {
        match survey {
            Survey::Answered { chain_id: c, has_code: true } if *c == chain_id => {
                keep.push(Some(true))
            }
            Survey::Answered { chain_id: c, has_code: false } if *c == chain_id => {
                keep.push(None);
                dropped.push((i, format!("no contract at {address} through it")));
            }
            Survey::Answered { chain_id: c, .. } => {
                keep.push(None);
                dropped.push((i, format!("serves chain {c}, the registry is on chain {chain_id}")));
            }
            Survey::Unreachable(_) => keep.push(Some(false)),
        }
    }
    if !keep.contains(&Some(true)) {
        let on_chain = surveys
            .iter()
            .any(|s| matches!(s, Survey::Answered { chain_id: c, .. } if *c == chain_id));
        if on_chain {
            return Err(StartupError::NoContract {
                address,
                chain_id,
                urls: listed(
                    &|s| matches!(s, Survey::Answered { chain_id: c, .. } if *c == chain_id),
                ),
            });
        }
        return Err(StartupError::ChainDisagreement(format!(
            "no registry RPC URL serves the registry's chain {chain_id}: {}",
            listed(&|_| true)
        )));
    }
    Ok(Pin { chain_id, keep, dropped })
}

/// One URL as the transport holds it.
#[derive(Debug)]
struct Route {
    url: Url,
    http: Http<reqwest::Client>,
    state: Mutex<RouteState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteState {
    /// Serves the registry's chain.
    Verified,
    /// Not confirmed (never answered, or failed since): asked `eth_chainId` before use.
    Unverified,
    /// Serves another chain: never used again.
    Dropped,
}

#[derive(Debug)]
struct Shared {
    chain_id: u64,
    routes: Vec<Route>,
    /// The route that answered last: asked first.
    preferred: AtomicUsize,
}

/// The keeper's registry-chain transport (an alloy transport: put it under a provider with
/// [`RegistryRpc::provider`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryRpc {
    shared: Arc<Shared>,
}

impl RegistryRpc {
    /// Surveys every URL and pins the transport to the registry's chain (see [`pin`]). Logs one
    /// error line naming the dropped URLs, if any.
    pub async fn connect(
        urls: &[Url],
        address: Address,
        configured: Option<u64>,
    ) -> Result<Self, StartupError> {
        let client =
            reqwest::Client::builder().connect_timeout(ATTEMPT_TIMEOUT).build().unwrap_or_default();
        let https: Vec<Http<reqwest::Client>> =
            urls.iter().map(|u| Http::with_client(client.clone(), u.clone())).collect();
        let surveys = join_all(https.iter().map(|http| survey(http, address))).await;
        let pin = pin(urls, &surveys, address, configured)?;
        if !pin.dropped.is_empty() {
            let mut text = String::new();
            for (i, why) in &pin.dropped {
                let _ =
                    write!(text, "{}{} ({why})", if text.is_empty() { "" } else { ", " }, urls[*i]);
            }
            error!(target: "keeper::rpc", chain_id = pin.chain_id, "registry RPC URLs dropped: {text}");
        }
        let routes = urls
            .iter()
            .zip(https)
            .zip(&pin.keep)
            .map(|((url, http), keep)| Route {
                url: url.clone(),
                http,
                state: Mutex::new(match keep {
                    Some(true) => RouteState::Verified,
                    Some(false) => RouteState::Unverified,
                    None => RouteState::Dropped,
                }),
            })
            .collect();
        info!(target: "keeper::rpc", chain_id = pin.chain_id, %address, "registry chain pinned");
        Ok(Self {
            shared: Arc::new(Shared {
                chain_id: pin.chain_id,
                routes,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    /// The registry's chain id: the one attestations are signed for.
    pub fn chain_id(&self) -> u64 {
        self.shared.chain_id
    }

    /// The URLs in use (not dropped).
    pub fn urls(&self) -> Vec<Url> {
        self.shared
            .routes
            .iter()
            .filter(|r| *lock(&r.state) != RouteState::Dropped)
            .map(|r| r.url.clone())
            .collect()
    }

    /// A read/write provider over this transport (receipts polled every 250 ms; no fillers:
    /// the submitter fills and signs its transactions itself).
    pub fn provider(&self) -> alloy::providers::DynProvider {
        use alloy::providers::{Provider, ProviderBuilder};
        let client =
            RpcClient::new(self.clone(), false).with_poll_interval(Duration::from_millis(250));
        ProviderBuilder::new().disable_recommended_fillers().connect_client(client).erased()
    }

    /// Routes in the order to try them: the preferred one first, dropped ones left out.
    fn order(&self) -> Vec<usize> {
        let n = self.shared.routes.len();
        let first = self.shared.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n)
            .map(|k| (first + k) % n)
            .filter(|&i| *lock(&self.shared.routes[i].state) != RouteState::Dropped)
            .collect()
    }

    /// Makes sure route `i` serves the registry's chain (asking it when unverified). Drops it,
    /// with an error line, when it serves another one.
    async fn verified(&self, i: usize) -> Result<(), String> {
        let route = &self.shared.routes[i];
        match lock(&route.state).clone() {
            RouteState::Verified => return Ok(()),
            RouteState::Dropped => return Err("dropped".into()),
            RouteState::Unverified => {}
        }
        let chain_id = chain_id_of(&route.http).await?;
        if chain_id == self.shared.chain_id {
            debug!(target: "keeper::rpc", url = %route.url, "registry RPC URL verified");
            *lock(&route.state) = RouteState::Verified;
            Ok(())
        } else {
            error!(
                target: "keeper::rpc",
                url = %route.url,
                chain_id,
                registry_chain_id = self.shared.chain_id,
                "registry RPC URL dropped: it now serves another chain"
            );
            *lock(&route.state) = RouteState::Dropped;
            Err(format!("serves chain {chain_id}"))
        }
    }

    async fn dispatch(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        if request.method_names().any(|m| m == "eth_sendRawTransaction") {
            return self.broadcast(request).await;
        }
        let empty_call = is_eth_call(&request);
        let mut attempts = Vec::new();
        let mut empty = None;
        for i in self.order() {
            if let Err(why) = self.verified(i).await {
                attempts.push((i, why));
                continue;
            }
            match self.attempt(i, request.clone()).await {
                Ok(packet) if empty_call && is_empty_result(&packet) => {
                    attempts.push((i, "eth_call answered with empty data".into()));
                    empty.get_or_insert(packet);
                }
                Ok(packet) => {
                    self.shared.preferred.store(i, Ordering::Relaxed);
                    return Ok(packet);
                }
                Err(why) => attempts.push((i, why)),
            }
        }
        // Every URL answered empty data: that is the answer (the caller decodes "no data").
        if let Some(packet) = empty {
            return Ok(packet);
        }
        Err(self.all_failed(&attempts))
    }

    /// One request to route `i`: the answer, or why another route should be asked. A route that
    /// failed to answer must show its chain again before it is used again.
    async fn attempt(&self, i: usize, request: RequestPacket) -> Result<ResponsePacket, String> {
        let route = &self.shared.routes[i];
        let mut http = route.http.clone();
        let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, http.call(request)).await {
            Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
            Ok(Err(RpcError::ErrorResp(payload))) => {
                // A JSON-RPC error returned as a transport error: an answer.
                return Err(format!("error {}: {}", payload.code, payload.message));
            }
            Ok(Err(e)) => Err(describe(&e)),
            Ok(Ok(packet)) => match lagging_or_limited(&packet) {
                Some(why) => return Err(why),
                None => Ok(packet),
            },
        };
        if outcome.is_err() {
            let mut state = lock(&route.state);
            if *state == RouteState::Verified {
                *state = RouteState::Unverified;
            }
        }
        outcome
    }

    /// Sends a transaction through every route at once; the first acceptance answers, else the
    /// first rejection (e.g. "nonce too low"), else an error naming every route.
    async fn broadcast(&self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let order = self.order();
        let sends = order.iter().map(|&i| {
            let request = request.clone();
            async move {
                if let Err(why) = self.verified(i).await {
                    return (i, Err(why));
                }
                (i, self.attempt(i, request).await)
            }
        });
        let results = join_all(sends).await;
        let mut rejection = None;
        let mut attempts = Vec::new();
        for (i, result) in results {
            match result {
                Ok(packet) if packet.is_success() => {
                    self.shared.preferred.store(i, Ordering::Relaxed);
                    return Ok(packet);
                }
                Ok(packet) => {
                    rejection.get_or_insert(packet);
                }
                Err(why) => attempts.push((i, why)),
            }
        }
        match rejection {
            Some(packet) => Ok(packet),
            None => Err(self.all_failed(&attempts)),
        }
    }

    fn all_failed(&self, attempts: &[(usize, String)]) -> TransportError {
        let mut text = String::from("no registry RPC URL answered");
        for (k, (i, why)) in attempts.iter().enumerate() {
            let _ = write!(
                text,
                "{}{} ({why})",
                if k == 0 { ": " } else { ", " },
                self.shared.routes[*i].url
            );
        }
        TransportErrorKind::custom_str(&text)
    }
}

impl Service<RequestPacket> for RegistryRpc {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().dispatch(request))
    }
}

/// Asks one URL its chain id and whether the registry address holds code there.
async fn survey(http: &Http<reqwest::Client>, address: Address) -> Survey {
    let chain_id = match chain_id_of(http).await {
        Ok(chain_id) => chain_id,
        Err(why) => return Survey::Unreachable(why),
    };
    let client = RpcClient::new(http.clone(), false);
    let code = client.request::<_, Bytes>("eth_getCode", (address, "latest"));
    match tokio::time::timeout(ATTEMPT_TIMEOUT, code).await {
        Ok(Ok(code)) => Survey::Answered { chain_id, has_code: !code.is_empty() },
        Ok(Err(e)) => Survey::Unreachable(format!("eth_getCode: {}", describe(&e))),
        Err(_) => Survey::Unreachable(format!("eth_getCode: no answer within {ATTEMPT_TIMEOUT:?}")),
    }
}

async fn chain_id_of(http: &Http<reqwest::Client>) -> Result<u64, String> {
    let client = RpcClient::new(http.clone(), false);
    match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request_noparams::<U64>("eth_chainId")).await
    {
        Ok(Ok(id)) => Ok(id.to::<u64>()),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
    }
}

fn is_eth_call(request: &RequestPacket) -> bool {
    matches!(request, RequestPacket::Single(r) if r.method() == "eth_call")
}

/// An `eth_call` answered `0x`: the node has no contract there (another chain, or not synced).
fn is_empty_result(packet: &ResponsePacket) -> bool {
    matches!(
        packet,
        ResponsePacket::Single(r)
            if matches!(&r.payload, ResponsePayload::Success(raw) if raw.get().trim() == "\"0x\"")
    )
}

fn lagging_or_limited(packet: &ResponsePacket) -> Option<String> {
    packet.iter_errors().find_map(|err| {
        let message = err.message.to_ascii_lowercase();
        if LAGGING_NODE.iter().any(|p| message.contains(p)) {
            Some(format!("node behind: {}", err.message))
        } else if matches!(err.code, -32005 | 429) || message.contains("rate limit") {
            Some(format!("rate limited: {}", err.message))
        } else {
            None
        }
    })
}

/// A transport error in one line, each cause once (reqwest nests the useful part).
fn describe(err: &TransportError) -> String {
    match err {
        RpcError::Transport(TransportErrorKind::HttpError(e)) => format!("HTTP {}", e.status),
        RpcError::Transport(kind) => {
            let mut parts = vec![kind.to_string()];
            let mut source = std::error::Error::source(kind);
            while let Some(inner) = source {
                let text = inner.to_string();
                if !parts.iter().any(|p| p.contains(&text)) {
                    parts.push(text);
                }
                source = inner.source();
            }
            parts.join(": ")
        }
        RpcError::ErrorResp(payload) => format!("error {}: {}", payload.code, payload.message),
        other => other.to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<Url> {
        (0..n).map(|i| format!("http://127.0.0.1:{}", 9000 + i).parse().expect("url")).collect()
    }

    const REGISTRY: Address = Address::repeat_byte(7);

    fn at(chain_id: u64) -> Survey {
        Survey::Answered { chain_id, has_code: true }
    }

    fn empty(chain_id: u64) -> Survey {
        Survey::Answered { chain_id, has_code: false }
    }

    #[test]
    fn the_chain_holding_the_registry_wins_and_the_others_are_dropped() {
        let pin = pin(&urls(2), &[empty(4242), at(31337)], REGISTRY, None).expect("pinned");
        assert_eq!(pin.chain_id, 31337);
        assert_eq!(pin.keep, [None, Some(true)]);
        assert_eq!(pin.dropped[0].0, 0);
        assert!(pin.dropped[0].1.contains("serves chain 4242"), "{:?}", pin.dropped);
    }

    #[test]
    fn the_majority_decides_unless_configured() {
        let surveys = [at(1), at(1), at(5)];
        assert_eq!(pin(&urls(3), &surveys, REGISTRY, None).expect("majority").chain_id, 1);
        let pin5 = pin(&urls(3), &surveys, REGISTRY, Some(5)).expect("configured");
        assert_eq!(pin5.chain_id, 5);
        assert_eq!(pin5.keep, [None, None, Some(true)]);
    }

    #[test]
    fn a_tie_without_a_configured_chain_is_refused() {
        let err = pin(&urls(2), &[at(1), at(5)], REGISTRY, None).expect_err("tie").to_string();
        assert!(err.contains("set registry.chain_id"), "{err}");
        assert!(err.contains("http://127.0.0.1:9000/ (chain 1)"), "{err}");
    }

    #[test]
    fn none_agreeing_with_the_configured_chain_is_refused_naming_each_url() {
        let err = pin(
            &urls(2),
            &[at(4242), Survey::Unreachable("connection refused".into())],
            REGISTRY,
            Some(31337),
        )
        .expect_err("none agree")
        .to_string();
        assert!(err.contains("registry's chain 31337"), "{err}");
        assert!(
            err.contains("9000/ (chain 4242)") && err.contains("9001/ (connection refused)"),
            "{err}"
        );
    }

    #[test]
    fn no_contract_anywhere_is_refused() {
        let err = pin(&urls(1), &[empty(31337)], REGISTRY, None).expect_err("no code").to_string();
        assert!(err.starts_with("no contract at registry.address"), "{err}");
        let err =
            pin(&urls(1), &[empty(31337)], REGISTRY, Some(31337)).expect_err("no code").to_string();
        assert!(err.contains("on chain 31337"), "{err}");
    }

    #[test]
    fn unreachable_urls_are_kept_unverified_and_all_unreachable_is_refused() {
        let down = || Survey::Unreachable("connection refused".into());
        let pin1 = pin(&urls(2), &[down(), at(1)], REGISTRY, None).expect("pinned");
        assert_eq!(pin1.keep, [Some(false), Some(true)]);
        let err = pin(&urls(2), &[down(), down()], REGISTRY, None).expect_err("nobody").to_string();
        assert!(err.starts_with("no registry RPC URL answered eth_chainId"), "{err}");
    }
}
