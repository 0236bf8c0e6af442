// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm, Vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {EndpointStatus} from "../../contracts/types/Service.sol";

/// @notice Issue 13 F06 (rest): readiness that no live quorum of current keepers backs any more is
/// never promoted; it is cleared when promotion would use it.
contract AuditBackingTest is RegistryTest {
    /// Keepers 0 and 1 made #2 and #3 ready, then keeper 0 went silent: when #0 fails, no live
    /// quorum vouches for either standby, so neither is promoted and both lose their readiness.
    function test_audit_F06_readinessNoLiveQuorumBacksIsNotPromoted() public {
        _bootstrap(SERVICE); // active {0, 1}, ready {2, 3}: up votes of keepers 0 and 1
        vm.warp(vm.getBlockTimestamp() + 301); // every keeper's liveness expired
        _vote(1, 0, false);
        vm.recordLogs();
        _vote(2, 0, false); // keepers 1 and 2 (live) demote #0
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "#0 demoted (2 active > floor 1)");
        vm.assertFalse(_isActive(2), "#2 not promoted: only keeper 1 of its backers is live");
        vm.assertFalse(_isActive(3), "#3 neither");
        vm.assertEq(registry.service(SERVICE).readyMask, 0, "readiness no live quorum backs is cleared");
        uint256 cleared;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == keccak256("EndpointReadinessChanged(bytes32,uint16,bool)")) ++cleared;
        }
        vm.assertEq(cleared, 2, "one readiness event each");

        // Keeper 0 attests again: its vouching counts again, and a fresh healthy quorum restores them.
        _vote(0, 2, true);
        _vote(1, 2, true);
        vm.assertTrue(_isActive(2), "a backed standby fills the set");
    }

    /// While its backers are live, a ready standby is promoted as before.
    function test_backing_liveBackersPromote() public {
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        _vote(1, 0, false);
        vm.assertTrue(_isActive(2), "promoted");
    }
}
