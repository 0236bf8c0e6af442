//! JSON-RPC 2.0 at the gateway's edge: parsing and validating what clients send, the method
//! policy, and the error objects the gateway answers with itself. Nothing here talks to an
//! upstream: bad input is answered before it could reach one.

use serde_json::{Value, value::RawValue};

/// JSON-RPC error codes the gateway answers with.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method is unknown here or refused by the policy.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params are not what the method takes.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The gateway could not get an answer from any route.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The client exceeded a limit (rate, subscriptions).
    pub const LIMIT_EXCEEDED: i64 = -32005;
}

/// One validated call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The client's id, verbatim (number, string or null); `None` for a notification.
    pub id: Option<Box<RawValue>>,
    /// The method.
    pub method: String,
    /// The params, verbatim (`[]` when absent).
    pub params: Box<RawValue>,
}

/// What a client sent.
#[derive(Debug)]
pub enum Incoming {
    /// One call (or a single invalid entry, already answered).
    Single(Result<Call, Value>),
    /// A batch: each entry a call or the error answering it.
    Batch(Vec<Result<Call, Value>>),
}

/// Parses a body; `Err` is the whole answer (parse error, empty batch). The body is validated
/// once and read without building a JSON tree: ids and params are kept verbatim.
pub fn parse(body: &[u8]) -> Result<Incoming, Value> {
    let whole: &RawValue = serde_json::from_slice(body)
        .map_err(|e| error(None, code::PARSE_ERROR, &format!("parse error: {e}")))?;
    if whole.get().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(whole.get())
            .map_err(|e| error(None, code::PARSE_ERROR, &format!("parse error: {e}")))?;
        if items.is_empty() {
            return Err(error(None, code::INVALID_REQUEST, "invalid request: empty batch"));
        }
        return Ok(Incoming::Batch(items.into_iter().map(validate).collect()));
    }
    Ok(Incoming::Single(validate(whole)))
}

/// The members of a request object, each kept as raw JSON.
#[derive(serde::Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// A member that is there (even as `null`) is `Some`; only a missing one is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// Checks one request object.
fn validate(raw: &RawValue) -> Result<Call, Value> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(error(None, code::INVALID_REQUEST, "invalid request: not an object"));
    }
    let wire: Wire<'_> = serde_json::from_str(text)
        .map_err(|_| error(None, code::INVALID_REQUEST, "invalid request: not an object"))?;
    let id = match wire.id {
        None => None,
        Some(id) if matches!(id.get().as_bytes()[0], b'"' | b'-' | b'0'..=b'9' | b'n') => {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(error(
                None,
                code::INVALID_REQUEST,
                "invalid request: id must be a number, a string or null",
            ));
        }
    };
    if wire.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Err(error(
            id.as_deref(),
            code::INVALID_REQUEST,
            "invalid request: jsonrpc must be \"2.0\"",
        ));
    }
    let method = match wire.method.map(|m| serde_json::from_str::<String>(m.get())) {
        Some(Ok(method)) if !method.is_empty() => method,
        _ => {
            return Err(error(
                id.as_deref(),
                code::INVALID_REQUEST,
                "invalid request: method must be a non-empty string",
            ));
        }
    };
    let params = match wire.params {
        None => empty_params(),
        Some(params) if matches!(params.get().as_bytes()[0], b'[' | b'{') => params.to_owned(),
        Some(_) => {
            return Err(error(
                id.as_deref(),
                code::INVALID_REQUEST,
                "invalid request: params must be an array or an object",
            ));
        }
    };
    Ok(Call { id, method, params })
}

fn empty_params() -> Box<RawValue> {
    RawValue::from_string("[]".into()).unwrap_or_default()
}

/// A JSON-RPC error object answering `id` (a raw JSON id, `None` = null).
pub fn error(id: Option<&RawValue>, code: i64, message: &str) -> Value {
    error_raw(id.map(|raw| raw.get().to_string()), code, message)
}

fn error_raw(id: Option<String>, code: i64, message: &str) -> Value {
    let id: Value = id.and_then(|raw| serde_json::from_str(&raw).ok()).unwrap_or(Value::Null);
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// Writes a success answer without re-parsing the upstream's result.
pub fn success_text(id: Option<&RawValue>, result: &RawValue) -> String {
    let id = id.map_or("null", RawValue::get);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#, result.get())
}

/// Writes an upstream's error object (a revert, say) under the client's id.
pub fn failure_text(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&RawValue>,
) -> String {
    let id = id.map_or("null", RawValue::get);
    let message = Value::String(message.to_string());
    match data {
        Some(data) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{}}}}}"#,
            data.get()
        ),
        None => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#
        ),
    }
}

