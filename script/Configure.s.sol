// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../tests/solidity/utils/Vm.sol";
import {RouteRegistry} from "../contracts/RouteRegistry.sol";
import {ServiceConfig} from "../contracts/types/Service.sol";
import {EndpointUrl} from "../contracts/libraries/EndpointUrl.sol";
import {Deployments, svm} from "./Deploy.s.sol";

/// @notice Applies a JSON configuration (keepers, services, endpoints) to a deployed registry, so
/// operators never hand-craft calldata. Safe to re-run: existing services are re-configured and
/// only endpoints beyond those already registered are added. See `config/example.json`. Numbers
/// that do not fit their on-chain type are rejected, naming the field and the value.
///
/// Environment:
/// - `GOVERNOR_PRIVATE_KEY` (required): an account holding the governor role.
/// - `LIFELINE_CONFIG` (default `config/example.json`): the configuration file, relative to the
///   project root and inside a directory forge may read (`fs_permissions` in foundry.toml:
///   `config/`, `deployments/`, `target/devnet/`).
/// - `LIFELINE_CONFIGURE_REGISTRY` (optional): the registry to configure. Without it, the
///   registry of `$LIFELINE_DEPLOYMENTS/<chainId>.json` (`LIFELINE_DEPLOYMENTS` defaulting to
///   `deployments`), after recording a pending deployment that is on chain (see
///   {Deployments}). `LIFELINE_REGISTRY` (the `lifeline` command's variable) is never read
///   here; the script prints which registry it configures and where that came from.
///
///     forge script script/Configure.s.sol --rpc-url $RPC_URL --broadcast
contract Configure {
    function run() external {
        uint256 governorKey = vm.envUint("GOVERNOR_PRIVATE_KEY");
        string memory root = vm.projectRoot();
        string memory json = vm.readFile(string.concat(root, "/", vm.envOr("LIFELINE_CONFIG", "config/example.json")));
        RouteRegistry registry = RouteRegistry(_registryAddress());

        vm.startBroadcast(governorKey);
        if (!_applyKeepers(registry, json)) {
            // Services are validated against the keeper set in force (quorum, vantages).
            Deployments.log("services not applied: the keeper set of the configuration is not active yet");
            vm.stopBroadcast();
            return;
        }
        for (uint256 i; vm.keyExistsJson(json, _at(".services", i)); ++i) {
            _applyService(registry, json, _at(".services", i));
        }
        vm.stopBroadcast();
    }

    /// The registry to configure: `LIFELINE_CONFIGURE_REGISTRY`, else the deployment record.
    /// Printed with its source; reverts when it has no code on this chain.
    function _registryAddress() internal returns (address registry) {
        string memory source;
        registry = vm.envOr("LIFELINE_CONFIGURE_REGISTRY", address(0));
        if (registry != address(0)) {
            source = "LIFELINE_CONFIGURE_REGISTRY";
        } else {
            string memory dir = Deployments.dir();
            registry = Deployments.recorded(dir);
            source = Deployments.recordPath(dir);
        }
        Deployments.log(string.concat("configuring registry ", svm.toString(registry), " (from ", source, ")"));
        address cliRegistry = vm.envOr("LIFELINE_REGISTRY", address(0));
        if (cliRegistry != address(0) && cliRegistry != registry) {
            Deployments.log(
                string.concat(
                    "note: LIFELINE_REGISTRY=",
                    svm.toString(cliRegistry),
                    " is ignored here (it is the lifeline command's); set LIFELINE_CONFIGURE_REGISTRY to configure it"
                )
            );
        }
        if (registry.code.length == 0) {
            revert(
                string.concat(
                    "no contract at registry ",
                    svm.toString(registry),
                    " (from ",
                    source,
                    ") on chain ",
                    vm.toString(block.chainid)
                )
            );
        }
    }

    /// Proposes the configuration's keeper set if it is neither in force nor proposed, and
    /// activates a proposal of it whose delay elapsed (at once with a delay of 0, on a devnet).
    /// True when that set is in force.
    function _applyKeepers(RouteRegistry registry, string memory json) internal returns (bool active) {
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
        bytes32 wanted = keccak256(abi.encode(signers, vantages));
        (, address[] memory current, bytes32[] memory currentVantages) = registry.keepers();
        if (keccak256(abi.encode(current, currentVantages)) == wanted) return true;
        (address[] memory pending, bytes32[] memory pendingVantages, uint64 activatesAt) = registry.pendingKeepers();
        if (activatesAt == 0 || keccak256(abi.encode(pending, pendingVantages)) != wanted) {
            registry.setKeepers(signers, vantages);
            if (registry.keeperSetDelay() == 0) return true;
            activatesAt = uint64(block.timestamp) + registry.keeperSetDelay();
        }
        if (block.timestamp >= activatesAt) {
            registry.activateKeepers();
            return true;
        }
        Deployments.log(
            string.concat(
                "keeper set proposed; it can be activated from unix time ",
                vm.toString(uint256(activatesAt)),
                ": run Configure.s.sol again then (the guardian or the admin may cancel it before)"
            )
        );
        return false;
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
            string memory url = vm.parseJsonString(json, string.concat(e, ".url"));
            // The registry's own rule, checked before anything is sent (names the entry).
            _checkUrl(string.concat(e, ".url"), url);
            registry.addEndpoint(
                id,
                url,
                vm.parseJsonString(json, string.concat(e, ".region")),
                vm.parseJsonString(json, string.concat(e, ".provider")),
                vm.parseJsonAddress(json, string.concat(e, ".operator"))
            );
        }
    }

    /// @dev Reverts naming `key` when `url` breaks the registry's URL rule (`EndpointUrl`).
    function _checkUrl(string memory key, string memory url) internal pure {
        string memory why = EndpointUrl.problem(url);
        if (bytes(why).length != 0) {
            revert(string.concat(key, " = ", url, ": refused by the registry's URL rule (", why, ")"));
        }
    }

    function _at(string memory array, uint256 i) internal pure returns (string memory) {
        return string.concat(array, "[", vm.toString(i), "]");
    }

    function _length(string memory json, string memory array) internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, _at(array, n))) ++n;
    }

    function _config(string memory json, string memory path) internal pure returns (ServiceConfig memory c) {
        c.chainId = uint64(_uint(json, path, ".chainId", type(uint64).max));
        c.targetActive = uint8(_uint(json, path, ".targetActive", type(uint8).max));
        c.floor = uint8(_uint(json, path, ".floor", type(uint8).max));
        c.minRegions = uint8(_uint(json, path, ".minRegions", type(uint8).max));
        c.quorum = uint8(_uint(json, path, ".quorum", type(uint8).max));
        c.minVantages = uint8(_uint(json, path, ".minVantages", type(uint8).max));
        c.maxDemotions = uint8(_uint(json, path, ".maxDemotions", type(uint8).max));
        c.demotionWindow = uint32(_uint(json, path, ".demotionWindow", type(uint32).max));
        c.cooldown = uint32(_uint(json, path, ".cooldown", type(uint32).max));
        c.attestationTtl = uint32(_uint(json, path, ".attestationTtl", type(uint32).max));
    }

    /// The number at `path` + `field`, checked against the largest value its on-chain type holds
    /// (never truncated: `quorum: 258` would otherwise be stored as 2).
    function _uint(string memory json, string memory path, string memory field, uint256 max)
        internal
        pure
        returns (uint256 value)
    {
        string memory key = string.concat(path, field);
        value = vm.parseJsonUint(json, key);
        if (value > max) {
            revert(string.concat(key, " = ", vm.toString(value), " is out of range (at most ", vm.toString(max), ")"));
        }
    }
}
