// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RoundManager} from "../../contracts/RoundManager.sol";

import {Fixture} from "./Fixture.sol";

/// @title A phase closes at its deadline second, and only then may anyone end it early
/// @notice 6 members, K = 4, m = 3, quorum 2, every phase 3600 s (Fixture.testParams). A
///         submission, commitment or reveal in the deadline's second would let a late actor
///         see what others did in time; `advance` one second early would cut an honest actor's
///         last second. Both were unpinned (a mutation probe: `>=` to `>`, a 1 s shift).
contract PhaseDeadlineTest is Fixture {
    uint256 internal constant N = 6;

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
    }

    function _deadline() internal view returns (uint256) {
        return uint256(rm.roundInfo(0).deadline);
    }

    function test_submitIsOpenUntilTheSecondBeforeItsDeadline() public {
        uint256 d = _deadline();
        vm.warp(d - 1);
        submit(peers[0], 0, hashOf(0, 0));
        vm.expectPartialRevert(RoundManager.PhaseNotOver.selector);
        rm.advance(0);
        vm.warp(d);
        (bytes32 reveal, bytes32 commit) = beaconArgs(peers[1], 0);
        vm.prank(peers[1]);
        vm.expectPartialRevert(RoundManager.DeadlinePassed.selector);
        rm.submitUpdate(0, hashOf(0, 1), 10, reveal, commit);
        rm.advance(0);
        assertTrue(phaseOf() != uint256(RoundManager.Phase.Submit), "the Submit phase ends at its deadline");
    }

    function test_commitAndRevealAreOpenUntilTheSecondBeforeTheirDeadlines() public {
        submitAll(0);
        assertEq(phaseOf(), uint256(RoundManager.Phase.Commit), "everyone submitted: Commit");
        address[] memory c = rm.committeeOf(0);
        assertTrue(c.length >= 2, "a committee of at least two seats");
        uint256 d = _deadline();
        vm.warp(d - 1);
        (uint256[] memory idx0, bool[] memory acc0) = votesOf(0, c[0], 0);
        bytes32 inTime = rm.voteCommitment(0, c[0], idx0, acc0, saltOf(0, c[0]));
        vm.prank(c[0]);
        rm.commitVotes(0, inTime);
        vm.expectPartialRevert(RoundManager.PhaseNotOver.selector);
        rm.advance(0);
        vm.warp(d);
        (uint256[] memory idx1, bool[] memory acc1) = votesOf(0, c[1], 0);
        bytes32 late = rm.voteCommitment(0, c[1], idx1, acc1, saltOf(0, c[1]));
        vm.prank(c[1]);
        vm.expectPartialRevert(RoundManager.DeadlinePassed.selector);
        rm.commitVotes(0, late);
        rm.advance(0);
        assertEq(phaseOf(), uint256(RoundManager.Phase.Reveal), "the Commit phase ends at its deadline");

        d = _deadline();
        vm.warp(d);
        vm.prank(c[0]);
        vm.expectPartialRevert(RoundManager.DeadlinePassed.selector);
        rm.revealVotes(0, idx0, acc0, saltOf(0, c[0]));
        vm.warp(d - 1);
        vm.prank(c[0]);
        rm.revealVotes(0, idx0, acc0, saltOf(0, c[0]));
    }
}
