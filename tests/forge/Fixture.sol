// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {BDFLToken} from "../../contracts/BDFLToken.sol";
import {PeerRegistry} from "../../contracts/PeerRegistry.sol";
import {RoundManager} from "../../contracts/RoundManager.sol";
import {Params} from "../../contracts/ProtocolParams.sol";

import {TestBase} from "./Base.sol";

/// @notice A deployment wired as `bdfl.chain.deploy` wires it (registry holds MINTER_ROLE,
///         round manager holds PROTOCOL_ROLE, deployer renounces its admin roles), funded
///         peers with unlimited allowance, and helpers that play the phases of a round.
abstract contract Fixture is TestBase {
    uint256 internal constant TOKEN = 1e18;
    uint256 internal constant PEER_TOKENS = 10_000 * TOKEN;
    uint256 internal constant MAX_BATCH = 200;
    string internal constant ENDPOINT = "http://peer.example.org:8080";

    /// @notice Reward minting bounds given to the RoundManager; large enough by default that
    ///         they never bind (tests of the bound lower them before `deploy`).
    uint256 public mintBudgetPerRound = 1_000 * TOKEN;
    uint256 public mintCap = 1_000_000 * TOKEN;

    BDFLToken public token;
    PeerRegistry public registry;
    RoundManager public rm;
    address[] public peers;
    uint256 public initialSupply;

    /// @notice The parameters of tests/chain/helpers.py TEST_PARAMS (K = 4, m = 3, quorum 2).
    /// @dev Fields are set by name on a zeroed struct, so a field added to `Params` only needs
    ///      a line here when zero is not a valid value for it.
    function testParams() internal pure returns (Params memory p) {
        p.minStake = 100 * TOKEN;
        p.slashAmount = 30 * TOKEN;
        p.updateReward = 1 * TOKEN;
        p.voteReward = TOKEN / 10;
        p.repInitial = 5e17;
        p.repThreshold = 3e17;
        p.repGainUpdate = 2e16;
        p.repLossUpdate = 2e17;
        p.repGainVote = 2e15;
        p.repLossVote = 2e16;
        p.repLossNoReveal = 1e17;
        p.repLossAbsence = 5e16;
        p.submitDuration = 3600;
        p.commitDuration = 3600;
        p.revealDuration = 3600;
        p.maxMissedRounds = 2;
        p.committeeSize = 4;
        p.auditorsPerUpdate = 3;
        p.quorum = 2;
        p.approvePercent = 50;
        p.rejectPercent = 66;
        p.maxSamples = 1000;
        p.slashAfterRejections = 1; // every rejection slashes (Slashing.t.sol tests C = 3)
    }

    /// @notice Deploy the three contracts and fund `n` peers (none of them joined yet). The
    ///         token's supply cap leaves room for exactly `mintCap` reward tokens, as deploy.py sets it.
    function deploy(Params memory p, uint256 n) internal {
        initialSupply = n * PEER_TOKENS;
        // from the compiled artifacts, not `new`: each test contract would embed (and via-IR optimise
        // again) the three contracts' creation code
        token = BDFLToken(vm.deployCode("BDFLToken.sol:BDFLToken",
            abi.encode(address(this), address(this), initialSupply, initialSupply + mintCap)));
        registry = PeerRegistry(vm.deployCode("PeerRegistry.sol:PeerRegistry",
            abi.encode(token, p, keccak256("bdfl-forge-policy"), address(this))));
        rm = RoundManager(vm.deployCode("RoundManager.sol:RoundManager", abi.encode(registry, mintBudgetPerRound, mintCap)));
        registry.grantRole(registry.PROTOCOL_ROLE(), address(rm));
        token.grantRole(token.MINTER_ROLE(), address(registry));
        registry.renounceRole(registry.DEFAULT_ADMIN_ROLE(), address(this));
        token.renounceRole(token.DEFAULT_ADMIN_ROLE(), address(this));
        for (uint256 i = 0; i < n; ++i) {
            address a = vm.addr(0xB0F1 + i);
            peers.push(a);
            token.transfer(a, PEER_TOKENS);
            vm.prank(a);
            token.approve(address(registry), type(uint256).max);
        }
    }

    function joinAll() internal {
        joinFirst(peers.length);
    }

    /// @notice Peers 0 .. count - 1 join with the minimum stake.
    function joinFirst(uint256 count) internal {
        for (uint256 i = 0; i < count; ++i) {
            joinPeer(peers[i]);
        }
    }

    function joinPeer(address peer) internal {
        uint256 stake = registry.minStake();
        vm.prank(peer);
        registry.join(stake, ENDPOINT);
    }

    /// @notice The update hash peer `i` submits in `round` (distinct per peer and round).
    function hashOf(uint256 round, uint256 i) internal view returns (bytes32) {
        return keccak256(abi.encode("bdfl-forge-update", round, peers[i]));
    }

    /// @notice The beacon secret `peer` reveals with its submission of `round`.
    function beaconSecret(address peer, uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("bdfl-forge-beacon", peer, round));
    }

    /// @notice Beacon arguments of `peer`'s submission in `round`: the secret it committed to
    ///         with its previous submission (zero when none is pending) and the commitment
    ///         `keccak256(abi.encode(secret, peer))` to its secret of round + 1.
    function beaconArgs(address peer, uint256 round) internal view returns (bytes32 reveal, bytes32 commit) {
        if (rm.beaconPending(round, peer)) reveal = beaconSecret(peer, round);
        commit = keccak256(abi.encode(beaconSecret(peer, round + 1), peer));
    }

    /// @notice `peer` submits `updateHash` in `round` (the one place that calls submitUpdate).
    function submit(address peer, uint256 round, bytes32 updateHash) internal {
        (bytes32 reveal, bytes32 commit) = beaconArgs(peer, round);
        vm.prank(peer);
        rm.submitUpdate(round, updateHash, 10, reveal, commit);
    }

    /// @notice {submit} that reports a revert instead of bubbling it up.
    function trySubmit(address peer, uint256 round, bytes32 updateHash) internal returns (bool) {
        (bytes32 reveal, bytes32 commit) = beaconArgs(peer, round);
        vm.prank(peer);
        try rm.submitUpdate(round, updateHash, 10, reveal, commit) {
            return true;
        } catch {
            return false;
        }
    }

    function submitAll(uint256 round) internal {
        for (uint256 i = 0; i < peers.length; ++i) {
            if (registry.isMember(peers[i])) submit(peers[i], round, hashOf(round, i));
        }
    }

    /// @notice Phase of the current round as a number (0 Submit, 1 Commit, 2 Reveal,
    ///         3 Finalize, 4 Closed).
    function phaseOf() internal view returns (uint256) {
        return uint256(rm.phase());
    }

    /// @notice Votes of `auditor` on every update assigned to it; bit `j` of `bits` accepts
    ///         its `j`-th assignment.
    function votesOf(uint256 round, address auditor, uint256 bits)
        internal
        view
        returns (uint256[] memory idx, bool[] memory acc)
    {
        idx = rm.assignmentsOf(round, auditor);
        acc = new bool[](idx.length);
        for (uint256 j = 0; j < idx.length; ++j) {
            acc[j] = (bits >> (j % 256)) & 1 == 1;
        }
    }

    function saltOf(uint256 round, address auditor) internal pure returns (bytes32) {
        return keccak256(abi.encode("bdfl-forge-salt", round, auditor));
    }

    /// @notice Every seat commits to votes from `bits` (rotated per seat).
    function commitAll(uint256 round, uint256 bits) internal {
        address[] memory c = rm.committeeOf(round);
        for (uint256 s = 0; s < c.length; ++s) {
            (uint256[] memory idx, bool[] memory acc) = votesOf(round, c[s], bits >> s);
            bytes32 commitment = rm.voteCommitment(round, c[s], idx, acc, saltOf(round, c[s]));
            vm.prank(c[s]);
            rm.commitVotes(round, commitment);
        }
    }

    function revealAll(uint256 round, uint256 bits) internal {
        address[] memory c = rm.committeeOf(round);
        for (uint256 s = 0; s < c.length; ++s) {
            (uint256[] memory idx, bool[] memory acc) = votesOf(round, c[s], bits >> s);
            vm.prank(c[s]);
            rm.revealVotes(round, idx, acc, saltOf(round, c[s]));
        }
    }

    function finalizeAll(uint256 round) internal {
        while (!rm.finalize(round, MAX_BATCH)) {}
    }

    /// @notice One full round with every member submitting and every seat voting `bits`.
    function playRound(uint256 bits) internal returns (uint256 round) {
        round = rm.currentRound();
        submitAll(round);
        commitAll(round, bits);
        revealAll(round, bits);
        finalizeAll(round);
    }
}
