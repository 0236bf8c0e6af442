//! Subscriptions that survive route failover.
//!
//! A subscription is not tied to a route. Each service has one [`HeadFollower`] that walks the
//! canonical chain through the failover transport, block by block, from the last head it
//! delivered: when the route it was reading from dies or leaves the set, the transport moves
//! the next read to another authorised route, and the follower fetches every block between the
//! last head delivered and the new route's head (backfill), in order. Parent hashes are checked
//! at every step; a mismatch is a reorg: the follower walks back to the common ancestor and
//! announces the blocks that left the chain, so `logs` subscriptions re-deliver their logs with
//! `removed: true`, as nodes do. The client's subscription id never changes.
//!
//! ```text
//!  HeadFollower (per service, while subscribed)
//!    every poll_interval: eth_getBlockByNumber(latest) --transport--> any authorised route
//!    cursor+1 ..= head: eth_getBlockByNumber(n), parentHash == previous hash?
//!        yes -> Head(block)                      -> newHeads: the header
//!                                                -> logs: eth_getLogs{blockHash, filter}
//!        no  -> walk back to the common ancestor -> Reorg(removed) -> logs: removed: true
//! ```
//!
//! **When to look.** The follower keeps a `newHeads` subscription on the best route's WebSocket
//! endpoint (its URL with `http(s)` -> `ws(s)`): each notification wakes it at once. The data
//! itself (blocks, logs) is always read through the failover transport and checked hash by hash,
//! so the WebSocket is only a doorbell: if the route has no WebSocket, or it drops, the follower
//! falls back to polling every `poll_interval` and re-subscribes (on whichever route is best
//! then) a second later. `newPendingTransactions`
//! polls a pending-transaction filter, re-created on another route when its route goes;
//! transactions that entered only the lost route's pool in between are not re-delivered.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{primitives::B256, rpc::client::RpcClient, transports::http::reqwest::Url};
use serde_json::{Value, json};
use tokio::{sync::broadcast, task::JoinHandle};
use tracing::{debug, warn};

use crate::metrics::{KindLabels, Metrics};

/// Blocks remembered to detect reorgs and re-deliver removed logs.
const REORG_WINDOW: usize = 128;
/// Capacity of a follower's broadcast; a subscriber this far behind is dropped.
const CHANNEL: usize = 4096;

/// One canonical block, as the follower saw it.
#[derive(Debug, Clone)]
pub struct HeadBlock {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Parent hash.
    pub parent: B256,
    /// The `newHeads` payload (the block without its transaction list).
    pub header: Arc<Value>,
    /// Fetched in a catch-up after a gap (more than one block since the last poll).
    pub backfilled: bool,
}

/// What the follower announces.
#[derive(Debug, Clone)]
pub enum ChainEvent {
    /// A new canonical block, in order.
    Head(Arc<HeadBlock>),
    /// These blocks left the canonical chain (highest first); new heads follow.
    Reorg(Arc<Vec<HeadBlock>>),
}

/// The per-service head follower; started on the first subscription, stopped when the last
/// subscriber leaves.
pub struct HeadFollower {
    service: String,
    client: RpcClient,
    poll: Duration,
    max_backfill: u64,
    metrics: Metrics,
    sender: broadcast::Sender<ChainEvent>,
    task: TaskSlot,
    doorbell: BestRoute,
}

/// Where the follower's `newHeads` doorbell connects: the best route's URL, if any.
pub type BestRoute = Arc<dyn Fn() -> Option<Url> + Send + Sync>;

/// The follower task, shared with the task itself: subscribing and the task's "no subscriber
/// left, stop" decision happen under this one lock, so a subscriber never joins a follower
/// that is stopping.
type TaskSlot = Arc<Mutex<Option<JoinHandle<()>>>>;

