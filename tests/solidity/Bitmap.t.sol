// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {vm} from "./utils/Vm.sol";
import {Bitmap} from "../../contracts/libraries/Bitmap.sol";

/// @notice Bitmap helpers against plain bit-by-bit references.
contract BitmapTest {
    /// F16: the constant-time lowest (and highest) set bit agree with a scan.
    function testFuzz_audit_F16_lowestAndHighestMatchNaive(uint256 bits) public pure {
        vm.assume(bits != 0);
        uint256 low;
        while ((bits >> low) & 1 == 0) {
            ++low;
        }
        uint256 high = 255;
        while ((bits >> high) & 1 == 0) {
            --high;
        }
        vm.assertEq(Bitmap.lowest(bits), low, "lowest");
        vm.assertEq(Bitmap.highest(bits), high, "highest");
        uint256 single = uint256(1) << (bits % 256);
        vm.assertEq(Bitmap.lowest(single), bits % 256, "lowest of a single bit");
        vm.assertEq(Bitmap.highest(single), bits % 256, "highest of a single bit");
    }

    function test_bitmap_edgeCases() public pure {
        vm.assertEq(Bitmap.lowest(0), 0, "lowest(0) is 0");
        vm.assertEq(Bitmap.highest(0), 0, "highest(0) is 0");
        vm.assertEq(Bitmap.lowest(type(uint256).max), 0, "all bits: lowest 0");
        vm.assertEq(Bitmap.highest(type(uint256).max), 255, "all bits: highest 255");
    }

    function testFuzz_bitmap_indicesAscendAndCount(uint64 bits) public pure {
        uint16[] memory ids = Bitmap.indices(bits);
        vm.assertEq(ids.length, Bitmap.count(bits), "one index per set bit");
        uint256 rebuilt;
        for (uint256 i; i < ids.length; ++i) {
            if (i > 0) vm.assertTrue(ids[i] > ids[i - 1], "ascending");
            rebuilt |= uint256(1) << ids[i];
        }
        vm.assertEq(rebuilt, bits, "the same bits");
    }
}
