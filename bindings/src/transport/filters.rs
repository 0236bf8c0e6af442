//! # Filters that survive failover
//!
//! JSON-RPC filters are node-local: a filter made by `eth_newFilter` on one node does not exist
//! on another, so once a request fails over (or the registry changes the route set),
//! `eth_getFilterChanges` would reach a node that never saw the filter. The failover transport
//! therefore answers the filter methods itself (Single requests only; a batch goes to a route
//! unchanged) and keeps every filter's state, asking the routes only stateless questions
//! (`eth_blockNumber`, `eth_getBlockByNumber`, `eth_getLogs`) through its own failover:
//!
//! ```text
//!  eth_newFilter(criteria)       --> store criteria, cursor = head      --> "0x" + 32 hex (ours)
//!  eth_newBlockFilter            --> store cursor = head                --> "0x" + 32 hex (ours)
//!  eth_getFilterChanges(id)
//!      log filter   --> head; logs of cursor+1 ..= head (eth_getLogs, explicit hex range,
//!                       clamped by the filter's own fromBlock/toBlock); cursor = that end
//!      block filter --> head; hashes of cursor+1 ..= head (eth_getBlockByNumber(n, false));
//!                       cursor = the last block delivered
//!      at most MAX_BLOCKS_PER_POLL blocks per call: the rest on the next call
//!  eth_getFilterLogs(id)         --> eth_getLogs(criteria as given, tags included)
//!  eth_uninstallFilter(id)       --> true if it existed, false otherwise
//!  unknown or expired id         --> JSON-RPC error -32000 "filter not found" (as geth)
//! ```
//!
//! The head is `eth_blockNumber` through the transport, so it never goes backwards (see
//! [`FailoverTransport::served_head`]). Answers keep the caller's JSON-RPC id. A filter not used
//! (`eth_getFilterChanges` / `eth_getFilterLogs`) for [`FILTER_TIMEOUT`] expires (geth's rule).
//! As in geth, a log filter delivers logs of blocks that arrive after it was made; `fromBlock` and
//! `toBlock` numbers bound what it delivers, tags (`latest`, `safe`, ...) mean "no bound" except
//! `earliest`, which is block 0. `eth_getFilterChanges` returns `[]` until the head moves past
//! the cursor. An error from a route (e.g. an `eth_getLogs` range limit) is returned to the
//! caller and the cursor does not move, so the next call retries the same blocks.
//!
//! **Reorgs (best effort).** Each filter remembers the hashes of the last [`REORG_MEMORY`] cursor
//! blocks it reached (for a block filter: every block it delivered). When new blocks arrive, the
//! parent hash of block cursor+1 is compared with the remembered hash of the cursor block; if it
//! differs, the chain was reorganised: the filter walks back through the remembered blocks to
//! the newest one whose hash is still canonical and re-delivers from the block after it (from
//! the oldest remembered block if none is). A log filter then returns the logs of the new
//! canonical blocks again, which may repeat logs of blocks that were not replaced; it does not
//! emit `removed: true` entries for the replaced logs (it never stored them). A block filter
//! returns the new blocks' hashes. A reorg that replaces blocks without raising the head is seen
//! at the next new block. Routes on different forks, or behind one another between the
//! requests of one call, can still make a call miss or repeat logs; the filter is only as
//! consistent as the routes.
//!
//! **Pending-transaction filters** (`eth_newPendingTransactionFilter`) cannot be replayed from
//! another node: the transport creates it on one route (with the usual failover), records that
//! route's URL and the node's own id, and answers with an id of its own. `eth_getFilterChanges`
//! for it goes to that route only; if the route has left the route set, or fails, the caller gets
//! a JSON-RPC error -32000 that says so ("pending-transaction filter 0x..: its route `<url>` left
//! the route set; create a new filter"): it never fails over silently to a node that does not
//! know the filter. `eth_uninstallFilter` also uninstalls it on its route, best effort.

