//! Attest, step two: sign and submit. Reads and writes go through the failover transport over
//! every configured registry RPC URL, so the keeper's own writes fail over too. Each submission
//! is simulated first; "another keeper already triggered this change" (the epoch moved) counts
//! as done. Nonces come from the chain (the attestation nonce from the registry, the account
//! nonce from the node), so a restarted keeper neither duplicates nor loses a submission. A
//! transaction without a receipt in time is replaced with higher fees.

use std::time::Duration;

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, TxHash},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::client::RpcClient,
    signers::local::PrivateKeySigner,
    transports::http::reqwest::Url,
};
use lifeline_bindings::{
    Attestation, FailoverConfig, FailoverTransport, RegistryClient, RouteRegistry, Verdict,
    attestation, registry::RouteRegistry::RouteRegistryErrors,
};
use tracing::{debug, info, warn};

use crate::config::SubmitConfig;

/// Why a submission did not land.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// This keeper is not in the registry's keeper set.
    #[error("{0} is not in the registry's current keeper set")]
    NotAKeeper(Address),
    /// The registry rejected the attestation for another reason.
    #[error("the registry rejected the attestation: {0:?}")]
    Rejected(RouteRegistryErrors),
    /// The chain could not be reached or the transaction could not be sent.
    #[error("registry chain: {0}")]
    Chain(String),
    /// Every attempt timed out without a receipt.
    #[error("no receipt after {0} attempts")]
    NoReceipt(u32),
}

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Mined and accepted.
    Accepted {
        /// The transaction.
        tx: TxHash,
        /// Its block.
        block: u64,
        /// Gas it used.
        gas_used: u64,
    },
    /// Another keeper's attestation changed the topology first; the keeper re-judges against
    /// the new epoch (not an error).
    Superseded(String),
}

