// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Attestation} from "../types/Attestation.sol";
import {ServiceConfig, EndpointStatus, DeferReason, RouteSet, EndpointView, ServiceView} from "../types/Service.sol";

/// @title IRouteRegistry: the on-chain spec of Lifeline
/// @notice Holds, per service, its endpoints and the health votes of independent keepers, and
/// reconfigures the authorised route set by itself when a keeper quorum agrees.
///
/// Two powers, kept apart:
/// - MEMBERSHIP (which endpoints MAY serve) is governance: services, endpoints, the keeper set.
///   Governance cannot set health: an endpoint it adds starts as a Standby that is not ready.
/// - HEALTH (which endpoints DO serve now) is the keepers' quorum, through signed attestations.
///   No single key can flip the route set (quorum >= 2).
///
/// Quorum (effective): a transition needs max(`quorum`, a strict majority of the current keeper
/// set: `keepers / 2 + 1`) matching votes of distinct, live keepers (and `minVantages`). So a
/// keeper minority never overrides the rest (with `quorum` 2, 2 of 32 keepers cannot steer a set
/// that 30 others judge), and opposing verdicts cannot both stand: a keeper votes one way per
/// endpoint, and two disjoint strict majorities do not exist, so an endpoint is never judged
/// healthy and unhealthy at once and its readiness does not flip on re-submitted votes.
/// Fail static: while fewer keepers than the effective quorum are live (see Liveness), no quorum
/// can form, so no endpoint changes state and the route set stays as it is; the service then
/// reads `stale` (`authorisedRoutes`).
///
/// Endpoint lifecycle (per service, indices are stable):
///
///     addEndpoint --> Standby --(healthy quorum: ready)--> promoted --> Active
///                      ^  ^                                              |  |
///                      |  +---(swapped out for a region: stays ready)----+  |
///                      |                                (unhealthy quorum)  v
///                      +--(cooldown elapsed + healthy quorum)----------- Demoted
///     retireEndpoint (governance, not while Active) --> Retired (final for that occupant)
///     updateEndpoint with a new URL: Active --> Standby (not ready), a ready standby --> not ready
///
/// REVISIONS (what a verdict judged): each endpoint slot has a `revision` (`EndpointView`), 0 when
/// first added. Every verdict names the revision it judged (`Verdict.revision`); a verdict about
/// another revision is ignored (like one about a retired endpoint), so a vote cast about one
/// target never counts for another. The revision increases when:
/// - governance changes the endpoint's URL (`updateEndpoint`): the new URL is a target no keeper
///   judged, so the endpoint leaves service at once: an active route goes back to Standby, not
///   ready, and is replaced in the same transaction by the usual promotion (uncovered region
///   first, then latency; a new epoch and `RouteSetChanged`); the change is refused
///   (`EndpointIsActive`) when no standby is ready and the set is at its floor. A ready standby
///   loses its readiness. Its votes and latency figures are dropped: it serves again only after a
///   fresh healthy quorum about the new URL;
/// - a retired slot is reused (`addEndpoint` once all `MAX_ENDPOINTS` indices were handed out
///   takes the lowest retired one): the new occupant starts as a Standby that is not ready, with
///   no votes, no latency and its own region, and no verdict about the old occupant applies.
///
/// Votes are bitmaps of keeper indices stored per endpoint; a keeper's vote stands until it
/// changes it, the endpoint changes state or revision (see REVISIONS), or the keeper set is
/// rotated (config version bump).
/// A vote counts only while its keeper is live for the service (it attested the service within
/// `attestationTtl`, see Liveness): a keeper that went silent no longer helps complete a quorum,
/// and its vote counts again once it attests. Readiness earned under an older keeper set is not
/// backed by the current one: the first attestation under a new set clears every ready flag
/// (`EndpointReadinessChanged(..., false)`) before its verdicts apply, and standbys become ready
/// again only by a quorum of the new set.
/// A transaction that changes the active set (or, by governance, the URL of an active route)
/// bumps the service's epoch once and emits one `RouteSetChanged` carrying the new set.
/// Epoch binding: an attestation signed at the current epoch applies whole; one signed at the
/// previous epoch is accepted too, but its verdicts on endpoints the last change touched (those
/// that left or joined the set, or whose URL changed) are ignored, so a change voids no in-flight
/// vote about an unrelated endpoint and a burst of failures converges; older epochs are refused
/// (`WrongEpoch`).
///
/// PROMOTION: a ready standby is promoted to fill the set up to `targetActive` and to replace a
/// demoted route, only while it is backed: its healthy votes still form a quorum of live keepers
/// of the current set. Readiness no such quorum backs any more (its keepers went silent or changed
/// their minds) is cleared when promotion would use it (`EndpointReadinessChanged(..., false)`) and
/// the next best standby is tried; so while too few keepers are live, nothing is promoted either.
/// The pick: a standby whose region no remaining active route covers first, then the lowest
/// latency, then the lowest index. So fill and failover cover missing regions before adding a
/// second route in a covered one.
///
/// LATENCY (what promotion compares and clients read, `latencyMs`): the median of the current
/// keepers' latest healthy figures for the endpoint (each keeper's last healthy verdict; the upper
/// middle of an even count), not the last writer's, so no single keeper picks the promoted standby
/// or the figure clients see: making an endpoint look faster takes a strict majority of the
/// figures. A keeper-set change voids the figures with the votes (the first verdict under the new
/// set starts afresh).
///
/// REGIONS (`minRegions`): while the active set covers fewer than min(`minRegions`, active
/// count) distinct regions and a ready standby of an uncovered region exists, the registry swaps
/// the best such standby in for the weakest route of a doubled region (a region with two or more
/// active routes; weakest = highest attested latency, then highest index). The route swapped out
/// returns to Standby and stays ready (no quorum judged it unhealthy). A swap keeps the active
/// count (never below the floor) and counts as one demotion against `maxDemotions` per
/// `demotionWindow`. While the service is frozen or its demotion window is exhausted, the swap is
/// deferred: `RegionSwapDeferred` fires (once per episode) and the swap completes on the first
/// attestation after the rail lifts. Invariant: after every attestation, the active set covers at
/// least min(`minRegions`, active count, regions among the active routes and ready standbys)
/// regions, unless such a deferral is in force.
///
/// Safety rails: the active count never drops below `floor` (a failing route with no
/// replacement stays, flagged degraded, and `DemotionDeferred` fires as an alarm); at most
/// `maxDemotions` per `demotionWindow`; a guardian may freeze keeper-driven changes of a service
/// for at most `MAX_FREEZE` at a time, and the freeze expires by itself. A freeze cannot be
/// renewed back to back: after a freeze ends (it expires, or `unfreeze` lifts it), the guardian
/// cannot freeze that service again for as long as the freeze lasted, and at least
/// `MIN_FREEZE_GAP`; so a service is frozen at most half the time, never more than `MAX_FREEZE`
/// in a row.
///
/// Vantages: a service's `minVantages` never exceeds the distinct vantages of the current keeper
/// set: `createService`/`configureService` refuse such a config and `setKeepers` refuses a set
/// with fewer distinct vantages than some service requires (as it refuses one smaller than some
/// service's quorum), so a vantage requirement can never silently stop failover.
/// `keeperSetBounds` reports both sides.
///
/// Events: every change a client or the status page shows has an event, so the full state can
/// be rebuilt from logs: membership (`ServiceCreated`, `ServiceConfigured`, `ServiceRemoved`, `EndpointAdded`,
/// `EndpointUpdated`, `EndpointRetired`, `KeeperSetUpdated`), state and readiness
/// (`EndpointStatusChanged`, `EndpointReadinessChanged`, also when retiring a ready standby),
/// the set (`RouteSetChanged`), latency (`EndpointLatencyChanged`), the degraded flag (set by
/// `DemotionDeferred`, cleared by `DegradedCleared` or by the route leaving the set), rails
/// (`RegionSwapDeferred`, `Frozen`, `Unfrozen`). Readiness belongs to standbys: an endpoint
/// leaving Standby (`EndpointStatusChanged`) is no longer ready, without a readiness event.
///
/// Nonces (replay): each keeper has a nonce window per service, so attestations about different
/// services never wait for each other, and within a service they may land out of order. A nonce is
/// accepted once: when above the highest accepted one, or among the 64 below it and not used yet;
/// older ones count as used. `attest` reverts on a used nonce (`NonceUsed`); `attestBatch` skips
/// such a member (`AttestationSkipped`, and a bit in its return value) and applies the others, so
/// front-running one member cannot sink a relayed batch. Windows belong to the keeper-set version
/// (signatures of an older version fail `WrongConfigVersion`): a rotation starts every window
/// afresh, so a keeper that reached nonce `type(uint64).max` is never locked out for good.
///
/// Liveness: each accepted attestation records its keeper's last attestation time for the
/// service (`keeperLiveness`). A service is `stale` while fewer than the effective quorum
/// (max(`quorum`, `keepers / 2 + 1`)) keepers of the current set attested it within
/// `attestationTtl`; one live keeper cannot keep it fresh, and a stale set is fail-static.
///
/// Roles: the admin (OpenZeppelin `AccessControlDefaultAdminRules`: exactly one, handed over in
/// two steps, `beginDefaultAdminTransfer` then `acceptDefaultAdminTransfer` by the new admin after
/// `defaultAdminDelay`; never by `grantRole`) grants and revokes the governor (membership,
/// keeper-set proposals) and guardian (freeze, cancel a keeper-set proposal) roles; the three are
/// separate constructor arguments.
///
/// Reentrancy: the registry makes no external calls (the only call is the ecrecover precompile,
/// a staticcall), holds no ether and no tokens, so there is nothing to re-enter.
///
/// Cost: an attestation that changes nothing reads one slot each of the service config and state
/// and the keeper, and writes the keeper's slot for the service (nonce window, liveness); promotion reads each ready standby's region and latency from packed lanes (32
/// regions, 8 latencies a slot) with a constant-time lowest-set-bit, so choosing among N ready
/// standbys costs about N/8 storage reads; `setKeepers` is O(keepers) and `removeService` O(1), whatever the number of
/// services.
///
/// Portability: compiled for the `shanghai` EVM (no Cancun opcodes such as MCOPY, TLOAD/TSTORE),
/// so it deploys and runs on any chain from Shanghai on.
interface IRouteRegistry {
    /* ERRORS */

