// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {RegistryTest} from "./utils/RegistryTest.sol";
import {IRouteRegistry} from "../../contracts/interfaces/IRouteRegistry.sol";
import {Attestation, Verdict} from "../../contracts/types/Attestation.sol";
import {ServiceConfig, EndpointStatus, EndpointView} from "../../contracts/types/Service.sol";

/// @notice Issue 13 F01 (a new URL takes an endpoint out of service; verdicts are bound to the
/// endpoint revision they judged) and F14 (retired slots are reused under a new revision).
contract AuditEndpointsTest is RegistryTest {
    string internal constant NEW_URL = "https://new.example/rpc";

    function _at(uint16 endpoint, uint32 revision, bool healthy) internal pure returns (Verdict[] memory v) {
        v = new Verdict[](1);
        v[0] = Verdict({endpoint: endpoint, revision: revision, healthy: healthy, latencyMs: 20, headLag: 0});
    }

    function _repoint(bytes32 id, uint16 endpoint) internal {
        vm.prank(admin);
        registry.updateEndpoint(id, endpoint, NEW_URL, "p", address(1));
    }

    /* F01 */

    /// A new URL on an active route takes it out of the set at once (not ready), replaced by the
    /// usual promotion (uncovered region first, then latency), with a new epoch.
    function test_audit_F01_urlChangeTakesActiveRouteOutOfService() public {
        _bootstrap(SERVICE); // active {0 eu-west, 1 us-east}, ready {2 ap-south 12 ms, 3 eu-west 13 ms}
        uint32 epoch = _epoch();
        vm.expectEmit();
        emit IRouteRegistry.EndpointStatusChanged(SERVICE, 0, EndpointStatus.Active, EndpointStatus.Standby);
        _repoint(SERVICE, 0);
        EndpointView memory e = registry.endpoint(SERVICE, 0);
        vm.assertTrue(e.status == EndpointStatus.Standby, "out of the set");
        vm.assertFalse(e.ready, "not ready: no keeper judged the new URL");
        vm.assertEq(e.revision, 1, "revision bumped");
        vm.assertEq(e.latencyMs, 0, "latency of the old URL dropped");
        uint16[] memory ids = _activeIds(SERVICE);
        vm.assertEq(ids.length, 2, "replaced: the active count holds");
        vm.assertEq(ids[0], 1, "us-east #1 stays");
        vm.assertEq(ids[1], 2, "ap-south #2 promoted");
        vm.assertEq(_epoch(), epoch + 1, "one epoch bump");
    }

    /// Votes about the old URL never count for the new one: a verdict signed before the change
    /// (revision 0) lands after it and is ignored; a fresh healthy quorum about revision 1 is
    /// needed.
    function test_audit_F01_oldVerdictsDoNotCountForNewUrl() public {
        _bootstrap(SERVICE); // #2 ready, vouched for by keepers 0 and 1
        Attestation memory late = _attestation(2, SERVICE, _at(2, 0, true));
        bytes memory sig = _sign(keeperKeys[2], late);
        _repoint(SERVICE, 2);
        EndpointView memory e = registry.endpoint(SERVICE, 2);
        vm.assertFalse(e.ready, "a ready standby with a new URL is no longer ready");
        vm.assertEq(e.upVotes, 0, "its votes are dropped");

        registry.attest(late, sig);
        _submit(0, SERVICE, _at(2, 0, true));
        e = registry.endpoint(SERVICE, 2);
        vm.assertEq(e.upVotes, 0, "verdicts about revision 0 ignored");
        vm.assertFalse(e.ready, "not ready on old votes");

        _submit(0, SERVICE, _at(2, 1, true));
        _submit(1, SERVICE, _at(2, 1, true));
        vm.assertTrue(registry.endpoint(SERVICE, 2).ready, "ready after a fresh quorum about the new URL");
    }

    /// At the floor with no ready standby, a URL change of an active route is refused (it would
    /// leave the set below its floor); above the floor the route just leaves.
    function test_audit_F01_urlChangeRespectsFloor() public {
        ServiceConfig memory c = defaultConfig();
        c.floor = 2;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _bootstrap(SERVICE);
        _vote(1, 2, false);
        _vote(2, 2, false);
        _vote(1, 3, false);
        _vote(2, 3, false); // no ready standby left
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.EndpointIsActive.selector, SERVICE, 0));
        registry.updateEndpoint(SERVICE, 0, NEW_URL, "p", address(1));

        c.floor = 1;
        vm.prank(admin);
        registry.configureService(SERVICE, c);
        _repoint(SERVICE, 0);
        vm.assertEq(_activeIds(SERVICE).length, 1, "above the floor: it leaves without a replacement");
        vm.assertTrue(_status(0) == EndpointStatus.Standby, "standby");
    }

    /// Provider or operator changes (same URL) keep the endpoint as it is.
    function test_endpoints_sameUrlKeepsService() public {
        _bootstrap(SERVICE);
        vm.prank(admin);
        registry.updateEndpoint(SERVICE, 0, "http://127.0.0.1:8545", "other", address(2));
        EndpointView memory e = registry.endpoint(SERVICE, 0);
        vm.assertTrue(e.status == EndpointStatus.Active, "still active");
        vm.assertEq(e.revision, 0, "same revision");
    }

    /* F14 */

    /// With all 64 slots handed out, a retired slot is reused; the new occupant starts afresh under
    /// a new revision, and a verdict about the old occupant does not apply to it.
    function test_audit_F14_retiredSlotReusedUnderNewRevision() public {
        bytes32 id = keccak256("eth/rpc-64");
        _createService(id, 64, defaultConfig());
        _bootstrap(id);
        _submit(0, id, _at(5, 0, true)); // keeper 0 vouches for #5
        Attestation memory late = _attestation(1, id, _at(5, 0, true)); // keeper 1 too, landing late
        bytes memory sig = _sign(keeperKeys[1], late);
        vm.startPrank(admin);
        registry.retireEndpoint(id, 5);
        uint16 index = registry.addEndpoint(id, NEW_URL, "sa-east", "new", address(3));
        vm.stopPrank();
        vm.assertEq(index, 5, "the retired slot is reused");
        vm.assertEq(registry.service(id).endpointCount, 64, "still 64 slots");
        EndpointView memory e = registry.endpoint(id, 5);
        vm.assertTrue(e.status == EndpointStatus.Standby, "a standby");
        vm.assertFalse(e.ready, "not ready");
        vm.assertEq(e.revision, 1, "new revision");
        vm.assertEq(e.upVotes, 0, "no votes of the old occupant");
        vm.assertEq(e.region, "sa-east", "its own region");
        vm.assertEq(e.url, NEW_URL, "its own URL");

        registry.attest(late, sig);
        vm.assertEq(registry.endpoint(id, 5).upVotes, 0, "the old occupant's verdict is ignored");
        vm.assertFalse(registry.endpoint(id, 5).ready, "so no quorum from it");
        _submit(0, id, _at(5, 1, true));
        _submit(1, id, _at(5, 1, true));
        vm.assertTrue(registry.endpoint(id, 5).ready, "ready on verdicts about the new occupant");

        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IRouteRegistry.TooManyEndpoints.selector, id));
        registry.addEndpoint(id, NEW_URL, "sa-east", "new", address(3));
    }

    /// Region ids are never reused: past 255 distinct regions over a service's life, adding an
    /// endpoint in a new one is refused with a named error (it used to be an overflow panic),
    /// and one of the known regions still works.
    function test_addEndpoint_pastTheLastRegionIsRefusedByName() public {
        bytes32 id = keccak256("eth/rpc-64");
        _createService(id, 64, defaultConfig());
        vm.startPrank(admin);
        bool refused;
        for (uint256 i; i < 256 && !refused; ++i) {
            registry.retireEndpoint(id, 63);
            try registry.addEndpoint(
                id, NEW_URL, string(abi.encodePacked("region-", vm.toString(i))), "p", address(3)
            ) returns (
                uint16 index
            ) {
                vm.assertEq(index, 63, "the retired slot is reused");
            } catch (bytes memory reason) {
                vm.assertEq(
                    keccak256(reason),
                    keccak256(abi.encodeWithSelector(IRouteRegistry.TooManyRegions.selector, id)),
                    "TooManyRegions"
                );
                refused = true;
            }
        }
        vm.assertTrue(refused, "refused once 255 regions were used");
        uint16 again = registry.addEndpoint(id, NEW_URL, "region-0", "p", address(3));
        vm.assertEq(again, 63, "a known region still works");
        vm.stopPrank();
    }
}
