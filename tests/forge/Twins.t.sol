// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RoundManager} from "../../contracts/RoundManager.sol";
import {Params} from "../../contracts/ProtocolParams.sol";

import {Fixture} from "./Fixture.sol";

/// @title The audit-assignment rule and its inlined twin agree
/// @notice RoundManager's reveal (`_recordVotes`) keeps an inline copy of `_audits` (a call
///         costs ~50 gas a vote there: docs/results/gas.md). This fuzz test ties the three
///         forms of "seat s audits update u" together, so they cannot drift apart silently:
///         `Sortition.auditSeats` (the `auditorsOf` view; finalize counts the same seats
///         through `Sortition.auditSeatAt`), `_audits` (the `assignmentsOf` view) and the
///         reveal's inline check (a reveal of a vote on u alone passes it, or reverts
///         NotAssigned / OwnUpdate).
contract AssignmentTwinsFuzzTest is Fixture {
    function _has(address[] memory xs, address x) internal pure returns (bool) {
        for (uint256 i = 0; i < xs.length; ++i) {
            if (xs[i] == x) return true;
        }
        return false;
    }

    function _has(uint256[] memory xs, uint256 x) internal pure returns (bool) {
        for (uint256 i = 0; i < xs.length; ++i) {
            if (xs[i] == x) return true;
        }
        return false;
    }

    /// @notice K = 6 seats and m in 1..5 auditors per update with 3..10 members (so a
    ///         committee can hold every member and a window every seat), drawn after 0..3
    ///         played rounds (a new seed and committee each), a seat and an update: the seat
    ///         audits the update by `auditorsOf` iff by `assignmentsOf` iff the reveal takes a
    ///         vote on it; its own update reverts OwnUpdate, any other unassigned one
    ///         NotAssigned.
    function testFuzz_revealCheckAuditsAndAuditSeatsAgree(
        uint256 shape,
        uint256 rounds,
        uint256 seatSeed,
        uint256 u,
        bool accept
    ) public {
        Params memory p = testParams();
        p.committeeSize = 6;
        p.auditorsPerUpdate = uint16(bound(shape, 1, 5));
        p.quorum = 1;
        deploy(p, bound(shape >> 8, 3, 10));
        joinAll();
        rounds = bound(rounds, 0, 3);
        for (uint256 i = 0; i < rounds; ++i) {
            playRound(type(uint256).max); // every vote accepts: every member stays
        }
        uint256 r = rm.currentRound();
        submitAll(r);
        assertEq(phaseOf(), uint256(RoundManager.Phase.Commit), "the committee is drawn");
        address[] memory c = rm.committeeOf(r);
        uint256 seat = seatSeed % c.length;
        address auditor = c[seat];
        u = bound(u, 0, rm.submissionCount(r) - 1);

        bool bySeats = _has(rm.auditorsOf(r, u), auditor);
        bool byAudits = _has(rm.assignmentsOf(r, auditor), u);
        assertTrue(bySeats == byAudits, "auditorsOf (Sortition.auditSeats) and assignmentsOf (_audits) agree");

        uint256[] memory idx = new uint256[](1);
        idx[0] = u;
        bool[] memory acc = new bool[](1);
        acc[0] = accept;
        bytes32 salt = saltOf(r, auditor);
        bytes32 commitment = rm.voteCommitment(r, auditor, idx, acc, salt);
        vm.prank(auditor);
        rm.commitVotes(r, commitment);
        vm.warp(block.timestamp + 3600);
        rm.advance(r);
        assertEq(phaseOf(), uint256(RoundManager.Phase.Reveal), "in Reveal");
        if (bySeats) {
            vm.prank(auditor);
            rm.revealVotes(r, idx, acc, salt);
            assertTrue(rm.seatInfo(r, seat).revealed, "the reveal took the assigned vote");
            assertTrue(
                (rm.submission(r, u).votedMask >> seat) & 1 == 1, "the vote counts for the seat on u"
            );
        } else {
            bool own = rm.submission(r, u).peer == auditor;
            vm.expectPartialRevert(own ? RoundManager.OwnUpdate.selector : RoundManager.NotAssigned.selector);
            vm.prank(auditor);
            rm.revealVotes(r, idx, acc, salt);
        }
    }
}
