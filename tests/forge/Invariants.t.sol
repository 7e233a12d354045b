// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PeerRegistry} from "../../contracts/PeerRegistry.sol";
import {RoundManager} from "../../contracts/RoundManager.sol";
import {Params} from "../../contracts/ProtocolParams.sol";

import {Fixture} from "./Fixture.sol";
import {TestBase} from "./Base.sol";

/// @title Actor for the invariant fuzzer: random protocol calls by 8 peers
/// @notice Six peers are members from round 0; two more may join later (fresh identities, on
///         probation for one round, paying an entry fee). Every action picks an actor from
///         its seed, does what that actor may do now (or nothing), and never reverts. Some
///         actions attack: submitting another member's hash, opening a commitment with a
///         wrong salt, revealing twice, committing to two votes on one update. `playRound` drives a whole round so that a run of 25
///         calls crosses several rounds. Ghost variables record what the contracts were seen
///         to do; the invariants compare them with the contracts' state.
contract ProtocolHandler is Fixture {
    uint256 public constant GENESIS = 6;
    uint256 public constant ACTORS = 8;
    uint256 public constant DURATION = 3600;

    // ------------------------------------------------------------ ghosts
    /// @notice Submissions of a hash already submitted in the round that the contract accepted.
    uint256 public acceptedCopies;
    /// @notice Reveals with a wrong salt that the contract accepted.
    uint256 public forgedReveals;
    /// @notice Second reveals of a seat that the contract accepted.
    uint256 public repeatedReveals;
    /// @notice Committees that broke a bound when they were drawn (see {committeeFault}).
    uint256 public committeeFaults;
    string public committeeFault;
    /// @notice Reward tokens minted per round, measured from the token supply.
    mapping(uint256 => uint256) public mintedInRound;
    uint256 public mintedTotal;
    /// @notice Coverage: rounds closed, calls that did something, attacks tried.
    uint256 public closedRounds;
    uint256 public actions;
    uint256 public copyAttempts;
    uint256 public forgeAttempts;
    /// @notice Finalize calls that reverted in the Finalize phase (a round that cannot close).
    uint256 public finalizeFailures;
    /// @notice Joins or withdrawals that broke the identity costs (see {identityFault}).
    uint256 public identityFaults;
    string public identityFault;

    mapping(uint256 => bool) internal _committeeChecked;
    mapping(uint256 => mapping(address => bool)) internal _committed;
    mapping(uint256 => mapping(address => uint256)) internal _bits; // votes of a commitment
    mapping(uint256 => mapping(address => bool)) internal _doubleVote; // commitment repeats a vote

    constructor() {
        // the reward bounds bind within a run: budget below a round's 6 + 1.8 token rewards,
        // lifetime cap below what five such rounds mint
        mintBudgetPerRound = 5 * TOKEN;
        mintCap = 20 * TOKEN;
        Params memory p = testParams();
        p.entryFee = 10 * TOKEN;
        p.probationRounds = 1;
        p.unbondingRounds = 1;
        deploy(p, ACTORS);
        joinFirst(GENESIS);
    }

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function actor(uint256 i) external view returns (address) {
        return peers[i];
    }

    // ------------------------------------------------------------ actions

    /// @notice A member that has not submitted this round submits a fresh hash.
    function submitUpdate(uint256 actorSeed, uint256 hashSeed) external {
        uint256 round = rm.currentRound();
        if (phaseOf() != uint256(RoundManager.Phase.Submit)) return;
        (bool found, address a) = _pick(actorSeed, _canSubmit);
        if (!found) return;
        if (trySubmit(a, round, keccak256(abi.encode("fresh", hashSeed, a)))) ++actions;
        _afterAction();
    }

    /// @notice A member submits the hash another member already submitted this round.
    function submitCopy(uint256 actorSeed, uint256 victimSeed) external {
        uint256 round = rm.currentRound();
        if (phaseOf() != uint256(RoundManager.Phase.Submit)) return;
        uint256 count = rm.submissionCount(round);
        if (count == 0) return;
        (bool found, address a) = _pick(actorSeed, _canSubmit);
        if (!found) return;
        bytes32 copied = rm.submission(round, victimSeed % count).updateHash;
        ++copyAttempts;
        if (trySubmit(a, round, copied)) ++acceptedCopies;
        _afterAction();
    }

    /// @notice A committee seat that has not committed commits to votes from `bits`; with
    ///         `doubleVote` its committed list names its first assigned update twice (an
    ///         attempt to count two votes), which its reveal must then fail to open.
    function commitVotes(uint256 actorSeed, uint256 bits, bool doubleVote) external {
        uint256 round = rm.currentRound();
        if (phaseOf() != uint256(RoundManager.Phase.Commit)) return;
        (bool found, address a) = _pick(actorSeed, _canCommit);
        if (!found) return;
        _doubleVote[round][a] = doubleVote && rm.assignmentsOf(round, a).length != 0;
        if (_commit(round, a, bits)) ++actions;
        _afterAction();
    }

    /// @notice A seat that committed reveals; with `tamper` % 3 == 0 it first tries a wrong
    ///         salt, and after its reveal it tries to reveal again.
    function revealVotes(uint256 actorSeed, uint256 tamper) external {
        uint256 round = rm.currentRound();
        if (phaseOf() != uint256(RoundManager.Phase.Reveal)) return;
        (bool found, address a) = _pick(actorSeed, _canReveal);
        if (!found) return;
        (uint256[] memory idx, bool[] memory acc) = _votes(round, a, _bits[round][a]);
        if (tamper % 3 == 0) {
            ++forgeAttempts;
            if (_tryReveal(a, round, idx, acc, saltOf(round, a) ^ bytes32(tamper | 1))) ++forgedReveals;
        }
        if (_tryReveal(a, round, idx, acc, saltOf(round, a))) {
            ++actions;
            if (_tryReveal(a, round, idx, acc, saltOf(round, a))) ++repeatedReveals;
        }
        _afterAction();
    }

    /// @notice Time passes (up to two phase lengths) and anyone calls `advance`.
    function advance(uint256 dt) external {
        vm.warp(block.timestamp + bound(dt, 0, 2 * DURATION));
        vm.roll(block.number + 1);
        try rm.advance(rm.currentRound()) {
            ++actions;
        } catch {}
        _afterAction();
    }

    /// @notice Anyone processes a finalize batch of 1 .. 20 items.
    function finalize(uint256 batch) external {
        if (phaseOf() != uint256(RoundManager.Phase.Finalize)) return;
        _finalizeBatch(bound(batch, 1, 20));
        _afterAction();
    }

    /// @notice A peer that is not a member joins. Checked: a fresh address pays the entry fee
    ///         (burned, not staked) and, after round 0, starts on probation; a known one
    ///         stakes its whole amount.
    function join(uint256 actorSeed, uint256 amount) external {
        (bool found, address a) = _pick(actorSeed, _canJoin);
        if (!found) return;
        uint256 minStake = registry.minStake();
        amount = bound(amount, minStake, 2 * minStake);
        bool known = registry.peerInfo(a).known;
        uint256 supply = token.totalSupply();
        uint256 stake = registry.stakeOf(a);
        vm.prank(a);
        try registry.join(amount, ENDPOINT) {
            ++actions;
            uint256 fee = known ? 0 : registry.params().entryFee;
            if (registry.stakeOf(a) != stake + amount - fee) _identity("join staked other than amount - entry fee");
            if (token.totalSupply() != supply - fee) _identity("join burned other than the entry fee");
            if (!known && rm.currentRound() != 0 && !registry.onProbation(a)) {
                _identity("fresh identity not on probation");
            }
        } catch {}
        _afterAction();
    }

    function requestLeave(uint256 actorSeed) external {
        address a = peers[actorSeed % ACTORS];
        vm.prank(a);
        try registry.requestLeave() {
            ++actions;
        } catch {}
        _afterAction();
    }

    /// @notice A peer withdraws. Checked: only once its unbonding period is over, and it gets
    ///         exactly its remaining stake.
    function withdraw(uint256 actorSeed) external {
        (bool found, address a) = _pick(actorSeed, _hasLeft);
        if (!found) return;
        uint256 from = registry.withdrawableFrom(a);
        uint256 stake = registry.stakeOf(a);
        uint256 balance = token.balanceOf(a);
        vm.prank(a);
        try registry.withdraw() {
            ++actions;
            if (rm.currentRound() < from) _identity("withdrew while still bonded");
            if (token.balanceOf(a) != balance + stake) _identity("withdrawal paid other than the stake");
        } catch {}
        _afterAction();
    }

    function reactivate(uint256 actorSeed, uint256 added) external {
        address a = peers[actorSeed % ACTORS];
        vm.prank(a);
        try registry.reactivate(bound(added, 0, registry.minStake())) {
            ++actions;
        } catch {}
        _afterAction();
    }

    function claim(uint256 actorSeed) external {
        address a = peers[actorSeed % ACTORS];
        vm.prank(a);
        try registry.claim() {
            ++actions;
        } catch {}
        _afterAction();
    }

    /// @notice Drive the current round to its end from whatever phase it is in: the members
    ///         still to submit submit, seats commit votes from `bits` and reveal (when `skip`
    ///         is odd, seat s skips its commit with bit s + 1 of `skip` set, its reveal with
    ///         bit s + 9), then finalize.
    function playRound(uint256 bits, uint256 skip) external {
        if (skip % 2 == 0) skip = 0; // every other round, every seat votes
        uint256 round = rm.currentRound();
        if (phaseOf() == uint256(RoundManager.Phase.Submit)) {
            for (uint256 i = 0; i < ACTORS; ++i) {
                if (_canSubmit(peers[i])) trySubmit(peers[i], round, hashOf(round, i));
                _afterAction();
            }
            _endPhase(round, RoundManager.Phase.Submit);
        }
        address[] memory c = rm.committeeOf(round);
        if (phaseOf() == uint256(RoundManager.Phase.Commit)) {
            for (uint256 s = 0; s < c.length; ++s) {
                if ((skip >> (s + 1)) & 1 == 0 && _canCommit(c[s])) _commit(round, c[s], bits >> s);
            }
            _endPhase(round, RoundManager.Phase.Commit);
        }
        if (phaseOf() == uint256(RoundManager.Phase.Reveal)) {
            for (uint256 s = 0; s < c.length; ++s) {
                if ((skip >> (s + 9)) & 1 != 0 || !_canReveal(c[s])) continue;
                (uint256[] memory idx, bool[] memory acc) = _votes(round, c[s], _bits[round][c[s]]);
                _tryReveal(c[s], round, idx, acc, saltOf(round, c[s]));
            }
            _endPhase(round, RoundManager.Phase.Reveal);
        }
        while (phaseOf() == uint256(RoundManager.Phase.Finalize) && rm.currentRound() == round) {
            if (!_finalizeBatch(MAX_BATCH)) break;
        }
        ++actions;
        _afterAction();
    }

    // ------------------------------------------------------------ helpers

    function _pick(uint256 seed, function(address) internal view returns (bool) can)
        internal
        view
        returns (bool, address)
    {
        for (uint256 j = 0; j < ACTORS; ++j) {
            address a = peers[(seed % ACTORS + j) % ACTORS];
            if (can(a)) return (true, a);
        }
        return (false, address(0));
    }

    function _canSubmit(address a) internal view returns (bool) {
        uint256 round = rm.currentRound();
        if (!registry.isMember(a)) return false;
        try rm.submissionIndexOf(round, a) returns (uint256) {
            return false;
        } catch {
            return true;
        }
    }

    function _canCommit(address a) internal view returns (bool) {
        uint256 round = rm.currentRound();
        try rm.seatOf(round, a) returns (uint256 s) {
            return rm.seatInfo(round, s).commitment == bytes32(0);
        } catch {
            return false;
        }
    }

    function _canReveal(address a) internal view returns (bool) {
        uint256 round = rm.currentRound();
        try rm.seatOf(round, a) returns (uint256 s) {
            return _committed[round][a] && !rm.seatInfo(round, s).revealed;
        } catch {
            return false;
        }
    }

    function _hasLeft(address a) internal view returns (bool) {
        return registry.statusOf(a) == PeerRegistry.Status.Left;
    }

    function _canJoin(address a) internal view returns (bool) {
        return registry.statusOf(a) == PeerRegistry.Status.None;
    }

    /// @dev The vote list `a` commits to and reveals: its assignments voted from its bits,
    ///      plus its first assignment again (with the opposite vote) when it double-votes.
    function _votes(uint256 round, address a, uint256 bits) internal view returns (uint256[] memory, bool[] memory) {
        (uint256[] memory idx, bool[] memory acc) = votesOf(round, a, bits);
        if (!_doubleVote[round][a]) return (idx, acc);
        uint256 n = idx.length;
        uint256[] memory idx2 = new uint256[](n + 1);
        bool[] memory acc2 = new bool[](n + 1);
        for (uint256 j = 0; j < n; ++j) {
            idx2[j] = idx[j];
            acc2[j] = acc[j];
        }
        idx2[n] = idx[0];
        acc2[n] = !acc[0];
        return (idx2, acc2);
    }

    function _commit(uint256 round, address a, uint256 bits) internal returns (bool ok) {
        (uint256[] memory idx, bool[] memory acc) = _votes(round, a, bits);
        bytes32 commitment = rm.voteCommitment(round, a, idx, acc, saltOf(round, a));
        vm.prank(a);
        try rm.commitVotes(round, commitment) {
            _committed[round][a] = true;
            _bits[round][a] = bits;
            ok = true;
        } catch {}
    }

    function _tryReveal(address a, uint256 round, uint256[] memory idx, bool[] memory acc, bytes32 salt)
        internal
        returns (bool)
    {
        vm.prank(a);
        try rm.revealVotes(round, idx, acc, salt) {
            return true;
        } catch {
            return false;
        }
    }

    function _endPhase(uint256 round, RoundManager.Phase ph) internal {
        if (phaseOf() != uint256(ph)) return;
        vm.warp(block.timestamp + DURATION);
        vm.roll(block.number + 1);
        try rm.advance(round) {} catch {}
        _afterAction();
    }

    /// @dev One finalize call; the tokens it mints are the supply change plus the stake it
    ///      burned (slashes are the only burns inside finalize, and they reduce totalStaked).
    function _finalizeBatch(uint256 batch) internal returns (bool ok) {
        uint256 round = rm.currentRound();
        uint256 supply = token.totalSupply();
        uint256 staked = registry.totalStaked();
        try rm.finalize(round, batch) returns (bool done) {
            uint256 burned = staked - registry.totalStaked();
            uint256 minted = token.totalSupply() + burned - supply;
            mintedInRound[round] += minted;
            mintedTotal += minted;
            if (done) ++closedRounds;
            ++actions;
            ok = true;
        } catch {
            ++finalizeFailures;
        }
    }

    /// @dev Checks the committee of the current round once, right after the call that drew it
    ///      (nothing else has changed membership or reputation since the draw).
    function _afterAction() internal {
        uint256 round = rm.currentRound();
        if (_committeeChecked[round] || phaseOf() == uint256(RoundManager.Phase.Submit)) return;
        _committeeChecked[round] = true;
        address[] memory c = rm.committeeOf(round);
        RoundManager.RoundState memory rs = rm.roundInfo(round);
        if (c.length > registry.params().committeeSize) return _fault("more seats than K");
        if (c.length != rs.committeeSize) return _fault("committeeSize differs from the seats");
        for (uint256 s = 0; s < c.length; ++s) {
            if (!registry.eligible(c[s])) return _fault("a seat holder is not an eligible member");
            if (registry.peerInfo(c[s]).index >= rs.pool) return _fault("a seat holder is outside the draw pool");
            for (uint256 t = 0; t < s; ++t) {
                if (c[s] == c[t]) return _fault("a member holds two seats");
            }
        }
    }

    function _identity(string memory what) internal {
        ++identityFaults;
        identityFault = what;
    }

    function _fault(string memory what) internal {
        ++committeeFaults;
        committeeFault = what;
    }
}

