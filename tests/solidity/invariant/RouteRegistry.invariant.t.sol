// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm, Vm} from "../utils/Vm.sol";
import {RegistryTest} from "../utils/RegistryTest.sol";
import {RouteRegistry} from "../../../contracts/RouteRegistry.sol";
import {Attestation, Verdict} from "../../../contracts/types/Attestation.sol";
import {EndpointStatus, EndpointView, ServiceView} from "../../../contracts/types/Service.sol";

/// @notice Drives the registry with random keeper attestations, batches, time jumps and guardian
/// freezes, and checks after every call what must hold across one transition.
contract RegistryHandler {
    RouteRegistry internal immutable registry;
    bytes32 internal immutable service;
    address internal immutable guardian;
    uint256 internal immutable endpoints;
    uint256[] internal keys;

    /// @dev Once the active count reached the floor, the number of times it was seen below it.
    uint256 public floorBreaches;
    bool public floorReached;
    /// @dev Calls where the epoch did not move by exactly one with a set change, or moved without one.
    uint256 public epochViolations;
    /// @dev Calls that changed the set while the service was frozen.
    uint256 public freezeViolations;
    /// @dev Number of route-set changes observed (to show the run did something).
    uint256 public changes;
    /// @dev Calls after which the set covered fewer regions than ready standbys allowed
    /// (min(minRegions, active count, regions of active routes and ready standbys)) while neither
    /// the freeze nor an exhausted demotion window excused it.
    uint256 public regionViolations;
    /// @dev Calls that left such a shortfall without a `RegionSwapDeferred` alarm in the episode.
    uint256 public regionAlarmsMissing;
    /// @dev Calls after which the set was short of regions while a swap was possible (excused).
    uint256 public regionDeferrals;
    /// @dev Region swaps observed (an active route back to Standby).
    uint256 public swaps;

    // Mirror of the registry's blast-radius window, from the demotions and swaps it emitted.
    uint256 internal windowStart;
    uint256 internal windowDemotions;
    bool internal deferralAnnounced;

    bytes32 internal constant STATUS_CHANGED = keccak256("EndpointStatusChanged(bytes32,uint16,uint8,uint8)");
    bytes32 internal constant SWAP_DEFERRED = keccak256("RegionSwapDeferred(bytes32,uint8,uint8,uint8)");

    constructor(RouteRegistry registry_, bytes32 service_, address guardian_, uint256[] memory keys_) {
        registry = registry_;
        service = service_;
        guardian = guardian_;
        keys = keys_;
        endpoints = registry_.service(service_).endpointCount;
    }

    /// One keeper votes on one endpoint.
    function vote(uint256 keeperSeed, uint256 endpointSeed, bool healthy, uint32 latency) external {
        Verdict[] memory v = new Verdict[](1);
        v[0] = Verdict({
            endpoint: uint16(endpointSeed % endpoints),
            revision: 0,
            healthy: healthy,
            latencyMs: latency % 500,
            headLag: 0
        });
        _observe(_single(keeperSeed % keys.length, v));
    }

    /// Several keepers' attestations about the same endpoint in one call.
    function batch(uint256 subsetSeed, uint256 endpointSeed, bool healthy) external {
        uint256 n;
        for (uint256 k; k < keys.length; ++k) {
            if (subsetSeed & (1 << k) != 0) ++n;
        }
        if (n == 0) return;
        Attestation[] memory as_ = new Attestation[](n);
        bytes[] memory sigs = new bytes[](n);
        uint256 j;
        for (uint256 k; k < keys.length; ++k) {
            if (subsetSeed & (1 << k) == 0) continue;
            Verdict[] memory v = new Verdict[](1);
            v[0] = Verdict({
                endpoint: uint16(endpointSeed % endpoints), revision: 0, healthy: healthy, latencyMs: 20, headLag: 0
            });
            (as_[j], sigs[j]) = _signed(k, v);
            ++j;
        }
        _observe(abi.encodeCall(RouteRegistry.attestBatch, (as_, sigs)));
    }

    function heartbeat(uint256 keeperSeed) external {
        _observe(_single(keeperSeed % keys.length, new Verdict[](0)));
    }

    function warp(uint16 seconds_) external {
        vm.warp(vm.getBlockTimestamp() + seconds_ % 400);
    }

    function freeze(uint16 duration) external {
        vm.prank(guardian);
        // Refused until the gap after the last freeze elapsed (F11): nothing to observe then.
        try registry.freeze(service, duration % 300) {} catch {}
    }

    function unfreeze() external {
        vm.prank(guardian);
        registry.unfreeze(service);
    }

    function _single(uint256 keeper, Verdict[] memory v) internal view returns (bytes memory) {
        (Attestation memory a, bytes memory sig) = _signed(keeper, v);
        return abi.encodeCall(RouteRegistry.attest, (a, sig));
    }

    function _signed(uint256 keeper, Verdict[] memory v)
        internal
        view
        returns (Attestation memory a, bytes memory sig)
    {
        (uint32 version,,) = registry.keepers();
        address signer = vm.addr(keys[keeper]);
        // Continue from the keeper's nonce on chain (the fixture's bootstrap already used some).
        (,, uint64 lastNonce,) = registry.keeperState(signer, service);
        a = Attestation({
            service: service,
            epoch: registry.service(service).epoch,
            configVersion: version,
            nonce: lastNonce + 1,
            deadline: uint64(vm.getBlockTimestamp() + 60),
            verdicts: v
        });
        (uint8 pv, bytes32 r, bytes32 s) = vm.sign(keys[keeper], registry.attestationDigest(a));
        sig = abi.encodePacked(r, s, pv);
    }

    /// @dev Runs one call and checks the transition it made.
    function _observe(bytes memory call) internal {
        ServiceView memory before = registry.service(service);
        bool frozen = vm.getBlockTimestamp() < before.frozenUntil;
        vm.recordLogs();
        (bool ok,) = address(registry).call(call);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        ServiceView memory after_ = registry.service(service);
        if (!ok) return;
        _checkRegions(after_, frozen, logs);

        bool setChanged = before.activeMask != after_.activeMask;
        if (setChanged) ++changes;
        if (setChanged ? after_.epoch != before.epoch + 1 : after_.epoch != before.epoch) ++epochViolations;
        if (frozen && setChanged) ++freezeViolations;
        if (after_.activeCount >= after_.config.floor) floorReached = true;
        else if (floorReached) ++floorBreaches;
    }

    /// @dev F03: after every accepted attestation, the active set covers
    /// min(minRegions, active count, regions among active routes and ready standbys) regions,
    /// unless the freeze or an exhausted demotion window defers the swap, which an alarm announced.
    function _checkRegions(ServiceView memory s, bool frozen, Vm.Log[] memory logs) internal {
        uint256 now_ = vm.getBlockTimestamp();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(registry) || log.topics.length < 2 || log.topics[1] != service) continue;
            if (log.topics[0] == SWAP_DEFERRED) deferralAnnounced = true;
            if (log.topics[0] == STATUS_CHANGED) {
                (uint8 from, uint8 to) = abi.decode(log.data, (uint8, uint8));
                if (from != uint8(EndpointStatus.Active)) continue;
                if (to == uint8(EndpointStatus.Standby)) ++swaps;
                if (now_ >= windowStart + s.config.demotionWindow) (windowStart, windowDemotions) = (now_, 0);
                ++windowDemotions;
            }
        }
        uint256 activeRegions;
        uint256 reachable;
        for (uint16 i; i < s.endpointCount; ++i) {
            uint64 bit = uint64(1) << i;
            if ((s.activeMask | s.readyMask) & bit == 0) continue;
            uint256 region = uint256(1) << _regionIndex(registry.endpoint(service, i).region);
            reachable |= region;
            if (s.activeMask & bit != 0) activeRegions |= region;
        }
        uint256 wanted = _min(_min(s.config.minRegions, s.activeCount), _popcount(reachable));
        if (_popcount(activeRegions) >= wanted) {
            deferralAnnounced = false;
            return;
        }
        ++regionDeferrals;
        bool windowExhausted = now_ < windowStart + s.config.demotionWindow && windowDemotions >= s.config.maxDemotions;
        if (!frozen && !windowExhausted) ++regionViolations;
        if (!deferralAnnounced) ++regionAlarmsMissing;
    }

    /// @dev The fixture's regions, as small integers.
    function _regionIndex(string memory region) internal pure returns (uint256) {
        bytes32 h = keccak256(bytes(region));
        if (h == keccak256("eu-west")) return 0;
        if (h == keccak256("us-east")) return 1;
        if (h == keccak256("ap-south")) return 2;
        return 3;
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    function _popcount(uint256 x) internal pure returns (uint256 n) {
        for (; x != 0; x &= x - 1) {
            ++n;
        }
    }
}