    /// @notice The service does not exist.
    error UnknownService(bytes32 serviceId);
    /// @notice `createService` for an id that already exists, or that was removed (ids are never reused).
    error ServiceExists(bytes32 serviceId);
    /// @notice The endpoint index is not registered in the service.
    error UnknownEndpoint(bytes32 serviceId, uint256 endpoint);
    /// @notice The service already holds `MAX_ENDPOINTS` endpoints and none is retired (to reuse).
    error TooManyEndpoints(bytes32 serviceId);
    /// @notice The service has used 255 distinct regions (region ids are never reused): an
    /// endpoint can still be added in one of them.
    error TooManyRegions(bytes32 serviceId);
    /// @notice Governance tried to retire an endpoint that is serving (keepers must demote it first),
    /// or to change the URL of an active route that no ready standby can replace at the floor.
    error EndpointIsActive(bytes32 serviceId, uint256 endpoint);
    /// @notice The endpoint is already retired.
    error EndpointIsRetired(bytes32 serviceId, uint256 endpoint);
    /// @notice A service config field is out of range; `field` names it.
    error InvalidConfig(string field, uint256 value);
    /// @notice An endpoint URL is refused (see `addEndpoint`); `reason` says why.
    error InvalidUrl(string url, string reason);
    /// @notice A keeper-set argument is invalid; `field` names it.
    error InvalidKeeperSet(string field, uint256 value);
    /// @notice The attestation's deadline has passed.
    error AttestationExpired(uint64 deadline, uint256 nowTs);
    /// @notice The attestation's deadline is further away than the service's `attestationTtl`.
    error DeadlineTooFar(uint64 deadline, uint256 maxDeadline);
    /// @notice Signed under another keeper-set version (e.g. the signer was rotated out).
    error WrongConfigVersion(uint32 signed, uint32 current);
    /// @notice Signed against a topology epoch other than the service's current or previous one.
    error WrongEpoch(uint32 signed, uint32 current);
    /// @notice The signature is malformed or recovers to no address.
    error InvalidSignature();
    /// @notice The signature's s value is in the upper half of the curve order (malleable copy).
    error MalleableSignature(bytes32 s);
    /// @notice The recovered signer is not in the current keeper set.
    error NotKeeper(address signer);
    /// @notice The keeper's nonce for this service was already used, or lies more than 64 below its
    /// highest accepted one (replay).
    error NonceUsed(address keeper, bytes32 serviceId, uint64 nonce);
    /// @notice The same keeper signed twice in one batch.
    error DuplicateKeeper(address keeper);
    /// @notice A batch with no attestations or mismatched lengths.
    error InvalidBatch(uint256 attestations, uint256 signatures);
    /// @notice A batch mixing services.
    error MixedServices(bytes32 first, bytes32 other);
    /// @notice `activateKeepers` or `cancelKeepers` without a proposed keeper set.
    error NoPendingKeeperSet();
    /// @notice `activateKeepers` before the proposal's delay elapsed.
    error KeeperSetNotDue(uint64 activatesAt, uint256 nowTs);
    /// @notice A freeze longer than `MAX_FREEZE`.
    error FreezeTooLong(uint256 duration, uint256 max);
    /// @notice A freeze while one is in force, or before the gap after the last one elapsed.
    error FreezeTooSoon(bytes32 serviceId, uint64 nextFreezeAt);

