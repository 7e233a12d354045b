// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PeerRegistry} from "./PeerRegistry.sol";
import {Params, ParamsLib} from "./ProtocolParams.sol";
import {Sortition} from "./Sortition.sol";

/// @title Round protocol: submissions, auditor committee, commit-reveal votes, tally
/// @notice Each round runs Submit -> Commit -> Reveal -> Finalize.
///         Submit: every member posts the keccak256 of its model-update bytes once (a hash
///         already submitted in the round is refused), together with the beacon secret it
///         committed to with its previous submission and a commitment to its next one.
///         At Submit -> Commit a committee of up to K members is drawn from the round seed
///         (previous seed, XOR of the revealed beacon secrets, round: no block data and no
///         update bytes), weighted by reputation, among the members present at the round's
///         first submission; update u is audited by m committee seats derived from the
///         seed (never by its own submitter). Commit: each committee member posts one hash over
///         all its votes. Reveal: it reveals the votes and salt; the contract checks the hash
///         and that every vote is on an update assigned to it. Finalize (in batches): each
///         update is approved iff it has >= quorum revealed votes and more than
///         approvePercent % of them accept (a strict majority by default), rejected iff it has
///         >= quorum revealed votes and more than rejectPercent % of them reject (a
///         supermajority by default); reputation, rewards and (confirmed) slashes are booked in the PeerRegistry; then the
///         next round opens.
///         A phase ends at its deadline (anyone may call {advance}) or as soon as everyone
///         expected has acted, so one slow or dead peer never stalls the system.
/// @dev No function loops over members * committee. Bounds are stated per function.
contract RoundManager {
    /// @notice Phase of a round. `Closed` = finalized (only for past rounds).
    enum Phase {
        Submit,
        Commit,
        Reveal,
        Finalize,
        Closed
    }

    /// @notice Result of the audit of one update.
    /// Approved: quorum reached, more than approvePercent % of the votes accept, trainer
    /// eligible -> aggregated.
    /// Rejected: quorum reached, more than rejectPercent % of the votes reject -> not
    /// aggregated, no reward, reputation lowered; the stake is slashed only when it is the
    /// trainer's slashAfterRejections-th rejection in a row (PeerRegistry.settleUpdate).
    /// Undecided: no quorum, or neither enough accepts nor enough rejects -> no effect.
    /// Probation: accepted, but the trainer was below repThreshold when it submitted -> it
    /// regains reputation but the update is not aggregated and earns no tokens.
    enum Outcome {
        Pending,
        Approved,
        Rejected,
        Undecided,
        Probation
    }

    /// @notice Per-round state (slot 0 packed, written by every submission; seed; beacon;
    ///         minting).
    struct RoundState {
        Phase phase;
        uint40 deadline; // end of the current phase (unix seconds); 0 in Finalize
        uint32 numSubmissions;
        uint8 committeeSize; // actual seats drawn (<= K)
        uint8 commits;
        uint8 reveals;
        uint8 stage; // finalize stage: 0 updates, 1 committee, 2 members
        uint32 cursor; // finalize cursor within the stage
        uint32 approvedCount;
        uint32 pool; // members eligible for the draw: the member count at the first submission
        uint32 beaconReveals; // members that revealed a beacon secret in this round
        bytes32 seed;
        bytes32 beacon; // XOR of the beacon secrets revealed in this round
        uint128 minted; // reward tokens minted in this round (<= mintBudgetPerRound)
    }

    /// @notice One submitted update as stored: one slot, keyed by (round, update hash), so the
    ///         record doubles as the duplicate-hash check (issue 23: a submission writes two
    ///         fresh slots, this record and the hash at its index, instead of four). Votes are
    ///         kept per *window position* p < min(m, k) of the update's audit window (see
    ///         {auditorsOf}): bit p of `votedW` = the seat at position p revealed a vote, of
    ///         `acceptW` = it accepted; so a reveal writes one already-used slot per vote.
    struct Submission {
        address peer; // non-zero once submitted: a second submission of the hash is refused
        uint32 numSamples; // self-reported, capped at maxSamples
        bool eligible; // trainer reputation >= repThreshold at submission
        Outcome outcome;
        uint16 votedW; // bit p: window position p revealed a vote on this update
        uint16 acceptW; // bit p: window position p voted accept
    }

    /// @notice One submitted update as the views return it (the layout readers know):
    ///         votes as 64-bit masks over committee seats, with their counts.
    struct SubmissionView {
        address peer;
        uint32 numSamples;
        bool eligible;
        Outcome outcome;
        bytes32 updateHash;
        uint64 votedMask; // bit s: seat s revealed a vote on this update
        uint64 acceptMask; // bit s: seat s voted accept
        uint8 accepts;
        uint8 rejects;
    }

    /// @notice One committee seat of a round.
    struct Seat {
        bytes32 commitment;
        bool revealed;
        uint32 agree; // votes equal to the final majority
        uint32 disagree; // votes against the final majority
        uint32 abstain; // assigned updates left without a vote in the reveal
    }

    /// @dev Loop-invariant values of one reveal (kept in memory to stay within the stack).
    struct VoteCtx {
        uint256 round;
        uint256 n;
        uint256 k;
        bytes32 seed;
        uint256 seat;
    }

    /// @notice Most items one {finalize} call may process. The caller sizes batches by gas
    ///         (bdfl.chain.protocol.finalize_batch_size) so a batch stays under the
    ///         16,777,216 per-transaction gas cap (EIP-7825).
    uint256 public constant MAX_FINALIZE_ITEMS = 200;
    /// @dev "No position / no seat".
    uint256 internal constant NONE = type(uint256).max;

    // ------------------------------------------------------------------ errors
    error WrongRound(uint256 given, uint256 current);
    error WrongPhase(uint256 round, Phase expected, Phase actual);
    error DeadlinePassed(uint256 round, Phase phase, uint256 deadline);
    error PhaseNotOver(uint256 round, Phase phase, uint256 deadline);
    error AlreadySubmitted(uint256 round, address peer);
    /// @notice `updateHash` was already submitted in `round` (by another member): copies refused.
    error DuplicateHash(uint256 round, bytes32 updateHash);
    /// @notice The revealed beacon secret does not open the caller's commitment for `round`.
    error BeaconMismatch(uint256 round, address peer);
    error EmptyHash();
    error NotInCommittee(uint256 round, address account);
    error AlreadyCommitted(uint256 round, address auditor);
    error NotCommitted(uint256 round, address auditor);
    error AlreadyRevealed(uint256 round, address auditor);
    error CommitmentMismatch(uint256 round, address auditor);
    error LengthMismatch(uint256 indices, uint256 votes);
    error IndexOutOfRange(uint256 index, uint256 count);
    error OwnUpdate(uint256 round, uint256 index);
    error NotAssigned(uint256 round, uint256 index, address auditor);
    error DuplicateVote(uint256 round, uint256 index);
    error BadBatchSize(uint256 maxItems);
    error BadMintBounds();
    /// @notice Raised by PeerRegistry.onSubmit for a non-member; declared here so that it
    ///         decodes by name from this contract's ABI when it bubbles up.
    error NotActiveMember(address peer);

    // ------------------------------------------------------------------ events
    /// @notice Round `round` opened in the Submit phase.
    event RoundOpened(uint256 indexed round, uint256 submitDeadline);
    /// @notice Round `round` entered `phase`, ending at `deadline` (0 = no deadline).
    event PhaseAdvanced(uint256 indexed round, Phase phase, uint256 deadline);
    /// @notice `peer` committed to the update with hash `updateHash` as update `index` of `round`.
    event UpdateSubmitted(
        uint256 indexed round, address indexed peer, uint256 index, bytes32 updateHash, uint256 numSamples
    );
    /// @notice The committee of `round` was drawn from `seed` (seat order) among the first
    ///         `pool` members; `beaconReveals` members contributed a beacon secret.
    event CommitteeDrawn(uint256 indexed round, bytes32 seed, address[] committee);
    /// @notice Beacon of `round`: `beacon` is the XOR of the `reveals` secrets revealed.
    event BeaconClosed(uint256 indexed round, bytes32 beacon, uint256 reveals, uint256 pool);
    /// @notice A reward of `wanted` tokens was cut to `granted` by the per-round budget or the cap.
    event RewardCapped(uint256 indexed round, address indexed peer, uint256 wanted, uint256 granted);
    /// @notice `auditor` committed to its votes of `round`.
    event VotesCommitted(uint256 indexed round, address indexed auditor, bytes32 commitment);
    /// @notice `auditor` revealed `votes` votes of `round`.
    event VotesRevealed(uint256 indexed round, address indexed auditor, uint256 votes);
    /// @notice Update `index` of `round` was decided; `approved` = aggregated by peers.
    event UpdateFinalized(
        uint256 indexed round,
        address indexed peer,
        uint256 index,
        bytes32 updateHash,
        bool approved,
        Outcome outcome,
        uint256 accepts,
        uint256 rejects
    );
    /// @notice Committee seat `seat` of `round` was booked (agreement counts, or missing reveal).
    event AuditorSettled(
        uint256 indexed round,
        address indexed auditor,
        uint256 seat,
        bool revealed,
        uint256 agree,
        uint256 disagree,
        uint256 abstain
    );
    /// @notice A finalize batch of `round` ended at `stage` / `cursor`.
    event FinalizeProgress(uint256 indexed round, uint256 stage, uint256 cursor);
    /// @notice Round `round` closed with `approved` of `submissions` updates approved.
    event RoundFinalized(uint256 indexed round, uint256 submissions, uint256 approved, bytes32 seed);

    // ------------------------------------------------------------------ state
    PeerRegistry public immutable registry;

    uint256 internal immutable _updateReward;
    uint256 internal immutable _voteReward;
    uint64 internal immutable _repGainVote;
    uint64 internal immutable _repLossVote;
    uint64 internal immutable _repLossNoReveal;
    uint32 internal immutable _submitDuration;
    uint32 internal immutable _commitDuration;
    uint32 internal immutable _revealDuration;
    uint16 internal immutable _committeeSize;
    uint16 internal immutable _auditorsPerUpdate;
    uint16 internal immutable _quorum;
    uint16 internal immutable _approvePercent;
    uint16 internal immutable _rejectPercent;
    uint32 internal immutable _maxSamples;

    /// @notice Most reward tokens minted in one round (trainer and auditor rewards together).
    uint256 public immutable mintBudgetPerRound;
    /// @notice Most reward tokens this contract ever mints.
    uint256 public immutable mintCap;
    /// @notice Reward tokens minted so far (<= mintCap).
    uint256 public totalMinted;

    /// @notice Round currently open (rounds before it are Closed).
    uint64 public currentRound;
    /// @notice Seed of the latest round whose committee has been drawn.
    bytes32 public lastSeed;

    mapping(uint256 => RoundState) internal _rounds;
    /// @dev Update hash per round and index (a mapping, not an array: `numSubmissions` is the
    ///      count, so a submission does not also write an array length).
    mapping(uint256 => mapping(uint256 => bytes32)) internal _hashes;
    /// @dev Update record per round and hash (see {Submission}).
    mapping(uint256 => mapping(bytes32 => Submission)) internal _byHash;
    mapping(uint256 => address[]) internal _committees;
    mapping(uint256 => mapping(address => uint256)) internal _seatPlusOne;
    mapping(uint256 => mapping(uint256 => Seat)) internal _seats;
    /// @dev Per member, one slot reused every round (issue 23: no fresh slot per submission
    ///      for it): bits 96..255 the high 160 bits of `Sortition.beaconCommitment(secret,
    ///      member)`; bits 64..95 `round + 1` of the round whose submission must reveal
    ///      `secret` (0 = none pending); bits 32..63 `round + 1` of the member's latest
    ///      submission; bits 0..31 its index in that round.
    mapping(address => uint256) internal _member;

    /// @param registry_ The PeerRegistry; its parameters are this contract's parameters
    ///        (one source of truth). Round 0 opens at deployment.
    /// @param mintBudgetPerRound_ Most reward tokens minted per round (> 0).
    /// @param mintCap_ Most reward tokens ever minted (> 0); the token's supply cap must
    ///        leave room for it.
    constructor(PeerRegistry registry_, uint256 mintBudgetPerRound_, uint256 mintCap_) {
        if (mintBudgetPerRound_ == 0 || mintBudgetPerRound_ > type(uint128).max) revert BadMintBounds();
        if (mintCap_ == 0) revert BadMintBounds();
        mintBudgetPerRound = mintBudgetPerRound_;
        mintCap = mintCap_;
        // round 0 has no revealed secrets: its seed is public (docs/protocol.md)
        lastSeed = keccak256(abi.encode(block.chainid, address(this)));
        registry = registry_;
        Params memory p = registry_.params();
        ParamsLib.validate(p);
        _updateReward = p.updateReward;
        _voteReward = p.voteReward;
        _repGainVote = p.repGainVote;
        _repLossVote = p.repLossVote;
        _repLossNoReveal = p.repLossNoReveal;
        _submitDuration = p.submitDuration;
        _commitDuration = p.commitDuration;
        _revealDuration = p.revealDuration;
        _committeeSize = p.committeeSize;
        _auditorsPerUpdate = p.auditorsPerUpdate;
        _quorum = p.quorum;
        _approvePercent = p.approvePercent;
        _rejectPercent = p.rejectPercent;
        _maxSamples = p.maxSamples;
        _open(0);
    }

    // ============================================================ transactions

    /// @notice Submit the keccak256 hash of this round's model-update bytes, once per member
    ///         per round; a hash another member already submitted this round is refused
    ///         ({DuplicateHash}). `numSamples` is self-reported and untrusted: it is stored capped at
    ///         `maxSamples` and never weighs anything on chain. The last expected submission
    ///         ends the Submit phase early (and pays for the committee draw).
    ///         Beacon: `beaconReveal` must open the commitment made with the caller's previous
    ///         submission if that was for this round (else it is ignored);
    ///         `beaconCommit = keccak256(abi.encode(secret, caller))` commits to the secret to
    ///         reveal in the next round. See {Sortition-roundSeed}.
    function submitUpdate(
        uint256 round,
        bytes32 updateHash,
        uint32 numSamples,
        bytes32 beaconReveal,
        bytes32 beaconCommit
    ) external {
        RoundState storage rs = _requireOpen(round, Phase.Submit);
        if (updateHash == bytes32(0) || beaconCommit == bytes32(0)) revert EmptyHash();
        uint256 slot = _member[msg.sender];
        if (uint32(slot >> 32) == round + 1) revert AlreadySubmitted(round, msg.sender);
        Submission storage rec = _byHash[round][updateHash];
        if (rec.peer != address(0)) revert DuplicateHash(round, updateHash);
        uint256 index = rs.numSubmissions;
        // the draw pool is frozen before any secret of this round is public
        (bool eligible, uint256 members) = registry.onSubmit(msg.sender, uint64(round)); // reverts for non-members
        if (index == 0) rs.pool = uint32(members);
        _beaconStep(round, rs, slot, beaconReveal, beaconCommit, index);
        uint32 capped = numSamples < _maxSamples ? numSamples : _maxSamples;
        rec.peer = msg.sender;
        rec.numSamples = capped;
        rec.eligible = eligible;
        _hashes[round][index] = updateHash;
        rs.numSubmissions = uint32(index + 1);
        emit UpdateSubmitted(round, msg.sender, index, updateHash, capped);
        if (index + 1 >= members) _advanceFrom(round, rs);
    }

    /// @notice Commit to all of the caller's votes of `round`:
    ///         `commitment = keccak256(abi.encode(chainid, this, round, auditor, updateIdx, accept, salt))`
    ///         with `updateIdx` a uint256[] and `accept` a bool[] (see {voteCommitment}). The
    ///         auditor's address is inside the hash, so copying another's commitment is useless;
    ///         chain id and contract address, so a commitment never opens on another deployment.
    function commitVotes(uint256 round, bytes32 commitment) external {
        RoundState storage rs = _requireOpen(round, Phase.Commit);
        uint256 seatPlusOne = _seatPlusOne[round][msg.sender];
        if (seatPlusOne == 0) revert NotInCommittee(round, msg.sender);
        Seat storage seat = _seats[round][seatPlusOne - 1];
        if (seat.commitment != bytes32(0)) revert AlreadyCommitted(round, msg.sender);
        if (commitment == bytes32(0)) revert EmptyHash();
        seat.commitment = commitment;
        uint8 commits = rs.commits + 1;
        rs.commits = commits;
        emit VotesCommitted(round, msg.sender, commitment);
        if (commits == rs.committeeSize) _advanceFrom(round, rs);
    }

    /// @notice Reveal the votes committed in {commitVotes}. Reverts if the hash does not match,
    ///         the Reveal deadline has passed, any index is not assigned to the caller (its own
    ///         update included), or an index repeats. Indices may be in any order; assigned
    ///         updates left out count as abstentions.
    /// @dev Loop bound: `updateIdx.length` (<= number of submissions), O(m) work per vote.
    function revealVotes(uint256 round, uint256[] calldata updateIdx, bool[] calldata accept, bytes32 salt)
        external
    {
        RoundState storage rs = _requireOpen(round, Phase.Reveal);
        uint256 seatPlusOne = _seatPlusOne[round][msg.sender];
        if (seatPlusOne == 0) revert NotInCommittee(round, msg.sender);
        uint256 seatIdx = seatPlusOne - 1;
        Seat storage seat = _seats[round][seatIdx];
        if (seat.commitment == bytes32(0)) revert NotCommitted(round, msg.sender);
        if (seat.revealed) revert AlreadyRevealed(round, msg.sender);
        if (updateIdx.length != accept.length) revert LengthMismatch(updateIdx.length, accept.length);
        if (_voteCommitment(round, msg.sender, updateIdx, accept, salt) != seat.commitment) {
            revert CommitmentMismatch(round, msg.sender);
        }
        seat.revealed = true;
        uint8 reveals = rs.reveals + 1;
        rs.reveals = reveals;
        _recordVotes(round, rs, seatIdx, updateIdx, accept);
        emit VotesRevealed(round, msg.sender, updateIdx.length);
        if (reveals == rs.commits) _advanceFrom(round, rs);
    }

    /// @notice End the current phase of `round` once its deadline has passed (or everyone
    ///         expected has acted). Anyone may call it.
    function advance(uint256 round) external {
        if (round != currentRound) revert WrongRound(round, currentRound);
        RoundState storage rs = _rounds[round];
        Phase ph = rs.phase;
        if (ph == Phase.Finalize || ph == Phase.Closed) revert WrongPhase(round, Phase.Reveal, ph);
        if (block.timestamp < rs.deadline && !_phaseComplete(rs)) revert PhaseNotOver(round, ph, rs.deadline);
        _advanceFrom(round, rs);
    }

    /// @notice Process up to `maxItems` items of the Finalize phase: first every update
    ///         (outcome, trainer reputation, reward or slash, per-seat agreement counts), then
    ///         every committee seat (auditor reputation and reward; penalty if it did not
    ///         reveal), then every member (absence, inactivity, exits). When all are done the
    ///         round is Closed and the next round opens. Anyone may call it, repeatedly.
    /// @dev Loop bound: `maxItems` <= MAX_FINALIZE_ITEMS items per call; each item does O(m)
    ///      work. Calls per round: ceil((N_submissions + K + N_members) / maxItems).
    /// @return done Whether the round is now closed.
    function finalize(uint256 round, uint256 maxItems) external returns (bool done) {
        if (maxItems == 0 || maxItems > MAX_FINALIZE_ITEMS) revert BadBatchSize(maxItems);
        RoundState storage rs = _requireCurrent(round, Phase.Finalize);
        uint256 items;
        uint256 stage = rs.stage;
        uint256 cursor = rs.cursor;
        if (stage == 0) {
            uint256 n = rs.numSubmissions;
            uint256 approved = rs.approvedCount;
            while (items < maxItems && cursor < n) {
                if (_finalizeUpdate(round, rs, cursor)) ++approved;
                ++cursor;
                ++items;
            }
            rs.approvedCount = uint32(approved);
            if (cursor == n) {
                stage = 1;
                cursor = 0;
            }
        }
        if (stage == 1) {
            uint256 k = rs.committeeSize;
            while (items < maxItems && cursor < k) {
                _settleSeat(round, cursor);
                ++cursor;
                ++items;
            }
            if (cursor == k) {
                stage = 2;
                cursor = 0;
            }
        }
        if (stage == 2 && items < maxItems) {
            (uint256 used, bool swept) = registry.sweep(uint64(round), maxItems - items);
            items += used;
            if (swept) stage = 3;
        }
        rs.stage = uint8(stage);
        rs.cursor = uint32(cursor);
        registry.flushMint(); // one mint for every reward this batch credited
        emit FinalizeProgress(round, stage, cursor);
        if (stage == 3) {
            rs.phase = Phase.Closed;
            emit RoundFinalized(round, rs.numSubmissions, rs.approvedCount, rs.seed);
            _open(round + 1);
            return true;
        }
        return false;
    }

    // ================================================================== views

    /// @notice Commitment an auditor must post; identical to Python's `vote_commitment`
    ///         (binds chain id and this contract's address).
    function voteCommitment(
        uint256 round,
        address auditor,
        uint256[] calldata updateIdx,
        bool[] calldata accept,
        bytes32 salt
    ) external view returns (bytes32) {
        return _voteCommitment(round, auditor, updateIdx, accept, salt);
    }

    /// @notice Whether `member` has a beacon commitment that its submission of `round` must open.
    function beaconPending(uint256 round, address member) external view returns (bool) {
        return uint32(_member[member] >> 64) == round + 1;
    }

    /// @notice Phase of the current round.
    function phase() external view returns (Phase) {
        return _rounds[currentRound].phase;
    }

    /// @notice Full state of `round`.
    function roundInfo(uint256 round) external view returns (RoundState memory) {
        return _rounds[round];
    }

    /// @notice Committee of `round` in seat order (empty before the draw).
    function committeeOf(uint256 round) external view returns (address[] memory) {
        return _committees[round];
    }

    /// @notice Seat of `account` in the committee of `round` (reverts if it holds none).
    function seatOf(uint256 round, address account) external view returns (uint256) {
        uint256 s = _seatPlusOne[round][account];
        if (s == 0) revert NotInCommittee(round, account);
        return s - 1;
    }

    /// @notice State of seat `seat` of `round`.
    function seatInfo(uint256 round, uint256 seat) external view returns (Seat memory) {
        return _seats[round][seat];
    }

    /// @notice Number of updates submitted in `round`.
    function submissionCount(uint256 round) external view returns (uint256) {
        return _rounds[round].numSubmissions;
    }

    /// @notice Update `index` of `round`.
    function submission(uint256 round, uint256 index) external view returns (SubmissionView memory) {
        if (index >= _rounds[round].numSubmissions) revert IndexOutOfRange(index, _rounds[round].numSubmissions);
        return _view(round, index);
    }

    /// @notice Updates `start` .. `start + count - 1` of `round` (fewer at the end): one call
    ///         instead of one per update for readers such as keepers and dashboards.
    /// @dev Loop bound: `count` (a view; callers page).
    function submissionsSlice(uint256 round, uint256 start, uint256 count)
        external
        view
        returns (SubmissionView[] memory out)
    {
        uint256 n = _rounds[round].numSubmissions;
        uint256 end = start >= n ? start : (count > n - start ? n : start + count);
        out = new SubmissionView[](end - start);
        for (uint256 i = start; i < end; ++i) out[i - start] = _view(round, i);
    }

    /// @notice Index of `peer`'s update in `round` (reverts if it submitted none). O(1) for
    ///         the peer's latest submission, an O(N) scan for older rounds.
    function submissionIndexOf(uint256 round, address peer) public view returns (uint256) {
        uint256 slot = _member[peer];
        if (uint32(slot >> 32) == round + 1) return uint32(slot);
        uint256 n = _rounds[round].numSubmissions;
        for (uint256 u = 0; u < n; ++u) {
            if (_sub(round, u).peer == peer) return u;
        }
        revert IndexOutOfRange(type(uint256).max, n);
    }

    /// @notice Committee members auditing update `index` of `round`.
    /// @dev Loop bound: m.
    function auditorsOf(uint256 round, uint256 index) external view returns (address[] memory out) {
        uint256[] memory seats = _auditSeats(round, index);
        address[] storage c = _committees[round];
        out = new address[](seats.length);
        for (uint256 j = 0; j < seats.length; ++j) {
            out[j] = c[seats[j]];
        }
    }

    /// @notice Indices of the updates of `round` assigned to `auditor` (empty if it holds no
    ///         seat). A view for off-chain use: loops over all submissions (O(N) with O(1)
    ///         work each, a storage read only for the ~N/k updates where the auditor is the
    ///         replacement seat).
    function assignmentsOf(uint256 round, address auditor) external view returns (uint256[] memory out) {
        uint256 seatPlusOne = _seatPlusOne[round][auditor];
        if (seatPlusOne == 0) return new uint256[](0);
        RoundState storage rs = _rounds[round];
        uint256 n = rs.numSubmissions;
        uint256 k = rs.committeeSize;
        bytes32 seed = rs.seed;
        out = new uint256[](n);
        uint256 count;
        uint256 own = _ownIndex(round, auditor, n); // its own update is never assigned to it
        for (uint256 u = 0; u < n; ++u) {
            if (u != own && _assignedView(round, seed, u, k, seatPlusOne - 1)) out[count++] = u;
        }
        assembly ("memory-safe") {
            mstore(out, count)
        }
    }

    /// @notice Approved (aggregatable) updates of a finalized `round`: the trainers and
    ///         their update hashes, in submission order. O(N) view.
    function approvedUpdates(uint256 round) external view returns (address[] memory peers, bytes32[] memory hashes) {
        uint256 n = _rounds[round].numSubmissions;
        uint256 count = _rounds[round].approvedCount;
        peers = new address[](count);
        hashes = new bytes32[](count);
        uint256 w;
        for (uint256 u = 0; u < n && w < count; ++u) {
            if (_sub(round, u).outcome == Outcome.Approved) {
                peers[w] = _sub(round, u).peer;
                hashes[w] = _hashes[round][u];
                ++w;
            }
        }
    }

    /// @notice Whether `peer`'s update of `round` was approved for aggregation.
    function isApproved(uint256 round, address peer) external view returns (bool) {
        uint256 slot = _member[peer];
        if (uint32(slot >> 32) == round + 1) return _sub(round, uint32(slot)).outcome == Outcome.Approved;
        uint256 n = _rounds[round].numSubmissions;
        for (uint256 u = 0; u < n; ++u) {
            if (_sub(round, u).peer == peer) return _sub(round, u).outcome == Outcome.Approved;
        }
        return false;
    }

    // =============================================================== internal

    function _requireCurrent(uint256 round, Phase expected) internal view returns (RoundState storage rs) {
        if (round != currentRound) revert WrongRound(round, currentRound);
        rs = _rounds[round];
        if (rs.phase != expected) revert WrongPhase(round, expected, rs.phase);
    }

    function _requireOpen(uint256 round, Phase expected) internal view returns (RoundState storage rs) {
        rs = _requireCurrent(round, expected);
        if (block.timestamp >= rs.deadline) revert DeadlinePassed(round, expected, rs.deadline);
    }

    function _phaseComplete(RoundState storage rs) internal view returns (bool) {
        Phase ph = rs.phase;
        if (ph == Phase.Submit) return rs.numSubmissions != 0 && rs.numSubmissions >= registry.memberCount();
        if (ph == Phase.Commit) return rs.commits == rs.committeeSize;
        if (ph == Phase.Reveal) return rs.reveals == rs.commits;
        return false;
    }

    function _open(uint256 round) internal {
        currentRound = uint64(round);
        RoundState storage rs = _rounds[round];
        rs.phase = Phase.Submit;
        uint256 deadline = block.timestamp + _submitDuration;
        rs.deadline = uint40(deadline);
        if (round != 0) registry.openRound(uint64(round));
        emit RoundOpened(round, deadline);
    }

    /// @dev Moves Submit -> Commit (drawing the committee), Commit -> Reveal, Reveal ->
    ///      Finalize; skips phases nobody can act in (empty committee, no commits).
    ///      Loop bound: 3 transitions.
    function _advanceFrom(uint256 round, RoundState storage rs) internal {
        Phase ph = rs.phase;
        if (ph == Phase.Submit) {
            bytes32 seed = Sortition.roundSeed(lastSeed, rs.beacon, round);
            lastSeed = seed;
            rs.seed = seed;
            emit BeaconClosed(round, rs.beacon, rs.beaconReveals, rs.pool);
            address[] memory committee = registry.drawCommitteeAmong(seed, _committeeSize, rs.pool);
            address[] storage stored = _committees[round];
            mapping(address => uint256) storage seatOf_ = _seatPlusOne[round];
            for (uint256 i = 0; i < committee.length; ++i) {
                stored.push(committee[i]);
                seatOf_[committee[i]] = i + 1;
            }
            rs.committeeSize = uint8(committee.length);
            emit CommitteeDrawn(round, seed, committee);
            ph = _enter(round, rs, Phase.Commit, _commitDuration);
            if (committee.length != 0) return;
        }
        if (ph == Phase.Commit) {
            ph = _enter(round, rs, Phase.Reveal, _revealDuration);
            if (rs.commits != 0) return;
        }
        if (ph == Phase.Reveal) {
            _enter(round, rs, Phase.Finalize, 0);
        }
    }

    function _enter(uint256 round, RoundState storage rs, Phase ph, uint256 duration) internal returns (Phase) {
        rs.phase = ph;
        uint256 deadline = duration == 0 ? 0 : block.timestamp + duration;
        rs.deadline = uint40(deadline);
        emit PhaseAdvanced(round, ph, deadline);
        return ph;
    }

    /// @dev Open the caller's pending beacon commitment (if it is for `round`) and store the
    ///      commitment for round + 1. A member that committed and does not submit withholds
    ///      its secret: it is absent, which the registry's sweep penalises.
    ///      Writes the member's slot once: new commitment, its round, this submission's round
    ///      and index.
    function _beaconStep(
        uint256 round,
        RoundState storage rs,
        uint256 slot,
        bytes32 reveal,
        bytes32 commit,
        uint256 index
    ) internal {
        if (uint32(slot >> 64) == round + 1) {
            if (uint256(Sortition.beaconCommitment(reveal, msg.sender)) >> 96 != slot >> 96) {
                revert BeaconMismatch(round, msg.sender);
            }
            rs.beacon ^= reveal;
            rs.beaconReveals += 1;
        }
        _member[msg.sender] = ((uint256(commit) >> 96) << 96) | ((round + 2) << 64) | ((round + 1) << 32) | index;
    }

    function _voteCommitment(
        uint256 round,
        address auditor,
        uint256[] calldata updateIdx,
        bool[] calldata accept,
        bytes32 salt
    ) internal view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), round, auditor, updateIdx, accept, salt));
    }

    /// @dev The part of a `wanted` reward that fits the round's budget and the lifetime cap.
    function _grant(uint256 round, address peer, uint256 wanted) internal returns (uint256 granted) {
        if (wanted == 0) return 0;
        RoundState storage rs = _rounds[round];
        uint256 minted = rs.minted;
        uint256 total = totalMinted;
        uint256 leftRound = mintBudgetPerRound - minted;
        uint256 leftTotal = mintCap - total;
        granted = wanted;
        if (granted > leftRound) granted = leftRound;
        if (granted > leftTotal) granted = leftTotal;
        if (granted != wanted) emit RewardCapped(round, peer, wanted, granted);
        if (granted != 0) {
            rs.minted = uint128(minted + granted);
            totalMinted = total + granted;
        }
    }

    function _ownSeat(uint256 round, address peer) internal view returns (uint256) {
        uint256 s = _seatPlusOne[round][peer];
        return s == 0 ? type(uint256).max : s - 1;
    }

    /// @dev Window position of `seat` in the audit of update `u` (submitted by `peer` !=
    ///      holder of `seat`), or NONE when `seat` does not audit it. Positions: offset
    ///      `d = (seat - h) mod k` for `d < mm = min(m, k)`; the replacement seat `(h + mm) mod k`
    ///      takes the position of the submitter's own seat when that is in the window. Reads
    ///      the submitter's seat only for the replacement seat.
    function _position(uint256 round, bytes32 seed, uint256 u, uint256 k, uint256 seat, address peer)
        internal
        view
        returns (uint256)
    {
        if (k == 0) return NONE;
        uint256 mm = _auditorsPerUpdate < k ? _auditorsPerUpdate : k;
        uint256 h = Sortition.windowStart(seed, u, k);
        uint256 d = (seat + k - h) % k;
        if (d < mm) return d; // in the window, and not the submitter's own seat
        if (d != mm) return NONE;
        uint256 own = _ownSeat(round, peer);
        if (own == type(uint256).max) return NONE;
        uint256 ownD = (own + k - h) % k;
        return ownD < mm ? ownD : NONE;
    }

    /// @dev Index of `member`'s update in `round`, or NONE: O(1) for its latest submission,
    ///      a scan of the `n` updates for an older round (views only).
    function _ownIndex(uint256 round, address member, uint256 n) internal view returns (uint256) {
        uint256 slot = _member[member];
        if (uint32(slot >> 32) == round + 1) return uint32(slot);
        for (uint256 u = 0; u < n; ++u) {
            if (_sub(round, u).peer == member) return u;
        }
        return NONE;
    }

    /// @dev {_position} != NONE for an update not submitted by the holder of `seat`, reading
    ///      storage only when `seat` is the replacement seat (d == mm): ~N/k reads per view.
    function _assignedView(uint256 round, bytes32 seed, uint256 u, uint256 k, uint256 seat)
        internal
        view
        returns (bool)
    {
        uint256 mm = _auditorsPerUpdate < k ? _auditorsPerUpdate : k;
        uint256 d = (seat + k - Sortition.windowStart(seed, u, k)) % k;
        if (d < mm) return true;
        return d == mm && _position(round, seed, u, k, seat, _sub(round, u).peer) != NONE;
    }

    /// @dev The seat at window position `p` of an update whose window starts at `h`, or NONE
    ///      (the submitter's own seat when the window covers every seat).
    function _seatAt(uint256 p, uint256 h, uint256 k, uint256 mm, uint256 own) internal pure returns (uint256) {
        uint256 seat = (h + p) % k;
        if (seat != own) return seat;
        return mm == k ? NONE : (h + mm) % k;
    }

    /// @dev The stored record of update `u` of `round` (zero fields past the last one).
    function _sub(uint256 round, uint256 u) internal view returns (Submission storage) {
        return _byHash[round][_hashes[round][u]];
    }

    /// @dev The stored update `u` of `round` in the view layout (seat masks and counts).
    function _view(uint256 round, uint256 u) internal view returns (SubmissionView memory v) {
        Submission storage s = _sub(round, u);
        v.peer = s.peer;
        v.numSamples = s.numSamples;
        v.eligible = s.eligible;
        v.outcome = s.outcome;
        v.updateHash = _hashes[round][u];
        uint256 voted = s.votedW;
        uint256 accepted = s.acceptW;
        if (voted == 0) return v;
        RoundState storage rs = _rounds[round];
        uint256 k = rs.committeeSize;
        uint256 mm = _auditorsPerUpdate < k ? _auditorsPerUpdate : k;
        uint256 h = Sortition.windowStart(rs.seed, u, k);
        uint256 own = _ownSeat(round, s.peer);
        for (uint256 p = 0; p < mm; ++p) {
            if (voted & (1 << p) == 0) continue;
            uint256 seat = _seatAt(p, h, k, mm, own);
            v.votedMask |= uint64(1 << seat);
            if (accepted & (1 << p) != 0) {
                v.acceptMask |= uint64(1 << seat);
                v.accepts += 1;
            } else {
                v.rejects += 1;
            }
        }
    }

    function _auditSeats(uint256 round, uint256 u) internal view returns (uint256[] memory) {
        RoundState storage rs = _rounds[round];
        if (u >= rs.numSubmissions) revert IndexOutOfRange(u, rs.numSubmissions);
        uint256 own = _ownSeat(round, _sub(round, u).peer);
        return Sortition.auditSeats(rs.seed, u, rs.committeeSize, _auditorsPerUpdate, own);
    }

    /// @dev Record the revealed votes of seat `seatIdx`; reverts on an index out of range, the
    ///      caller's own update, an unassigned update or a repeated index.
    ///      Loop bound: `updateIdx.length`, O(m) per vote.
    function _recordVotes(
        uint256 round,
        RoundState storage rs,
        uint256 seatIdx,
        uint256[] calldata updateIdx,
        bool[] calldata accept
    ) internal {
        VoteCtx memory ctx = VoteCtx({
            round: round,
            n: rs.numSubmissions,
            k: rs.committeeSize,
            seed: rs.seed,
            seat: seatIdx
        });
        for (uint256 i = 0; i < updateIdx.length; ++i) {
            _recordVote(ctx, updateIdx[i], accept[i]);
        }
    }

    function _recordVote(VoteCtx memory ctx, uint256 u, bool acc) internal {
        if (u >= ctx.n) revert IndexOutOfRange(u, ctx.n);
        Submission storage s = _sub(ctx.round, u);
        address peer = s.peer;
        if (peer == msg.sender) revert OwnUpdate(ctx.round, u);
        uint256 p = _position(ctx.round, ctx.seed, u, ctx.k, ctx.seat, peer);
        if (p == NONE) revert NotAssigned(ctx.round, u, msg.sender);
        uint16 bit = uint16(1 << p);
        uint16 voted = s.votedW;
        if (voted & bit != 0) revert DuplicateVote(ctx.round, u);
        s.votedW = voted | bit;
        if (acc) s.acceptW |= bit;
    }

    /// @dev Decide update `u`, book the trainer, count agreement per auditor seat. O(m).
    function _finalizeUpdate(uint256 round, RoundState storage rs, uint256 u) internal returns (bool approved) {
        Submission storage s = _sub(round, u);
        uint256 votes = _popcount(s.votedW);
        uint256 accepts = _popcount(s.acceptW);
        uint256 rejects = votes - accepts;
        Outcome outcome = Outcome.Undecided;
        if (votes >= _quorum) {
            if (100 * accepts > votes * _approvePercent) outcome = s.eligible ? Outcome.Approved : Outcome.Probation;
            else if (100 * rejects > votes * _rejectPercent) outcome = Outcome.Rejected;
        }
        s.outcome = outcome;
        address peer = s.peer;
        approved = outcome == Outcome.Approved;
        if (approved) {
            registry.settleUpdate(peer, true, _grant(round, peer, _updateReward));
        } else if (outcome == Outcome.Probation) {
            registry.settleUpdate(peer, true, 0);
        } else if (outcome == Outcome.Rejected) {
            registry.settleUpdate(peer, false, 0); // slashes only a confirmed reversal
        }
        emit UpdateFinalized(round, peer, u, _hashes[round][u], approved, outcome, accepts, rejects);
        if (rs.committeeSize != 0) _countAgreement(round, rs, u, s, outcome);
    }

    /// @dev For each seat auditing update `u` that revealed: agree / disagree with the
    ///      outcome, or abstain if it left `u` out. Votes on Undecided updates are neutral.
    ///      Loop bound: m.
    function _countAgreement(uint256 round, RoundState storage rs, uint256 u, Submission storage s, Outcome outcome)
        internal
    {
        uint256 k = rs.committeeSize;
        uint256 mm = _auditorsPerUpdate < k ? _auditorsPerUpdate : k;
        uint256 h = Sortition.windowStart(rs.seed, u, k);
        uint256 own = _ownSeat(round, s.peer);
        bool decided = outcome != Outcome.Undecided;
        bool majorityAccepts = outcome == Outcome.Approved || outcome == Outcome.Probation;
        uint256 voted = s.votedW;
        uint256 accepted = s.acceptW;
        mapping(uint256 => Seat) storage seatsOfRound = _seats[round];
        for (uint256 p = 0; p < mm; ++p) {
            uint256 seatIdx = _seatAt(p, h, k, mm, own);
            if (seatIdx == NONE) continue;
            Seat storage seat = seatsOfRound[seatIdx];
            if (!seat.revealed || voted & (1 << p) == 0) {
                seat.abstain += 1; // a missing reveal's assignments count here too (its penalty)
            } else if (decided) {
                if (((accepted & (1 << p)) != 0) == majorityAccepts) seat.agree += 1;
                else seat.disagree += 1;
            }
        }
    }

    function _popcount(uint256 x) internal pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }

    /// @dev Book auditor `seat`: if it did not reveal (or never committed), a penalty of
    ///      repLossNoReveal plus repLossVote per assigned update, more than revealing every
    ///      assigned vote against the majority would cost; else agreement-based reputation
    ///      change and reward. O(1).
    function _settleSeat(uint256 round, uint256 seatIdx) internal {
        address auditor = _committees[round][seatIdx];
        Seat storage seat = _seats[round][seatIdx];
        if (!seat.revealed) {
            uint256 assigned = seat.abstain;
            registry.settle(auditor, -int256(_repLossNoReveal + assigned * _repLossVote), 0, 0);
            emit AuditorSettled(round, auditor, seatIdx, false, 0, 0, assigned);
            return;
        }
        uint256 agree = seat.agree;
        uint256 wrong = uint256(seat.disagree) + seat.abstain;
        int256 delta = int256(agree * _repGainVote) - int256(wrong * _repLossVote);
        uint256 reward = _grant(round, auditor, agree * _voteReward);
        if (delta != 0 || reward != 0) registry.settle(auditor, delta, reward, 0);
        emit AuditorSettled(round, auditor, seatIdx, true, agree, seat.disagree, seat.abstain);
    }
}