/// @title Invariants of the protocol contracts under random calls of ProtocolHandler
/// @notice 32 runs x 25 calls (foundry.toml). Each invariant is checked after every call.
contract ProtocolInvariantTest is TestBase {
    ProtocolHandler internal h;

    function setUp() public {
        h = new ProtocolHandler();
        targetContract(address(h));
    }

    /// @notice The handler reaches the states the invariants are about: rounds close, a copy
    ///         is tried and refused, the per-round budget and then the lifetime cap bind
    ///         (all-accept rounds want 6 + 1.8 tokens against a 5-token budget and a 20-token
    ///         cap), a fresh identity pays its fee and sits on probation, a departed member
    ///         withdraws only after unbonding.
    function test_handlerReachesBoundStates() public {
        h.submitUpdate(0, 1);
        h.submitCopy(1, 0);
        assertEq(h.copyAttempts(), 1, "copy tried");
        assertEq(h.acceptedCopies(), 0, "copy refused");
        h.playRound(type(uint256).max, 0);
        assertEq(h.closedRounds(), 1, "round 0 closed");
        assertEq(h.mintedInRound(0), h.rm().mintBudgetPerRound(), "budget binds in round 0");
        for (uint256 r = 1; r < 6; ++r) {
            h.submitUpdate(r, r);
            h.playRound(type(uint256).max, 0);
        }
        assertEq(h.closedRounds(), 6, "six rounds closed");
        assertEq(h.mintedTotal(), h.rm().mintCap(), "lifetime cap reached");
        assertEq(h.mintedInRound(5), 0, "nothing minted once the cap is reached");
        // identity costs: a fresh identity in round 6, a leave, a bonded then a free withdrawal
        PeerRegistry registry = h.registry();
        h.join(6, 0);
        assertTrue(registry.onProbation(h.actor(6)), "fresh identity on probation");
        assertEq(registry.stakeOf(h.actor(6)), registry.minStake() - 10 * 1e18, "entry fee not staked");
        h.requestLeave(0);
        h.playRound(type(uint256).max, 0); // round 6: actor 0 leaves, bonded for one more round
        h.withdraw(0);
        assertTrue(registry.statusOf(h.actor(0)) == PeerRegistry.Status.Left, "no withdrawal while bonded");
        h.playRound(type(uint256).max, 0);
        h.withdraw(0);
        assertTrue(registry.statusOf(h.actor(0)) == PeerRegistry.Status.None, "withdrawal after unbonding");
        invariant_identityCosts();
        invariant_mintBound();
        invariant_solvent();
        invariant_oneCountedVotePerAuditorAndUpdate();
    }

    /// @notice Solvency: the registry holds at least what it owes, and what it owes is exactly
    ///         the stakes and unclaimed rewards of the peers.
    function invariant_solvent() public view {
        PeerRegistry registry = h.registry();
        uint256 balance = h.token().balanceOf(address(registry));
        uint256 liabilities = registry.totalLiabilities();
        assertLe(liabilities, balance, "registry balance covers stakes + claimable");
        assertTrue(registry.solvencyMargin() >= 0, "solvencyMargin() >= 0");
        uint256 stakes;
        uint256 claimable;
        for (uint256 i = 0; i < h.actorCount(); ++i) {
            stakes += registry.stakeOf(h.actor(i));
            claimable += registry.claimableOf(h.actor(i));
        }
        assertEq(registry.totalStaked(), stakes, "totalStaked = sum of stakes");
        assertEq(registry.totalClaimable(), claimable, "totalClaimable = sum of claimable rewards");
        assertEq(liabilities, stakes + claimable, "liabilities = stakes + claimable");
    }

    /// @notice At most one counted vote per auditor and update: on every update of every
    ///         kept round (RoundManager.ROUNDS_KEPT) the counts equal the seats whose vote bit is set, every set bit is a seat
    ///         assigned to audit that update (never the submitter's), and no update has more
    ///         than m votes.
    function invariant_oneCountedVotePerAuditorAndUpdate() public view {
        RoundManager rm = h.rm();
        uint256 m = h.registry().params().auditorsPerUpdate;
        uint256 last = rm.currentRound();
        // rounds whose per-index data is kept (older ones: RoundPruned; their events)
        for (uint256 r = last + 1 >= rm.ROUNDS_KEPT() ? last + 1 - rm.ROUNDS_KEPT() : 0; r <= last; ++r) {
            uint256 k = rm.roundInfo(r).committeeSize;
            address[] memory c = rm.committeeOf(r);
            uint256 n = rm.submissionCount(r);
            for (uint256 u = 0; u < n; ++u) {
                RoundManager.SubmissionView memory s = rm.submission(r, u);
                uint256 voted = s.votedMask;
                assertEq(popcount(voted), uint256(s.accepts) + s.rejects, "votes counted = seats that voted");
                assertEq(popcount(s.acceptMask), s.accepts, "accepts = seats that accepted");
                assertEq(s.acceptMask & ~s.votedMask, 0, "an accept bit without a vote bit");
                assertEq(k >= 64 ? 0 : voted >> k, 0, "a vote bit beyond the committee");
                assertLe(uint256(s.accepts) + s.rejects, m, "more than m votes on an update");
                if (voted == 0) continue;
                address[] memory auditors = rm.auditorsOf(r, u);
                for (uint256 seat = 0; seat < k; ++seat) {
                    if ((voted >> seat) & 1 == 0) continue;
                    assertTrue(c[seat] != s.peer, "a vote on the voter's own update");
                    assertTrue(_contains(auditors, c[seat]), "a vote by a seat not assigned to the update");
                }
            }
        }
    }

    /// @notice No update hash appears twice in a (kept) round, and no copy was ever accepted.
    function invariant_noDuplicateHashInRound() public view {
        RoundManager rm = h.rm();
        assertEq(h.acceptedCopies(), 0, "a copied hash was accepted");
        uint256 last = rm.currentRound();
        // rounds whose per-index data is kept (older ones: RoundPruned; their events)
        for (uint256 r = last + 1 >= rm.ROUNDS_KEPT() ? last + 1 - rm.ROUNDS_KEPT() : 0; r <= last; ++r) {
            RoundManager.SubmissionView[] memory subs = rm.submissionsSlice(r, 0, type(uint32).max);
            for (uint256 u = 0; u < subs.length; ++u) {
                for (uint256 v = 0; v < u; ++v) {
                    assertTrue(subs[u].updateHash != subs[v].updateHash, "duplicate hash in a round");
                }
            }
        }
    }

    /// @notice Committee size <= K and members only (eligible, off probation, in the round's
    ///         draw pool, no address twice), checked by the handler when each committee was
    ///         drawn; sizes rechecked here for every round.
    function invariant_committeeBounds() public view {
        assertEq(h.committeeFaults(), 0, h.committeeFault());
        RoundManager rm = h.rm();
        uint256 k = h.registry().params().committeeSize;
        uint256 last = rm.currentRound();
        for (uint256 r = 0; r <= last; ++r) {
            address[] memory c = rm.committeeOf(r);
            assertLe(c.length, k, "committee larger than K");
            for (uint256 s = 0; s < c.length; ++s) {
                assertEq(rm.seatOf(r, c[s]), s, "seat lookup");
            }
        }
    }

    /// @notice Minting bound: tokens minted in each round (measured from the token supply)
    ///         stay within the per-round budget, the total within the lifetime cap and the
    ///         token's supply cap, and match the RoundManager's own count.
    function invariant_mintBound() public view {
        RoundManager rm = h.rm();
        uint256 budget = rm.mintBudgetPerRound();
        uint256 last = rm.currentRound();
        for (uint256 r = 0; r <= last; ++r) {
            assertLe(h.mintedInRound(r), budget, "minted in a round > mintBudgetPerRound");
            assertEq(h.mintedInRound(r), rm.roundInfo(r).minted, "round's minted count = measured");
        }
        assertLe(h.mintedTotal(), rm.mintCap(), "minted in total > mintCap");
        assertEq(h.mintedTotal(), rm.totalMinted(), "totalMinted = measured");
        assertLe(h.token().totalSupply(), h.token().cap(), "supply > token cap");
    }

    /// @notice Liveness: a finalize batch of 1 .. 200 items in the Finalize phase never reverts
    ///         (a round that cannot close would stop the protocol).
    function invariant_finalizeNeverReverts() public view {
        assertEq(h.finalizeFailures(), 0, "a finalize call reverted");
    }

    /// @notice Identity costs: entry fee burned on a fresh address's first join, probation
    ///         after round 0, no withdrawal before the unbonding period ends.
    function invariant_identityCosts() public view {
        assertEq(h.identityFaults(), 0, h.identityFault());
    }

    /// @notice Forged and repeated reveals are refused.
    function invariant_revealsOpenOnlyTheirCommitment() public view {
        assertEq(h.forgedReveals(), 0, "a reveal with a wrong salt was accepted");
        assertEq(h.repeatedReveals(), 0, "a seat revealed twice");
    }

    function _contains(address[] memory xs, address x) internal pure returns (bool) {
        for (uint256 i = 0; i < xs.length; ++i) {
            if (xs[i] == x) return true;
        }
        return false;
    }
}
