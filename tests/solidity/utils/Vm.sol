// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Vm
/// @notice The subset of Foundry's cheatcodes Lifeline's tests and scripts use. forge-std is not
/// available offline; these signatures match Foundry 1.7's cheatcode ABI.
interface Vm {
    /// @dev A log captured by `recordLogs`.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // Environment and accounts
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function label(address account, string calldata newLabel) external;
    function envUint(string calldata name) external view returns (uint256);
    function envAddress(string calldata name) external view returns (address);
    function envOr(string calldata name, address defaultValue) external view returns (address);
    function envOr(string calldata name, string calldata defaultValue) external view returns (string memory);

    // Execution control
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function warp(uint256 newTimestamp) external;
    function chainId(uint256 newChainId) external;
    function getCode(string calldata artifactPath) external view returns (bytes memory creationBytecode);
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256);
    /// @dev The current block timestamp. Read the clock with this after `warp`, never with
    /// `block.timestamp`: with via-IR, the optimizer may reuse a `block.timestamp` read from
    /// before the warp (the call is opaque to it, the opcode is not).
    function getBlockTimestamp() external view returns (uint256 timestamp);
    function assume(bool condition) external pure;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectEmit() external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function startBroadcast(uint256 privateKey) external;
    function stopBroadcast() external;
    function getBlockNumber() external view returns (uint256);
    function snapshotGasLastCall(string calldata name) external returns (uint256 gasUsed);

    // Files and JSON
    function projectRoot() external view returns (string memory);
    function readFile(string calldata path) external view returns (string memory);
    function createDir(string calldata path, bool recursive) external;
    function writeJson(string calldata json, string calldata path) external;
    function serializeAddress(string calldata objectKey, string calldata valueKey, address value)
        external
        returns (string memory json);
    function serializeUint(string calldata objectKey, string calldata valueKey, uint256 value)
        external
        returns (string memory json);
    function keyExistsJson(string calldata json, string calldata key) external view returns (bool);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonAddress(string calldata json, string calldata key) external pure returns (address);
    function toString(uint256 value) external pure returns (string memory);

    // Assertions (a failed one fails the test)
    function assertTrue(bool condition, string calldata error) external pure;
    function assertFalse(bool condition, string calldata error) external pure;
    function assertEq(uint256 left, uint256 right, string calldata error) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata error) external pure;
    function assertEq(address left, address right, string calldata error) external pure;
    function assertEq(bool left, bool right, string calldata error) external pure;
    function assertEq(string calldata left, string calldata right, string calldata error) external pure;
    function assertLe(uint256 left, uint256 right, string calldata error) external pure;
    function assertGe(uint256 left, uint256 right, string calldata error) external pure;
}

/// @dev The cheatcode address: address(uint160(uint256(keccak256("hevm cheat code")))).
Vm constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
