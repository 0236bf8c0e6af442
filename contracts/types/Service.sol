// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Governance-set parameters of a service (a named route group).
struct ServiceConfig {
    /// @dev Chain id the endpoints must serve; 0 for non-EVM endpoints (e.g. an order gateway).
    uint64 chainId;
    /// @dev Number of active routes the registry aims for.
    uint8 targetActive;
    /// @dev Minimum number of active routes: a demotion that would go below it is deferred.
    uint8 floor;
    /// @dev Distinct regions wanted among active routes (at most `targetActive`): fill and
    /// promotion prefer uncovered regions, and a ready standby of an uncovered region is swapped
    /// in for the weakest route of a doubled region while the set covers fewer.
    uint8 minRegions;
    /// @dev Distinct keepers whose matching verdicts change an endpoint's state (>= 2); the
    /// effective quorum is the larger of this and a strict majority of the current keeper set.
    uint8 quorum;
    /// @dev Distinct keeper vantages a quorum must span (0 or 1: no constraint); at most `quorum`
    /// and at most the current keeper set's distinct vantages.
    uint8 minVantages;
    /// @dev Maximum demotions per `demotionWindow` (blast radius).
    uint8 maxDemotions;
    /// @dev Length of the blast-radius window, in seconds.
    uint32 demotionWindow;
    /// @dev Seconds a demoted endpoint waits before healthy votes may bring it back.
    uint32 cooldown;
    /// @dev Longest accepted attestation lifetime, and the age after which a route set is stale.
    uint32 attestationTtl;
}

/// @notice Lifecycle of an endpoint. Standby -> Active -> Demoted -> Standby ...; Retired is final.
enum EndpointStatus {
    /// @dev Not a slot in use.
    None,
    /// @dev Member of the service, not serving; eligible for promotion once ready.
    Standby,
    /// @dev In the authorised route set.
    Active,
    /// @dev Removed from the set by a keeper quorum; cooling down.
    Demoted,
    /// @dev Removed from the service by governance; never returns.
    Retired
}

/// @notice Why a quorum-backed demotion (or a region swap) did not happen (yet).
enum DeferReason {
    /// @dev No eligible standby and demoting would go below the floor.
    Floor,
    /// @dev `maxDemotions` already reached in the current window.
    BlastRadius,
    /// @dev The guardian froze keeper-driven changes.
    Frozen
}

/// @notice One authorised route as returned by `authorisedRoutes`.
struct Route {
    /// @dev Index of the endpoint within its service.
    uint16 id;
    /// @dev Where clients send requests.
    string url;
    /// @dev Region tag, e.g. "eu-west".
    string region;
    /// @dev Provider tag, e.g. "self-hosted".
    string provider;
    /// @dev Median of the current keepers' latest healthy latency figures, in milliseconds.
    uint32 latencyMs;
    /// @dev A keeper quorum judged it unhealthy but it could not be replaced (floor, blast radius, freeze).
    bool degraded;
}

/// @notice The authorised route set of a service, in one read.
struct RouteSet {
    /// @dev Topology epoch: increases with every change of the set, and only then.
    uint32 epoch;
    /// @dev Time of the last accepted attestation for the service.
    uint64 lastAttestedAt;
    /// @dev True while fewer than the effective quorum (max(`quorum`, keepers / 2 + 1)) current
    /// keepers attested within `attestationTtl`: the set is fail-static.
    bool stale;
    /// @dev The active routes.
    Route[] routes;
}

/// @notice Full view of one endpoint.
struct EndpointView {
    EndpointStatus status;
    /// @dev Standby with a healthy quorum: may be promoted.
    bool ready;
    /// @dev Active, judged unhealthy by a quorum, kept because it could not be replaced.
    bool degraded;
    uint32 latencyMs;
    /// @dev While Demoted: time before which healthy votes are ignored.
    uint64 cooldownUntil;
    /// @dev Bitmap of keeper indices currently voting unhealthy.
    uint32 downVotes;
    /// @dev Bitmap of keeper indices currently voting healthy (standby and demoted endpoints).
    uint32 upVotes;
    /// @dev What a verdict must name (`Verdict.revision`) to count: 0 for a new slot, bumped by
    /// every URL change and every reuse of a retired slot.
    uint32 revision;
    string url;
    string region;
    string provider;
    address operator;
}

/// @notice Live state of a service.
struct ServiceView {
    ServiceConfig config;
    uint32 epoch;
    uint64 lastAttestedAt;
    uint64 frozenUntil;
    uint16 endpointCount;
    uint8 activeCount;
    /// @dev Bitmaps over endpoint indices.
    uint64 activeMask;
    uint64 readyMask;
    uint64 degradedMask;
}
