//! The EIP-712 attestation a keeper signs. The report type itself is generated from the contract
//! (`RouteRegistry::Attestation`), so the Rust and Solidity definitions cannot disagree; this
//! module adds the domain and the signing steps. `tests/it/digest.rs` proves that
//! [`signing_hash`] equals the registry's `attestationDigest` for random inputs.

use alloy::{
    primitives::{Address, B256, Signature},
    signers::{Signer, SignerSync},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use crate::{Error, Result};

/// A keeper's signed health report for one service (EIP-712 primary type).
pub type Attestation = crate::registry::RouteRegistry::Attestation;
/// One keeper's judgement of one endpoint, inside an [`Attestation`].
pub type Verdict = crate::registry::RouteRegistry::Verdict;

/// EIP-712 domain name of every registry.
pub const DOMAIN_NAME: &str = "Lifeline RouteRegistry";
/// EIP-712 domain version of this registry revision.
pub const DOMAIN_VERSION: &str = "1";

/// The EIP-712 domain of the registry at `registry` on chain `chain_id`.
pub fn domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// The digest a keeper signs: `keccak256("\x19\x01" || domainSeparator || hashStruct(attestation))`.
pub fn signing_hash(attestation: &Attestation, chain_id: u64, registry: Address) -> B256 {
    attestation.eip712_signing_hash(&domain(chain_id, registry))
}

/// Signs `attestation` for the registry at `registry` on `chain_id` and returns the 65-byte
/// `r || s || v` signature the contract expects (low-s, as every alloy signer produces).
pub fn sign<S: SignerSync>(
    signer: &S,
    attestation: &Attestation,
    chain_id: u64,
    registry: Address,
) -> Result<Vec<u8>> {
    let signature = signer
        .sign_hash_sync(&signing_hash(attestation, chain_id, registry))
        .map_err(|e| Error::Signing(e.to_string()))?;
    Ok(encode_signature(&signature))
}

/// As [`sign`], for signers that are only asynchronous (remote or hardware signers).
pub async fn sign_async<S: Signer + Sync>(
    signer: &S,
    attestation: &Attestation,
    chain_id: u64,
    registry: Address,
) -> Result<Vec<u8>> {
    let signature = signer
        .sign_hash(&signing_hash(attestation, chain_id, registry))
        .await
        .map_err(|e| Error::Signing(e.to_string()))?;
    Ok(encode_signature(&signature))
}

/// The keeper that signed `attestation` for the registry at `registry` on `chain_id`: the
/// address `signature` recovers to (`None` for a malformed signature). Attestations are
/// relayable, so this, not the transaction's sender, names the keeper.
pub fn signer_of(
    attestation: &Attestation,
    signature: &[u8],
    chain_id: u64,
    registry: Address,
) -> Option<Address> {
    Signature::try_from(signature)
        .ok()?
        .recover_address_from_prehash(&signing_hash(attestation, chain_id, registry))
        .ok()
}

fn encode_signature(signature: &Signature) -> Vec<u8> {
    signature.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::{primitives::keccak256, signers::local::PrivateKeySigner};

    #[test]
    fn type_string_matches_the_contract() {
        let expected = "Attestation(bytes32 service,uint32 epoch,uint32 configVersion,uint64 nonce,\
uint64 deadline,Verdict[] verdicts)Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,\
uint32 headLag)";
        assert_eq!(Attestation::eip712_encode_type(), expected);
        assert_eq!(
            Attestation::eip712_type_hash(&Attestation::default()),
            keccak256(expected.as_bytes())
        );
    }

    #[test]
    fn signature_is_65_bytes_and_recovers_the_signer() {
        let signer = PrivateKeySigner::random();
        let attestation = Attestation { nonce: 7, deadline: 100, ..Default::default() };
        let registry = Address::repeat_byte(0x11);
        let bytes = sign(&signer, &attestation, 31337, registry).expect("signs");
        assert_eq!(bytes.len(), 65);
        assert_eq!(signer_of(&attestation, &bytes, 31337, registry), Some(signer.address()));
        assert_ne!(
            signer_of(&attestation, &bytes, 1, registry),
            Some(signer.address()),
            "another chain's domain recovers someone else"
        );
        assert_eq!(signer_of(&attestation, &bytes[..64], 31337, registry), None, "malformed");
    }
}
