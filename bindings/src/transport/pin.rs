//! Pinned state reads: a read of the state at `latest` (an `eth_call`, a balance, a nonce, code,
//! storage, a proof, a gas estimate) is asked at one block the routes agree on, not at whatever
//! each node calls its latest.
//!
//! The block is the head the caller may expect: the head already served or the reference head
//! (whichever is higher), and at least the block of the last receipt served (read your own
//! writes). It is named by hash (EIP-1898 `{"blockHash": ..}`) when a strict majority of the
//! routes agree on that hash, else by number. So a route that began to lag since the last head
//! poll answers "block not found" instead of old state (and the next route is asked), and a
//! route that moved to another chain or a fork does not have the block at all. If no route can
//! answer the pinned read, it is asked again unpinned (fresh routes only, as before).

use alloy::{
    primitives::B256,
    rpc::json_rpc::{Request, RequestPacket, SerializedRequest},
};
use serde_json::Value;

/// The block a state read is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinnedBlock {
    /// A block a strict majority of the routes agree on (its height, its hash).
    Agreed(u64, B256),
    /// A height only (no majority hash known there yet).
    Number(u64),
}

impl PinnedBlock {
    fn param(self) -> Value {
        match self {
            Self::Agreed(_, hash) => serde_json::json!({ "blockHash": hash }),
            Self::Number(n) => Value::String(format!("{n:#x}")),
        }
    }

    /// The block's height.
    pub(crate) fn number(self) -> u64 {
        match self {
            Self::Agreed(n, _) | Self::Number(n) => n,
        }
    }
}

/// Where a state read's block parameter is (it defaults to `latest` when left out).
fn state_block_index(method: &str) -> Option<usize> {
    match method {
        "eth_getBalance"
        | "eth_getCode"
        | "eth_getTransactionCount"
        | "eth_call"
        | "eth_estimateGas" => Some(1),
        "eth_getStorageAt" | "eth_getProof" => Some(2),
        _ => None,
    }
}

/// Whether `request` reads the state at `latest` (explicitly or by leaving the block out).
pub(crate) fn reads_latest_state(request: &RequestPacket) -> bool {
    let RequestPacket::Single(single) = request else { return false };
    latest_params(single).is_some()
}

/// The params of a state read at `latest`, and where its block goes.
fn latest_params(single: &SerializedRequest) -> Option<(Vec<Value>, usize)> {
    let index = state_block_index(single.method())?;
    let params: Vec<Value> = match single.params() {
        Some(raw) => serde_json::from_str(raw.get()).ok()?,
        None => Vec::new(),
    };
    match params.get(index) {
        None | Some(Value::Null) if params.len() >= index => Some((params, index)),
        Some(Value::String(tag)) if tag == "latest" => Some((params, index)),
        _ => None,
    }
}

/// `request` asked at `block` instead of `latest` (same id, so the answer fits the caller);
/// `None` when it is not a state read at `latest`.
pub(crate) fn pin(request: &RequestPacket, block: PinnedBlock) -> Option<RequestPacket> {
    let RequestPacket::Single(single) = request else { return None };
    let (mut params, index) = latest_params(single)?;
    if params.len() == index {
        params.push(block.param());
    } else {
        params[index] = block.param();
    }
    let pinned = Request { meta: single.meta().clone(), params }.serialize().ok()?;
    Some(RequestPacket::Single(pinned))
}

#[cfg(test)]
mod tests {
    use alloy::rpc::json_rpc::Id;

    use super::*;

    fn request(method: &'static str, params: Value) -> RequestPacket {
        RequestPacket::Single(Request::new(method, Id::Number(7), params).serialize().expect("ok"))
    }

    fn params(packet: &RequestPacket) -> Value {
        let RequestPacket::Single(single) = packet else { panic!("single") };
        assert_eq!(single.id(), &Id::Number(7), "the caller's id is kept");
        serde_json::from_str(single.params().expect("params").get()).expect("json")
    }

    #[test]
    fn latest_state_reads_are_pinned_by_hash_or_number() {
        let hash = B256::repeat_byte(0xab);
        let call = request("eth_call", serde_json::json!([{"to": "0x01"}, "latest"]));
        let pinned = pin(&call, PinnedBlock::Agreed(9, hash)).expect("pinned");
        assert_eq!(params(&pinned), serde_json::json!([{"to": "0x01"}, {"blockHash": hash}]));
        let balance = request("eth_getBalance", serde_json::json!(["0x01"]));
        let pinned = pin(&balance, PinnedBlock::Number(16)).expect("pinned");
        assert_eq!(params(&pinned), serde_json::json!(["0x01", "0x10"]));
        let storage = request("eth_getStorageAt", serde_json::json!(["0x01", "0x0", "latest"]));
        assert_eq!(
            params(&pin(&storage, PinnedBlock::Number(1)).expect("pinned")),
            serde_json::json!(["0x01", "0x0", "0x1"])
        );
    }

    #[test]
    fn other_reads_are_left_alone() {
        let block = PinnedBlock::Number(1);
        for (method, params) in [
            ("eth_getBalance", serde_json::json!(["0x01", "pending"])),
            ("eth_getBalance", serde_json::json!(["0x01", "0x5"])),
            ("eth_call", serde_json::json!([{}, {"blockHash": B256::ZERO}])),
            ("eth_getTransactionCount", serde_json::json!(["0x01", "safe"])),
            ("eth_blockNumber", serde_json::json!([])),
            ("eth_getBlockByNumber", serde_json::json!(["latest", false])),
        ] {
            let packet = request(method, params.clone());
            assert!(!reads_latest_state(&packet), "{method} {params}");
            assert!(pin(&packet, block).is_none(), "{method} {params}");
        }
    }
}