use std::{
    collections::{HashMap, VecDeque, hash_map::RandomState},
    hash::BuildHasher,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{B256, U64},
    rpc::{
        json_rpc::{
            ErrorPayload, Id, Request, RequestPacket, Response, ResponsePacket, ResponsePayload,
            RpcSend, SerializedRequest,
        },
        types::{Filter, FilterBlockOption},
    },
    transports::{
        TransportError, TransportErrorKind, http::reqwest::Url, utils::to_json_raw_value,
    },
};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::debug;

use super::{Connector, FailoverTransport, classify::Outcome};

/// A filter not used for this long expires (geth's rule).
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The most blocks one `eth_getFilterChanges` covers; the rest come on the next call.
pub const MAX_BLOCKS_PER_POLL: u64 = 1024;

/// How many cursor blocks (number and hash) a filter remembers to find a reorg's fork point.
pub const REORG_MEMORY: usize = 64;

/// Block headers of a block filter fetched in parallel.
const HEADER_CONCURRENCY: usize = 8;

/// geth's error code and message for an unknown filter.
const NOT_FOUND_CODE: i64 = -32000;
const NOT_FOUND: &str = "filter not found";

/// The methods the transport answers itself.
const METHODS: &[&str] = &[
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
];

/// True for the filter methods the transport answers itself.
pub(crate) fn is_filter_method(method: &str) -> bool {
    METHODS.contains(&method)
}

/// The filters of one transport.
pub(crate) struct Filters {
    /// Two independent random keys: ids are the keyed hashes of a counter, 128 bits.
    keys: [RandomState; 2],
    next: AtomicU64,
    table: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    last_used: Instant,
    state: Arc<tokio::sync::Mutex<State>>,
}

enum State {
    Logs(Box<LogFilter>),
    Blocks(Cursor),
    Pending { route: Url, upstream: String },
}

struct LogFilter {
    /// The criteria as the caller gave them (for `eth_getFilterLogs`).
    criteria: Filter,
    /// Numeric bounds of `fromBlock` / `toBlock` (`None`: the moving head).
    from: Option<u64>,
    to: Option<u64>,
    cursor: Cursor,
}

/// The last block a filter has covered, and the hashes of the last few it reached.
struct Cursor {
    block: u64,
    seen: VecDeque<(u64, B256)>,
}

impl Cursor {
    fn at(block: u64) -> Self {
        Self { block, seen: VecDeque::new() }
    }

    /// The remembered hash of the cursor block.
    fn hash(&self) -> Option<B256> {
        self.seen.back().filter(|(number, _)| *number == self.block).map(|(_, hash)| *hash)
    }

    fn reached(&mut self, number: u64, hash: B256) {
        self.block = number;
        self.seen.push_back((number, hash));
        while self.seen.len() > REORG_MEMORY {
            self.seen.pop_front();
        }
    }

    /// Moves back so that the next block delivered is `from`.
    fn rewind(&mut self, from: u64) {
        self.seen.retain(|(number, _)| *number < from);
        self.block = from.saturating_sub(1);
    }
}

/// The fields of a block a filter needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    number: U64,
    hash: B256,
    parent_hash: B256,
}

/// The blocks to cover in one call: `from..=to`, with the header of `from` when already fetched.
struct Plan {
    from: u64,
    to: u64,
    first: Option<Header>,
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            keys: [RandomState::new(), RandomState::new()],
            next: AtomicU64::new(0),
            table: Mutex::new(HashMap::new()),
        }
    }
}

impl Filters {
    fn install(&self, state: State, now: Instant) -> String {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        sweep(&mut table, now);
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            // The top bit set: exactly 32 hex digits and no leading zero, so the id survives
            // clients that carry it as a number (alloy's `U256`), as geth's ids do.
            let high = self.keys[0].hash_one(n) | 1 << 63;
            let id = format!("0x{high:016x}{:016x}", self.keys[1].hash_one(n));
            if !table.contains_key(&id) {
                let state = Arc::new(tokio::sync::Mutex::new(state));
                table.insert(id.clone(), Entry { last_used: now, state });
                return id;
            }
        }
    }

    /// The filter `id` (if it exists and has not expired), marked as used at `now`.
    fn get(&self, id: &str, now: Instant) -> Option<Arc<tokio::sync::Mutex<State>>> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        sweep(&mut table, now);
        let entry = table.get_mut(id)?;
        entry.last_used = now;
        Some(entry.state.clone())
    }

    fn remove(&self, id: &str, now: Instant) -> Option<Arc<tokio::sync::Mutex<State>>> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        sweep(&mut table, now);
        table.remove(id).map(|entry| entry.state)
    }
}

