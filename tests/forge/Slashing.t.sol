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
    uint256 internal _streak;
    uint256 internal _confirmed;

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
        uint256 slash = registry.params().slashAmount;
        uint256 stake = registry.stakeOf(peers[0]);
        for (uint256 i = 0; i < len; ++i) {
            _step((pattern >> i) & 1 == 1, stake, slash);
        }
        uint256 burned = _confirmed * slash > stake ? stake : _confirmed * slash;
        assertEq(registry.stakeOf(peers[0]), stake - burned, "stake = initial - slash per confirmed rejection");
    }

    /// @dev One settlement as the RoundManager books it, checked against the rule.
    function _step(bool rejected, uint256 stake0, uint256 slash) internal {
        address peer = peers[0];
        uint256 repBefore = registry.reputationOf(peer);
        uint256 stakeBefore = registry.stakeOf(peer);
        vm.prank(address(rm));
        registry.settleUpdate(peer, !rejected, 0);
        _streak = rejected ? _streak + 1 : 0;
        bool isConfirmed = _streak >= C;
        uint256 left = stake0 > _confirmed * slash ? stake0 - _confirmed * slash : 0;
        assertEq(stakeBefore - registry.stakeOf(peer), isConfirmed ? _min(slash, left) : 0, "burned exactly on a confirmed rejection");
        if (isConfirmed) ++_confirmed;
        assertEq(registry.peerInfo(peer).rejectStreak, _streak, "streak counted");
        uint256 threshold = registry.params().repThreshold;
        if (rejected && !isConfirmed && repBefore >= threshold) {
            assertTrue(registry.reputationOf(peer) >= threshold, "unconfirmed rejection stops at the threshold");
        }
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