    /* EVENTS */

    /// @notice A batch member was skipped because its nonce was already used (e.g. it landed on its
    /// own, or was front-run); the other members were applied.
    event AttestationSkipped(bytes32 indexed serviceId, address indexed keeper, uint64 nonce);
    /// @notice A service was created.
    event ServiceCreated(bytes32 indexed serviceId, string name, ServiceConfig config);
    /// @notice A service was removed by governance (`removeService`); its id is unknown from now on.
    event ServiceRemoved(bytes32 indexed serviceId);
    /// @notice A service's config was changed by governance.
    event ServiceConfigured(bytes32 indexed serviceId, ServiceConfig config);
    /// @notice An endpoint was added (as a Standby, not ready). For a reused (retired) index, the
    /// endpoint starts afresh: new revision, no votes, no latency (`EndpointLatencyChanged` to 0
    /// first if it had one), this region.
    event EndpointAdded(
        bytes32 indexed serviceId, uint16 indexed endpoint, string url, string region, string provider, address operator
    );
    /// @notice An endpoint's URL, provider or operator was changed by governance. A new URL takes
    /// the endpoint out of service (see REVISIONS): for an active route, `EndpointStatusChanged`
    /// (to Standby, and the replacement's to Active) and `RouteSetChanged` with a new epoch follow;
    /// for a ready standby, `EndpointReadinessChanged(..., false)`.
    event EndpointUpdated(
        bytes32 indexed serviceId, uint16 indexed endpoint, string url, string provider, address operator
    );
    /// @notice An endpoint was retired by governance.
    event EndpointRetired(bytes32 indexed serviceId, uint16 indexed endpoint);
    /// @notice A keeper set was proposed; `activateKeepers` installs it (as `configVersion`) from
    /// `activatesAt` on, unless the guardian or the admin cancels it first.
    event KeeperSetProposed(uint32 indexed configVersion, address[] signers, bytes32[] vantages, uint64 activatesAt);
    /// @notice The proposed keeper set (`configVersion`) was cancelled.
    event KeeperSetCancelled(uint32 indexed configVersion);
    /// @notice The keeper set was replaced; every vote cast under an older version is void.
    event KeeperSetUpdated(uint32 indexed configVersion, address[] signers, bytes32[] vantages);
    /// @notice An endpoint moved from one state to another by keeper quorum.
    event EndpointStatusChanged(
        bytes32 indexed serviceId, uint16 indexed endpoint, EndpointStatus from, EndpointStatus to
    );
    /// @notice A standby (or cooled-down demoted endpoint) gained (`ready`) or lost a healthy quorum;
    /// also `ready` for a route swapped out for region diversity, and not ready for a ready standby
    /// retired by governance.
    event EndpointReadinessChanged(bytes32 indexed serviceId, uint16 indexed endpoint, bool ready);
    /// @notice The latency of an endpoint (the median of the keepers' figures, shown to clients in
    /// its route) changed.
    event EndpointLatencyChanged(bytes32 indexed serviceId, uint16 indexed endpoint, uint32 latencyMs);
    /// @notice The authorised route set changed: the one event clients follow.
    event RouteSetChanged(bytes32 indexed serviceId, uint32 indexed epoch, uint16[] routes);
    /// @notice Alarm: a quorum judged an active endpoint unhealthy but it stays (degraded).
    event DemotionDeferred(bytes32 indexed serviceId, uint16 indexed endpoint, DeferReason reason);
    /// @notice An active route's degraded flag was cleared while it stays in the set (the quorum
    /// judging it unhealthy dissolved, or a keeper-set rotation voided it).
    event DegradedCleared(bytes32 indexed serviceId, uint16 indexed endpoint);
    /// @notice Alarm: the set covers `coveredRegions` < `minRegions` regions and a ready standby of
    /// an uncovered region could restore diversity, but the freeze (`Frozen`) or the blast radius
    /// (`BlastRadius`) defers the swap. Fires once per episode.
    event RegionSwapDeferred(bytes32 indexed serviceId, uint8 coveredRegions, uint8 minRegions, DeferReason reason);
    /// @notice The guardian froze keeper-driven changes of a service until `until`.
    event Frozen(bytes32 indexed serviceId, uint64 until);
    /// @notice A freeze was lifted before it expired.
    event Unfrozen(bytes32 indexed serviceId);

