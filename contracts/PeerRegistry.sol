// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {BDFLToken} from "./BDFLToken.sol";
import {Params, ParamsLib} from "./ProtocolParams.sol";
import {Sortition} from "./Sortition.sol";

/// @notice What the registry calls on its protocol contract when a member is added (the
///         RoundManager: it warms the storage slots a round writes for a new member).
interface IMemberSlots {
    function warmMember(address peer, uint256 members) external;
}

/// @title Peer ledger: membership, stake, reputation and pull payments
/// @notice One account per peer. A peer joins by staking at least `minStake` tokens (after an
///         ERC-20 `approve`) and publishing its endpoint; it leaves in two steps (`leave`, then
///         `withdraw` once its stake has been bonded for `unbondingRounds` more rounds after
///         the round it was last a member in). Reputation is kept per address forever, so
///         leaving and re-joining never resets it; a fresh address starts at `repInitial`,
///         pays the non-refundable `entryFee` out of its joining amount and spends
///         `probationRounds` rounds on probation (no committee seat, updates not aggregated),
///         so that whitewashing a bad reputation through a new address costs tokens and
///         rounds (docs/protocol.md, "Identity costs"). Members that join in round 0 (the
///         genesis set) are not on probation.
///
///         Endpoints are validated here: `http://` or `https://`, a host and a port, an
///         optional path, no userinfo, query or fragment, at most MAX_ENDPOINT_BYTES bytes.
///
///         `policyHash` is fixed at deployment: the hash of the off-chain policy the
///         federation runs under (issue 18), readable by anyone.
///
///         Money: stakes and credited rewards are held by this contract. Rewards are minted
///         into this contract at the moment they are credited, and slashed stake is burned,
///         so `token.balanceOf(this) >= totalStaked + totalClaimable` holds after every
///         transaction (see {solvencyMargin}).
///
///         State changes coming from the round protocol (`onSubmit`, `settle`, `sweep`,
///         `openRound`) are restricted to PROTOCOL_ROLE, held by the RoundManager alone.
/// @dev Inherits IERC20Errors only so that token errors bubbling up from `transferFrom`
///      (e.g. a missing approval) are in this contract's ABI and decode by name.
contract PeerRegistry is AccessControl, ReentrancyGuardTransient, IERC20Errors {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice Role of the RoundManager.
    bytes32 public constant PROTOCOL_ROLE = keccak256("PROTOCOL_ROLE");
    /// @notice Fixed-point scale of reputation (1e18 = maximal).
    uint256 public constant REP_MAX = ParamsLib.REP_MAX;
    /// @notice Longest endpoint string accepted (bytes).
    uint256 public constant MAX_ENDPOINT_BYTES = 256;
    /// @notice Committee draw attempts per seat (rejection sampling bound).
    uint256 public constant DRAW_ATTEMPTS_PER_SEAT = 16;

    /// @notice Lifecycle of an address.
    /// None: not a member (never joined, or withdrew). Active: member. Exiting: asked to leave,
    /// still a member until the current round is finalized. Inactive: removed after
    /// `maxMissedRounds` missed rounds or an exhausted stake; may `reactivate` or `leave`.
    /// Left: removed, stake waits for `withdraw`.
    enum Status {
        None,
        Active,
        Exiting,
        Inactive,
        Left
    }

    /// @notice Why a member became inactive.
    enum InactiveReason {
        MissedRounds,
        StakeExhausted
    }

    /// @notice Per-address record (one storage slot).
    struct Peer {
        Status status;
        bool known; // has joined at least once; reputation is never reset afterwards
        uint16 missedRounds; // consecutive rounds without a submission
        uint64 reputation; // fixed point, 0..REP_MAX
        uint32 joinRound; // round in which the current membership began
        uint32 lastSubmitRound; // (round + 1) of the latest submission, 0 = never (or booked, then left and back: {_pushMember})
        uint32 index; // position in the member array while Active or Exiting
        uint16 rejectStreak; // the peer's updates rejected in a row (approval resets it)
        uint32 submitIndex; // index of its update in round lastSubmitRound - 1 (booked by {sweep})
    }

    /// @notice Identity bookkeeping of an address (one storage slot).
    struct Bond {
        uint64 probationUntil; // first round in which a fresh identity is off probation (0 = never on it)
        uint64 withdrawableFrom; // first round in which a departed peer may withdraw
    }

    /// @notice Tokens held for a peer (one storage slot).
    struct Balance {
        uint128 stake;
        uint128 claimable;
    }

    // ------------------------------------------------------------------ errors
    error AlreadyMember(address peer, Status status);
    error NotActiveMember(address peer);
    error AlreadyLeaving(address peer);
    error NotLeft(address peer, Status status);
    error NotInactive(address peer, Status status);
    error StakeTooLow(uint256 stake, uint256 minStake);
    /// @notice The endpoint breaks `rule`: "length", "scheme", "userinfo", "host", "port",
    ///         "query", "fragment" or "path" (docs/protocol.md, "Endpoints").
    error EndpointInvalid(string rule);
    /// @notice The stake of `peer` is bonded until round `withdrawableFrom` (now `round`).
    error StillBonded(address peer, uint256 withdrawableFrom, uint256 round);
    error NothingToClaim(address peer);
    error MemberLimitReached();
    /// @notice Member position `index` is at or past the member count `count`.
    error IndexOutOfBounds(uint256 index, uint256 count);

    // ------------------------------------------------------------------ events
    /// @notice A peer joined with `stake`, starting (or continuing) at `reputation`.
    event PeerJoined(address indexed peer, uint256 stake, uint256 reputation, uint256 round, string endpoint);
    /// @notice A fresh address paid the non-refundable entry cost `amount` (burned).
    event EntryFeeBurned(address indexed peer, uint256 amount);
    /// @notice A member published a new endpoint.
    event EndpointUpdated(address indexed peer, string endpoint);
    /// @notice A member asked to leave; it stays a member until round `round` is finalized.
    event LeaveRequested(address indexed peer, uint256 round);
    /// @notice A peer stopped being a member; `stake` is now withdrawable.
    event PeerLeft(address indexed peer, uint256 round, uint256 stake);
    /// @notice A peer that left took back its stake.
    event StakeWithdrawn(address indexed peer, uint256 amount);
    /// @notice A member was removed for missing rounds or for an exhausted stake.
    event PeerInactive(address indexed peer, uint256 round, InactiveReason reason, uint256 missedRounds);
    /// @notice An inactive peer became a member again.
    event PeerReactivated(address indexed peer, uint256 addedStake, uint256 stake, uint256 round);
    /// @notice An expected member submitted nothing in `round` (`missedRounds` in a row).
    event Absent(address indexed peer, uint256 round, uint256 missedRounds);
    /// @notice Reputation of `peer` changed (fixed point, 1e18 = REP_MAX).
    event ReputationChanged(address indexed peer, uint256 oldReputation, uint256 newReputation);
    /// @notice `amount` tokens were minted into this contract and credited to `peer`.
    event RewardCredited(address indexed peer, uint256 amount);
    /// @notice `amount` tokens of `peer`'s stake were burned.
    event StakeSlashed(address indexed peer, uint256 amount);
    /// @notice An update of `peer` was rejected, its `streak`-th rejection in a row;
    ///         `confirmed` = streak >= slashAfterRejections (the stake is slashed).
    event RejectionCounted(address indexed peer, uint256 streak, bool confirmed);
    /// @notice `peer` pulled `amount` credited tokens.
    event Claimed(address indexed peer, uint256 amount);
    /// @notice The RoundManager opened `round`.
    event RoundSynced(uint256 round);
    /// @notice Outcome nibbles of updates 64 * `word` .. 64 * `word` + 63 of `round` (layout of
    ///         {outcomeWord}); with UpdateSubmitted they give every trainer's booking, which the
    ///         member sweep applies without a per-trainer event when the update is accepted.
    event OutcomesRecorded(uint256 indexed round, uint256 word, uint256 nibbles);

    // ------------------------------------------------------------------ state
    BDFLToken public immutable token;

    uint256 public immutable minStake;
    uint64 internal immutable _repInitial;
    uint64 internal immutable _repThreshold;
    uint64 internal immutable _repLossAbsence;
    uint16 internal immutable _maxMissedRounds;
    uint256 internal immutable _entryFee;
    uint16 internal immutable _probationRounds;
    uint16 internal immutable _unbondingRounds;
    uint64 internal immutable _repGainUpdate;
    uint64 internal immutable _repLossUpdate;
    uint256 internal immutable _slashAmount;
    uint16 internal immutable _slashAfter;
    /// @notice Hash of the off-chain policy this deployment runs under; set once, at deployment.
    bytes32 public immutable policyHash;
    Params internal _params;

    mapping(address => Peer) internal _peers;
    mapping(address => Balance) internal _balances;
    mapping(address => string) internal _endpoints;
    mapping(address => Bond) internal _bonds;
    /// @dev The member array as a mapping by position; its length is {_memberCount}.
    mapping(uint256 => address) internal _memberAt;
    /// @dev The PROTOCOL_ROLE holder granted first (the RoundManager), cached beside the member
    ///      count (issue 23): {onSubmit}, called once per submission, reads both from this one
    ///      slot instead of the role mapping and the array length (one cold read saved per
    ///      submission). Any other PROTOCOL_ROLE holder still passes the full role check.
    address internal _protocol;
    /// @dev Number of members (Active or Exiting): positions 0 .. _memberCount - 1 of {_memberAt}.
    uint32 internal _memberCount;

    /// @notice Sum of all stakes held (members and peers waiting to withdraw).
    uint256 public totalStaked;
    /// @notice Sum of all credited, unclaimed rewards.
    uint256 public totalClaimable;
    /// @notice Round currently open in the RoundManager (pushed by it).
    uint64 public currentRound;

    /// @dev Outcome nibbles per round, 64 updates per word (bits 4 * (u & 63) of word u >> 6):
    ///      the RoundManager.Outcome in bits 0..2, bit 3 = the trainer's reward was cut by the
    ///      round's budget or the mint cap ({recordRewardCut} holds the one partial amount).
    mapping(uint256 => mapping(uint256 => uint256)) internal _outcomes;
    /// @dev Per round: (index + 1) << 128 | amount of the one approved update whose reward the
    ///      budget cut to a partial amount (later cut updates get nothing).
    mapping(uint256 => uint256) internal _rewardCut;
    uint256 internal immutable _updateReward;

    uint64 internal _sweepRoundPlusOne;
    uint32 internal _sweepCursor;
    /// @dev Rewards credited in the current transaction and not yet minted ({flushMint}).
    uint256 internal transient _toMint;

    /// @param token_ The stake token (this contract needs its MINTER_ROLE for rewards).
    /// @param params_ Protocol parameters; validated, see {ParamsLib-validate}.
    /// @param policyHash_ Hash of the off-chain policy (any value; zero = none declared).
    /// @param admin Holds DEFAULT_ADMIN_ROLE to grant PROTOCOL_ROLE once, then renounces it.
    constructor(BDFLToken token_, Params memory params_, bytes32 policyHash_, address admin) {
        ParamsLib.validate(params_);
        token = token_;
        _params = params_;
        minStake = params_.minStake;
        _repInitial = params_.repInitial;
        _repThreshold = params_.repThreshold;
        _repLossAbsence = params_.repLossAbsence;
        _maxMissedRounds = params_.maxMissedRounds;
        _entryFee = params_.entryFee;
        _probationRounds = params_.probationRounds;
        _unbondingRounds = params_.unbondingRounds;
        _repGainUpdate = params_.repGainUpdate;
        _repLossUpdate = params_.repLossUpdate;
        _slashAmount = params_.slashAmount;
        _slashAfter = params_.slashAfterRejections;
        _updateReward = params_.updateReward;
        policyHash = policyHash_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ============================================================ peer actions

    /// @notice Join with `amount` tokens (needs a prior `approve` of this contract) and the
    ///         endpoint where the peer serves its model updates. An address that was a member
    ///         before keeps its reputation and stakes all of `amount`; a new one starts at
    ///         `repInitial`, `entryFee` of `amount` is burned (the rest is its stake), and
    ///         unless it joins in round 0 it is on probation for `probationRounds` rounds.
    /// @dev Reverts {AlreadyMember} unless status is None (withdraw first after leaving).
    function join(uint256 amount, string calldata endpoint) external nonReentrant {
        Peer storage p = _peers[msg.sender];
        if (p.status != Status.None) revert AlreadyMember(msg.sender, p.status);
        if (amount < minStake) revert StakeTooLow(amount, minStake);
        _checkEndpoint(endpoint);
        if (_memberCount >= type(uint32).max) revert MemberLimitReached();
        uint256 fee = 0;
        uint64 round = currentRound;
        if (!p.known) {
            p.known = true;
            p.reputation = _repInitial;
            fee = _entryFee;
            if (round != 0 && _probationRounds != 0) _bonds[msg.sender].probationUntil = round + _probationRounds;
        }
        uint256 stake = amount - fee;
        p.status = Status.Active;
        p.missedRounds = 0;
        p.joinRound = uint32(round);
        _pushMember(p, msg.sender, round);
        _balances[msg.sender].stake += stake.toUint128();
        totalStaked += stake;
        _endpoints[msg.sender] = endpoint;
        emit PeerJoined(msg.sender, stake, p.reputation, round, endpoint);
        IERC20(address(token)).safeTransferFrom(msg.sender, address(this), amount);
        if (fee != 0) {
            emit EntryFeeBurned(msg.sender, fee);
            token.burn(fee);
        }
    }

    /// @notice Publish a new endpoint. Allowed while Active, Exiting or Inactive.
    function updateEndpoint(string calldata endpoint) external {
        Status s = _peers[msg.sender].status;
        if (s != Status.Active && s != Status.Exiting && s != Status.Inactive) revert NotActiveMember(msg.sender);
        _checkEndpoint(endpoint);
        _endpoints[msg.sender] = endpoint;
        emit EndpointUpdated(msg.sender, endpoint);
    }

    /// @notice Ask to leave. An Active member stays a member (and may still submit and audit)
    ///         until the current round is finalized, then its stake (minus slashes) becomes
    ///         withdrawable. An Inactive member leaves at once.
    function requestLeave() external {
        Peer storage p = _peers[msg.sender];
        if (p.status == Status.Active) {
            p.status = Status.Exiting;
            emit LeaveRequested(msg.sender, currentRound);
        } else if (p.status == Status.Inactive) {
            // it was last a member in an earlier round: bonded for unbondingRounds from now
            p.status = Status.Left;
            _bonds[msg.sender].withdrawableFrom = currentRound + _unbondingRounds;
            emit PeerLeft(msg.sender, currentRound, _balances[msg.sender].stake);
        } else if (p.status == Status.Exiting) {
            revert AlreadyLeaving(msg.sender);
        } else {
            revert NotActiveMember(msg.sender);
        }
    }

    /// @notice Return the remaining stake of a peer that has left, once it is no longer bonded
    ///         ({withdrawableFrom}; slashes booked until then still burn it). Status becomes
    ///         None, so the address may join again later (with its old reputation).
    function withdraw() external nonReentrant {
        Peer storage p = _peers[msg.sender];
        if (p.status != Status.Left) revert NotLeft(msg.sender, p.status);
        uint256 from = _bonds[msg.sender].withdrawableFrom;
        if (currentRound < from) revert StillBonded(msg.sender, from, currentRound);
        Balance storage b = _balances[msg.sender];
        uint256 amount = b.stake;
        b.stake = 0;
        totalStaked -= amount;
        p.status = Status.None;
        emit StakeWithdrawn(msg.sender, amount);
        if (amount != 0) IERC20(address(token)).safeTransfer(msg.sender, amount);
    }

    /// @notice Become a member again after being marked inactive, adding `addedStake` tokens
    ///         (may be 0 when the stake still covers `minStake`).
    function reactivate(uint256 addedStake) external nonReentrant {
        Peer storage p = _peers[msg.sender];
        if (p.status != Status.Inactive) revert NotInactive(msg.sender, p.status);
        Balance storage b = _balances[msg.sender];
        uint256 stake = uint256(b.stake) + addedStake;
        if (stake < minStake) revert StakeTooLow(stake, minStake);
        if (_memberCount >= type(uint32).max) revert MemberLimitReached();
        b.stake = stake.toUint128();
        totalStaked += addedStake;
        p.status = Status.Active;
        p.missedRounds = 0;
        p.joinRound = uint32(currentRound);
        _pushMember(p, msg.sender, currentRound);
        emit PeerReactivated(msg.sender, addedStake, stake, currentRound);
        if (addedStake != 0) IERC20(address(token)).safeTransferFrom(msg.sender, address(this), addedStake);
    }

    /// @notice Transfer every credited reward to the caller (pull payment).
    function claim() external nonReentrant {
        Balance storage b = _balances[msg.sender];
        uint256 amount = b.claimable;
        if (amount == 0) revert NothingToClaim(msg.sender);
        b.claimable = 0;
        totalClaimable -= amount;
        emit Claimed(msg.sender, amount);
        IERC20(address(token)).safeTransfer(msg.sender, amount);
    }

    // ====================================================== protocol (RoundManager)

    /// @notice Records that `peer` submitted update `index` of `round` (booked by {sweep}
    ///         once the round's outcomes are known); reverts unless it is a member.
    /// @return eligible Whether the peer's reputation is at or above `repThreshold` and it is
    ///         not on probation (its update may count in aggregation if approved).
    /// @return members The member count (saves the RoundManager a second call).
    function onSubmit(address peer, uint64 round, uint256 index) external returns (bool eligible, uint256 members) {
        if (msg.sender != _protocol) _checkRole(PROTOCOL_ROLE);
        Peer storage p = _peers[peer];
        if (p.status != Status.Active && p.status != Status.Exiting) revert NotActiveMember(peer);
        p.lastSubmitRound = uint32(round + 1);
        p.submitIndex = uint32(index);
        // probationUntil <= (first join round) + probationRounds <= joinRound + probationRounds
        // (joinRound never decreases), so a member past that reads no bond slot (issue 23: a
        // cold read saved per submission); the result is the same as reading it. Likewise a
        // member with joinRound 0: it first joined in round 0 (no membership can end and
        // restart within round 0: removals happen in round 0's last finalize, which opens
        // round 1), and a round-0 join sets no probation; this saves the read in the genesis
        // members' first probationRounds rounds.
        eligible = p.reputation >= _repThreshold
            && (p.joinRound == 0 || round >= uint256(p.joinRound) + _probationRounds
                || round >= _bonds[peer].probationUntil);
        members = _memberCount;
    }

    /// @notice Book the audit of one of `peer`'s updates (docs/protocol.md, "Rejection and
    ///         slashing"). Accepted (approved or on probation): +repGainUpdate, the reward
    ///         `reward` credited, the rejection streak reset. Rejected: the streak grows by one;
    ///         below slashAfterRejections the rejection is unconfirmed: reputation drops by
    ///         repLossUpdate but not below repThreshold (a peer already below loses nothing more)
    ///         and the stake is untouched; at or above it the reversal is confirmed: reputation
    ///         drops by repLossUpdate (to 0 at worst) and slashAmount of the stake is burned.
    ///         Emits RejectionCounted for a rejection, StakeSlashed for a burn.
    function settleUpdate(address peer, bool accepted, uint256 reward) external onlyRole(PROTOCOL_ROLE) {
        _settleUpdate(peer, _peers[peer], accepted, reward);
        _flushMint();
    }

    /// @notice Outcomes of updates 64 * `word` .. 64 * `word` + 63 of `round`, as nibbles
    ///         (see {outcomeWord}), OR-ed into the stored word; the member sweep of the round
    ///         books each trainer from them (issue 23: one call per 64 updates instead of a
    ///         registry call and two cold slots per update in the update stage).
    function recordOutcomes(uint64 round, uint256 word, uint256 nibbles) external onlyRole(PROTOCOL_ROLE) {
        _outcomes[round][word] |= nibbles;
        emit OutcomesRecorded(round, word, nibbles);
    }

    /// @notice The reward of approved update `index` of `round` was cut to `amount` (> 0).
    function recordRewardCut(uint64 round, uint256 index, uint256 amount) external onlyRole(PROTOCOL_ROLE) {
        _rewardCut[round] = ((index + 1) << 128) | amount;
    }

    function _settleUpdate(address peer, Peer storage p, bool accepted, uint256 reward) internal {
        if (accepted) {
            if (p.rejectStreak != 0) p.rejectStreak = 0;
            _adjustReputation(peer, p, int256(uint256(_repGainUpdate)));
            if (reward != 0) _credit(peer, _balances[peer], reward);
            return;
        }
        uint256 streak = uint256(p.rejectStreak) + 1;
        if (streak <= type(uint16).max) p.rejectStreak = uint16(streak);
        bool confirmed = streak >= _slashAfter;
        emit RejectionCounted(peer, streak, confirmed);
        uint256 rep = p.reputation;
        uint256 loss = _repLossUpdate;
        if (!confirmed) {
            uint256 floor = rep < _repThreshold ? rep : _repThreshold;
            if (rep - floor < loss) loss = rep - floor;
        }
        if (loss != 0) _adjustReputation(peer, p, -int256(loss));
        if (confirmed) _slash(peer, _balances[peer], _slashAmount);
    }

    /// @notice Apply one settlement: reputation change (clamped to [0, REP_MAX]), a reward
    ///         (minted into this contract and credited as claimable) and a slash (burned from
    ///         the stake, capped at the stake). Applies whatever the peer's status: a peer that
    ///         left is still slashed while its stake is bonded.
    function settle(address peer, int256 repDelta, uint256 reward, uint256 slash)
        external
        onlyRole(PROTOCOL_ROLE)
    {
        if (repDelta != 0) _adjustReputation(peer, _peers[peer], repDelta);
        Balance storage b = _balances[peer];
        if (slash != 0) _slash(peer, b, slash);
        if (reward != 0) _credit(peer, b, reward);
    }

    /// @dev Burn up to `amount` of `peer`'s stake (capped at the stake); returns the amount burned.
    function _slash(address peer, Balance storage b, uint256 amount) internal returns (uint256 s) {
        uint256 stake = b.stake;
        s = amount < stake ? amount : stake;
        if (s != 0) {
            b.stake = uint128(stake - s);
            totalStaked -= s;
            emit StakeSlashed(peer, s);
            token.burn(s);
        }
    }

    /// @dev Credit `reward` to `peer` as claimable; the tokens are minted into this contract
    ///      once per transaction by {flushMint} (issue 23: one mint per finalize batch, not one
    ///      per reward), which the RoundManager calls at the end of every finalize call.
    function _credit(address peer, Balance storage b, uint256 reward) internal {
        b.claimable += reward.toUint128();
        totalClaimable += reward;
        _toMint += reward;
        emit RewardCredited(peer, reward);
    }

    /// @notice Mint the rewards credited in this transaction into this contract (solvency:
    ///         `balance >= totalStaked + totalClaimable` holds again afterwards).
    function flushMint() external onlyRole(PROTOCOL_ROLE) {
        _flushMint();
    }

    function _flushMint() internal {
        uint256 amount = _toMint;
        if (amount != 0) {
            _toMint = 0;
            token.mint(address(this), amount);
        }
    }

    /// @notice End-of-round pass over the member array, resumable in batches. For each member:
    ///         its update of `round`, if it submitted one, booked from the outcome nibbles
    ///         ({_bookUpdate}); then Exiting -> removed (Left); zero stake -> removed (Inactive); submitted in
    ///         `round` -> missed counter reset; otherwise, if it was a member before `round`
    ///         began, it is absent: reputation -= repLossAbsence, missed += 1, and after
    ///         `maxMissedRounds` consecutive misses it is removed (Inactive).
    ///         Removal is swap-and-pop, so the swapped-in member is processed next.
    /// @dev Loop bound: `maxItems` iterations per call; O(N) over a round.
    /// @return used Items processed. @return done Whether the whole array has been processed.
    function sweep(uint64 round, uint256 maxItems)
        external
        onlyRole(PROTOCOL_ROLE)
        returns (uint256 used, bool done)
    {
        if (_sweepRoundPlusOne != round + 1) {
            _sweepRoundPlusOne = round + 1;
            _sweepCursor = 0;
        }
        uint256 cursor = _sweepCursor;
        while (used < maxItems && cursor < _memberCount) {
            ++used;
            address a = _memberAt[cursor];
            Peer storage p = _peers[a];
            bool submitted = p.lastSubmitRound == round + 1;
            if (submitted) _bookUpdate(a, p, round);
            if (p.status == Status.Exiting) {
                _removeMember(p);
                p.status = Status.Left;
                _bonds[a].withdrawableFrom = round + 1 + _unbondingRounds;
                emit PeerLeft(a, round, _balances[a].stake);
                continue;
            }
            if (_balances[a].stake == 0) {
                _removeMember(p);
                p.status = Status.Inactive;
                emit PeerInactive(a, round, InactiveReason.StakeExhausted, p.missedRounds);
                continue;
            }
            if (submitted) {
                if (p.missedRounds != 0) p.missedRounds = 0;
            } else if (p.joinRound < round) {
                uint16 missed = p.missedRounds + 1;
                p.missedRounds = missed;
                emit Absent(a, round, missed);
                _adjustReputation(a, p, -int256(uint256(_repLossAbsence)));
                if (missed >= _maxMissedRounds) {
                    _removeMember(p);
                    p.status = Status.Inactive;
                    emit PeerInactive(a, round, InactiveReason.MissedRounds, missed);
                    continue;
                }
            }
            ++cursor;
        }
        _sweepCursor = uint32(cursor);
        done = cursor >= _memberCount;
    }

    /// @dev Book the audit of `a`'s update of `round` from its outcome nibble: accepted
    ///      (Approved: with its reward, full or as cut; Probation: none), rejected, or nothing
    ///      (Undecided). Every trainer of a round is a member until the round's sweep (only
    ///      the sweep removes members), so the sweep books every one: a trainer cannot dodge
    ///      a slash by leaving or by not submitting again.
    function _bookUpdate(address a, Peer storage p, uint64 round) internal {
        uint256 u = p.submitIndex;
        uint256 nibble = (_outcomes[round][u >> 6] >> ((u & 63) << 2)) & 15;
        uint256 outcome = nibble & 7;
        if (outcome == 1) {
            uint256 reward = _updateReward;
            if (nibble & 8 != 0) {
                uint256 cut = _rewardCut[round];
                reward = cut >> 128 == u + 1 ? uint128(cut) : 0;
            }
            _acceptQuietly(a, p, reward);
        } else if (outcome == 4) {
            _acceptQuietly(a, p, 0);
        } else if (outcome == 2) {
            _settleUpdate(a, p, false, 0); // slashes only a confirmed reversal
        }
    }

    /// @dev The accepted booking of {_settleUpdate} (streak reset, +repGainUpdate clamped at
    ///      REP_MAX, `reward` credited) without its ReputationChanged and RewardCredited events
    ///      (issue 23: ≈ 3k gas per trainer and round). Every input is public, so a client
    ///      recovers both from the round's events: the trainer and its index from
    ///      UpdateSubmitted, the outcome nibble from OutcomesRecorded (Approved or Probation:
    ///      accepted), the reward from updateReward, or for a cut one from RewardCapped
    ///      (docs/protocol.md, "Events and what a client recovers").
    function _acceptQuietly(address a, Peer storage p, uint256 reward) internal {
        uint256 rep = uint256(p.reputation) + _repGainUpdate;
        if (rep > REP_MAX) rep = REP_MAX;
        p.reputation = uint64(rep);
        if (p.rejectStreak != 0) p.rejectStreak = 0;
        if (reward != 0) {
            Balance storage b = _balances[a];
            b.claimable += reward.toUint128();
            totalClaimable += reward;
            _toMint += reward;
        }
    }

    /// @notice The RoundManager opened round `round`.
    function openRound(uint64 round) external onlyRole(PROTOCOL_ROLE) {
        currentRound = round;
        emit RoundSynced(round);
    }

    // ================================================================== views

    /// @notice Draw up to `k` distinct committee members from the member array by rejection
    ///         sampling: attempt `a` picks index `w mod n` with `w = keccak256(seed, a)`, and
    ///         accepts that member iff its reputation >= repThreshold (reputation is only an
    ///         eligibility floor), `(w >> 128) mod minStake < stake` (probability
    ///         min(stake, minStake) / minStake: weight from stake, capped at one minimum stake
    ///         per identity) and it is not on probation; duplicates are skipped. A coalition's
    ///         expected share of seats is its share of the eligible identities' capped stake,
    ///         however much reputation its approved updates earned (docs/protocol.md,
    ///         "Committee: seed and draw"). No loop over all members.
    /// @dev Loop bound: `k * DRAW_ATTEMPTS_PER_SEAT` attempts, each with a duplicate scan of
    ///      at most k entries (k <= 64). The committee is smaller than k when too few members
    ///      are eligible or the attempts run out.
    function drawCommittee(bytes32 seed, uint256 k) external view returns (address[] memory chosen) {
        return _drawCommittee(seed, k, _memberCount);
    }

    /// @notice {drawCommittee} over the first `pool` members only (clipped to the member
    ///         count). Added for the RoundManager (issue 19, RoundManager side): it freezes the
    ///         pool at the round's first submission, before any beacon reveal is public, so
    ///         members joining once the seed is computable cannot steer the draw. Removals
    ///         happen only in {sweep}, so the first `pool` positions are stable in a round.
    function drawCommitteeAmong(bytes32 seed, uint256 k, uint256 pool) external view returns (address[] memory) {
        uint256 n = _memberCount;
        return _drawCommittee(seed, k, pool < n ? pool : n);
    }

    function _drawCommittee(bytes32 seed, uint256 k, uint256 n) internal view returns (address[] memory chosen) {
        chosen = new address[](k);
        uint256 count;
        if (n != 0) {
            uint256 attempts = k * DRAW_ATTEMPTS_PER_SEAT;
            uint256 threshold = _repThreshold;
            uint256 unit = minStake;
            for (uint256 a = 0; a < attempts && count < k; ++a) {
                uint256 w = Sortition.drawWord(seed, a);
                address cand = _memberAt[w % n];
                if (_peers[cand].reputation < threshold) continue;
                if (((w >> 128) % unit) >= _balances[cand].stake) continue; // weight min(stake, minStake)
                if (_bonds[cand].probationUntil > currentRound) continue; // read only for lottery winners
                bool dup;
                for (uint256 i = 0; i < count; ++i) {
                    if (chosen[i] == cand) {
                        dup = true;
                        break;
                    }
                }
                if (!dup) chosen[count++] = cand;
            }
        }
        assembly ("memory-safe") {
            mstore(chosen, count)
        }
    }

    /// @notice Outcome (RoundManager.Outcome) of update `index` of `round`; 0 (Pending)
    ///         before the round's finalize decided it.
    function outcomeOf(uint256 round, uint256 index) external view returns (uint8) {
        return uint8((_outcomes[round][index >> 6] >> ((index & 63) << 2)) & 7);
    }

    /// @notice Outcome nibbles of updates 64 * `word` .. 64 * `word` + 63 of `round`: bits
    ///         4 * (u & 63) .. + 3 for update u, the outcome in bits 0..2, bit 3 = reward cut.
    function outcomeWord(uint256 round, uint256 word) external view returns (uint256) {
        return _outcomes[round][word];
    }

    /// @notice All protocol parameters.
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @notice Reputation of `peer` (fixed point, 0..REP_MAX; 0 for unknown addresses).
    function reputationOf(address peer) external view returns (uint256) {
        return _peers[peer].reputation;
    }

    /// @notice Whether `peer` is a member with reputation >= repThreshold that is not on
    ///         probation (may sit on a committee, and its approved updates count in aggregation).
    function eligible(address peer) public view returns (bool) {
        Peer storage p = _peers[peer];
        return (p.status == Status.Active || p.status == Status.Exiting) && p.reputation >= _repThreshold
            && _bonds[peer].probationUntil <= currentRound;
    }

    /// @notice Whether `peer` is a fresh identity still on probation in the current round.
    function onProbation(address peer) external view returns (bool) {
        return _bonds[peer].probationUntil > currentRound;
    }

    /// @notice First round in which `peer` is off probation (0 = never on probation).
    function probationUntil(address peer) external view returns (uint256) {
        return _bonds[peer].probationUntil;
    }

    /// @notice First round in which `peer`, once it has left, may withdraw its stake.
    function withdrawableFrom(address peer) external view returns (uint256) {
        return _bonds[peer].withdrawableFrom;
    }

    /// @notice Whether `peer` is a member (Active or Exiting).
    function isMember(address peer) public view returns (bool) {
        Status s = _peers[peer].status;
        return s == Status.Active || s == Status.Exiting;
    }

    /// @notice Full record of `peer`.
    function peerInfo(address peer) external view returns (Peer memory) {
        return _peers[peer];
    }

    /// @notice Records and balances of many peers in one call (e.g. every member's
    ///         reputation for metrics). Loop bound: `peers.length`.
    function peerStates(address[] calldata peers)
        external
        view
        returns (Peer[] memory infos, Balance[] memory balances)
    {
        infos = new Peer[](peers.length);
        balances = new Balance[](peers.length);
        for (uint256 i = 0; i < peers.length; ++i) {
            infos[i] = _peers[peers[i]];
            balances[i] = _balances[peers[i]];
        }
    }

    /// @notice Lifecycle status of `peer`.
    function statusOf(address peer) external view returns (Status) {
        return _peers[peer].status;
    }

    /// @notice Stake currently held for `peer`.
    function stakeOf(address peer) external view returns (uint256) {
        return _balances[peer].stake;
    }

    /// @notice Rewards credited to `peer` and not yet claimed.
    function claimableOf(address peer) external view returns (uint256) {
        return _balances[peer].claimable;
    }

    /// @notice Endpoint published by `peer`.
    function endpointOf(address peer) external view returns (string memory) {
        return _endpoints[peer];
    }

    /// @notice Number of members (Active or Exiting).
    function memberCount() external view returns (uint256) {
        return _memberCount;
    }

    /// @notice Member at array position `i` (order changes on removals).
    function memberAt(uint256 i) external view returns (address) {
        if (i >= _memberCount) revert IndexOutOfBounds(i, _memberCount);
        return _memberAt[i];
    }

    /// @notice Members in positions [start, start + count) (clipped). Paginate for large N.
    function membersSlice(uint256 start, uint256 count) external view returns (address[] memory out) {
        uint256 n = _memberCount;
        if (start >= n) return new address[](0);
        uint256 end = start + count < n ? start + count : n;
        out = new address[](end - start);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = _memberAt[i];
        }
    }

    /// @notice Everything this contract owes: stakes plus unclaimed rewards.
    function totalLiabilities() public view returns (uint256) {
        return totalStaked + totalClaimable;
    }

    /// @notice Token balance minus liabilities; never negative (checked by the test suite).
    function solvencyMargin() external view returns (int256) {
        return int256(token.balanceOf(address(this))) - int256(totalLiabilities());
    }

    // =============================================================== internal

    /// @dev Accepts `scheme "://" host ":" port [path]` with scheme `http` or `https`
    ///      (lower case), host a name or IPv4 address of `[A-Za-z0-9.-]` or a bracketed IPv6
    ///      literal of `[0-9A-Fa-f:.]`, port 1..65535 (decimal, 1-5 digits), and an optional
    ///      path starting with `/` made of RFC 3986 path characters except the at sign (no `?`
    ///      query and no `#` fragment). Loop bound: the length (<= MAX_ENDPOINT_BYTES).
    function _checkEndpoint(string calldata endpoint) internal pure {
        bytes calldata b = bytes(endpoint);
        uint256 len = b.length;
        if (len == 0 || len > MAX_ENDPOINT_BYTES) revert EndpointInvalid("length");
        uint256 i = 0;
        if (len > 7 && bytes7(b[0:7]) == bytes7("http://")) i = 7;
        else if (len > 8 && bytes8(b[0:8]) == bytes8("https://")) i = 8;
        else revert EndpointInvalid("scheme");
        // authority: up to the first '/' (or the end)
        uint256 end = i;
        while (end < len && b[end] != "/") {
            bytes1 c = b[end];
            if (c == "@") revert EndpointInvalid("userinfo");
            if (c == "?") revert EndpointInvalid("query");
            if (c == "#") revert EndpointInvalid("fragment");
            ++end;
        }
        // host
        uint256 j = i;
        if (j < end && b[j] == "[") {
            ++j;
            while (j < end && b[j] != "]") {
                if (!_isHex(b[j]) && b[j] != ":" && b[j] != ".") revert EndpointInvalid("host");
                ++j;
            }
            if (j == end || j == i + 1) revert EndpointInvalid("host"); // unclosed or empty brackets
            ++j; // past ']'
        } else {
            while (j < end && b[j] != ":") {
                bytes1 c = b[j];
                if (!_isAlnum(c) && c != "." && c != "-") revert EndpointInvalid("host");
                ++j;
            }
            if (j == i) revert EndpointInvalid("host");
        }
        // port
        if (j == end || b[j] != ":") revert EndpointInvalid("port");
        ++j;
        if (j == end || end - j > 5) revert EndpointInvalid("port");
        uint256 port = 0;
        for (; j < end; ++j) {
            uint8 d = uint8(b[j]);
            if (d < 0x30 || d > 0x39) revert EndpointInvalid("port");
            port = port * 10 + (d - 0x30);
        }
        if (port == 0 || port > 65535) revert EndpointInvalid("port");
        // path
        for (j = end; j < len; ++j) {
            bytes1 c = b[j];
            if (c == "?") revert EndpointInvalid("query");
            if (c == "#") revert EndpointInvalid("fragment");
            if (!_isAlnum(c) && !_isPathMark(c)) revert EndpointInvalid("path");
        }
    }

    function _isAlnum(bytes1 c) private pure returns (bool) {
        return (c >= "0" && c <= "9") || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
    }

    function _isHex(bytes1 c) private pure returns (bool) {
        return (c >= "0" && c <= "9") || (c >= "a" && c <= "f") || (c >= "A" && c <= "F");
    }

    /// @dev RFC 3986 path characters besides letters and digits, `@` excluded:
    ///      `- . _ ~ / % ! $ & ' ( ) * + , ; = :`.
    function _isPathMark(bytes1 c) private pure returns (bool) {
        return c == "-" || c == "." || c == "_" || c == "~" || c == "/" || c == "%" || c == "!" || c == "$"
            || c == "&" || c == "'" || c == "(" || c == ")" || c == "*" || c == "+" || c == "," || c == ";"
            || c == "=" || c == ":";
    }

    function _adjustReputation(address peer, Peer storage p, int256 delta) internal {
        int256 old = int256(uint256(p.reputation));
        int256 next = old + delta;
        if (next < 0) next = 0;
        if (next > int256(REP_MAX)) next = int256(REP_MAX);
        if (next != old) {
            p.reputation = uint64(uint256(next));
            emit ReputationChanged(peer, uint256(old), uint256(next));
        }
    }

    /// @dev Appends `peer` to the member positions in round `round` (the current one); then the
    ///      RoundManager (the cached PROTOCOL_ROLE holder, once there is one) warms the slots a
    ///      round will write for it ({IMemberSlots-warmMember}, issue 23): the joiner pays that
    ///      one-time cost here instead of the rounds paying 20k per slot they write for the first
    ///      time. A non-member whose latest submission is of `round` was removed by that round's
    ///      sweep, which booked the update first (only the sweep removes members); appended again
    ///      before the sweep ends, it is met by the sweep a second time, so its submission is
    ///      forgotten here: it is not booked (slashed, its streak counted) twice. Its missed
    ///      counter is reset and its join round is `round`, so that second visit books nothing.
    function _pushMember(Peer storage p, address peer, uint64 round) internal {
        if (p.lastSubmitRound == round + 1) p.lastSubmitRound = 0;
        uint32 n = _memberCount;
        p.index = n;
        _memberAt[n] = peer;
        _memberCount = n + 1;
        address proto = _protocol;
        if (proto.code.length != 0) IMemberSlots(proto).warmMember(peer, uint256(n) + 1);
    }

    /// @dev Swap-and-pop removal of `p` from the member positions.
    function _removeMember(Peer storage p) internal {
        uint256 i = p.index;
        uint256 last = uint256(_memberCount) - 1;
        if (i != last) {
            address moved = _memberAt[last];
            _memberAt[i] = moved;
            _peers[moved].index = uint32(i);
        }
        delete _memberAt[last];
        _memberCount = uint32(last);
    }

    /// @dev Caches the first PROTOCOL_ROLE holder in {_protocol}.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == PROTOCOL_ROLE && _protocol == address(0)) _protocol = account;
    }

    /// @dev Clears {_protocol} when its holder loses PROTOCOL_ROLE.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == PROTOCOL_ROLE && _protocol == account) _protocol = address(0);
    }
}
