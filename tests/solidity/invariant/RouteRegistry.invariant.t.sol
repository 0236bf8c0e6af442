// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../utils/Vm.sol";
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
    uint256[] internal keys;
    mapping(address => uint64) internal nonces;

    /// @dev Once the active count reached the floor, the number of times it was seen below it.
    uint256 public floorBreaches;
    bool public floorReached;
    /// @dev Calls where the epoch did not move by exactly one with a set change, or moved without one.
    uint256 public epochViolations;
    /// @dev Calls that changed the set while the service was frozen.
    uint256 public freezeViolations;
    /// @dev Number of route-set changes observed (to show the run did something).
    uint256 public changes;

    constructor(RouteRegistry registry_, bytes32 service_, address guardian_, uint256[] memory keys_) {
        registry = registry_;
        service = service_;
        guardian = guardian_;
        keys = keys_;
    }

    /// One keeper votes on one endpoint.
    function vote(uint256 keeperSeed, uint256 endpointSeed, bool healthy, uint32 latency) external {
        Verdict[] memory v = new Verdict[](1);
        v[0] = Verdict({endpoint: uint16(endpointSeed % 5), healthy: healthy, latencyMs: latency % 500, headLag: 0});
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
            v[0] = Verdict({endpoint: uint16(endpointSeed % 5), healthy: healthy, latencyMs: 20, headLag: 0});
            (as_[j], sigs[j]) = _signed(k, v);
            ++j;
        }
        _observe(abi.encodeCall(RouteRegistry.attestBatch, (as_, sigs)));
    }

    function heartbeat(uint256 keeperSeed) external {
        _observe(_single(keeperSeed % keys.length, new Verdict[](0)));
    }

    function warp(uint16 seconds_) external {
        vm.warp(block.timestamp + seconds_ % 400);
    }

    function freeze(uint16 duration) external {
        vm.prank(guardian);
        registry.freeze(service, duration % 300);
    }

    function unfreeze() external {
        vm.prank(guardian);
        registry.unfreeze(service);
    }

    function _single(uint256 keeper, Verdict[] memory v) internal returns (bytes memory) {
        (Attestation memory a, bytes memory sig) = _signed(keeper, v);
        return abi.encodeCall(RouteRegistry.attest, (a, sig));
    }

    function _signed(uint256 keeper, Verdict[] memory v) internal returns (Attestation memory a, bytes memory sig) {
        (uint32 version,,) = registry.keepers();
        address signer = vm.addr(keys[keeper]);
        a = Attestation({
            service: service,
            epoch: registry.service(service).epoch,
            configVersion: version,
            nonce: ++nonces[signer],
            deadline: uint64(block.timestamp + 60),
            verdicts: v
        });
        (uint8 pv, bytes32 r, bytes32 s) = vm.sign(keys[keeper], registry.attestationDigest(a));
        sig = abi.encodePacked(r, s, pv);
    }

    /// @dev Runs one call and checks the transition it made.
    function _observe(bytes memory call) internal {
        ServiceView memory before = registry.service(service);
        bool frozen = block.timestamp < before.frozenUntil;
        (bool ok,) = address(registry).call(call);
        ServiceView memory after_ = registry.service(service);
        if (!ok) return;

        bool setChanged = before.activeMask != after_.activeMask;
        if (setChanged) ++changes;
        if (setChanged ? after_.epoch != before.epoch + 1 : after_.epoch != before.epoch) ++epochViolations;
        if (frozen && setChanged) ++freezeViolations;
        if (after_.activeCount >= after_.config.floor) floorReached = true;
        else if (floorReached) ++floorBreaches;
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
        one[0] = keeperKeys[3];
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
}
