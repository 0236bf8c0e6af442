// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {EndpointStatus, RouteSet, ServiceView} from "../../contracts/types/Service.sol";

/// @notice Fuzz tests: random keeper subsets, verdicts and timings.
contract FuzzTest is RegistryTest {
    function setUp() public override {
        super.setUp();
        _bootstrap(SERVICE);
    }

    /// The registry's (assembly) struct hashing equals EIP-712 written out plainly.
    function testFuzz_attestationDigest_matchesReference(
        bytes32 service,
        uint32 epoch,
        uint32 configVersion,
        uint64 nonce,
        uint64 deadline,
        uint256 seed,
        uint8 count
    ) public view {
        Verdict[] memory verdicts = new Verdict[](count % 9);
        for (uint256 i; i < verdicts.length; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            verdicts[i] = Verdict({
                endpoint: uint16(r),
                revision: 0,
                healthy: r & (1 << 20) != 0,
                latencyMs: uint32(r >> 32),
                headLag: uint32(r >> 64)
            });
        }
        Attestation memory a = Attestation(service, epoch, configVersion, nonce, deadline, verdicts);
        vm.assertEq(registry.attestationDigest(a), _referenceDigest(a, block.chainid, address(registry)), "digest");
    }

    /// Any subset of keepers flagging an active endpoint demotes it iff the subset is a quorum.
    function testFuzz_attest_demotesIffQuorum(uint8 subset, uint8 target) public {
        uint16 endpoint = uint16(target % 2); // one of the two active endpoints
        uint256 voters;
        for (uint256 k; k < 3; ++k) {
            if (subset & (1 << k) != 0) {
                _vote(k, endpoint, false);
                ++voters;
            }
        }
        bool demoted = _status(endpoint) == EndpointStatus.Demoted;
        vm.assertEq(demoted, voters >= 2, "demoted iff quorum");
        vm.assertEq(_activeIds(SERVICE).length, 2, "a ready standby replaced it, if demoted");
        vm.assertEq(_epoch(), demoted ? 2 : 1, "epoch moves iff the set moved");
    }

    /// Random verdict streams from random keepers at random times keep the set within bounds.
    function testFuzz_attest_randomStreamsKeepSetWithinBounds(uint256 seed) public {
        uint32 lastEpoch = _epoch();
        for (uint256 step; step < 24; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            vm.warp(vm.getBlockTimestamp() + _bound(r >> 8, 0, 90));
            _vote(r % 3, uint16((r >> 4) % 4), (r >> 6) % 3 != 0);

            ServiceView memory s = registry.service(SERVICE);
            vm.assertGe(s.activeCount, 1, "never below the floor once reached");
            vm.assertLe(s.activeCount, 2, "never above target");
            vm.assertGe(s.epoch, lastEpoch, "epoch never goes back");
            vm.assertEq(s.activeMask & s.readyMask, 0, "an active endpoint is not also a ready standby");
            lastEpoch = s.epoch;
        }
    }

    /// A demoted endpoint never returns before its cooldown, whatever the votes.
    function testFuzz_attest_cooldownHolds(uint32 wait) public {
        _vote(0, 0, false);
        _vote(1, 0, false);
        uint256 until = registry.endpoint(SERVICE, 0).cooldownUntil;
        vm.warp(vm.getBlockTimestamp() + _bound(wait, 0, 120));
        _vote(1, 0, true);
        _vote(2, 0, true);
        bool back = registry.endpoint(SERVICE, 0).status != EndpointStatus.Demoted;
        vm.assertEq(back, vm.getBlockTimestamp() >= until, "returns iff the cooldown elapsed");
    }
}
