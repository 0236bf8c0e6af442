//! Judge: from one round of observations to per-endpoint findings, then to stable verdicts with
//! local hysteresis. Pure logic: no I/O, unit-tested directly.
//!
//! JSON-RPC endpoints are judged against the *corroborated head*: the highest block that a
//! majority of the answering endpoints have reached (the median from the top), never the
//! maximum, so one endpoint claiming a far-future block cannot make every other one "lag".

use std::collections::{HashMap, VecDeque};

use alloy::primitives::B256;

use crate::{config::JudgeConfig, probe::ProbeFailure};

/// What was wrong with an endpoint in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Nothing.
    Ok,
    /// The probe failed.
    Probe(ProbeFailure),
    /// It serves another chain.
    WrongChain {
        /// The chain id it reported.
        reported: u64,
    },
    /// Its head is too far behind the corroborated head.
    Lagging {
        /// Blocks behind.
        blocks: u64,
    },
    /// Its head is too far ahead of the corroborated head (fabricated).
    AheadOfMajority {
        /// Blocks ahead.
        blocks: u64,
    },
    /// Its head block is too old (the node stopped following the chain).
    Stalled {
        /// Age of its head block, seconds.
        age_secs: u64,
    },
    /// Its block hash at the corroborated height differs from the majority's (a fork).
    Divergent,
    /// Its state proof does not verify against the majority's state root.
    BadStateProof(String),
    /// Its median latency over the window is above the threshold.
    Slow {
        /// Median latency, ms.
        median_ms: u64,
    },
}

impl Finding {
    /// True for [`Finding::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Probe(ProbeFailure::Timeout) => "timeout",
            Self::Probe(ProbeFailure::Unreachable(_)) => "unreachable",
            Self::Probe(ProbeFailure::HttpStatus(_)) => "http_status",
            Self::Probe(ProbeFailure::RpcError(..)) => "rpc_error",
            Self::Probe(ProbeFailure::Garbage(_)) => "garbage",
            Self::Probe(ProbeFailure::TooLarge(_)) => "too_large",
            Self::WrongChain { .. } => "wrong_chain",
            Self::Lagging { .. } => "lagging",
            Self::AheadOfMajority { .. } => "ahead_of_majority",
            Self::Stalled { .. } => "stalled",
            Self::Divergent => "divergent",
            Self::BadStateProof(_) => "bad_state_proof",
            Self::Slow { .. } => "slow",
        }
    }
}

/// The corroborated head of a set of reported heads: the highest number that a strict majority
/// of them have reached. `None` when nobody answered.
pub fn corroborated_head(heads: &[u64]) -> Option<u64> {
    if heads.is_empty() {
        return None;
    }
    let mut sorted = heads.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let majority = sorted.len() / 2 + 1;
    Some(sorted[majority - 1])
}

/// The value a strict majority agrees on, if any (e.g. the block hash at a height).
pub fn majority<T: Copy + Eq + std::hash::Hash>(values: &[T]) -> Option<T> {
    let mut counts: HashMap<T, usize> = HashMap::new();
    for v in values {
        *counts.entry(*v).or_default() += 1;
    }
    counts.into_iter().find(|(_, n)| *n * 2 > values.len()).map(|(v, _)| v)
}

/// The chain check, for every endpoint on its own (it needs no other endpoint to corroborate
/// anything): [`Finding::WrongChain`] when the endpoint reports another chain than the service's.
/// An expected chain id of 0 (a service registered without one, e.g. non-EVM) checks nothing.
pub fn judge_chain(expected_chain_id: u64, reported: u64) -> Finding {
    if expected_chain_id != 0 && reported != expected_chain_id {
        return Finding::WrongChain { reported };
    }
    Finding::Ok
}

/// Head-based findings for one endpoint, given the corroborated head (the chain check first).
pub fn judge_head(
    config: &JudgeConfig,
    expected_chain_id: u64,
    corroborated: u64,
    head: &crate::probe::Head,
    now: u64,
) -> Finding {
    let chain = judge_chain(expected_chain_id, head.chain_id);
    if !chain.is_ok() {
        return chain;
    }
    if head.number + config.max_lag_blocks < corroborated {
        return Finding::Lagging { blocks: corroborated - head.number };
    }
    if head.number > corroborated + config.max_ahead_blocks {
        return Finding::AheadOfMajority { blocks: head.number - corroborated };
    }
    let age = now.saturating_sub(head.timestamp);
    if age > config.max_head_age_secs {
        return Finding::Stalled { age_secs: age };
    }
    Finding::Ok
}

/// Divergence at the corroborated height: `None` when there is no majority hash to compare to.
pub fn judge_hash(majority_hash: Option<B256>, hash: B256) -> Finding {
    match majority_hash {
        Some(m) if m != hash => Finding::Divergent,
        _ => Finding::Ok,
    }
}

/// A stable verdict after hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough rounds yet to say.
    Unknown,
    /// Fit to serve.
    Healthy,
    /// Not fit to serve.
    Unhealthy,
}

/// Per-endpoint memory of past rounds: F consecutive failures flag, R consecutive successes clear.
#[derive(Debug, Clone)]
pub struct Tracker {
    verdict: Verdict,
    failures: u32,
    successes: u32,
    latencies_ms: VecDeque<u64>,
    /// The last finding, for logs and the verdict's reason.
    pub last: Finding,
    /// Blocks behind the corroborated head in the last round.
    pub head_lag: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            verdict: Verdict::Unknown,
            failures: 0,
            successes: 0,
            latencies_ms: VecDeque::new(),
            last: Finding::Ok,
            head_lag: 0,
        }
    }
}