impl HeadFollower {
    /// A follower reading through `client` (the service's failover transport).
    pub fn new(
        service: String,
        client: RpcClient,
        poll: Duration,
        max_backfill: u64,
        metrics: Metrics,
        doorbell: BestRoute,
    ) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL);
        Self {
            service,
            client,
            poll,
            max_backfill,
            metrics,
            sender,
            task: TaskSlot::default(),
            doorbell,
        }
    }

    /// Subscribes to the canonical chain from the next head on, starting the follower if needed.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.sender.subscribe();
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            let walker = Walker {
                doorbell: self.doorbell.clone(),
                slot: self.task.clone(),
                service: self.service.clone(),
                client: self.client.clone(),
                poll: self.poll,
                max_backfill: self.max_backfill,
                metrics: self.metrics.clone(),
                sender: self.sender.clone(),
                recent: VecDeque::new(),
                failing: false,
            };
            *task = Some(tokio::spawn(walker.run()));
        }
        receiver
    }
}

impl Drop for HeadFollower {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

struct Walker {
    doorbell: BestRoute,
    slot: TaskSlot,
    service: String,
    client: RpcClient,
    poll: Duration,
    max_backfill: u64,
    metrics: Metrics,
    sender: broadcast::Sender<ChainEvent>,
    /// The last blocks delivered, oldest first.
    recent: VecDeque<HeadBlock>,
    failing: bool,
}

impl Walker {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let bell = Arc::new(tokio::sync::Notify::new());
        let ringer = tokio::spawn(ring_on_new_heads(self.doorbell.clone(), bell.clone()));
        let _ringer = AbortOnDrop(ringer);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = bell.notified() => {}
            }
            {
                let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
                if self.sender.receiver_count() == 0 {
                    debug!(target: "gateway::subscribe", service = %self.service, "no subscriber left; head follower stops");
                    *slot = None;
                    return;
                }
            }
            match self.step().await {
                Ok(()) if self.failing => {
                    self.failing = false;
                    self.metrics.resubscribes.get_or_create(&Metrics::service(&self.service)).inc();
                    debug!(target: "gateway::subscribe", service = %self.service, "head follower recovered");
                }
                Ok(()) => {}
                Err(e) => {
                    if !self.failing {
                        warn!(target: "gateway::subscribe", service = %self.service, error = %e, "head follower: no route answered; retrying");
                    }
                    self.failing = true;
                }
            }
        }
    }

    /// One poll: deliver every block from the cursor to the head, or unwind a reorg.
    async fn step(&mut self) -> Result<(), String> {
        let Some(latest) = self.block("latest").await? else { return Ok(()) };
        let Some(last) = self.recent.back().cloned() else {
            self.deliver(latest, false);
            return Ok(());
        };
        if latest.number < last.number || (latest.number == last.number && latest.hash == last.hash)
        {
            // Nothing new (or a route behind the head already delivered: the next poll goes on).
            return Ok(());
        }
        let target = latest.number.min(last.number + self.max_backfill);
        let backfill = target > last.number + 1;
        let mut next = last.number + 1;
        if latest.number == last.number {
            // Same height, another hash: a reorg at the tip.
            next = last.number;
        }
        while next <= target {
            let block = if next == latest.number {
                latest.clone()
            } else {
                match self.block(&format!("{next:#x}")).await? {
                    Some(block) => block,
                    // The route does not have it yet; the next poll goes on from here.
                    None => return Ok(()),
                }
            };
            let tip = self.recent.back().cloned();
            match tip {
                Some(tip) if block.number == tip.number + 1 && block.parent == tip.hash => {
                    self.deliver(block, backfill);
                    next += 1;
                }
                // A reorg deeper than what was remembered emptied the window: go on from here.
                None => {
                    self.deliver(block, backfill);
                    next += 1;
                }
                Some(tip) => {
                    // `block` does not extend the chain delivered so far: unwind to the common
                    // ancestor, then continue from there. If nothing was unwound, two routes
                    // disagree (one forked or behind): wait for the next poll rather than spin.
                    let ancestor = self.unwind(block.number).await?;
                    if self.recent.back().map(|b| b.hash) == Some(tip.hash) {
                        return Ok(());
                    }
                    next = ancestor + 1;
                }
            }
        }
        Ok(())
    }

    /// Removes delivered blocks that are no longer canonical (from `from` down); returns the
    /// number of the common ancestor. A route that does not have a block (null) or fails is
    /// not evidence of a reorg: the window is restored and the step fails, to be retried.
    async fn unwind(&mut self, from: u64) -> Result<u64, String> {
        let mut removed: Vec<HeadBlock> = Vec::new();
        while let Some(tip) = self.recent.back().cloned() {
            if tip.number < from {
                match self.block(&format!("{:#x}", tip.number)).await {
                    Ok(Some(canonical)) if canonical.hash == tip.hash => break,
                    Ok(Some(_)) => {}
                    failed => {
                        for block in removed.into_iter().rev() {
                            self.recent.push_back(block);
                        }
                        return Err(match failed {
                            Err(e) => e,
                            _ => format!("route lacks block {}", tip.number),
                        });
                    }
                }
            }
            removed.push(tip);
            self.recent.pop_back();
        }
        let lowest_removed = removed.last().map_or(from, |b| b.number);
        let ancestor = self.recent.back().map_or(lowest_removed.saturating_sub(1), |b| b.number);
        if !removed.is_empty() {
            warn!(target: "gateway::subscribe", service = %self.service, blocks = removed.len(), ancestor, "reorg: blocks left the canonical chain");
            self.metrics
                .reorged_blocks
                .get_or_create(&Metrics::service(&self.service))
                .inc_by(removed.len() as u64);
            let _ = self.sender.send(ChainEvent::Reorg(Arc::new(removed)));
        }
        Ok(ancestor)
    }

    fn deliver(&mut self, mut block: HeadBlock, backfilled: bool) {
        block.backfilled = backfilled;
        if backfilled {
            self.metrics
                .backfilled
                .get_or_create(&KindLabels {
                    service: self.service.clone(),
                    kind: "newHeads".into(),
                })
                .inc();
        }
        self.recent.push_back(block.clone());
        while self.recent.len() > REORG_WINDOW {
            self.recent.pop_front();
        }
        let _ = self.sender.send(ChainEvent::Head(Arc::new(block)));
    }

    async fn block(&self, tag: &str) -> Result<Option<HeadBlock>, String> {
        let value: Value = self
            .client
            .request("eth_getBlockByNumber", (tag, false))
            .await
            .map_err(|e| e.to_string())?;
        if value.is_null() {
            return Ok(None);
        }
        parse_block(value).map(Some)
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps a `newHeads` subscription on the best route's WebSocket and rings `bell` on every
/// notification; reconnects a second after any failure (to whichever route is best then).
async fn ring_on_new_heads(best: BestRoute, bell: Arc<tokio::sync::Notify>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    loop {
        if let Some(url) = best().and_then(websocket_url) {
            let connected = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_tungstenite::connect_async(url.as_str()),
            )
            .await;
            if let Ok(Ok((mut socket, _))) = connected {
                let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]});
                if socket.send(Message::Text(subscribe.to_string().into())).await.is_ok() {
                    debug!(target: "gateway::subscribe", %url, "newHeads doorbell connected");
                    while let Ok(Some(Ok(message))) =
                        tokio::time::timeout(Duration::from_secs(30), socket.next()).await
                    {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                        if matches!(message, Message::Text(_)) {
                            bell.notify_one();
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A route's WebSocket URL: `http` -> `ws`, `https` -> `wss` (others have none).
fn websocket_url(mut url: Url) -> Option<Url> {
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        "ws" | "wss" => return Some(url),
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    Some(url)
}

fn parse_block(mut value: Value) -> Result<HeadBlock, String> {
    let field = |v: &Value, name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("block without {name}"))
    };
    let number = field(&value, "number")?;
    let number = u64::from_str_radix(number.trim_start_matches("0x"), 16)
        .map_err(|e| format!("block number {number}: {e}"))?;
    let hash: B256 = field(&value, "hash")?.parse().map_err(|e| format!("block hash: {e}"))?;
    let parent: B256 =
        field(&value, "parentHash")?.parse().map_err(|e| format!("parent hash: {e}"))?;
    if let Some(object) = value.as_object_mut() {
        // newHeads carries the header only.
        for key in ["transactions", "uncles", "size", "totalDifficulty"] {
            object.remove(key);
        }
    }
    Ok(HeadBlock { number, hash, parent, header: Arc::new(value), backfilled: false })
}

/// The criteria of a `logs` subscription.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// `address` as given (a string or a list), or null.
    pub address: Value,
    /// `topics` as given, or null.
    pub topics: Value,
}

impl LogFilter {
    /// Reads `eth_subscribe("logs", {address, topics})` params.
    pub fn from_params(params: Option<&Value>) -> Result<Self, String> {
        let Some(params) = params else { return Ok(Self::default()) };
        let Some(object) = params.as_object() else {
            return Err("logs filter must be an object with address and/or topics".into());
        };
        for key in object.keys() {
            if key != "address" && key != "topics" {
                return Err(format!("logs filter: unknown field {key}"));
            }
        }
        let address = object.get("address").cloned().unwrap_or(Value::Null);
        let topics = object.get("topics").cloned().unwrap_or(Value::Null);
        if !(address.is_null() || address.is_string() || address.is_array()) {
            return Err("logs filter: address must be an address or a list".into());
        }
        if !(topics.is_null() || topics.is_array()) {
            return Err("logs filter: topics must be a list".into());
        }
        Ok(Self { address, topics })
    }

    fn query(&self, block_hash: B256) -> Value {
        let mut query = json!({ "blockHash": block_hash });
        if !self.address.is_null() {
            query["address"] = self.address.clone();
        }
        if !self.topics.is_null() {
            query["topics"] = self.topics.clone();
        }
        query
    }
}

/// Turns chain events into `logs` notifications: the logs matching `filter` in each new block,
/// and on a reorg the logs already delivered from removed blocks again with `removed: true`.
pub struct LogStream {
    client: RpcClient,
    filter: LogFilter,
    poll: Duration,
    /// Logs delivered per recent block (block hash, logs), oldest first.
    delivered: VecDeque<(B256, Vec<Value>)>,
}

impl LogStream {
    /// A stream for one subscription.
    pub fn new(client: RpcClient, filter: LogFilter, poll: Duration) -> Self {
        Self { client, filter, poll, delivered: VecDeque::new() }
    }

    /// The notifications for one event, in order. Retries a failed log read (every route
    /// failing) for up to 60 polls before giving up on that block with an error.
    pub async fn on_event(&mut self, event: &ChainEvent) -> Result<Vec<Value>, String> {
        match event {
            ChainEvent::Head(block) => {
                let mut tries = 0u32;
                let logs = loop {
                    let got: Result<Vec<Value>, _> =
                        self.client.request("eth_getLogs", [self.filter.query(block.hash)]).await;
                    match got {
                        Ok(logs) => break logs,
                        Err(e) if tries >= 60 => {
                            return Err(format!("logs of block {}: {e}", block.number));
                        }
                        Err(_) => {
                            tries += 1;
                            tokio::time::sleep(self.poll).await;
                        }
                    }
                };
                self.delivered.push_back((block.hash, logs.clone()));
                while self.delivered.len() > REORG_WINDOW {
                    self.delivered.pop_front();
                }
                Ok(logs)
            }
            ChainEvent::Reorg(removed) => {
                let gone: HashSet<B256> = removed.iter().map(|b| b.hash).collect();
                let mut out = Vec::new();
                self.delivered.retain(|(hash, logs)| {
                    if gone.contains(hash) {
                        for log in logs {
                            let mut log = log.clone();
                            if let Some(object) = log.as_object_mut() {
                                object.insert("removed".into(), Value::Bool(true));
                            }
                            out.push(log);
                        }
                        false
                    } else {
                        true
                    }
                });
                Ok(out)
            }
        }
    }
}

/// The per-service pending-transaction follower: polls a pending-transaction filter through the
/// failover transport (pinned to the route that created it), re-creating it when that route
/// goes. Started on the first subscription, stopped when the last leaves.
pub struct PendingFollower {
    client: RpcClient,
    poll: Duration,
    sender: broadcast::Sender<Arc<String>>,
    task: TaskSlot,
}

impl PendingFollower {
    /// A follower reading through `client`.
    pub fn new(client: RpcClient, poll: Duration) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL);
        Self { client, poll, sender, task: TaskSlot::default() }
    }

    /// Subscribes to pending transaction hashes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<String>> {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.sender.subscribe();
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            let (client, poll, sender) = (self.client.clone(), self.poll, self.sender.clone());
            *task = Some(tokio::spawn(poll_pending(client, poll, sender, self.task.clone())));
        }
        receiver
    }
}

