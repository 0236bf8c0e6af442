//! WebSocket sessions on `/rpc/<service>`: plain calls (answered concurrently, each through the
//! same call path as HTTP) and `eth_subscribe` / `eth_unsubscribe` for `newHeads`, `logs` and
//! `newPendingTransactions`, served by the service's followers (see [`crate::subscribe`]).

use std::{collections::HashMap, sync::Arc};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{
    SinkExt, StreamExt,
    stream::{self, BoxStream},
};
use serde_json::{Value, json};
use tokio::{
    sync::{Semaphore, mpsc, oneshot, watch},
    task::JoinHandle,
};
use tracing::debug;

use crate::{
    metrics::KindLabels,
    rpc::{self, Call, Incoming, code},
    server::AppState,
    service::ServiceHandle,
    subscribe::{ChainEvent, LogFilter, LogStream},
};

/// Calls one connection may have in flight at once.
const IN_FLIGHT_PER_CONNECTION: usize = 64;
/// Why a subscription ends when its subscriber fell behind the follower's buffer.
const TOO_SLOW: &str = "subscriber too slow";
/// Longest a write to a client may take; a client that does not read is disconnected.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one WebSocket connection until the client closes it or the gateway shuts down.
pub(crate) async fn session(
    socket: WebSocket,
    service: Arc<ServiceHandle>,
    state: Arc<AppState>,
    peer: std::net::IpAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _session = Session::open(&state);
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Message>(1024);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let closing = matches!(message, Message::Close(_));
            // A client that stops reading is disconnected rather than buffered for.
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
                Ok(Ok(())) if !closing => {}
                _ => break,
            }
        }
        let _ = sink.close().await;
    });
    let mut subs: HashMap<String, JoinHandle<()>> = HashMap::new();
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            // The writer gave up on this client (timeout or closed socket).
            () = out.closed() => break,
            _ = shutdown.changed() => {
                let frame = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("gateway shutting down") };
                let _ = out.send(Message::Close(Some(frame))).await;
                break;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => text,
                Err(_) => {
                    let answer = rpc::error(
                        None,
                        code::PARSE_ERROR,
                        "parse error: binary frame is not UTF-8",
                    );
                    let _ = out.send(Message::Text(answer.to_string().into())).await;
                    continue;
                }
            },
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue, // ping/pong: axum answers pings itself
        };
        if text.len() > state.config.limits.max_body_bytes {
            let frame =
                CloseFrame { code: 1009, reason: Utf8Bytes::from_static("message too big") };
            let _ = out.send(Message::Close(Some(frame))).await;
            break;
        }
        let incoming = match rpc::parse(text.as_bytes()) {
            Ok(incoming) => incoming,
            Err(answer) => {
                let _ = out.send(Message::Text(answer.to_string().into())).await;
                continue;
            }
        };
        let calls = match incoming {
            Incoming::Single(call) => vec![call],
            Incoming::Batch(calls) => {
                if calls.len() > state.config.limits.max_batch {
                    let answer = rpc::error(
                        None,
                        code::INVALID_REQUEST,
                        &format!(
                            "batch of {} calls exceeds limits.max_batch ({})",
                            calls.len(),
                            state.config.limits.max_batch
                        ),
                    );
                    let _ = out.send(Message::Text(answer.to_string().into())).await;
                    continue;
                }
                if let Err(e) = state.rate_check_ip(peer, calls.len()) {
                    let answer = rpc::error(None, code::LIMIT_EXCEEDED, &e);
                    let _ = out.send(Message::Text(answer.to_string().into())).await;
                    continue;
                }
                // Subscriptions are not taken in batches: answer the batch through the call path.
                let out = out.clone();
                let (service, state) = (service.clone(), state.clone());
                let permit = in_flight.clone().acquire_owned().await;
                tokio::spawn(async move {
                    let _permit = permit;
                    let answer = crate::server::answer_batch(&service, &state, calls).await;
                    if let Some(answer) = answer {
                        let _ = out.send(Message::Text(answer.into())).await;
                    }
                });
                continue;
            }
        };
        let call = match calls.into_iter().next() {
            Some(Ok(call)) => call,
            Some(Err(answer)) => {
                let _ = out.send(Message::Text(answer.to_string().into())).await;
                continue;
            }
            None => continue,
        };
        match call.method.as_str() {
            "eth_subscribe" => {
                // The answer (with the id) goes out before the subscription's first event.
                let (answer, start) = subscribe(&call, &service, &state, &out, &mut subs);
                let _ = out.send(Message::Text(answer.into())).await;
                if let Some(start) = start {
                    let _ = start.send(());
                }
            }
            "eth_unsubscribe" => {
                let id = serde_json::from_str::<Vec<String>>(call.params.get())
                    .ok()
                    .and_then(|p| p.into_iter().next());
                let removed = id.and_then(|id| subs.remove(&id)).map(|task| task.abort()).is_some();
                let answer =
                    rpc::success_text(call.id.as_deref(), &crate::service::raw(&json!(removed)));
                let _ = out.send(Message::Text(answer.into())).await;
            }
            _ => {
                if let Err(e) = state.rate_check_ip(peer, 1) {
                    let answer = rpc::error(call.id.as_deref(), code::LIMIT_EXCEEDED, &e);
                    let _ = out.send(Message::Text(answer.to_string().into())).await;
                    continue;
                }
                let out = out.clone();
                let service = service.clone();
                let permit = in_flight.clone().acquire_owned().await;
                tokio::spawn(async move {
                    let _permit = permit;
                    let answer = service.call(&call).await;
                    if call.id.is_some() {
                        let _ = out.send(Message::Text(answer.into())).await;
                    }
                });
            }
        }
    }
    for (_, task) in subs.drain() {
        task.abort();
    }
    drop(out);
    let _ = writer.await;
    debug!(target: "gateway::ws", service = %service.name, "connection closed");
}