impl Tracker {
    /// Records one round: the finding and (when the endpoint answered) its latency. Returns the
    /// verdict after hysteresis.
    pub fn record(
        &mut self,
        config: &JudgeConfig,
        finding: Finding,
        latency_ms: Option<u64>,
    ) -> Verdict {
        let mut finding = finding;
        if let Some(ms) = latency_ms {
            self.latencies_ms.push_back(ms);
            while self.latencies_ms.len() > config.latency_window {
                self.latencies_ms.pop_front();
            }
            if finding.is_ok() && self.latencies_ms.len() >= config.latency_window {
                let median = self.median_latency_ms();
                if median > config.max_latency_ms {
                    finding = Finding::Slow { median_ms: median };
                }
            }
        }
        if finding.is_ok() {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= config.recover_after {
                self.verdict = Verdict::Healthy;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= config.fail_after {
                self.verdict = Verdict::Unhealthy;
            }
        }
        self.last = finding;
        self.verdict
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Median latency over the window, ms (0 before any sample).
    pub fn median_latency_ms(&self) -> u64 {
        let mut sorted: Vec<u64> = self.latencies_ms.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Head;

    fn head(number: u64, timestamp: u64) -> Head {
        Head { chain_id: 1, number, hash: B256::ZERO, timestamp, state_root: B256::ZERO }
    }

    #[test]
    fn corroborated_head_ignores_one_far_future_claim() {
        assert_eq!(corroborated_head(&[100, 100, 101, 1_000_000]), Some(100));
        assert_eq!(corroborated_head(&[100, 99, 1_000_000]), Some(100));
        assert_eq!(corroborated_head(&[7]), Some(7));
        assert_eq!(corroborated_head(&[]), None);
    }

    #[test]
    fn honest_endpoints_do_not_lag_behind_a_liar() {
        let config = JudgeConfig::default();
        let c = corroborated_head(&[100, 100, 100, 1_000_000]).expect("some");
        assert_eq!(judge_head(&config, 1, c, &head(100, 50), 50), Finding::Ok);
        assert_eq!(
            judge_head(&config, 1, c, &head(1_000_000, 50), 50),
            Finding::AheadOfMajority { blocks: 999_900 }
        );
    }

    #[test]
    fn head_findings() {
        let config = JudgeConfig::default();
        assert_eq!(judge_head(&config, 1, 100, &head(90, 50), 50), Finding::Lagging { blocks: 10 });
        assert_eq!(judge_head(&config, 1, 100, &head(98, 50), 50), Finding::Ok, "within max_lag");
        assert_eq!(
            judge_head(&config, 1, 100, &head(100, 10), 50),
            Finding::Stalled { age_secs: 40 }
        );
        let wrong = Head { chain_id: 5, ..head(100, 50) };
        assert_eq!(judge_head(&config, 1, 100, &wrong, 50), Finding::WrongChain { reported: 5 });
        assert_eq!(judge_head(&config, 0, 100, &wrong, 50), Finding::Ok, "chain id 0: not checked");
    }

    #[test]
    fn chain_is_checked_without_a_corroborated_head() {
        assert_eq!(judge_chain(1, 31337), Finding::WrongChain { reported: 31337 });
        assert_eq!(judge_chain(31337, 31337), Finding::Ok);
        assert_eq!(judge_chain(0, 31337), Finding::Ok, "chain id 0: not checked");
    }

    #[test]
    fn majority_hash_and_divergence() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        assert_eq!(majority(&[a, a, b]), Some(a));
        assert_eq!(majority(&[a, b]), None, "a tie is no majority");
        assert_eq!(judge_hash(Some(a), b), Finding::Divergent);
        assert_eq!(judge_hash(None, b), Finding::Ok);
    }

    #[test]
    fn hysteresis_needs_f_failures_to_flag_and_r_successes_to_clear() {
        let config = JudgeConfig { fail_after: 2, recover_after: 3, ..Default::default() };
        let mut t = Tracker::default();
        let bad = || Finding::Probe(ProbeFailure::Timeout);
        assert_eq!(t.record(&config, bad(), None), Verdict::Unknown);
        assert_eq!(t.record(&config, bad(), None), Verdict::Unhealthy);
        assert_eq!(t.record(&config, Finding::Ok, Some(5)), Verdict::Unhealthy);
        assert_eq!(t.record(&config, Finding::Ok, Some(5)), Verdict::Unhealthy);
        assert_eq!(t.record(&config, bad(), None), Verdict::Unhealthy, "streak broken");
        for _ in 0..2 {
            t.record(&config, Finding::Ok, Some(5));
        }
        assert_eq!(t.record(&config, Finding::Ok, Some(5)), Verdict::Healthy);
        assert_eq!(t.record(&config, bad(), None), Verdict::Healthy, "one blip does not flag");
    }

    #[test]
    fn slow_median_over_the_window_is_a_failure() {
        let config = JudgeConfig {
            latency_window: 3,
            max_latency_ms: 100,
            fail_after: 1,
            ..Default::default()
        };
        let mut t = Tracker::default();
        t.record(&config, Finding::Ok, Some(500));
        t.record(&config, Finding::Ok, Some(20));
        assert_eq!(t.record(&config, Finding::Ok, Some(400)), Verdict::Unhealthy);
        assert_eq!(t.last, Finding::Slow { median_ms: 400 });
    }
}