/// @notice Invariants of the registry under random keeper traffic (profile `ci`: 256 runs x depth 64).
contract RouteRegistryInvariantTest is RegistryTest {
    RegistryHandler internal handler;
    RegistryHandler internal minority;
    bytes32 internal constant MINORITY_SERVICE = keccak256("minority/rpc");

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        registry.addEndpoint(SERVICE, "http://127.0.0.1:8600", "ap-south", "self-hosted", address(0x99));
        _bootstrap(SERVICE);

        uint256[] memory all = keeperKeys;
        handler = new RegistryHandler(registry, SERVICE, guardian, all);

        // A second service driven only by one keeper: below quorum, it must never change.
        _createService(MINORITY_SERVICE, 4, defaultConfig());
        _bootstrap(MINORITY_SERVICE);
        uint256[] memory one = new uint256[](1);
        one[0] = keeperKeys[2];
        minority = new RegistryHandler(registry, MINORITY_SERVICE, guardian, one);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](2);
        targets[0] = address(handler);
        targets[1] = address(minority);
    }

    function invariant_activeCountNeverBelowFloorOnceReached() public view {
        vm.assertEq(handler.floorBreaches(), 0, "floor breached");
        vm.assertGe(registry.service(SERVICE).activeCount, 1, "below floor");
    }

    function invariant_noEndpointInTwoStates() public view {
        ServiceView memory s = registry.service(SERVICE);
        vm.assertEq(s.activeMask & s.readyMask, 0, "active and ready");
        vm.assertEq(s.degradedMask & ~s.activeMask, 0, "degraded but not active");
        uint256 active;
        for (uint16 i; i < s.endpointCount; ++i) {
            EndpointView memory e = registry.endpoint(SERVICE, i);
            bool inSet = s.activeMask & (uint64(1) << i) != 0;
            vm.assertEq(inSet, e.status == EndpointStatus.Active, "status and active set agree");
            if (e.ready) vm.assertTrue(e.status == EndpointStatus.Standby, "only standbys are ready");
            if (inSet) ++active;
        }
        vm.assertEq(active, s.activeCount, "active count agrees with the set");
    }

    function invariant_epochMovesWithEveryChangeAndOnlyThen() public view {
        vm.assertEq(handler.epochViolations(), 0, "epoch out of step with the set");
        vm.assertEq(minority.epochViolations(), 0, "epoch out of step with the set (minority)");
    }

    function invariant_minorityNeverChangesTheSet() public view {
        vm.assertEq(minority.changes(), 0, "one keeper changed the set");
        vm.assertEq(registry.service(MINORITY_SERVICE).epoch, 1, "epoch moved");
    }

    function invariant_freezeBlocksKeeperDrivenChanges() public view {
        vm.assertEq(handler.freezeViolations(), 0, "changed while frozen");
    }

    /// F03: region diversity is restored whenever ready standbys allow it (or a rail defers it,
    /// announced by `RegionSwapDeferred`).
    function invariant_audit_F03_minRegionsHeldWhenReadyStandbysAllow() public view {
        vm.assertEq(handler.regionViolations(), 0, "set short of minRegions with no rail deferring the swap");
        vm.assertEq(handler.regionAlarmsMissing(), 0, "deferred region swap without a RegionSwapDeferred alarm");
    }
}

