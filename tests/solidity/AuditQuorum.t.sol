// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {Verdict} from "../../contracts/types/Attestation.sol";
import {EndpointStatus, RouteSet, ServiceConfig} from "../../contracts/types/Service.sol";

/// @notice Issue 13 F04: the effective quorum is max(configured quorum, a strict majority of the
/// current keeper set). Here the set has 4 keepers and the configured quorum is 2, so the
/// effective quorum is 3.
contract AuditQuorumTest is RegistryTest {
    function setUp() public override {
        super.setUp();
        _addKeeper();
    }

    /// Endpoints 0 and 1 active, 2 and 3 ready standbys, vouched for by keepers 0, 1 and 2.
    function _bootstrapByThree() internal {
        Verdict[] memory all = new Verdict[](4);
        for (uint16 i; i < 4; ++i) {
            all[i] = Verdict({endpoint: i, revision: 0, healthy: true, latencyMs: 10 + i, headLag: 0});
        }
        _submit(0, SERVICE, all);
        _submit(1, SERVICE, all);
        _submit(2, SERVICE, all);
    }

    /// Two healthy votes of four keepers are a minority: no standby becomes ready.
    function test_audit_F04_minorityCannotMakeReady() public {
        Verdict[] memory all = new Verdict[](1);
        all[0] = Verdict({endpoint: 0, revision: 0, healthy: true, latencyMs: 10, headLag: 0});
        _submit(0, SERVICE, all);
        _submit(1, SERVICE, all);
        vm.assertFalse(_isActive(0), "2 of 4 keepers: not a quorum, not promoted");
        vm.assertFalse(registry.endpoint(SERVICE, 0).ready, "not ready either");
        _submit(2, SERVICE, all);
        vm.assertTrue(_isActive(0), "3 of 4 keepers: a strict majority, promoted");
    }

    /// With the configured quorum 2, two of four keepers used to demote a route the other two
    /// vouch for; a strict majority is needed now.
    function test_audit_F04_minorityCannotDemote() public {
        _bootstrapByThree();
        _submit(3, SERVICE, _none());
        uint32 epoch = _epoch();
        _vote(2, 0, false);
        _vote(3, 0, false);
        vm.assertTrue(_isActive(0), "2 of 4 keepers cannot demote");
        vm.assertEq(_epoch(), epoch, "set unchanged");
        _vote(1, 0, false);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "3 of 4 keepers demote");
    }

    /// Opposing verdicts cannot both stand: with keepers 0 and 1 vouching for a ready standby and
    /// keepers 2 and 3 flagging it, its readiness no longer flips on every re-submitted vote.
    function test_audit_F04_opposingVerdictsDoNotFlipReadiness() public {
        _bootstrapByThree(); // #2 ready, up {0, 1, 2}
        _vote(3, 2, false);
        vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "one flag: still ready");
        _vote(2, 2, false); // up {0, 1}, down {2, 3}: neither is a majority
        vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "2 against 2: no quorum, readiness kept");
        for (uint256 round; round < 3; ++round) {
            _vote(0, 2, true);
            _vote(3, 2, false);
            vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "no flip on re-submitted votes");
        }
        _vote(1, 2, false); // down {1, 2, 3}: a majority
        vm.assertFalse(registry.endpoint(SERVICE, 2).ready, "a majority flags it: not ready");
    }

    /// Fail static: with only 2 of 4 keepers live (below the effective quorum 3), the service
    /// reads stale and the set stays as it is, even when both flag a route.
    function test_audit_F04_failStaticBelowEffectiveQuorum() public {
        _bootstrapByThree();
        vm.assertFalse(registry.authorisedRoutes(SERVICE).stale, "3 live keepers: fresh");
        vm.warp(vm.getBlockTimestamp() + 301); // every keeper's liveness expired
        _vote(0, 0, false);
        _vote(1, 0, false);
        RouteSet memory set = registry.authorisedRoutes(SERVICE);
        vm.assertTrue(set.stale, "2 live keepers of 4: stale (configured quorum 2 is not enough)");
        vm.assertTrue(_isActive(0), "fail static: no demotion without a live majority");
        _vote(2, 0, false);
        vm.assertFalse(registry.authorisedRoutes(SERVICE).stale, "3 live: fresh");
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "a live majority demotes");
    }

    /// A configured quorum above the majority still applies (here 4 of 4).
    function test_quorum_configuredAboveMajorityApplies() public {
        ServiceConfig memory c = defaultConfig();
        c.quorum = 4;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrapByThree();
        vm.assertFalse(registry.endpoint(SERVICE, 0).ready, "3 of 4 below quorum 4");
        vm.assertFalse(_isActive(0), "not promoted");
        vm.assertTrue(registry.authorisedRoutes(SERVICE).stale, "3 live keepers below quorum 4: stale");
    }
}
