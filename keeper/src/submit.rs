//! Attest, step two: sign and submit. Reads and writes go through the keeper's registry RPC
//! ([`RegistryRpc`]: every configured URL, pinned to the registry's chain), so the keeper's own
//! writes fail over too.
//!
//! ```text
//!  sign:     epoch, the keeper's nonce for the service (the registry keeps one window per
//!            (keeper, service)), config version, chain time: one block's state
//!  simulate: "epoch moved" = another keeper did it (superseded, fine); a nonce race re-signs
//!  send:     account nonce = the mined count (a transaction of ours still pending at that nonce
//!            is replaced, never queued behind); explicit gas and capped fees; signed here,
//!            so the hash is known whatever the node answers
//!  watch:    every hash sent for that nonce (receipt errors are "unknown", not "stuck"), and
//!            the registry's nonce for this keeper and service: past the attestation's = accepted, even when
//!            no receipt ever shows; the account nonce moved without it = not accepted
//!  replace:  no sign of landing within receipt_timeout_secs: same nonce, fees + fee_bump_pct,
//!            up to the caps; at most max_attempts sends, all before the attestation's deadline
//! ```
//!
//! Once a transaction is out, the attestation is never signed again within the submission: a
//! lagging receipt can cost a wait, never a second attestation.
//!
//! Signing and sending are separate. Attestations are relayable (the registry checks the
//! signature, not the sender), so each service's attestations go out from an account of their
//! own ([`Senders::PerService`], the default): a transaction stuck at one account's nonce only
//! ever holds back that service's next attestation, never another service's. The signing key
//! stays one; each service's sender key is derived from it ([`service_sender`]), lives only in
//! memory, and is topped up from the signing key's account when it runs low
//! (`submit.sender_min_balance`, `submit.sender_topup`). With [`Senders::Signer`] the signing
//! key's account sends everything, one transaction at a time, as a single account must.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718},
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, TxHash, keccak256, utils::format_ether},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    transports::http::reqwest::Url,
};
use lifeline_bindings::{
    Attestation, RegistryClient, RouteRegistry, Verdict, attestation,
    registry::RouteRegistry::RouteRegistryErrors,
};
use tracing::{debug, info, warn};

use crate::{
    config::{Senders, SubmitConfig},
    rpc::RegistryRpc,
    startup::StartupError,
};

/// How often receipts and the registry's nonce are checked while waiting.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// Replacement rule of geth, reth and others: a replacement must pay 10% more.
const MIN_REPLACEMENT_PCT: u128 = 10;

/// Why a submission did not land.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// This keeper is not in the registry's keeper set.
    #[error("{0} is not in the registry's current keeper set")]
    NotAKeeper(Address),
    /// The registry rejected the attestation for another reason.
    #[error("the registry rejected the attestation: {0}")]
    Rejected(String),
    /// The chain could not be reached or the transaction could not be sent.
    #[error("registry chain: {0}")]
    Chain(String),
    /// Nothing landed within the attempts (the transaction may still be pending: the next
    /// submission replaces it at the same account nonce).
    #[error("no sign of the transaction landing after {0} sends")]
    NoReceipt(u32),
}

impl SubmitError {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotAKeeper(_) => "not_a_keeper",
            Self::Rejected(_) => "rejected",
            Self::Chain(_) => "chain",
            Self::NoReceipt(_) => "no_receipt",
        }
    }
}

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Mined and accepted (its receipt seen).
    Accepted {
        /// The transaction.
        tx: TxHash,
        /// Its block.
        block: u64,
        /// Gas it used.
        gas_used: u64,
    },
    /// Accepted: the registry's nonce for this keeper reached the attestation's, but no receipt
    /// was seen (the RPC's receipts lag). Not re-sent.
    Landed {
        /// The attestation nonce now on chain.
        nonce: u64,
    },
    /// Another keeper's attestation changed the topology first, or the transaction reverted on
    /// chain; the keeper re-judges against the new state (not an error).
    Superseded(String),
}

