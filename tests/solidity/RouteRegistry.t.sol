// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {RouteRegistry} from "../../contracts/RouteRegistry.sol";
import {IRouteRegistry} from "../../contracts/interfaces/IRouteRegistry.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {
    ServiceConfig,
    EndpointStatus,
    DeferReason,
    EndpointView,
    RouteSet,
    ServiceView
} from "../../contracts/types/Service.sol";

/// @notice Unit tests: every entry point, its success path and each of its reverts.
contract RouteRegistryTest is RegistryTest {
    /* createService / configureService */

    function test_createService_storesConfigAndStartsEmpty() public view {
        ServiceView memory s = registry.service(SERVICE);
        vm.assertEq(s.config.quorum, 2, "quorum");
        vm.assertEq(s.endpointCount, 4, "endpoints");
        vm.assertEq(s.activeCount, 0, "no route serves before keepers attest");
        vm.assertEq(registry.serviceIds().length, 1, "listed");
    }

    function test_createService_revertsWhenExists() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.ServiceExists.selector, SERVICE));
        registry.createService(SERVICE, "again", defaultConfig());
    }

    function test_createService_revertsOnInvalidConfig() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 3; // above targetActive
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidConfig.selector, "floor", 3));
        registry.createService(keccak256("x"), "x", c);

        c = defaultConfig();
        c.quorum = 1; // a single key could flip the set
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidConfig.selector, "quorum", 1));
        registry.createService(keccak256("x"), "x", c);

        c = defaultConfig();
        c.quorum = 5; // more than the four keepers
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidConfig.selector, "quorum", 5));
        registry.createService(keccak256("x"), "x", c);

        c = defaultConfig();
        c.attestationTtl = 0;
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidConfig.selector, "attestationTtl", 0));
        registry.createService(keccak256("x"), "x", c);
    }

    function test_configureService_updatesConfig() public {
        ServiceConfig memory c = defaultConfig();
        c.targetActive = 3;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        vm.assertEq(registry.service(SERVICE).config.targetActive, 3, "target");
    }

    function test_configureService_revertsForUnknownService() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, bytes32("nope")));
        registry.configureService(bytes32("nope"), defaultConfig());
    }

    /* addEndpoint / updateEndpoint / retireEndpoint */

    function test_addEndpoint_startsAsStandbyNotReady() public {
        vm.prank(admin);
        uint16 id = registry.addEndpoint(SERVICE, "http://127.0.0.1:9999", "eu-west", "acme", address(7));
        EndpointView memory e = registry.endpoint(SERVICE, id);
        vm.assertEq(id, 4, "next index");
        vm.assertTrue(e.status == EndpointStatus.Standby, "standby");
        vm.assertFalse(e.ready, "not ready until a keeper quorum says so");
        vm.assertEq(e.url, "http://127.0.0.1:9999", "url");
        vm.assertEq(e.operator, address(7), "operator");
    }

    function test_addEndpoint_revertsOnEmptyUrl() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidUrl.selector, "", "empty"));
        registry.addEndpoint(SERVICE, "", "eu-west", "acme", address(7));
    }

    function test_addEndpoint_acceptsHttpWsUrlsAndTemplates() public {
        string[4] memory ok =
            ["https://eth-mainnet.example/v2/${ALCHEMY_KEY}", "http://127.0.0.1:8545", "wss://x.example/ws", "ws://h"];
        for (uint256 i; i < ok.length; ++i) {
            vm.prank(admin);
            registry.addEndpoint(SERVICE, ok[i], "eu-west", "acme", address(7));
        }
    }

    function test_addEndpoint_refusesOtherSchemesCredentialsAndOddBytes() public {
        string[7] memory bad = [
            "ftp://x.example/",
            "javascript:alert(1)",
            "https://user:pass@x.example/",
            "https://key@x.example/",
            "https://x.example/a b",
            "https://",
            "HTTPS://x.example/"
        ];
        string[7] memory why = [
            "scheme is not http, https, ws or wss",
            "scheme is not http, https, ws or wss",
            "credentials (user:pass@) in the URL",
            "credentials (user:pass@) in the URL",
            "not printable ASCII",
            "no host",
            "scheme is not http, https, ws or wss"
        ];
        for (uint256 i; i < bad.length; ++i) {
            vm.prank(admin);
            vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidUrl.selector, bad[i], why[i]));
            registry.addEndpoint(SERVICE, bad[i], "eu-west", "acme", address(7));
        }
        bytes memory long = new bytes(257);
        for (uint256 i; i < long.length; ++i) {
            long[i] = "a";
        }
        string memory tooLong = string.concat("https://", string(long));
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidUrl.selector, tooLong, "longer than 256 bytes"));
        registry.addEndpoint(SERVICE, tooLong, "eu-west", "acme", address(7));
        // An @ after the host (in the path or query) is not user info.
        vm.prank(admin);
        registry.addEndpoint(SERVICE, "https://x.example/u@v?w=@", "eu-west", "acme", address(7));
        // updateEndpoint checks the same way.
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IRouteRegistry.InvalidUrl.selector, bad[2], "credentials (user:pass@) in the URL")
        );
        registry.updateEndpoint(SERVICE, 0, bad[2], "acme", address(7));
    }

    function test_addEndpoint_revertsWhenServiceFull() public {
        for (uint256 i = 4; i < 64; ++i) {
            vm.prank(admin);
            registry.addEndpoint(SERVICE, "http://x", "eu-west", "acme", address(7));
        }
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.TooManyEndpoints.selector, SERVICE));
        registry.addEndpoint(SERVICE, "http://x", "eu-west", "acme", address(7));
    }

    function test_updateEndpoint_changesInfo() public {
        vm.prank(admin);
        registry.updateEndpoint(SERVICE, 2, "http://127.0.0.1:1", "other", address(9));
        EndpointView memory e = registry.endpoint(SERVICE, 2);
        vm.assertEq(e.url, "http://127.0.0.1:1", "url");
        vm.assertEq(e.provider, "other", "provider");
    }

    function test_updateEndpoint_revertsWhenRetired() public {
        vm.startPrank(admin);
        registry.retireEndpoint(SERVICE, 3);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.EndpointIsRetired.selector, SERVICE, 3));
        registry.updateEndpoint(SERVICE, 3, "http://x", "p", address(1));
        vm.stopPrank();
    }

    function test_governance_revertsForNonGovernor() public {
        bytes32 role = registry.GOVERNOR_ROLE();
        bytes memory denied =
            abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", guardian, role);
        vm.startPrank(guardian);
        vm.expectRevert(denied);
        registry.createService(keccak256("x"), "x", defaultConfig());
        vm.expectRevert(denied);
        registry.updateEndpoint(SERVICE, 0, "http://x", "p", address(1));
        vm.stopPrank();
    }

    function test_unfreeze_revertsForNonGuardian() public {
        bytes32 role = registry.GUARDIAN_ROLE();
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", admin, role));
        registry.unfreeze(SERVICE);
    }

    function test_views_revertForUnknownServiceOrEndpoint() public {
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, bytes32("nope")));
        registry.authorisedRoutes(bytes32("nope"));
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownEndpoint.selector, SERVICE, 7));
        registry.endpoint(SERVICE, 7);
    }

    function test_updateEndpoint_revertsForUnknownEndpoint() public {
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownEndpoint.selector, SERVICE, 9));
        registry.updateEndpoint(SERVICE, 9, "http://x", "p", address(1));
    }

    function test_retireEndpoint_retiresStandbyAndDropsReadiness() public {
        _bootstrap(SERVICE);
        vm.prank(admin);
        registry.retireEndpoint(SERVICE, 2);
        EndpointView memory e = registry.endpoint(SERVICE, 2);
        vm.assertTrue(e.status == EndpointStatus.Retired, "retired");
        vm.assertFalse(e.ready, "no longer a candidate");
    }

    function test_retireEndpoint_revertsWhenActive() public {
        _bootstrap(SERVICE);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.EndpointIsActive.selector, SERVICE, 0));
        registry.retireEndpoint(SERVICE, 0);
    }

    function test_retireEndpoint_revertsWhenAlreadyRetired() public {
        vm.startPrank(admin);
        registry.retireEndpoint(SERVICE, 3);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.EndpointIsRetired.selector, SERVICE, 3));
        registry.retireEndpoint(SERVICE, 3);
        vm.stopPrank();
    }

    /* setKeepers */

    function test_setKeepers_bumpsVersionAndReplacesSet() public {
        address[] memory signers = new address[](2);
        signers[0] = keeperAddrs[0];
        signers[1] = keeperAddrs[1];
        bytes32[] memory vantages = new bytes32[](2);
        vm.prank(admin);
        registry.setKeepers(signers, vantages);
        (uint32 version, address[] memory current,) = registry.keepers();
        vm.assertEq(version, 2, "version bumped");
        vm.assertEq(current.length, 2, "replaced");
        (bool active,,,) = registry.keeperState(keeperAddrs[2], SERVICE);
        vm.assertFalse(active, "rotated out");
    }

    function test_setKeepers_revertsOnDuplicate() public {
        address[] memory signers = new address[](2);
        signers[0] = keeperAddrs[0];
        signers[1] = keeperAddrs[0];
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidKeeperSet.selector, "signers[i] (duplicate)", 1));
        registry.setKeepers(signers, new bytes32[](2));
    }

    function test_setKeepers_revertsBelowAServiceQuorum() public {
        address[] memory signers = new address[](1);
        signers[0] = keeperAddrs[0];
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRouteRegistry.InvalidKeeperSet.selector, "signers.length (below a service quorum)", 1
            )
        );
        registry.setKeepers(signers, new bytes32[](1));
    }

    function test_setKeepers_revertsOnZeroAddressAndLengthMismatch() public {
        address[] memory signers = new address[](2);
        signers[0] = keeperAddrs[0];
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IRouteRegistry.InvalidKeeperSet.selector, "signers[i] (zero address)", 1)
        );
        registry.setKeepers(signers, new bytes32[](2));
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidKeeperSet.selector, "vantages.length", 1));
        registry.setKeepers(signers, new bytes32[](1));
    }

    /* attest: readiness, promotion, failover */

    function test_attest_bootstrapFillsTargetWithRegionDiversity() public {
        _bootstrap(SERVICE);
        uint16[] memory ids = _activeIds(SERVICE);
        vm.assertEq(ids.length, 2, "target reached");
        vm.assertEq(ids[0], 0, "eu-west, lowest latency");
        vm.assertEq(ids[1], 1, "us-east: an uncovered region beats eu-west #3");
        vm.assertEq(_epoch(), 1, "one change, one epoch");
        vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "2 ready standby");
    }

    function test_attest_oneKeeperAloneMakesNothingReady() public {
        Verdict[] memory v = _one(0, true);
        _submit(0, SERVICE, v);
        vm.assertFalse(registry.endpoint(SERVICE, 0).ready, "one vote is not a quorum");
        vm.assertEq(registry.endpoint(SERVICE, 0).upVotes, 1, "vote recorded");
        vm.assertEq(_epoch(), 0, "no change");
    }

    function test_attest_quorumDemotesAndPromotesInOneTransaction() public {
        _bootstrap(SERVICE);
        _vote(2, 1, false);
        vm.assertTrue(_isActive(1), "one vote is not enough");
        vm.expectEmit();
        emit IRouteRegistry.EndpointStatusChanged(SERVICE, 1, EndpointStatus.Active, EndpointStatus.Demoted);
        _vote(1, 1, false);
        vm.assertTrue(_status(1) == EndpointStatus.Demoted, "demoted");
        uint16[] memory ids = _activeIds(SERVICE);
        vm.assertEq(ids.length, 2, "still two routes");
        vm.assertEq(ids[1], 2, "ap-south (uncovered) promoted over eu-west #3");
        vm.assertEq(_epoch(), 2, "epoch bumped once");
    }

    function test_attest_emitsRouteSetChangedWithNewSet() public {
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        uint16[] memory expected = new uint16[](2);
        expected[0] = 1;
        expected[1] = 2; // ap-south and eu-west are both uncovered once 0 leaves: lower latency wins
        vm.expectEmit();
        emit IRouteRegistry.RouteSetChanged(SERVICE, 2, expected);
        _vote(1, 0, false);
    }

    function test_attest_healthyVoteWithdrawsUnhealthyVote() public {
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        _vote(0, 0, true);
        _vote(1, 0, false);
        vm.assertTrue(_isActive(0), "the first keeper changed its mind: no quorum");
    }

    function test_attest_demotedReturnsOnlyAfterCooldownAndFreshQuorum() public {
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        _vote(1, 0, false);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "demoted");

        // Healthy votes during the cooldown do not count (hysteresis).
        _vote(0, 0, true);
        _vote(1, 0, true);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "still cooling down");

        vm.warp(vm.getBlockTimestamp() + 61);
        _vote(0, 0, true);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "one fresh vote is not a quorum");
        _vote(1, 0, true);
        EndpointView memory e = registry.endpoint(SERVICE, 0);
        vm.assertTrue(e.status == EndpointStatus.Standby, "back to standby");
        vm.assertTrue(e.ready, "ready");
    }

    function test_attest_floorKeepsFailingRouteAndFiresAlarm() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE);
        // Make both standbys unready so no replacement exists.
        _vote(2, 2, false);
        _vote(1, 2, false);
        _vote(2, 3, false);
        _vote(1, 3, false);

        _vote(0, 0, false);
        vm.expectEmit();
        emit IRouteRegistry.DemotionDeferred(SERVICE, 0, DeferReason.Floor);
        _vote(1, 0, false);
        vm.assertTrue(_isActive(0), "floor holds");
        RouteSet memory set = registry.authorisedRoutes(SERVICE);
        vm.assertTrue(set.routes[0].degraded, "flagged degraded");

        // A standby becoming ready replaces the degraded route.
        vm.warp(vm.getBlockTimestamp() + 1);
        _vote(2, 3, true);
        _vote(1, 3, true);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "degraded route replaced");
        vm.assertTrue(_isActive(3), "by the new standby");
    }

    function test_attest_floorAllowsDemotionAboveFloorWithoutReplacement() public {
        _bootstrap(SERVICE);
        _vote(2, 2, false);
        _vote(1, 2, false);
        _vote(2, 3, false);
        _vote(1, 3, false);
        _vote(0, 0, false);
        _vote(1, 0, false);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "2 active > floor 1: demoted");
        vm.assertEq(_activeIds(SERVICE).length, 1, "one route left");
    }

    function test_attest_blastRadiusDefersExtraDemotions() public {
        ServiceConfig memory c = defaultConfig();
        c.maxDemotions = 1;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        _vote(1, 0, false);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "first demotion");
        _vote(0, 1, false);
        vm.expectEmit();
        emit IRouteRegistry.DemotionDeferred(SERVICE, 1, DeferReason.BlastRadius);
        _vote(1, 1, false);
        vm.assertTrue(_isActive(1), "second demotion deferred");

        // After the window, the next attestation (even a heartbeat) completes it. Keepers 0 and 1
        // stay live meanwhile (heartbeats): a vote counts only while its keeper is live.
        for (uint256 beat; beat < 3; ++beat) {
            vm.warp(vm.getBlockTimestamp() + 195);
            _submit(0, SERVICE, _none());
            _submit(1, SERVICE, _none());
        }
        vm.assertTrue(_isActive(1), "still within the window (585 s)");
        vm.warp(vm.getBlockTimestamp() + 16);
        _submit(2, SERVICE, _none());
        vm.assertTrue(_status(1) == EndpointStatus.Demoted, "completed after the window");
    }

    function test_attest_freezeDefersAndExpiresByItself() public {
        _bootstrap(SERVICE);
        vm.prank(guardian);
        registry.freeze(SERVICE, 100);
        _vote(0, 0, false);
        vm.expectEmit();
        emit IRouteRegistry.DemotionDeferred(SERVICE, 0, DeferReason.Frozen);
        _vote(1, 0, false);
        vm.assertTrue(_isActive(0), "frozen");
        vm.assertEq(_epoch(), 1, "no change while frozen");

        vm.warp(vm.getBlockTimestamp() + 101);
        _submit(2, SERVICE, _none());
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "freeze expired by itself");
    }

    function test_unfreeze_liftsFreeze() public {
        vm.startPrank(guardian);
        registry.freeze(SERVICE, 100);
        registry.unfreeze(SERVICE);
        vm.stopPrank();
        vm.assertEq(registry.service(SERVICE).frozenUntil, 0, "lifted");
    }

    function test_freeze_revertsWhenTooLong() public {
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.FreezeTooLong.selector, 8 days, 7 days));
        registry.freeze(SERVICE, 8 days);
    }

    function test_freeze_revertsForNonGuardian() public {
        bytes32 role = registry.GUARDIAN_ROLE();
        vm.prank(keeperAddrs[0]);
        vm.expectRevert(
            abi.encodeWithSignature("AccessControlUnauthorizedAccount(address,bytes32)", keeperAddrs[0], role)
        );
        registry.freeze(SERVICE, 100);
    }

    function test_attest_minVantagesRequiresSpread() public {
        ServiceConfig memory c = defaultConfig();
        c.minVantages = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE); // keepers 0 and 1 share vantage "eu": no quorum yet
        vm.assertEq(_activeIds(SERVICE).length, 0, "same-vantage votes are not a quorum");
        Verdict[] memory v = _one(0, true);
        _submit(2, SERVICE, v); // "us"
        vm.assertTrue(_isActive(0), "quorum spanning two vantages");
    }

    function test_attest_keeperRotationVoidsVotes() public {
        _bootstrap(SERVICE);
        _vote(0, 0, false);
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, new bytes32[](keeperAddrs.length));
        vm.assertEq(registry.endpoint(SERVICE, 0).downVotes, 0, "old votes void");
        _vote(1, 0, false);
        vm.assertTrue(_isActive(0), "one vote under the new version is not a quorum");
    }

    function test_attest_ignoresVerdictOnRetiredEndpoint() public {
        vm.prank(admin);
        registry.retireEndpoint(SERVICE, 3);
        _submit(0, SERVICE, _one(3, true));
        vm.assertEq(registry.endpoint(SERVICE, 3).upVotes, 0, "ignored");
    }

    function test_attest_revertsOnUnknownEndpoint() public {
        Attestation memory a = _attestation(0, SERVICE, _one(9, false));
        bytes memory sig = _sign(keeperKeys[0], a);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownEndpoint.selector, SERVICE, 9));
        registry.attest(a, sig);
    }

    function test_attest_revertsOnUnknownService() public {
        Attestation memory a = _attestation(0, SERVICE, _none());
        a.service = bytes32("nope");
        bytes memory sig = _sign(keeperKeys[0], a);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, bytes32("nope")));
        registry.attest(a, sig);
    }

    function test_attest_revertsWhenDeadlineTooFar() public {
        Attestation memory a = _attestation(0, SERVICE, _none());
        a.deadline = uint64(vm.getBlockTimestamp() + 301);
        bytes memory sig = _sign(keeperKeys[0], a);
        vm.expectRevert(
            abi.encodeWithSelector(IRouteRegistry.DeadlineTooFar.selector, a.deadline, vm.getBlockTimestamp() + 300)
        );
        registry.attest(a, sig);
    }

    function test_attest_heartbeatRefreshesLivenessOnly() public {
        _bootstrap(SERVICE);
        vm.warp(vm.getBlockTimestamp() + 400);
        vm.assertTrue(registry.authorisedRoutes(SERVICE).stale, "stale after the TTL");
        _submit(2, SERVICE, _none());
        vm.assertTrue(registry.authorisedRoutes(SERVICE).stale, "one live keeper is below quorum");
        _submit(0, SERVICE, _none());
        RouteSet memory set = registry.authorisedRoutes(SERVICE);
        vm.assertFalse(set.stale, "fresh again: a quorum of keepers live");
        vm.assertEq(set.lastAttestedAt, vm.getBlockTimestamp(), "liveness");
        vm.assertEq(set.epoch, 1, "no change");
    }

    /* attestBatch */

    function test_attestBatch_reachesQuorumInOneCall() public {
        _bootstrap(SERVICE);
        Attestation[] memory as_ = new Attestation[](2);
        bytes[] memory sigs = new bytes[](2);
        for (uint256 i; i < 2; ++i) {
            as_[i] = _attestation(i + 1, SERVICE, _one(0, false));
            sigs[i] = _sign(keeperKeys[i + 1], as_[i]);
        }
        registry.attestBatch(as_, sigs);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "demoted");
        vm.assertEq(_epoch(), 2, "one epoch bump");
    }

    function test_attestBatch_revertsOnEmptyOrMismatched() public {
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidBatch.selector, 0, 0));
        registry.attestBatch(new Attestation[](0), new bytes[](0));
        Attestation[] memory as_ = new Attestation[](1);
        as_[0] = _attestation(0, SERVICE, _none());
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.InvalidBatch.selector, 1, 2));
        registry.attestBatch(as_, new bytes[](2));
    }

    function test_attestBatch_revertsOnMixedServices() public {
        bytes32 other = keccak256("other");
        _createService(other, 2, defaultConfig());
        Attestation[] memory as_ = new Attestation[](2);
        bytes[] memory sigs = new bytes[](2);
        as_[0] = _attestation(0, SERVICE, _none());
        as_[1] = _attestation(1, other, _none());
        sigs[0] = _sign(keeperKeys[0], as_[0]);
        sigs[1] = _sign(keeperKeys[1], as_[1]);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.MixedServices.selector, SERVICE, other));
        registry.attestBatch(as_, sigs);
    }
}
