//! The head already served: across a route failover, `eth_blockNumber` and `latest` answers never
//! go backwards.
//!
//! The transport keeps the highest block number it has returned for a head query (a Single
//! `eth_blockNumber`, or `eth_getBlockByNumber` of `latest` / `pending`). A route answering a
//! lower number is behind: the answer is not returned, the attempt becomes a retry ("behind the
//! head already served (0x.. < 0x..)") and the next route is tried. A `pending` block is built on
//! top of the head, so its number minus one is what it says about the head (nodes that answer
//! `pending` with the latest block only make the check more lenient).

use std::sync::atomic::{AtomicU64, Ordering};

use alloy::{
    primitives::U64,
    rpc::json_rpc::{RequestPacket, ResponsePacket},
};
use serde::Deserialize;

/// A request whose answer says where the head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadProbe {
    /// `eth_blockNumber`.
    BlockNumber,
    /// `eth_getBlockByNumber("latest", ..)`.
    Latest,
    /// `eth_getBlockByNumber("pending", ..)`.
    Pending,
}

/// The first parameter of `eth_getBlockByNumber`, when it is a tag or a hex number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Param {
    Text(String),
    Other(serde::de::IgnoredAny),
}

/// Only the `number` of a block.
#[derive(Deserialize)]
struct NumberOnly {
    number: U64,
}

impl HeadProbe {
    /// The probe a request is, if any. Only Single packets: a batch passes through unchanged.
    pub(crate) fn of(request: &RequestPacket) -> Option<Self> {
        let RequestPacket::Single(request) = request else { return None };
        match request.method() {
            "eth_blockNumber" => Some(Self::BlockNumber),
            "eth_getBlockByNumber" => {
                let params = request.params()?;
                let params = Vec::<Param>::deserialize(params).ok()?;
                match params.first()? {
                    Param::Text(tag) if tag == "latest" => Some(Self::Latest),
                    Param::Text(tag) if tag == "pending" => Some(Self::Pending),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The head a successful answer reports (`None` for errors, null blocks and anything
    /// unreadable: those are not head answers to judge).
    pub(crate) fn head(self, packet: &ResponsePacket) -> Option<u64> {
        let ResponsePacket::Single(response) = packet else { return None };
        let payload = &response.payload;
        match self {
            Self::BlockNumber => payload.try_success_as::<U64>()?.ok().map(|n| n.to::<u64>()),
            Self::Latest | Self::Pending => {
                let block = payload.try_success_as::<Option<NumberOnly>>()?.ok()??;
                let number = block.number.to::<u64>();
                Some(if self == Self::Pending { number.saturating_sub(1) } else { number })
            }
        }
    }
}

/// The highest head returned so far (stored plus one; zero means none yet).
#[derive(Debug, Default)]
pub(crate) struct ServedHead(AtomicU64);

impl ServedHead {
    /// The highest head returned so far.
    pub(crate) fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Acquire).checked_sub(1)
    }

    /// Replaces the served head (only when it was shown to come from a lying route).
    pub(crate) fn reset(&self, head: u64) {
        self.0.store(head.saturating_add(1), Ordering::Release);
    }

    /// Records `head` as served if it is not behind; returns the head already served when it is.
    pub(crate) fn raise(&self, head: u64) -> Result<(), u64> {
        let stored = head.saturating_add(1);
        let previous = self.0.fetch_max(stored, Ordering::AcqRel);
        if previous > stored { Err(previous - 1) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use alloy::rpc::json_rpc::{Id, Request, Response, ResponsePayload};

    use super::*;

    fn request<P: serde::Serialize + Clone + std::fmt::Debug + Send + Sync + Unpin>(
        method: &'static str,
        params: P,
    ) -> RequestPacket {
        RequestPacket::Single(Request::new(method, Id::Number(1), params).serialize().expect("ok"))
    }

    fn answer(json: &str) -> ResponsePacket {
        let raw = alloy::transports::utils::to_json_raw_value(
            &serde_json::from_str::<serde_json::Value>(json).expect("json"),
        )
        .expect("raw");
        ResponsePacket::Single(Response {
            id: Id::Number(1),
            payload: ResponsePayload::Success(raw),
        })
    }

    #[test]
    fn head_queries_are_recognised() {
        assert_eq!(HeadProbe::of(&request("eth_blockNumber", ())), Some(HeadProbe::BlockNumber));
        assert_eq!(
            HeadProbe::of(&request("eth_getBlockByNumber", ("latest", false))),
            Some(HeadProbe::Latest)
        );
        assert_eq!(
            HeadProbe::of(&request("eth_getBlockByNumber", ("pending", true))),
            Some(HeadProbe::Pending)
        );
        assert_eq!(HeadProbe::of(&request("eth_getBlockByNumber", ("0x10", false))), None);
        assert_eq!(HeadProbe::of(&request("eth_chainId", ())), None);
    }

    #[test]
    fn heads_are_read_from_answers() {
        assert_eq!(HeadProbe::BlockNumber.head(&answer(r#""0x10""#)), Some(16));
        assert_eq!(
            HeadProbe::Latest
                .head(&answer(&format!(r#"{{"number":"0x10","hash":"0x{}"}}"#, "11".repeat(32)))),
            Some(16)
        );
        assert_eq!(HeadProbe::Pending.head(&answer(r#"{"number":"0x11"}"#)), Some(16));
        assert_eq!(HeadProbe::Latest.head(&answer("null")), None);
    }

    #[test]
    fn served_head_never_goes_back() {
        let served = ServedHead::default();
        assert_eq!(served.get(), None);
        assert_eq!(served.raise(0), Ok(()));
        assert_eq!(served.get(), Some(0));
        assert_eq!(served.raise(16), Ok(()));
        assert_eq!(served.raise(16), Ok(()), "the same head again is fine");
        assert_eq!(served.raise(15), Err(16));
        assert_eq!(served.get(), Some(16));
    }
}
