// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RoundManager} from "../../contracts/RoundManager.sol";
import {Params} from "../../contracts/ProtocolParams.sol";

import {Fixture} from "./Fixture.sol";

/// @title Fuzz tests of the vote commitments and reveals
/// @notice 6 members, K = 4, m = 3, quorum 2; every member has submitted in round 0, so the
///         committee is drawn and the round is in its Commit phase.
contract VoteCommitmentFuzzTest is Fixture {
    uint256 internal constant N = 6;

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
        submitAll(0);
    }

    function _seat(uint256 seed) internal view returns (uint256 s, address auditor) {
        address[] memory c = rm.committeeOf(0);
        s = seed % c.length;
        auditor = c[s];
    }

    function _toReveal() internal {
        vm.warp(block.timestamp + 3600);
        rm.advance(0);
        assertEq(phaseOf(), uint256(RoundManager.Phase.Reveal), "round 0 is in Reveal");
    }

    /// @notice A reveal opens its own commitment and nothing else: a different salt, a flipped
    ///         vote, a dropped or an added index, or another auditor presenting the same
    ///         opening all revert; the true opening counts each vote once on the update it
    ///         names, and a second reveal reverts.
    function testFuzz_revealOpensOnlyItsCommitment(uint256 seatSeed, uint256 bits, bytes32 salt, uint256 tamper)
        public
    {
        (uint256 seat, address auditor) = _seat(seatSeed);
        (uint256[] memory idx, bool[] memory acc) = votesOf(0, auditor, bits);
        assertTrue(idx.length > 0, "every seat audits some update (N = 6, K = 4, m = 3)");
        bytes32 commitment = rm.voteCommitment(0, auditor, idx, acc, salt);
        vm.prank(auditor);
        rm.commitVotes(0, commitment);
        // another seat copies the commitment: it cannot open it as its own
        (, address copier) = _seat(seat + 1);
        vm.prank(copier);
        rm.commitVotes(0, commitment);
        _toReveal();
        vm.prank(copier);
        vm.expectRevert();
        rm.revealVotes(0, idx, acc, salt);

        _revealTampered(auditor, idx, acc, salt, tamper);

        _revealAndCheckCounts(seat, auditor, idx, acc, salt);
        vm.prank(auditor);
        vm.expectPartialRevert(RoundManager.AlreadyRevealed.selector);
        rm.revealVotes(0, idx, acc, salt);
    }

    /// @notice A vote commitment is `keccak256(abi.encode(chainid, roundManager, round,
    ///         auditor, updateIdx, accept, salt))`; one made for another chain or another
    ///         deployment (or without them) does not open here.
    function testFuzz_commitmentBindsChainAndContract(uint256 seatSeed, uint256 bits, bytes32 salt, uint256 other)
        public
    {
        (, address auditor) = _seat(seatSeed);
        (uint256[] memory idx, bool[] memory acc) = votesOf(0, auditor, bits);
        assertEq(
            uint256(rm.voteCommitment(0, auditor, idx, acc, salt)),
            uint256(keccak256(abi.encode(block.chainid, address(rm), uint256(0), auditor, idx, acc, salt))),
            "voteCommitment is the documented formula"
        );
        bytes32 foreign;
        if (other % 3 == 0) {
            vm.assume(other != block.chainid);
            foreign = keccak256(abi.encode(other, address(rm), uint256(0), auditor, idx, acc, salt));
        } else if (other % 3 == 1) {
            address elsewhere = address(uint160(other >> 8));
            vm.assume(elsewhere != address(rm));
            foreign = keccak256(abi.encode(block.chainid, elsewhere, uint256(0), auditor, idx, acc, salt));
        } else {
            foreign = keccak256(abi.encode(uint256(0), auditor, idx, acc, salt)); // the old, unbound form
        }
        vm.prank(auditor);
        rm.commitVotes(0, foreign);
        _toReveal();
        vm.prank(auditor);
        vm.expectPartialRevert(RoundManager.CommitmentMismatch.selector);
        rm.revealVotes(0, idx, acc, salt);
    }

    /// @notice A commitment that opens correctly still cannot carry a vote on an update the
    ///         seat does not audit (its own included), an index out of range, or the same
    ///         update twice.
    function testFuzz_revealRefusesUnassignedAndRepeatedVotes(uint256 seatSeed, uint256 u, bool accept, bytes32 salt)
        public
    {
        (uint256 seat, address auditor) = _seat(seatSeed);
        uint256[] memory assigned = rm.assignmentsOf(0, auditor);
        u = bound(u, 0, N + 1);
        (bool isAssigned,) = _find(assigned, new bool[](assigned.length), u);
        uint256[] memory idx;
        bool[] memory acc;
        if (isAssigned) {
            idx = new uint256[](2); // the same assigned update twice
            idx[0] = u;
            idx[1] = u;
            acc = new bool[](2);
            acc[0] = accept;
            acc[1] = !accept;
        } else {
            idx = new uint256[](1);
            idx[0] = u;
            acc = new bool[](1);
            acc[0] = accept;
        }
        bytes32 commitment = rm.voteCommitment(0, auditor, idx, acc, salt);
        vm.prank(auditor);
        rm.commitVotes(0, commitment);
        _toReveal();
        vm.prank(auditor);
        if (isAssigned) vm.expectPartialRevert(RoundManager.DuplicateVote.selector);
        else vm.expectRevert();
        rm.revealVotes(0, idx, acc, salt);
        assertTrue(!rm.seatInfo(0, seat).revealed, "a refused reveal leaves the seat unrevealed");
        for (uint256 v = 0; v < N; ++v) {
            assertEq(rm.submission(0, v).votedMask & (uint64(1 << seat)), 0, "a refused reveal counts no vote");
        }
    }

    /// @dev One reveal that differs from the commitment in the way `tamper` picks; must revert.
    function _revealTampered(address auditor, uint256[] memory idx, bool[] memory acc, bytes32 salt, uint256 tamper)
        internal
    {
        uint256 kind = tamper % 4;
        uint256 n = idx.length;
        if (kind == 0) {
            vm.prank(auditor);
            vm.expectPartialRevert(RoundManager.CommitmentMismatch.selector);
            rm.revealVotes(0, idx, acc, salt ^ bytes32(uint256(1)));
        } else if (kind == 1) {
            bool[] memory flipped = new bool[](n);
            for (uint256 j = 0; j < n; ++j) {
                flipped[j] = acc[j];
            }
            uint256 f = (tamper >> 8) % n;
            flipped[f] = !flipped[f];
            vm.prank(auditor);
            vm.expectPartialRevert(RoundManager.CommitmentMismatch.selector);
            rm.revealVotes(0, idx, flipped, salt);
        } else if (kind == 2) {
            uint256[] memory fewer = new uint256[](n - 1);
            bool[] memory fewerAcc = new bool[](n - 1);
            for (uint256 j = 0; j + 1 < n; ++j) {
                fewer[j] = idx[j];
                fewerAcc[j] = acc[j];
            }
            vm.prank(auditor);
            vm.expectPartialRevert(RoundManager.CommitmentMismatch.selector);
            rm.revealVotes(0, fewer, fewerAcc, salt);
        } else {
            uint256[] memory more = new uint256[](n + 1);
            bool[] memory moreAcc = new bool[](n + 1);
            for (uint256 j = 0; j < n; ++j) {
                more[j] = idx[j];
                moreAcc[j] = acc[j];
            }
            more[n] = (tamper >> 8) % N;
            vm.prank(auditor);
            vm.expectPartialRevert(RoundManager.CommitmentMismatch.selector);
            rm.revealVotes(0, more, moreAcc, salt);
        }
    }

    /// @dev The true reveal: each revealed index gets exactly this seat's one vote, others none.
    function _revealAndCheckCounts(uint256 seat, address auditor, uint256[] memory idx, bool[] memory acc, bytes32 salt)
        internal
    {
        RoundManager.SubmissionView[] memory before = rm.submissionsSlice(0, 0, N);
        vm.prank(auditor);
        rm.revealVotes(0, idx, acc, salt);
        uint64 bit = uint64(1 << seat);
        for (uint256 u = 0; u < N; ++u) {
            RoundManager.SubmissionView memory s = rm.submission(0, u);
            (bool listed, bool accepted) = _find(idx, acc, u);
            assertEq(s.votedMask & bit != 0 ? 1 : 0, listed ? 1 : 0, "voted bit set iff the update was revealed");
            assertEq(s.acceptMask & bit != 0 ? 1 : 0, listed && accepted ? 1 : 0, "accept bit = revealed vote");
            assertEq(
                uint256(s.accepts) + s.rejects,
                uint256(before[u].accepts) + before[u].rejects + (listed ? 1 : 0),
                "one counted vote per revealed index"
            );
        }
    }

    function _find(uint256[] memory idx, bool[] memory acc, uint256 u) internal pure returns (bool, bool) {
        for (uint256 j = 0; j < idx.length; ++j) {
            if (idx[j] == u) return (true, acc[j]);
        }
        return (false, false);
    }
}

