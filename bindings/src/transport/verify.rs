//! Checks on an answer before it is served, for the moments the head polls have not caught up
//! yet (a fault that began since the last round):
//!
//! - **A block's hash is the hash of its header.** A block answer whose `hash` is not keccak of
//!   its RLP header was not made by the chain it claims to be from (a divergent hash): refused
//!   at once, on its first answer. Enforced once a polled block of this chain has hashed that
//!   way (some chains' RPC headers carry fields that do not), so it never refuses a chain whose
//!   headers it cannot hash.
//! - **A block builds on the majority's chain.** A block whose hash the majority contradicts at
//!   its height, or (one above the highest height the majority agrees on) whose parent is not
//!   the majority's block there: from another chain or a fork.
//! - **A head is no further ahead than the chain can be.** A head answer (`eth_blockNumber`, a
//!   `latest` block) above the highest head not judged ahead, plus `max_lag_blocks`, plus the
//!   blocks the chain can have made since that was seen (from the block time the polls
//!   measured): a fabricated future head.
//!
//! The last two can also be honest news (a reorg, or a burst of blocks on an automining
//! chain), so a suspect answer is corroborated before it is refused: the head poll runs at
//! once and the answer is judged again against the new round.

use std::time::Instant;

use alloy::{
    primitives::{B256, U64},
    rpc::json_rpc::ResponsePacket,
    transports::http::reqwest::Url,
};
use serde::Deserialize;

use super::{
    Inspection,
    freshness::{Judgement, Skip},
};

/// What a block answer says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockAnswer {
    pub(crate) number: u64,
    pub(crate) hash: B256,
    pub(crate) parent: B256,
    /// Whether `hash` is the hash of the header (`None`: the header could not be read as an
    /// Ethereum header).
    pub(crate) sealed: Option<bool>,
}

/// The fields every block answer has, whatever else its chain adds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Minimal {
    number: U64,
    hash: B256,
    parent_hash: B256,
}

impl BlockAnswer {
    /// Reads a block answer (`None` for errors, null and anything that is not a block).
    pub(crate) fn of(packet: &ResponsePacket) -> Option<Self> {
        let ResponsePacket::Single(response) = packet else { return None };
        let raw = response.payload.as_success()?;
        Self::from_raw(raw.get())
    }

    /// Reads a block from its JSON text.
    pub(crate) fn from_raw(json: &str) -> Option<Self> {
        let minimal: Minimal = serde_json::from_str::<Option<Minimal>>(json).ok()??;
        let sealed = serde_json::from_str::<alloy::rpc::types::Header>(json)
            .ok()
            .map(|header| header.inner.hash_slow() == minimal.hash);
        Some(Self {
            number: minimal.number.to::<u64>(),
            hash: minimal.hash,
            parent: minimal.parent_hash,
            sealed,
        })
    }
}

/// Why an answer of `url` (a `block`, a `head`) needs a second look before it is served, if it
/// does: a block the majority contradicts, a block more than one above the highest height the
/// majority agrees on, a head beyond what the chain can have reached, or a head below the one
/// this route reported before (a node whose head goes back has fallen behind or moved).
pub(crate) fn suspect(
    judgement: &Judgement,
    url: &Url,
    block: Option<BlockAnswer>,
    head: Option<u64>,
    now: Instant,
) -> Option<String> {
    if let Some(b) = block {
        if let Some(reason) = judgement.reject_block(b.number, b.hash, b.parent) {
            return Some(reason);
        }
        // Below the top, the majority's memory of a height can predate a reorg: a hash that
        // differs there is corroborated (the fresh round judges the route), not refused.
        if judgement.majority_hashes.get(&b.number).is_some_and(|agreed| *agreed != b.hash) {
            return Some(format!(
                "block {:#x} has another hash than the majority's at that height",
                b.number
            ));
        }
        if judgement.agreed_top().is_some_and(|(top, _)| b.number > top + 1) {
            return Some(format!("block {:#x} is above what the majority has shown", b.number));
        }
    }
    let head = head?;
    if let Some(limit) = judgement.head_limit(now)
        && head > limit
    {
        return Some(format!(
            "head {head:#x} is beyond what the chain can have reached ({limit:#x})"
        ));
    }
    match judgement.heads.get(url) {
        Some(before) if head < *before => {
            Some(format!("head {head:#x} is below this route's earlier {before:#x}"))
        }
        _ => None,
    }
}