/// Opens a subscription; returns the answer to `eth_subscribe`.
fn subscribe(
    call: &Call,
    service: &Arc<ServiceHandle>,
    state: &Arc<AppState>,
    out: &mpsc::Sender<Message>,
    subs: &mut HashMap<String, JoinHandle<()>>,
) -> (String, Option<oneshot::Sender<()>>) {
    let fail = |code: i64, message: &str| {
        (rpc::error(call.id.as_deref(), code, message).to_string(), None)
    };
    let params: Vec<Value> = match serde_json::from_str(call.params.get()) {
        Ok(params) => params,
        Err(_) => return fail(code::INVALID_PARAMS, "eth_subscribe takes [kind, options?]"),
    };
    let Some(kind) = params.first().and_then(Value::as_str).map(str::to_string) else {
        return fail(code::INVALID_PARAMS, "eth_subscribe: the first param must be the kind");
    };
    subs.retain(|_, task| !task.is_finished());
    let limit = state.config.limits.max_subscriptions_per_connection;
    if subs.len() >= limit {
        return fail(
            code::LIMIT_EXCEEDED,
            &format!("limits.max_subscriptions_per_connection ({limit}) reached"),
        );
    }
    // Checked before any metric is labelled with it: a client cannot grow the label set.
    let kind: &'static str = match kind.as_str() {
        "newHeads" => "newHeads",
        "logs" => "logs",
        "newPendingTransactions" => "newPendingTransactions",
        other => {
            let other: String = other.chars().take(40).collect();
            return fail(
                code::INVALID_PARAMS,
                &format!(
                    "unsupported subscription {other:?}: newHeads, logs or newPendingTransactions"
                ),
            );
        }
    };
    let id = format!("0x{}", alloy::primitives::hex::encode(rand_id()));
    let (start, started) = oneshot::channel::<()>();
    let gauge = state
        .metrics
        .subscriptions
        .get_or_create(&KindLabels { service: service.name.clone(), kind: kind.into() })
        .clone();
    let notify = Notifier { id: id.clone(), out: out.clone() };
    let feed = match kind {
        "newHeads" => stream::unfold(service.heads.subscribe(), |mut events| async move {
            loop {
                let next = match events.recv().await {
                    Ok(ChainEvent::Head(block)) => Ok(vec![block.header.clone()]),
                    Ok(ChainEvent::Reorg(_)) => continue,
                    Err(_) => Err(TOO_SLOW.to_string()),
                };
                return Some((next, events));
            }
        })
        .boxed(),
        "logs" => {
            let filter = match LogFilter::from_params(params.get(1)) {
                Ok(filter) => filter,
                Err(e) => return fail(code::INVALID_PARAMS, &e),
            };
            let logs = LogStream::new(
                service.client().clone(),
                filter,
                std::time::Duration::from_millis(state.config.subscriptions.poll_interval_ms),
            );
            let backfilled = state
                .metrics
                .backfilled
                .get_or_create(&KindLabels { service: service.name.clone(), kind: "logs".into() })
                .clone();
            stream::unfold((service.heads.subscribe(), logs), move |(mut events, mut logs)| {
                let backfilled = backfilled.clone();
                async move {
                    let next = match events.recv().await {
                        Ok(event) => {
                            let backfill = matches!(&event, ChainEvent::Head(b) if b.backfilled);
                            match logs.on_event(&event).await {
                                Ok(items) => {
                                    if backfill {
                                        backfilled.inc_by(items.len() as u64);
                                    }
                                    Ok(items.into_iter().map(Arc::new).collect())
                                }
                                Err(e) => Err(format!("logs subscription lost: {e}")),
                            }
                        }
                        Err(_) => Err(TOO_SLOW.to_string()),
                    };
                    Some((next, (events, logs)))
                }
            })
            .boxed()
        }
        "newPendingTransactions" => {
            stream::unfold(service.pending.subscribe(), |mut hashes| async move {
                let next = match hashes.recv().await {
                    Ok(hash) => Ok(vec![Arc::new(Value::String((*hash).clone()))]),
                    Err(_) => Err(TOO_SLOW.to_string()),
                };
                Some((next, hashes))
            })
            .boxed()
        }
        _ => return fail(code::INVALID_PARAMS, "unsupported subscription"),
    };
    let task = tokio::spawn(async move {
        if started.await.is_err() {
            return;
        }
        gauge.inc();
        let _guard = Dec(gauge);
        notify.forward(feed).await;
    });
    subs.insert(id.clone(), task);
    let answer = rpc::success_text(call.id.as_deref(), &crate::service::raw(&Value::String(id)));
    (answer, Some(start))
}

