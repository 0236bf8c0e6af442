// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IRouteRegistry} from "../interfaces/IRouteRegistry.sol";

/// @notice What an endpoint URL may look like on-chain (see `IRouteRegistry.addEndpoint`): an
/// http, https, ws or wss URL of at most `MAX_LENGTH` bytes, printable ASCII only, with no user
/// info (`user:pass` before the host) in its authority. Secrets never go on-chain: a private endpoint is
/// registered as a template naming them (`https://host/v2/${KEY}`), filled by each reader from
/// its local configuration.
library EndpointUrl {
    /// @notice Longest URL accepted, in bytes.
    uint256 internal constant MAX_LENGTH = 256;

    /// @notice Reverts with `IRouteRegistry.InvalidUrl` naming what is wrong with `url`.
    function check(string memory url) internal pure {
        string memory why = problem(url);
        if (bytes(why).length != 0) revert IRouteRegistry.InvalidUrl(url, why);
    }

    /// @notice What is wrong with `url` under the rule above; empty when nothing is.
    function problem(string memory url) internal pure returns (string memory) {
        bytes memory b = bytes(url);
        if (b.length == 0) return "empty";
        if (b.length > MAX_LENGTH) return "longer than 256 bytes";
        for (uint256 i; i < b.length; ++i) {
            if (uint8(b[i]) < 0x21 || uint8(b[i]) > 0x7e) return "not printable ASCII";
        }
        uint256 start = _afterScheme(b);
        if (start == 0) return "scheme is not http, https, ws or wss";
        if (start == b.length) return "no host";
        for (uint256 i = start; i < b.length; ++i) {
            bytes1 c = b[i];
            if (c == "/" || c == "?" || c == "#") break;
            if (c == "@") return "credentials (user:pass@) in the URL";
        }
        return "";
    }

    /// @dev The index after `scheme://` for the allowed schemes, 0 for any other.
    function _afterScheme(bytes memory b) private pure returns (uint256) {
        if (_startsWith(b, "https://")) return 8;
        if (_startsWith(b, "http://")) return 7;
        if (_startsWith(b, "wss://")) return 6;
        if (_startsWith(b, "ws://")) return 5;
        return 0;
    }

    function _startsWith(bytes memory b, bytes memory prefix) private pure returns (bool) {
        if (b.length < prefix.length) return false;
        for (uint256 i; i < prefix.length; ++i) {
            if (b[i] != prefix[i]) return false;
        }
        return true;
    }
}