fn sweep(table: &mut HashMap<String, Entry>, now: Instant) {
    table.retain(|_, entry| now.saturating_duration_since(entry.last_used) <= FILTER_TIMEOUT);
}

/// Why a filter call did not produce a result: an error to answer, or a transport failure.
enum Failure {
    Rpc(ErrorPayload),
    Transport(TransportError),
}

impl From<TransportError> for Failure {
    fn from(err: TransportError) -> Self {
        Self::Transport(err)
    }
}

fn rpc_error(code: i64, message: String) -> Failure {
    Failure::Rpc(ErrorPayload { code, message: message.into(), data: None })
}

fn not_found() -> Failure {
    rpc_error(NOT_FOUND_CODE, NOT_FOUND.into())
}

fn success<T: Serialize>(value: &T) -> Result<ResponsePayload, Failure> {
    Ok(ResponsePayload::Success(to_json_raw_value(value)?))
}

fn nothing() -> Result<ResponsePayload, Failure> {
    success(&[(); 0])
}

fn params<T: DeserializeOwned>(request: &SerializedRequest) -> Result<T, Failure> {
    let invalid = |why: String| rpc_error(-32602, format!("invalid params: {why}"));
    let params = request.params().ok_or_else(|| invalid("missing".into()))?;
    T::deserialize(params).map_err(|err| invalid(err.to_string()))
}

/// The filter id of a request, canonical: lower case, no leading zeros (clients that carry ids
/// as numbers drop them, others may pad).
fn filter_id(request: &SerializedRequest) -> Result<String, Failure> {
    let (id,) = params::<(String,)>(request)?;
    Ok(canonical_id(&id))
}

fn canonical_id(id: &str) -> String {
    let id = id.to_ascii_lowercase();
    let digits = id.strip_prefix("0x").unwrap_or(&id).trim_start_matches('0');
    format!("0x{}", if digits.is_empty() { "0" } else { digits })
}

fn single_payload(packet: ResponsePacket) -> Result<ResponsePayload, Failure> {
    match packet {
        ResponsePacket::Single(response) => Ok(response.payload),
        ResponsePacket::Batch(_) => {
            Err(TransportErrorKind::custom_str("a batch answer to a single request").into())
        }
    }
}

/// Numeric bounds of a filter's block range: numbers, `earliest` = 0, other tags unbounded.
fn bounds(option: &FilterBlockOption) -> (Option<u64>, Option<u64>) {
    let number = |tag: &Option<BlockNumberOrTag>| match tag {
        Some(BlockNumberOrTag::Number(n)) => Some(*n),
        Some(BlockNumberOrTag::Earliest) => Some(0),
        _ => None,
    };
    match option {
        FilterBlockOption::Range { from_block, to_block } => (number(from_block), number(to_block)),
        FilterBlockOption::AtBlockHash(_) => (None, None),
    }
}

impl<C: Connector> FailoverTransport<C> {
    /// Answers a filter method (see the module docs), keeping the caller's id.
    pub(super) async fn answer_filter(
        &self,
        request: SerializedRequest,
    ) -> Result<ResponsePacket, TransportError> {
        let payload = match self.filter_method(&request).await {
            Ok(payload) => payload,
            Err(Failure::Rpc(error)) => ResponsePayload::Failure(error),
            Err(Failure::Transport(error)) => return Err(error),
        };
        Ok(ResponsePacket::Single(Response { id: request.id().clone(), payload }))
    }

