// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Protocol parameters shared by PeerRegistry and RoundManager
/// @notice Every constant of the protocol is set once, at deployment, in this struct.
///         Reputation values use a fixed-point scale where `REP_MAX = 1e18` means "fully
///         trusted"; token amounts are in the token's smallest unit (18 decimals).
///         The reasoning behind the defaults is in docs/protocol.md.
struct Params {
    /// @dev Minimum stake (tokens) to join or reactivate.
    uint256 minStake;
    /// @dev Tokens burned from the trainer's stake per rejected update once the rejection is
    ///      confirmed (slashAfterRejections in a row; capped at the stake).
    uint256 slashAmount;
    /// @dev Tokens minted and credited per approved update that is counted in aggregation.
    uint256 updateReward;
    /// @dev Tokens minted and credited per revealed vote that agrees with the final majority.
    uint256 voteReward;
    /// @dev Reputation of an address the first time it joins (later joins keep the old value).
    uint64 repInitial;
    /// @dev Below this a peer sits on no committee and its updates are not aggregated.
    uint64 repThreshold;
    /// @dev Reputation gained per approved update.
    uint64 repGainUpdate;
    /// @dev Reputation lost per rejected update (an unconfirmed rejection stops at repThreshold).
    uint64 repLossUpdate;
    /// @dev Reputation gained per vote agreeing with the final majority.
    uint64 repGainVote;
    /// @dev Reputation lost per vote against the final majority and per assigned update left unvoted.
    uint64 repLossVote;
    /// @dev Reputation lost by a committee member that does not reveal (or never commits).
    uint64 repLossNoReveal;
    /// @dev Reputation lost per round an expected member submits nothing.
    uint64 repLossAbsence;
    /// @dev Seconds of the Submit phase (ends earlier once every member has submitted).
    uint32 submitDuration;
    /// @dev Seconds of the Commit phase (ends earlier once every committee member has committed).
    uint32 commitDuration;
    /// @dev Seconds of the Reveal phase (ends earlier once every committer has revealed).
    uint32 revealDuration;
    /// @dev Consecutive rounds without a submission after which a member becomes inactive.
    uint16 maxMissedRounds;
    /// @dev Committee seats drawn per round, K (1..64).
    uint16 committeeSize;
    /// @dev Auditors per update, m (1..min(K-1, 16)).
    uint16 auditorsPerUpdate;
    /// @dev Revealed votes an update needs before the majority decides (1..m).
    uint16 quorum;
    /// @dev Percentage of the revealed votes that accepts must exceed to approve (50..99).
    ///      50 is a simple majority; above it an update enters aggregation only with a clear
    ///      consensus, and one the committee is split on stays `Undecided` (not aggregated).
    uint16 approvePercent;
    /// @dev Percentage of the revealed votes that rejections must exceed to reject (50..99).
    ///      50 is a simple majority; above it a rejection, which slashes, needs a
    ///      supermajority, so a colluding minority of auditors cannot reject honest updates.
    uint16 rejectPercent;
    /// @dev Cap on the self-reported sample count (untrusted; stored capped).
    uint32 maxSamples;
    // ---- identity economics (docs/protocol.md "Identity costs") ----
    /// @dev Tokens of a fresh address's first join that are burned instead of staked
    ///      (non-refundable entry cost; 0 .. minStake - 1). Paid out of the joining amount, so
    ///      the bond of a fresh identity is `amount - entryFee`. Re-joins of a known address pay nothing.
    uint256 entryFee;
    /// @dev Rounds a fresh address spends on probation after joining (0 .. 1000): it sits on
    ///      no committee and its accepted updates are not aggregated (Probation outcome, no
    ///      token reward). Members that joined in round 0 (genesis) are never on probation.
    uint16 probationRounds;
    /// @dev Rounds a departed member's stake stays bonded (and slashable) after its
    ///      membership ended (0 .. 1000): it leaves when round r is finalized and may
    ///      withdraw from round r + 1 + unbondingRounds on.
    uint16 unbondingRounds;
    // ---- slashing line (docs/protocol.md "Rejection and slashing") ----
    /// @dev C: a rejected update slashes its trainer's stake only once the trainer's
    ///      updates were rejected C times in a row (1 .. 255). Fewer rejections in a row
    ///      (an honest peer with odd data) keep the update out of aggregation, withhold the
    ///      reward and lower reputation, but not below repThreshold and never touch the stake.
    uint16 slashAfterRejections;
}

