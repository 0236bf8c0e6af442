// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Bitmap
/// @notice Small helpers over bitmaps of keeper and endpoint indices.
library Bitmap {
    /// @notice Number of set bits (Kernighan: one iteration per set bit; vote bitmaps hold at
    /// most 32, endpoint bitmaps at most 64).
    function count(uint256 bits) internal pure returns (uint256 n) {
        while (bits != 0) {
            // Cannot underflow: bits != 0.
            unchecked {
                bits &= bits - 1;
                ++n;
            }
        }
    }

    /// @notice Index of the lowest set bit; 0 when `bits` is 0.
    /// @dev Constant time, no loop: isolate the lowest set bit (bits & -bits), find which 32-bit
    /// word of the 256 holds it with a three-step binary search, then its place in that word with
    /// a de Bruijn multiply: the top five bits of `b * 0x077CB531` (mod 2^32) are distinct for
    /// each power of two `b` below 2^32 and index a 32-entry byte table.
    function lowest(uint256 bits) internal pure returns (uint256 index) {
        assembly ("memory-safe") {
            let b := and(bits, sub(0, bits))
            index := shl(7, lt(0xffffffffffffffffffffffffffffffff, b))
            index := or(index, shl(6, lt(0xffffffffffffffff, shr(index, b))))
            index := or(index, shl(5, lt(0xffffffff, shr(index, b))))
            // (b >> index) < 2^32: multiplying by the constant shifted up 224 bits leaves the
            // 32-bit product in the top word bits, and its top five bits on shr(251).
            index := or(
                index,
                byte(
                    shr(251, mul(shr(index, b), shl(224, 0x077cb531))),
                    0x00011c021d0e18031e16140f191104081f1b0d17151310071a0c12060b050a09
                )
            )
        }
    }

    /// @notice Index of the highest set bit; 0 when `bits` is 0 (or 1).
    /// @dev Constant time: a fixed eight-step binary search.
    function highest(uint256 bits) internal pure returns (uint256 index) {
        assembly ("memory-safe") {
            let f := shl(7, lt(0xffffffffffffffffffffffffffffffff, bits))
            index := f
            bits := shr(f, bits)
            f := shl(6, lt(0xffffffffffffffff, bits))
            index := or(index, f)
            bits := shr(f, bits)
            f := shl(5, lt(0xffffffff, bits))
            index := or(index, f)
            bits := shr(f, bits)
            f := shl(4, lt(0xffff, bits))
            index := or(index, f)
            bits := shr(f, bits)
            f := shl(3, lt(0xff, bits))
            index := or(index, f)
            bits := shr(f, bits)
            f := shl(2, lt(0xf, bits))
            index := or(index, f)
            bits := shr(f, bits)
            f := shl(1, lt(0x3, bits))
            index := or(index, f)
            bits := shr(f, bits)
            index := or(index, lt(0x1, bits))
        }
    }

    /// @notice The indices of the set bits, ascending (one iteration per set bit).
    function indices(uint256 bits) internal pure returns (uint16[] memory out) {
        out = new uint16[](count(bits));
        for (uint256 n; bits != 0; ++n) {
            out[n] = uint16(lowest(bits));
            // Cannot underflow: bits != 0.
            unchecked {
                bits &= bits - 1;
            }
        }
    }
}
