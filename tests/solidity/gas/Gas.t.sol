// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../utils/Vm.sol";
import {RegistryTest} from "../utils/RegistryTest.sol";
import {Attestation, Verdict} from "../../../contracts/types/Attestation.sol";
import {EndpointStatus, ServiceConfig} from "../../../contracts/types/Service.sol";

/// @notice Gas snapshots of the keeper hot paths (`make gas`, run with `forge test --isolate` so
/// each figure is what a keeper pays: whole transaction, intrinsic gas and calldata included,
/// cold storage). Written to snapshots/GasTest.json; each test also asserts its budget, and
/// `make test` fails when the committed snapshot no longer matches the code.
/// Scenario: 3 keepers, quorum 2 (a strict majority), endpoints 0 and 1 active, 2 and 3 ready standbys. Steady state:
/// every keeper has attested each service before (as heartbeats make it within one TTL), so its
/// per-(keeper, service) slot exists; a keeper's very first attestation of a service pays once
/// for creating that slot (`heartbeat-first-attestation`, no budget).
contract GasTest is RegistryTest {
    bytes32 internal constant BIG = keccak256("eth/rpc-64");

    function setUp() public override {
        super.setUp();
        _bootstrap(SERVICE);
        _createService(BIG, 64, defaultConfig());
        _bootstrap(BIG);
        _submit(2, SERVICE, _none());
        _submit(2, BIG, _none());
        // A later block, as on a real chain: nothing the bootstrap touched is warm.
        vm.warp(vm.getBlockTimestamp() + 12);
    }

    /// One keeper flags one active endpoint; quorum not reached.
    function test_gas_vote() public {
        _measure(0, SERVICE, _one(0, false), "vote", 65_000);
        vm.assertTrue(_isActive(0), "no quorum yet");
    }

    /// The second keeper's flag reaches quorum: demote + promote + RouteSetChanged.
    function test_gas_voteQuorumFailover() public {
        _vote(0, 0, false);
        _measure(1, SERVICE, _one(0, false), "vote-quorum-failover", 115_000);
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "failed over");
    }

    /// Three keepers' attestations in one call: quorum reached, demote + promote.
    function test_gas_batch3Failover() public {
        Attestation[] memory as_ = new Attestation[](3);
        bytes[] memory sigs = new bytes[](3);
        for (uint256 i; i < 3; ++i) {
            as_[i] = _attestation(i, SERVICE, _one(0, false));
            sigs[i] = _sign(keeperKeys[i], as_[i]);
        }
        registry.attestBatch(as_, sigs);
        vm.assertLe(vm.snapshotGasLastCall("batch-3-failover"), 135_000, "batch-3-failover budget");
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "failed over");
    }

    /// No verdict changes: liveness only.
    function test_gas_heartbeat() public {
        _measure(2, SERVICE, _none(), "heartbeat", 55_000);
    }

    /// A keeper's first attestation of a service creates its (keeper, service) slot: once.
    function test_gas_heartbeatFirstAttestation() public {
        bytes32 id = keccak256("eth/rpc-new");
        _createService(id, 4, defaultConfig());
        vm.warp(vm.getBlockTimestamp() + 12);
        _measure(0, id, _none(), "heartbeat-first-attestation", 80_000);
    }

    /// As `vote`, in a service with 64 endpoints.
    function test_gas_vote64Endpoints() public {
        uint256 big = _measure(0, BIG, _one(0, false), "vote-64-endpoints", 65_000);
        uint256 small = _measure(1, SERVICE, _one(0, false), "vote", 65_000);
        vm.assertEq(registry.service(BIG).endpointCount, 64, "64 endpoints");
        vm.assertLe(big, small * 110 / 100, "gas grows with what changed, not with the endpoint count");
    }

    /// F16: the vote that completes a failover, with 2, 16 and 62 ready standbys to choose from
    /// (regions eu-west, us-east, ap-south in turn; the set {0, 1}; endpoint 0 fails). Promotion
    /// reads the packed region and latency lanes, one slot per 32 regions / 8 latencies, not one
    /// slot per standby: 62 standbys cost at most twice 2 standbys.
    function test_audit_F16_failoverGasFlatInReadyStandbys() public {
        uint256 two = _failover(2, 110_000);
        uint256 sixteen = _failover(16, 120_000);
        uint256 sixtyTwo = _failover(62, 2 * two);
        vm.assertLe(sixteen, sixtyTwo, "more standbys never cost less");
        vm.assertLe(sixtyTwo, 2 * two, "failover-62-standbys <= 2 x failover-2-standbys");
    }

    function _failover(uint256 standbys, uint256 budget) internal returns (uint256 gasUsed) {
        bytes32 id = keccak256(abi.encode("failover", standbys));
        _createService(id, standbys + 2, defaultConfig());
        Verdict[] memory all = new Verdict[](standbys + 2);
        for (uint16 i; i < all.length; ++i) {
            all[i] = Verdict({endpoint: i, revision: 0, healthy: true, latencyMs: 10 + i, headLag: 0});
        }
        _submit(1, id, all);
        _submit(2, id, all);
        vm.assertEq(registry.service(id).readyMask, ((uint256(1) << (standbys + 2)) - 1) & ~uint256(3), "ready");
        vm.warp(vm.getBlockTimestamp() + 12);
        _submit(0, id, _one(0, false));
        _submit(1, id, _none());
        string memory name = string.concat("failover-", vm.toString(standbys), "-standbys");
        gasUsed = _measure(1, id, _one(0, false), name, budget);
        vm.assertTrue(registry.endpoint(id, 0).status == EndpointStatus.Demoted, "failed over");
        vm.assertTrue(registry.endpoint(id, 2).status == EndpointStatus.Active, "ap-south #2 (uncovered) promoted");
    }

    function _measure(uint256 keeper, bytes32 id, Verdict[] memory verdicts, string memory name, uint256 budget)
        internal
        returns (uint256 gasUsed)
    {
        Attestation memory a = _attestation(keeper, id, verdicts);
        bytes memory sig = _sign(keeperKeys[keeper], a);
        registry.attest(a, sig);
        gasUsed = vm.snapshotGasLastCall(name);
        vm.assertLe(gasUsed, budget, string.concat(name, " budget"));
    }

    /// F10: rotating the keeper set costs the same with 100 services as with one (it used to loop
    /// over every service ever created, ~4.6k gas each).
    function test_audit_F10_setKeepersGasFlatInServices() public {
        ServiceConfig memory c = defaultConfig();
        for (uint256 i = 2; i < 100; ++i) {
            c.quorum = uint8(2 + i % 2);
            c.minVantages = uint8(i % 3);
            vm.prank(admin);
            registry.createService(keccak256(abi.encode(i)), "s", c);
        }
        vm.assertEq(registry.serviceIds().length, 100, "100 services");
        vm.warp(vm.getBlockTimestamp() + 12);
        bytes32[] memory vantages = new bytes32[](3);
        (vantages[0], vantages[1], vantages[2]) = (bytes32("eu"), bytes32("eu"), bytes32("us"));
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, vantages);
        vm.assertLe(vm.snapshotGasLastCall("setKeepers-100-services"), 100_000, "setKeepers-100-services budget");
        (uint32 version,,) = registry.keepers();
        vm.assertEq(version, 2, "rotated");
    }
}
