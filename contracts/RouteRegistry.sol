// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {IRouteRegistry} from "./interfaces/IRouteRegistry.sol";
import {Attestation, AttestationHash, Verdict} from "./types/Attestation.sol";
import {
    ServiceConfig,
    EndpointStatus,
    DeferReason,
    Route,
    RouteSet,
    EndpointView,
    ServiceView
} from "./types/Service.sol";
import {Bitmap} from "./libraries/Bitmap.sol";
import {RegistryStorage} from "./RegistryStorage.sol";
import {RegistryGovernance} from "./RegistryGovernance.sol";

/// @title RouteRegistry
/// @notice Lifeline's registry: governed membership, keeper-quorum health, autonomous failover.
/// @dev Storage is laid out so that the keeper hot path (one vote) touches one slot each of:
/// the service config, the service state, the keeper set, the keeper, the keeper's slot for the
/// service (nonce window and liveness), the endpoint. Everything
/// else (URLs, lists for views) is read only by views and governance. What promotion compares
/// (each endpoint's region and latency) is packed in lanes, 32 regions or 8 latencies a slot, so
/// choosing among N ready standbys reads N/8 slots, not N. Governance paths run in the
/// `RegistryGovernance` module (DELEGATECALL after the role check here), which keeps this contract
/// under EIP-170; see that contract for why a module and not linked libraries.
contract RouteRegistry is IRouteRegistry, RegistryStorage, EIP712 {
    using AttestationHash for Attestation;
    using Bitmap for uint256;

    /// @dev Working copy of a service during one attest call, written back once.
    struct Context {
        bytes32 serviceId;
        ServiceConfig config;
        ServiceState state;
        // Loaded on first use by `_loadRoutes`: a vote that changes nothing never reads it.
        ServiceRoutes routes;
        bool routesLoaded;
        // The keeper-set version and size, taken from the (already loaded) keeper slot.
        uint32 version;
        uint8 setSize;
        // Keepers (vote bits) whose attestation this call accepted: live without a read.
        uint32 liveKnown;
        // The attestation being applied was signed at the previous epoch (see `_applyVerdicts`).
        bool previousEpoch;
        // Endpoints whose status this call changed (becomes `routes.touched` with the new epoch).
        uint64 touched;
        bool setChanged;
    }

    /* IMMUTABLES */

    /// @dev The governance module this registry deployed (see `RegistryGovernance`).
    address internal immutable _governanceModule;

    /// @inheritdoc IRouteRegistry
    uint32 public immutable keeperSetDelay;

    /* CONSTRUCTOR */

    /// @param admin The default admin (grants and revokes the other roles; handed over in two
    /// steps, after `adminDelay`). A multisig or timelock in production.
    /// @param governor Holds the governor role (services, endpoints, keeper-set proposals).
    /// @param guardian Holds the guardian role (may freeze and cancel a keeper-set proposal).
    /// @param keeperSetDelay_ Seconds between a keeper-set proposal and its activation: 0 only when
    /// `block.chainid == DEV_CHAIN_ID` (31337), at most `MAX_KEEPER_SET_DELAY`.
    /// @param adminDelay Seconds a new admin waits between `beginDefaultAdminTransfer` and
    /// `acceptDefaultAdminTransfer`.
    constructor(address admin, address governor, address guardian, uint32 keeperSetDelay_, uint48 adminDelay)
        RegistryStorage(adminDelay, admin)
        EIP712("Lifeline RouteRegistry", "1")
    {
        _governanceModule = address(new RegistryGovernance(keeperSetDelay_));
        keeperSetDelay = keeperSetDelay_;
        _grantRole(GOVERNOR_ROLE, governor);
        _grantRole(GUARDIAN_ROLE, guardian);
    }

    /* GOVERNANCE: checked here, executed by the governance module (see RegistryGovernance) */

    /// @inheritdoc IRouteRegistry
    function createService(bytes32, string calldata, ServiceConfig calldata) external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function configureService(bytes32, ServiceConfig calldata) external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function removeService(bytes32) external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function addEndpoint(bytes32, string calldata, string calldata, string calldata, address)
        external
        onlyRole(GOVERNOR_ROLE)
        returns (uint16)
    {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function updateEndpoint(bytes32, uint16, string calldata, string calldata, address)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function retireEndpoint(bytes32, uint16) external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function setKeepers(address[] calldata, bytes32[] calldata) external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function activateKeepers() external onlyRole(GOVERNOR_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function cancelKeepers() external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, GUARDIAN_ROLE);
        }
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function freeze(bytes32, uint64) external onlyRole(GUARDIAN_ROLE) {
        _delegate();
    }

    /// @inheritdoc IRouteRegistry
    function unfreeze(bytes32) external onlyRole(GUARDIAN_ROLE) {
        _delegate();
    }

    /// @dev Runs the current call (its role already checked) in the governance module against
    /// this contract's storage, and returns or reverts with the module's result.
    function _delegate() internal {
        address module = _governanceModule;
        assembly ("memory-safe") {
            let p := mload(0x40)
            calldatacopy(p, 0, calldatasize())
            let ok := delegatecall(gas(), module, p, calldatasize(), 0, 0)
            returndatacopy(p, 0, returndatasize())
            if iszero(ok) { revert(p, returndatasize()) }
            return(p, returndatasize())
        }
    }

    /* KEEPERS */

    /// @inheritdoc IRouteRegistry
    function attest(Attestation calldata attestation, bytes calldata signature) external {
        Service storage s = _existing(attestation.service);
        Context memory ctx = _load(s, attestation.service);
        uint256 keeperBit = _accept(ctx, s, attestation, signature, false);
        _applyVerdicts(ctx, s, attestation, keeperBit);
        _rebalance(ctx, s);
        _commit(ctx, s);
    }

    /// @inheritdoc IRouteRegistry
    function attestBatch(Attestation[] calldata attestations, bytes[] calldata signatures)
        external
        returns (uint256 skipped)
    {
        uint256 n = attestations.length;
        if (n == 0 || signatures.length != n) revert InvalidBatch(n, signatures.length);
        bytes32 serviceId = attestations[0].service;
        Service storage s = _existing(serviceId);
        Context memory ctx = _load(s, serviceId);

        uint256 seen;
        for (uint256 i; i < n; ++i) {
            Attestation calldata a = attestations[i];
            if (a.service != serviceId) revert MixedServices(serviceId, a.service);
            uint256 keeperBit = _accept(ctx, s, a, signatures[i], true);
            if (keeperBit == 0) {
                skipped |= uint256(1) << i;
                continue;
            }
            if (seen & keeperBit != 0) revert DuplicateKeeper(_keeperSigners[keeperBit.lowest()]);
            seen |= keeperBit;
            _applyVerdicts(ctx, s, a, keeperBit);
        }
        _rebalance(ctx, s);
        _commit(ctx, s);
    }

    /* VIEWS */

    /// @inheritdoc IRouteRegistry
    function authorisedRoutes(bytes32 serviceId) external view returns (RouteSet memory set) {
        Service storage s = _existing(serviceId);
        set.epoch = s.state.epoch;
        set.lastAttestedAt = s.state.lastAttestedAt;
        (,, uint256 live) = keeperLiveness(serviceId);
        set.stale = live < _effectiveQuorum(s.config.quorum, _keeperSet.count);
        uint16[] memory ids = uint256(s.routes.active).indices();
        set.routes = new Route[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            uint16 id = ids[i];
            EndpointInfo storage info = s.info[id];
            set.routes[i] = Route({
                id: id,
                url: info.url,
                region: info.region,
                provider: info.provider,
                latencyMs: _latency(s, id),
                degraded: s.state.degraded & (1 << id) != 0
            });
        }
    }

    /// @inheritdoc IRouteRegistry
    function service(bytes32 serviceId) external view returns (ServiceView memory v) {
        Service storage s = _existing(serviceId);
        ServiceState memory st = s.state;
        v = ServiceView({
            config: s.config,
            epoch: st.epoch,
            lastAttestedAt: st.lastAttestedAt,
            frozenUntil: s.routes.frozenUntil,
            endpointCount: st.endpointCount,
            activeCount: st.activeCount,
            activeMask: s.routes.active,
            readyMask: st.ready,
            degradedMask: st.degraded
        });
    }

    /// @inheritdoc IRouteRegistry
    function serviceIds() external view returns (bytes32[] memory) {
        return _serviceIds;
    }

    /// @inheritdoc IRouteRegistry
    function endpoint(bytes32 serviceId, uint16 index) external view returns (EndpointView memory v) {
        Service storage s = _existing(serviceId);
        if (index >= s.state.endpointCount) revert UnknownEndpoint(serviceId, index);
        EndpointSlot memory e = s.endpoints[index];
        EndpointInfo storage info = s.info[index];
        bool current = e.voteVersion == _keeperSet.version;
        v = EndpointView({
            status: e.status,
            ready: s.state.ready & (1 << index) != 0,
            degraded: s.state.degraded & (1 << index) != 0,
            latencyMs: _latency(s, index),
            cooldownUntil: e.cooldownUntil,
            downVotes: current ? e.downVotes : 0,
            upVotes: current ? e.upVotes : 0,
            revision: e.revision,
            url: info.url,
            region: info.region,
            provider: info.provider,
            operator: info.operator
        });
    }

    /// @inheritdoc IRouteRegistry
    function keepers() external view returns (uint32, address[] memory, bytes32[] memory) {
        return (_keeperSet.version, _keeperSigners, _keeperVantages);
    }

    /// @inheritdoc IRouteRegistry
    function pendingKeepers()
        external
        view
        returns (address[] memory signers, bytes32[] memory vantages, uint64 activatesAt)
    {
        return (_pendingKeepers.signers, _pendingKeepers.vantages, _pendingKeepers.activatesAt);
    }

    /// @inheritdoc IRouteRegistry
    function keeperSetBounds()
        external
        view
        returns (uint8 distinctVantages, uint8 minKeepers, uint8 minDistinctVantages)
    {
        InUse memory inUse = _inUse;
        return
            (_keeperSet.vantages, uint8(uint256(inUse.quorums).highest()), uint8(uint256(inUse.minVantages).highest()));
    }

    /// @inheritdoc IRouteRegistry
    function keeperState(address keeper, bytes32 serviceId)
        external
        view
        returns (bool active, uint8 index, uint64 lastNonce, uint64 lastAttestedAt)
    {
        KeeperSlot memory k = _keepers[keeper];
        active = k.index != 0;
        index = active ? k.index - 1 : 0;
        KeeperService memory ks = _services[serviceId].keepers[keeper];
        if (ks.version == _keeperSet.version) (lastNonce, lastAttestedAt) = (ks.nonce, ks.lastAttestedAt);
    }

    /// @inheritdoc IRouteRegistry
    function keeperLiveness(bytes32 serviceId)
        public
        view
        returns (address[] memory signers, uint64[] memory lastAttestedAt, uint256 live)
    {
        Service storage s = _existing(serviceId);
        signers = _keeperSigners;
        lastAttestedAt = new uint64[](signers.length);
        uint32 version = _keeperSet.version;
        for (uint256 i; i < signers.length; ++i) {
            KeeperService memory ks = s.keepers[signers[i]];
            if (ks.version != version) continue;
            lastAttestedAt[i] = ks.lastAttestedAt;
            if (block.timestamp <= uint256(ks.lastAttestedAt) + s.config.attestationTtl) ++live;
        }
    }

    /// @inheritdoc IRouteRegistry
    function attestationDigest(Attestation calldata attestation) external view returns (bytes32) {
        return _hashTypedDataV4(attestation.hash());
    }

    /* INTERNAL: attestation intake */

    function _load(Service storage s, bytes32 serviceId) internal view returns (Context memory ctx) {
        ctx.serviceId = serviceId;
        ctx.config = s.config;
        ctx.state = s.state;
    }

    function _loadRoutes(Context memory ctx, Service storage s) internal view {
        if (ctx.routesLoaded) return;
        ctx.routes = s.routes;
        ctx.routesLoaded = true;
    }

    /// @dev Checks one attestation in a fixed order and consumes its nonce in the signer's window
    /// for the service.
    /// @param skipUsed In a batch: a nonce already used returns 0 (skipped, reported) instead of
    /// reverting.
    /// @return keeperBit The signer's bit in vote bitmaps (0: skipped).
    function _accept(
        Context memory ctx,
        Service storage s,
        Attestation calldata a,
        bytes calldata signature,
        bool skipUsed
    ) internal returns (uint256 keeperBit) {
        if (a.deadline < block.timestamp) {
            revert AttestationExpired(a.deadline, block.timestamp);
        }
        uint256 maxDeadline = block.timestamp + ctx.config.attestationTtl;
        if (a.deadline > maxDeadline) revert DeadlineTooFar(a.deadline, maxDeadline);
        uint32 epoch = ctx.state.epoch;
        ctx.previousEpoch = a.epoch != epoch;
        if (ctx.previousEpoch && (epoch == 0 || a.epoch != epoch - 1)) revert WrongEpoch(a.epoch, epoch);

        address signer = _recover(_hashTypedDataV4(a.hash()), signature);
        KeeperSlot memory keeper = _keepers[signer];
        if (keeper.index == 0) revert NotKeeper(signer);
        if (a.configVersion != keeper.version) revert WrongConfigVersion(a.configVersion, keeper.version);

        KeeperService memory ks = s.keepers[signer];
        if (ks.version != keeper.version) ks = KeeperService(keeper.version, 0, 0, 0);
        uint64 nonce = a.nonce;
        if (nonce > ks.nonce) {
            // The old highest nonce becomes bit `shift - 1`; older ones move up with it.
            uint256 shift = nonce - ks.nonce;
            ks.window = shift > 64 ? 0 : uint64((uint256(ks.window) << shift) | (uint256(1) << (shift - 1)));
            ks.nonce = nonce;
        } else {
            uint256 age = ks.nonce - nonce;
            if (age == 0 || age > 64 || uint256(ks.window) & (uint256(1) << (age - 1)) != 0) {
                if (!skipUsed) revert NonceUsed(signer, ctx.serviceId, nonce);
                emit AttestationSkipped(ctx.serviceId, signer, nonce);
                return 0;
            }
            ks.window |= uint64(uint256(1) << (age - 1));
        }
        ks.lastAttestedAt = uint40(block.timestamp);
        s.keepers[signer] = ks;

        ctx.version = keeper.version;
        ctx.setSize = keeper.setSize;
        // From here on `ctx.config.quorum` is the effective quorum (F04); the config is not written back.
        ctx.config.quorum = uint8(_effectiveQuorum(ctx.config.quorum, keeper.setSize));
        ctx.state.lastAttestedAt = uint40(block.timestamp);
        if (ctx.state.readyVersion != uint24(keeper.version)) _voidReadiness(ctx);
        keeperBit = 1 << (keeper.index - 1);
        ctx.liveKnown |= uint32(keeperBit);
    }

    /// @dev Readiness earned under an older keeper set is not backed by the current one: cleared
    /// on the first attestation under the new set, before its verdicts apply.
    function _voidReadiness(Context memory ctx) internal {
        for (uint256 ready = ctx.state.ready; ready != 0; ready &= ready - 1) {
            emit EndpointReadinessChanged(ctx.serviceId, uint16(ready.lowest()), false);
        }
        ctx.state.ready = 0;
        ctx.state.readyVersion = uint24(ctx.version);
    }

    /// @dev Recovers a 65-byte (r, s, v) signature read straight from calldata. OpenZeppelin's
    /// ECDSA rejects high-s (malleable) signatures and reports a zero signer as invalid.
    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 sValue = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecover(digest, v, r, sValue);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert MalleableSignature(sValue);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
    }

    /// @dev Records each verdict as the keeper's vote and applies the transitions it completes.
    function _applyVerdicts(Context memory ctx, Service storage s, Attestation calldata a, uint256 keeperBit) internal {
        uint32 version = ctx.version;
        uint32 bit = uint32(keeperBit);
        uint256 n = a.verdicts.length;
        // Signed at the previous epoch: verdicts on endpoints the last change (or this call) touched
        // judged a state that is gone, and are ignored; the others still hold.
        uint256 superseded;
        if (ctx.previousEpoch) {
            _loadRoutes(ctx, s);
            superseded = ctx.routes.touched | ctx.touched;
        }
        for (uint256 i; i < n; ++i) {
            Verdict calldata v = a.verdicts[i];
            uint16 index = v.endpoint;
            if (index >= ctx.state.endpointCount) revert UnknownEndpoint(ctx.serviceId, index);
            if ((superseded >> index) & 1 != 0) continue;
            EndpointSlot memory e = s.endpoints[index];
            // A keeper's report may lag behind governance: verdicts on retired endpoints, and on an
            // earlier URL or occupant of the slot (another revision), are ignored.
            if (e.status == EndpointStatus.Retired || v.revision != e.revision) continue;
            if (e.voteVersion != version) {
                // Figures of an older keeper set are indexed by its keepers: void with its votes.
                if (e.voteVersion != 0) delete s.keeperLatencies[index];
                e.voteVersion = version;
                e.downVotes = 0;
                e.upVotes = 0;
            }
            if (v.healthy) {
                e.downVotes &= ~bit;
                _setLatency(ctx, s, index, _medianLatency(ctx, s, index, keeperBit.lowest(), v.latencyMs));
                // Hysteresis: healthy votes on a cooling-down endpoint do not count.
                bool coolingDown = e.status == EndpointStatus.Demoted && block.timestamp < e.cooldownUntil;
                if (e.status != EndpointStatus.Active && !coolingDown) e.upVotes |= bit;
            } else {
                e.downVotes |= bit;
                e.upVotes &= ~bit;
            }
            _evaluate(ctx, s, index, e);
            s.endpoints[index] = e;
        }
    }

    /* INTERNAL: transitions */

    /// @dev Applies the transition (if any) that the endpoint's current votes complete.
    function _evaluate(Context memory ctx, Service storage s, uint16 index, EndpointSlot memory e) internal {
        uint64 bit = uint64(1) << index;
        if (e.status == EndpointStatus.Active) {
            if (_isQuorum(ctx, s, e.downVotes)) {
                _demote(ctx, s, index, e);
            } else if (ctx.state.degraded & bit != 0) {
                ctx.state.degraded &= ~bit;
                emit DegradedCleared(ctx.serviceId, index);
            }
        } else if (e.status == EndpointStatus.Standby) {
            bool ready = ctx.state.ready & bit != 0;
            if (!ready && _isQuorum(ctx, s, e.upVotes)) {
                ctx.state.ready |= bit;
                ctx.state.regionsChecked = false;
                emit EndpointReadinessChanged(ctx.serviceId, index, true);
            } else if (ready && _isQuorum(ctx, s, e.downVotes)) {
                ctx.state.ready &= ~bit;
                emit EndpointReadinessChanged(ctx.serviceId, index, false);
            }
        } else if (e.status == EndpointStatus.Demoted) {
            if (block.timestamp >= e.cooldownUntil && _isQuorum(ctx, s, e.upVotes)) {
                e.status = EndpointStatus.Standby;
                ctx.state.ready |= bit;
                ctx.state.regionsChecked = false;
                emit EndpointStatusChanged(ctx.serviceId, index, EndpointStatus.Demoted, EndpointStatus.Standby);
                emit EndpointReadinessChanged(ctx.serviceId, index, true);
            }
        }
    }

    /// @dev Demotes an active endpoint a quorum judged unhealthy, replacing it with the best ready
    /// standby, unless a safety rail defers it (then it stays, flagged degraded).
    function _demote(Context memory ctx, Service storage s, uint16 index, EndpointSlot memory e) internal {
        uint64 bit = uint64(1) << index;
        _loadRoutes(ctx, s);
        if (_isFrozen(ctx)) return _defer(ctx, index, DeferReason.Frozen);
        if (!_windowAllows(ctx)) return _defer(ctx, index, DeferReason.BlastRadius);
        (bool found, uint16 replacement,) = _bestStandby(ctx, s, bit);
        if (!found && ctx.state.activeCount <= ctx.config.floor) return _defer(ctx, index, DeferReason.Floor);

        e.status = EndpointStatus.Demoted;
        e.cooldownUntil = uint40(block.timestamp + ctx.config.cooldown);
        e.downVotes = 0;
        e.upVotes = 0;
        _leave(ctx, bit);
        emit EndpointStatusChanged(ctx.serviceId, index, EndpointStatus.Active, EndpointStatus.Demoted);
        if (found) _promote(ctx, s, replacement);
    }

    function _defer(Context memory ctx, uint16 index, DeferReason reason) internal {
        uint64 bit = uint64(1) << index;
        // The alarm fires once per episode, not on every re-submission.
        if (ctx.state.degraded & bit != 0) return;
        ctx.state.degraded |= bit;
        emit DemotionDeferred(ctx.serviceId, index, reason);
    }

    /// @dev Takes an active endpoint out of the set (the caller sets its new status) and counts
    /// the change against the blast radius.
    function _leave(Context memory ctx, uint64 bit) internal pure {
        ctx.routes.active &= ~bit;
        ctx.touched |= bit;
        ctx.state.degraded &= ~bit;
        // Cannot underflow: the endpoint was active. Cannot overflow: bounded by maxDemotions.
        unchecked {
            --ctx.state.activeCount;
            ++ctx.routes.windowDemotions;
        }
        ctx.setChanged = true;
    }

    function _promote(Context memory ctx, Service storage s, uint16 index) internal {
        uint64 bit = uint64(1) << index;
        _loadRoutes(ctx, s);
        EndpointSlot storage e = s.endpoints[index];
        e.status = EndpointStatus.Active;
        e.downVotes = 0;
        e.upVotes = 0;
        ctx.state.ready &= ~bit;
        ctx.routes.active |= bit;
        ctx.touched |= bit;
        // Cannot overflow: at most MAX_ENDPOINTS are active.
        unchecked {
            ++ctx.state.activeCount;
        }
        ctx.setChanged = true;
        emit EndpointStatusChanged(ctx.serviceId, index, EndpointStatus.Standby, EndpointStatus.Active);
    }

    /// @dev After the votes: fill the set up to its target, replace degraded routes, then restore
    /// region diversity if a check is due. Reads nothing beyond the service state in the common
    /// case (set full, nothing degraded, regions checked).
    function _rebalance(Context memory ctx, Service storage s) internal {
        ServiceState memory st = ctx.state;
        bool fill = st.activeCount < ctx.config.targetActive && st.ready != 0;
        bool replace = st.degraded != 0 && (st.ready != 0 || st.activeCount > ctx.config.floor);
        // Without a ready standby no swap is possible: nothing owed, nothing deferred.
        bool swap = st.ready != 0 && !st.regionsChecked;
        if (st.ready == 0) st.swapDeferred = false;
        if (!fill && !replace && !swap) return;
        _loadRoutes(ctx, s);
        bool frozen = _isFrozen(ctx);
        if (!frozen) {
            while (ctx.state.activeCount < ctx.config.targetActive && ctx.state.ready != 0) {
                (bool found, uint16 next,) = _bestStandby(ctx, s, 0);
                if (!found) break;
                _promote(ctx, s, next);
            }
            // Degraded routes are replaced as soon as a rail allows it; a demotion deferred again
            // keeps its flag and does not re-fire the alarm.
            uint256 degraded = ctx.state.degraded;
            while (degraded != 0) {
                uint16 index = uint16(degraded.lowest());
                degraded &= degraded - 1;
                EndpointSlot memory e = s.endpoints[index];
                // A keeper-set rotation voids the votes that made it degraded.
                if (e.voteVersion != ctx.version || !_isQuorum(ctx, s, e.downVotes)) {
                    ctx.state.degraded &= ~(uint64(1) << index);
                    emit DegradedCleared(ctx.serviceId, index);
                    continue;
                }
                _demote(ctx, s, index, e);
                if (e.status == EndpointStatus.Demoted) s.endpoints[index] = e;
            }
        }
        // Fill and replacements never make a swap owed (see `regionsChecked`): check only if due.
        if (swap) _restoreRegions(ctx, s, frozen);
    }

    /// @dev While the set covers fewer than min(minRegions, active count) regions and a ready
    /// standby of an uncovered region exists, swaps the best such standby in for the weakest route
    /// of a doubled region, each swap within the blast radius; defers (with an alarm, once) while
    /// a rail forbids it.
    function _restoreRegions(Context memory ctx, Service storage s, bool frozen) internal {
        while (true) {
            (uint256 r0, uint256 r1) = _regionWords(ctx, s);
            uint256 covered = _regionMask(ctx.routes.active, r0, r1).count();
            uint256 wanted =
                ctx.config.minRegions < ctx.state.activeCount ? ctx.config.minRegions : ctx.state.activeCount;
            if (covered >= wanted) break;
            (bool found, uint16 next, bool uncovered) = _bestStandby(ctx, s, 0);
            if (!found || !uncovered) break;
            if (frozen) return _deferSwap(ctx, covered, DeferReason.Frozen);
            if (!_windowAllows(ctx)) return _deferSwap(ctx, covered, DeferReason.BlastRadius);

            uint16 out = _weakestDoubled(ctx, s);
            uint64 outBit = uint64(1) << out;
            bool wasDegraded = ctx.state.degraded & outBit != 0;
            EndpointSlot storage e = s.endpoints[out];
            e.status = EndpointStatus.Standby;
            e.downVotes = 0;
            e.upVotes = 0;
            _leave(ctx, outBit);
            emit EndpointStatusChanged(ctx.serviceId, out, EndpointStatus.Active, EndpointStatus.Standby);
            // No quorum judged it unhealthy (degraded routes are replaced before): it stays ready.
            if (!wasDegraded) {
                ctx.state.ready |= outBit;
                emit EndpointReadinessChanged(ctx.serviceId, out, true);
            }
            _promote(ctx, s, next);
        }
        ctx.state.regionsChecked = true;
        ctx.state.swapDeferred = false;
    }

    function _deferSwap(Context memory ctx, uint256 covered, DeferReason reason) internal {
        if (ctx.state.swapDeferred) return;
        ctx.state.swapDeferred = true;
        emit RegionSwapDeferred(ctx.serviceId, uint8(covered), ctx.config.minRegions, reason);
    }

    /// @dev Rolls the blast-radius window over if it elapsed; true if one more demotion (or
    /// region swap) fits in it.
    function _windowAllows(Context memory ctx) internal view returns (bool) {
        if (block.timestamp >= uint256(ctx.routes.windowStart) + ctx.config.demotionWindow) {
            ctx.routes.windowStart = uint40(block.timestamp);
            ctx.routes.windowDemotions = 0;
        }
        return ctx.routes.windowDemotions < ctx.config.maxDemotions;
    }

    /// @dev Picks the ready standby to promote: one whose region no remaining active route covers
    /// first, then the lowest latency, then the lowest index. One pass over the ready standbys;
    /// regions and latencies come from the packed lanes (each word read once). The pick must still
    /// be backed: its healthy votes a live quorum of the current keeper set; a standby no such
    /// quorum backs any more (its keepers went silent or changed their minds) loses its readiness
    /// here (`EndpointReadinessChanged(..., false)`) and the next best is tried.
    /// @param leaving An active endpoint about to leave (its region counts as uncovered).
    /// @return found Whether any backed standby is ready.
    /// @return best The pick.
    /// @return uncovered Whether the pick's region is one the remaining active routes miss.
    function _bestStandby(Context memory ctx, Service storage s, uint64 leaving)
        internal
        returns (bool found, uint16 best, bool uncovered)
    {
        if (ctx.state.ready == 0) return (false, 0, false);
        _loadRoutes(ctx, s);
        while (ctx.state.ready != 0) {
            (found, best, uncovered) =
                _pickStandby(s, ctx.state.ready, ctx.routes.active & ~leaving, ctx.state.endpointCount);
            EndpointSlot memory e = s.endpoints[best];
            if (e.voteVersion == ctx.version && _isQuorum(ctx, s, e.upVotes)) return (found, best, uncovered);
            ctx.state.ready &= ~(uint64(1) << best);
            emit EndpointReadinessChanged(ctx.serviceId, best, false);
        }
        return (false, 0, false);
    }

    /// @dev The active route to swap out for diversity: among routes whose region holds two or
    /// more active routes, the highest attested latency, then the highest index. The caller
    /// guarantees one exists (fewer regions than routes).
    function _weakestDoubled(Context memory ctx, Service storage s) internal view returns (uint16 weakest) {
        (uint256 r0, uint256 r1) = _regionWords(ctx, s);
        uint256 once;
        uint256 twice;
        uint256 active = ctx.routes.active;
        for (uint256 a = active; a != 0; a &= a - 1) {
            uint256 regionBit = uint256(1) << _region(r0, r1, a.lowest());
            if (once & regionBit != 0) twice |= regionBit;
            once |= regionBit;
        }
        uint256 worst;
        for (uint256 a = active; a != 0; a &= a - 1) {
            uint256 i = a.lowest();
            if (twice & (uint256(1) << _region(r0, r1, i)) == 0) continue;
            uint256 latency = _latency(s, i);
            if (latency >= worst) (weakest, worst) = (uint16(i), latency);
        }
    }

    /// @dev Writes the working copy back; bumps the epoch and emits the new set if it changed.
    function _commit(Context memory ctx, Service storage s) internal {
        if (ctx.setChanged) {
            // Cannot overflow in practice: one bump per route-set change.
            unchecked {
                ++ctx.state.epoch;
            }
            ctx.routes.touched = ctx.touched;
            emit RouteSetChanged(ctx.serviceId, ctx.state.epoch, uint256(ctx.routes.active).indices());
        }
        s.state = ctx.state;
        if (ctx.routesLoaded) s.routes = ctx.routes;
    }

    function _isFrozen(Context memory ctx) internal view returns (bool) {
        return block.timestamp < ctx.routes.frozenUntil;
    }

    /// @dev Enough distinct keepers, spanning enough distinct vantages.
    /// Votes expire with their keeper's liveness: only keepers that attested the service within
    /// `attestationTtl` (under the current keeper set) count. Keepers accepted in this call are
    /// live; the others cost a read of their (keeper, service) slot, only once the raw count
    /// reaches the quorum.
    function _isQuorum(Context memory ctx, Service storage s, uint32 votes) internal view returns (bool) {
        uint256 quorum = ctx.config.quorum;
        if (uint256(votes).count() < quorum) return false;
        uint256 live = votes & ctx.liveKnown;
        uint256 ttl = ctx.config.attestationTtl;
        for (uint256 unknown = votes & ~ctx.liveKnown; unknown != 0; unknown &= unknown - 1) {
            uint256 i = unknown.lowest();
            KeeperService memory ks = s.keepers[_keeperSigners[i]];
            if (ks.version == ctx.version && block.timestamp <= uint256(ks.lastAttestedAt) + ttl) {
                live |= uint256(1) << i;
            }
        }
        if (live.count() < quorum) return false;
        if (ctx.config.minVantages <= 1) return true;
        uint256 vantageIds = _keeperSet.vantageIds;
        uint256 vantages;
        uint256 remaining = live;
        while (remaining != 0) {
            uint256 keeper = remaining.lowest();
            remaining &= remaining - 1;
            vantages |= uint256(1) << ((vantageIds >> (4 * keeper)) & 0xf);
        }
        return vantages.count() >= ctx.config.minVantages;
    }

    /* INTERNAL: regions and latencies */

    /// @dev The region lane words (the second only when the service has more than 32 endpoints).
    function _regionWords(Context memory ctx, Service storage s) internal view returns (uint256 r0, uint256 r1) {
        return _regionWordsOf(s, ctx.state.endpointCount);
    }

    function _latency(Service storage s, uint256 index) internal view returns (uint32) {
        return uint32(s.latencyLanes[index >> 3] >> ((index & 7) << 5));
    }

    /// @dev Records `keeper`'s latest healthy latency figure for an endpoint and returns the median
    /// of the current keepers' figures (the upper one of two middles: making an endpoint look
    /// faster takes a strict majority of the figures), so no single keeper sets what promotion
    /// compares and clients read. Reads at most 4 slots (8 figures a slot).
    function _medianLatency(Context memory ctx, Service storage s, uint256 index, uint256 keeper, uint32 latency)
        internal
        returns (uint32)
    {
        uint256[4] storage lanes = s.keeperLatencies[index];
        uint256 shift = (keeper & 7) << 5;
        uint256 mine = lanes[keeper >> 3];
        uint256 figure = latency < type(uint32).max ? uint256(latency) + 1 : latency;
        if ((mine >> shift) & 0xffffffff != figure) {
            mine = (mine & ~(uint256(0xffffffff) << shift)) | (figure << shift);
            lanes[keeper >> 3] = mine;
        }
        uint256[] memory sorted = new uint256[](MAX_KEEPERS);
        uint256 n;
        uint256 words = (uint256(ctx.setSize) + 7) >> 3;
        for (uint256 w; w < words; ++w) {
            for (uint256 word = w == keeper >> 3 ? mine : lanes[w]; word != 0; word >>= 32) {
                uint256 x = word & 0xffffffff;
                if (x == 0) continue;
                // Insertion sort: at most MAX_KEEPERS figures.
                uint256 j = n++;
                for (; j != 0 && sorted[j - 1] > x; --j) {
                    sorted[j] = sorted[j - 1];
                }
                sorted[j] = x;
            }
        }
        // n >= 1: this keeper's figure was just recorded.
        return uint32(sorted[n >> 1] - 1);
    }

    /// @dev Records an endpoint's attested latency; emits `EndpointLatencyChanged` if it changed.
    function _setLatency(Context memory ctx, Service storage s, uint16 index, uint32 latency) internal {
        uint256 shift = (uint256(index) & 7) << 5;
        uint256 word = s.latencyLanes[index >> 3];
        if (uint32(word >> shift) == latency) return;
        s.latencyLanes[index >> 3] = (word & ~(uint256(0xffffffff) << shift)) | (uint256(latency) << shift);
        emit EndpointLatencyChanged(ctx.serviceId, index, latency);
    }
}
