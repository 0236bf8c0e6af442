// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm, Vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {ServiceConfig, EndpointStatus, EndpointView, RouteSet, ServiceView} from "../../contracts/types/Service.sol";
import {Bitmap} from "../../contracts/libraries/Bitmap.sol";

/// @notice Issue 13 (registry audit) findings F03, F09, F11, F12 and F16, one or more tests each,
/// named `test_audit_FNN_<what>`. New events, errors and views are addressed by their signature
/// (not through the interface) so that this file also compiles against the registry before the
/// fixes, where each of these tests fails.
contract AuditTest is RegistryTest {
    bytes32 internal constant STATUS_CHANGED = keccak256("EndpointStatusChanged(bytes32,uint16,uint8,uint8)");
    bytes32 internal constant READINESS_CHANGED = keccak256("EndpointReadinessChanged(bytes32,uint16,bool)");
    bytes32 internal constant LATENCY_CHANGED = keccak256("EndpointLatencyChanged(bytes32,uint16,uint32)");
    bytes32 internal constant ROUTE_SET_CHANGED = keccak256("RouteSetChanged(bytes32,uint32,uint16[])");
    bytes32 internal constant DEMOTION_DEFERRED = keccak256("DemotionDeferred(bytes32,uint16,uint8)");
    bytes32 internal constant DEGRADED_CLEARED = keccak256("DegradedCleared(bytes32,uint16)");
    bytes32 internal constant SWAP_DEFERRED = keccak256("RegionSwapDeferred(bytes32,uint8,uint8,uint8)");
    bytes32 internal constant ENDPOINT_UPDATED = keccak256("EndpointUpdated(bytes32,uint16,string,string,address)");

    uint8 internal constant REASON_BLAST_RADIUS = 1;
    uint8 internal constant REASON_FROZEN = 2;

    /* F03: minRegions enforced */

    /// Fixture regions: 0 eu-west, 1 us-east, 2 ap-south, 3 eu-west. Leaves the set {0, 3} (both
    /// eu-west, one region of the two wanted) with ap-south #2 not ready (keepers 0 and 1 still
    /// vouch for it, 2 and 3 flagged it) and us-east #1 demoted.
    function _setInOneRegion() internal {
        _bootstrap(SERVICE); // active {0, 1}, ready {2, 3}
        _vote(2, 2, false);
        _vote(1, 2, false); // #2 loses readiness
        _vote(0, 1, false);
        _vote(1, 1, false); // #1 fails: #3 (eu-west) is the only ready standby
        uint16[] memory ids = _activeIds(SERVICE);
        vm.assertEq(ids.length, 2, "two routes");
        vm.assertEq(ids[0], 0, "eu-west #0");
        vm.assertEq(ids[1], 3, "eu-west #3: one region covered of minRegions 2");
    }

    /// A ready standby of an uncovered region is swapped in for the weakest route of the doubled
    /// region, in the transaction that made it ready.
    function test_audit_F03_readyStandbyOfMissingRegionSwappedIn() public {
        _setInOneRegion();
        uint32 epoch = _epoch();
        vm.recordLogs();
        _vote(2, 2, true); // keeper 2 vouches again: #2 (ap-south) ready
        Vm.Log[] memory logs = vm.getRecordedLogs();

        uint16[] memory ids = _activeIds(SERVICE);
        vm.assertEq(ids.length, 2, "active count kept");
        vm.assertEq(ids[0], 0, "eu-west #0 (latency 10) stays");
        vm.assertEq(ids[1], 2, "ap-south #2 swapped in");
        EndpointView memory out = registry.endpoint(SERVICE, 3);
        vm.assertTrue(out.status == EndpointStatus.Standby, "eu-west #3 (latency 13, the weaker) back to Standby");
        vm.assertTrue(out.ready, "still ready: no quorum judged it unhealthy");
        vm.assertEq(_epoch(), epoch + 1, "one epoch bump");
        vm.assertEq(_count(logs, ROUTE_SET_CHANGED), 1, "one RouteSetChanged");
    }

    /// A swap is one route out, one in: the active count, and so the floor, hold.
    function test_audit_F03_swapRespectsFloorAndActiveCount() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _setInOneRegion();
        _vote(2, 2, true);
        ServiceView memory s = registry.service(SERVICE);
        vm.assertEq(s.activeCount, 2, "never below the floor: a swap is one out, one in");
        vm.assertEq(_activeIds(SERVICE)[1], 2, "swapped");
    }

    /// While frozen, the swap is deferred with an alarm (once), and the first attestation after
    /// the freeze completes it.
    function test_audit_F03_swapDeferredWhileFrozenThenCompleted() public {
        _setInOneRegion();
        vm.prank(guardian);
        registry.freeze(SERVICE, 100);
        vm.recordLogs();
        _vote(2, 2, true);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertEq(_activeIds(SERVICE)[1], 3, "frozen: no swap");
        vm.assertEq(_count(logs, SWAP_DEFERRED), 1, "RegionSwapDeferred fired");
        (uint8 covered, uint8 minRegions, uint8 reason) =
            abi.decode(_find(logs, SWAP_DEFERRED).data, (uint8, uint8, uint8));
        vm.assertEq(covered, 1, "covered regions");
        vm.assertEq(minRegions, 2, "minRegions");
        vm.assertEq(reason, REASON_FROZEN, "reason Frozen");

        vm.recordLogs();
        _submit(0, SERVICE, _none());
        vm.assertEq(_count(vm.getRecordedLogs(), SWAP_DEFERRED), 0, "the alarm fires once per episode");

        vm.warp(vm.getBlockTimestamp() + 101);
        _submit(1, SERVICE, _none());
        vm.assertEq(_activeIds(SERVICE)[1], 2, "completed by the first attestation after the freeze");
    }

    /// A swap counts against the blast radius: with the window used up it is deferred (alarm
    /// reason BlastRadius) and completed by the first attestation after the window rolls over.
    function test_audit_F03_swapWithinBlastRadius() public {
        ServiceConfig memory c = defaultConfig();
        c.maxDemotions = 1;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _setInOneRegion(); // the failover of #1 used the window's one demotion
        vm.recordLogs();
        _vote(2, 2, true);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertEq(_activeIds(SERVICE)[1], 3, "window exhausted: no swap");
        (,, uint8 reason) = abi.decode(_find(logs, SWAP_DEFERRED).data, (uint8, uint8, uint8));
        vm.assertEq(reason, REASON_BLAST_RADIUS, "reason BlastRadius");

        // The keepers keep attesting within the TTL, as they do: #2's backers (0 and 2) stay live,
        // so its readiness still stands when the window rolls over (F06).
        for (uint256 beat; beat < 2; ++beat) {
            vm.warp(vm.getBlockTimestamp() + 200);
            _submit(0, SERVICE, _none());
            _submit(2, SERVICE, _none());
        }
        vm.warp(vm.getBlockTimestamp() + 201);
        _submit(1, SERVICE, _none());
        vm.assertEq(_activeIds(SERVICE)[1], 2, "completed after the window");
    }

    /// Promotion on failover prefers a missing region over a lower-latency standby of a covered one.
    function test_audit_F03_failoverCoversMissingRegionFirst() public {
        _bootstrap(SERVICE); // active {0 eu, 1 us}, ready {2 ap (12 ms), 3 eu (13 ms)}
        _submit(1, SERVICE, _latency(3, 1));
        _submit(2, SERVICE, _latency(3, 1)); // eu-west #3 now the fastest standby
        _vote(0, 1, false);
        _vote(1, 1, false);
        vm.assertTrue(_isActive(2), "ap-south #2 (uncovered) beats the faster eu-west #3");
    }

    /* F09: minVantages validated both ways */

    /// The fixture's keepers span two vantages ("eu", "us"): a service cannot require three.
    function test_audit_F09_configRejectsMinVantagesAboveKeeperVantages() public {
        ServiceConfig memory c = defaultConfig();
        c.quorum = 3;
        c.minVantages = 3;
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSignature("InvalidConfig(string,uint256)", "minVantages", 3));
        registry.createService(keccak256("x"), "x", c);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSignature("InvalidConfig(string,uint256)", "minVantages", 3));
        registry.configureService(SERVICE, c);
        c.minVantages = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c); // two vantages: fine
    }

    /// A rotation to a keeper set with fewer distinct vantages than a service requires is refused
    /// (failover would silently stop); once no service requires them, it is accepted.
    function test_audit_F09_rotationRejectsTooFewVantages() public {
        ServiceConfig memory c = defaultConfig();
        c.minVantages = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSignature("InvalidKeeperSet(string,uint256)", "vantages (below a service minVantages)", 1)
        );
        registry.setKeepers(keeperAddrs, new bytes32[](keeperAddrs.length));

        c.minVantages = 0;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, new bytes32[](keeperAddrs.length));
    }

    /// `keeperSetBounds` says both sides: the set's distinct vantages, and what a new set needs.
    function test_audit_F09_keeperSetBoundsView() public {
        ServiceConfig memory c = defaultConfig();
        c.quorum = 3;
        c.minVantages = 2;
        _createService(keccak256("other"), 2, c);
        (uint8 distinct, uint8 minKeepers, uint8 minVantages) = _bounds();
        vm.assertEq(distinct, 2, "eu and us");
        vm.assertEq(minKeepers, 3, "largest quorum");
        vm.assertEq(minVantages, 2, "largest minVantages");

        c.quorum = 2;
        c.minVantages = 0;
        vm.prank(admin);
        registry.configureService(keccak256("other"), c);
        (, minKeepers, minVantages) = _bounds();
        vm.assertEq(minKeepers, 2, "back to the fixture's quorum");
        vm.assertEq(minVantages, 0, "no service requires spread");
    }

    /* F11: the guardian's freeze cannot be renewed forever */

    function test_audit_F11_freezeCannotBeExtendedOrRenewedBackToBack() public {
        uint256 t0 = vm.getBlockTimestamp();
        vm.startPrank(guardian);
        registry.freeze(SERVICE, 7 days);
        uint256 next = t0 + 14 days; // the freeze's end plus as long as it lasted

        vm.warp(t0 + 6 days);
        vm.expectRevert(abi.encodeWithSignature("FreezeTooSoon(bytes32,uint64)", SERVICE, uint64(next)));
        registry.freeze(SERVICE, 7 days); // no extension

        vm.warp(t0 + 7 days + 1);
        vm.expectRevert(abi.encodeWithSignature("FreezeTooSoon(bytes32,uint64)", SERVICE, uint64(next)));
        registry.freeze(SERVICE, 7 days); // no renewal right after it expired

        vm.warp(next);
        registry.freeze(SERVICE, 1 days);
        vm.stopPrank();
    }

    /// Lifted early, the gap is as long as the freeze actually lasted, at least one hour.
    function test_audit_F11_gapAfterUnfreezeIsAsLongAsTheFreezeLasted() public {
        uint256 t0 = vm.getBlockTimestamp();
        vm.startPrank(guardian);
        registry.freeze(SERVICE, 7 days);
        vm.warp(t0 + 3 days);
        registry.unfreeze(SERVICE);
        vm.expectRevert(abi.encodeWithSignature("FreezeTooSoon(bytes32,uint64)", SERVICE, uint64(t0 + 6 days)));
        registry.freeze(SERVICE, 1);
        vm.warp(t0 + 6 days);
        registry.freeze(SERVICE, 10); // 10 s: the gap is the one-hour minimum
        vm.warp(t0 + 6 days + 10 + 1 hours - 1);
        vm.expectRevert(
            abi.encodeWithSignature("FreezeTooSoon(bytes32,uint64)", SERVICE, uint64(t0 + 6 days + 10 + 1 hours))
        );
        registry.freeze(SERVICE, 1);
        vm.warp(t0 + 6 days + 10 + 1 hours);
        registry.freeze(SERVICE, 1);
        vm.stopPrank();
    }

    /// However the guardian times its freezes, over 60 days a service is frozen at most half the
    /// time (plus the tail of a freeze still running at the end).
    function testFuzz_audit_F11_frozenAtMostHalfTheTime(uint256 seed) public {
        uint256 start = vm.getBlockTimestamp();
        uint256 frozenSeconds;
        uint256 step;
        vm.startPrank(guardian);
        while (vm.getBlockTimestamp() < start + 60 days) {
            uint256 r = uint256(keccak256(abi.encode(seed, step++)));
            uint256 now_ = vm.getBlockTimestamp();
            if (r % 4 == 0 && now_ < registry.service(SERVICE).frozenUntil) registry.unfreeze(SERVICE);
            (bool ok,) = address(registry)
                .call(
                    abi.encodeWithSignature("freeze(bytes32,uint64)", SERVICE, uint64(_bound(r >> 8, 1 hours, 7 days)))
                );
            ok;
            uint256 dt = _bound(r >> 80, 10 minutes, 2 days);
            uint256 until = registry.service(SERVICE).frozenUntil;
            if (until > now_) frozenSeconds += until - now_ < dt ? until - now_ : dt;
            vm.warp(now_ + dt);
        }
        vm.stopPrank();
        vm.assertLe(frozenSeconds, (vm.getBlockTimestamp() - start) / 2 + 7 days, "frozen at most half the time");
    }

    /* F12: every client-visible change has an event */

    function test_audit_F12_degradedClearedEmitsEvent() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE);
        _vote(2, 2, false);
        _vote(1, 2, false);
        _vote(2, 3, false);
        _vote(1, 3, false); // no ready standby left
        _vote(0, 0, false);
        _vote(1, 0, false); // floor: #0 stays, degraded
        vm.assertTrue(registry.endpoint(SERVICE, 0).degraded, "degraded");

        vm.recordLogs();
        _vote(0, 0, true); // the quorum dissolves
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertFalse(registry.endpoint(SERVICE, 0).degraded, "cleared");
        Vm.Log memory log = _find(logs, DEGRADED_CLEARED);
        vm.assertEq(uint256(log.topics[2]), 0, "names the endpoint");
    }

    function test_audit_F12_degradedClearedByRotationEmitsEvent() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE);
        _vote(2, 2, false);
        _vote(1, 2, false);
        _vote(2, 3, false);
        _vote(1, 3, false);
        _vote(0, 0, false);
        _vote(1, 0, false);
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, _vantages()); // voids the votes behind the flag
        _vote(2, 2, true);
        vm.recordLogs();
        _vote(1, 2, true); // #2 ready: the rebalance re-checks the degraded route
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertFalse(registry.endpoint(SERVICE, 0).degraded, "cleared");
        vm.assertEq(_count(logs, DEGRADED_CLEARED), 1, "DegradedCleared");
    }

    function test_audit_F12_latencyChangeEmitsEvent() public {
        _bootstrap(SERVICE);
        vm.recordLogs();
        _submit(0, SERVICE, _latency(0, 42));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory log = _find(logs, LATENCY_CHANGED);
        vm.assertEq(uint256(log.topics[2]), 0, "endpoint");
        vm.assertEq(abi.decode(log.data, (uint32)), 42, "latency");
        vm.assertEq(registry.authorisedRoutes(SERVICE).routes[0].latencyMs, 42, "what clients read");

        vm.recordLogs();
        _submit(1, SERVICE, _latency(0, 42));
        vm.assertEq(_count(vm.getRecordedLogs(), LATENCY_CHANGED), 0, "unchanged: no event");
    }

    function test_audit_F12_retiringReadyStandbyEmitsReadinessLost() public {
        _bootstrap(SERVICE);
        vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "ready");
        vm.recordLogs();
        vm.prank(admin);
        registry.retireEndpoint(SERVICE, 2);
        Vm.Log memory log = _find(vm.getRecordedLogs(), READINESS_CHANGED);
        vm.assertEq(uint256(log.topics[2]), 2, "endpoint");
        vm.assertFalse(abi.decode(log.data, (bool)), "not ready");
    }

    /// An active route's URL changes what clients read: a new epoch and `RouteSetChanged`, so
    /// followers (which act on that event) re-read the set.
    function test_audit_F12_urlChangeOfActiveRouteEmitsRouteSetChanged() public {
        _bootstrap(SERVICE);
        uint32 epoch = _epoch();
        vm.recordLogs();
        vm.prank(admin);
        registry.updateEndpoint(SERVICE, 0, "http://127.0.0.1:9000", "other", address(9));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory log = _find(logs, ROUTE_SET_CHANGED);
        vm.assertEq(uint256(log.topics[2]), epoch + 1, "new epoch");
        RouteSet memory set = registry.authorisedRoutes(SERVICE);
        vm.assertEq(set.epoch, epoch + 1, "epoch");
        vm.assertEq(registry.endpoint(SERVICE, 0).url, "http://127.0.0.1:9000", "new URL");
        vm.assertEq(set.routes[0].id, 1, "the re-pointed route left the set (F01)");
        vm.assertEq(set.routes[1].id, 2, "replaced by ready #2");

        // A standby's URL, or an unchanged URL: no set change.
        vm.recordLogs();
        vm.startPrank(admin);
        registry.updateEndpoint(SERVICE, 3, "http://127.0.0.1:9003", "other", address(9));
        registry.updateEndpoint(SERVICE, 0, "http://127.0.0.1:9000", "third", address(9));
        vm.stopPrank();
        logs = vm.getRecordedLogs();
        vm.assertEq(_count(logs, ROUTE_SET_CHANGED), 0, "no set change");
        vm.assertEq(_count(logs, ENDPOINT_UPDATED), 2, "EndpointUpdated");
        vm.assertEq(_epoch(), epoch + 1, "epoch unchanged");
    }

    /// The full client-visible state (set, epoch, status, readiness, degraded, latency, URL) is
    /// rebuilt from the logs alone after random keeper traffic, freezes and governance updates.
    function testFuzz_audit_F12_stateRebuildsFromLogs(uint256 seed) public {
        Mirror memory m;
        vm.recordLogs();
        for (uint256 step; step < 40; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            uint256 kind = r % 16;
            if (kind < 11) {
                Verdict[] memory v = new Verdict[](1);
                bool healthy = (r >> 8) % 3 != 0;
                uint16 endpoint = uint16((r >> 16) % 4);
                v[0] = Verdict({
                    endpoint: endpoint,
                    revision: registry.endpoint(SERVICE, endpoint).revision,
                    healthy: healthy,
                    latencyMs: uint32((r >> 24) % 4) * 10,
                    headLag: 0
                });
                _submit((r >> 32) % 3, SERVICE, v);
            } else if (kind < 13) {
                vm.warp(vm.getBlockTimestamp() + _bound(r >> 40, 1, 200));
            } else if (kind == 13) {
                vm.prank(guardian);
                (bool ok,) = address(registry).call(abi.encodeWithSignature("freeze(bytes32,uint64)", SERVICE, 50));
                ok;
            } else if (kind == 14) {
                // Refused (EndpointIsActive) for an active route at the floor with no ready standby.
                vm.prank(admin);
                (bool ok,) = address(registry)
                    .call(
                        abi.encodeCall(
                            registry.updateEndpoint,
                            (
                                SERVICE,
                                uint16((r >> 48) % 4),
                                string.concat("http://127.0.0.1:", vm.toString(9000 + (r >> 56) % 3)),
                                "p",
                                address(1)
                            )
                        )
                    );
                // A reverted call's logs never reach a chain (the test's recorder keeps them): drop them.
                if (!ok) vm.getRecordedLogs();
            } else {
                _submit((r >> 32) % 3, SERVICE, _none());
            }
            _replay(m, vm.getRecordedLogs());
            _compare(m);
        }
    }

    /* F16: constant-time lowest set bit, promotion gas flat in the number of standbys */

    /// `lowest` costs the same whichever bit is the lowest (it used to scan bit by bit).
    function test_audit_F16_lowestIsConstantTime() public view {
        uint256 cheap = _gasOfLowest(1);
        uint256 dear = _gasOfLowest(uint256(1) << 63);
        vm.assertEq(dear, cheap, "same cost for bit 0 and bit 63");
        vm.assertEq(_gasOfLowest(uint256(1) << 255), cheap, "and bit 255");
    }

    /* Test hygiene: the clock after vm.warp */

    /// A copy of FuzzTest's random-stream loop in another contract: deadlines are computed from
    /// `vm.getBlockTimestamp()`, so a timestamp read cached from before a warp never expires them.
    function testFuzz_hygiene_randomStreamsAfterWarpsInAnotherContract(uint256 seed) public {
        _bootstrap(SERVICE);
        for (uint256 step; step < 24; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            vm.warp(vm.getBlockTimestamp() + _bound(r >> 8, 0, 90));
            _vote(r % 3, uint16((r >> 4) % 4), (r >> 6) % 3 != 0);
            ServiceView memory s = registry.service(SERVICE);
            vm.assertGe(s.activeCount, 1, "never below the floor once reached");
            vm.assertLe(s.activeCount, 2, "never above target");
        }
    }

    /* HELPERS */

    struct Mirror {
        uint32 epoch;
        uint64 active;
        uint64 ready;
        uint64 degraded;
        uint8[4] status;
        uint32[4] latency;
        string[4] url;
    }

    function _replay(Mirror memory m, Vm.Log[] memory logs) internal view {
        if (m.status[0] == 0) {
            for (uint256 i; i < 4; ++i) {
                m.status[i] = uint8(EndpointStatus.Standby);
                m.url[i] = string.concat("http://127.0.0.1:", vm.toString(8545 + i));
            }
        }
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(registry) || log.topics[1] != SERVICE) continue;
            bytes32 t = log.topics[0];
            if (t == ROUTE_SET_CHANGED) {
                m.epoch = uint32(uint256(log.topics[2]));
                uint16[] memory routes = abi.decode(log.data, (uint16[]));
                m.active = 0;
                for (uint256 j; j < routes.length; ++j) {
                    m.active |= uint64(1) << routes[j];
                }
                continue;
            }
            if (log.topics.length < 3) continue; // service-wide: Frozen, Unfrozen, RegionSwapDeferred
            uint256 e = uint256(log.topics[2]);
            uint64 bit = uint64(1 << e);
            if (t == STATUS_CHANGED) {
                (, uint8 to) = abi.decode(log.data, (uint8, uint8));
                m.status[e] = to;
                // Readiness belongs to standbys, the degraded flag to active routes.
                if (to != uint8(EndpointStatus.Standby)) m.ready &= ~bit;
                if (to != uint8(EndpointStatus.Active)) m.degraded &= ~bit;
            } else if (t == READINESS_CHANGED) {
                if (abi.decode(log.data, (bool))) m.ready |= bit;
                else m.ready &= ~bit;
            } else if (t == DEMOTION_DEFERRED) {
                m.degraded |= bit;
            } else if (t == DEGRADED_CLEARED) {
                m.degraded &= ~bit;
            } else if (t == LATENCY_CHANGED) {
                m.latency[e] = abi.decode(log.data, (uint32));
            } else if (t == ENDPOINT_UPDATED) {
                (m.url[e],,) = abi.decode(log.data, (string, string, address));
            }
        }
    }

    function _compare(Mirror memory m) internal view {
        ServiceView memory s = registry.service(SERVICE);
        vm.assertEq(m.epoch, s.epoch, "epoch from logs");
        vm.assertEq(m.active, s.activeMask, "active set from logs");
        vm.assertEq(m.ready, s.readyMask, "ready standbys from logs");
        vm.assertEq(m.degraded, s.degradedMask, "degraded flags from logs");
        for (uint16 i; i < 4; ++i) {
            EndpointView memory e = registry.endpoint(SERVICE, i);
            vm.assertEq(m.status[i], uint8(e.status), "status from logs");
            vm.assertEq(m.latency[i], e.latencyMs, "latency from logs");
            vm.assertEq(m.url[i], e.url, "url from logs");
        }
    }

    function _latency(uint16 endpoint, uint32 latencyMs) internal pure returns (Verdict[] memory v) {
        v = new Verdict[](1);
        v[0] = Verdict({endpoint: endpoint, revision: 0, healthy: true, latencyMs: latencyMs, headLag: 0});
    }

    function _vantages() internal view returns (bytes32[] memory v) {
        v = new bytes32[](keeperAddrs.length);
        for (uint256 i; i < v.length; ++i) {
            v[i] = i < 2 ? bytes32("eu") : bytes32("us");
        }
    }

    function _bounds() internal view returns (uint8, uint8, uint8) {
        (bool ok, bytes memory ret) = address(registry).staticcall(abi.encodeWithSignature("keeperSetBounds()"));
        vm.assertTrue(ok, "keeperSetBounds() exists");
        return abi.decode(ret, (uint8, uint8, uint8));
    }

    function _count(Vm.Log[] memory logs, bytes32 topic) internal view returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(registry) && logs[i].topics[0] == topic) ++n;
        }
    }

    function _find(Vm.Log[] memory logs, bytes32 topic) internal view returns (Vm.Log memory) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(registry) && logs[i].topics[0] == topic) return logs[i];
        }
        vm.assertTrue(false, "event not emitted");
        return logs[0];
    }

    function _gasOfLowest(uint256 bits) internal view returns (uint256 used) {
        // Through an external call so the optimizer cannot fold the constant argument.
        (bool ok, bytes memory ret) = address(this).staticcall(abi.encodeCall(this.gasOfLowest, (bits)));
        vm.assertTrue(ok, "measured");
        used = abi.decode(ret, (uint256));
    }

    function gasOfLowest(uint256 bits) external view returns (uint256 used) {
        used = gasleft();
        uint256 index = Bitmap.lowest(bits);
        used -= gasleft();
        vm.assertLe(index, 255, "in range");
    }
}
