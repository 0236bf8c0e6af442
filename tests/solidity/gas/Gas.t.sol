// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../utils/Vm.sol";
import {RegistryTest} from "../utils/RegistryTest.sol";
import {Attestation, Verdict} from "../../../contracts/types/Attestation.sol";
import {EndpointStatus} from "../../../contracts/types/Service.sol";

/// @notice Gas snapshots of the keeper hot paths (`make gas`, run with `forge test --isolate` so
/// each figure is what a keeper pays: whole transaction, intrinsic gas and calldata included,
/// cold storage). Written to snapshots/GasTest.json; each test also asserts its budget, and
/// `make test` fails when the committed snapshot no longer matches the code.
/// Scenario: 4 keepers, quorum 2, endpoints 0 and 1 active, 2 and 3 ready standbys.
contract GasTest is RegistryTest {
    bytes32 internal constant BIG = keccak256("eth/rpc-64");

    function setUp() public override {
        super.setUp();
        _bootstrap(SERVICE);
        _createService(BIG, 64, defaultConfig());
        _bootstrap(BIG);
        // A later block, as on a real chain: nothing the bootstrap touched is warm.
        vm.warp(block.timestamp + 12);
    }

    /// One keeper flags one active endpoint; quorum not reached.
    function test_gas_vote() public {
        _measure(0, SERVICE, _one(0, false), "vote", 60_000);
        vm.assertTrue(_isActive(0), "no quorum yet");
    }

    /// The second keeper's flag reaches quorum: demote + promote + RouteSetChanged.
    function test_gas_voteQuorumFailover() public {
        _vote(0, 0, false);
        _measure(1, SERVICE, _one(0, false), "vote-quorum-failover", 110_000);
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
        vm.assertLe(vm.snapshotGasLastCall("batch-3-failover"), 120_000, "batch-3-failover budget");
        vm.assertTrue(_status(0) == EndpointStatus.Demoted, "failed over");
    }

    /// No verdict changes: liveness only.
    function test_gas_heartbeat() public {
        _measure(2, SERVICE, _none(), "heartbeat", 50_000);
    }

    /// As `vote`, in a service with 64 endpoints.
    function test_gas_vote64Endpoints() public {
        uint256 big = _measure(0, BIG, _one(0, false), "vote-64-endpoints", 60_000);
        uint256 small = _measure(1, SERVICE, _one(0, false), "vote", 60_000);
        vm.assertEq(registry.service(BIG).endpointCount, 64, "64 endpoints");
        vm.assertLe(big, small * 110 / 100, "gas grows with what changed, not with the endpoint count");
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
}
