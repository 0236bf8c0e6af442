//! What a route's answer means for the request: done, or try another route.

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket, RpcError},
    transports::{TransportError, TransportErrorKind},
};

/// Error messages of nodes that are behind (they lack the block or state asked for): another
/// route that is in sync can answer. (A pinned read names a block by number or hash: a node
/// without it says so in one of these ways.)
const LAGGING_NODE: &[&str] = &[
    "header not found",
    "header for hash not found",
    "blockoutofrange",
    "resource not found",
    "missing trie node",
    "unknown block",
    "block not found",
    "state not available",
    "state histories haven't been fully indexed",
];

/// The JSON-RPC error code of a revert (EIP-1474 / geth).
const REVERT_CODE: i64 = 3;

/// JSON-RPC error codes providers use for rate limits.
const RATE_LIMIT_CODES: &[i64] = &[-32005, 429];

/// The verdict on one attempt.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Return this to the caller (a result, or a JSON-RPC error such as a revert).
    Done(ResponsePacket),
    /// The route failed; another may succeed. The string says why, for the final error.
    Retry(String),
    /// The request itself is bad; no route will do better.
    Fatal(TransportError),
}

/// Classifies a route's answer.
pub(crate) fn classify(result: Result<ResponsePacket, TransportError>) -> Outcome {
    match result {
        Ok(packet) => match lagging_or_limited(&packet) {
            Some(reason) => Outcome::Retry(reason),
            None => Outcome::Done(packet),
        },
        Err(RpcError::Transport(kind)) => Outcome::Retry(describe(&kind)),
        Err(RpcError::DeserError { err, .. }) => {
            Outcome::Retry(format!("unreadable response: {err}"))
        }
        Err(RpcError::NullResp) => Outcome::Retry("null response".into()),
        Err(other) => Outcome::Fatal(other),
    }
}

fn lagging_or_limited(packet: &ResponsePacket) -> Option<String> {
    packet.iter_errors().find_map(|err| {
        if err.code == REVERT_CODE {
            // An execution error is an answer, whatever its message says.
            return None;
        }
        let message = err.message.to_ascii_lowercase();
        if LAGGING_NODE.iter().any(|pattern| message.contains(pattern)) {
            Some(format!("node behind: {}", err.message))
        } else if RATE_LIMIT_CODES.contains(&err.code) || message.contains("rate limit") {
            Some(format!("rate limited: {}", err.message))
        } else {
            None
        }
    })
}

fn describe(kind: &TransportErrorKind) -> String {
    match kind {
        TransportErrorKind::HttpError(e) => format!("HTTP {}", e.status),
        TransportErrorKind::HttpErrorWithRetryAfter { error, .. } => {
            format!("HTTP {}", error.status)
        }
        other => {
            // reqwest nests the useful part ("connection refused", "operation timed out").
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
    }
}

/// True when the packet sends a transaction: it goes to every route (same signed bytes, same
/// hash, so at most one inclusion) instead of one route at a time.
pub(crate) fn is_transaction_submission(request: &RequestPacket) -> bool {
    request
        .method_names()
        .any(|m| m == "eth_sendRawTransaction" || m == "eth_sendRawTransactionSync")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::rpc::json_rpc::{ErrorPayload, Id, Response, ResponsePayload};

    fn error_packet(code: i64, message: &str) -> ResponsePacket {
        ResponsePacket::Single(Response {
            id: Id::Number(1),
            payload: ResponsePayload::Failure(ErrorPayload {
                code,
                message: message.to_string().into(),
                data: None,
            }),
        })
    }

    #[test]
    fn execution_errors_are_returned_not_retried() {
        let outcome = classify(Ok(error_packet(3, "execution reverted: WrongEpoch")));
        assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
        let outcome = classify(Ok(error_packet(3, "execution reverted: block not found")));
        assert!(matches!(outcome, Outcome::Done(_)), "a revert whatever it says: {outcome:?}");
    }

    #[test]
    fn lagging_node_errors_are_retried() {
        for message in [
            "header not found",
            "missing trie node 0xabc (path )",
            "BlockOutOfRangeError: block height is 9 but requested was 10",
            "Resource not found",
        ] {
            let outcome = classify(Ok(error_packet(-32000, message)));
            assert!(matches!(outcome, Outcome::Retry(_)), "{message}: {outcome:?}");
        }
    }

    #[test]
    fn rate_limits_and_http_errors_are_retried() {
        assert!(matches!(classify(Ok(error_packet(-32005, "limit exceeded"))), Outcome::Retry(_)));
        let http = TransportErrorKind::http_error(503, String::new());
        assert!(matches!(classify(Err(http)), Outcome::Retry(reason) if reason == "HTTP 503"));
    }
}
