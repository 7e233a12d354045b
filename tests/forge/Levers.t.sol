// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";

/// Known levers (docs/protocol.md, "Who chooses an update's auditors"), kept as tests written by
/// an outside probe: they PASS while the lever exists. The seed is the XOR of the round's beacon
/// reveals, which come with the submissions, so members who submit after every honest member
/// know the seed, the committee and each update's audit window h_u = keccak(seed, u) mod k
/// before their own submissions are fixed; u is the submission index. Whoever fixes this (the
/// beacon revealed after the submissions close, or windows keyed on something no submitter can
/// choose once the seed is known) turns these tests into the regression tests of the fix.
abstract contract LeverVotes is Fixture {
    event log_named_uint(string key, uint256 val);

    function isIn(address a, address[] memory set) internal pure returns (bool) {
        for (uint256 i = 0; i < set.length; ++i) {
            if (set[i] == a) return true;
        }
        return false;
    }

    /// @dev Every seat commits and reveals: accept everything except update `target`, which the
    ///      seats in `list` reject when `listRejects`, else every seat not in `list`.
    function _vote(uint256 round, uint256 target, address[] memory list, bool listRejects) internal {
        address[] memory c = rm.committeeOf(round);
        for (uint256 pass = 0; pass < 2; ++pass) {
            for (uint256 s = 0; s < c.length; ++s) {
                uint256[] memory idx = rm.assignmentsOf(round, c[s]);
                bool[] memory acc = new bool[](idx.length);
                bool listed = isIn(c[s], list);
                for (uint256 j = 0; j < idx.length; ++j) {
                    acc[j] = idx[j] != target || (listRejects ? !listed : listed);
                }
                bytes32 commitment = rm.voteCommitment(round, c[s], idx, acc, saltOf(round, c[s]));
                vm.prank(c[s]); // after the view call above: a prank applies to the next call only
                if (pass == 0) rm.commitVotes(round, commitment);
                else rm.revealVotes(round, idx, acc, saltOf(round, c[s]));
            }
        }
    }

    /// @dev How many of update `u`'s auditors are in `coalition`.
    function colludersAuditing(uint256 round, uint256 u, address[] memory coalition) internal view returns (uint256 n) {
        address[] memory a = rm.auditorsOf(round, u);
        for (uint256 j = 0; j < a.length; ++j) {
            if (isIn(a[j], coalition)) ++n;
        }
    }

    /// @dev `target` rejected by every auditor except those in `acceptors` (a colluding coalition).
    function voteTarget(uint256 round, uint256 target, address[] memory acceptors) internal {
        _vote(round, target, acceptors, false);
    }

    /// @dev `target` rejected by the auditors in `rejecters` only (honest auditors accept it).
    function voteTargetBy(uint256 round, uint256 target, address[] memory rejecters) internal {
        _vote(round, target, rejecters, true);
    }
}

/// @notice A coalition submitting last chooses, at no cost, which of its submissions' windows its
///         poisoned update gets (any of its c submissions: c windows to pick from).
contract OrderLeverTest is LeverVotes {
    uint256 internal constant ALL = type(uint256).max;
    uint256 internal constant N = 8;
    uint256 internal constant HONEST = 4; // peers 0..3; coalition peers 4..7, poisoner = peers[7]

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
        playRound(ALL); // round 0: everyone now has a pending beacon reveal
    }

    function _coalition() internal view returns (address[] memory c) {
        c = new address[](N - HONEST - 1);
        for (uint256 i = 0; i < c.length; ++i) c[i] = peers[HONEST + i];
    }

    /// @dev Submit the coalition with the poisoner at position `pos` among its members.
    function _submitCoalition(uint256 round, uint256 pos) internal returns (uint256 pIdx) {
        uint256 m = N - HONEST;
        uint256 ci;
        for (uint256 j = 0; j < m; ++j) {
            uint256 who;
            if (j == pos) {
                who = N - 1;
            } else {
                who = HONEST + ci;
                ++ci;
            }
            if (who == N - 1) pIdx = rm.submissionCount(round);
            submit(peers[who], round, hashOf(round, who));
        }
    }

    function _predictSeed(uint256 round) internal view returns (bytes32) {
        bytes15 b = rm.roundInfo(round).beacon;
        for (uint256 i = HONEST; i < N; ++i) {
            if (rm.beaconPending(round, peers[i])) b ^= bytes15(beaconSecret(peers[i], round));
        }
        return keccak256(abi.encode(rm.lastSeed(), bytes32(b), round));
    }

    function test_knownLever_submissionOrderChoosesTheAuditorsOfAPoisonedUpdate() public {
        bool found;
        uint256 m = N - HONEST;
        for (uint256 r = 0; r < 40 && !found; ++r) {
            uint256 round = rm.currentRound();
            for (uint256 i = 0; i < HONEST; ++i) submit(peers[i], round, hashOf(round, i));
            bytes32 predicted = _predictSeed(round); // known to the coalition before it submits
            uint256 best;
            uint256 bestPos;
            uint256 worst = type(uint256).max;
            uint256 worstPos;
            for (uint256 pos = 0; pos < m; ++pos) {
                uint256 snap = vm.snapshotState();
                uint256 pIdx = _submitCoalition(round, pos);
                assertTrue(rm.roundInfo(round).seed == predicted, "seed predicted before the coalition submitted");
                uint256 n = colludersAuditing(round, pIdx, _coalition());
                if (n > best) {
                    best = n;
                    bestPos = pos;
                }
                if (n < worst) {
                    worst = n;
                    worstPos = pos;
                }
                vm.revertToState(snap);
            }
            if (best >= 2 && worst <= 1) {
                // honest order (poisoner where it gives honest auditors the majority): rejected
                uint256 snap2 = vm.snapshotState();
                uint256 pIdxW = _submitCoalition(round, worstPos);
                voteTarget(round, pIdxW, _coalition());
                finalizeAll(round);
                uint256 outcomeWorst = registry.outcomeOf(round, pIdxW);
                vm.revertToState(snap2);
                // chosen order: the same seed, the same committee, colluders audit the poison
                uint256 pIdxB = _submitCoalition(round, bestPos);
                address[] memory committee = rm.committeeOf(round);
                voteTarget(round, pIdxB, _coalition());
                finalizeAll(round);
                uint256 outcomeBest = registry.outcomeOf(round, pIdxB);
                emit log_named_uint("round", round);
                emit log_named_uint("committee size", committee.length);
                emit log_named_uint("colluding auditors of poison, chosen order", best);
                emit log_named_uint("colluding auditors of poison, other order", worst);
                emit log_named_uint("outcome, other order (2=Rejected,3=Undecided)", outcomeWorst);
                emit log_named_uint("outcome, chosen order (1=Approved)", outcomeBest);
                assertTrue(outcomeWorst != 1, "honest-majority window keeps the poison out");
                assertEq(outcomeBest, 1, "poisoned update approved by choosing its index");
                found = true;
            } else {
                _submitCoalition(round, 0);
                commitAll(round, ALL);
                revealAll(round, ALL);
                finalizeAll(round);
            }
        }
        assertTrue(found, "order lever found within 40 rounds");
    }
}

