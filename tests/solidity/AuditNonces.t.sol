// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm, Vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {EndpointStatus} from "../../contracts/types/Service.sol";

/// @notice Issue 13 findings F06 (vote expiry), F07 (liveness), F08 and F13 (nonces), F15 (epoch
/// binding), named `test_audit_FNN_<what>`.
/// Attestations are built with explicit nonces, and new views and return values are reached by
/// signature, so that this file also compiles against the registry before the fixes, where each
/// of these tests fails.
contract AuditNoncesTest is RegistryTest {
    bytes32 internal constant OTHER = keccak256("eth/rpc-2");
    bytes32 internal constant SKIPPED = keccak256("AttestationSkipped(bytes32,address,uint64)");

    function setUp() public override {
        super.setUp();
        _createService(OTHER, 4, defaultConfig());
    }

    /* F08: a nonce window per (keeper, service) */

    /// A keeper attesting two services keeps a nonce sequence for each: neither voids the other.
    function test_audit_F08_noncesArePerService() public {
        vm.assertTrue(_try(0, SERVICE, 1), "service A, nonce 1");
        vm.assertTrue(_try(0, OTHER, 1), "service B, nonce 1: not voided by A's");
        vm.assertTrue(_try(0, SERVICE, 2), "service A, nonce 2");
    }

    /// Attestations included out of order all count; each nonce counts once.
    function test_audit_F08_outOfOrderInclusionAccepted() public {
        vm.assertTrue(_try(0, SERVICE, 3), "nonce 3 first");
        vm.assertTrue(_try(0, SERVICE, 1), "then 1");
        vm.assertTrue(_try(0, SERVICE, 2), "then 2");
        vm.assertFalse(_try(0, SERVICE, 2), "2 again: replay");
        vm.assertFalse(_try(0, SERVICE, 3), "3 again: replay");
        vm.assertTrue(_try(0, SERVICE, 70), "a jump ahead");
        vm.assertFalse(_try(0, SERVICE, 5), "more than 64 below the highest: used");
        vm.assertTrue(_try(0, SERVICE, 6), "64 below the highest: still open");
    }

    /// Against a model: a nonce is accepted iff it is unused and at most 64 below the highest.
    function testFuzz_audit_F08_eachNonceAcceptedOnce(uint256 seed) public {
        bool[200] memory used;
        uint256 highest;
        for (uint256 step; step < 40; ++step) {
            uint256 nonce = 1 + uint256(keccak256(abi.encode(seed, step))) % 150;
            bool expected = !used[nonce] && nonce + 64 >= highest;
            vm.assertEq(_try(1, SERVICE, uint64(nonce)), expected, "accepted iff unused and within the window");
            if (expected) {
                used[nonce] = true;
                if (nonce > highest) highest = nonce;
            }
        }
    }

    /// A keeper whose nonce reached `type(uint64).max` is not locked out for good: a keeper-set
    /// rotation starts its window afresh (its old signatures fail on the config version).
    function test_audit_F08_nonceNearMaxDoesNotBrickKeeper() public {
        uint64 max = type(uint64).max;
        vm.assertTrue(_try(0, SERVICE, max), "nonce max");
        vm.assertTrue(_try(0, SERVICE, max - 1), "below it, within the window");
        vm.assertFalse(_try(0, SERVICE, max), "max again: replay");
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, _vantages());
        vm.assertTrue(_try(0, SERVICE, 1), "after rotation: nonce 1 again");
        vm.assertFalse(_try(0, SERVICE, 1), "and once only");
    }

    /* F13: a batch skips members already used */

    /// Front-running one member of a relayed batch (submitting it alone first) no longer sinks the
    /// batch: that member is skipped and reported, the others apply (here: a failover).
    function test_audit_F13_batchSkipsAndReportsUsedMember() public {
        _bootstrap(SERVICE); // keepers 0 and 1 used nonces 1, 2
        Attestation[] memory as_ = new Attestation[](3);
        bytes[] memory sigs = new bytes[](3);
        for (uint256 i; i < 3; ++i) {
            as_[i] = _signedAttestation(i, SERVICE, 10, _one(0, false));
            sigs[i] = _sign(keeperKeys[i], as_[i]);
        }
        registry.attest(as_[1], sigs[1]); // the front-runner
        vm.recordLogs();
        (bool ok, bytes memory ret) =
            address(registry).call(abi.encodeWithSelector(registry.attestBatch.selector, as_, sigs));
        vm.assertTrue(ok, "batch applied");
        vm.assertEq(abi.decode(ret, (uint256)), 2, "member 1 reported skipped");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool reported;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == SKIPPED) {
                reported = true;
                vm.assertEq(logs[i].topics[2], bytes32(uint256(uint160(keeperAddrs[1]))), "names the keeper");
            }
        }
        vm.assertTrue(reported, "AttestationSkipped emitted");
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "the other members failed #0 over");
    }

    /* F07: stale = fewer than quorum keepers live */

    /// One keeper's heartbeat no longer keeps a service whose other keepers went silent fresh.
    function test_audit_F07_oneLiveKeeperDoesNotKeepServiceFresh() public {
        _bootstrap(SERVICE);
        vm.warp(vm.getBlockTimestamp() + 301);
        for (uint256 beat; beat < 3; ++beat) {
            vm.assertTrue(_try(2, SERVICE, uint64(1 + beat)), "heartbeat");
            vm.assertTrue(registry.authorisedRoutes(SERVICE).stale, "one live keeper of quorum 2: stale");
            vm.warp(vm.getBlockTimestamp() + 100);
        }
        vm.assertTrue(_try(0, SERVICE, 10), "a second keeper");
        vm.assertFalse(registry.authorisedRoutes(SERVICE).stale, "two live keepers: fresh");
    }

    /// `keeperLiveness` reports each current keeper's last attestation time for the service.
    function test_audit_F07_keeperLivenessView() public {
        _bootstrap(SERVICE);
        uint256 t0 = vm.getBlockTimestamp();
        vm.warp(t0 + 200);
        vm.assertTrue(_try(2, SERVICE, 1), "keeper 2");
        (bool ok, bytes memory ret) =
            address(registry).staticcall(abi.encodeWithSignature("keeperLiveness(bytes32)", SERVICE));
        vm.assertTrue(ok, "view exists");
        (address[] memory signers, uint64[] memory last, uint256 live) = abi.decode(ret, (address[], uint64[], uint256));
        vm.assertEq(signers.length, 3, "every current keeper");
        vm.assertEq(signers[2], keeperAddrs[2], "in set order");
        vm.assertEq(last[0], t0, "keeper 0");
        vm.assertEq(last[1], t0, "keeper 1");
        vm.assertEq(last[2], t0 + 200, "keeper 2");
        vm.assertEq(live, 3, "three within the TTL");
        vm.warp(t0 + 301);
        (,, live) = abi.decode(_liveness(), (address[], uint64[], uint256));
        vm.assertEq(live, 1, "keepers 0 and 1 past the TTL");
    }

    /* F06: votes and readiness expire */

    /// A vote whose keeper went silent for longer than the TTL no longer completes a quorum; it
    /// counts again once its keeper attests.
    function test_audit_F06_voteOfSilentKeeperDoesNotCompleteQuorum() public {
        _bootstrap(SERVICE); // keepers 0 and 1 used nonces 1, 2
        vm.assertTrue(_tryVerdicts(0, SERVICE, 3, _one(0, false)), "keeper 0 flags #0");
        vm.warp(vm.getBlockTimestamp() + 301);
        vm.assertTrue(_tryVerdicts(1, SERVICE, 3, _one(0, false)), "keeper 1 flags #0 a TTL later");
        vm.assertTrue(_status(0) == EndpointStatus.Active, "keeper 0's vote expired with its liveness");
        vm.assertTrue(_tryVerdicts(0, SERVICE, 4, _none()), "keeper 0 is back (heartbeat)");
        vm.assertTrue(_tryVerdicts(1, SERVICE, 4, _one(0, false)), "keeper 1 again");
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "both live: quorum, failover");
    }

    /// Readiness earned under a replaced keeper set no longer gets a standby promoted.
    function test_audit_F06_readinessFromReplacedKeeperSetCleared() public {
        _bootstrap(SERVICE); // active {0, 1}, ready {2, 3} by keepers 0 and 1 under version 1
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, _vantages());
        vm.recordLogs();
        vm.assertTrue(_tryVerdicts(2, SERVICE, 1, _one(0, false)), "keeper 2 flags #0 under version 2");
        vm.assertEq(registry.service(SERVICE).readyMask, 0, "readiness of version 1 cleared");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 cleared;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == keccak256("EndpointReadinessChanged(bytes32,uint16,bool)")) ++cleared;
        }
        vm.assertEq(cleared, 2, "one readiness event per cleared standby");
        vm.assertTrue(_tryVerdicts(0, SERVICE, 1, _one(0, false)), "keeper 0 flags #0");
        vm.assertTrue(_status(2) == EndpointStatus.Standby, "#2 not promoted on old readiness");
        vm.assertTrue(_status(3) == EndpointStatus.Standby, "#3 not promoted on old readiness");
    }

    /* F15: verdicts of the previous epoch on endpoints the change did not touch */

    /// A vote signed before an unrelated failover still counts.
    function test_audit_F15_previousEpochVerdictOnUntouchedEndpointCounts() public {
        _bootstrap(SERVICE); // epoch 1: active {0, 1}, ready {2, 3}; keepers 0 and 1 used nonces 1, 2
        Attestation memory late = _signedAttestation(2, SERVICE, 1, _one(1, false));
        bytes memory sig = _sign(keeperKeys[2], late);
        _tryVerdicts(0, SERVICE, 3, _one(0, false));
        _tryVerdicts(1, SERVICE, 3, _one(0, false)); // #0 fails over to #2: epoch 2
        vm.assertEq(registry.service(SERVICE).epoch, 2, "epoch moved");
        (bool ok,) = address(registry).call(abi.encodeCall(registry.attest, (late, sig)));
        vm.assertTrue(ok, "epoch-1 attestation accepted");
        vm.assertEq(registry.endpoint(SERVICE, 1).downVotes, 1 << 2, "its vote on untouched #1 counts");
    }

    /// Verdicts of the previous epoch on an endpoint the change touched are ignored (the rest of
    /// the attestation applies); two epochs back is refused.
    function test_audit_F15_touchedEndpointsAndOlderEpochsStillBound() public {
        _bootstrap(SERVICE);
        Verdict[] memory both = new Verdict[](2);
        both[0] = Verdict({endpoint: 2, revision: 0, healthy: false, latencyMs: 25, headLag: 40});
        both[1] = Verdict({endpoint: 1, revision: 0, healthy: false, latencyMs: 25, headLag: 40});
        Attestation memory late = _signedAttestation(2, SERVICE, 1, both);
        bytes memory lateSig = _sign(keeperKeys[2], late);
        Attestation memory older = _signedAttestation(2, SERVICE, 2, _one(1, false));
        bytes memory olderSig = _sign(keeperKeys[2], older);
        _tryVerdicts(0, SERVICE, 3, _one(0, false));
        _tryVerdicts(1, SERVICE, 3, _one(0, false)); // epoch 2: #0 out, #2 in
        (bool ok,) = address(registry).call(abi.encodeCall(registry.attest, (late, lateSig)));
        vm.assertTrue(ok, "accepted");
        vm.assertEq(registry.endpoint(SERVICE, 2).downVotes, 0, "verdict on promoted #2 ignored");
        vm.assertEq(registry.endpoint(SERVICE, 1).downVotes, 1 << 2, "verdict on untouched #1 applied");
        _tryVerdicts(0, SERVICE, 4, _one(1, false)); // #1 fails over to #3: epoch 3
        vm.assertEq(registry.service(SERVICE).epoch, 3, "epoch 3");
        (ok,) = address(registry).call(abi.encodeCall(registry.attest, (older, olderSig)));
        vm.assertFalse(ok, "two epochs back: refused");
    }

    /// A burst: two active routes fail at once and every keeper signs one attestation per route
    /// at the same epoch; included in any order, both fail over (the first failover no longer
    /// voids the in-flight votes about the second).
    function testFuzz_audit_F15_burstOfFailuresConverges(uint256 seed) public {
        _bootstrap(SERVICE); // active {0, 1}, ready {2, 3}
        Attestation[] memory burst = new Attestation[](6);
        bytes[] memory sigs = new bytes[](6);
        for (uint256 i; i < 6; ++i) {
            uint256 keeper = i / 2;
            // Keepers 0 and 1 used nonces 1, 2 in the bootstrap.
            uint64 nonce = uint64(keeper < 2 ? 3 + i % 2 : 1 + i % 2);
            burst[i] = _signedAttestation(keeper, SERVICE, nonce, _one(uint16(i % 2), false));
            sigs[i] = _sign(keeperKeys[keeper], burst[i]);
        }
        for (uint256 i = 6; i > 1; --i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % i;
            (burst[i - 1], burst[j]) = (burst[j], burst[i - 1]);
            (sigs[i - 1], sigs[j]) = (sigs[j], sigs[i - 1]);
        }
        uint256 landed;
        for (uint256 i; i < 6; ++i) {
            (bool ok,) = address(registry).call(abi.encodeCall(registry.attest, (burst[i], sigs[i])));
            if (ok) ++landed;
        }
        vm.assertGe(landed, 4, "two votes per route landed");
        vm.assertFalse(_isActive(0), "#0 failed over");
        vm.assertFalse(_isActive(1), "#1 failed over");
        vm.assertEq(registry.service(SERVICE).activeCount, 2, "replaced by the two standbys");
    }

    /* HELPERS */

    function _tryVerdicts(uint256 keeper, bytes32 id, uint64 nonce, Verdict[] memory verdicts)
        internal
        returns (bool ok)
    {
        Attestation memory a = _signedAttestation(keeper, id, nonce, verdicts);
        (ok,) = address(registry).call(abi.encodeCall(registry.attest, (a, _sign(keeperKeys[keeper], a))));
    }

    function _liveness() internal view returns (bytes memory ret) {
        bool ok;
        (ok, ret) = address(registry).staticcall(abi.encodeWithSignature("keeperLiveness(bytes32)", SERVICE));
        vm.assertTrue(ok, "view exists");
    }

    function _signedAttestation(uint256, bytes32 id, uint64 nonce, Verdict[] memory verdicts)
        internal
        view
        returns (Attestation memory a)
    {
        (uint32 version,,) = registry.keepers();
        a = Attestation({
            service: id,
            epoch: registry.service(id).epoch,
            configVersion: version,
            nonce: nonce,
            deadline: uint64(vm.getBlockTimestamp() + 60),
            verdicts: verdicts
        });
    }

    /// @dev Submits a heartbeat with an explicit nonce; true if accepted.
    function _try(uint256 keeper, bytes32 id, uint64 nonce) internal returns (bool ok) {
        Attestation memory a = _signedAttestation(keeper, id, nonce, _none());
        (ok,) = address(registry).call(abi.encodeCall(registry.attest, (a, _sign(keeperKeys[keeper], a))));
    }

    function _vantages() internal view returns (bytes32[] memory v) {
        v = new bytes32[](keeperAddrs.length);
        for (uint256 i; i < v.length; ++i) {
            v[i] = i < 2 ? bytes32("eu") : bytes32("us");
        }
    }
}