    async fn filter_method(&self, request: &SerializedRequest) -> Result<ResponsePayload, Failure> {
        let id = request.id();
        let filters = &self.shared.filters;
        match request.method() {
            "eth_newFilter" => {
                let (criteria,) = params::<(Filter,)>(request)?;
                let (from, to) = bounds(&criteria.block_option);
                if let (Some(from), Some(to)) = (from, to)
                    && from > to
                {
                    return Err(rpc_error(-32602, "invalid from and to block combination".into()));
                }
                let cursor = Cursor::at(self.head(id).await?);
                let state = State::Logs(Box::new(LogFilter { criteria, from, to, cursor }));
                success(&filters.install(state, Instant::now()))
            }
            "eth_newBlockFilter" => {
                let cursor = Cursor::at(self.head(id).await?);
                success(&filters.install(State::Blocks(cursor), Instant::now()))
            }
            "eth_newPendingTransactionFilter" => {
                let (route, packet) = self.route(RequestPacket::Single(request.clone())).await?;
                let upstream = match single_payload(packet)? {
                    ResponsePayload::Success(raw) => String::deserialize(&*raw)
                        .map_err(|err| TransportError::deser_err(err, raw.get()))?,
                    failure @ ResponsePayload::Failure(_) => return Ok(failure),
                };
                success(&filters.install(State::Pending { route, upstream }, Instant::now()))
            }
            "eth_getFilterChanges" => {
                let key = filter_id(request)?;
                let state = filters.get(&key, Instant::now()).ok_or_else(not_found)?;
                let mut state = state.lock().await;
                match &mut *state {
                    State::Logs(filter) => self.log_changes(id, filter).await,
                    State::Blocks(cursor) => self.block_changes(id, cursor).await,
                    State::Pending { route, upstream } => {
                        self.pending_changes(id, &key, route, upstream).await
                    }
                }
            }
            "eth_getFilterLogs" => {
                let key = filter_id(request)?;
                let state = filters.get(&key, Instant::now()).ok_or_else(not_found)?;
                let criteria = match &*state.lock().await {
                    State::Logs(filter) => filter.criteria.clone(),
                    State::Blocks(_) | State::Pending { .. } => return Err(not_found()),
                };
                self.call(id, "eth_getLogs", (criteria,)).await
            }
            "eth_uninstallFilter" => {
                let key = filter_id(request)?;
                let Some(state) = filters.remove(&key, Instant::now()) else {
                    return success(&false);
                };
                if let State::Pending { route, upstream } = &*state.lock().await
                    && let Some(route) = self.route_by_url(route)
                {
                    // Best effort: the node expires it by itself anyway.
                    let request = Request::new("eth_uninstallFilter", id.clone(), (upstream,))
                        .serialize()
                        .map_err(TransportError::ser_err)?;
                    let _ = self.attempt(route, RequestPacket::Single(request), None).await;
                }
                success(&true)
            }
            other => Err(rpc_error(-32601, format!("{other} is not a filter method"))),
        }
    }

    /// New logs of a log filter; advances its cursor.
    async fn log_changes(
        &self,
        id: &Id,
        filter: &mut LogFilter,
    ) -> Result<ResponsePayload, Failure> {
        let head = self.head(id).await?;
        let Some(plan) = self.plan(id, &mut filter.cursor, head).await? else { return nothing() };
        let low = plan.from.max(filter.from.unwrap_or(0));
        let high = plan.to.min(filter.to.unwrap_or(u64::MAX));
        if low > high {
            // Nothing the filter wants in these blocks (its range starts later or has ended).
            filter.cursor.block = plan.to;
            return nothing();
        }
        // The header of the last block first: a route without it would answer eth_getLogs for
        // fewer blocks than asked.
        let end = match plan.first.filter(|first| first.number.to::<u64>() == plan.to) {
            Some(header) => header,
            None => match self.header(id, plan.to).await? {
                Some(header) => header,
                None => return nothing(),
            },
        };
        let mut range = filter.criteria.clone();
        range.block_option = FilterBlockOption::Range {
            from_block: Some(BlockNumberOrTag::Number(low)),
            to_block: Some(BlockNumberOrTag::Number(high)),
        };
        match self.call(id, "eth_getLogs", (range,)).await? {
            logs @ ResponsePayload::Success(_) => {
                filter.cursor.reached(plan.to, end.hash);
                Ok(logs)
            }
            ResponsePayload::Failure(error) => Err(Failure::Rpc(error)),
        }
    }