/// @title Fuzz tests of the committee draw over deployments of varying size
contract CommitteeFuzzTest is Fixture {
    /// @notice Whatever N, K, m, the probation length and the votes of earlier rounds, the
    ///         committee of a round has at most K seats, no address twice, only members
    ///         eligible at the draw (reputation >= threshold, off probation) that were members
    ///         when the round's first update came in (the frozen draw pool), consistent seat
    ///         lookups, and every update is audited by at most m seats other than its submitter's.
    ///         Fresh identities join before the round and one more after its first submission.
    function testFuzz_committeeWithinBounds(uint256 nSeed, uint256 kSeed, uint256 mSeed, uint256 votes, uint256 shape)
        public
    {
        Params memory p = testParams();
        uint256 n = bound(nSeed, 1, 16);
        uint256 fresh = bound(shape >> 8, 0, 3);
        p.committeeSize = uint16(bound(kSeed, 2, 12));
        p.auditorsPerUpdate = uint16(bound(mSeed, 1, p.committeeSize - 1));
        p.quorum = uint16(bound(mSeed >> 8, 1, p.auditorsPerUpdate));
        p.probationRounds = uint16(bound(shape >> 16, 0, 2));
        deploy(p, n + fresh + 1);
        joinFirst(n);
        uint256 played = bound(shape, 0, 3);
        for (uint256 r = 0; r < played; ++r) {
            playRound(uint256(keccak256(abi.encode(votes, r)))); // random votes: some updates rejected
        }
        for (uint256 i = n; i < n + fresh; ++i) {
            joinPeer(peers[i]);
        }
        uint256 round = rm.currentRound();
        address late = peers[n + fresh];
        for (uint256 i = 0; i < n + fresh; ++i) {
            if (!registry.isMember(peers[i])) continue;
            submit(peers[i], round, hashOf(round, i));
            if (rm.submissionCount(round) == 1) joinPeer(late); // after the pool is frozen
        }
        if (phaseOf() == uint256(RoundManager.Phase.Submit)) {
            vm.warp(block.timestamp + 3600); // the late joiner has not submitted: end the phase on time
            rm.advance(round);
        }
        _checkCommittee(round, p.committeeSize, late);
        _checkAuditors(round, p.auditorsPerUpdate);
    }

    function _checkCommittee(uint256 round, uint256 k, address late) internal view {
        address[] memory c = rm.committeeOf(round);
        uint256 pool = rm.roundInfo(round).pool;
        assertLe(c.length, k, "committee size <= K");
        for (uint256 s = 0; s < c.length; ++s) {
            assertTrue(registry.eligible(c[s]), "seat held by an eligible member");
            assertTrue(!registry.onProbation(c[s]), "no seat for a member on probation");
            assertTrue(c[s] != late, "no seat for a member that joined after the first submission");
            assertLe(registry.peerInfo(c[s]).index + 1, pool, "seat holder is in the frozen draw pool");
            assertEq(rm.seatOf(round, c[s]), s, "seatOf matches the seat order");
            for (uint256 t = 0; t < s; ++t) {
                assertTrue(c[s] != c[t], "no member holds two seats");
            }
        }
    }

    function _checkAuditors(uint256 round, uint256 m) internal view {
        uint256 subs = rm.submissionCount(round);
        for (uint256 u = 0; u < subs; ++u) {
            address[] memory a = rm.auditorsOf(round, u);
            assertLe(a.length, m, "at most m auditors per update");
            address submitter = rm.submission(round, u).peer;
            for (uint256 j = 0; j < a.length; ++j) {
                assertTrue(a[j] != submitter, "nobody audits its own update");
                for (uint256 t = 0; t < j; ++t) {
                    assertTrue(a[j] != a[t], "an auditor audits an update once");
                }
            }
        }
    }
}