/// What a node's refusal of a raw transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The node already has this very transaction: it was sent.
    AlreadyKnown,
    /// A transaction with this nonce and higher (or equal) fees is pending: outbid it.
    Underpriced,
    /// The nonce is used up: something with this nonce was mined.
    NonceUsed,
    /// Anything else (insufficient funds, gas limit, ...).
    Other,
}

/// Classifies a node's refusal of `eth_sendRawTransaction`. Nodes give these conditions no
/// standard code (geth, reth, anvil, erigon and besu answer -32000 or -32003, nethermind
/// -32010), so the code only rules out execution errors (3) and the wording of each client
/// decides.
pub fn classify_rejection(code: i64, message: &str) -> Rejection {
    if code == 3 {
        return Rejection::Other;
    }
    let m = message.to_ascii_lowercase();
    let has = |patterns: &[&str]| patterns.iter().any(|p| m.contains(p));
    if has(&[
        "already known",
        "known transaction",
        "alreadyknown",
        "already imported",
        "already exists",
    ]) {
        Rejection::AlreadyKnown
    } else if has(&[
        "replacement transaction underpriced",
        "replacement_underpriced",
        "replacement fee too low",
        "replacementnotallowed",
        "transaction underpriced",
        "feetoolowtocompete",
        "max fee per gas less than block base fee",
    ]) {
        Rejection::Underpriced
    } else if has(&[
        "nonce too low",
        "nonce_too_low",
        "oldnonce",
        "nonce has already been used",
        "nonce already used",
        "invalid nonce",
    ]) {
        Rejection::NonceUsed
    } else {
        Rejection::Other
    }
}

pub use lifeline_bindings::error::describe_revert;

/// Signs and submits attestations for one keeper key.
#[derive(Debug, Clone)]
pub struct Submitter {
    provider: DynProvider,
    registry: RouteRegistry::RouteRegistryInstance<DynProvider>,
    signer: PrivateKeySigner,
    chain_id: u64,
    config: SubmitConfig,
    /// The signing key's own account: it sends everything with [`Senders::Signer`] and funds
    /// the service senders otherwise.
    own: Arc<Sender>,
    /// Each service's sender ([`Senders::PerService`]), made on first use.
    senders: Arc<std::sync::Mutex<HashMap<B256, Arc<Sender>>>>,
}

/// An account that sends attestations (or top-ups).
#[derive(Debug)]
struct Sender {
    address: Address,
    wallet: EthereumWallet,
    /// One transaction at a time per account (account nonces must not race), and what is
    /// still pending for it.
    outstanding: tokio::sync::Mutex<Outstanding>,
}

impl Sender {
    fn new(key: PrivateKeySigner) -> Self {
        Self {
            address: key.address(),
            wallet: EthereumWallet::from(key),
            outstanding: Default::default(),
        }
    }
}

/// Transactions sent at one account nonce that never showed a sign of landing.
#[derive(Debug, Default)]
struct Outstanding {
    nonce: Option<u64>,
    hashes: Vec<TxHash>,
    /// Highest fees sent at that nonce (a replacement must outbid them).
    fees: Option<(u128, u128)>,
}

/// The key that sends `service`'s attestations for the keeper whose signing key is `signer`
/// with [`Senders::PerService`]: keccak256 of a domain tag, the signing key and the service
/// id. Deterministic, so a restarted keeper finds its funded senders again; one-way, so a
/// leaked sender key reveals nothing about the signing key (and can sign no attestation).
pub fn service_sender(signer: &PrivateKeySigner, service: B256) -> PrivateKeySigner {
    let mut material = b"lifeline/keeper-sender/v1".to_vec();
    material.extend_from_slice(signer.to_bytes().as_slice());
    material.extend_from_slice(service.as_slice());
    let mut key = keccak256(&material);
    loop {
        // A hash outside secp256k1's scalar range (odds about 2^-128): hash again.
        if let Ok(sender) = PrivateKeySigner::from_bytes(&key) {
            return sender;
        }
        key = keccak256(key);
    }
}

