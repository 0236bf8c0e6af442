//! State verification: an endpoint's `eth_getProof` answer must verify against the state root
//! the majority of endpoints report at the corroborated block. A node that serves a forged or
//! stale state fails this even when its head looks fine.

use alloy::{
    primitives::{Address, B256, keccak256},
    rlp,
    trie::{Nibbles, TrieAccount, proof::verify_proof},
};

use crate::probe::AccountProof;

/// Checks `proof` of `account` against `state_root`; the error says why it does not verify.
pub fn verify_account(
    state_root: B256,
    account: Address,
    proof: &AccountProof,
) -> Result<(), String> {
    let value = TrieAccount::new(proof.nonce, proof.balance, proof.storage_hash, proof.code_hash);
    let key = Nibbles::unpack(keccak256(account));
    verify_proof(state_root, key, Some(rlp::encode(value)), &proof.account_proof)
        .map_err(|e| e.to_string())
}