/// @notice A constructor parameter is outside its allowed range; `field` names it.
error InvalidParam(string field);

/// @title Validation of {Params}
library ParamsLib {
    /// @notice Fixed-point scale of reputation: 1e18 = maximal reputation.
    uint256 internal constant REP_MAX = 1e18;
    /// @notice Upper bound on the committee size K: votes are tracked in 64-bit bitmaps.
    uint256 internal constant MAX_COMMITTEE = 64;
    /// @notice Upper bound on auditorsPerUpdate m (kept from the 16-bit window bitmaps that
    ///         issue 23 replaced by the auditors' own vote words).
    uint256 internal constant MAX_AUDITORS = 16;
    /// @notice Upper bound on probationRounds and unbondingRounds (a typo cannot lock stakes for ever).
    uint256 internal constant MAX_IDENTITY_ROUNDS = 1000;
    /// @notice Upper bound on slashAfterRejections.
    uint256 internal constant MAX_SLASH_AFTER = 255;

    /// @notice Reverts with {InvalidParam} naming the first field out of range.
    function validate(Params memory p) internal pure {
        if (p.minStake == 0) revert InvalidParam("minStake");
        if (p.slashAmount > p.minStake) revert InvalidParam("slashAmount");
        if (p.minStake > type(uint128).max / 1024) revert InvalidParam("minStake");
        if (p.updateReward > type(uint128).max / 1024) revert InvalidParam("updateReward");
        if (p.voteReward > type(uint128).max / 1024) revert InvalidParam("voteReward");
        if (p.repInitial > REP_MAX) revert InvalidParam("repInitial");
        if (p.repThreshold > p.repInitial) revert InvalidParam("repThreshold");
        if (p.repGainUpdate > REP_MAX) revert InvalidParam("repGainUpdate");
        if (p.repLossUpdate > REP_MAX) revert InvalidParam("repLossUpdate");
        if (p.repGainVote > REP_MAX) revert InvalidParam("repGainVote");
        if (p.repLossVote > REP_MAX) revert InvalidParam("repLossVote");
        if (p.repLossNoReveal > REP_MAX) revert InvalidParam("repLossNoReveal");
        if (p.repLossAbsence > REP_MAX) revert InvalidParam("repLossAbsence");
        if (p.submitDuration == 0) revert InvalidParam("submitDuration");
        if (p.commitDuration == 0) revert InvalidParam("commitDuration");
        if (p.revealDuration == 0) revert InvalidParam("revealDuration");
        if (p.maxMissedRounds == 0) revert InvalidParam("maxMissedRounds");
        if (p.committeeSize < 2 || p.committeeSize > MAX_COMMITTEE) revert InvalidParam("committeeSize");
        if (p.auditorsPerUpdate == 0 || p.auditorsPerUpdate >= p.committeeSize || p.auditorsPerUpdate > MAX_AUDITORS) {
            revert InvalidParam("auditorsPerUpdate");
        }
        if (p.quorum == 0 || p.quorum > p.auditorsPerUpdate) revert InvalidParam("quorum");
        if (p.approvePercent < 50 || p.approvePercent > 99) revert InvalidParam("approvePercent");
        if (p.rejectPercent < 50 || p.rejectPercent > 99) revert InvalidParam("rejectPercent");
        if (p.maxSamples == 0) revert InvalidParam("maxSamples");
        if (p.entryFee >= p.minStake) revert InvalidParam("entryFee");
        if (p.probationRounds > MAX_IDENTITY_ROUNDS) revert InvalidParam("probationRounds");
        if (p.unbondingRounds > MAX_IDENTITY_ROUNDS) revert InvalidParam("unbondingRounds");
        if (p.slashAfterRejections == 0 || p.slashAfterRejections > MAX_SLASH_AFTER) {
            revert InvalidParam("slashAfterRejections");
        }
    }
}
