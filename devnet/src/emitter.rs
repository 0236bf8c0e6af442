//! A log emitter: a tiny contract that emits one event per call, and a background task calling
//! it, so a devnet chain has a steady stream of logs (for `eth_getLogs`, `eth_subscribe logs`
//! and log-following clients to see).
//!
//! ```text
//!  LogEmitter::start --deploy (hand-assembled bytecode, no solc)--> Tick contract
//!     '--task, every `period`: tx(to: Tick, data: n) from the signer--> LOG1(Tick(uint256), n)
//!                                                                       (aborted on drop)
//! ```
//!
//! The contract's runtime emits `Tick(uint256)`: topic0 [`TICK_TOPIC`], data the first 32-byte
//! word of the calldata (the emitter sends its sequence number 1, 2, 3, ...).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, U256, b256, hex},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::{Error, Result};

/// topic0 of the emitted event: `keccak256("Tick(uint256)")`.
pub const TICK_TOPIC: B256 =
    b256!("b8c95b3cea6303a753d912e243354ef08add1085ed07d34191514ef1001ef9d8");

/// The Tick contract's creation code: 11 bytes of init code followed by 45 bytes of runtime.
///
/// Stack comments list the top of the stack last.
pub const TICK_BYTECODE: [u8; 56] = hex!(
    // --- init code (11 bytes): copy the runtime into memory and return it ---
    "60 2d" //  0: PUSH1 0x2d    [45]                 runtime length
    "80" //     2: DUP1          [45, 45]
    "60 0b" //  3: PUSH1 0x0b    [45, 45, 11]         runtime offset = init code length
    "60 00" //  5: PUSH1 0x00    [45, 45, 11, 0]      memory destination
    "39" //     7: CODECOPY      [45]                 memory[0..45] = code[11..56]
    "60 00" //  8: PUSH1 0x00    [45, 0]              memory offset
    "f3" //    10: RETURN        []                   deployed code = memory[0..45]
    // --- runtime (45 bytes): LOG1(memory[0..32] = calldata word 0, topic0 = TICK_TOPIC) ---
    "60 00" //  0: PUSH1 0x00    [0]
    "35" //     2: CALLDATALOAD  [word]               calldata[0..32], zero-padded
    "60 00" //  3: PUSH1 0x00    [word, 0]
    "52" //     5: MSTORE        []                   memory[0..32] = word
    "7f b8c95b3cea6303a753d912e243354ef08add1085ed07d34191514ef1001ef9d8"
    //          6: PUSH32 TICK_TOPIC  [topic]
    "60 20" // 39: PUSH1 0x20    [topic, 32]          data length
    "60 00" // 41: PUSH1 0x00    [topic, 32, 0]       data offset
    "a1" //    43: LOG1          []                   log1(offset 0, length 32, topic0)
    "00" //    44: STOP
);

/// Longest the deployment may take to be mined.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(30);

/// A deployed Tick contract and the task calling it. Dropping it stops the task.
#[derive(Debug)]
pub struct LogEmitter {
    address: Address,
    sent: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl LogEmitter {
    /// Deploys the Tick contract from `signer` (a funded account) over the HTTP JSON-RPC URL
    /// `rpc_url`, waits for the deployment to be mined, then starts a task that sends one call
    /// every `period` (the calldata is the call's sequence number, 1, 2, 3, ...) until the
    /// emitter is dropped. Give it an account nothing else sends from (its nonces are its own);
    /// a call the node rejects is skipped and retried at the next period.
    pub async fn start(rpc_url: &str, signer: PrivateKeySigner, period: Duration) -> Result<Self> {
        let chain = |e: &dyn std::fmt::Display| Error::Chain(format!("log emitter: {e}"));
        let url = rpc_url.parse().map_err(|e| chain(&e))?;
        let from = signer.address();
        let provider =
            ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url);

        let deploy = TransactionRequest::default().with_deploy_code(TICK_BYTECODE.to_vec());
        let pending = provider.send_transaction(deploy).await.map_err(|e| chain(&e))?;
        let receipt = tokio::time::timeout(DEPLOY_TIMEOUT, pending.get_receipt())
            .await
            .map_err(|_| chain(&"deployment not mined in time"))?
            .map_err(|e| chain(&e))?;
        let address = receipt
            .contract_address
            .filter(|_| receipt.status())
            .ok_or_else(|| chain(&"deployment failed"))?;
        info!(target: "devnet::emitter", %address, %from, ?period, "log emitter deployed");

        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let n = counter.load(Ordering::Relaxed) + 1;
                let call = TransactionRequest::default()
                    .with_to(address)
                    .with_input(U256::from(n).to_be_bytes::<32>().to_vec());
                match provider.send_transaction(call).await {
                    Ok(pending) => {
                        counter.store(n, Ordering::Relaxed);
                        debug!(target: "devnet::emitter", n, tx = %pending.tx_hash(), "tick sent");
                    }
                    Err(error) => debug!(target: "devnet::emitter", %error, "tick not sent"),
                }
            }
        });
        Ok(Self { address, sent, task })
    }

    /// The Tick contract's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// topic0 of its logs ([`TICK_TOPIC`]).
    pub fn topic(&self) -> B256 {
        TICK_TOPIC
    }

    /// Calls accepted by the node so far (each emits one log once mined).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for LogEmitter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use alloy::{node_bindings::Anvil, primitives::keccak256, rpc::types::Filter};

    use super::*;
    use crate::Toolchain;

    #[test]
    fn bytecode_embeds_the_documented_topic() {
        assert_eq!(TICK_TOPIC, keccak256("Tick(uint256)"));
        // PUSH32 at runtime offset 6, after the 11 bytes of init code.
        assert_eq!(TICK_BYTECODE[11 + 6], 0x7f);
        assert_eq!(&TICK_BYTECODE[18..50], TICK_TOPIC.as_slice());
        // The init code returns exactly the runtime that follows it.
        assert_eq!(usize::from(TICK_BYTECODE[1]), TICK_BYTECODE.len() - 11);
        assert_eq!(TICK_BYTECODE[4], 11);
    }

    #[tokio::test]
    async fn emits_logs_found_by_get_logs() {
        let toolchain = Toolchain::locate().expect("toolchain: run `npm ci` first");
        let anvil = Anvil::at(toolchain.anvil())
            .arg("--host")
            .arg("127.0.0.1")
            .try_spawn()
            .expect("anvil starts");
        let rpc_url = format!("http://127.0.0.1:{}", anvil.port());
        let signer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let emitter = LogEmitter::start(&rpc_url, signer, Duration::from_millis(200))
            .await
            .expect("emitter deployed");
        assert_eq!(emitter.topic(), TICK_TOPIC);

        let provider = ProviderBuilder::new().connect_http(rpc_url.parse().expect("URL"));
        let filter =
            Filter::new().address(emitter.address()).event_signature(emitter.topic()).from_block(0);
        let logs = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let logs = provider.get_logs(&filter).await.expect("eth_getLogs");
                if logs.len() >= 2 {
                    return logs;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("two logs within 10 s");
        assert_eq!(logs[0].topics(), [TICK_TOPIC]);
        assert_eq!(logs[0].data().data.as_ref(), U256::from(1).to_be_bytes::<32>());
        assert_eq!(logs[1].data().data.as_ref(), U256::from(2).to_be_bytes::<32>());
        assert!(emitter.sent() >= 2);

        drop(emitter);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = provider.get_logs(&filter).await.expect("eth_getLogs").len();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = provider.get_logs(&filter).await.expect("eth_getLogs").len();
        assert_eq!(before, after, "no calls after the emitter is dropped");
    }
}
