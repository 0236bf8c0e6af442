//! The block probe: a contract that answers any call with `abi.encode(block.number,
//! blockhash(block.number - 1))`, so an `eth_call` answer says which block, of which chain,
//! it was executed at (tests and the fault-mix benchmark judge `eth_call` answers by it).

use crate::{Error, Result};
use alloy::{
    network::TransactionBuilder,
    primitives::{Address, Bytes},
    providers::Provider,
    rpc::types::TransactionRequest,
};

/// Init code of the probe contract, assembled by hand. Runtime (17 bytes) returns
/// `abi.encode(block.number, blockhash(block.number - 1))`:
///
/// ```text
///  43        NUMBER
///  6000      PUSH1 0x00
///  52        MSTORE            mem[0x00..0x20] = block.number
///  6001      PUSH1 0x01
///  43        NUMBER
///  03        SUB               block.number - 1   (SUB: top - second)
///  40        BLOCKHASH
///  6020      PUSH1 0x20
///  52        MSTORE            mem[0x20..0x40] = blockhash(block.number - 1)
///  6040      PUSH1 0x40        size
///  6000      PUSH1 0x00        offset
///  f3        RETURN            mem[0x00..0x40]
/// ```
///
/// Init (11 bytes) copies the runtime, which follows it at offset 0x0b, and returns it:
///
/// ```text
///  6011      PUSH1 0x11        runtime size
///  80        DUP1
///  600b      PUSH1 0x0b        runtime offset in this code
///  6000      PUSH1 0x00        memory destination
///  39        CODECOPY          mem[0..0x11] = code[0x0b..0x1c]
///  6000      PUSH1 0x00
///  f3        RETURN            mem[0..0x11] (size left on the stack by DUP1)
/// ```
pub const INIT: &str = "601180600b6000396000f3\
                          43600052600143034060205260406000f3";

/// Deploys the probe from `provider`'s wallet; returns its address once its code is there.
pub async fn deploy(provider: &impl Provider) -> Result<Address> {
    let chain = |e: &dyn std::fmt::Display| Error::Chain(format!("block probe: {e}"));
    let init = Bytes::from(alloy::primitives::hex::decode(INIT).map_err(|e| chain(&e))?);
    let receipt = provider
        .send_transaction(TransactionRequest::default().with_deploy_code(init))
        .await
        .map_err(|e| chain(&e))?
        .get_receipt()
        .await
        .map_err(|e| chain(&e))?;
    let contract = receipt.contract_address.ok_or_else(|| chain(&"no contract address"))?;
    let code = provider.get_code_at(contract).await.map_err(|e| chain(&e))?;
    if code.len() != 17 {
        return Err(chain(&format!("runtime is {} bytes, not 17", code.len())));
    }
    Ok(contract)
}

/// Reads a probe answer: (block number, hash of the block before it); `None` when the answer
/// is not the probe's (another chain has no code at that address, say).
pub fn read(answer: &[u8]) -> Option<(u64, alloy::primitives::B256)> {
    if answer.len() != 64 {
        return None;
    }
    let number = alloy::primitives::U256::from_be_slice(&answer[..32]);
    Some((u64::try_from(number).ok()?, alloy::primitives::B256::from_slice(&answer[32..])))
}