/// @title A hash submitted twice in a round is refused (issue 19, finding 3: copied updates)
contract DuplicateHashFuzzTest is Fixture {
    uint256 internal constant N = 6;

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
    }

    /// @notice Any member re-submitting any other member's hash of the same round reverts.
    function testFuzz_copiedHashRefused(uint256 victimSeed, uint256 copierSeed) public {
        uint256 victim = victimSeed % N;
        uint256 copier = copierSeed % N;
        vm.assume(victim != copier);
        bytes32 h = hashOf(0, victim);
        submit(peers[victim], 0, h);
        (bytes32 reveal, bytes32 commit) = beaconArgs(peers[copier], 0);
        vm.prank(peers[copier]);
        vm.expectPartialRevert(RoundManager.DuplicateHash.selector);
        rm.submitUpdate(0, h, 10, reveal, commit);
        assertEq(rm.submissionCount(0), 1, "the copy was not recorded");
    }
}

/// @title The open-addressed duplicate table under hash grinding (issue 23)
/// @notice Attackers grind update hashes onto the slots an honest hash probes (the position
///         is the hash's low bits, so grinding costs them ~capacity keccaks each). The honest
///         submission still succeeds, pays at most MAX_PROBES cold reads more than one that
///         met no collision, and the check stays exact: a copy of the honest hash (placed in
///         the overflow) or of a ground hash (in the table) is refused.
contract DuplicateTableGrindTest is Fixture {
    uint256 internal constant N = 12; // capacity 32 (the smallest power of two >= 2 N)

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
    }

    /// @dev A hash whose table slot is `pos` (mask 31), distinct per (salt, who).
    function _grind(uint256 salt, uint256 who, uint256 pos) internal pure returns (bytes32 h) {
        for (uint256 t = 0;; ++t) {
            h = keccak256(abi.encode("grind", salt, who, t));
            if (uint256(h) & 31 == pos) return h;
        }
    }

    function _gasOfSubmit(address peer, bytes32 h) internal returns (uint256 used) {
        (bytes32 reveal, bytes32 commit) = beaconArgs(peer, 0);
        vm.prank(peer);
        used = gasleft();
        rm.submitUpdate(0, h, 10, reveal, commit);
        used -= gasleft();
    }

    function testFuzz_groundCollisionsCostBoundedAndCopiesStillRefused(uint256 salt) public {
        uint256 probes = rm.MAX_PROBES();
        bytes32 honest = keccak256(abi.encode("honest", salt));
        uint256 pos = uint256(honest) & 31;
        // a control submission on a slot away from the ground run: its first probe is free
        uint256 control = _gasOfSubmit(peers[N - 1], _grind(salt, N - 1, (pos + 16) & 31));
        for (uint256 j = 0; j < probes; ++j) {
            submit(peers[j], 0, _grind(salt, j, pos)); // fills pos, pos + 1, ... (linear probing)
        }
        uint256 cost = _gasOfSubmit(peers[probes], honest);
        assertLe(cost, control + probes * 2_700 + 2_500, "grinding costs an honest submitter <= MAX_PROBES reads");
        uint256 idx = rm.submissionCount(0) - 1;
        assertEq(uint256(rm.submission(0, idx).updateHash), uint256(honest), "the honest update is recorded");
        // copies refused: of the honest hash (overflow) and of a ground one (table)
        (bytes32 reveal, bytes32 commit) = beaconArgs(peers[probes + 1], 0);
        vm.prank(peers[probes + 1]);
        vm.expectPartialRevert(RoundManager.DuplicateHash.selector);
        rm.submitUpdate(0, honest, 10, reveal, commit);
        vm.prank(peers[probes + 1]);
        vm.expectPartialRevert(RoundManager.DuplicateHash.selector);
        rm.submitUpdate(0, _grind(salt, probes - 1, pos), 10, reveal, commit);
        assertEq(rm.submissionCount(0), probes + 2, "no copy was recorded");
        // a fresh hash of a later submitter is still accepted
        assertTrue(trySubmit(peers[probes + 1], 0, keccak256(abi.encode("late", salt))), "a new hash is accepted");
    }
}

