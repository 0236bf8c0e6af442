// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {IRouteRegistry} from "../../contracts/interfaces/IRouteRegistry.sol";
import {Attestation} from "../../contracts/types/Attestation.sol";
import {ServiceConfig} from "../../contracts/types/Service.sol";

/// @notice Issue 13 F10 (rest): services can be removed, in O(1) of the number of services.
contract AuditServicesTest is RegistryTest {
    bytes32 internal constant OTHER = keccak256("other/rpc");
    bytes32 internal constant THIRD = keccak256("third/rpc");

    function test_audit_F10_serviceCanBeRemoved() public {
        ServiceConfig memory c = defaultConfig();
        c.quorum = 3;
        _createService(OTHER, 2, c);
        _createService(THIRD, 4, defaultConfig());
        Attestation memory late = _attestation(0, OTHER, _none());
        bytes memory sig = _sign(keeperKeys[0], late);
        (, uint8 minKeepers,) = registry.keeperSetBounds();
        vm.assertEq(minKeepers, 3, "OTHER's quorum 3 bounds keeper sets");

        vm.expectEmit();
        emit IRouteRegistry.ServiceRemoved(OTHER);
        vm.prank(admin);
        registry.removeService(OTHER);

        bytes32[] memory ids = registry.serviceIds();
        vm.assertEq(ids.length, 2, "left serviceIds");
        vm.assertEq(ids[0], SERVICE, "first unchanged");
        vm.assertEq(ids[1], THIRD, "the last moved into its place");
        (, minKeepers,) = registry.keeperSetBounds();
        vm.assertEq(minKeepers, 2, "its quorum no longer bounds keeper sets");

        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, OTHER));
        registry.service(OTHER);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, OTHER));
        registry.attest(late, sig);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.ServiceExists.selector, OTHER));
        registry.createService(OTHER, "other/rpc", defaultConfig());
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.UnknownService.selector, OTHER));
        registry.removeService(OTHER);

        // The remaining services work as before; the moved one can be removed in turn.
        _bootstrap(THIRD);
        vm.assertEq(registry.service(THIRD).activeCount, 2, "THIRD still served");
        vm.prank(admin);
        registry.removeService(THIRD);
        vm.assertEq(registry.serviceIds().length, 1, "one left");
        vm.assertEq(registry.serviceIds()[0], SERVICE, "SERVICE");
    }

    function test_removeService_requiresGovernor() public {
        vm.expectRevert(
            abi.encodeWithSignature(
                "AccessControlUnauthorizedAccount(address,bytes32)", address(this), registry.GOVERNOR_ROLE()
            )
        );
        registry.removeService(SERVICE);
    }
}
