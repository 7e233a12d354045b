// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Params} from "../../contracts/ProtocolParams.sol";
import {RoundManager} from "../../contracts/RoundManager.sol";

import {Fixture} from "./Fixture.sol";

/// @title Outcomes at exact equality, finalize's per-call bound, probation votes
/// @notice What a mutation probe found no fast test pinning: an update with exactly `quorum`
///         votes, a split at exactly the approve / reject percentage, a finalize call given
///         fewer items than the round has (the per-call gas argument rests on it), and the
///         agreement of auditors who accept an update put on probation.
abstract contract VotingFixture is Fixture {
    /// @notice `rejecter` value under which every seat rejects the target.
    address internal constant EVERY_SEAT = address(type(uint160).max);

    /// @notice Every seat commits, then reveals, a vote on each of its assignments: accept, but
    ///         update `target` is rejected by `rejecter` (no seat: address(0); all: EVERY_SEAT).
    function _voteRound(uint256 r, uint256 target, address rejecter) internal {
        address[] memory c = rm.committeeOf(r);
        uint256[][] memory idxs = new uint256[][](c.length);
        bool[][] memory accs = new bool[][](c.length);
        for (uint256 s = 0; s < c.length; ++s) {
            bool rejects = rejecter == EVERY_SEAT || c[s] == rejecter;
            idxs[s] = rm.assignmentsOf(r, c[s]);
            accs[s] = new bool[](idxs[s].length);
            for (uint256 j = 0; j < idxs[s].length; ++j) accs[s][j] = !(rejects && idxs[s][j] == target);
            bytes32 commitment = rm.voteCommitment(r, c[s], idxs[s], accs[s], saltOf(r, c[s]));
            vm.prank(c[s]);
            rm.commitVotes(r, commitment);
        }
        for (uint256 s = 0; s < c.length; ++s) {
            vm.prank(c[s]);
            rm.revealVotes(r, idxs[s], accs[s], saltOf(r, c[s]));
        }
    }
}

contract ThresholdBoundaryTest is VotingFixture {
    function setUp() public {
        Params memory p = testParams();
        p.auditorsPerUpdate = 2; // every update: exactly 2 auditors, quorum 2
        p.approvePercent = 50;
        p.rejectPercent = 50;
        deploy(p, 6);
        joinAll();
    }

    /// kills S1 (quorum `>`), S2 (approve `>=`), S3 (reject `>=`): update 0 gets 2 of 2 accepts
    /// (votes == quorum: Approved), update 1 a 1-1 split (exactly 50 %: Undecided, not slashed)
    function test_outcomesAtExactlyTheQuorumAndThePercentages() public {
        uint256 r = rm.currentRound();
        submitAll(r);
        address[] memory c = rm.committeeOf(r);
        assertEq(c.length, 4, "full committee");
        _voteRound(r, 1, rm.auditorsOf(r, 1)[0]); // one of update 1's two auditors rejects it
        uint256 stake1 = registry.stakeOf(rm.submission(r, 1).peer);
        finalizeAll(r);
        RoundManager.SubmissionView memory u0 = rm.submission(r, 0);
        RoundManager.SubmissionView memory u1 = rm.submission(r, 1);
        assertEq(u0.accepts, 2, "2 accepts");
        assertEq(uint256(u0.outcome), uint256(RoundManager.Outcome.Approved), "2 of 2 at quorum 2: Approved");
        assertEq(u1.accepts + u1.rejects, 2, "2 votes");
        assertEq(u1.rejects, 1, "1 reject");
        assertEq(uint256(u1.outcome), uint256(RoundManager.Outcome.Undecided), "exactly 50 %: neither");
        assertEq(registry.stakeOf(u1.peer), stake1, "not slashed");
    }
}

contract BatchAndProbationTest is VotingFixture {
    function setUp() public {
        deploy(testParams(), 6);
        joinAll();
    }

    /// kills S19: one finalize call does at most maxItems items (updates + seats + members)
    function test_finalizeCallDoesAtMostMaxItems() public {
        uint256 r = rm.currentRound();
        submitAll(r);
        _voteRound(r, 0, address(0));
        uint256 k = rm.committeeOf(r).length;
        uint256 n = rm.submissionCount(r);
        // all updates, all seats and ONE member of the 6: the round cannot close in this call
        bool done = rm.finalize(r, n + k + 1);
        assertTrue(!done, "6 members cannot be swept with 1 item left");
        finalizeAll(r);
    }

    /// kills S22: auditors that accept an update put on Probation agree with its outcome
    function test_acceptingAProbationUpdateIsAgreement() public {
        for (uint256 i = 0; i < 2; ++i) {
            uint256 r0 = rm.currentRound();
            submitAll(r0);
            _voteRound(r0, 0, EVERY_SEAT);
            finalizeAll(r0);
            assertEq(uint256(rm.submission(r0, 0).outcome), uint256(RoundManager.Outcome.Rejected), "rejected");
        }
        assertTrue(registry.reputationOf(peers[0]) < registry.params().repThreshold, "below the threshold");
        uint256 r = rm.currentRound();
        submitAll(r);
        _voteRound(r, 0, address(0));
        finalizeAll(r);
        assertEq(uint256(rm.submission(r, 0).outcome), uint256(RoundManager.Outcome.Probation), "probation");
        address[] memory c = rm.committeeOf(r);
        for (uint256 s = 0; s < c.length; ++s) {
            assertEq(rm.seatInfo(r, s).disagree, 0, "accepting voters agree with every accepted outcome");
        }
    }
}