    /* GOVERNANCE (membership) */

    /// @notice Creates a service. Requires the governor role.
    /// @param serviceId Usually `keccak256(bytes(name))`, e.g. of "eth-mainnet/rpc".
    /// @param name Human-readable name, emitted only.
    function createService(bytes32 serviceId, string calldata name, ServiceConfig calldata config) external;

    /// @notice Removes a service for good. Requires the governor role. From then on every call
    /// about it (views, attestations, governance) reverts `UnknownService`, its id can never be
    /// created again (`ServiceExists`, so nothing it left in storage is ever read again), it leaves
    /// `serviceIds` (the last id moves into its place), and its `quorum` and `minVantages` no
    /// longer bound keeper sets. O(1) in the number of services, like `setKeepers`.
    function removeService(bytes32 serviceId) external;

    /// @notice Replaces a service's config. Takes effect on the next attestation; never
    /// demotes by itself. Requires the governor role. Both this and `createService` refuse a
    /// `minVantages` above `quorum` or above the current keeper set's distinct vantages.
    function configureService(bytes32 serviceId, ServiceConfig calldata config) external;

    /// @notice Adds an endpoint as a Standby that is not ready: only a keeper quorum can make it serve.
    /// Requires the governor role. Indices are handed out in order; once all `MAX_ENDPOINTS` are,
    /// the lowest retired index is reused under a new revision (see REVISIONS), else
    /// `TooManyEndpoints`. A service names at most 255 distinct regions over its life
    /// (`TooManyRegions`). The URL must be http, https, ws or wss, at most 256 bytes of
    /// printable ASCII, with no user info (`user:pass` before the host; `InvalidUrl` otherwise): secrets never go on-chain;
    /// a private endpoint is registered as a template (`https://host/v2/${KEY}`) that each
    /// keeper and client fills from its own configuration, for the hosts it allows.
    /// @return endpoint The new endpoint's index within the service.
    function addEndpoint(
        bytes32 serviceId,
        string calldata url,
        string calldata region,
        string calldata provider,
        address operator
    ) external returns (uint16 endpoint);

