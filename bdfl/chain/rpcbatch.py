"""Raw JSON-RPC batches in pages: the one loop behind the chain layer's bulk reads.

Many reads a round needs (a view per submission, a nonce per sender, a receipt per transaction,
a block per block number) are sent as JSON-RPC batches of ``page`` requests and read raw,
without web3's formatters, which at N = 1000 cost more than the node's answer. Each caller
decides what a failed batch means to it (decline and let web3 raise, leave for later, raise its
own error); this module only sends, orders and checks the replies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bdfl.errors import BDFLError

#: Requests per JSON-RPC batch: large enough that a 10,000-item read is 20 round trips, small
#: enough that no node's batch limit (geth's default is 1,000) or response size cap is met.
PAGE = 500


class BatchFailed(BDFLError):
    """A page of a batch the node did not answer request by request: one error object for the
    whole batch, or a number of replies other than the requests sent. ``first`` and ``stop`` are
    the page's request indices (``stop`` exclusive); ``error`` what the node said."""

    def __init__(self, first: int, stop: int, error: Any) -> None:
        super().__init__(f"JSON-RPC batch of requests {first}..{stop - 1} failed: {error}")
        self.first = first
        self.stop = stop
        self.error = error


def replies(w3: Any, requests: Sequence[tuple[str, list[Any]]], *, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """The reply of every ``(method, params)`` in ``requests``, in their order, sent in batches
    of ``page``; a page is sent when the previous one has been consumed. Each reply is the raw
    JSON-RPC object (``result`` or ``error``: an error for one request is the caller's to read).
    Raises :class:`BatchFailed` for a page the node did not answer request by request."""
    if page < 1:
        raise ValueError(f"page must be at least 1, got {page}")
    for first in range(0, len(requests), page):
        chunk = requests[first : first + page]
        answer = w3.provider.make_batch_request(list(chunk))
        if not isinstance(answer, list):
            error = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise BatchFailed(first, first + len(chunk), error)
        if len(answer) != len(chunk) or not all(isinstance(r, dict) for r in answer):
            raise BatchFailed(first, first + len(chunk), f"{len(answer)} replies to {len(chunk)} requests")
        # JSON-RPC lets a node answer a batch in any order; web3's HTTP provider sorts by id,
        # other providers need not. Ids must then tell the replies apart: two replies with one
        # id (a faulty node or proxy) would put an answer under another request
        ids = [r.get("id") for r in answer]
        if all(isinstance(i, int) for i in ids):
            if len(set(ids)) != len(ids):
                raise BatchFailed(first, first + len(chunk), "two replies carry the same id")
            answer = sorted(answer, key=lambda r: r["id"])
        yield from answer
