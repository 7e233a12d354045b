// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The few forge cheatcodes these tests use, declared here instead of installing
///         forge-std (a git dependency; the npm `forge-std` is an old unofficial copy).
///         Signatures are those of forge-std's `Vm` interface.
interface Vm {
    function warp(uint256 newTimestamp) external;
    function roll(uint256 newHeight) external;
    function prevrandao(bytes32 newPrevrandao) external;
    function prank(address msgSender) external;
    function expectRevert() external;
    function expectPartialRevert(bytes4 selector) external;
    function assume(bool condition) external pure;
    function addr(uint256 privateKey) external pure returns (address);
    function deployCode(string calldata artifactPath, bytes calldata constructorArgs) external returns (address deployed);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
}

/// @notice Assertions, `bound` and invariant targeting (the parts of forge-std's Test used here).
/// @dev forge treats a reverting test as failed; invariant targets come from
///      `targetContracts()`, which forge calls on the test contract.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice An assertion failed: `what` says which, `left`/`right` the compared values.
    error AssertionFailed(string what, uint256 left, uint256 right);

    address[] private _targetContracts;

    /// @notice Contracts the invariant fuzzer calls (forge reads this).
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert AssertionFailed(what, 0, 0);
    }

    function assertEq(uint256 left, uint256 right, string memory what) internal pure {
        if (left != right) revert AssertionFailed(what, left, right);
    }

    function assertLe(uint256 left, uint256 right, string memory what) internal pure {
        if (left > right) revert AssertionFailed(what, left, right);
    }

    /// @notice `x` mapped into [lo, hi] (uniform enough for fuzzing).
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    function popcount(uint256 x) internal pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }
}