/// @title Finalize batching changes nothing (issue 23: a batch keeps seat counters and mint
///        counters in memory and writes them once)
/// @notice The same round finalized in one call or by a caller that cuts it into batches of
///         any size (1 item per call included) ends in the same seat counts, outcomes, mint
///         counters, reputations, balances and claimables; with a round budget small enough
///         that the trainers' rewards are cut part-way through.
contract FinalizeBatchingFuzzTest is Fixture {
    uint256 internal constant N = 12;

    function setUp() public {
        mintBudgetPerRound = 7 * TOKEN + TOKEN / 2; // cuts the 1-token rewards of the 12 updates
        deploy(testParams(), N);
        joinAll();
        playRound(type(uint256).max);
    }

    function _digest(uint256 round) internal view returns (bytes32 d, uint256 counted) {
        uint256 k = rm.roundInfo(round).committeeSize;
        for (uint256 s = 0; s < k; ++s) {
            RoundManager.Seat memory x = rm.seatInfo(round, s);
            counted += uint256(x.agree) + x.disagree + x.abstain;
            d = keccak256(abi.encode(d, x.agree, x.disagree, x.abstain, x.revealed));
        }
        d = keccak256(abi.encode(d, rm.roundInfo(round).minted, rm.totalMinted(), registry.outcomeWord(round, 0)));
        for (uint256 i = 0; i < peers.length; ++i) {
            address a = peers[i];
            d = keccak256(abi.encode(d, registry.reputationOf(a), registry.claimableOf(a), registry.stakeOf(a)));
        }
    }

    function testFuzz_batchSizesGiveTheSameRound(uint256 bits, uint256 batch, bool oneAbsent) public {
        batch = bound(batch, 1, 9);
        uint256 round = rm.currentRound();
        submitAll(round);
        commitAll(round, bits);
        address[] memory c = rm.committeeOf(round);
        uint256 revealing = oneAbsent ? c.length - 1 : c.length; // the last seat may not reveal
        for (uint256 s = 0; s < revealing; ++s) {
            (uint256[] memory idx, bool[] memory acc) = votesOf(round, c[s], bits >> s);
            vm.prank(c[s]);
            rm.revealVotes(round, idx, acc, saltOf(round, c[s]));
        }
        if (oneAbsent) {
            vm.warp(block.timestamp + 3600);
            rm.advance(round);
        }
        uint256 snap = vm.snapshotState();
        while (!rm.finalize(round, MAX_BATCH)) {}
        (bytes32 whole, uint256 counted) = _digest(round);
        assertTrue(counted > 0, "the round counted votes");
        vm.revertToState(snap);
        uint256 calls;
        while (!rm.finalize(round, batch)) ++calls;
        assertTrue(calls > 0 || batch == 9, "cut into several batches");
        (bytes32 cut,) = _digest(round);
        assertEq(uint256(cut), uint256(whole), "batching changed the round's bookings");
    }
}

