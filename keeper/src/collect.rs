//! Collect for JSON-RPC endpoints: one round of probes across a service's endpoints, judged
//! against each other (corroborated head, majority hash and state root at that height).

use std::time::Instant;

use alloy::{
    primitives::{Address, B256},
    transports::http::reqwest::Url,
};
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::{
    config::JudgeConfig,
    judge::{self, Finding},
    metrics::Metrics,
    probe::{BlockAt, Head, Prober},
    proof,
};

/// One endpoint's result in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Endpoint index.
    pub index: u16,
    /// What was found.
    pub finding: Finding,
    /// Latency when it answered, ms.
    pub latency_ms: Option<u64>,
    /// Blocks behind the corroborated head.
    pub head_lag: u64,
}

/// Everything one JSON-RPC round needs.
#[derive(Debug)]
pub struct JsonRpcRound<'a> {
    /// The shared prober.
    pub prober: &'a Prober,
    /// Bounds probes in flight.
    pub limit: &'a Semaphore,
    /// Where probe latencies go.
    pub metrics: &'a Metrics,
    /// Thresholds.
    pub judge: &'a JudgeConfig,
    /// Expected chain id (0: not checked).
    pub chain_id: u64,
    /// Account whose state proof is verified, if any.
    pub proof_account: Option<Address>,
    /// When the round was scheduled to start (each head probe's start delay is measured from it).
    pub scheduled: Instant,
}

impl JsonRpcRound<'_> {
    /// Probes `endpoints` (index, URL) and judges each against the others.
    pub async fn observe(&self, endpoints: &[(u16, Url)], now: u64) -> Vec<Observed> {
        // Phase 1: heads.
        let heads = join_all(endpoints.iter().map(|(index, url)| async move {
            let _permit = self.limit.acquire().await;
            self.metrics.probe_start_delay.observe(self.scheduled.elapsed().as_secs_f64());
            let (latency, head) = self.prober.head(url).await;
            (*index, latency, head)
        }))
        .await;
        for (_, latency, head) in &heads {
            if head.is_ok() {
                self.metrics.observe_probe(latency.as_secs_f64());
            }
        }
        let right_chain: Vec<u64> = heads
            .iter()
            .filter_map(|(_, _, h)| h.as_ref().ok())
            .filter(|h| self.chain_id == 0 || h.chain_id == self.chain_id)
            .map(|h| h.number)
            .collect();
        let corroborated = judge::corroborated_head(&right_chain);

        let mut findings: Vec<(u16, Finding, Option<u64>, Option<Head>)> = heads
            .into_iter()
            .map(|(index, latency, head)| {
                let head = match head {
                    Err(failure) => return (index, Finding::Probe(failure), None, None),
                    Ok(head) => head,
                };
                let ms = Some(latency.as_millis() as u64);
                // The chain check stands on its own: when no endpoint serves the expected chain
                // there is no corroborated head, and every one of them is still on the wrong
                // chain.
                let finding = match corroborated {
                    Some(c) => judge::judge_head(self.judge, self.chain_id, c, &head, now),
                    None => judge::judge_chain(self.chain_id, head.chain_id),
                };
                (index, finding, ms, Some(head))
            })
            .collect();

        // Phase 2: hash (and state proof) at the corroborated height, for endpoints that have it.
        if let Some(c) = corroborated {
            let candidates: Vec<usize> = findings
                .iter()
                .enumerate()
                .filter(|(_, (_, f, _, h))| f.is_ok() && h.is_some_and(|h| h.number >= c))
                .map(|(k, _)| k)
                .collect();
            // An endpoint whose head is the corroborated block already told us its hash and
            // state root; only endpoints ahead of it need a second request.
            let at = join_all(candidates.iter().map(|&k| {
                let url =
                    endpoints.iter().find(|(i, _)| *i == findings[k].0).map(|(_, u)| u.clone());
                let head = findings[k].3;
                async move {
                    let Some(url) = url else { return (k, None, None) };
                    let block = match head {
                        Some(h) if h.number == c => {
                            Some(BlockAt { hash: h.hash, state_root: h.state_root })
                        }
                        _ => {
                            let _permit = self.limit.acquire().await;
                            self.prober.block_at(&url, c).await.ok()
                        }
                    };
                    let proof = match self.proof_account {
                        Some(account) => {
                            let _permit = self.limit.acquire().await;
                            Some(self.prober.account_proof(&url, account, c).await)
                        }
                        None => None,
                    };
                    (k, block, proof)
                }
            }))
            .await;
            let hashes: Vec<B256> = at.iter().filter_map(|(_, b, _)| b.map(|b| b.hash)).collect();
            let roots: Vec<B256> =
                at.iter().filter_map(|(_, b, _)| b.map(|b| b.state_root)).collect();
            let majority_hash = judge::majority(&hashes);
            let majority_root = judge::majority(&roots);
            for (k, block, proof) in at {
                if let Some(block) = block {
                    let finding = judge::judge_hash(majority_hash, block.hash);
                    if !finding.is_ok() {
                        findings[k].1 = finding;
                        continue;
                    }
                }
                if let (Some(account), Some(root), Some(proof)) =
                    (self.proof_account, majority_root, proof)
                {
                    let verdict = proof
                        .map_err(|e| e.to_string())
                        .and_then(|p| proof::verify_account(root, account, &p));
                    if let Err(reason) = verdict {
                        findings[k].1 = Finding::BadStateProof(reason);
                    }
                }
            }
        }

        findings
            .into_iter()
            .map(|(index, finding, latency_ms, head)| Observed {
                index,
                finding,
                latency_ms,
                head_lag: match (head, corroborated) {
                    (Some(h), Some(c)) => c.saturating_sub(h.number),
                    _ => 0,
                },
            })
            .collect()
    }
}
