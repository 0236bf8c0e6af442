// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice One keeper's judgement of one endpoint, as carried inside an `Attestation`.
/// @dev Part of the EIP-712 typed data; field order and types are the signed encoding.
struct Verdict {
    /// @dev Index of the endpoint within its service.
    uint16 endpoint;
    /// @dev The endpoint's revision the keeper judged (`EndpointView.revision`): a verdict about
    /// another revision (an earlier URL, or an earlier occupant of a reused slot) is ignored.
    uint32 revision;
    /// @dev True when the keeper judged the endpoint fit to serve.
    bool healthy;
    /// @dev Median probe latency over the keeper's window, in milliseconds.
    uint32 latencyMs;
    /// @dev Blocks behind the corroborated head (0 for non-EVM endpoints).
    uint32 headLag;
}

/// @notice A keeper's signed health report for one service.
/// @dev EIP-712 primary type. The domain (name "Lifeline RouteRegistry", version "1", chain id,
/// registry address) binds it to one registry on one chain.
struct Attestation {
    /// @dev The service the verdicts are about.
    bytes32 service;
    /// @dev The service's topology epoch the keeper observed: the current one, or the previous one
    /// (then verdicts on endpoints the last change touched are ignored).
    uint32 epoch;
    /// @dev The keeper-set version the keeper signed under; rotating the set voids older ones.
    uint32 configVersion;
    /// @dev Used once per (keeper, service) and keeper-set version; may land out of order within
    /// a window of 64 below the highest accepted (replay protection).
    uint64 nonce;
    /// @dev Unix time after which the attestation is void.
    uint64 deadline;
    /// @dev Sparse: only the endpoints the keeper has an opinion to record about.
    Verdict[] verdicts;
}

/// @title AttestationHash
/// @notice EIP-712 struct hashing for `Attestation`; the Rust side (`bindings`) mirrors it and a
/// test proves both produce the same digest.
library AttestationHash {
    /// @dev keccak256("Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,uint32 headLag)")
    bytes32 internal constant VERDICT_TYPEHASH =
        keccak256("Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,uint32 headLag)");

    /// @dev The primary type followed by the referenced type, as EIP-712 requires.
    bytes32 internal constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(bytes32 service,uint32 epoch,uint32 configVersion,uint64 nonce,uint64 deadline,Verdict[] verdicts)"
        "Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,uint32 headLag)"
    );

    /// @notice The EIP-712 `hashStruct` of an attestation.
    /// @dev Assembly because this runs once per attestation on the keeper hot path: it hashes
    /// each verdict's five words in place instead of allocating and ABI-encoding per element
    /// (the `vote` and `batch-3-failover` snapshots measure the difference). Words are copied
    /// from calldata unchanged: dirty (non-canonical) values hash differently from what the
    /// keeper signed, and Solidity's checked reads of `verdicts[i]` revert on them anyway.
    function hash(Attestation calldata a) internal pure returns (bytes32 result) {
        Verdict[] calldata verdicts = a.verdicts;
        bytes32 verdictTypehash = VERDICT_TYPEHASH;
        bytes32 attestationTypehash = ATTESTATION_TYPEHASH;
        assembly ("memory-safe") {
            let n := verdicts.length
            let scratch := mload(0x40)
            // Element hashes go after a 6-word scratch area used to hash one verdict.
            let hashes := add(scratch, 0xc0)
            mstore(scratch, verdictTypehash)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                calldatacopy(add(scratch, 0x20), add(verdicts.offset, mul(i, 0xa0)), 0xa0)
                mstore(add(hashes, shl(5, i)), keccak256(scratch, 0xc0))
            }
            let verdictsHash := keccak256(hashes, shl(5, n))
            // typehash, five static fields, keccak(verdicts): 7 words.
            mstore(scratch, attestationTypehash)
            calldatacopy(add(scratch, 0x20), a, 0xa0)
            mstore(add(scratch, 0xc0), verdictsHash)
            result := keccak256(scratch, 0xe0)
        }
    }
}