impl Submitter {
    /// A submitter writing through `rpc` to the registry at `address`, signing for the chain
    /// `rpc` is pinned to.
    pub fn new(
        rpc: &RegistryRpc,
        address: Address,
        signer: PrivateKeySigner,
        config: SubmitConfig,
    ) -> Self {
        let provider = rpc.provider();
        let registry = RouteRegistry::new(address, provider.clone());
        Self {
            provider,
            registry,
            own: Arc::new(Sender::new(signer.clone())),
            signer,
            chain_id: rpc.chain_id(),
            config,
            senders: Default::default(),
        }
    }

    /// A submitter over `rpc_urls`, pinned to the chain holding the registry (see
    /// [`RegistryRpc::connect`]).
    pub async fn connect(
        rpc_urls: &[Url],
        address: Address,
        signer: PrivateKeySigner,
        config: SubmitConfig,
    ) -> Result<Self, StartupError> {
        let rpc = RegistryRpc::connect(rpc_urls, address, None).await?;
        Ok(Self::new(&rpc, address, signer, config))
    }

    /// A read client over the same transport.
    pub fn client(&self) -> RegistryClient<DynProvider> {
        RegistryClient::new(*self.registry.address(), self.provider.clone())
    }

    /// The keeper's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain id attestations are signed for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The account that sends `service`'s attestations (see [`Senders`]).
    pub fn sender_of(&self, service: B256) -> Address {
        self.sender(service).address
    }

    fn sender(&self, service: B256) -> Arc<Sender> {
        match self.config.senders {
            Senders::Signer => self.own.clone(),
            Senders::PerService => {
                let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
                senders
                    .entry(service)
                    .or_insert_with(|| Arc::new(Sender::new(service_sender(&self.signer, service))))
                    .clone()
            }
        }
    }

