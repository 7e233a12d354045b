// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {RoundManager} from "../../contracts/RoundManager.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title Gas of each protocol transaction, for the gas snapshot (.gas-snapshot)
/// @notice Each test makes one call from the state its contract's `setUp` prepares (forge
///         does not count `setUp` in a test's gas), on a deployment of 6 peers, K = 4, m = 3.
///         `forge snapshot --check` (tests/chain/test_forge.py, inside `make test`) fails when
///         any of these numbers changes; after an intended change run `make gas-snapshot`
///         and commit .gas-snapshot with it.
abstract contract GasBase is Fixture {
    uint256 internal constant N = 6;
    uint256 internal constant BITS = 0x5b; // mixed accept/reject votes

    function _deployJoined() internal {
        deploy(testParams(), N);
        joinAll();
    }

    function _submitExceptLast(uint256 round) internal {
        for (uint256 i = 0; i + 1 < peers.length; ++i) {
            submit(peers[i], round, hashOf(round, i));
        }
    }
}

contract GasJoinTest is GasBase {
    function setUp() public {
        deploy(testParams(), N);
    }

    function test_gas_join() public {
        vm.prank(peers[0]);
        registry.join(100 * TOKEN, ENDPOINT);
    }
}

contract GasSubmitFirstTest is GasBase {
    function setUp() public {
        _deployJoined();
    }

    function test_gas_submitUpdate() public {
        submit(peers[0], 0, hashOf(0, 0));
    }

    function test_gas_requestLeave() public {
        vm.prank(peers[0]);
        registry.requestLeave();
    }

    function test_gas_updateEndpoint() public {
        vm.prank(peers[0]);
        registry.updateEndpoint("https://peer-0.example.org:8443");
    }
}

/// @notice A submission in the middle of round ROUNDS_KEPT = 4 that opens its beacon
///         commitment: the per-peer case of a steady round (the ring slots of round 0 are
///         rewritten, the round's own slots already written by its first submission).
contract GasSubmitSteadyTest is GasBase {
    function setUp() public {
        _deployJoined();
        for (uint256 r = 0; r < 4; ++r) {
            playRound(BITS);
        }
        submit(peers[0], 4, hashOf(4, 0));
    }

    function test_gas_submitUpdate_revealing() public {
        submit(peers[1], 4, hashOf(4, 1));
    }
}

/// @notice A submission in the middle of round 1 that opens its beacon commitment, before any
///         ring slot of round 1 was written by a round (issue 23): the join warmed them
///         (RoundManager.warmMember), so it costs what the steady one of {GasSubmitSteadyTest}
///         costs (plus the record changing from the join's placeholder, 2.9k, and where its
///         hash lands in the table), not the ~35k more of three slots written for the first
///         time. The assertion is structural: a fresh slot alone would break it.
contract GasSubmitEarlyTest is GasBase {
    /// @dev Steady submission (58,132 in .gas-snapshot) + 2.9k record + 2.4k for one more
    ///      probe + margin; one fresh slot costs 17.1k more than a rewrite.
    uint256 internal constant EARLY_BOUND = 66_000;

    function setUp() public {
        _deployJoined();
        playRound(BITS);
        submit(peers[0], 1, hashOf(1, 0));
    }

    function test_gas_submitUpdate_round1_revealing() public {
        uint256 before = gasleft();
        submit(peers[1], 1, hashOf(1, 1));
        assertLe(before - gasleft(), EARLY_BOUND, "an early-round submission costs a steady one");
    }
}

/// @notice Round 4 as in {GasSubmitSteadyTest}, but peers 1 .. N - 2 sign their submissions
///         and one relayer sends them in one `submitBatch` (issue 23): the per-entry cost of a
///         relayed steady submission is this snapshot / (N - 2) (no committee draw inside).
contract GasSubmitBatchSteadyTest is GasBase {
    RoundManager.SignedSubmission[] internal _entries;

    function setUp() public {
        _deployJoined();
        for (uint256 r = 0; r < 4; ++r) {
            playRound(BITS);
        }
        submit(peers[0], 4, hashOf(4, 0));
        for (uint256 i = 1; i + 1 < N; ++i) {
            (bytes32 reveal, bytes32 commit) = beaconArgs(peers[i], 4);
            bytes32 h = hashOf(4, i);
            bytes32 digest = MessageHashUtils.toEthSignedMessageHash(rm.submissionDigest(4, h, 10, reveal, commit));
            (uint8 v, bytes32 r_, bytes32 s_) = vm.sign(0xB0F1 + i, digest);
            bytes32 vs = bytes32(uint256(s_) | (uint256(v - 27) << 255));
            _entries.push(RoundManager.SignedSubmission(h, 10, reveal, commit, r_, vs));
        }
    }

    function test_gas_submitBatch_steady() public {
        uint256 accepted = rm.submitBatch(4, _entries);
        assertEq(accepted, N - 2, "every relayed entry recorded");
    }
}

/// @notice The last expected submission ends the Submit phase and draws the committee.
contract GasSubmitLastTest is GasBase {
    function setUp() public {
        _deployJoined();
        _submitExceptLast(0);
    }

    function test_gas_submitUpdate_last() public {
        submit(peers[N - 1], 0, hashOf(0, N - 1));
    }

    function test_gas_advance_submitDeadline() public {
        vm.warp(block.timestamp + 3600);
        rm.advance(0);
    }
}

contract GasCommitTest is GasBase {
    uint256[] internal _idx;
    bool[] internal _acc;
    address internal _auditor;
    bytes32 internal _commitment;

    function setUp() public {
        _deployJoined();
        submitAll(0);
        _auditor = rm.committeeOf(0)[0];
        (_idx, _acc) = votesOf(0, _auditor, BITS);
        _commitment = rm.voteCommitment(0, _auditor, _idx, _acc, saltOf(0, _auditor));
    }

    function test_gas_commitVotes() public {
        vm.prank(_auditor);
        rm.commitVotes(0, _commitment);
    }
}

contract GasRevealTest is GasBase {
    uint256[] internal _idx;
    bool[] internal _acc;
    address internal _auditor;

    function setUp() public {
        _deployJoined();
        submitAll(0);
        commitAll(0, BITS);
        _auditor = rm.committeeOf(0)[0];
        (_idx, _acc) = votesOf(0, _auditor, BITS);
    }

    function test_gas_revealVotes() public {
        vm.prank(_auditor);
        rm.revealVotes(0, _idx, _acc, saltOf(0, _auditor));
    }
}

/// @notice One finalize call that books the whole round (6 updates, 4 seats, 6 members)
///         and opens the next.
contract GasFinalizeTest is GasBase {
    function setUp() public {
        _deployJoined();
        submitAll(0);
        commitAll(0, BITS);
        revealAll(0, BITS);
    }

    function test_gas_finalize_round() public {
        rm.finalize(0, MAX_BATCH);
    }

    function test_gas_finalize_oneItem() public {
        rm.finalize(0, 1);
    }
}

contract GasAfterRoundTest is GasBase {
    address internal _earner;

    function setUp() public {
        _deployJoined();
        playRound(type(uint256).max); // everyone accepts: every update approved, rewards credited
        _earner = peers[0];
        vm.prank(peers[1]);
        registry.requestLeave();
        playRound(type(uint256).max); // peers[1] leaves when round 1 is finalized
    }

    function test_gas_claim() public {
        vm.prank(_earner);
        registry.claim();
    }

    function test_gas_withdraw() public {
        vm.prank(peers[1]);
        registry.withdraw();
    }
}
