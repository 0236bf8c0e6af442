// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RouteRegistry} from "../../contracts/RouteRegistry.sol";

/// @notice Issue 13 finding F02 (keeper-set changes behind a delay), named `test_audit_F02_<what>`.
/// The registry is deployed from its artifact with the constructor arguments ABI-encoded, and the
/// new entry points are called by signature, so that this file also compiled against the registry
/// before the fix, where each of these tests failed (checked before F17 changed the constructor).
contract AuditGovernanceTest {
    address internal admin = address(0xAD);
    address internal guardian = address(0x6A);
    uint32 internal constant DELAY = 2 days;

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.chainId(1);
    }

    /// The delay is a deploy parameter; 0 is refused outside chain 31337.
    function test_audit_F02_zeroDelayOnlyOnDevChain() public {
        vm.assertEq(_deploy(0), address(0), "delay 0 refused on chain 1");
        vm.assertTrue(_deploy(DELAY) != address(0), "a real delay accepted");
        vm.chainId(31337);
        vm.assertTrue(_deploy(0) != address(0), "delay 0 accepted on chain 31337");
    }

    /// A proposed keeper set changes nothing until its delay elapsed; then the governor activates it.
    function test_audit_F02_keeperSetWaitsForDelay() public {
        RouteRegistry r = RouteRegistry(_deploy(DELAY));
        (address[] memory signers, bytes32[] memory vantages) = _set(3);
        vm.prank(admin);
        r.setKeepers(signers, vantages);
        (uint32 version,,) = r.keepers();
        vm.assertEq(version, 0, "not installed at once");
        vm.prank(admin);
        (bool ok,) = address(r).call(abi.encodeWithSignature("activateKeepers()"));
        vm.assertFalse(ok, "not before the delay");
        vm.warp(vm.getBlockTimestamp() + DELAY);
        vm.prank(admin);
        (ok,) = address(r).call(abi.encodeWithSignature("activateKeepers()"));
        vm.assertTrue(ok, "activated after the delay");
        address[] memory current;
        (version, current,) = r.keepers();
        vm.assertEq(version, 1, "installed");
        vm.assertEq(current.length, 3, "the proposed set");
        // Nobody else can activate, and nothing is left pending.
        (ok,) = address(r).call(abi.encodeWithSignature("activateKeepers()"));
        vm.assertFalse(ok, "nothing pending");
    }

    /// The guardian and the admin can each cancel a proposal; the governor alone cannot force it.
    function test_audit_F02_guardianAndAdminCanCancel() public {
        address governor = address(0x60);
        RouteRegistry r = RouteRegistry(_deploy(DELAY));
        vm.startPrank(admin);
        r.grantRole(r.GOVERNOR_ROLE(), governor);
        vm.stopPrank();
        (address[] memory signers, bytes32[] memory vantages) = _set(3);
        address[2] memory cancellers = [guardian, admin];
        for (uint256 i; i < 2; ++i) {
            vm.prank(governor);
            r.setKeepers(signers, vantages);
            vm.prank(governor);
            (bool ok,) = address(r).call(abi.encodeWithSignature("cancelKeepers()"));
            vm.assertFalse(ok, "the governor cannot cancel");
            vm.prank(cancellers[i]);
            (ok,) = address(r).call(abi.encodeWithSignature("cancelKeepers()"));
            vm.assertTrue(ok, "cancelled");
            vm.warp(vm.getBlockTimestamp() + DELAY);
            vm.prank(governor);
            (ok,) = address(r).call(abi.encodeWithSignature("activateKeepers()"));
            vm.assertFalse(ok, "a cancelled proposal never activates");
            (uint32 version,,) = r.keepers();
            vm.assertEq(version, 0, "unchanged");
        }
    }

    /// A proposal is checked when made (not only at activation): a duplicate signer is refused.
    function test_setKeepers_proposalValidatedAtOnce() public {
        RouteRegistry r = RouteRegistry(_deploy(DELAY));
        (address[] memory signers, bytes32[] memory vantages) = _set(3);
        signers[2] = signers[0];
        vm.prank(admin);
        (bool ok,) = address(r).call(abi.encodeCall(r.setKeepers, (signers, vantages)));
        vm.assertFalse(ok, "duplicate refused at proposal");
    }

    function _deploy(uint32 delay) internal returns (address deployed) {
        bytes memory init = abi.encodePacked(
            vm.getCode("RouteRegistry.sol:RouteRegistry"), abi.encode(admin, admin, guardian, delay, uint48(0))
        );
        assembly ("memory-safe") {
            deployed := create(0, add(init, 0x20), mload(init))
        }
    }

    function _set(uint256 n) internal pure returns (address[] memory signers, bytes32[] memory vantages) {
        signers = new address[](n);
        vantages = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            signers[i] = address(uint160(0xB0 + i));
            vantages[i] = bytes32(i);
        }
    }
}
