"""The registry's endpoint rule, off chain (``PeerRegistry._checkEndpoint``).

A member's endpoint is the URL every auditor fetches its updates from, so the registry
accepts only ``http://`` or ``https://`` (lower case), a host (a name or IPv4 address of
``[A-Za-z0-9.-]``, or a bracketed IPv6 literal of ``[0-9A-Fa-f:.]``), a port 1..65535 and
an optional path of RFC 3986 path characters other than ``@``: no userinfo, no query, no
fragment, at most :data:`MAX_ENDPOINT_BYTES` bytes. :func:`endpoint_rule` names the rule a
URL breaks exactly as the contract's ``EndpointInvalid(rule)`` error does, so a peer can
check its URL before sending a transaction (docs/protocol.md, "Endpoints").
"""

from __future__ import annotations

#: Longest endpoint URL the registry accepts (PeerRegistry.MAX_ENDPOINT_BYTES).
MAX_ENDPOINT_BYTES = 256
#: The rules, as named by the contract's ``EndpointInvalid`` error.
RULES = ("length", "scheme", "userinfo", "host", "port", "query", "fragment", "path")

_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_PATH_MARKS = frozenset(b"-._~/%!$&'()*+,;=:")


def endpoint_rule(url: str) -> str | None:
    """The rule ``url`` breaks (one of :data:`RULES`), or None when the registry accepts it.
    Same checks in the same order as the contract, on the UTF-8 bytes."""
    b = url.encode()
    n = len(b)
    if n == 0 or n > MAX_ENDPOINT_BYTES:
        return "length"
    if n > 7 and b.startswith(b"http://"):
        i = 7
    elif n > 8 and b.startswith(b"https://"):
        i = 8
    else:
        return "scheme"
    end = i  # the authority runs to the first '/'
    while end < n and b[end] != ord("/"):
        c = b[end]
        if c == ord("@"):
            return "userinfo"
        if c == ord("?"):
            return "query"
        if c == ord("#"):
            return "fragment"
        end += 1
    j = i
    if j < end and b[j] == ord("["):
        j += 1
        while j < end and b[j] != ord("]"):
            if b[j] not in _HEX and b[j] not in b":.":
                return "host"
            j += 1
        if j == end or j == i + 1:  # unclosed or empty brackets
            return "host"
        j += 1
    else:
        while j < end and b[j] != ord(":"):
            if b[j] not in _ALNUM and b[j] not in b".-":
                return "host"
            j += 1
        if j == i:
            return "host"
    if j == end or b[j] != ord(":"):
        return "port"
    j += 1
    digits = b[j:end]
    if not 0 < len(digits) <= 5 or any(not 0x30 <= c <= 0x39 for c in digits) or not 0 < int(digits) <= 65535:
        return "port"
    for c in b[end:]:
        if c == ord("?"):
            return "query"
        if c == ord("#"):
            return "fragment"
        if c not in _ALNUM and c not in _PATH_MARKS:
            return "path"
    return None
