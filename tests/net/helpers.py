"""Helpers shared by the net tests: raw-socket reads and byte-level mutation for fuzzing."""

from __future__ import annotations

import socket


def read_all(s: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection or the socket times out."""
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def mutate(base: bytes, edits: list[tuple[int, int, str]]) -> bytes:
    """Apply fuzzing edits ``(position, value, op)`` to ``base``: ``x`` xor a byte, ``i`` insert
    a byte, ``d`` delete a byte, ``r`` repeat a slice of up to 39 bytes. Positions wrap."""
    b = bytearray(base)
    for pos, val, op in edits:
        pos %= max(len(b), 1)
        if op == "x" and b:
            b[pos] ^= val or 1
        elif op == "i":
            b.insert(pos, val)
        elif op == "d" and b:
            del b[pos]
        elif op == "r":  # duplicated headers, doubled separators
            b[pos:pos] = b[pos:pos + val % 40]
    return bytes(b)
