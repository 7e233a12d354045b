// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Params} from "../../contracts/ProtocolParams.sol";

import {Fixture} from "./Fixture.sol";

/// @title Fuzz test of the slashing line (docs/protocol.md, "Rejection and slashing")
/// @notice The registry's `settleUpdate`, called as the RoundManager would, over any sequence
///         of accepted / rejected updates: the stake burns exactly once per rejection that is
///         the C-th or later in a row, and an unconfirmed rejection never takes reputation
///         below the threshold.
contract SlashingLineFuzzTest is Fixture {
    uint256 internal constant C = 3;

    function setUp() public {
        Params memory p = testParams();
        p.slashAmount = 5 * TOKEN; // 20 confirmed rejections exhaust the stake
        p.slashAfterRejections = uint16(C);
        deploy(p, 2);
        joinAll();
    }

    /// @param pattern bit i set: the i-th update (of `len`) is rejected, else accepted.
    function testFuzz_stakeBurnsOnlyFromTheCthRejectionInARow(uint256 pattern, uint256 len) public {
        len = bound(len, 1, 64);
        address peer = peers[0];
        uint256 threshold = registry.params().repThreshold;
        uint256 slash = registry.params().slashAmount;
        uint256 stake = registry.stakeOf(peer);
        uint256 streak;
        uint256 confirmed;
        for (uint256 i = 0; i < len; ++i) {
            bool rejected = (pattern >> i) & 1 == 1;
            uint256 repBefore = registry.reputationOf(peer);
            vm.prank(address(rm));
            uint256 burned = registry.settleUpdate(peer, !rejected, 0);
            streak = rejected ? streak + 1 : 0;
            bool isConfirmed = streak >= C;
            uint256 want = isConfirmed && stake > confirmed * slash ? _min(slash, stake - confirmed * slash) : 0;
            assertEq(burned, want, "burned exactly on a confirmed rejection");
            if (isConfirmed) ++confirmed;
            assertEq(registry.peerInfo(peer).rejectStreak, streak, "streak counted");
            if (rejected && !isConfirmed && repBefore >= threshold) {
                assertTrue(registry.reputationOf(peer) >= threshold, "unconfirmed rejection stops at the threshold");
            }
        }
        uint256 expected = confirmed * slash > stake ? 0 : stake - confirmed * slash;
        assertEq(registry.stakeOf(peer), expected, "stake = initial - slash per confirmed rejection");
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