impl Drop for PendingFollower {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

async fn poll_pending(
    client: RpcClient,
    poll: Duration,
    sender: broadcast::Sender<Arc<String>>,
    slot: TaskSlot,
) {
    let mut filter: Option<String> = None;
    let mut seen: VecDeque<String> = VecDeque::new();
    let mut seen_set: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(poll);
    loop {
        tick.tick().await;
        let stop = {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            let stop = sender.receiver_count() == 0;
            if stop {
                *slot = None;
            }
            stop
        };
        if stop {
            if let Some(id) = filter {
                let _ = client.request::<_, Value>("eth_uninstallFilter", [id]).await;
            }
            return;
        }
        let id = match &filter {
            Some(id) => id.clone(),
            None => {
                match client.request_noparams::<String>("eth_newPendingTransactionFilter").await {
                    Ok(id) => {
                        filter = Some(id.clone());
                        id
                    }
                    Err(e) => {
                        debug!(target: "gateway::subscribe", error = %e, "no route took a pending-transaction filter");
                        continue;
                    }
                }
            }
        };
        match client.request::<_, Vec<String>>("eth_getFilterChanges", [id]).await {
            Ok(hashes) => {
                for hash in hashes {
                    if seen_set.insert(hash.clone()) {
                        seen.push_back(hash.clone());
                        if seen.len() > 10_000
                            && let Some(old) = seen.pop_front()
                        {
                            seen_set.remove(&old);
                        }
                        let _ = sender.send(Arc::new(hash));
                    }
                }
            }
            Err(e) => {
                debug!(target: "gateway::subscribe", error = %e, "pending-transaction filter lost; re-creating it");
                filter = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_parsing_keeps_the_header_and_drops_the_transaction_list() {
        let block = parse_block(json!({
            "number": "0x10", "hash": format!("0x{}", "11".repeat(32)),
            "parentHash": format!("0x{}", "22".repeat(32)), "transactions": ["0x1"], "miner": "0x0"
        }))
        .expect("parses");
        assert_eq!(block.number, 16);
        assert!(block.header.get("transactions").is_none());
        assert!(block.header.get("miner").is_some());
        assert!(parse_block(json!({"number": "0x1"})).is_err());
    }

    #[test]
    fn websocket_urls_swap_the_scheme() {
        let ws = |u: &str| websocket_url(u.parse().expect("url")).map(|u| u.to_string());
        assert_eq!(ws("http://127.0.0.1:8545/rpc"), Some("ws://127.0.0.1:8545/rpc".into()));
        assert_eq!(ws("https://node.example/v2"), Some("wss://node.example/v2".into()));
        assert_eq!(ws("ftp://node.example"), None);
    }

    #[test]
    fn log_filters_are_checked() {
        assert!(LogFilter::from_params(Some(&json!({"address": "0x01", "topics": []}))).is_ok());
        assert!(LogFilter::from_params(Some(&json!({"fromBlock": "0x1"}))).is_err());
        assert!(LogFilter::from_params(Some(&json!("0x01"))).is_err());
        assert!(LogFilter::from_params(None).is_ok());
    }
}