    /// Hashes of the new blocks for a block filter; advances its cursor.
    async fn block_changes(
        &self,
        id: &Id,
        cursor: &mut Cursor,
    ) -> Result<ResponsePayload, Failure> {
        let head = self.head(id).await?;
        let Some(plan) = self.plan(id, cursor, head).await? else { return nothing() };
        let first = plan.first;
        let mut headers = stream::iter(plan.from..=plan.to)
            .map(|number| {
                let known = first.clone().filter(|h| h.number.to::<u64>() == number);
                async move {
                    match known {
                        Some(header) => Ok(Some(header)),
                        None => self.header(id, number).await,
                    }
                }
            })
            .buffered(HEADER_CONCURRENCY);
        let mut hashes = Vec::new();
        let mut failure = None;
        while let Some(result) = headers.next().await {
            match result {
                // Each block must extend the one before (or the chain changed under us: stop,
                // the next call sees the reorg).
                Ok(Some(header)) if cursor.hash().is_none_or(|h| h == header.parent_hash) => {
                    cursor.reached(header.number.to(), header.hash);
                    hashes.push(header.hash);
                }
                Ok(_) => break,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        match failure {
            Some(err) if hashes.is_empty() => Err(err),
            _ => success(&hashes),
        }
    }

    /// Changes of a pending-transaction filter, from the route that holds it and no other.
    async fn pending_changes(
        &self,
        id: &Id,
        key: &str,
        url: &Url,
        upstream: &str,
    ) -> Result<ResponsePayload, Failure> {
        let Some(route) = self.route_by_url(url) else {
            return Err(rpc_error(
                NOT_FOUND_CODE,
                format!(
                    "pending-transaction filter {key}: its route {url} left the route set; \
                     create a new filter"
                ),
            ));
        };
        let request = Request::new("eth_getFilterChanges", id.clone(), (upstream,))
            .serialize()
            .map_err(TransportError::ser_err)?;
        match self.attempt(route, RequestPacket::Single(request), None).await.1 {
            Outcome::Done(packet) => single_payload(packet),
            Outcome::Retry(reason) => Err(rpc_error(
                NOT_FOUND_CODE,
                format!(
                    "pending-transaction filter {key}: its route {url} failed ({reason}); it \
                     cannot move to another route: create a new filter"
                ),
            )),
            Outcome::Fatal(err) => Err(err.into()),
        }
    }

    /// The blocks to cover next, after a reorg check; `None` when there is nothing new yet.
    async fn plan(&self, id: &Id, cursor: &mut Cursor, head: u64) -> Result<Option<Plan>, Failure> {
        if head <= cursor.block {
            return Ok(None);
        }
        let mut from = cursor.block + 1;
        let mut first = None;
        if let Some(hash) = cursor.hash() {
            let Some(next) = self.header(id, from).await? else { return Ok(None) };
            if next.parent_hash == hash {
                first = Some(next);
            } else {
                from = self.fork_point(id, cursor).await?;
                debug!(target: "lifeline::transport", cursor = cursor.block, from, "reorg: filter re-delivers from the fork point");
                cursor.rewind(from);
            }
        }
        let to = head.min(from.saturating_add(MAX_BLOCKS_PER_POLL - 1));
        Ok(Some(Plan { from, to, first }))
    }

    /// The first block to deliver again after a reorg replaced the cursor block: the one after
    /// the newest remembered block that is still canonical, or the oldest remembered block.
    async fn fork_point(&self, id: &Id, cursor: &Cursor) -> Result<u64, Failure> {
        for &(number, hash) in cursor.seen.iter().rev().skip(1) {
            if self.header(id, number).await?.is_some_and(|header| header.hash == hash) {
                return Ok(number + 1);
            }
        }
        Ok(cursor.seen.front().map_or(cursor.block, |(number, _)| *number))
    }

    /// The head: `eth_blockNumber` through the transport (never below the head served).
    async fn head(&self, id: &Id) -> Result<u64, Failure> {
        Ok(self.call_as::<U64>(id, "eth_blockNumber", ()).await?.to())
    }

    /// Block `number`'s header, `None` if the route answering does not have it.
    async fn header(&self, id: &Id, number: u64) -> Result<Option<Header>, Failure> {
        let header: Option<Header> =
            self.call_as(id, "eth_getBlockByNumber", (U64::from(number), false)).await?;
        Ok(header.filter(|header| header.number.to::<u64>() == number))
    }

    /// A request through the transport's failover; the route's answer (result or error).
    async fn call<P: RpcSend>(
        &self,
        id: &Id,
        method: &'static str,
        params: P,
    ) -> Result<ResponsePayload, Failure> {
        let request = Request::new(method, id.clone(), params)
            .serialize()
            .map_err(TransportError::ser_err)?;
        let (_, packet) = self.route(RequestPacket::Single(request)).await?;
        single_payload(packet)
    }

    async fn call_as<T: DeserializeOwned>(
        &self,
        id: &Id,
        method: &'static str,
        params: impl RpcSend,
    ) -> Result<T, Failure> {
        match self.call(id, method, params).await? {
            ResponsePayload::Success(raw) => T::deserialize(&*raw)
                .map_err(|err| TransportError::deser_err(err, raw.get()).into()),
            ResponsePayload::Failure(error) => Err(Failure::Rpc(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_random_looking_and_128_bits() {
        let filters = Filters::default();
        let now = Instant::now();
        let a = filters.install(State::Blocks(Cursor::at(1)), now);
        let b = filters.install(State::Blocks(Cursor::at(1)), now);
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 34, "{id}");
            assert_eq!(&canonical_id(id), id, "no leading zero");
            assert!(id.starts_with("0x") && id[2..].chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        let other = Filters::default().install(State::Blocks(Cursor::at(1)), now);
        assert_ne!(a, other, "salted per transport");
    }

    #[test]
    fn ids_are_matched_whatever_the_case_and_padding() {
        assert_eq!(canonical_id("0x00ABcd"), "0xabcd");
        assert_eq!(canonical_id("0x0"), "0x0");
        assert_eq!(canonical_id("0X1f"), "0x1f");
    }

    #[test]
    fn filters_unused_for_five_minutes_expire() {
        let filters = Filters::default();
        let now = Instant::now();
        let kept = filters.install(State::Blocks(Cursor::at(1)), now);
        let dropped = filters.install(State::Blocks(Cursor::at(1)), now);
        let later = now + Duration::from_secs(200);
        assert!(filters.get(&kept, later).is_some(), "a poll keeps it alive");
        let much_later = now + FILTER_TIMEOUT + Duration::from_secs(1);
        assert!(filters.get(&dropped, much_later).is_none(), "unused for 5 minutes");
        assert!(filters.get(&kept, much_later).is_some(), "used 200 s in");
    }

    #[test]
    fn cursor_remembers_a_bounded_window_and_rewinds() {
        let mut cursor = Cursor::at(0);
        for n in 1..=(REORG_MEMORY as u64 + 10) {
            cursor.reached(n, B256::with_last_byte(n as u8));
        }
        assert_eq!(cursor.seen.len(), REORG_MEMORY);
        assert_eq!(cursor.hash(), Some(B256::with_last_byte(REORG_MEMORY as u8 + 10)));
        cursor.rewind(70);
        assert_eq!(cursor.block, 69);
        assert_eq!(cursor.hash(), Some(B256::with_last_byte(69)));
    }

    #[test]
    fn bounds_of_tags_and_numbers() {
        let range = |from, to| FilterBlockOption::Range { from_block: from, to_block: to };
        assert_eq!(bounds(&range(None, None)), (None, None));
        assert_eq!(
            bounds(&range(Some(BlockNumberOrTag::Number(5)), Some(BlockNumberOrTag::Latest))),
            (Some(5), None)
        );
        assert_eq!(
            bounds(&range(Some(BlockNumberOrTag::Earliest), Some(BlockNumberOrTag::Number(9)))),
            (Some(0), Some(9))
        );
        assert_eq!(bounds(&FilterBlockOption::AtBlockHash(B256::ZERO)), (None, None));
    }
}
