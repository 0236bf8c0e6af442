// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../tests/solidity/utils/Vm.sol";
import {RouteRegistry} from "../contracts/RouteRegistry.sol";

/// @notice Deploys the RouteRegistry and records it in `deployments/<chainId>.json`.
///
/// Environment (the key is read from the environment, never from the command line):
/// - `DEPLOYER_PRIVATE_KEY` (required): the broadcasting account.
/// - `LIFELINE_ADMIN` (default: the deployer): admin and governor.
/// - `LIFELINE_GUARDIAN` (default: the admin): may freeze keeper-driven changes.
/// - `LIFELINE_DEPLOYMENTS` (default `deployments`): where `<chainId>.json` is written.
///
/// `block` in the file is the chain head when the deployment was sent: the registry's first
/// block comes after it, so it is a safe starting point for log scans.
///
///     forge script script/Deploy.s.sol --rpc-url $RPC_URL --broadcast
contract Deploy {
    function run() external returns (RouteRegistry registry) {
        uint256 deployerKey = vm.envUint("DEPLOYER_PRIVATE_KEY");
        address deployer = vm.addr(deployerKey);
        address admin = vm.envOr("LIFELINE_ADMIN", deployer);
        address guardian = vm.envOr("LIFELINE_GUARDIAN", admin);

        vm.startBroadcast(deployerKey);
        registry = new RouteRegistry(admin, guardian);
        vm.stopBroadcast();

        string memory obj = "deployment";
        vm.serializeAddress(obj, "admin", admin);
        vm.serializeAddress(obj, "guardian", guardian);
        vm.serializeUint(obj, "chainId", block.chainid);
        vm.serializeUint(obj, "block", vm.getBlockNumber());
        string memory json = vm.serializeAddress(obj, "registry", address(registry));
        string memory dir = string.concat(vm.projectRoot(), "/", vm.envOr("LIFELINE_DEPLOYMENTS", "deployments"));
        vm.createDir(dir, true);
        vm.writeJson(json, string.concat(dir, "/", vm.toString(block.chainid), ".json"));
    }
}