    /// @notice Changes an endpoint's URL, provider and operator (not its region, which drives
    /// diversity). Requires the governor role. A new URL bumps the endpoint's revision and takes it
    /// out of service until a fresh healthy quorum (see REVISIONS): an active route is replaced by
    /// the best ready standby (new epoch, `RouteSetChanged`), or just leaves the set above the
    /// floor; at the floor with no ready standby the call reverts (`EndpointIsActive`).
    function updateEndpoint(
        bytes32 serviceId,
        uint16 endpoint,
        string calldata url,
        string calldata provider,
        address operator
    ) external;

    /// @notice Retires a non-active endpoint. Requires the governor role. A ready standby loses its
    /// readiness (`EndpointReadinessChanged(..., false)`). The slot may later be reused by
    /// `addEndpoint` for a new endpoint, under a new revision.
    function retireEndpoint(bytes32 serviceId, uint16 endpoint) external;

    /// @notice Proposes a new keeper set; it replaces the current one only through
    /// `activateKeepers`, `keeperSetDelay` seconds later (a new proposal replaces a pending one and
    /// restarts the delay; the guardian or the admin can `cancelKeepers`), so no single governance
    /// key can install keepers and force routes at once. With a delay of 0 (allowed only on chain
    /// 31337, for local devnets) the set is installed in this call. Installing bumps the config
    /// version, voiding every vote and signature made under the previous one. Requires the
    /// governor role. Refuses (when proposed, and again when installed) a set smaller
    /// than the largest service quorum, or with fewer distinct vantages than the largest service
    /// `minVantages` (see `keeperSetBounds`). Costs O(keepers), independent of the number of services.
    /// @param signers Keeper addresses, at most `MAX_KEEPERS`, no duplicates, no zero address.
    /// @param vantages Each keeper's vantage tag (e.g. its region), same length as `signers`.
    function setKeepers(address[] calldata signers, bytes32[] calldata vantages) external;

    /// @notice Installs the proposed keeper set once its delay elapsed (`KeeperSetUpdated`).
    /// Requires the governor role.
    function activateKeepers() external;

