// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./Vm.sol";
import {RouteRegistry} from "../../../contracts/RouteRegistry.sol";
import {IRouteRegistry} from "../../../contracts/interfaces/IRouteRegistry.sol";
import {Attestation, Verdict} from "../../../contracts/types/Attestation.sol";
import {ServiceConfig, EndpointStatus, EndpointView, RouteSet} from "../../../contracts/types/Service.sol";

/// @notice Shared fixture: a registry, three keepers (0 and 1 at vantage "eu", 2 at "us"), one
/// service "eth/rpc" with four endpoints in three regions (quorum 2 of the keepers, a strict
/// majority of three, target 2 active, floor 1), plus signing helpers. `_addKeeper` grows the set
/// (a fourth keeper raises the effective quorum to 3, issue 13 F04).
abstract contract RegistryTest {
    RouteRegistry internal registry;

    address internal admin = address(0xAD);
    address internal guardian = address(0x6A);
    uint256[] internal keeperKeys;
    address[] internal keeperAddrs;
    bytes32 internal constant SERVICE = keccak256("eth/rpc");
    uint64 internal constant CHAIN_ID = 31337;

    mapping(address keeper => mapping(bytes32 serviceId => uint64)) internal nextNonce;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        registry = new RouteRegistry(admin, admin, guardian, 0, 0);
        bytes32[] memory vantages = new bytes32[](3);
        for (uint256 i; i < 3; ++i) {
            uint256 key = 0xA11CE + i;
            keeperKeys.push(key);
            keeperAddrs.push(vm.addr(key));
            vantages[i] = i < 2 ? bytes32("eu") : bytes32("us");
        }
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, vantages);
        _createService(SERVICE, 4, defaultConfig());
    }

    /* FIXTURE HELPERS */

    /// @dev Adds a keeper (key `0xA11CE + index`, vantage "us") to the set: the set is rotated.
    function _addKeeper() internal returns (uint256 index) {
        index = keeperKeys.length;
        uint256 key = 0xA11CE + index;
        keeperKeys.push(key);
        keeperAddrs.push(vm.addr(key));
        bytes32[] memory vantages = new bytes32[](keeperAddrs.length);
        for (uint256 i; i < vantages.length; ++i) {
            vantages[i] = i < 2 ? bytes32("eu") : bytes32("us");
        }
        vm.prank(admin);
        registry.setKeepers(keeperAddrs, vantages);
    }

    function defaultConfig() internal pure returns (ServiceConfig memory) {
        return ServiceConfig({
            chainId: CHAIN_ID,
            targetActive: 2,
            floor: 1,
            minRegions: 2,
            quorum: 2,
            minVantages: 0,
            maxDemotions: 3,
            demotionWindow: 600,
            cooldown: 60,
            attestationTtl: 300
        });
    }

    function _createService(bytes32 id, uint256 endpoints, ServiceConfig memory config) internal {
        vm.prank(admin);
        registry.createService(id, "eth/rpc", config);
        string[3] memory regions = ["eu-west", "us-east", "ap-south"];
        for (uint256 i; i < endpoints; ++i) {
            vm.prank(admin);
            registry.addEndpoint(
                id,
                string.concat("http://127.0.0.1:", vm.toString(8545 + i)),
                regions[i % 3],
                "self-hosted",
                address(uint160(0x1000 + i))
            );
        }
    }

    /// @dev Brings endpoints 0 and 1 into the active set and makes 2 and 3 ready standbys, via
    /// two keepers' healthy votes (the only way an endpoint can start serving).
    function _bootstrap(bytes32 id) internal {
        Verdict[] memory all = new Verdict[](4);
        for (uint16 i; i < 4; ++i) {
            all[i] = Verdict({endpoint: i, revision: 0, healthy: true, latencyMs: 10 + i, headLag: 0});
        }
        _submit(0, id, all);
        _submit(1, id, all);
    }

    /* ATTESTATION HELPERS */

    function _attestation(uint256 keeper, bytes32 id, Verdict[] memory verdicts)
        internal
        returns (Attestation memory a)
    {
        (uint32 version,,) = registry.keepers();
        address signer = keeperAddrs[keeper];
        a = Attestation({
            service: id,
            epoch: registry.service(id).epoch,
            configVersion: version,
            nonce: ++nextNonce[signer][id],
            deadline: uint64(vm.getBlockTimestamp() + 60),
            verdicts: verdicts
        });
    }

    function _sign(uint256 key, Attestation memory a) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, registry.attestationDigest(a));
        return abi.encodePacked(r, s, v);
    }

    function _submit(uint256 keeper, bytes32 id, Verdict[] memory verdicts) internal {
        Attestation memory a = _attestation(keeper, id, verdicts);
        registry.attest(a, _sign(keeperKeys[keeper], a));
    }

    function _vote(uint256 keeper, uint16 endpoint, bool healthy) internal {
        _submit(keeper, SERVICE, _one(endpoint, healthy));
    }

    function _one(uint16 endpoint, bool healthy) internal pure returns (Verdict[] memory v) {
        v = new Verdict[](1);
        v[0] = Verdict({endpoint: endpoint, revision: 0, healthy: healthy, latencyMs: 25, headLag: healthy ? 0 : 40});
    }

    function _none() internal pure returns (Verdict[] memory) {
        return new Verdict[](0);
    }

    /// @dev EIP-712 written out plainly (no assembly): the reference the registry's hashing is
    /// checked against, and a way to build digests for other domains.
    function _referenceDigest(Attestation memory a, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        bytes32[] memory verdictHashes = new bytes32[](a.verdicts.length);
        for (uint256 i; i < verdictHashes.length; ++i) {
            Verdict memory v = a.verdicts[i];
            verdictHashes[i] = keccak256(
                abi.encode(
                    keccak256("Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,uint32 headLag)"),
                    v.endpoint,
                    v.revision,
                    v.healthy,
                    v.latencyMs,
                    v.headLag
                )
            );
        }
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Attestation(bytes32 service,uint32 epoch,uint32 configVersion,uint64 nonce,uint64 deadline,Verdict[] verdicts)Verdict(uint16 endpoint,uint32 revision,bool healthy,uint32 latencyMs,uint32 headLag)"
                ),
                a.service,
                a.epoch,
                a.configVersion,
                a.nonce,
                a.deadline,
                keccak256(abi.encodePacked(verdictHashes))
            )
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Lifeline RouteRegistry"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /* READ HELPERS */

    function _status(uint16 endpoint) internal view returns (EndpointStatus) {
        return registry.endpoint(SERVICE, endpoint).status;
    }

    function _activeIds(bytes32 id) internal view returns (uint16[] memory ids) {
        RouteSet memory set = registry.authorisedRoutes(id);
        ids = new uint16[](set.routes.length);
        for (uint256 i; i < ids.length; ++i) {
            ids[i] = set.routes[i].id;
        }
    }

    function _isActive(uint16 endpoint) internal view returns (bool) {
        return _status(endpoint) == EndpointStatus.Active;
    }

    function _epoch() internal view returns (uint32) {
        return registry.service(SERVICE).epoch;
    }

    function _bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        return min + (x % (max - min + 1));
    }
}
