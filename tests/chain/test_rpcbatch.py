"""The paged raw JSON-RPC batch loop and each caller's policy for a batch that fails (against a
fake node: what is checked here is paging, order and failure handling, not a chain)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bdfl.chain import fastabi, rpcbatch
from bdfl.chain.connection import Chain
from bdfl.chain.txsender import TxError, resync_nonces, wait_many
from bdfl.errors import BDFLError


class FakeNode:
    """Answers ``make_batch_request`` with ``answer(method, params)`` per request; ``reverse``
    answers each batch in reverse order (JSON-RPC allows any order; ids say which is which);
    ``fail_batch`` (0-based) answers that batch with one error object."""

    def __init__(self, answer: Any, *, reverse: bool = False, fail_batch: int | None = None, drop: bool = False) -> None:
        self.answer, self.reverse, self.fail_batch, self.drop = answer, reverse, fail_batch, drop
        self.batches: list[int] = []

    def make_batch_request(self, requests: list[tuple[str, list[Any]]]) -> Any:
        self.batches.append(len(requests))
        if self.fail_batch == len(self.batches) - 1:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "limit exceeded"}}
        out = [{"jsonrpc": "2.0", "id": i, "result": self.answer(m, p)} for i, (m, p) in enumerate(requests)]
        if self.drop:
            out = out[:-1]
        return out[::-1] if self.reverse else out


def w3_of(node: FakeNode) -> Any:
    return SimpleNamespace(provider=node)


def test_replies_come_in_request_order_in_pages() -> None:
    node = FakeNode(lambda m, p: p[0], reverse=True)
    requests = [("echo", [i]) for i in range(7)]
    assert [r["result"] for r in rpcbatch.replies(w3_of(node), requests, page=3)] == list(range(7))
    assert node.batches == [3, 3, 1]
    assert list(rpcbatch.replies(w3_of(node), [], page=3)) == [] and node.batches == [3, 3, 1]
    with pytest.raises(ValueError, match="page must be at least 1"):
        list(rpcbatch.replies(w3_of(node), requests, page=0))


def test_a_page_is_sent_only_when_the_previous_one_is_consumed() -> None:
    node = FakeNode(lambda m, p: p[0])
    it = rpcbatch.replies(w3_of(node), [("echo", [i]) for i in range(4)], page=2)
    assert next(it)["result"] == 0 and node.batches == [2]
    assert [r["result"] for r in it] == [1, 2, 3] and node.batches == [2, 2]


def test_a_batch_answered_with_one_error_or_too_few_replies_names_its_page() -> None:
    node = FakeNode(lambda m, p: p[0], fail_batch=1)
    it = rpcbatch.replies(w3_of(node), [("echo", [i]) for i in range(5)], page=2)
    assert [next(it)["result"], next(it)["result"]] == [0, 1]
    with pytest.raises(rpcbatch.BatchFailed, match=r"requests 2\.\.3 failed: .*limit exceeded") as info:
        next(it)
    assert (info.value.first, info.value.stop) == (2, 4)
    with pytest.raises(rpcbatch.BatchFailed, match="1 replies to 2 requests"):
        list(rpcbatch.replies(w3_of(FakeNode(lambda m, p: 0, drop=True)), [("x", []), ("x", [])]))


def test_replies_that_share_an_id_are_refused_not_matched_by_position() -> None:
    """A faulty node (or proxy) answering two requests with one id: sorting by id would hand one
    request another's answer, so the page fails instead."""
    node = FakeNode(lambda m, p: p[0])
    answer = node.make_batch_request
    node.make_batch_request = lambda reqs: [{**r, "id": 0} for r in answer(reqs)]  # type: ignore[method-assign]
    with pytest.raises(rpcbatch.BatchFailed, match="two replies carry the same id"):
        list(rpcbatch.replies(w3_of(node), [("echo", [1]), ("echo", [2])]))


def test_each_caller_keeps_its_own_policy_for_a_failed_batch() -> None:
    # views: decline (None), so the caller makes web3's calls, which raise the decoded revert
    abi = [{"type": "function", "name": "f", "inputs": [{"name": "x", "type": "uint256"}],
            "outputs": [{"name": "", "type": "uint256"}], "stateMutability": "view"}]
    word = lambda m, p: "0x" + (int(p[0]["data"][-64:], 16) * 2).to_bytes(32, "big").hex()  # noqa: E731
    assert fastabi.call_many(w3_of(FakeNode(word, reverse=True)), "0x" + "11" * 20, abi, "f", [[1], [2], [3]], page=2) == [2, 4, 6]
    assert fastabi.call_many(w3_of(FakeNode(word, fail_batch=1)), "0x" + "11" * 20, abi, "f", [[1], [2], [3]], page=2) is None

    # block usage: raise, naming the blocks of the failed page
    block = lambda m, p: {"transactions": ["0x01"] * int(p[0], 16), "gasUsed": hex(1000)}  # noqa: E731
    chain = Chain("http://127.0.0.1:1")
    chain._w3 = w3_of(FakeNode(block, reverse=True))
    assert chain.block_usage(10, 14, page=2) == (10 + 11 + 12 + 13 + 14, 5000)
    chain._w3 = w3_of(FakeNode(block, fail_batch=1))
    with pytest.raises(BDFLError, match=r"reading blocks 12\.\.13 failed"):
        chain.block_usage(10, 14, page=2)

    # nonces: what was read is kept, the rest resync one by one at their first transaction
    node = FakeNode(lambda m, p: hex(int(p[0][-2:], 16)), fail_batch=1)
    senders = [SimpleNamespace(w3=w3_of(node), address=f"0x{'00' * 19}{i:02x}", _nonce=None) for i in range(5)]
    resync_nonces(senders, page=2)  # type: ignore[arg-type]
    assert [s._nonce for s in senders] == [0, 1, None, None, None]

    # receipts: raise, as a transaction error
    node = FakeNode(lambda m, p: None, fail_batch=0)
    sender = SimpleNamespace(w3=w3_of(node))
    with pytest.raises(TxError, match="receipt batch failed: .*limit exceeded"):
        wait_many([(sender, b"\x01" * 32)], timeout=1)  # type: ignore[list-item]
