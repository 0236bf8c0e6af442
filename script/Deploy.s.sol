// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "../tests/solidity/utils/Vm.sol";
import {RouteRegistry} from "../contracts/RouteRegistry.sol";

/// @dev Cheatcodes the scripts use beyond `tests/solidity/utils/Vm.sol` (Foundry 1.7 ABI).
interface ScriptVm {
    function exists(string calldata path) external view returns (bool);
    function writeFile(string calldata path, string calldata data) external;
    function removeFile(string calldata path) external;
    function toString(address value) external pure returns (string memory);
}

ScriptVm constant svm = ScriptVm(address(vm));

/// @notice Deployment records: `<dir>/<chainId>.json` names a registry that has code on chain.
///
/// `forge script` runs a script before it broadcasts anything, so a script cannot know whether
/// its own deployment landed. Deploy.s.sol therefore writes `<chainId>.pending.json`; the record
/// `<chainId>.json` is written from it only by a later run that sees the registry's code on
/// chain (`Deploy.s.sol --sig 'record()'`, or Configure.s.sol). A failed or dry-run broadcast
/// never replaces the record.
library Deployments {
    /// Where the records live by default: `$LIFELINE_DEPLOYMENTS` (default `deployments`),
    /// relative to the project root.
    function dir() internal view returns (string memory) {
        return vm.envOr("LIFELINE_DEPLOYMENTS", string("deployments"));
    }

    /// The record of this chain in `dir_`, relative to the project root.
    function recordPath(string memory dir_) internal view returns (string memory) {
        return string.concat(dir_, "/", vm.toString(block.chainid), ".json");
    }

    /// The deployment of this chain sent but not yet seen on chain, relative to the project root.
    function pendingPath(string memory dir_) internal view returns (string memory) {
        return string.concat(dir_, "/", vm.toString(block.chainid), ".pending.json");
    }

    /// Absolute path of a project-relative one.
    function abs(string memory path) internal view returns (string memory) {
        return string.concat(vm.projectRoot(), "/", path);
    }

    /// If a pending deployment exists in `dir_`: records it when its registry has code on chain,
    /// discards it otherwise (its broadcast failed or never happened). True if one was recorded.
    function settlePending(string memory dir_) internal returns (bool) {
        string memory pending = abs(pendingPath(dir_));
        if (!svm.exists(pending)) return false;
        string memory json = vm.readFile(pending);
        address deployed = vm.parseJsonAddress(json, ".registry");
        svm.removeFile(pending);
        if (deployed.code.length == 0) {
            log(
                string.concat(
                    "discarded ",
                    pendingPath(dir_),
                    ": no code at ",
                    svm.toString(deployed),
                    " on chain ",
                    vm.toString(block.chainid),
                    " (the deployment was not broadcast, or failed); ",
                    recordPath(dir_),
                    " is unchanged"
                )
            );
            return false;
        }
        svm.writeFile(abs(recordPath(dir_)), json);
        log(string.concat("recorded registry ", svm.toString(deployed), " in ", recordPath(dir_)));
        return true;
    }

    /// The registry recorded in `dir_` (after settling a pending deployment); reverts naming the
    /// file when there is none.
    function recorded(string memory dir_) internal returns (address) {
        settlePending(dir_);
        string memory record = abs(recordPath(dir_));
        if (!svm.exists(record)) {
            revert(string.concat("no deployment record ", recordPath(dir_), ": run script/Deploy.s.sol first"));
        }
        return vm.parseJsonAddress(vm.readFile(record), ".registry");
    }

    /// Prints a line in forge's "Logs" section (the console cheatcode address).
    function log(string memory line) internal view {
        (bool ok,) =
            address(0x000000000000000000636F6e736F6c652e6c6f67).staticcall(abi.encodeWithSignature("log(string)", line));
        ok;
    }
}

