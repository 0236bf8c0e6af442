// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../tests/solidity/utils/Vm.sol";
import {RouteRegistry} from "../contracts/RouteRegistry.sol";
import {ServiceConfig} from "../contracts/types/Service.sol";

/// @notice Applies a JSON configuration (keepers, services, endpoints) to a deployed registry, so
/// operators never hand-craft calldata. Safe to re-run: existing services are re-configured and
/// only endpoints beyond those already registered are added. See `config/example.json`.
///
/// Environment:
/// - `GOVERNOR_PRIVATE_KEY` (required): an account holding the governor role.
/// - `LIFELINE_CONFIG` (default `config/example.json`): the configuration file.
/// - `LIFELINE_REGISTRY` (default: the `registry` of `$LIFELINE_DEPLOYMENTS/<chainId>.json`,
///   `LIFELINE_DEPLOYMENTS` defaulting to `deployments`).
///
///     forge script script/Configure.s.sol --rpc-url $RPC_URL --broadcast
contract Configure {
    function run() external {
        uint256 governorKey = vm.envUint("GOVERNOR_PRIVATE_KEY");
        string memory root = vm.projectRoot();
        string memory json = vm.readFile(string.concat(root, "/", vm.envOr("LIFELINE_CONFIG", "config/example.json")));
        RouteRegistry registry = RouteRegistry(_registryAddress(root));

        vm.startBroadcast(governorKey);
        _applyKeepers(registry, json);
        for (uint256 i; vm.keyExistsJson(json, _at(".services", i)); ++i) {
            _applyService(registry, json, _at(".services", i));
        }
        vm.stopBroadcast();
    }

    function _registryAddress(string memory root) internal view returns (address) {
        address fromEnv = vm.envOr("LIFELINE_REGISTRY", address(0));
        if (fromEnv != address(0)) return fromEnv;
        string memory dir = vm.envOr("LIFELINE_DEPLOYMENTS", "deployments");
        string memory deployment = vm.readFile(string.concat(root, "/", dir, "/", vm.toString(block.chainid), ".json"));
        return vm.parseJsonAddress(deployment, ".registry");
    }

    function _applyKeepers(RouteRegistry registry, string memory json) internal {
        uint256 n = _length(json, ".keepers");
        address[] memory signers = new address[](n);
        bytes32[] memory vantages = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            signers[i] = vm.parseJsonAddress(json, string.concat(_at(".keepers", i), ".address"));
            string memory vantage = vm.parseJsonString(json, string.concat(_at(".keepers", i), ".vantage"));
            if (bytes(vantage).length > 32) {
                revert(string.concat(_at(".keepers", i), ".vantage: longer than 32 bytes"));
            }
            vantages[i] = bytes32(bytes(vantage));
        }
        (, address[] memory current, bytes32[] memory currentVantages) = registry.keepers();
        if (keccak256(abi.encode(current, currentVantages)) != keccak256(abi.encode(signers, vantages))) {
            registry.setKeepers(signers, vantages);
        }
    }

    function _applyService(RouteRegistry registry, string memory json, string memory path) internal {
        string memory name = vm.parseJsonString(json, string.concat(path, ".name"));
        bytes32 id = keccak256(bytes(name));
        ServiceConfig memory config = _config(json, string.concat(path, ".config"));
        uint256 existing;
        bytes32[] memory ids = registry.serviceIds();
        bool exists;
        for (uint256 i; i < ids.length; ++i) {
            if (ids[i] == id) exists = true;
        }
        if (exists) {
            registry.configureService(id, config);
            existing = registry.service(id).endpointCount;
        } else {
            registry.createService(id, name, config);
        }

        string memory endpoints = string.concat(path, ".endpoints");
        for (uint256 i = existing; vm.keyExistsJson(json, _at(endpoints, i)); ++i) {
            string memory e = _at(endpoints, i);
            registry.addEndpoint(
                id,
                vm.parseJsonString(json, string.concat(e, ".url")),
                vm.parseJsonString(json, string.concat(e, ".region")),
                vm.parseJsonString(json, string.concat(e, ".provider")),
                vm.parseJsonAddress(json, string.concat(e, ".operator"))
            );
        }
    }

    function _at(string memory array, uint256 i) internal pure returns (string memory) {
        return string.concat(array, "[", vm.toString(i), "]");
    }

    function _length(string memory json, string memory array) internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, _at(array, n))) ++n;
    }

    function _config(string memory json, string memory path) internal pure returns (ServiceConfig memory c) {
        c.chainId = uint64(vm.parseJsonUint(json, string.concat(path, ".chainId")));
        c.targetActive = uint8(vm.parseJsonUint(json, string.concat(path, ".targetActive")));
        c.floor = uint8(vm.parseJsonUint(json, string.concat(path, ".floor")));
        c.minRegions = uint8(vm.parseJsonUint(json, string.concat(path, ".minRegions")));
        c.quorum = uint8(vm.parseJsonUint(json, string.concat(path, ".quorum")));
        c.minVantages = uint8(vm.parseJsonUint(json, string.concat(path, ".minVantages")));
        c.maxDemotions = uint8(vm.parseJsonUint(json, string.concat(path, ".maxDemotions")));
        c.demotionWindow = uint32(vm.parseJsonUint(json, string.concat(path, ".demotionWindow")));
        c.cooldown = uint32(vm.parseJsonUint(json, string.concat(path, ".cooldown")));
        c.attestationTtl = uint32(vm.parseJsonUint(json, string.concat(path, ".attestationTtl")));
    }
}
