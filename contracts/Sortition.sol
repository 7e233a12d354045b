// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Deterministic randomness helpers of the protocol
/// @notice Pure functions, so Python (bdfl.chain.protocol / tests/chain/model.py) can
///         recompute every draw and assignment from the public round seed.
library Sortition {
    /// @notice {auditSeatAt}'s answer for a dropped entry.
    uint256 internal constant NO_SEAT = type(uint256).max;

    /// @notice Seed of round `round`: the previous round's seed, the XOR of the beacon secrets
    ///         the members revealed with their submissions of this round, and the round. No
    ///         block data, no update hash, no URL: nobody biases it by choosing its bytes, its
    ///         block or the moment it advances; only by withholding its reveal (one bit per
    ///         withholding member, each paying the absence penalty; docs/protocol.md).
    function roundSeed(bytes32 previousSeed, bytes32 beacon, uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode(previousSeed, beacon, round));
    }

    /// @notice Beacon commitment of `member` to `secret`: `keccak256(abi.encode(secret, member))`.
    ///         The address inside makes a copied commitment useless (a copier could otherwise
    ///         reveal the same secret and cancel the original in the XOR).
    function beaconCommitment(bytes32 secret, address member) internal pure returns (bytes32) {
        return keccak256(abi.encode(secret, member));
    }

    /// @notice Random word of committee-draw attempt `attempt`. Its low bits pick a member
    ///         index, its high 128 bits the acceptance coin.
    function drawWord(bytes32 seed, uint256 attempt) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, attempt)));
    }

    /// @notice First committee seat of update `u`'s audit window: `keccak256(seed, u) mod k`.
    /// @dev Hashes in the scratch space (no memory allocated: called once per vote and per
    ///      update in loops).
    function windowStart(bytes32 seed, uint256 u, uint256 k) internal pure returns (uint256 h) {
        assembly ("memory-safe") {
            mstore(0x00, seed)
            mstore(0x20, u)
            h := keccak256(0x00, 0x40)
        }
        h %= k;
    }

    /// @notice Seats auditing update `u`: `(h + j) mod k` for `j < mm` with `mm = min(m, k)`;
    ///         if the submitter's own seat `own` is in that window it is replaced by
    ///         `(h + mm) mod k`, or dropped when the window already covers every seat.
    /// @param own The submitter's seat, or `type(uint256).max` when it holds none.
    /// @dev Loop bound: `min(m, k)` iterations (m < K <= 64).
    function auditSeats(bytes32 seed, uint256 u, uint256 k, uint256 m, uint256 own)
        internal
        pure
        returns (uint256[] memory seats)
    {
        if (k == 0) return new uint256[](0);
        uint256 mm = m < k ? m : k;
        uint256 h = windowStart(seed, u, k);
        bool ownInWindow = own < k && ((own + k - h) % k) < mm;
        uint256 n = (ownInWindow && mm == k) ? mm - 1 : mm;
        seats = new uint256[](n);
        uint256 w;
        for (uint256 j = 0; j < mm; ++j) {
            uint256 s = auditSeatAt(h, j, k, mm, own);
            if (s != NO_SEAT) seats[w++] = s;
        }
    }

    /// @notice Entry `j` (< mm) of an audit window of width `mm = min(m, k)` starting at seat
    ///         `h` (< k): the window seat `(h + j) mod k`; if that is the submitter's own seat
    ///         `own`, the replacement `(h + mm) mod k`, or NO_SEAT (dropped) when the window
    ///         covers every seat. The one rule of {auditSeats} and of RoundManager's finalize
    ///         loop (which passes the submitter's seat from its owner table).
    /// @dev Requires k != 0, h < k, j < mm <= k <= 64 (no overflow: unchecked).
    function auditSeatAt(uint256 h, uint256 j, uint256 k, uint256 mm, uint256 own)
        internal
        pure
        returns (uint256 s)
    {
        unchecked {
            s = (h + j) % k;
            if (s == own) s = mm == k ? NO_SEAT : (h + mm) % k;
        }
    }
}
