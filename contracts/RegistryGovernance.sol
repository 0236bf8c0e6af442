// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IRouteRegistry} from "./interfaces/IRouteRegistry.sol";
import {ServiceConfig, EndpointStatus} from "./types/Service.sol";
import {Bitmap} from "./libraries/Bitmap.sol";
import {EndpointUrl} from "./libraries/EndpointUrl.sol";
import {RegistryStorage} from "./RegistryStorage.sol";

/// @title RegistryGovernance
/// @notice The registry's governance paths (membership, keeper set, freezes), split out of
/// `RouteRegistry` to keep it under the 24,576-byte runtime limit (EIP-170).
/// @dev Why a module and not linked libraries: the registry deploys this module itself, in its
/// constructor, so a deployment stays one transaction with no link step, for the Foundry scripts,
/// the devnet and the Rust bindings (`RouteRegistry::deploy`) alike. Only rarely-called paths live
/// here; the keeper hot path (`attest`) stays in the registry and pays no DELEGATECALL. The
/// registry checks each caller's role and then DELEGATECALLs the same calldata here: these
/// functions run against the registry's storage (same `RegistryStorage` layout) and never check
/// roles themselves. Called directly, they only touch this module's own, unused storage.
contract RegistryGovernance is RegistryStorage {
    using Bitmap for uint256;

    /// @dev Seconds between a keeper-set proposal and its activation (see the registry's).
    uint32 internal immutable _keeperSetDelay;

    /// @param keeperSetDelay 0 only on `DEV_CHAIN_ID`; at most `MAX_KEEPER_SET_DELAY`.
    /// The module's own roles are never used (it runs against the registry's storage): it is its
    /// own admin so that the admin rules' constructor is satisfied.
    constructor(uint32 keeperSetDelay) RegistryStorage(0, address(this)) {
        if (keeperSetDelay > MAX_KEEPER_SET_DELAY || (keeperSetDelay == 0 && block.chainid != DEV_CHAIN_ID)) {
            revert IRouteRegistry.InvalidConfig("keeperSetDelay", keeperSetDelay);
        }
        _keeperSetDelay = keeperSetDelay;
    }

    /// @dev See `IRouteRegistry`.
    function createService(bytes32 serviceId, string calldata name, ServiceConfig calldata config) external {
        Service storage s = _services[serviceId];
        if (s.config.quorum != 0 || s.removed) revert IRouteRegistry.ServiceExists(serviceId);
        _validateConfig(config);
        s.config = config;
        _use(config.quorum, config.minVantages, true);
        s.state.lastAttestedAt = uint40(block.timestamp);
        _serviceIds.push(serviceId);
        _serviceIndex[serviceId] = _serviceIds.length;
        emit IRouteRegistry.ServiceCreated(serviceId, name, config);
    }

    /// @dev See `IRouteRegistry`. O(1): the last id moves into the removed one's place.
    function removeService(bytes32 serviceId) external {
        Service storage s = _existing(serviceId);
        _use(s.config.quorum, s.config.minVantages, false);
        // A zero quorum is what makes every call treat the id as unknown (`_existing`).
        delete s.config;
        s.removed = true;
        uint256 position = _serviceIndex[serviceId];
        uint256 last = _serviceIds.length;
        if (position != last) {
            bytes32 moved = _serviceIds[last - 1];
            _serviceIds[position - 1] = moved;
            _serviceIndex[moved] = position;
        }
        _serviceIds.pop();
        delete _serviceIndex[serviceId];
        emit IRouteRegistry.ServiceRemoved(serviceId);
    }

    /// @dev See `IRouteRegistry`.
    function configureService(bytes32 serviceId, ServiceConfig calldata config) external {
        Service storage s = _existing(serviceId);
        _validateConfig(config);
        _use(s.config.quorum, s.config.minVantages, false);
        _use(config.quorum, config.minVantages, true);
        s.config = config;
        s.state.regionsChecked = false;
        emit IRouteRegistry.ServiceConfigured(serviceId, config);
    }

    /// @dev See `IRouteRegistry`.
    function addEndpoint(
        bytes32 serviceId,
        string calldata url,
        string calldata region,
        string calldata provider,
        address operator
    ) external returns (uint16 index) {
        Service storage s = _existing(serviceId);
        EndpointUrl.check(url);
        uint32 revision;
        if (s.state.endpointCount < MAX_ENDPOINTS) {
            index = s.state.endpointCount;
            s.state.endpointCount = uint8(index + 1);
        } else {
            // All 64 slots handed out: reuse the lowest retired one, under a new revision so that
            // no verdict about its earlier occupant applies to the new one.
            uint256 retired = s.retired;
            if (retired == 0) revert IRouteRegistry.TooManyEndpoints(serviceId);
            index = uint16(retired.lowest());
            s.retired = uint64(retired & (retired - 1));
            revision = s.endpoints[index].revision + 1;
            s.regionLanes[index >> 5] &= ~(uint256(0xff) << ((index & 31) << 3));
            _clearLatency(s, serviceId, index);
        }

        bytes32 regionHash = keccak256(bytes(region));
        uint8 regionId = s.regionIds[regionHash];
        if (regionId == 0) {
            // A service that went through 255 distinct regions (reusing slots) can add no new one.
            if (s.regionCount == type(uint8).max) revert IRouteRegistry.TooManyRegions(serviceId);
            regionId = ++s.regionCount;
            s.regionIds[regionHash] = regionId;
        }

        s.endpoints[index] = EndpointSlot({
            status: EndpointStatus.Standby,
            cooldownUntil: 0,
            voteVersion: 0,
            downVotes: 0,
            upVotes: 0,
            revision: revision
        });
        s.regionLanes[index >> 5] |= uint256(regionId) << ((index & 31) << 3);
        s.info[index] = EndpointInfo({url: url, region: region, provider: provider, operator: operator});
        emit IRouteRegistry.EndpointAdded(serviceId, index, url, region, provider, operator);
    }

    /// @dev See `IRouteRegistry`.
    function updateEndpoint(
        bytes32 serviceId,
        uint16 index,
        string calldata url,
        string calldata provider,
        address operator
    ) external {
        Service storage s = _existing(serviceId);
        if (index >= s.state.endpointCount) revert IRouteRegistry.UnknownEndpoint(serviceId, index);
        EndpointSlot memory e = s.endpoints[index];
        if (e.status == EndpointStatus.Retired) revert IRouteRegistry.EndpointIsRetired(serviceId, index);
        EndpointUrl.check(url);
        EndpointInfo storage info = s.info[index];
        bool urlChanged = keccak256(bytes(info.url)) != keccak256(bytes(url));
        info.url = url;
        info.provider = provider;
        info.operator = operator;
        emit IRouteRegistry.EndpointUpdated(serviceId, index, url, provider, operator);
        if (urlChanged) _repoint(s, serviceId, index, e);
    }

    /// @dev A new URL is a new target that no keeper judged: the endpoint leaves service (an active
    /// route goes back to Standby, replaced by the best ready standby; a ready standby loses its
    /// readiness), its votes and latency figures are dropped, and its revision moves on so that no
    /// verdict about the old URL counts for the new one. Reverts (`EndpointIsActive`) when an
    /// active route has no ready replacement and the set is at its floor.
    function _repoint(Service storage s, bytes32 serviceId, uint16 index, EndpointSlot memory e) internal {
        uint64 bit = uint64(1) << index;
        ServiceState memory st = s.state;
        if (e.status == EndpointStatus.Active) {
            ServiceRoutes memory r = s.routes;
            (bool found, uint16 next,) = _pickStandby(s, st.ready, r.active & ~bit, st.endpointCount);
            if (!found && st.activeCount <= s.config.floor) revert IRouteRegistry.EndpointIsActive(serviceId, index);
            e.status = EndpointStatus.Standby;
            r.active &= ~bit;
            r.touched = bit;
            st.degraded &= ~bit;
            --st.activeCount;
            emit IRouteRegistry.EndpointStatusChanged(serviceId, index, EndpointStatus.Active, EndpointStatus.Standby);
            if (found) {
                uint64 nextBit = uint64(1) << next;
                EndpointSlot storage n = s.endpoints[next];
                n.status = EndpointStatus.Active;
                n.downVotes = 0;
                n.upVotes = 0;
                st.ready &= ~nextBit;
                r.active |= nextBit;
                r.touched |= nextBit;
                ++st.activeCount;
                emit IRouteRegistry.EndpointStatusChanged(
                    serviceId, next, EndpointStatus.Standby, EndpointStatus.Active
                );
            }
            // Promotion picks an uncovered region first; a swap, if one is owed, is checked by the
            // next attestation.
            st.regionsChecked = false;
            ++st.epoch;
            s.routes = r;
            emit IRouteRegistry.RouteSetChanged(serviceId, st.epoch, uint256(r.active).indices());
        } else if (st.ready & bit != 0) {
            st.ready &= ~bit;
            emit IRouteRegistry.EndpointReadinessChanged(serviceId, index, false);
        }
        s.state = st;
        ++e.revision;
        e.downVotes = 0;
        e.upVotes = 0;
        s.endpoints[index] = e;
        _clearLatency(s, serviceId, index);
    }

    /// @dev Drops an endpoint's latency figures and its latency (`EndpointLatencyChanged` to 0 if
    /// it was not 0 already).
    function _clearLatency(Service storage s, bytes32 serviceId, uint16 index) internal {
        delete s.keeperLatencies[index];
        uint256 shift = (uint256(index) & 7) << 5;
        uint256 word = s.latencyLanes[index >> 3];
        if ((word >> shift) & 0xffffffff == 0) return;
        s.latencyLanes[index >> 3] = word & ~(uint256(0xffffffff) << shift);
        emit IRouteRegistry.EndpointLatencyChanged(serviceId, index, 0);
    }

    /// @dev See `IRouteRegistry`.
    function retireEndpoint(bytes32 serviceId, uint16 index) external {
        Service storage s = _existing(serviceId);
        if (index >= s.state.endpointCount) revert IRouteRegistry.UnknownEndpoint(serviceId, index);
        EndpointSlot storage e = s.endpoints[index];
        if (e.status == EndpointStatus.Active) revert IRouteRegistry.EndpointIsActive(serviceId, index);
        if (e.status == EndpointStatus.Retired) revert IRouteRegistry.EndpointIsRetired(serviceId, index);
        e.status = EndpointStatus.Retired;
        emit IRouteRegistry.EndpointRetired(serviceId, index);
        uint64 bit = uint64(1) << index;
        s.retired |= bit;
        if (s.state.ready & bit != 0) {
            s.state.ready &= ~bit;
            emit IRouteRegistry.EndpointReadinessChanged(serviceId, index, false);
        }
    }

    /// @dev See `IRouteRegistry`.
    function setKeepers(address[] calldata signers, bytes32[] calldata vantages) external {
        // Installing validates as it goes.
        if (_keeperSetDelay == 0) return _applyKeepers(signers, vantages);
        // Refuse now what activation would refuse now (activation checks again: services may change).
        _checkKeepers(signers, vantages);
        uint64 activatesAt = uint64(block.timestamp) + _keeperSetDelay;
        PendingKeepers storage p = _pendingKeepers;
        p.signers = signers;
        p.vantages = vantages;
        p.activatesAt = uint40(activatesAt);
        emit IRouteRegistry.KeeperSetProposed(_keeperSet.version + 1, signers, vantages, activatesAt);
    }

    /// @dev See `IRouteRegistry`.
    function activateKeepers() external {
        PendingKeepers storage p = _pendingKeepers;
        uint256 activatesAt = p.activatesAt;
        if (activatesAt == 0) revert IRouteRegistry.NoPendingKeeperSet();
        if (block.timestamp < activatesAt) revert IRouteRegistry.KeeperSetNotDue(uint64(activatesAt), block.timestamp);
        address[] memory signers = p.signers;
        bytes32[] memory vantages = p.vantages;
        delete _pendingKeepers;
        _applyKeepers(signers, vantages);
    }

    /// @dev See `IRouteRegistry`.
    function cancelKeepers() external {
        if (_pendingKeepers.activatesAt == 0) revert IRouteRegistry.NoPendingKeeperSet();
        delete _pendingKeepers;
        emit IRouteRegistry.KeeperSetCancelled(_keeperSet.version + 1);
    }

    /// @dev The checks `_applyKeepers` makes, without writing anything.
    function _checkKeepers(address[] calldata signers, bytes32[] calldata vantages) internal view {
        uint256 n = signers.length;
        if (n == 0 || n > MAX_KEEPERS) revert IRouteRegistry.InvalidKeeperSet("signers.length", n);
        if (vantages.length != n) revert IRouteRegistry.InvalidKeeperSet("vantages.length", vantages.length);
        InUse memory inUse = _inUse;
        if (n < uint256(inUse.quorums).highest()) {
            revert IRouteRegistry.InvalidKeeperSet("signers.length (below a service quorum)", n);
        }
        uint256 distinct;
        for (uint256 i; i < n; ++i) {
            if (signers[i] == address(0)) revert IRouteRegistry.InvalidKeeperSet("signers[i] (zero address)", i);
            bool seen;
            for (uint256 j; j < i; ++j) {
                if (signers[j] == signers[i]) revert IRouteRegistry.InvalidKeeperSet("signers[i] (duplicate)", i);
                if (vantages[j] == vantages[i]) seen = true;
            }
            if (!seen && ++distinct > MAX_VANTAGES) {
                revert IRouteRegistry.InvalidKeeperSet("vantages (distinct)", distinct);
            }
        }
        if (distinct < uint256(inUse.minVantages).highest()) {
            revert IRouteRegistry.InvalidKeeperSet("vantages (below a service minVantages)", distinct);
        }
    }

    /// @dev Installs a keeper set (validating it against the services as they are now).
    function _applyKeepers(address[] memory signers, bytes32[] memory vantages) internal {
        uint256 n = signers.length;
        if (n == 0 || n > MAX_KEEPERS) revert IRouteRegistry.InvalidKeeperSet("signers.length", n);
        if (vantages.length != n) revert IRouteRegistry.InvalidKeeperSet("vantages.length", vantages.length);
        InUse memory inUse = _inUse;
        if (n < uint256(inUse.quorums).highest()) {
            revert IRouteRegistry.InvalidKeeperSet("signers.length (below a service quorum)", n);
        }

        // Cannot overflow in practice: one bump per governance rotation.
        uint32 version = _keeperSet.version + 1;
        for (uint256 i; i < _keeperSigners.length; ++i) {
            // Its replay windows belong to this version: a keeper added back later signs under a
            // new version, so its old attestations fail `WrongConfigVersion`.
            _keepers[_keeperSigners[i]].index = 0;
        }
        uint128 vantageIds;
        uint256 distinct;
        for (uint256 i; i < n; ++i) {
            address signer = signers[i];
            if (signer == address(0)) revert IRouteRegistry.InvalidKeeperSet("signers[i] (zero address)", i);
            KeeperSlot storage k = _keepers[signer];
            if (k.version == version) revert IRouteRegistry.InvalidKeeperSet("signers[i] (duplicate)", i);
            k.index = uint8(i + 1);
            k.version = version;
            k.setSize = uint8(n);

            uint256 vantageId = distinct;
            for (uint256 j; j < i; ++j) {
                if (vantages[j] == vantages[i]) {
                    vantageId = (vantageIds >> (4 * j)) & 0xf;
                    break;
                }
            }
            if (vantageId == distinct) {
                if (++distinct > MAX_VANTAGES) revert IRouteRegistry.InvalidKeeperSet("vantages (distinct)", distinct);
            }
            vantageIds |= uint128(vantageId << (4 * i));
        }
        if (distinct < uint256(inUse.minVantages).highest()) {
            revert IRouteRegistry.InvalidKeeperSet("vantages (below a service minVantages)", distinct);
        }

        _keeperSet = KeeperSet({version: version, count: uint8(n), vantages: uint8(distinct), vantageIds: vantageIds});
        _keeperSigners = signers;
        _keeperVantages = vantages;
        emit IRouteRegistry.KeeperSetUpdated(version, signers, vantages);
    }

    /// @dev See `IRouteRegistry`.
    function freeze(bytes32 serviceId, uint64 duration) external {
        if (duration > MAX_FREEZE) revert IRouteRegistry.FreezeTooLong(duration, MAX_FREEZE);
        Service storage s = _existing(serviceId);
        // While a freeze is in force, nextFreezeAt lies beyond its end: no extension either.
        if (block.timestamp < s.nextFreezeAt) revert IRouteRegistry.FreezeTooSoon(serviceId, s.nextFreezeAt);
        uint64 until = uint64(block.timestamp) + duration;
        s.routes.frozenUntil = uint40(until);
        s.frozenSince = uint40(block.timestamp);
        s.nextFreezeAt = uint40(until + _freezeGap(duration));
        emit IRouteRegistry.Frozen(serviceId, until);
    }

    /// @dev See `IRouteRegistry`.
    function unfreeze(bytes32 serviceId) external {
        Service storage s = _existing(serviceId);
        if (block.timestamp < s.routes.frozenUntil) {
            s.nextFreezeAt = uint40(block.timestamp + _freezeGap(block.timestamp - s.frozenSince));
        }
        s.routes.frozenUntil = 0;
        emit IRouteRegistry.Unfrozen(serviceId);
    }

    /// @dev Tracks which quorum and minVantages values services use (for `setKeepers`).
    function _use(uint8 quorum, uint8 minVantages, bool add) internal {
        _count(quorum, 0, add);
        if (minVantages > 1) _count(minVantages, 1, add);
    }

    function _count(uint8 value, uint256 kind, bool add) internal {
        uint256 key = (kind << 8) | value;
        uint256 n = _servicesUsing[key];
        uint64 bit = uint64(1) << value;
        if (add) {
            if (n == 0) {
                if (kind == 0) _inUse.quorums |= bit;
                else _inUse.minVantages |= bit;
            }
            _servicesUsing[key] = n + 1;
        } else {
            if (n == 1) {
                if (kind == 0) _inUse.quorums &= ~bit;
                else _inUse.minVantages &= ~bit;
            }
            _servicesUsing[key] = n - 1;
        }
    }

    /// @dev As long as the freeze lasted, at least MIN_FREEZE_GAP.
    function _freezeGap(uint256 lasted) internal pure returns (uint256) {
        return lasted > MIN_FREEZE_GAP ? lasted : MIN_FREEZE_GAP;
    }

    /* INTERNAL: helpers */

    function _validateConfig(ServiceConfig calldata c) internal view {
        if (c.targetActive == 0 || c.targetActive > MAX_ENDPOINTS) {
            revert IRouteRegistry.InvalidConfig("targetActive", c.targetActive);
        }
        if (c.floor == 0 || c.floor > c.targetActive) revert IRouteRegistry.InvalidConfig("floor", c.floor);
        if (c.minRegions > c.targetActive) revert IRouteRegistry.InvalidConfig("minRegions", c.minRegions);
        if (c.quorum < MIN_QUORUM || c.quorum > _keeperSet.count) {
            revert IRouteRegistry.InvalidConfig("quorum", c.quorum);
        }
        if (c.minVantages > c.quorum || c.minVantages > _keeperSet.vantages) {
            revert IRouteRegistry.InvalidConfig("minVantages", c.minVantages);
        }
        if (c.maxDemotions == 0) revert IRouteRegistry.InvalidConfig("maxDemotions", 0);
        if (c.demotionWindow == 0) revert IRouteRegistry.InvalidConfig("demotionWindow", 0);
        if (c.attestationTtl == 0) revert IRouteRegistry.InvalidConfig("attestationTtl", 0);
    }
}