    /// @notice Drops the proposed keeper set (`KeeperSetCancelled`). Requires the guardian or the
    /// admin role.
    function cancelKeepers() external;

    /// @notice Freezes keeper-driven changes of the active set of a service for `duration`
    /// seconds (at most `MAX_FREEZE`); votes and liveness are still recorded. Requires the guardian
    /// role. Reverts with `FreezeTooSoon` while a freeze is in force (a freeze cannot be extended)
    /// and until the gap after the last freeze elapsed: as long as that freeze lasted, at least
    /// `MIN_FREEZE_GAP`.
    function freeze(bytes32 serviceId, uint64 duration) external;

    /// @notice Lifts a freeze early; the gap before the next freeze is as long as the freeze
    /// actually lasted (at least `MIN_FREEZE_GAP`). Requires the guardian role.
    function unfreeze(bytes32 serviceId) external;

    /* KEEPERS (health) */

    /// @notice Records one keeper's attestation and applies any transition its votes complete.
    /// Anyone may relay it. Checks, in order: service, deadline (not past, not beyond the
    /// service's `attestationTtl`), epoch, signature (65 bytes, non-malleable, non-zero signer),
    /// keeper membership, config version, nonce (the signer's window for the service). Accepting it
    /// records the keeper's liveness for the service (`keeperLiveness`) and the service's `lastAttestedAt`.
    /// Emits no event of its own (the calldata is the record); transitions emit theirs.
    function attest(Attestation calldata attestation, bytes calldata signature) external;

    /// @notice As `attest` for several keepers' attestations of the same service in one call;
    /// the set changes at most once (one epoch bump, one event). A member whose nonce was already
    /// used is skipped (`AttestationSkipped`) instead of reverting the whole batch.
    /// @return skipped Bit i set: member i was skipped.
    function attestBatch(Attestation[] calldata attestations, bytes[] calldata signatures)
        external
        returns (uint256 skipped);

    /* VIEWS */

    /// @notice The authorised route set of a service, with its epoch and staleness, in one call.
    function authorisedRoutes(bytes32 serviceId) external view returns (RouteSet memory);

    /// @notice Config and live state of a service.
    function service(bytes32 serviceId) external view returns (ServiceView memory);

    /// @notice Every service id, in creation order, except that removing a service moves the last
    /// id into its place.
    function serviceIds() external view returns (bytes32[] memory);

    /// @notice Full state of one endpoint.
    function endpoint(bytes32 serviceId, uint16 endpoint) external view returns (EndpointView memory);

    /// @notice The keeper set waiting for activation (`activatesAt` 0: none).
    function pendingKeepers()
        external
        view
        returns (address[] memory signers, bytes32[] memory vantages, uint64 activatesAt);

    /// @notice Seconds between a keeper-set proposal and its activation (a deploy parameter).
    function keeperSetDelay() external view returns (uint32);

    /// @notice The current keeper set and its config version.
    function keepers() external view returns (uint32 configVersion, address[] memory signers, bytes32[] memory vantages);

    /// @notice Both sides of the keeper-set checks: the current set's distinct vantages, and what
    /// any new set must have: at least `minKeepers` signers (the largest service quorum) and at
    /// least `minDistinctVantages` distinct vantages (the largest service `minVantages`; 0 if none
    /// requires more than one).
    function keeperSetBounds()
        external
        view
        returns (uint8 distinctVantages, uint8 minKeepers, uint8 minDistinctVantages);

    /// @notice Whether a keeper is in the current set, and its highest accepted nonce and last
    /// attestation time for a service under the current keeper-set version (0 if none, also for
    /// an unknown service: membership alone can be read with any id).
    function keeperState(address keeper, bytes32 serviceId)
        external
        view
        returns (bool active, uint8 index, uint64 lastNonce, uint64 lastAttestedAt);

    /// @notice Each current keeper's last attestation time for the service under the current
    /// keeper-set version (0 if none), and how many attested within `attestationTtl` (`live`); the
    /// service is stale while `live` is below the effective quorum, max(`quorum`,
    /// `signers.length / 2 + 1`).
    function keeperLiveness(bytes32 serviceId)
        external
        view
        returns (address[] memory signers, uint64[] memory lastAttestedAt, uint256 live);

    /// @notice The EIP-712 digest a keeper signs for `attestation` on this registry.
    function attestationDigest(Attestation calldata attestation) external view returns (bytes32);
}
