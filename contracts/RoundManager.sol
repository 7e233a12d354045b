// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PeerRegistry} from "./PeerRegistry.sol";
import {Params, ParamsLib} from "./ProtocolParams.sol";
import {Sortition} from "./Sortition.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title Round protocol: submissions, auditor committee, commit-reveal votes, tally
/// @notice Each round runs Submit -> Commit -> Reveal -> Finalize.
///         Submit: every member posts the keccak256 of its model-update bytes once (a hash
///         already submitted in the round is refused), together with the beacon secret it
///         committed to with its previous submission and a commitment to its next one.
///         At Submit -> Commit a committee of up to K members is drawn from the round seed
///         (previous seed, XOR of the revealed beacon secrets, round: no block data and no
///         update bytes), weighted by stake capped at minStake among the members whose
///         reputation is at least the threshold and who were present at the round's first submission; update u is audited by m committee seats derived from the
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

    /// @notice Per-round state. Slot 0 (written by every submission) holds the phase
    ///         counters and the beacon, so a submission that opens its beacon writes no
    ///         second slot (issue 23: 5k gas per submission); slot 1 the finalize progress,
    ///         the draw pool and the minted amount; slot 2 the seed.
    struct RoundState {
        Phase phase;
        uint40 deadline; // end of the current phase (unix seconds); 0 in Finalize
        uint32 numSubmissions;
        uint8 committeeSize; // actual seats drawn (<= K)
        uint8 commits;
        uint8 reveals;
        uint32 beaconReveals; // members that revealed a beacon secret in this round
        bytes15 beacon; // XOR of the high 120 bits of the beacon secrets revealed in this round
        uint8 stage; // finalize stage: 0 updates, 1 committee, 2 members
        uint32 cursor; // finalize cursor within the stage
        uint32 approvedCount;
        uint32 pool; // members eligible for the draw: the member count at the first submission
        uint128 minted; // reward tokens minted in this round (<= mintBudgetPerRound)
        bytes32 seed;
    }

    /// @notice One submitted update as stored: one slot per (round mod ROUNDS_KEPT, index)
    ///         ({_recRing}: peer in bits 0..159, numSamples in 160..191, eligible in bit 192),
    ///         rewritten every ROUNDS_KEPT rounds like the hash ring (issue 23: no fresh slot
    ///         per submission; the duplicate-hash check is the open-addressed {_dupTable}).
    ///         Votes are in the auditors' own vote words ({_votes}), outcomes in the
    ///         registry's packed outcome words ({PeerRegistry-outcomeOf}).
    struct Submission {
        address peer;
        uint32 numSamples; // self-reported, capped at maxSamples
        bool eligible; // trainer reputation >= repThreshold at submission
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

    /// @notice A member's submission signed for relaying in {submitBatch}: the arguments of
    ///         {submitUpdate} and the member's EIP-2098 compact signature (`r`, `vs`) of
    ///         {submissionDigest}.
    struct SignedSubmission {
        bytes32 updateHash;
        uint32 numSamples;
        bytes32 beaconReveal;
        bytes32 beaconCommit;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice One committee seat of a round.
    struct Seat {
        bytes32 commitment;
        bool revealed;
        uint32 agree; // votes equal to the final majority
        uint32 disagree; // votes against the final majority
        uint32 abstain; // assigned updates left without a vote in the reveal
    }

    /// @dev Loop-invariant values of one reveal or finalize batch (kept in memory to stay
    ///      within the stack). `owners[s]` = 1 + the update index submitted in `round` by the
    ///      holder of seat s (0: none), loaded once from {_seatOwn}.
    struct VoteCtx {
        uint256 round;
        uint256 n;
        uint256 k;
        uint256 mm; // min(m, k): the audit window's width
        bytes32 seed;
        uint256 seat;
        uint256[] owners;
    }

    /// @dev One finalize batch's view of the seats, in memory (issue 23): which seats revealed
    ///      (bit s), read once per batch, and the agreement counts the batch adds per seat,
    ///      written once per batch ({_flushTally}) instead of a read and rewrite of the seat's
    ///      slot per vote; likewise the mint counters the trainers' grants move.
    struct Tally {
        uint256 revealed;
        uint256 minted; // the round's minted amount, and totalMinted, as the batch's grants leave them
        uint256 total;
        // per seat s, the counts the batch adds: agree in bits 0..63, disagree in 64..127,
        // abstain in 128..191 (one memory word per seat; each count <= MAX_FINALIZE_ITEMS)
        uint256[] counts;
        // per seat s: the vote word the batch last read ({_castVote}) and 1 + its word index
        // (0: none yet), so a batch reads each (seat, word) from storage once instead of
        // once per update (m mapping lookups and reads per update otherwise)
        uint256[] wordAt;
        uint256[] wordVal;
    }

    /// @dev Units of {Tally-counts}.
    uint256 internal constant COUNT_AGREE = 1;
    uint256 internal constant COUNT_DISAGREE = 1 << 64;
    uint256 internal constant COUNT_ABSTAIN = 1 << 128;
    uint256 internal constant COUNT_MASK = (1 << 64) - 1;

    /// @notice Most items one {finalize} call may process. The caller sizes batches by gas
    ///         (bdfl.chain.protocol.finalize_batch_size) so a batch stays under the
    ///         16,777,216 per-transaction gas cap (EIP-7825).
    uint256 public constant MAX_FINALIZE_ITEMS = 200;
    /// @notice Rounds whose per-index storage (update hashes, vote words) is kept: slots are
    ///         reused every ROUNDS_KEPT rounds (issue 23: a submission and a reveal rewrite
    ///         slots instead of creating them). Views of a round older than
    ///         `currentRound - ROUNDS_KEPT + 1` revert {RoundPruned}; its submissions are in
    ///         the UpdateSubmitted / UpdateFinalized events.
    uint256 public constant ROUNDS_KEPT = 4;
    /// @dev "No position / no seat".
    uint256 internal constant NONE = type(uint256).max;
    /// @dev Non-zero placeholders {warmMember} writes into never-written slots: none is ever
    ///      read as data (a ring or table slot is read only after this round wrote it, see
    ///      {_dupTable}, {_votes}). A vote-word placeholder of 2 (update 0 "voted" bit clear)
    ///      reads as no vote. A table placeholder carries round tag 0: free for every round.
    uint256 internal constant WARM_RING = 1 << 255;
    uint256 internal constant WARM_TABLE = 1 << 32;
    uint256 internal constant WARM_VOTES = 2;
    /// @dev Table slots warmed per submission index: the table of a round with M members has
    ///      2^_dupBits < 4 M slots (M >= 4; 16 below), so 4 per index cover it.
    uint256 internal constant WARM_TABLE_PER_INDEX = 4;
    /// @dev Most submission indices one {warmMember} call warms: 1 when the registry calls it
    ///      from its first join on (the member count grows by one per join); 2 lets the
    ///      high-water mark catch up when members joined before this contract held the role.
    uint256 internal constant WARM_PER_CALL = 2;
    /// @notice Most slots of {_dupTable} a submission probes before it falls back to a fresh
    ///         slot keyed by (round, hash) ({_dupOverflow}): caps what hashes ground to collide
    ///         in the table can make an honest submitter pay (8 cold reads, then the fresh slot
    ///         every submission paid before issue 23).
    uint256 public constant MAX_PROBES = 8;
    /// @notice Most signed submissions one {submitBatch} call may carry (≈ 45k gas each
    ///         once the rings are warm, plus the committee draw: well under 2^24).
    uint256 public constant MAX_SUBMIT_BATCH = 200;
    /// @dev Domain tag of {submissionDigest}.
    bytes32 internal constant SUBMIT_TAG = keccak256("BDFL.submitUpdate");

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
    /// @notice {submitSigned} is only callable by this contract itself (from {submitBatch}).
    error OnlyBatch();
    error BadMintBounds();
    /// @notice The per-index data of `round` has been reused; rounds from `oldestKept` on are readable.
    error RoundPruned(uint256 round, uint256 oldestKept);
    /// @notice Raised by PeerRegistry.onSubmit for a non-member; declared here so that it
    ///         decodes by name from this contract's ABI when it bubbles up.
    error NotActiveMember(address peer);
    /// @notice {warmMember} is only callable by the registry.
    error OnlyRegistry();

    // ------------------------------------------------------------------ events
    /// @notice Round `round` opened in the Submit phase.
    event RoundOpened(uint256 indexed round, uint256 submitDeadline);
    /// @notice Round `round` entered `phase`, ending at `deadline` (0 = no deadline).
    event PhaseAdvanced(uint256 indexed round, Phase phase, uint256 deadline);
    /// @notice `peer` committed to the update with hash `updateHash` as update `index` of `round`.
    event UpdateSubmitted(
        uint256 indexed round, address indexed peer, uint256 index, bytes32 updateHash, uint256 numSamples
    );
    /// @notice The committee of `round` was drawn from `seed` (its seats in order; the pool it was
    ///         drawn among is the members present at the round's first submission).
    event CommitteeDrawn(uint256 indexed round, bytes32 seed, address[] committee);
    /// @notice Beacon of `round`: `beacon` is the XOR of the `reveals` secrets revealed.
    event BeaconClosed(uint256 indexed round, bytes32 beacon, uint256 reveals, uint256 pool);
    /// @notice A reward of `wanted` tokens was cut to `granted` by the per-round budget or the cap.
    event RewardCapped(uint256 indexed round, address indexed peer, uint256 wanted, uint256 granted);
    /// @notice `auditor` committed to its votes of `round`.
    event VotesCommitted(uint256 indexed round, address indexed auditor, bytes32 commitment);
    /// @notice `auditor` revealed `votes` votes of `round`.
    event VotesRevealed(uint256 indexed round, address indexed auditor, uint256 votes);
    /// @notice Update `index` of `round` was decided; `approved` = aggregated by peers. Its
    ///         hash is in the UpdateSubmitted event of the same (round, index) (issue 23: not
    ///         repeated here, which saves a cold read of the hash ring per update).
    event UpdateFinalized(
        uint256 indexed round,
        address indexed peer,
        uint256 index,
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
    /// @notice Entry `position` of a {submitBatch} call was refused (`reason`: the revert data
    ///         {submitUpdate} would have raised for that member, e.g. DuplicateHash,
    ///         AlreadySubmitted, or ECDSA's error for a bad signature); the other entries stand.
    event SubmissionSkipped(uint256 indexed round, uint256 position, bytes reason);
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
    /// @dev log2 of {_dupTable}'s capacity for the current round: the smallest power of two
    ///      >= 2 x the members at the round's first submission (at least 16), so the table is
    ///      at most half full unless members join during the Submit phase (then the overflow
    ///      takes what the probes do not place). Packed with `currentRound`, which every
    ///      submission reads anyway.
    uint8 internal _dupBits;
    /// @notice Submission indices 0 .. warmedIndices - 1 have every per-index slot that a round
    ///         rewrites already non-zero (issue 23: {warmMember}, paid by the joiner), so no
    ///         round writes a storage slot for the first time (20k gas) for them. Packed with
    ///         `currentRound`.
    uint32 public warmedIndices;
    /// @notice Seed of the latest round whose committee has been drawn.
    bytes32 public lastSeed;

    mapping(uint256 => RoundState) internal _rounds;
    /// @dev Update hash by (round mod ROUNDS_KEPT, index): a ring, so a submission rewrites the
    ///      slot of round - ROUNDS_KEPT instead of creating one (a mapping, not an array:
    ///      `numSubmissions` is the count).
    mapping(uint256 => mapping(uint256 => bytes32)) internal _hashRing;
    /// @dev Update record by (round mod ROUNDS_KEPT, index), see {Submission}.
    mapping(uint256 => mapping(uint256 => uint256)) internal _recRing;
    /// @dev The duplicate-hash check (issue 23): an open-addressed table over slots reused
    ///      every round. Entry: bits 0..31 `round + 1` (an entry of another round is free),
    ///      bits 32..63 the update's index, bits 64..255 the high 192 bits of its hash. Update
    ///      hash h starts at slot `h mod 2^_dupBits` and probes linearly (at most MAX_PROBES);
    ///      an entry whose 192 bits match is compared with the full hash in {_hashRing}, so
    ///      the check is exact. Within a round entries are only added, so a lookup that meets
    ///      a free slot has seen every entry of h's probe sequence.
    mapping(uint256 => uint256) internal _dupTable;
    /// @dev Per round: hashes placed after MAX_PROBES occupied table slots (one fresh slot each).
    mapping(uint256 => mapping(bytes32 => bool)) internal _dupOverflow;
    mapping(uint256 => address[]) internal _committees;
    mapping(uint256 => mapping(address => uint256)) internal _seatPlusOne;
    mapping(uint256 => mapping(uint256 => Seat)) internal _seats;
    /// @dev Votes revealed by seat s of a round, keyed (round mod ROUNDS_KEPT, seat, word): 2
    ///      bits per update index u at word u >> 7, bits 2 * (u & 127): bit 0 = voted, bit 1 =
    ///      accepted (issue 23: a reveal rewrites the ceil(n / 128) words of its seat instead
    ///      of writing one slot per vote). A reveal writes every word below ceil(n / 128),
    ///      zeros included, and a word is read only for a seat that revealed in the round, so
    ///      a stale word of an older round is never read.
    mapping(uint256 => mapping(uint256 => mapping(uint256 => uint256))) internal _votes;
    /// @dev Per round, 8 seats per word: bits 32 * (s & 7) of word s >> 3 hold 1 + the index
    ///      of the update submitted by the holder of seat s (0: it submitted none); written at
    ///      the draw, when the round's submissions are final. Reveals and finalize read it to
    ///      tell a submitter's own seat without reading the update's record.
    mapping(uint256 => mapping(uint256 => uint256)) internal _seatOwn;
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
        _submit(msg.sender, round, updateHash, numSamples, beaconReveal, beaconCommit);
    }

    /// @notice Relay many members' signed submissions of `round` in one transaction (issue 23:
    ///         the 21k transaction base and the round's, the table's and the registry's cold
    ///         accesses are paid once per batch instead of once per member). Anyone may relay;
    ///         each entry is exactly {submitUpdate} called by the member that signed it
    ///         ({submissionDigest}: chain id, this contract, round and every argument are
    ///         signed), with every check of {submitUpdate}. An entry that fails (bad signature,
    ///         non-member, AlreadySubmitted, DuplicateHash, BeaconMismatch, phase over) is
    ///         skipped with {SubmissionSkipped} and the rest stand, so one bad or front-run
    ///         entry cannot sink the others. A relayer can only leave entries out: a member
    ///         can always submit directly before the deadline.
    /// @dev Loop bound: `subs.length` <= MAX_SUBMIT_BATCH; each entry is one self-call.
    /// @return accepted Entries recorded.
    function submitBatch(uint256 round, SignedSubmission[] calldata subs) external returns (uint256 accepted) {
        if (subs.length == 0 || subs.length > MAX_SUBMIT_BATCH) revert BadBatchSize(MAX_SUBMIT_BATCH);
        for (uint256 i = 0; i < subs.length; ++i) {
            try this.submitSigned(round, subs[i]) {
                ++accepted;
            } catch (bytes memory reason) {
                emit SubmissionSkipped(round, i, reason);
            }
        }
    }

    /// @notice One entry of {submitBatch}; callable only by this contract (the self-call lets a
    ///         failing entry revert alone).
    function submitSigned(uint256 round, SignedSubmission calldata e) external {
        if (msg.sender != address(this)) revert OnlyBatch();
        bytes32 digest = submissionDigest(round, e.updateHash, e.numSamples, e.beaconReveal, e.beaconCommit);
        address peer = ECDSA.recover(MessageHashUtils.toEthSignedMessageHash(digest), e.r, e.vs);
        _submit(peer, round, e.updateHash, e.numSamples, e.beaconReveal, e.beaconCommit);
    }

    /// @notice Called by the registry when a member joins or is reactivated (issue 23, paid by
    ///         that member as part of its `join`): makes non-zero every slot that a round
    ///         writes for the member or for a new submission index, so that every round,
    ///         from round 0 on, rewrites slots (≈ 5k gas each) instead of creating them
    ///         (22.1k). For `peer`: its member slot ({_member}). For each new index i below
    ///         `members` (at most WARM_PER_CALL per call, above {warmedIndices}): the hash and
    ///         record ring slots of index i in all ROUNDS_KEPT rings, WARM_TABLE_PER_INDEX
    ///         duplicate-table slots, and ceil(4 K / 128) vote words (the next 128-index column
    ///         of every (ring, seat) pair, spread over the 128 indices before it; index i < K
    ///         also seat i's first word in every ring). A slot that is already non-zero is left as it is,
    ///         so live data is never touched. Gas: ≈ 22.1k per slot warmed (docs/results/gas.md).
    /// @dev Loop bound: WARM_PER_CALL indices, each at most 3 * ROUNDS_KEPT + 4 + ceil(4K / 128) slots.
    function warmMember(address peer, uint256 members) external {
        if (msg.sender != address(registry)) revert OnlyRegistry();
        if (_member[peer] == 0) _member[peer] = 1; // no submission, no pending beacon: reads as empty
        uint256 i = warmedIndices;
        uint256 end = members < i + WARM_PER_CALL ? members : i + WARM_PER_CALL;
        if (end <= i) return;
        uint256 pairs = ROUNDS_KEPT * uint256(_committeeSize);
        uint256 per = (pairs + 127) >> 7; // vote words per index
        for (; i < end; ++i) {
            for (uint256 r = 0; r < ROUNDS_KEPT; ++r) {
                mapping(uint256 => bytes32) storage hashes = _hashRing[r];
                if (hashes[i] == bytes32(0)) hashes[i] = bytes32(WARM_RING);
                mapping(uint256 => uint256) storage recs = _recRing[r];
                if (recs[i] == 0) recs[i] = WARM_RING;
            }
            for (uint256 t = i * WARM_TABLE_PER_INDEX; t < (i + 1) * WARM_TABLE_PER_INDEX; ++t) {
                if (_dupTable[t] == 0) _dupTable[t] = WARM_TABLE;
            }
            // column 0 (updates 0..127): seat i's word in every ring, before any committee
            // of more than i seats can be drawn (a committee has at most `members` seats)
            if (i < _committeeSize) {
                for (uint256 r = 0; r < ROUNDS_KEPT; ++r) _warmVoteWord(r, i, 0);
            }
            // column c + 1 (c = i >> 7): the 128 indices of column c warm its pairs
            // (seat-major), done before index 128 (c + 1) exists
            uint256 first = (i & 127) * per;
            uint256 last = first + per < pairs ? first + per : pairs;
            for (uint256 p = first; p < last; ++p) {
                _warmVoteWord(p % ROUNDS_KEPT, p / ROUNDS_KEPT, (i >> 7) + 1);
            }
        }
        warmedIndices = uint32(end);
    }

    function _warmVoteWord(uint256 ring, uint256 seat, uint256 word) internal {
        mapping(uint256 => uint256) storage w = _votes[ring][seat];
        if (w[word] == 0) w[word] = WARM_VOTES;
    }

    /// @notice What a member signs (EIP-191 personal message over these 32 bytes) to have a
    ///         relayer submit for it: `keccak256(abi.encode(keccak256("BDFL.submitUpdate"),
    ///         chainid, this, round, updateHash, numSamples, beaconReveal, beaconCommit))`.
    ///         Chain, contract and round are inside, so a signature opens nowhere else; within
    ///         the round a replay is AlreadySubmitted.
    function submissionDigest(
        uint256 round,
        bytes32 updateHash,
        uint32 numSamples,
        bytes32 beaconReveal,
        bytes32 beaconCommit
    ) public view returns (bytes32) {
        return keccak256(
            abi.encode(SUBMIT_TAG, block.chainid, address(this), round, updateHash, numSamples, beaconReveal, beaconCommit)
        );
    }

    /// @dev {submitUpdate} by `peer` (the caller, or the signer of a relayed entry).
    function _submit(
        address peer,
        uint256 round,
        bytes32 updateHash,
        uint32 numSamples,
        bytes32 beaconReveal,
        bytes32 beaconCommit
    ) internal {
        RoundState storage rs = _requireOpen(round, Phase.Submit);
        if (updateHash == bytes32(0) || beaconCommit == bytes32(0)) revert EmptyHash();
        uint256 slot = _member[peer];
        if (uint32(slot >> 32) == round + 1) revert AlreadySubmitted(round, peer);
        uint256 index = rs.numSubmissions;
        // the draw pool is frozen before any secret of this round is public
        (bool eligible, uint256 members) = registry.onSubmit(peer, uint64(round), index); // reverts for non-members
        if (index == 0) {
            rs.pool = uint32(members);
            _dupBits = uint8(_tableBits(members));
        }
        _claimHash(round, updateHash, index); // reverts DuplicateHash
        _beaconStep(peer, round, rs, slot, beaconReveal, beaconCommit, index);
        uint32 capped = numSamples < _maxSamples ? numSamples : _maxSamples;
        _recRing[round % ROUNDS_KEPT][index] =
            uint256(uint160(peer)) | (uint256(capped) << 160) | (eligible ? uint256(1) << 192 : 0);
        _hashRing[round % ROUNDS_KEPT][index] = updateHash;
        rs.numSubmissions = uint32(index + 1);
        emit UpdateSubmitted(round, peer, index, updateHash, capped);
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
    ///         (outcome, the trainer's reward granted, per-seat agreement counts), then every
    ///         committee seat (auditor reputation and reward; penalty if it did not reveal),
    ///         then every member (the registry's sweep: the member's update of this round
    ///         booked — reputation, streak, reward or slash — then absence, inactivity,
    ///         exits). When all are done the round is Closed and the next round opens.
    ///         Anyone may call it, repeatedly.
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
            (items, cursor) = _updateStage(round, rs, maxItems, cursor);
            if (cursor == rs.numSubmissions) {
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
        _requireKept(round);
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
        _requireKept(round);
        uint256 n = _rounds[round].numSubmissions;
        uint256 end = start >= n ? start : (count > n - start ? n : start + count);
        out = new SubmissionView[](end - start);
        for (uint256 i = start; i < end; ++i) out[i - start] = _view(round, i);
    }

    /// @notice Index of `peer`'s update in `round` (reverts if it submitted none). O(1) for
    ///         the peer's latest submission, an O(N) scan for older rounds.
    function submissionIndexOf(uint256 round, address peer) public view returns (uint256) {
        _requireKept(round);
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
        VoteCtx memory ctx = _ctx(round, _rounds[round], seatPlusOne - 1);
        out = new uint256[](ctx.n);
        uint256 count;
        uint256 mine = ctx.owners[ctx.seat]; // its own update is never assigned to it
        for (uint256 u = 0; u < ctx.n; ++u) {
            if (u + 1 != mine && _audits(ctx, u, ctx.seat)) {
                out[count++] = u;
            }
        }
        assembly ("memory-safe") {
            mstore(out, count)
        }
    }

    /// @notice Approved (aggregatable) updates of a finalized `round`: the trainers and
    ///         their update hashes, in submission order. O(N) view.
    function approvedUpdates(uint256 round) external view returns (address[] memory peers, bytes32[] memory hashes) {
        _requireKept(round);
        uint256 n = _rounds[round].numSubmissions;
        uint256 count = _rounds[round].approvedCount;
        peers = new address[](count);
        hashes = new bytes32[](count);
        uint256 w;
        uint256 word;
        for (uint256 u = 0; u < n && w < count; ++u) {
            if (u & 63 == 0) word = registry.outcomeWord(round, u >> 6);
            if ((word >> ((u & 63) << 2)) & 7 == uint256(Outcome.Approved)) {
                peers[w] = _sub(round, u).peer;
                hashes[w] = _hash(round, u);
                ++w;
            }
        }
    }

    /// @notice Whether `peer`'s update of `round` was approved for aggregation.
    function isApproved(uint256 round, address peer) external view returns (bool) {
        _requireKept(round);
        uint256 u = _ownIndex(round, peer, _rounds[round].numSubmissions);
        return u != NONE && _outcome(round, u) == Outcome.Approved;
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
            bytes32 beacon = bytes32(rs.beacon); // the 120 bits, zero-padded on the right
            bytes32 seed = Sortition.roundSeed(lastSeed, beacon, round);
            lastSeed = seed;
            rs.seed = seed;
            emit BeaconClosed(round, beacon, rs.beaconReveals, rs.pool);
            address[] memory committee = registry.drawCommitteeAmong(seed, _committeeSize, rs.pool);
            address[] storage stored = _committees[round];
            mapping(address => uint256) storage seatOf_ = _seatPlusOne[round];
            mapping(uint256 => uint256) storage owners = _seatOwn[round];
            uint256 word;
            for (uint256 i = 0; i < committee.length; ++i) {
                address c = committee[i];
                stored.push(c);
                seatOf_[c] = i + 1;
                uint256 slot = _member[c];
                if (uint32(slot >> 32) == round + 1) word |= (uint256(uint32(slot)) + 1) << ((i & 7) << 5);
                if (i & 7 == 7 || i + 1 == committee.length) {
                    if (word != 0) owners[i >> 3] = word;
                    word = 0;
                }
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
        address peer,
        uint256 round,
        RoundState storage rs,
        uint256 slot,
        bytes32 reveal,
        bytes32 commit,
        uint256 index
    ) internal {
        if (uint32(slot >> 64) == round + 1) {
            if (uint256(Sortition.beaconCommitment(reveal, peer)) >> 96 != slot >> 96) {
                revert BeaconMismatch(round, peer);
            }
            rs.beacon ^= bytes15(reveal); // the secret's high 120 bits (>= 112 bits of XOR)
            rs.beaconReveals += 1;
        }
        _member[peer] = ((uint256(commit) >> 96) << 96) | ((round + 2) << 64) | ((round + 1) << 32) | index;
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

    /// @dev {_grant} on the batch's mint counters in `t` (written back by {_flushTally}).
    function _grantIn(Tally memory t, uint256 round, address peer, uint256 wanted) internal returns (uint256 granted) {
        if (wanted == 0) return 0;
        uint256 leftRound = mintBudgetPerRound - t.minted;
        uint256 leftTotal = mintCap - t.total;
        granted = wanted;
        if (granted > leftRound) granted = leftRound;
        if (granted > leftTotal) granted = leftTotal;
        if (granted != wanted) emit RewardCapped(round, peer, wanted, granted);
        t.minted += granted;
        t.total += granted;
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

    /// @dev The seat-owner table of `round` (see {VoteCtx}). Loop bound: k (<= 64), k / 8 reads.
    function _loadOwners(uint256 round, uint256 k) internal view returns (uint256[] memory owners) {
        owners = new uint256[](k);
        mapping(uint256 => uint256) storage words = _seatOwn[round];
        uint256 word;
        for (uint256 s = 0; s < k; ++s) {
            if (s & 7 == 0) word = words[s >> 3];
            owners[s] = uint32(word >> ((s & 7) << 5));
        }
    }

    function _ctx(uint256 round, RoundState storage rs, uint256 seat) internal view returns (VoteCtx memory ctx) {
        uint256 k = rs.committeeSize;
        ctx.round = round;
        ctx.n = rs.numSubmissions;
        ctx.k = k;
        ctx.mm = _auditorsPerUpdate < k ? _auditorsPerUpdate : k;
        ctx.seed = rs.seed;
        ctx.seat = seat;
        ctx.owners = _loadOwners(round, k);
    }

    /// @dev The seat of update `u`'s submitter if it lies in u's audit window (starting at
    ///      `h`), else NONE: a submitter's seat outside the window changes nothing.
    ///      Loop bound: mm.
    function _ownInWindow(VoteCtx memory ctx, uint256 u, uint256 h) internal pure returns (uint256) {
        for (uint256 p = 0; p < ctx.mm; ++p) {
            uint256 s = (h + p) % ctx.k;
            if (ctx.owners[s] == u + 1) return s;
        }
        return NONE;
    }

    /// @dev Whether `seat`, which is not the seat of u's submitter (its callers refuse or
    ///      skip the seat's own update first), audits update `u` ({Sortition-auditSeats}):
    ///      a seat of u's window, or the replacement seat (h + mm) mod k when the submitter's
    ///      own seat is in the window (h = u's window start). No storage read. Its TWIN is
    ///      inlined in {_recordVotes} (the reveal; gas), checked by tests/forge/Twins.t.sol.
    function _audits(VoteCtx memory ctx, uint256 u, uint256 seat) internal pure returns (bool) {
        uint256 k = ctx.k;
        uint256 mm = ctx.mm;
        uint256 h = Sortition.windowStart(ctx.seed, u, k);
        uint256 d;
        unchecked {
            d = (seat + k - h) % k; // seat, h < k <= 64
        }
        return d < mm || (d == mm && _ownInWindow(ctx, u, h) != NONE);
    }

    /// @dev Vote of seat `seat` on update `u`: 0 none, 1 reject, 3 accept.
    function _vote(uint256 round, uint256 seat, uint256 u) internal view returns (uint256) {
        if (!_seats[round][seat].revealed) return 0;
        return _voteBits(_votes[round % ROUNDS_KEPT][seat][u >> 7], u);
    }

    /// @dev Outcome of update `u` of `round` (Pending before its finalize).
    function _outcome(uint256 round, uint256 u) internal view returns (Outcome) {
        return Outcome(registry.outcomeOf(round, u));
    }

    /// @dev Hash of update `u` of `round` (a kept round: see {ROUNDS_KEPT}).
    function _hash(uint256 round, uint256 u) internal view returns (bytes32) {
        return _hashRing[round % ROUNDS_KEPT][u];
    }

    /// @dev Reverts {RoundPruned} unless `round`'s per-index data is still kept.
    function _requireKept(uint256 round) internal view {
        uint256 cur = currentRound;
        if (round + ROUNDS_KEPT <= cur) revert RoundPruned(round, cur + 1 - ROUNDS_KEPT);
    }

    /// @dev The stored record of update `u` of `round` (a kept round, u < its count).
    function _sub(uint256 round, uint256 u) internal view returns (Submission memory s) {
        uint256 w = _record(round, u);
        s.peer = _recordPeer(w);
        s.numSamples = uint32(w >> 160);
        s.eligible = _recordEligible(w);
    }

    /// @dev The record word of update `u` of `round` ({Submission} layout), read by {_sub}
    ///      and, without a memory struct, by {_decide}.
    function _record(uint256 round, uint256 u) internal view returns (uint256) {
        return _recRing[round % ROUNDS_KEPT][u];
    }

    /// @dev The trainer of a record word ({Submission}: bits 0..159).
    function _recordPeer(uint256 w) internal pure returns (address) {
        return address(uint160(w));
    }

    /// @dev The eligible flag of a record word ({Submission}: bit 192).
    function _recordEligible(uint256 w) internal pure returns (bool) {
        return (w >> 192) & 1 != 0;
    }

    /// @dev log2 of the duplicate table's capacity for `members` members (see {_dupBits}).
    function _tableBits(uint256 members) internal pure returns (uint256 bits) {
        bits = 4;
        while ((uint256(1) << bits) < 2 * members && bits < 32) ++bits;
    }

    /// @dev The exact duplicate-hash check and its record (see {_dupTable}): reverts
    ///      {DuplicateHash} if `h` was submitted in `round`, else enters it as update `index`.
    ///      Gas: one rewritten table slot for a hash whose first free slot is within
    ///      MAX_PROBES; otherwise MAX_PROBES cold reads plus one fresh {_dupOverflow} slot.
    ///      Loop bound: MAX_PROBES.
    function _claimHash(uint256 round, bytes32 h, uint256 index) internal {
        uint256 mask = (uint256(1) << _dupBits) - 1;
        uint256 tag = uint32(round + 1);
        uint256 high = uint256(h) >> 64;
        uint256 pos = uint256(h) & mask;
        for (uint256 i = 0; i < MAX_PROBES; ++i) {
            uint256 e = _dupTable[pos];
            if (uint32(e) != tag) {
                // free (empty or of another round): h is not in this round's table; and not in
                // the overflow either, which holds only hashes whose MAX_PROBES slots were all
                // taken, as they still are
                _dupTable[pos] = (high << 64) | (index << 32) | tag;
                return;
            }
            if (e >> 64 == high && _hashRing[round % ROUNDS_KEPT][uint32(e >> 32)] == h) {
                revert DuplicateHash(round, h);
            }
            pos = (pos + 1) & mask;
        }
        mapping(bytes32 => bool) storage overflow = _dupOverflow[round];
        if (overflow[h]) revert DuplicateHash(round, h);
        overflow[h] = true;
    }

    /// @dev The stored update `u` of `round` in the view layout (seat masks and counts).
    function _view(uint256 round, uint256 u) internal view returns (SubmissionView memory v) {
        Submission memory s = _sub(round, u);
        v.peer = s.peer;
        v.numSamples = s.numSamples;
        v.eligible = s.eligible;
        v.outcome = _outcome(round, u);
        v.updateHash = _hash(round, u);
        RoundState storage rs = _rounds[round];
        uint256 k = rs.committeeSize;
        if (k == 0) return v;
        uint256[] memory seats = Sortition.auditSeats(rs.seed, u, k, _auditorsPerUpdate, _ownSeat(round, s.peer));
        for (uint256 j = 0; j < seats.length; ++j) {
            uint256 vote = _vote(round, seats[j], u);
            if (vote == 0) continue;
            v.votedMask |= uint64(1 << seats[j]);
            if (vote == 3) {
                v.acceptMask |= uint64(1 << seats[j]);
                v.accepts += 1;
            } else {
                v.rejects += 1;
            }
        }
    }

    function _auditSeats(uint256 round, uint256 u) internal view returns (uint256[] memory) {
        _requireKept(round);
        RoundState storage rs = _rounds[round];
        if (u >= rs.numSubmissions) revert IndexOutOfRange(u, rs.numSubmissions);
        uint256 own = _ownSeat(round, _sub(round, u).peer);
        return Sortition.auditSeats(rs.seed, u, rs.committeeSize, _auditorsPerUpdate, own);
    }

    /// @dev Record the revealed votes of seat `seatIdx` in its own vote words; reverts on an
    ///      index out of range, the caller's own update, an unassigned update or a repeated
    ///      index. Loop bound: `updateIdx.length` (O(1) work per vote, O(m) for the ~1/k of
    ///      them where the seat could be a replacement), then ceil(n / 128) word writes.
    function _recordVotes(
        uint256 round,
        RoundState storage rs,
        uint256 seatIdx,
        uint256[] calldata updateIdx,
        bool[] calldata accept
    ) internal {
        VoteCtx memory ctx = _ctx(round, rs, seatIdx);
        uint256 mine = ctx.owners[seatIdx]; // 1 + the caller's own update index (0: none)
        uint256 n = ctx.n;
        uint256 k = ctx.k; // >= 1: the caller holds a seat
        uint256 mm = ctx.mm;
        bytes32 seed = ctx.seed;
        uint256[] memory words = new uint256[]((n + 127) >> 7);
        unchecked {
            // u < n < 2^32, seatIdx < k <= 64: no expression below overflows
            for (uint256 i = 0; i < updateIdx.length; ++i) {
                uint256 u = updateIdx[i];
                if (u >= n) revert IndexOutOfRange(u, n);
                if (u + 1 == mine) revert OwnUpdate(round, u);
                // TWIN of {_audits} (the caller's own update already refused above), kept
                // inline: calling it costs ~50 gas a vote (viaIR does not inline it into this
                // loop; +0.4 % gas per peer at N = 1000 under the default policy, docs/results/
                // gas.md). tests/forge/Twins.t.sol checks that this check, {_audits}
                // (assignmentsOf) and {Sortition-auditSeats} (auditorsOf) agree.
                uint256 h = Sortition.windowStart(seed, u, k);
                uint256 d = (seatIdx + k - h) % k;
                if (d >= mm && (d != mm || _ownInWindow(ctx, u, h) == NONE)) {
                    revert NotAssigned(round, u, msg.sender);
                }
                uint256 w = u >> 7;
                uint256 b = (u & 127) << 1;
                uint256 word = words[w];
                if ((word >> b) & 1 != 0) revert DuplicateVote(round, u);
                words[w] = word | ((accept[i] ? uint256(3) : uint256(1)) << b);
            }
        }
        mapping(uint256 => uint256) storage stored = _votes[round % ROUNDS_KEPT][seatIdx];
        for (uint256 w = 0; w < words.length; ++w) {
            // every word, as it may hold a word of round - ROUNDS_KEPT; an empty one as
            // WARM_VOTES (reads as no vote), so the slot stays non-zero for the next writer
            uint256 word = words[w];
            stored[w] = word == 0 ? WARM_VOTES : word;
        }
    }

    /// @dev Finalize stage 0 from `cursor`: up to `maxItems` updates decided ({_finalizeUpdate}),
    ///      their outcome nibbles handed to the registry per 64, the batch's agreement counts
    ///      written to the seats once ({Tally}). Returns the items done and the new cursor.
    function _updateStage(uint256 round, RoundState storage rs, uint256 maxItems, uint256 cursor)
        internal
        returns (uint256 items, uint256)
    {
        VoteCtx memory ctx = _ctx(round, rs, 0);
        uint256 n = ctx.n;
        uint256 approved = rs.approvedCount;
        uint256 word; // outcome nibbles of updates 64 * (cursor >> 6) .. , handed to the registry
        Tally memory tally = _loadTally(round, ctx.k);
        uint256 first = cursor;
        uint256[] memory ownSeat = _ownSeatsOf(ctx, first, n - first < maxItems ? n - first : maxItems);
        while (items < maxItems && cursor < n) {
            uint256 nibble;
            unchecked {
                // entry 0 (no seat) - 1 wraps to NO_SEAT, which no window seat equals
                nibble = _finalizeUpdate(ctx, tally, cursor, ownSeat[cursor - first] - 1);
            }
            if (nibble & 7 == uint256(Outcome.Approved)) ++approved;
            word |= nibble << ((cursor & 63) << 2);
            ++cursor;
            ++items;
            if (cursor & 63 == 0) {
                registry.recordOutcomes(uint64(round), (cursor >> 6) - 1, word);
                word = 0;
            }
        }
        if (word != 0) registry.recordOutcomes(uint64(round), (cursor - 1) >> 6, word);
        _flushTally(round, tally, ctx.k);
        rs.approvedCount = uint32(approved);
        return (items, cursor);
    }

    /// @dev Decide update `u`: outcome from its auditors' vote words, the trainer's reward
    ///      granted (booked with its reputation in the registry's member sweep), agreement
    ///      counted per auditor seat. Returns the outcome nibble: the Outcome in bits 0..2,
    ///      bit 3 set when the reward was cut by the budget or the cap. O(m).
    function _finalizeUpdate(VoteCtx memory ctx, Tally memory tally, uint256 u, uint256 own)
        internal
        returns (uint256 nibble)
    {
        // u's auditors as {Sortition-auditSeats} gives them ({Sortition-auditSeatAt}, `own` =
        // the submitter's seat from the owner table), with their votes: entry j in bits
        // 8j .. 8j + 7 (seat in the low 6 bits, k <= 64; vote in the high 2), m <= 16 entries
        uint256 cast;
        uint256 count;
        uint256 votes;
        uint256 accepts;
        uint256 k = ctx.k;
        if (k != 0) {
            uint256 mm = ctx.mm;
            uint256 h = Sortition.windowStart(ctx.seed, u, k);
            unchecked {
                for (uint256 j = 0; j < mm; ++j) {
                    uint256 s = Sortition.auditSeatAt(h, j, k, mm, own);
                    if (s == Sortition.NO_SEAT) continue;
                    uint256 vote = _castVote(ctx.round, tally, s, u);
                    if (vote != 0) ++votes;
                    if (vote == 3) ++accepts;
                    cast |= (s | (vote << 6)) << (count << 3);
                    ++count;
                }
            }
        }
        Outcome outcome;
        (outcome, nibble) = _decide(ctx.round, tally, u, votes, accepts);
        _countAgreement(tally, cast, count, outcome);
    }

    /// @dev Per update `first + i` (i < `count`): 1 + the seat of its submitter (0: the
    ///      submitter holds none), from the owner table (the inverse of `ctx.owners`), so the
    ///      finalize loop passes {Sortition-auditSeatAt} the submitter's seat as the views do
    ///      ({_ownSeat}) without a storage read. Loop bound: k (<= 64).
    function _ownSeatsOf(VoteCtx memory ctx, uint256 first, uint256 count)
        internal
        pure
        returns (uint256[] memory ownPlusOne)
    {
        ownPlusOne = new uint256[](count);
        uint256[] memory owners = ctx.owners;
        for (uint256 s = 0; s < owners.length; ++s) {
            uint256 v = owners[s]; // 1 + its holder's update index (0: none)
            if (v > first && v - first <= count) ownPlusOne[v - 1 - first] = s + 1;
        }
    }

    /// @dev Vote of seat `s` on update `u` given the batch's revealed bits: 0 none (also for a
    ///      seat that never revealed: its words may hold an older round's votes), 1 reject,
    ///      3 accept. The seat's word is read from storage only when the batch has not read
    ///      it yet (`t.wordAt`, `t.wordVal`): within a finalize transaction no vote word
    ///      changes, so the cached word is the stored one.
    function _castVote(uint256 round, Tally memory t, uint256 s, uint256 u) internal view returns (uint256) {
        if ((t.revealed >> s) & 1 == 0) return 0;
        uint256 at = (u >> 7) + 1;
        uint256 word;
        if (t.wordAt[s] == at) {
            word = t.wordVal[s];
        } else {
            word = _votes[round % ROUNDS_KEPT][s][at - 1];
            t.wordAt[s] = at;
            t.wordVal[s] = word;
        }
        return _voteBits(word, u);
    }

    /// @dev Update `u`'s 2 bits in its vote word: 0 none, 1 reject, 3 accept (2, the
    ///      WARM_VOTES placeholder's bits, reads as none).
    function _voteBits(uint256 word, uint256 u) internal pure returns (uint256 v) {
        v = (word >> ((u & 127) << 1)) & 3;
        if (v == 2) v = 0;
    }

    /// @dev The batch's {Tally}: the revealed bit of each of the k seats (k reads), zero counts.
    function _loadTally(uint256 round, uint256 k) internal view returns (Tally memory t) {
        mapping(uint256 => Seat) storage seatsOfRound = _seats[round];
        for (uint256 s = 0; s < k; ++s) {
            if (seatsOfRound[s].revealed) t.revealed |= uint256(1) << s;
        }
        t.minted = _rounds[round].minted;
        t.total = totalMinted;
        t.counts = new uint256[](k);
        t.wordAt = new uint256[](k);
        t.wordVal = new uint256[](k);
    }

    /// @dev Add the batch's agreement counts to the seats' slots (one rewrite per seat that
    ///      audited an update of the batch). Loop bound: k.
    function _flushTally(uint256 round, Tally memory t, uint256 k) internal {
        RoundState storage rs = _rounds[round];
        if (t.minted != rs.minted) {
            rs.minted = uint128(t.minted); // <= mintBudgetPerRound <= type(uint128).max
            totalMinted = t.total;
        }
        mapping(uint256 => Seat) storage seatsOfRound = _seats[round];
        for (uint256 s = 0; s < k; ++s) {
            uint256 c = t.counts[s];
            if (c == 0) continue;
            uint256 a = c & COUNT_MASK;
            uint256 d = (c >> 64) & COUNT_MASK;
            uint256 x = c >> 128;
            Seat storage seat = seatsOfRound[s];
            seat.agree = uint32(seat.agree + a);
            seat.disagree = uint32(seat.disagree + d);
            seat.abstain = uint32(seat.abstain + x);
        }
    }

    /// @dev Outcome of update `u` from its vote counts, the trainer's reward granted, the
    ///      UpdateFinalized event; returns the outcome and its nibble.
    function _decide(uint256 round, Tally memory tally, uint256 u, uint256 votes, uint256 accepts)
        internal
        returns (Outcome outcome, uint256 nibble)
    {
        uint256 rec = _record(round, u);
        address peer = _recordPeer(rec);
        uint256 rejects = votes - accepts;
        outcome = Outcome.Undecided;
        if (votes >= _quorum) {
            if (100 * accepts > votes * _approvePercent) {
                outcome = _recordEligible(rec) ? Outcome.Approved : Outcome.Probation;
            } else if (100 * rejects > votes * _rejectPercent) outcome = Outcome.Rejected;
        }
        nibble = uint256(outcome);
        bool approved = outcome == Outcome.Approved;
        if (approved) {
            uint256 granted = _grantIn(tally, round, peer, _updateReward);
            if (granted != _updateReward) {
                nibble |= 8;
                if (granted != 0) registry.recordRewardCut(uint64(round), u, granted);
            }
        }
        emit UpdateFinalized(round, peer, u, approved, outcome, accepts, rejects);
    }

    /// @dev For each seat auditing an update (entry j of `cast`, see {_finalizeUpdate}): agree /
    ///      disagree with the outcome, or abstain if it left the update out or never revealed.
    ///      Votes on Undecided updates are neutral. Loop bound: m.
    function _countAgreement(Tally memory tally, uint256 cast, uint256 count, Outcome outcome) internal pure {
        bool decided = outcome != Outcome.Undecided;
        bool majorityAccepts = outcome == Outcome.Approved || outcome == Outcome.Probation;
        uint256[] memory counts = tally.counts;
        unchecked {
            // each count of a batch is at most its MAX_FINALIZE_ITEMS updates: no field overflows
            for (uint256 j = 0; j < count; ++j) {
                uint256 e = cast >> (j << 3);
                uint256 s = e & 63;
                uint256 vote = (e >> 6) & 3;
                if (vote == 0) {
                    counts[s] += COUNT_ABSTAIN; // a missing reveal's assignments count here too (its penalty)
                } else if (decided) {
                    counts[s] += (vote == 3) == majorityAccepts ? COUNT_AGREE : COUNT_DISAGREE;
                }
            }
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