/// @title The committee seed depends on nothing a participant chooses at submission time
///        (issue 19, finding 1: the last submitter chose the committee)
contract BeaconFuzzTest is Fixture {
    uint256 internal constant N = 6;

    function setUp() public {
        deploy(testParams(), N);
        joinAll();
        playRound(type(uint256).max); // round 0: every member commits to its round-1 secret
    }

    /// @notice Whatever update hashes the members submit, in whatever order, at whatever time
    ///         and block, round 1's seed is keccak256(previous seed, XOR of the revealed
    ///         secrets, 1), fixed before round 1 began, and the committee is the same.
    function testFuzz_seedIgnoresUpdateBytesOrderAndTiming(uint256 hashSalt, uint256 order, uint256 delay) public {
        bytes15 beacon; // the high 120 bits of each secret (RoundState.beacon)
        for (uint256 i = 0; i < N; ++i) {
            beacon ^= bytes15(beaconSecret(peers[i], 1));
        }
        bytes32 expected = keccak256(abi.encode(rm.roundInfo(0).seed, bytes32(beacon), uint256(1)));
        uint256 start = order % N;
        for (uint256 j = 0; j < N; ++j) {
            uint256 i = (start + j) % N;
            vm.warp(block.timestamp + bound(delay >> (8 * j), 0, 500)); // 6 x 500 s < the 3600 s phase
            vm.roll(block.number + 1 + ((delay >> (8 * j)) % 50));
            submit(peers[i], 1, keccak256(abi.encode(hashSalt, i)));
        }
        assertEq(uint256(rm.roundInfo(1).seed), uint256(expected), "seed = f(previous seed, secrets, round)");
        address[] memory c = rm.committeeOf(1);
        address[] memory d = registry.drawCommitteeAmong(expected, 4, N);
        assertEq(c.length, d.length, "committee is the draw from that seed");
        for (uint256 s = 0; s < c.length; ++s) {
            assertTrue(c[s] == d[s], "committee is the draw from that seed");
        }
    }

    /// @notice A beacon reveal must open the member's own commitment: a wrong secret, or
    ///         another member's secret (what a copier of that member's commitment would need),
    ///         reverts, so nobody cancels another's secret in the XOR.
    function testFuzz_beaconRevealOpensOnlyOwnCommitment(uint256 who, bytes32 wrong, bool useOthers) public {
        uint256 i = who % N;
        address peer = peers[i];
        assertTrue(rm.beaconPending(1, peer), "round 0 left a commitment for round 1");
        bytes32 reveal = useOthers ? beaconSecret(peers[(i + 1) % N], 1) : wrong;
        vm.assume(reveal != beaconSecret(peer, 1));
        (, bytes32 commit) = beaconArgs(peer, 1);
        vm.prank(peer);
        vm.expectPartialRevert(RoundManager.BeaconMismatch.selector);
        rm.submitUpdate(1, hashOf(1, i), 10, reveal, commit);
    }
}