/// @notice F03 under random keeper traffic: a service whose four endpoints sit in two regions
/// (eu-west #0 #2, us-east #1 #3; target 2, minRegions 2), so that failovers often leave both
/// routes in one region while a standby of the other comes and goes (profile `ci`: 256 runs x
/// depth 64).
contract RegionInvariantTest is RegistryTest {
    RegistryHandler internal handler;
    bytes32 internal constant REGIONS = keccak256("regions/rpc");

    function setUp() public override {
        super.setUp();
        vm.startPrank(admin);
        registry.createService(REGIONS, "regions/rpc", defaultConfig());
        for (uint256 i; i < 4; ++i) {
            registry.addEndpoint(
                REGIONS,
                string.concat("http://127.0.0.1:", vm.toString(8700 + i)),
                i % 2 == 0 ? "eu-west" : "us-east",
                "self-hosted",
                address(uint160(0x2000 + i))
            );
        }
        vm.stopPrank();
        _bootstrap(REGIONS);
        handler = new RegistryHandler(registry, REGIONS, guardian, keeperKeys);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// F03: region diversity is restored whenever ready standbys allow it (or a rail defers it,
    /// announced by `RegionSwapDeferred`).
    function invariant_audit_F03_minRegionsHeldWhenReadyStandbysAllow() public view {
        vm.assertEq(handler.regionViolations(), 0, "set short of minRegions with no rail deferring the swap");
        vm.assertEq(handler.regionAlarmsMissing(), 0, "deferred region swap without a RegionSwapDeferred alarm");
    }

    function invariant_activeCountNeverBelowFloorOnceReached() public view {
        vm.assertEq(handler.floorBreaches(), 0, "floor breached");
    }

    function invariant_epochMovesWithEveryChangeAndOnlyThen() public view {
        vm.assertEq(handler.epochViolations(), 0, "epoch out of step with the set");
    }
}

