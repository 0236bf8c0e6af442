// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {RouteRegistry} from "../../contracts/RouteRegistry.sol";
import {IRouteRegistry} from "../../contracts/interfaces/IRouteRegistry.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {EndpointStatus} from "../../contracts/types/Service.sol";

/// @notice Every way to get a bad attestation (or a bad health change) through, each shown
/// rejected with its custom error.
contract SecurityTest is RegistryTest {
    /// @dev secp256k1 group order: s' = N - s is the malleable twin of a signature.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function setUp() public override {
        super.setUp();
        _bootstrap(SERVICE);
    }

    function test_security_rejectsSignatureByNonKeeper() public {
        uint256 outsider = 0xBAD;
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        bytes memory sig = _sign(outsider, a);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.NotKeeper.selector, vm.addr(outsider)));
        registry.attest(a, sig);
    }

    function test_security_rejectsSameKeeperTwiceInBatch() public {
        Attestation[] memory as_ = new Attestation[](2);
        bytes[] memory sigs = new bytes[](2);
        for (uint256 i; i < 2; ++i) {
            // Two distinct, individually valid attestations (increasing nonces) by one keeper.
            as_[i] = _attestation(0, SERVICE, _one(0, false));
            sigs[i] = _sign(keeperKeys[0], as_[i]);
        }
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.DuplicateKeeper.selector, keeperAddrs[0]));
        registry.attestBatch(as_, sigs);
    }

    function test_security_rejectsReplayOfAcceptedAttestation() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        bytes memory sig = _sign(keeperKeys[0], a);
        registry.attest(a, sig);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.NonceUsed.selector, keeperAddrs[0], SERVICE, a.nonce));
        registry.attest(a, sig);
    }

    function test_security_rejectsOldEpoch() public {
        Attestation memory stale = _attestation(2, SERVICE, _one(1, false));
        bytes memory sig = _sign(keeperKeys[2], stale);
        _vote(0, 0, false);
        _vote(1, 0, false); // failover: epoch 1 -> 2
        _vote(0, 1, false);
        _vote(1, 1, false); // failover: epoch 2 -> 3 (the previous epoch is accepted, F15)
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.WrongEpoch.selector, 1, 3));
        registry.attest(stale, sig);
    }

    function test_security_rejectsOldConfigVersionOfRotatedOutKeeper() public {
        Attestation memory a = _attestation(2, SERVICE, _one(0, false));
        bytes memory sig = _sign(keeperKeys[2], a);
        address[] memory signers = new address[](2);
        bytes32[] memory vantages = new bytes32[](2);
        for (uint256 i; i < 2; ++i) {
            signers[i] = keeperAddrs[i];
        }
        vm.prank(admin);
        registry.setKeepers(signers, vantages);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.NotKeeper.selector, keeperAddrs[2]));
        registry.attest(a, sig);
    }

    function test_security_rejectsOldConfigVersionOfRetainedKeeper() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        bytes memory sig = _sign(keeperKeys[0], a);
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, new bytes32[](keeperAddrs.length));
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.WrongConfigVersion.selector, 1, 2));
        registry.attest(a, sig);
    }

    function test_security_rejectsWrongChainIdInDomain() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        // The digest this registry would have on another chain.
        bytes32 otherChain = _referenceDigest(a, block.chainid + 1, address(registry));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keeperKeys[0], otherChain);
        _expectNotKeeperOfOtherDigest(a, abi.encodePacked(r, s, v));
    }

    function test_security_rejectsWrongRegistryAddressInDomain() public {
        RouteRegistry other = new RouteRegistry(admin, admin, guardian, 0, 0);
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keeperKeys[0], other.attestationDigest(a));
        _expectNotKeeperOfOtherDigest(a, abi.encodePacked(r, s, v));
    }

    function test_security_rejectsExpiredDeadline() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        bytes memory sig = _sign(keeperKeys[0], a);
        vm.warp(a.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.AttestationExpired.selector, a.deadline, a.deadline + 1));
        registry.attest(a, sig);
    }

    function test_security_rejectsHighSMalleableSignature() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keeperKeys[0], registry.attestationDigest(a));
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.MalleableSignature.selector, highS));
        registry.attest(a, abi.encodePacked(r, highS, flippedV));
    }

    function test_security_rejectsGarbageSignatureRecoveringToZero() public {
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        // r = 0 is not a valid curve point: ecrecover returns address(0).
        vm.expectRevert(IRouteRegistry.InvalidSignature.selector);
        registry.attest(a, abi.encodePacked(bytes32(0), bytes32(uint256(1)), uint8(27)));
        // Wrong length.
        vm.expectRevert(IRouteRegistry.InvalidSignature.selector);
        registry.attest(a, hex"deadbeef");
    }

    function test_security_minorityBelowQuorumCannotDemote() public {
        for (uint256 round; round < 5; ++round) {
            _vote(0, 0, false); // the same keeper, again and again
        }
        vm.assertTrue(_isActive(0), "one keeper, however persistent, is not a quorum");
        vm.assertEq(_epoch(), 1, "set unchanged");
    }

    function test_security_keeperCannotCallGovernance() public {
        address keeper = keeperAddrs[0];
        bytes32 role = registry.GOVERNOR_ROLE();
        bytes memory denied = abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", keeper, role);
        vm.startPrank(keeper);
        vm.expectRevert(denied);
        registry.addEndpoint(SERVICE, "http://evil", "eu-west", "evil", keeper);
        vm.expectRevert(denied);
        registry.retireEndpoint(SERVICE, 2);
        vm.expectRevert(denied);
        registry.setKeepers(keeperAddrs, new bytes32[](keeperAddrs.length));
        vm.expectRevert(denied);
        registry.configureService(SERVICE, defaultConfig());
        vm.stopPrank();
    }

    function test_security_governanceCannotSetHealthDirectly() public {
        // There is no health setter: membership calls never touch health.
        (bool ok,) =
            address(registry).call(abi.encodeWithSignature("setHealth(bytes32,uint16,bool)", SERVICE, 2, false));
        vm.assertFalse(ok, "no such entry point");
        // A governor-added endpoint cannot serve until keepers say so.
        vm.startPrank(admin);
        uint16 id = registry.addEndpoint(SERVICE, "http://governor-pick", "eu-west", "gov", admin);
        vm.stopPrank();
        vm.assertFalse(registry.endpoint(SERVICE, id).ready, "not ready");
        // Governance cannot sign attestations: the admin is not a keeper.
        uint256 adminKey = 0xAD0;
        Attestation memory a = _attestation(0, SERVICE, _one(0, false));
        bytes memory sig = _sign(adminKey, a);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.NotKeeper.selector, vm.addr(adminKey)));
        registry.attest(a, sig);
        // Governance cannot pull an active route out from under the keepers.
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.EndpointIsActive.selector, SERVICE, 0));
        registry.retireEndpoint(SERVICE, 0);
    }

    /// @dev A signature over another domain's digest recovers to some unrelated address here.
    function _expectNotKeeperOfOtherDigest(Attestation memory a, bytes memory sig) internal {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        address recovered = ecrecover(registry.attestationDigest(a), v, r, s);
        vm.assertTrue(recovered != keeperAddrs[0], "different digest, different signer");
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.NotKeeper.selector, recovered));
        registry.attest(a, sig);
    }
}
