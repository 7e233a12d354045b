// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {Params} from "../../contracts/ProtocolParams.sol";
import {PeerRegistry} from "../../contracts/PeerRegistry.sol";

/// @notice The sweep books every trainer's update once. The attacker (found by an outside
///         probe): a trainer whose stake a confirmed rejection exhausts is removed (Inactive)
///         by the sweep; reactivating, or leaving, withdrawing and joining again, between two
///         finalize batches of the same round appended it to the member array, where the sweep
///         met it again and booked the same update a second time (a second slash of the stake
///         just added, the reject streak counted twice). A client that reactivates on
///         PeerInactive did this by itself.
contract RebookingTest is Fixture {
    function setUp() public {
        Params memory p = testParams();
        p.slashAmount = p.minStake; // one confirmed rejection exhausts the stake
        p.slashAfterRejections = 1;
        deploy(p, 6);
        joinAll(); // peers[0] sits at member position 0: the sweep removes it in its first batch
    }

    /// @dev Every seat accepts every update except `target`, which every auditor rejects.
    function _rejectOnly(uint256 round, uint256 target) internal {
        address[] memory c = rm.committeeOf(round);
        for (uint256 pass = 0; pass < 2; ++pass) {
            for (uint256 s = 0; s < c.length; ++s) {
                uint256[] memory idx = rm.assignmentsOf(round, c[s]);
                bool[] memory acc = new bool[](idx.length);
                for (uint256 j = 0; j < idx.length; ++j) acc[j] = idx[j] != target;
                bytes32 commitment = rm.voteCommitment(round, c[s], idx, acc, saltOf(round, c[s]));
                vm.prank(c[s]); // after the view call above: a prank applies to the next call only
                if (pass == 0) rm.commitVotes(round, commitment);
                else rm.revealVotes(round, idx, acc, saltOf(round, c[s]));
            }
        }
    }

    /// @dev One round in which peers[0]'s update is rejected, finalized one item at a time; the
    ///      victim comes back (`how`: 0 not, 1 reactivate, 2 leave + withdraw + join) as soon as
    ///      the sweep removed it. Returns its stake, reject streak and the tokens burned.
    function _round(uint256 how) internal returns (uint256 stake, uint256 streak, uint256 burned) {
        address victim = peers[0];
        uint256 supply0 = token.totalSupply();
        submitAll(0);
        uint256 u = rm.submissionIndexOf(0, victim);
        _rejectOnly(0, u);
        bool back;
        uint256 minted;
        uint256 ms = registry.minStake();
        while (true) {
            uint256 s0 = token.totalSupply();
            bool done = rm.finalize(0, 1);
            if (token.totalSupply() > s0) minted += token.totalSupply() - s0;
            if (done) break;
            if (how != 0 && !back && registry.statusOf(victim) == PeerRegistry.Status.Inactive) {
                if (how == 1) {
                    vm.prank(victim);
                    registry.reactivate(ms);
                } else {
                    vm.prank(victim);
                    registry.requestLeave(); // Inactive -> Left at once (unbondingRounds 0)
                    vm.prank(victim);
                    registry.withdraw();
                    vm.prank(victim);
                    registry.join(ms, ENDPOINT);
                }
                back = true;
            }
        }
        assertEq(registry.outcomeOf(0, u), 2, "the update is rejected");
        assertTrue(back == (how != 0), "the victim came back mid-finalize");
        stake = registry.stakeOf(victim);
        streak = registry.peerInfo(victim).rejectStreak;
        burned = supply0 + minted - token.totalSupply();
    }

    function test_oneRejectionIsOneSlash() public {
        (uint256 stake, uint256 streak, uint256 burned) = _round(0);
        assertEq(stake, 0, "stake exhausted");
        assertEq(streak, 1, "one rejection counted");
        assertEq(burned, registry.minStake(), "one slash");
    }

    function test_reactivatingMidFinalizeDoesNotBookTheUpdateAgain() public {
        (uint256 stake, uint256 streak, uint256 burned) = _round(1);
        assertEq(streak, 1, "one rejection counted once");
        assertEq(burned, registry.minStake(), "one slash");
        assertEq(stake, registry.minStake(), "the stake added back is kept");
        assertEq(uint256(registry.statusOf(peers[0])), uint256(PeerRegistry.Status.Active), "a member again");
        assertEq(registry.peerInfo(peers[0]).missedRounds, 0, "not counted absent on the second visit");
    }

    function test_rejoiningMidFinalizeDoesNotBookTheUpdateAgain() public {
        (uint256 stake, uint256 streak, uint256 burned) = _round(2);
        assertEq(streak, 1, "one rejection counted once");
        assertEq(burned, registry.minStake(), "one slash (a known identity pays no entry fee)");
        assertEq(stake, registry.minStake(), "the stake joined with is kept");
    }
}