/// Counts an open session in `AppState::sessions` for as long as it lives.
struct Session(Arc<std::sync::atomic::AtomicUsize>);

impl Session {
    fn open(state: &AppState) -> Self {
        state.sessions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(state.sessions.clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Notifier {
    id: String,
    out: mpsc::Sender<Message>,
}

impl Notifier {
    /// Sends one notification; false when the connection is gone.
    async fn send(&self, result: &Value) -> bool {
        let text = json!({
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": { "subscription": self.id, "result": result }
        })
        .to_string();
        self.out.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends every batch `feed` yields, in order, until the connection is gone; a feed error
    /// closes the connection with that reason.
    async fn forward(&self, mut feed: BoxStream<'static, Result<Vec<Arc<Value>>, String>>) {
        while let Some(batch) = feed.next().await {
            match batch {
                Ok(items) => {
                    for item in &items {
                        if !self.send(item).await {
                            return;
                        }
                    }
                }
                Err(reason) => return self.close(&reason).await,
            }
        }
    }

    async fn close(&self, reason: &str) {
        let reason: String = reason.chars().take(120).collect();
        let frame = CloseFrame { code: 1011, reason: reason.into() };
        let _ = self.out.send(Message::Close(Some(frame))).await;
    }
}

/// Decrements the open-subscriptions gauge when a subscription task ends.
struct Dec(prometheus_client::metrics::gauge::Gauge);

impl Drop for Dec {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An unguessable subscription id: a per-process random key (std's `RandomState`) hashing a
/// counter, so ids never repeat within a process and cannot be predicted by another client.
fn rand_id() -> [u8; 16] {
    use std::{
        hash::{BuildHasher, Hasher},
        sync::{
            OnceLock,
            atomic::{AtomicU64, Ordering},
        },
    };
    static KEYS: OnceLock<(
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    )> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = KEYS.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    for (half, key) in id.chunks_mut(8).zip([a, b]) {
        let mut hasher = key.build_hasher();
        hasher.write_u64(n);
        half.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    id
}
