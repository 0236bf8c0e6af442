// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Bitmap
/// @notice Small helpers over bitmaps of keeper and endpoint indices.
library Bitmap {
    /// @notice Number of set bits (Kernighan: one iteration per set bit, at most 64 here).
    function count(uint256 bits) internal pure returns (uint256 n) {
        while (bits != 0) {
            // Cannot underflow: bits != 0.
            unchecked {
                bits &= bits - 1;
                ++n;
            }
        }
    }

    /// @notice Index of the lowest set bit; `bits` must be non-zero.
    function lowest(uint256 bits) internal pure returns (uint256 index) {
        while (bits & 1 == 0) {
            bits >>= 1;
            // Cannot overflow: at most 255 shifts of a non-zero value.
            unchecked {
                ++index;
            }
        }
    }

    /// @notice The indices of the set bits, ascending.
    function indices(uint256 bits) internal pure returns (uint16[] memory out) {
        out = new uint16[](count(bits));
        uint256 n;
        for (uint256 i; bits != 0; ++i) {
            if (bits & 1 == 1) out[n++] = uint16(i);
            bits >>= 1;
        }
    }
}