/// Signs and submits attestations for one keeper key.
#[derive(Debug, Clone)]
pub struct Submitter {
    provider: DynProvider,
    registry: RouteRegistry::RouteRegistryInstance<DynProvider>,
    signer: PrivateKeySigner,
    chain_id: u64,
    config: SubmitConfig,
    /// One submission at a time per key: account nonces must not race.
    sending: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Submitter {
    /// A submitter writing through `rpc_urls` (failover between them) to the registry at `address`.
    pub async fn connect(
        rpc_urls: &[Url],
        address: Address,
        signer: PrivateKeySigner,
        config: SubmitConfig,
    ) -> Result<Self, SubmitError> {
        let transport = FailoverTransport::new(FailoverConfig {
            bootstrap: rpc_urls.to_vec(),
            hedge_after: None,
            ..Default::default()
        });
        // Receipts are polled every 250 ms (alloy's default for remote nodes is 7 s, which would
        // stall the pipeline behind every submission).
        let client =
            RpcClient::new(transport, false).with_poll_interval(Duration::from_millis(250));
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_client(client)
            .erased();
        let chain_id =
            provider.get_chain_id().await.map_err(|e| SubmitError::Chain(e.to_string()))?;
        let registry = RouteRegistry::new(address, provider.clone());
        Ok(Self { provider, registry, signer, chain_id, config, sending: Default::default() })
    }

    /// A read client over the same failover transport.
    pub fn client(&self) -> RegistryClient<DynProvider> {
        RegistryClient::new(*self.registry.address(), self.provider.clone())
    }

    /// The keeper's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The keeper's bit in vote bitmaps, or `NotAKeeper`.
    pub async fn keeper_bit(&self) -> Result<u32, SubmitError> {
        let state = self.registry.keeperState(self.address()).call().await.map_err(chain)?;
        if !state.active {
            return Err(SubmitError::NotAKeeper(self.address()));
        }
        Ok(1 << state.index)
    }

    /// Attests `verdicts` (empty: a heartbeat) about `service`.
    pub async fn submit(
        &self,
        service: B256,
        verdicts: Vec<Verdict>,
    ) -> Result<Submitted, SubmitError> {
        // One submission at a time per key.
        let _turn = self.sending.lock().await;
        let mut last_err = None;
        for attempt in 1..=self.config.max_attempts {
            if attempt > 1 {
                // Back off: 200 ms, 400 ms, 800 ms, ...
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            let (report, signature) = self.sign(service, verdicts.clone()).await?;
            // Simulate first: cheap, and it tells "superseded" from real failures.
            if let Err(err) =
                self.registry.attest(report.clone(), signature.clone().into()).call().await
            {
                let err = lifeline_bindings::Error::from(err);
                match err.revert() {
                    Some(RouteRegistryErrors::WrongEpoch(e)) => {
                        return Ok(Submitted::Superseded(format!(
                            "epoch moved from {} to {} (another keeper's attestation changed the set)",
                            e.signed, e.current
                        )));
                    }
                    Some(RouteRegistryErrors::NonceTooLow(_)) => {
                        debug!(target: "keeper::submit", attempt, "attestation nonce raced; re-reading");
                        continue;
                    }
                    Some(RouteRegistryErrors::NotKeeper(_)) => {
                        return Err(SubmitError::NotAKeeper(self.address()));
                    }
                    Some(other) => return Err(SubmitError::Rejected(other.clone())),
                    None => {
                        last_err = Some(SubmitError::Chain(err.to_string()));
                        continue;
                    }
                }
            }
            match self.send(&report, signature).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    warn!(target: "keeper::submit", attempt, error = %e, "submission attempt failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(SubmitError::NoReceipt(self.config.max_attempts)))
    }

    async fn sign(
        &self,
        service: B256,
        verdicts: Vec<Verdict>,
    ) -> Result<(Attestation, Vec<u8>), SubmitError> {
        let epoch = self.registry.service(service).call().await.map_err(chain)?;
        let keeper = self.registry.keeperState(self.address()).call().await.map_err(chain)?;
        let version = self.registry.keepers().call().await.map_err(chain)?._0;
        let now = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| SubmitError::Chain(e.to_string()))?
            .map(|b| b.header.timestamp)
            .unwrap_or_default();
        let ttl = u64::from(epoch.config.attestationTtl).max(2);
        let report = Attestation {
            service,
            epoch: epoch.epoch,
            configVersion: version,
            nonce: keeper.lastNonce + 1,
            deadline: now + self.config.deadline_secs.min(ttl - 1),
            verdicts,
        };
        let signature =
            attestation::sign(&self.signer, &report, self.chain_id, *self.registry.address())
                .map_err(|e| SubmitError::Chain(e.to_string()))?;
        Ok((report, signature))
    }

    /// Sends with an explicit nonce and fees; replaces the transaction with higher fees while
    /// no receipt arrives.
    async fn send(
        &self,
        report: &Attestation,
        signature: Vec<u8>,
    ) -> Result<Submitted, SubmitError> {
        let chain = |e: &dyn std::fmt::Display| SubmitError::Chain(e.to_string());
        let mut tx =
            self.registry.attest(report.clone(), signature.into()).into_transaction_request();
        tx.set_from(self.address());
        let nonce = self
            .provider
            .get_transaction_count(self.address())
            .pending()
            .await
            .map_err(|e| chain(&e))?;
        let gas = self.provider.estimate_gas(tx.clone()).await.map_err(|e| chain(&e))?;
        let fees = self.provider.estimate_eip1559_fees().await.map_err(|e| chain(&e))?;
        tx.set_nonce(nonce);
        tx.set_gas_limit(gas + gas / 5);
        let (mut max_fee, mut priority) = (fees.max_fee_per_gas, fees.max_priority_fee_per_gas);
        let timeout = Duration::from_secs(self.config.receipt_timeout_secs);
        for bump in 0..self.config.max_attempts {
            tx.set_max_fee_per_gas(max_fee);
            tx.set_max_priority_fee_per_gas(priority);
            let pending = match self.provider.send_transaction(tx.clone()).await {
                Ok(pending) => pending,
                // A replacement raced with the original's inclusion: the nonce is used up.
                Err(e) if bump > 0 && e.to_string().to_lowercase().contains("nonce too low") => {
                    return Ok(Submitted::Superseded("an earlier fee level was mined".into()));
                }
                Err(e) => return Err(chain(&e)),
            };
            match pending.with_timeout(Some(timeout)).get_receipt().await {
                Ok(receipt) if receipt.status() => {
                    info!(
                        target: "keeper::submit",
                        tx = %receipt.transaction_hash,
                        block = receipt.block_number.unwrap_or_default(),
                        gas = receipt.gas_used,
                        verdicts = report.verdicts.len(),
                        "attestation accepted"
                    );
                    return Ok(Submitted::Accepted {
                        tx: receipt.transaction_hash,
                        block: receipt.block_number.unwrap_or_default(),
                        gas_used: receipt.gas_used,
                    });
                }
                Ok(receipt) => {
                    return Ok(Submitted::Superseded(format!(
                        "transaction {} reverted on chain (state changed after simulation)",
                        receipt.transaction_hash
                    )));
                }
                Err(e) => {
                    let pct = u128::from(self.config.fee_bump_pct);
                    max_fee += max_fee * pct / 100 + 1;
                    priority += priority * pct / 100 + 1;
                    warn!(target: "keeper::submit", error = %e, max_fee, "no receipt in time; replacing with higher fees");
                }
            }
        }
        Err(SubmitError::NoReceipt(self.config.max_attempts))
    }
}

fn chain(err: alloy::contract::Error) -> SubmitError {
    SubmitError::Chain(lifeline_bindings::Error::from(err).to_string())
}
