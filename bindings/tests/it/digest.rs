//! The Rust EIP-712 digest equals the contract's `attestationDigest`, for random inputs.

use alloy::primitives::{B256, keccak256};
use lifeline_bindings::{Attestation, Error, RouteRegistry, Verdict, attestation};

use crate::support::Chain;

/// Deterministic pseudo-random attestations: the same 64 cases every run, covering empty and
/// multi-verdict reports and extreme field values.
fn random_attestation(seed: u64) -> Attestation {
    let word = |i: u64| keccak256([seed.to_be_bytes(), i.to_be_bytes()].concat());
    let n = (word(0)[0] % 6) as usize;
    let verdicts = (0..n)
        .map(|i| {
            let w = word(10 + i as u64);
            Verdict {
                endpoint: u16::from_be_bytes([w[0], w[1]]),
                revision: u32::from_be_bytes([w[11], w[12], w[13], w[14]]),
                healthy: w[2] & 1 == 1,
                latencyMs: u32::from_be_bytes([w[3], w[4], w[5], w[6]]),
                headLag: u32::from_be_bytes([w[7], w[8], w[9], w[10]]),
            }
        })
        .collect();
    let w = word(1);
    Attestation {
        service: word(2),
        epoch: u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
        configVersion: u32::from_be_bytes([w[4], w[5], w[6], w[7]]),
        nonce: u64::from_be_bytes(w[8..16].try_into().expect("8 bytes")),
        deadline: if seed == 0 {
            u64::MAX
        } else {
            u64::from_be_bytes(w[16..24].try_into().expect("8 bytes"))
        },
        verdicts,
    }
}

#[tokio::test]
async fn rust_digest_equals_contract_digest_for_random_inputs() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let registry = RouteRegistry::new(chain.registry, &chain.provider);
    for seed in 0..64 {
        let attestation = random_attestation(seed);
        let on_chain: B256 = registry.attestationDigest(attestation.clone()).call().await?;
        let rust = attestation::signing_hash(&attestation, chain.chain_id(), chain.registry);
        assert_eq!(rust, on_chain, "digest mismatch for seed {seed}: {attestation:?}");
    }
    Ok(())
}

#[tokio::test]
async fn reverts_decode_into_custom_errors() -> eyre::Result<()> {
    let chain = Chain::start().await?;
    let registry = RouteRegistry::new(chain.registry, &chain.provider);
    let unknown = B256::repeat_byte(0x42);
    let err: Error = registry.authorisedRoutes(unknown).call().await.expect_err("reverts").into();
    assert!(
        matches!(err.revert(), Some(RouteRegistry::RouteRegistryErrors::UnknownService(e)) if e.serviceId == unknown),
        "{err}"
    );

    let attestation = Attestation { deadline: u64::MAX, ..Default::default() };
    let Err(err) = registry.attest(attestation, vec![0u8; 3].into()).call().await else {
        panic!("attest with a garbage signature must revert");
    };
    let err = Error::from(err);
    let decoded = err.revert().expect("a custom error");
    assert!(
        matches!(decoded, RouteRegistry::RouteRegistryErrors::UnknownService(_)),
        "checks run in order: {decoded:?}"
    );
    assert!(!err.is_retryable(), "a revert is an answer");
    Ok(())
}