/// Whether a suspect answer of `url` is refused, judged after a fresh head-poll round: its
/// route is now skipped (lagging or stalled: behind; otherwise refused), the majority
/// contradicts the block, or the head is beyond what the chain can have reached. (A block still
/// above what the majority shows, with nothing against it, is served: blocks can come faster
/// than polls.)
pub(crate) fn refuse(
    judgement: &Judgement,
    url: &Url,
    block: Option<BlockAnswer>,
    head: Option<u64>,
    now: Instant,
) -> Option<Inspection> {
    match judgement.skipped.get(url) {
        Some(skip @ (Skip::Lagging(_) | Skip::Stalled(_))) => {
            return Some(Inspection::Behind(format!("route {skip}")));
        }
        Some(skip) => return Some(Inspection::Refuse(format!("route {skip}"))),
        None => {}
    }
    if let Some(b) = block
        && let Some(reason) = judgement.reject_block(b.number, b.hash, b.parent)
    {
        return Some(Inspection::Refuse(reason));
    }
    let (head, limit) = (head?, judgement.head_limit(now)?);
    (head > limit).then(|| {
        Inspection::Refuse(format!(
            "head {head:#x} is beyond what the chain can have reached ({limit:#x})"
        ))
    })
}

/// Whether a method's answer is a block.
pub(crate) fn answers_a_block(method: &str) -> bool {
    matches!(method, "eth_getBlockByNumber" | "eth_getBlockByHash")
}

/// The block number of a transaction receipt answer.
pub(crate) fn receipt_block(packet: &ResponsePacket) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Receipt {
        block_number: U64,
    }
    let ResponsePacket::Single(response) = packet else { return None };
    let receipt = response.payload.try_success_as::<Option<Receipt>>()?.ok()??;
    Some(receipt.block_number.to::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anvil's block 1 (automine, one transfer), as its RPC returned it.
    const BLOCK: &str = r#"{"hash":"0x9c7c9e8d8e0a0ba7e9cd3a2bc2a1bb8e1ccd6bf1b1a1e6a0a0f6f2b44b7b1c41","parentHash":"0x0000000000000000000000000000000000000000000000000000000000000000","number":"0x1"}"#;

    #[test]
    fn a_block_that_is_not_a_full_header_is_read_but_not_judged() {
        let block = BlockAnswer::from_raw(BLOCK).expect("a block");
        assert_eq!(block.number, 1);
        assert_eq!(block.sealed, None, "no header fields to hash");
        assert_eq!(BlockAnswer::from_raw("null"), None);
        assert_eq!(BlockAnswer::from_raw(r#""0x10""#), None);
    }

    #[test]
    fn a_header_hashes_to_its_hash_and_a_rewritten_hash_does_not() {
        let header =
            alloy::consensus::Header { number: 7, gas_limit: 30_000_000, ..Default::default() };
        let hash = header.hash_slow();
        let rpc =
            alloy::rpc::types::Header { hash, inner: header, total_difficulty: None, size: None };
        let json = serde_json::to_string(&rpc).expect("json");
        assert_eq!(BlockAnswer::from_raw(&json).and_then(|b| b.sealed), Some(true));
        let forged = json.replace(&hash.to_string(), &B256::repeat_byte(1).to_string());
        assert_eq!(BlockAnswer::from_raw(&forged).and_then(|b| b.sealed), Some(false));
    }

    #[test]
    fn a_block_below_the_top_with_another_hash_than_the_majority_is_suspect() {
        let at = |n: u64, v: u8| B256::from(alloy::primitives::U256::from(n * 1000 + u64::from(v)));
        let mut judgement = Judgement::default();
        for n in 4..=7 {
            judgement.majority_hashes.insert(n, at(n, 0));
        }
        let url: Url = "http://127.0.0.1:1".parse().expect("url");
        let now = Instant::now();
        let block = |n: u64, v: u8| {
            Some(BlockAnswer { number: n, hash: at(n, v), parent: at(n - 1, v), sealed: None })
        };
        assert_eq!(suspect(&judgement, &url, block(6, 0), None, now), None, "the majority's 6");
        let forked = suspect(&judgement, &url, block(6, 9), None, now).expect("suspect");
        assert!(forked.contains("another hash than the majority's"), "{forked}");
        assert_eq!(suspect(&judgement, &url, block(3, 9), None, now), None, "not remembered");
    }

    #[test]
    fn receipts_say_their_block() {
        let raw = serde_json::value::RawValue::from_string(r#"{"blockNumber":"0x2a"}"#.into())
            .expect("json");
        let packet = ResponsePacket::Single(alloy::rpc::json_rpc::Response {
            id: alloy::rpc::json_rpc::Id::Number(1),
            payload: alloy::rpc::json_rpc::ResponsePayload::Success(raw),
        });
        assert_eq!(receipt_block(&packet), Some(42));
    }
}
