"""bdfl.chain.fastabi: the calldata and the decoded return values are exactly web3's."""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractLogicError

from bdfl.chain import fastabi

from .helpers import Env


def test_every_signed_call_encodes_the_bytes_web3_builds(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transaction of a round (join, submit, commit, reveal, advance, finalize) signed
    with fastabi's calldata: each one checked against web3's build_transaction."""
    seen: dict[str, int] = {}
    real = fastabi.calldata

    def checked(call: Any) -> bytes | None:
        data = real(call)
        assert data is not None, call.fn_name
        web3_data = call.build_transaction({"from": env.deployer.address, "gas": 10_000_000, "nonce": 0, "chainId": 1,
                                            "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1})["data"]
        assert "0x" + data.hex() == web3_data, call.fn_name
        seen[call.fn_name] = seen.get(call.fn_name, 0) + 1
        return data

    monkeypatch.setattr(fastabi, "calldata", checked)
    peers = env.join(env.peers[:6])
    env.full_round(peers, bad={peers[-1].address})
    assert {"join", "submitUpdate", "commitVotes", "revealVotes"} <= set(seen) and len(seen) >= 5, seen
    # what fastabi declines goes to web3 (arguments eth_abi refuses as given: web3 normalises them)
    assert real(env.token.functions.approve(env.rounds.address.lower()[2:], 1)) is None


def test_reads_decode_to_web3_values_and_reverts_fall_back(env: Env) -> None:
    """Each read the protocol client decodes itself gives the value (and type) web3's call gives;
    a reverting call declines here and raises web3's decoded error through the client."""
    peers = env.join(env.peers[:6])
    r = env.full_round(peers, bad={peers[-1].address})
    rounds, registry, w3 = env.rounds, env.registry, env.w3
    addrs = [p.address for p in peers]
    committee = rounds.functions.committeeOf(r).call()
    cases = [
        (rounds, "currentRound", ()), (rounds, "roundInfo", (r,)), (rounds, "committeeOf", (r,)),
        (rounds, "submissionsSlice", (r, 0, 250)), (rounds, "submissionsSlice", (r, 2, 3)),
        (rounds, "assignmentsOf", (r, committee[0])), (registry, "peerStates", (addrs,)),
        (registry, "endpointOf", (addrs[0],)), (rounds, "approvedUpdates", (r,)),
    ]
    for contract, name, args in cases:
        want = getattr(contract.functions, name)(*args).call()
        got = fastabi.call(w3, contract, name, *args)
        assert got == want and type(got) is type(want), name
        assert repr(got) == repr(want), name  # nested types too (tuples vs lists, checksummed addresses)
    many = fastabi.call_many(w3, registry.address, registry.abi, "endpointOf", [(a,) for a in addrs], page=4)
    assert many == [registry.functions.endpointOf(a).call() for a in addrs]
    # a revert (an index past the round's submissions): None here, web3's error through the client
    assert fastabi.call(w3, rounds, "submission", r, 99) is None
    with pytest.raises(ContractLogicError):
        env.deployer._read(rounds, "submission", r, 99)


def test_a_relayed_batch_with_struct_entries_encodes_as_web3(env: Env) -> None:
    """submitBatch's tuple[] argument (the relay's signed entries) through fastabi == web3."""
    entries = [(bytes([i + 1]) * 32, 10 + i, bytes([0xAA]) * 32, bytes(32), bytes([2]) * 32, bytes([3]) * 32)
               for i in range(3)]
    call = env.rounds.functions.submitBatch(1, entries)
    tx = {"from": env.deployer.address, "gas": 10_000_000, "nonce": 0, "chainId": 1, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1}
    data = fastabi.calldata(call)
    assert data is not None and "0x" + data.hex() == call.build_transaction(tx)["data"]


def test_a_view_of_a_contract_that_is_gone_says_so(env: Env) -> None:
    """A devnet restarted empty under running peers: the view's empty answer was decoded into an
    InsufficientDataBytes traceback on every peer (an outside probe); now one error with its fix."""
    nowhere = "0x" + "12" * 20
    gone = env.w3.eth.contract(address=env.w3.to_checksum_address(nowhere), abi=env.rounds.abi)
    with pytest.raises(fastabi.NoContractCode, match="no longer holds the deployment: no contract code at") as err:
        fastabi.call(env.w3, gone, "currentRound")
    assert "deploy again" in str(err.value)
    assert fastabi.call(env.w3, env.rounds, "currentRound") is not None  # a contract with code: read as before