/// @notice Deploys the RouteRegistry and records it in `deployments/<chainId>.json` once it is on
/// chain (see {Deployments}).
///
/// Environment (the key is read from the environment, never from the command line):
/// - `DEPLOYER_PRIVATE_KEY` (required): the broadcasting account.
/// - `LIFELINE_ADMIN` (default: the deployer): the admin (grants and revokes the other roles;
///   handed over in two steps after `LIFELINE_ADMIN_DELAY`).
/// - `LIFELINE_GOVERNOR` (default: `LIFELINE_ADMIN`): services, endpoints, keeper-set proposals.
/// - `LIFELINE_GUARDIAN` (default: `LIFELINE_ADMIN`): may freeze keeper-driven changes and cancel
///   a keeper-set proposal.
///   Outside chain 31337 the script warns when any two of the three coincide: the keeper-set
///   delay and the guardian's veto mean little if one key holds every role.
/// - `LIFELINE_ADMIN_DELAY` (seconds; default 0 on chain 31337, 2 days elsewhere): how long a new
///   admin waits before accepting the role.
/// - `LIFELINE_KEEPER_SET_DELAY` (seconds; default 0 on chain 31337, 2 days elsewhere): how long
///   a proposed keeper set waits before it can be activated (0 is refused outside chain 31337).
/// - `LIFELINE_DEPLOYMENTS` (default `deployments`): where the records are written.
///
/// `block` in the record is the chain head when the deployment was sent: the registry's first
/// block comes after it, so it is a safe starting point for log scans.
///
///     forge script script/Deploy.s.sol --rpc-url $RPC_URL --broadcast   # -> <chainId>.pending.json
///     forge script script/Deploy.s.sol --rpc-url $RPC_URL --sig 'record()'  # -> <chainId>.json
///
/// (Configure.s.sol records a pending deployment by itself, so the second line is only needed
/// when no configuration follows.)
contract Deploy {
    function run() external returns (RouteRegistry registry) {
        uint256 deployerKey = vm.envUint("DEPLOYER_PRIVATE_KEY");
        address deployer = vm.addr(deployerKey);
        address admin = vm.envOr("LIFELINE_ADMIN", deployer);
        address governor = vm.envOr("LIFELINE_GOVERNOR", admin);
        address guardian = vm.envOr("LIFELINE_GUARDIAN", admin);
        uint256 adminDelay = vm.envOr("LIFELINE_ADMIN_DELAY", block.chainid == 31337 ? uint256(0) : 2 days);
        if (adminDelay > type(uint48).max) {
            revert(string.concat("LIFELINE_ADMIN_DELAY too large: ", vm.toString(adminDelay)));
        }
        if (block.chainid != 31337) {
            if (admin == governor) {
                Deployments.log("warning: LIFELINE_ADMIN and LIFELINE_GOVERNOR are the same address");
            }
            if (admin == guardian) {
                Deployments.log("warning: LIFELINE_ADMIN and LIFELINE_GUARDIAN are the same address");
            }
            if (governor == guardian) {
                Deployments.log("warning: LIFELINE_GOVERNOR and LIFELINE_GUARDIAN are the same address");
            }
        }
        uint256 delay = vm.envOr("LIFELINE_KEEPER_SET_DELAY", block.chainid == 31337 ? uint256(0) : 2 days);
        if (delay > type(uint32).max) {
            revert(string.concat("LIFELINE_KEEPER_SET_DELAY too large: ", vm.toString(delay)));
        }

        vm.startBroadcast(deployerKey);
        registry = new RouteRegistry(admin, governor, guardian, uint32(delay), uint48(adminDelay));
        vm.stopBroadcast();

        string memory obj = "deployment";
        vm.serializeAddress(obj, "admin", admin);
        vm.serializeAddress(obj, "governor", governor);
        vm.serializeAddress(obj, "guardian", guardian);
        vm.serializeUint(obj, "keeperSetDelay", delay);
        vm.serializeUint(obj, "chainId", block.chainid);
        vm.serializeUint(obj, "block", vm.getBlockNumber());
        string memory json = vm.serializeAddress(obj, "registry", address(registry));
        string memory dir = Deployments.dir();
        vm.createDir(Deployments.abs(dir), true);
        vm.writeJson(json, Deployments.abs(Deployments.pendingPath(dir)));
        Deployments.log(
            string.concat(
                "registry ",
                svm.toString(address(registry)),
                " (admin ",
                svm.toString(admin),
                ", governor ",
                svm.toString(governor),
                ", guardian ",
                svm.toString(guardian),
                ") written to ",
                Deployments.pendingPath(dir),
                "; recorded in ",
                Deployments.recordPath(dir),
                " once it has code on chain (by Configure.s.sol, or --sig 'record()')"
            )
        );
    }

    /// Records the pending deployment if its registry has code on chain; reverts otherwise.
    function record() external {
        string memory dir = Deployments.dir();
        if (!Deployments.settlePending(dir)) {
            revert(
                string.concat(
                    "nothing recorded: no pending deployment with code on chain; ",
                    Deployments.recordPath(dir),
                    " is unchanged"
                )
            );
        }
    }
}