/// @notice A coalition front-runs an honest trainer whose pending submission reveals the last
///         honest beacon secret, moving its index under a colluding majority of auditors.
contract FrontRunLeverTest is LeverVotes {
    uint256 internal constant ALL = type(uint256).max;
    uint256 internal constant N = 8;
    uint256 internal constant HONEST = 4; // peers 0..3 honest, victim = peers[3]; coalition 4..7

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
        playRound(ALL);
    }

    function _coalition() internal view returns (address[] memory c) {
        c = new address[](N - HONEST);
        for (uint256 i = 0; i < c.length; ++i) c[i] = peers[HONEST + i];
    }

    /// @dev j coalition submissions, then the victim, then the rest of the coalition.
    function _submitAround(uint256 round, uint256 j) internal returns (uint256 vIdx) {
        for (uint256 i = 0; i < j; ++i) submit(peers[HONEST + i], round, hashOf(round, HONEST + i));
        vIdx = rm.submissionCount(round);
        submit(peers[HONEST - 1], round, hashOf(round, HONEST - 1));
        for (uint256 i = j; i < N - HONEST; ++i) submit(peers[HONEST + i], round, hashOf(round, HONEST + i));
    }

    function test_knownLever_frontRunPlacesAnHonestUpdateUnderColluders() public {
        bool found;
        address victim = peers[HONEST - 1];
        for (uint256 r = 0; r < 40 && !found; ++r) {
            uint256 round = rm.currentRound();
            for (uint256 i = 0; i + 1 < HONEST; ++i) submit(peers[i], round, hashOf(round, i));
            uint256 best;
            uint256 bestJ;
            uint256 worst = type(uint256).max;
            uint256 worstJ;
            for (uint256 j = 0; j <= N - HONEST; ++j) {
                uint256 snap = vm.snapshotState();
                uint256 vIdx = _submitAround(round, j);
                uint256 n = colludersAuditing(round, vIdx, _coalition());
                if (j == 0) {
                    worst = n; // natural order: the victim right after the honest peers
                    worstJ = 0;
                } else if (n > best) {
                    best = n; // a front-run of j coalition submissions
                    bestJ = j;
                }
                vm.revertToState(snap);
            }
            if (best >= 2 && worst <= 1) {
                uint256 stake0 = registry.stakeOf(victim);
                uint256 snap2 = vm.snapshotState();
                uint256 vW = _submitAround(round, worstJ);
                voteTargetBy(round, vW, _coalition());
                finalizeAll(round);
                uint256 outcomeWorst = registry.outcomeOf(round, vW);
                vm.revertToState(snap2);
                uint256 vB = _submitAround(round, bestJ);
                voteTargetBy(round, vB, _coalition());
                finalizeAll(round);
                uint256 outcomeBest = registry.outcomeOf(round, vB);
                emit log_named_uint("round", round);
                emit log_named_uint("coalition submissions placed before the victim", bestJ);
                emit log_named_uint("colluding auditors of victim, chosen index", best);
                emit log_named_uint("colluding auditors of victim, natural order (no front-run)", worst);
                emit log_named_uint("victim outcome, natural order (1=Approved)", outcomeWorst);
                emit log_named_uint("victim outcome, front-run order (2=Rejected)", outcomeBest);
                emit log_named_uint("victim stake burned", stake0 - registry.stakeOf(victim));
                assertEq(outcomeWorst, 1, "same votes, honest-majority window: approved");
                assertEq(outcomeBest, 2, "honest update rejected by choosing its index");
                assertTrue(registry.stakeOf(victim) < stake0, "honest victim slashed");
                found = true;
            } else {
                _submitAround(round, N - HONEST);
                commitAll(round, ALL);
                revealAll(round, ALL);
                finalizeAll(round);
            }
        }
        assertTrue(found, "front-run lever found within 40 rounds");
    }
}