    /// Attests `verdicts` (empty: a heartbeat) about `service`.
    pub async fn submit(
        &self,
        service: B256,
        verdicts: Vec<Verdict>,
    ) -> Result<Submitted, SubmitError> {
        let sender = self.sender(service);
        let mut outstanding = sender.outstanding.lock().await;
        self.fund(&sender).await?;
        let mut last_err = None;
        // Retries here happen only before anything is sent.
        for attempt in 1..=self.config.max_attempts {
            if attempt > 1 {
                // Back off: 200 ms, 400 ms, 800 ms, ...
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            let (report, signature) = match self.sign(service, verdicts.clone()).await {
                Ok(signed) => signed,
                Err(e @ SubmitError::Chain(_)) => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Simulate first: cheap, and it tells "superseded" from real failures.
            if let Err(err) =
                self.registry.attest(report.clone(), signature.clone().into()).call().await
            {
                let err = lifeline_bindings::Error::from(err);
                match err.revert() {
                    Some(RouteRegistryErrors::NonceUsed(_)) => {
                        debug!(target: "keeper::submit", attempt, "attestation nonce raced; re-reading");
                        continue;
                    }
                    Some(revert) => return superseded_or_rejected(revert.clone(), self.address()),
                    None => {
                        last_err = Some(SubmitError::Chain(err.to_string()));
                        continue;
                    }
                }
            }
            return self.send(&sender, &mut outstanding, &report, signature).await;
        }
        Err(last_err.unwrap_or_else(|| {
            SubmitError::Chain(
                "the attestation nonce kept moving while signing (another process with this key?)"
                    .into(),
            )
        }))
    }

    /// Signs an attestation from one block's state: epoch, keeper nonce, config version and the
    /// chain time the deadline counts from.
    async fn sign(
        &self,
        service: B256,
        verdicts: Vec<Verdict>,
    ) -> Result<(Attestation, Vec<u8>), SubmitError> {
        let head = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| SubmitError::Chain(e.to_string()))?
            .ok_or_else(|| SubmitError::Chain("no latest block".into()))?;
        let at = BlockId::number(head.header.number);
        let me = self.address();
        let service_call = self.registry.service(service).block(at);
        let keeper_call = self.registry.keeperState(me, service).block(at);
        let version_call = self.registry.keepers().block(at);
        let (view, keeper, version) =
            tokio::try_join!(service_call.call(), keeper_call.call(), version_call.call())
                .map_err(chain)?;
        if !keeper.active {
            return Err(SubmitError::NotAKeeper(me));
        }
        let ttl = u64::from(view.config.attestationTtl).max(2);
        let report = Attestation {
            service,
            epoch: view.epoch,
            configVersion: version._0,
            nonce: keeper.lastNonce + 1,
            deadline: head.header.timestamp + self.config.deadline_secs.min(ttl - 1),
            verdicts,
        };
        let signature =
            attestation::sign(&self.signer, &report, self.chain_id, *self.registry.address())
                .map_err(|e| SubmitError::Chain(e.to_string()))?;
        Ok((report, signature))
    }

    /// Sends the attestation and watches it land (see the module docs).
    async fn send(
        &self,
        sender: &Sender,
        outstanding: &mut Outstanding,
        report: &Attestation,
        signature: Vec<u8>,
    ) -> Result<Submitted, SubmitError> {
        let me = sender.address;
        let call = self.registry.attest(report.clone(), signature.into());
        let mut tx = call.into_transaction_request();
        tx.set_from(me);
        tx.set_chain_id(self.chain_id);
        let nonce = self.next_nonce(me, outstanding).await?;
        if !outstanding.hashes.is_empty() {
            info!(
                target: "keeper::submit",
                nonce,
                pending = outstanding.hashes.len(),
                "replacing our transaction still pending at this nonce"
            );
        }
        let gas = match self.provider.estimate_gas(tx.clone()).await {
            Ok(gas) => gas,
            // The state moved since the simulation (a block landed in between).
            Err(e) => {
                let revert = e
                    .as_error_resp()
                    .and_then(|p| p.as_decoded_interface_error::<RouteRegistryErrors>());
                return match revert {
                    Some(revert) => superseded_or_rejected(revert, me),
                    None => Err(SubmitError::Chain(e.to_string())),
                };
            }
        };
        tx.set_nonce(nonce);
        tx.set_gas_limit(gas + gas / 5);
        let caps = self.caps();
        let mut fees = self.first_fees(outstanding).await?;
        let timeout = Duration::from_secs(self.config.receipt_timeout_secs);
        let mut sends = 0u32;
        let mut round = 0u32;
        while round < self.config.max_attempts {
            round += 1;
            if round > 1 {
                let Some(previous) = outstanding.fees else { break };
                let next = outbid(previous, previous, self.config.fee_bump_pct, caps);
                if !replaces(next, previous) {
                    // At the caps: a resend would be refused as underpriced. Keep watching.
                    warn!(target: "keeper::submit", max_fee = next.0, "fees at the configured caps; waiting for the pending transaction");
                    if let Some(done) = self.watch(me, outstanding, report, nonce, timeout).await? {
                        return Ok(done);
                    }
                    continue;
                }
                fees = next;
            }
            tx.set_max_fee_per_gas(fees.0);
            tx.set_max_priority_fee_per_gas(fees.1);
            let envelope = tx
                .clone()
                .build(&sender.wallet)
                .await
                .map_err(|e| SubmitError::Chain(format!("signing the transaction: {e}")))?;
            let hash = *envelope.tx_hash();
            let sent = self.provider.send_raw_transaction(&envelope.encoded_2718()).await;
            sends += 1;
            match sent {
                Ok(_) => {
                    info!(target: "keeper::submit", %hash, nonce, max_fee = fees.0, "sent");
                    outstanding.hashes.push(hash);
                    outstanding.fees = Some(fees);
                }
                Err(e) => {
                    let rejection = e
                        .as_error_resp()
                        .map(|p| classify_rejection(p.code, &p.message))
                        .unwrap_or(Rejection::Other);
                    match (rejection, e.as_error_resp()) {
                        (Rejection::AlreadyKnown, _) => {
                            outstanding.hashes.push(hash);
                            outstanding.fees = Some(fees);
                        }
                        (Rejection::Underpriced, _) => {
                            // Something of ours at this nonce pays more (e.g. from before a
                            // restart): outbid it at once.
                            debug!(target: "keeper::submit", nonce, "replacement underpriced; bumping");
                            outstanding.fees = Some(
                                outstanding
                                    .fees
                                    .map_or(fees, |f| (f.0.max(fees.0), f.1.max(fees.1))),
                            );
                            continue;
                        }
                        (Rejection::NonceUsed, _) => {
                            // Mined already (ours, maybe an earlier fee level): find out.
                            return self.settle_used_nonce(me, outstanding, report, nonce).await;
                        }
                        (Rejection::Other, Some(payload)) => {
                            if outstanding.hashes.is_empty() {
                                return Err(SubmitError::Chain(format!(
                                    "the node refused the transaction: {}",
                                    payload.message
                                )));
                            }
                            warn!(target: "keeper::submit", error = %payload.message, "replacement refused; watching the pending one");
                        }
                        (Rejection::Other, None) => {
                            // No answer: it may have reached a node. Watch for it too.
                            warn!(target: "keeper::submit", error = %e, "sending failed; watching for it anyway");
                            outstanding.hashes.push(hash);
                            outstanding.fees = Some(fees);
                        }
                    }
                }
            }
            if let Some(done) = self.watch(me, outstanding, report, nonce, timeout).await? {
                return Ok(done);
            }
            warn!(
                target: "keeper::submit",
                nonce,
                sends,
                "no sign of the transaction landing in time; replacing it with higher fees"
            );
        }
        // One last look before giving up (the next submission replaces what is pending).
        if let Some(done) = self.landed(me, report, nonce).await {
            *outstanding = Outstanding::default();
            return Ok(done);
        }
        Err(SubmitError::NoReceipt(sends))
    }

    /// Watches every hash sent at `nonce` and the registry's nonce for this keeper for up to
    /// `limit`. `Some` once the outcome is known.
    async fn watch(
        &self,
        sender: Address,
        outstanding: &mut Outstanding,
        report: &Attestation,
        nonce: u64,
        limit: Duration,
    ) -> Result<Option<Submitted>, SubmitError> {
        let started = Instant::now();
        let mut checked_chain = Instant::now();
        loop {
            for hash in &outstanding.hashes {
                // An error is "unknown", not "stuck": keep watching.
                if let Ok(Some(receipt)) = self.provider.get_transaction_receipt(*hash).await {
                    *outstanding = Outstanding::default();
                    return Ok(Some(from_receipt(&receipt, report)));
                }
            }
            if checked_chain.elapsed() >= Duration::from_secs(1) || started.elapsed() >= limit {
                checked_chain = Instant::now();
                if let Some(done) = self.landed(sender, report, nonce).await {
                    *outstanding = Outstanding::default();
                    return Ok(Some(done));
                }
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    }

    /// The node says the account nonce is used: the attestation landed (the registry's nonce
    /// moved), or the nonce went to a transaction that did not carry it.
    async fn settle_used_nonce(
        &self,
        sender: Address,
        outstanding: &mut Outstanding,
        report: &Attestation,
        nonce: u64,
    ) -> Result<Submitted, SubmitError> {
        // Receipts may lag behind the state: look a few times before deciding.
        for _ in 0..8 {
            for hash in &outstanding.hashes {
                if let Ok(Some(receipt)) = self.provider.get_transaction_receipt(*hash).await {
                    *outstanding = Outstanding::default();
                    return Ok(from_receipt(&receipt, report));
                }
            }
            if let Some(done) = self.landed(sender, report, nonce).await {
                *outstanding = Outstanding::default();
                return Ok(done);
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
        Err(SubmitError::Chain(format!(
            "account nonce {nonce} is used but its transaction is not visible yet"
        )))
    }

    /// Reads, at one block, the registry's nonce for this keeper and the sending account's
    /// nonce: the attestation was accepted (`Landed`), or the account nonce moved without it
    /// (`Superseded`), or neither yet (`None`). Read errors are "don't know yet".
    async fn landed(&self, sender: Address, report: &Attestation, nonce: u64) -> Option<Submitted> {
        let me = self.address();
        let head = self.provider.get_block_number().await.ok()?;
        let at = BlockId::number(head);
        let keeper = self.registry.keeperState(me, report.service).block(at).call().await.ok()?;
        if keeper.lastNonce >= report.nonce {
            info!(
                target: "keeper::submit",
                nonce = keeper.lastNonce,
                verdicts = report.verdicts.len(),
                "attestation accepted (the registry's nonce moved; no receipt seen)"
            );
            return Some(Submitted::Landed { nonce: keeper.lastNonce });
        }
        let mined = self.provider.get_transaction_count(sender).block_id(at).await.ok()?;
        (mined > nonce).then(|| {
            Submitted::Superseded(format!(
                "account nonce {nonce} was used without this attestation being accepted (it reverted, or an earlier transaction of this account took the nonce)"
            ))
        })
    }

    /// Tops up `sender` from the signing key's account when it holds less than
    /// `submit.sender_min_balance`, and waits (up to `receipt_timeout_secs x max_attempts`)
    /// for the top-up to show. One top-up at a time: the signing account's nonce must not race.
    /// A top-up still pending from before is replaced at the same nonce, never queued behind.
    async fn fund(&self, sender: &Sender) -> Result<(), SubmitError> {
        if sender.address == self.own.address {
            return Ok(());
        }
        let min = self.config.sender_min_balance_wei();
        let balance = |who: Address| async move {
            self.provider.get_balance(who).await.map_err(|e| SubmitError::Chain(e.to_string()))
        };
        if balance(sender.address).await? >= min {
            return Ok(());
        }
        let mut own = self.own.outstanding.lock().await;
        // Another submission may have topped it up while this one waited for the lock.
        let before = balance(sender.address).await?;
        if before >= min {
            return Ok(());
        }
        let value = self.config.sender_topup_wei();
        let from = self.own.address;
        info!(
            target: "keeper::submit",
            sender = %sender.address,
            balance = %format_ether(before),
            topup = %format_ether(value),
            "funding this service's sender account from the signing key's account"
        );
        let nonce = self.next_nonce(from, &mut own).await?;
        let fees = self.first_fees(&own).await?;
        let envelope = TransactionRequest::default()
            .with_from(from)
            .with_to(sender.address)
            .with_value(value)
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(21_000)
            .with_max_fee_per_gas(fees.0)
            .with_max_priority_fee_per_gas(fees.1)
            .build(&self.own.wallet)
            .await
            .map_err(|e| SubmitError::Chain(format!("signing the top-up: {e}")))?;
        match self.provider.send_raw_transaction(&envelope.encoded_2718()).await {
            Ok(_) => {
                own.hashes.push(*envelope.tx_hash());
                own.fees = Some(fees);
            }
            Err(e) => match e.as_error_resp() {
                // A top-up of ours is already pending at this nonce (or was just mined): wait.
                Some(p) if classify_rejection(p.code, &p.message) != Rejection::Other => {}
                Some(p) => {
                    return Err(SubmitError::Chain(format!(
                        "the node refused to fund sender {} from the signing account {from}: {} (fund either account)",
                        sender.address, p.message
                    )));
                }
                None => return Err(SubmitError::Chain(e.to_string())),
            },
        }
        let limit = Duration::from_secs(
            self.config.receipt_timeout_secs * u64::from(self.config.max_attempts),
        );
        let started = Instant::now();
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if balance(sender.address).await.is_ok_and(|b| b >= min) {
                *own = Outstanding::default();
                return Ok(());
            }
            if started.elapsed() >= limit {
                return Err(SubmitError::Chain(format!(
                    "funding sender {} from the signing account {from}: no sign of the top-up landing within {}s",
                    sender.address,
                    limit.as_secs()
                )));
            }
        }
    }

    /// The account nonce to send at: the mined count, so a transaction of ours still pending
    /// there gets replaced, never queued behind. Whatever `outstanding` held for an earlier
    /// nonce was mined (the nonce moved), or nothing was: it is forgotten.
    async fn next_nonce(
        &self,
        account: Address,
        outstanding: &mut Outstanding,
    ) -> Result<u64, SubmitError> {
        let nonce = self
            .provider
            .get_transaction_count(account)
            .latest()
            .await
            .map_err(|e| SubmitError::Chain(e.to_string()))?;
        if outstanding.nonce != Some(nonce) {
            *outstanding = Outstanding { nonce: Some(nonce), ..Default::default() };
        }
        Ok(nonce)
    }

    /// The fees of a first send at `outstanding`'s nonce: the node's estimate within the caps,
    /// outbidding what is still pending there.
    async fn first_fees(&self, outstanding: &Outstanding) -> Result<(u128, u128), SubmitError> {
        let estimate = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| SubmitError::Chain(e.to_string()))?;
        let caps = self.caps();
        let fees = clamp((estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas), caps);
        Ok(match outstanding.fees {
            Some(previous) => outbid(fees, previous, self.config.fee_bump_pct, caps),
            None => fees,
        })
    }

    /// `submit.max_fee_gwei` and `submit.max_priority_fee_gwei`, in wei.
    fn caps(&self) -> (u128, u128) {
        let gwei = 1_000_000_000u128;
        let max_fee = u128::from(self.config.max_fee_gwei) * gwei;
        (max_fee, (u128::from(self.config.max_priority_fee_gwei) * gwei).min(max_fee))
    }
}

fn from_receipt(
    receipt: &alloy::rpc::types::TransactionReceipt,
    report: &Attestation,
) -> Submitted {
    if receipt.status() {
        info!(
            target: "keeper::submit",
            tx = %receipt.transaction_hash,
            block = receipt.block_number.unwrap_or_default(),
            gas = receipt.gas_used,
            verdicts = report.verdicts.len(),
            "attestation accepted"
        );
        Submitted::Accepted {
            tx: receipt.transaction_hash,
            block: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        }
    } else {
        Submitted::Superseded(format!(
            "transaction {} reverted on chain (state changed after simulation)",
            receipt.transaction_hash
        ))
    }
}

/// Fees clamped to the caps (the tip never above the fee cap).
fn clamp((max_fee, priority): (u128, u128), (cap, tip_cap): (u128, u128)) -> (u128, u128) {
    let max_fee = max_fee.min(cap);
    (max_fee, priority.min(tip_cap).min(max_fee))
}

/// Fees that replace `previous`: at least `fees`, and `previous` + `pct`% (plus one wei), within
/// the caps.
fn outbid(
    fees: (u128, u128),
    previous: (u128, u128),
    pct: u64,
    caps: (u128, u128),
) -> (u128, u128) {
    let up = |v: u128| v + v * u128::from(pct) / 100 + 1;
    clamp((fees.0.max(up(previous.0)), fees.1.max(up(previous.1))), caps)
}

/// True when `next` pays enough more than `previous` for nodes to accept it as a replacement.
fn replaces(next: (u128, u128), previous: (u128, u128)) -> bool {
    let enough = |n: u128, p: u128| n >= p + p * MIN_REPLACEMENT_PCT / 100 && n > p;
    enough(next.0, previous.0) && enough(next.1, previous.1)
}

/// A revert met after the simulation passed: the epoch moved (another keeper's attestation
/// changed the set) is not an error; anything else is a rejection.
fn superseded_or_rejected(
    revert: RouteRegistryErrors,
    me: Address,
) -> Result<Submitted, SubmitError> {
    match revert {
        RouteRegistryErrors::WrongEpoch(e) => Ok(Submitted::Superseded(format!(
            "epoch moved from {} to {} (another keeper's attestation changed the set)",
            e.signed, e.current
        ))),
        RouteRegistryErrors::NotKeeper(_) => Err(SubmitError::NotAKeeper(me)),
        other => Err(SubmitError::Rejected(describe_revert(&other))),
    }
}

fn chain(err: alloy::contract::Error) -> SubmitError {
    let err = lifeline_bindings::Error::from(err);
    match err.revert() {
        Some(revert) => SubmitError::Rejected(describe_revert(revert)),
        None => SubmitError::Chain(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_of_every_client_are_recognised() {
        use Rejection::*;
        for (code, message, expected) in [
            (-32000, "already known", AlreadyKnown),
            (-32000, "known transaction: 0xabc", AlreadyKnown),
            (-32010, "AlreadyKnown", AlreadyKnown),
            (-32000, "replacement transaction underpriced", Underpriced),
            (-32000, "Replacement transaction underpriced", Underpriced),
            (-32010, "ReplacementNotAllowed", Underpriced),
            (-32000, "REPLACEMENT_UNDERPRICED", Underpriced),
            (-32003, "nonce too low", NonceUsed),
            (-32000, "nonce too low: next nonce 5, tx nonce 4", NonceUsed),
            (-32000, "Nonce has already been used", NonceUsed),
            (-32010, "OldNonce", NonceUsed),
            (-32000, "NONCE_TOO_LOW", NonceUsed),
            (-32000, "insufficient funds for gas * price + value", Other),
            (3, "execution reverted: nonce too low", Other),
        ] {
            assert_eq!(classify_rejection(code, message), expected, "{code} {message}");
        }
    }

    #[test]
    fn fees_are_capped_and_replacements_outbid_by_at_least_ten_percent() {
        let caps = (500, 50);
        assert_eq!(clamp((900, 80), caps), (500, 50));
        assert_eq!(clamp((100, 200), (500, 500)), (100, 100), "tip never above the fee cap");
        let next = outbid((100, 10), (100, 10), 25, caps);
        assert_eq!(next, (126, 13));
        assert!(replaces(next, (100, 10)));
        let at_cap = outbid((500, 50), (500, 50), 25, caps);
        assert_eq!(at_cap, (500, 50));
        assert!(!replaces(at_cap, (500, 50)), "at the caps nothing replaces");
    }

    #[test]
    fn each_service_gets_its_own_stable_sender() {
        let signer = PrivateKeySigner::random();
        let (a, b) = (keccak256("a/rpc"), keccak256("b/rpc"));
        let sender_a = service_sender(&signer, a).address();
        assert_eq!(sender_a, service_sender(&signer, a).address(), "stable across restarts");
        assert_ne!(sender_a, service_sender(&signer, b).address(), "one per service");
        assert_ne!(sender_a, signer.address(), "not the signing account");
        let other = PrivateKeySigner::random();
        assert_ne!(sender_a, service_sender(&other, a).address(), "one per keeper");
    }

    #[test]
    fn reverts_are_described_without_debug_output() {
        use lifeline_bindings::registry::RouteRegistry::{UnknownService, WrongEpoch};
        let text =
            describe_revert(&RouteRegistryErrors::WrongEpoch(WrongEpoch { signed: 3, current: 4 }));
        assert_eq!(text, "WrongEpoch (signed 3, current 4)");
        let text = describe_revert(&RouteRegistryErrors::UnknownService(UnknownService {
            serviceId: B256::ZERO,
        }));
        assert!(text.starts_with("UnknownService (0x0000"), "{text}");
        assert!(!text.contains('{'), "{text}");
    }
}
