// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

import {IRouteRegistry} from "./interfaces/IRouteRegistry.sol";
import {ServiceConfig, EndpointStatus} from "./types/Service.sol";
import {Bitmap} from "./libraries/Bitmap.sol";

/// @title RegistryStorage
/// @notice The registry's constants, storage layout and roles, shared by `RouteRegistry` (the
/// keeper hot path and views) and `RegistryGovernance` (membership, keeper set, freezes), which
/// runs by DELEGATECALL against the registry's storage: both inherit this one layout. The admin
/// role is OpenZeppelin's `AccessControlDefaultAdminRules`: one admin, handed over in two steps
/// (`beginDefaultAdminTransfer`, then `acceptDefaultAdminTransfer` by the new admin once
/// `defaultAdminDelay` elapsed), never by `grantRole`.
abstract contract RegistryStorage is AccessControlDefaultAdminRules {
    using Bitmap for uint256;
    /* CONSTANTS */

    /// @notice Role that manages membership: services, endpoints, keepers.
    bytes32 public constant GOVERNOR_ROLE = keccak256("lifeline.governor");
    /// @notice Role that may freeze keeper-driven changes for a bounded time.
    bytes32 public constant GUARDIAN_ROLE = keccak256("lifeline.guardian");
    /// @notice Endpoints per service (bitmaps are 64 bits wide).
    uint256 public constant MAX_ENDPOINTS = 64;
    /// @notice Keepers in the set (vote bitmaps are 32 bits wide).
    uint256 public constant MAX_KEEPERS = 32;
    /// @notice Distinct keeper vantages (4-bit vantage ids).
    uint256 public constant MAX_VANTAGES = 16;
    /// @notice Smallest quorum: no single key can flip the route set.
    uint256 public constant MIN_QUORUM = 2;
    /// @notice Longest keeper-set delay a registry can be deployed with.
    uint32 public constant MAX_KEEPER_SET_DELAY = 30 days;
    /// @notice The only chain on which the keeper-set delay may be 0 (anvil / local devnets).
    uint256 public constant DEV_CHAIN_ID = 31337;
    /// @notice Longest guardian freeze.
    uint64 public constant MAX_FREEZE = 7 days;
    /// @notice Shortest gap between the end of a freeze and the next one (the gap is otherwise as
    /// long as the last freeze lasted).
    uint64 public constant MIN_FREEZE_GAP = 1 hours;

    /* STORAGE TYPES */

    /// @dev One slot: everything a vote reads and writes about an endpoint. Its region and latency
    /// live in the service's lanes (`regionLanes`, `latencyLanes`).
    struct EndpointSlot {
        EndpointStatus status;
        uint40 cooldownUntil;
        // The keeper-set version the two bitmaps belong to; older bitmaps read as empty.
        uint32 voteVersion;
        uint32 downVotes;
        uint32 upVotes;
        // What verdicts must name to count (`Verdict.revision`): bumped when the slot gets a new
        // URL (`updateEndpoint`) or a new occupant (`addEndpoint` reusing a retired slot).
        uint32 revision;
    }

    /// @dev Cold endpoint data, read by views only.
    struct EndpointInfo {
        string url;
        string region;
        string provider;
        address operator;
    }

    /// @dev One slot, read and written by every attestation. Bitmaps are over endpoint indices.
    struct ServiceState {
        uint32 epoch;
        uint40 lastAttestedAt;
        uint8 endpointCount;
        uint8 activeCount;
        uint64 ready;
        uint64 degraded;
        // As of the last region check, no swap is owed: the set covers min(minRegions, active
        // count) regions, or no ready standby lies in a region it misses. Fill, failover and
        // degraded replacement keep this true (they promote uncovered regions first); a standby
        // becoming ready, or a new config, clears it, and the next attestation checks again.
        bool regionsChecked;
        // A region swap is owed but a rail defers it; its alarm fired (once per episode).
        bool swapDeferred;
        // Low 24 bits of the keeper-set version `ready` was earned under: the first attestation
        // under a newer set clears it (a collision needs 2^24 rotations between two attestations).
        uint24 readyVersion;
    }

    /// @dev One slot, read only when the active set may change (a transition or a rebalance).
    struct ServiceRoutes {
        uint64 active;
        uint40 frozenUntil;
        uint40 windowStart;
        uint8 windowDemotions;
        // Endpoints whose status the last route-set change (epoch bump) touched: verdicts signed at
        // the previous epoch are ignored for these, and only these.
        uint64 touched;
    }

    struct Service {
        ServiceConfig config;
        ServiceState state;
        ServiceRoutes routes;
        uint8 regionCount;
        // Guardian freezes: when the current (or last) one started; no new one before `nextFreezeAt`.
        uint40 frozenSince;
        uint40 nextFreezeAt;
        // Retired endpoint indices: `addEndpoint` reuses the lowest once all 64 were handed out.
        uint64 retired;
        // Removed by governance (`removeService`): unknown to every call, and never created again.
        bool removed;
        mapping(bytes32 regionHash => uint8 regionId) regionIds;
        mapping(uint256 index => EndpointSlot) endpoints;
        mapping(uint256 index => EndpointInfo) info;
        // Region id (1-based, 8 bits) of endpoint i in lane i % 32 of word i / 32. Set once.
        uint256[2] regionLanes;
        // Latency (32 bits) last attested for endpoint i in lane i % 8 of word i / 8.
        uint256[8] latencyLanes;
        mapping(address keeper => KeeperService) keepers;
        // Per endpoint: each current keeper's latest healthy latency figure, plus one (0: none), in
        // 32-bit lane k % 8 of word k / 8 for keeper index k. The endpoint's latency (in
        // `latencyLanes`) is their median. Cleared with the endpoint's votes on a keeper-set change.
        mapping(uint256 index => uint256[4]) keeperLatencies;
    }

    /// @dev One slot. `index` is 1-based so that 0 means "not in the current set": rotation
    /// clears it for keepers that leave, so the hot path needs no global read.
    struct KeeperSlot {
        uint8 index;
        uint32 version;
        // Size of the keeper set this slot belongs to (the effective quorum's majority, F04).
        uint8 setSize;
    }

    /// @dev One slot per (keeper, service), written by each of its attestations: the replay
    /// window and liveness. It belongs to a keeper-set version; under an older one it reads as
    /// empty (signatures of older versions fail `WrongConfigVersion`, so nothing can be replayed).
    struct KeeperService {
        uint32 version;
        // Highest nonce accepted.
        uint64 nonce;
        // Bit i set: nonce `nonce - 1 - i` was accepted.
        uint64 window;
        uint40 lastAttestedAt;
    }

    /// @dev One slot: the keeper set's version and vantages (read only for `minVantages` > 1).
    struct KeeperSet {
        uint32 version;
        uint8 count;
        // Distinct vantages.
        uint8 vantages;
        // 4-bit vantage id per keeper index.
        uint128 vantageIds;
    }

    /// @dev One slot: which quorum and `minVantages` (>= 2) values some service uses (bit v set
    /// iff a service has v), so that `setKeepers` checks every service in O(1).
    struct InUse {
        uint64 quorums;
        uint64 minVantages;
    }

    /// @dev A proposed keeper set, waiting for its delay (`activatesAt` 0: none).
    struct PendingKeepers {
        address[] signers;
        bytes32[] vantages;
        uint40 activatesAt;
    }

    /* STORAGE */

    mapping(bytes32 serviceId => Service) internal _services;
    bytes32[] internal _serviceIds;
    KeeperSet internal _keeperSet;
    mapping(address keeper => KeeperSlot) internal _keepers;
    address[] internal _keeperSigners;
    bytes32[] internal _keeperVantages;
    InUse internal _inUse;
    // (kind << 8 | value) => number of services using it; kind 0: quorum, 1: minVantages.
    mapping(uint256 key => uint256 services) internal _servicesUsing;
    PendingKeepers internal _pendingKeepers;
    // 1-based position of each service id in `_serviceIds` (0: none), so removal is O(1).
    mapping(bytes32 serviceId => uint256 position) internal _serviceIndex;

    /* CONSTRUCTOR */

    constructor(uint48 adminDelay, address admin) AccessControlDefaultAdminRules(adminDelay, admin) {}

    /* INTERNAL: helpers */

    function _existing(bytes32 serviceId) internal view returns (Service storage s) {
        s = _services[serviceId];
        if (s.config.quorum == 0) revert IRouteRegistry.UnknownService(serviceId);
    }

    /// @dev The region lane words (the second only when the service has more than 32 endpoints).
    function _regionWordsOf(Service storage s, uint256 endpointCount) internal view returns (uint256 r0, uint256 r1) {
        r0 = s.regionLanes[0];
        if (endpointCount > 32) r1 = s.regionLanes[1];
    }

    function _region(uint256 r0, uint256 r1, uint256 index) internal pure returns (uint256) {
        return ((index < 32 ? r0 : r1) >> ((index & 31) << 3)) & 0xff;
    }

    /// @dev Bitmap over region ids of the regions of `endpoints`.
    function _regionMask(uint256 endpoints, uint256 r0, uint256 r1) internal pure returns (uint256 mask) {
        for (; endpoints != 0; endpoints &= endpoints - 1) {
            mask |= uint256(1) << _region(r0, r1, endpoints.lowest());
        }
    }

    /// @dev Picks the ready standby to promote among `candidates`: one whose region no route of
    /// `remaining` covers first, then the lowest latency, then the lowest index. One pass over the
    /// candidates; regions and latencies come from the packed lanes (each word read once).
    /// @return found Whether any candidate exists.
    /// @return best The pick.
    /// @return uncovered Whether the pick's region is one `remaining` misses.
    function _pickStandby(Service storage s, uint256 candidates, uint256 remaining, uint256 endpointCount)
        internal
        view
        returns (bool found, uint16 best, bool uncovered)
    {
        if (candidates == 0) return (false, 0, false);
        (uint256 r0, uint256 r1) = _regionWordsOf(s, endpointCount);
        uint256 covered = _regionMask(remaining, r0, r1);
        uint256 bestLatency;
        uint256 wordIndex = type(uint256).max;
        uint256 word;
        for (; candidates != 0; candidates &= candidates - 1) {
            uint256 i = candidates.lowest();
            bool isUncovered = covered & (uint256(1) << _region(r0, r1, i)) == 0;
            if (i >> 3 != wordIndex) {
                wordIndex = i >> 3;
                word = s.latencyLanes[wordIndex];
            }
            uint256 latency = (word >> ((i & 7) << 5)) & 0xffffffff;
            if (!found || (isUncovered && !uncovered) || (isUncovered == uncovered && latency < bestLatency)) {
                (found, best, uncovered, bestLatency) = (true, uint16(i), isUncovered, latency);
            }
        }
    }

    /// @dev The effective quorum: the configured one, or a strict majority of the keeper set
    /// (`setSize / 2 + 1`) if that is larger, so two opposing quorums can never both stand.
    function _effectiveQuorum(uint256 quorum, uint256 setSize) internal pure returns (uint256) {
        uint256 majority = setSize / 2 + 1;
        return quorum > majority ? quorum : majority;
    }
}
