// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RouteRegistry} from "../../contracts/RouteRegistry.sol";

/// @notice Issue 13 finding F17 (admin handover and separate roles), named `test_audit_F17_<what>`.
/// The registry is deployed from its artifact with the constructor arguments ABI-encoded and the
/// admin-transfer entry points are called by signature, so that this file also compiles against
/// the registry before the fix, where each of these tests fails.
contract AuditAdminTest {
    address internal admin = address(0xAD);
    address internal governor = address(0x60);
    address internal guardian = address(0x6A);
    address internal successor = address(0x5C);
    uint48 internal constant ADMIN_DELAY = 1 days;

    function setUp() public {
        vm.warp(1_700_000_000);
    }

    /// The admin role moves in two steps, the second by the new admin after the delay; never by
    /// `grantRole`.
    function test_audit_F17_adminTransferIsTwoStepAndDelayed() public {
        RouteRegistry r = _deploy();
        bytes32 adminRole = r.DEFAULT_ADMIN_ROLE();
        vm.prank(admin);
        (bool ok,) = address(r).call(abi.encodeCall(r.grantRole, (adminRole, successor)));
        vm.assertFalse(ok, "no single-step grant of the admin role");
        vm.prank(admin);
        (ok,) = address(r).call(abi.encodeWithSignature("beginDefaultAdminTransfer(address)", successor));
        vm.assertTrue(ok, "transfer begun");
        vm.prank(successor);
        (ok,) = address(r).call(abi.encodeWithSignature("acceptDefaultAdminTransfer()"));
        vm.assertFalse(ok, "not before the delay");
        vm.warp(vm.getBlockTimestamp() + ADMIN_DELAY + 1);
        vm.prank(successor);
        (ok,) = address(r).call(abi.encodeWithSignature("acceptDefaultAdminTransfer()"));
        vm.assertTrue(ok, "accepted after the delay");
        vm.assertTrue(r.hasRole(adminRole, successor), "the successor is the admin");
        vm.assertFalse(r.hasRole(adminRole, admin), "the old admin is not");
    }

    /// Admin, governor and guardian are separate constructor arguments.
    function test_audit_F17_rolesAreSeparateArguments() public {
        RouteRegistry r = _deploy();
        vm.assertTrue(r.hasRole(r.DEFAULT_ADMIN_ROLE(), admin), "admin");
        vm.assertTrue(r.hasRole(r.GOVERNOR_ROLE(), governor), "governor");
        vm.assertFalse(r.hasRole(r.GOVERNOR_ROLE(), admin), "the admin is not the governor");
        vm.assertTrue(r.hasRole(r.GUARDIAN_ROLE(), guardian), "guardian");
    }

    function _deploy() internal returns (RouteRegistry) {
        bytes memory init = abi.encodePacked(
            vm.getCode("RouteRegistry.sol:RouteRegistry"), abi.encode(admin, governor, guardian, uint32(0), ADMIN_DELAY)
        );
        address deployed;
        assembly ("memory-safe") {
            deployed := create(0, add(init, 0x20), mload(init))
        }
        vm.assertTrue(deployed != address(0), "deployed");
        return RouteRegistry(deployed);
    }
}
