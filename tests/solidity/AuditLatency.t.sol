// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm, Vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {Verdict} from "../../contracts/types/Attestation.sol";
import {RouteSet} from "../../contracts/types/Service.sol";

/// @notice Issue 13 F05: the latency that orders promotion and that clients read is the median
/// of the current keepers' latest healthy figures, not the last writer's.
contract AuditLatencyTest is RegistryTest {
    /// Fixture regions: 0 eu-west, 1 us-east, 2 ap-south, 3 eu-west. Once #0 (eu-west) fails,
    /// both standbys lie in uncovered regions, so latency alone picks the replacement.
    function _bootstrapByAll() internal {
        Verdict[] memory all = new Verdict[](4);
        for (uint16 i; i < 4; ++i) {
            all[i] = Verdict({endpoint: i, revision: 0, healthy: true, latencyMs: 10 + i, headLag: 0});
        }
        _submit(0, SERVICE, all);
        _submit(1, SERVICE, all);
        _submit(2, SERVICE, all); // every keeper: #2 12 ms, #3 13 ms
    }

    function _latency(uint16 endpoint, uint32 latencyMs) internal pure returns (Verdict[] memory v) {
        v = new Verdict[](1);
        v[0] = Verdict({endpoint: endpoint, revision: 0, healthy: true, latencyMs: latencyMs, headLag: 0});
    }

    /// One keeper reporting #3 at 1 ms used to make it the promoted standby (last writer wins).
    function test_audit_F05_oneKeeperCannotPickPromotedStandby() public {
        _bootstrapByAll();
        _submit(0, SERVICE, _latency(3, 1));
        vm.assertEq(registry.endpoint(SERVICE, 3).latencyMs, 13, "median of 1, 13, 13");
        _vote(1, 0, false);
        _vote(2, 0, false); // #0 fails over
        vm.assertTrue(_isActive(2), "#2 (12 ms by every keeper) promoted");
        vm.assertFalse(_isActive(3), "not #3, which one keeper claims is faster");
    }

    /// What clients read is the median too, and it moves (with its event) once a majority of the
    /// keepers' figures moves.
    function test_audit_F05_clientLatencyIsMedianOfKeepers() public {
        _bootstrapByAll();
        vm.recordLogs();
        _submit(2, SERVICE, _latency(0, 500));
        vm.assertEq(_routeLatency(0), 10, "one keeper's 500 ms is not what clients read");
        vm.assertEq(vm.getRecordedLogs().length, 0, "no latency change event");
        _submit(1, SERVICE, _latency(0, 400));
        vm.assertEq(_routeLatency(0), 400, "median of 10, 400, 500");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertEq(logs.length, 1, "one event");
        vm.assertEq(logs[0].topics[0], keccak256("EndpointLatencyChanged(bytes32,uint16,uint32)"), "latency event");
        vm.assertEq(abi.decode(logs[0].data, (uint32)), 400, "carries the median");
    }

    /// A keeper-set rotation voids the figures with the votes: the first figure under the new set
    /// stands alone.
    function test_latency_rotationVoidsFigures() public {
        _bootstrapByAll();
        _addKeeper(); // 4 keepers, version 2
        _submit(3, SERVICE, _latency(0, 70));
        vm.assertEq(_routeLatency(0), 70, "only the new set's figure counts");
    }

    function _routeLatency(uint16 id) internal view returns (uint32) {
        RouteSet memory set = registry.authorisedRoutes(SERVICE);
        for (uint256 i; i < set.routes.length; ++i) {
            if (set.routes[i].id == id) return set.routes[i].latencyMs;
        }
        revert("not a route");
    }
}