/// Which methods a service lets through to its routes.
#[derive(Debug, Clone)]
pub struct MethodPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
}

/// Prefixes allowed by default: the standard reads and `eth_sendRawTransaction`.
const DEFAULT_PREFIXES: &[&str] = &["eth_", "net_", "web3_"];

/// Standard-prefixed methods refused unless a service allows them: they act with keys the node
/// holds, or are node administration.
const DEFAULT_DENY: &[&str] = &[
    "eth_sendTransaction",
    "eth_sign*",
    "eth_accounts",
    "eth_coinbase",
    "eth_submitWork",
    "eth_submitHashrate",
    "eth_getWork",
    "admin_*",
    "debug_*",
    "personal_*",
    "miner_*",
];

impl MethodPolicy {
    /// The default list plus a service's `allow_methods`, minus its `deny_methods`.
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        Self { allow: allow.to_vec(), deny: deny.to_vec() }
    }

    /// Whether `method` may go to an upstream.
    pub fn allows(&self, method: &str) -> bool {
        if self.deny.iter().any(|rule| matches(rule, method)) {
            return false;
        }
        if self.allow.iter().any(|rule| matches(rule, method)) {
            return true;
        }
        DEFAULT_PREFIXES.iter().any(|p| method.starts_with(p))
            && !DEFAULT_DENY.iter().any(|rule| matches(rule, method))
    }
}

fn matches(rule: &str, method: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => method.starts_with(prefix),
        None => rule == method,
    }
}

/// Standard methods that get their own metrics label; every other method is counted as
/// `other`, so a client cannot grow the metrics without bound.
const KNOWN_METHODS: &[&str] = &[
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_getBalance",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getCode",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_getLogs",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_maxPriorityFeePerGas",
    "eth_newBlockFilter",
    "eth_newFilter",
    "eth_newPendingTransactionFilter",
    "eth_sendRawTransaction",
    "eth_subscribe",
    "eth_syncing",
    "eth_uninstallFilter",
    "eth_unsubscribe",
    "net_version",
    "web3_clientVersion",
];

/// The metrics label of a method.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_and_invalid_requests_have_their_codes() {
        let err = parse(b"{not json").expect_err("parse error");
        assert_eq!(err["error"]["code"], code::PARSE_ERROR);
        assert_eq!(parse(b"[]").expect_err("empty batch")["error"]["code"], code::INVALID_REQUEST);
        let Ok(Incoming::Single(Err(e))) = parse(br#"{"jsonrpc":"1.0","id":7,"method":"x"}"#)
        else {
            panic!("expected an invalid single request")
        };
        assert_eq!(e["error"]["code"], code::INVALID_REQUEST);
        assert_eq!(e["id"], 7, "the id is echoed when it is readable");
        let Ok(Incoming::Batch(items)) =
            parse(br#"[1, {"jsonrpc":"2.0","id":"a","method":"eth_chainId"}]"#)
        else {
            panic!("expected a batch")
        };
        assert!(items[0].is_err());
        let call = items[1].as_ref().expect("valid");
        assert_eq!(call.method, "eth_chainId");
        assert_eq!(call.params.get(), "[]");
        assert_eq!(call.id.as_deref().map(RawValue::get), Some("\"a\""));
    }

    #[test]
    fn default_policy_allows_reads_and_raw_transactions_only() {
        let policy = MethodPolicy::new(&[], &[]);
        for ok in ["eth_call", "eth_sendRawTransaction", "net_version", "web3_clientVersion"] {
            assert!(policy.allows(ok), "{ok}");
        }
        for refused in [
            "eth_sendTransaction",
            "eth_sign",
            "eth_signTypedData_v4",
            "admin_peers",
            "debug_traceTransaction",
            "personal_unlockAccount",
            "miner_start",
            "anvil_mine",
        ] {
            assert!(!policy.allows(refused), "{refused}");
        }
        let custom = MethodPolicy::new(&["debug_*".into()], &["eth_getLogs".into()]);
        assert!(custom.allows("debug_traceCall"));
        assert!(!custom.allows("eth_getLogs"));
    }

    #[test]
    fn answers_keep_the_clients_id_verbatim() {
        let id = RawValue::from_string("\"req-1\"".into()).expect("json");
        let result = RawValue::from_string("\"0x10\"".into()).expect("json");
        let text = success_text(Some(&id), &result);
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["id"], "req-1");
        assert_eq!(v["result"], "0x10");
        let text = failure_text(Some(&id), 3, "execution \"reverted\"", Some(&result));
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["error"]["message"], "execution \"reverted\"");
        assert_eq!(method_label("eth_call"), "eth_call");
        assert_eq!(method_label("eth_madeUp"), "other");
    }
}
