// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {Configure} from "../../script/Configure.s.sol";
import {Deployments, svm} from "../../script/Deploy.s.sol";
import {ServiceConfig} from "../../contracts/types/Service.sol";

/// @dev Exposes Configure.s.sol's config parsing.
contract ConfigureHarness is Configure {
    function config(string memory json) external pure returns (ServiceConfig memory) {
        return _config(json, ".config");
    }

    function url(string memory key, string memory value) external pure {
        _checkUrl(key, value);
    }
}

/// @notice The scripts' input checks, without a chain: Configure.s.sol never truncates a number
/// into its on-chain type, and a deployment is recorded only once its registry has code.
/// (tests/e2e runs both scripts with `forge script --broadcast` against anvil.)
contract ScriptsTest {
    ConfigureHarness internal configure = new ConfigureHarness();

    string[10] internal fields = [
        "chainId",
        "targetActive",
        "floor",
        "minRegions",
        "quorum",
        "minVantages",
        "maxDemotions",
        "demotionWindow",
        "cooldown",
        "attestationTtl"
    ];

    /// A service config whose `field` is `value` and every other field 1.
    function json(string memory field, uint256 value) internal view returns (string memory out) {
        out = '{"config":{';
        for (uint256 i; i < fields.length; ++i) {
            uint256 v = keccak256(bytes(fields[i])) == keccak256(bytes(field)) ? value : 1;
            out = string.concat(out, i == 0 ? "" : ",", '"', fields[i], '":', vm.toString(v));
        }
        out = string.concat(out, "}}");
    }

    function max(uint256 i) internal pure returns (uint256) {
        if (i == 0) return type(uint64).max;
        if (i >= 7) return type(uint32).max;
        return type(uint8).max;
    }

    function outOfRange(string memory field, uint256 value, uint256 limit) internal pure returns (bytes memory) {
        return abi.encodeWithSignature(
            "Error(string)",
            string.concat(
                ".config.", field, " = ", vm.toString(value), " is out of range (at most ", vm.toString(limit), ")"
            )
        );
    }

    function test_configure_refusesAnEndpointUrlTheRegistryWouldRefuseNamingIt() public {
        vm.expectRevert(
            bytes(
                ".services[0].endpoints[1].url = https://u:p@x.example/: refused by the registry's URL rule (credentials (user:pass@) in the URL)"
            )
        );
        configure.url(".services[0].endpoints[1].url", "https://u:p@x.example/");
        configure.url(".services[0].endpoints[0].url", "https://x.example/v2/${KEY}");
    }

    function test_configure_rejectsQuorum258NamingFieldAndValue() public {
        vm.expectRevert(outOfRange("quorum", 258, 255));
        configure.config(json("quorum", 258));
    }

    function test_configure_rejectsEveryFieldJustAboveItsType() public {
        for (uint256 i; i < fields.length; ++i) {
            vm.expectRevert(outOfRange(fields[i], max(i) + 1, max(i)));
            configure.config(json(fields[i], max(i) + 1));
        }
    }

    function test_configure_keepsEveryFieldAtItsMaximum() public view {
        for (uint256 i; i < fields.length; ++i) {
            ServiceConfig memory c = configure.config(json(fields[i], max(i)));
            uint256[10] memory got = [
                uint256(c.chainId),
                c.targetActive,
                c.floor,
                c.minRegions,
                c.quorum,
                c.minVantages,
                c.maxDemotions,
                c.demotionWindow,
                c.cooldown,
                c.attestationTtl
            ];
            for (uint256 j; j < fields.length; ++j) {
                vm.assertEq(got[j], i == j ? max(i) : 1, fields[j]);
            }
        }
    }

    /* Deployments: a pending deployment is recorded only when its registry has code. */

    /// A fresh directory holding a record of 0xbeef and a pending deployment of `deployed`.
    function records(string memory name, address deployed) internal returns (string memory dir) {
        dir = string.concat("target/devnet/forge-scripts-test/", name);
        vm.createDir(Deployments.abs(dir), true);
        svm.writeFile(
            Deployments.abs(Deployments.recordPath(dir)), '{"registry":"0x000000000000000000000000000000000000bEEF"}'
        );
        svm.writeFile(
            Deployments.abs(Deployments.pendingPath(dir)), string.concat('{"registry":"', svm.toString(deployed), '"}')
        );
    }

    function test_deployments_discardsAPendingRegistryWithoutCode() public {
        string memory dir = records("no-code", address(0x1234));
        vm.assertFalse(Deployments.settlePending(dir), "nothing recorded");
        vm.assertEq(Deployments.recorded(dir), address(0xBEEF), "the record is unchanged");
        vm.assertFalse(svm.exists(Deployments.abs(Deployments.pendingPath(dir))), "pending discarded");
    }

    function test_deployments_recordsAPendingRegistryWithCode() public {
        string memory dir = records("with-code", address(configure));
        vm.assertTrue(Deployments.settlePending(dir), "recorded");
        vm.assertEq(Deployments.recorded(dir), address(configure), "the record names it");
        vm.assertFalse(svm.exists(Deployments.abs(Deployments.pendingPath(dir))), "pending consumed");
    }
}
