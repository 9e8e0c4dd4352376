"""Keys/values of decoded rows kept for later calls that extend them (see :mod:`.engine`)."""
from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    """Keys/values of recently decoded rows, reused by later calls that extend them.

    The SL stage's revision prompt is its critique prompt plus the critique: with the
    critique rows' keys/values kept (shared prefix once, each row's own tokens), a revision
    row computes only what follows. Bounded by bytes; the oldest rows go first. Rows are
    found by (prefix, first HEAD tokens of the row)."""

    HEAD = 8

    def __init__(self, max_bytes: int = 768 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.prefixes: dict[tuple[int, ...], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.rows: dict[tuple, list[tuple[tuple[int, ...], list[torch.Tensor], list[torch.Tensor]]]] = {}
        self.bytes = 0
        self._order: list[tuple[tuple, tuple[int, ...]]] = []
        self._per_prefix: dict[tuple[int, ...], int] = {}

    @staticmethod
    def _size(ts: list[torch.Tensor]) -> int:
        return sum(t.numel() * t.element_size() for t in ts)

    def put_prefix(self, prefix: tuple[int, ...], k: list[torch.Tensor], v: list[torch.Tensor]) -> None:
        if prefix not in self.prefixes:
            self.prefixes[prefix] = (k, v)
            self.bytes += self._size(k) + self._size(v)

    def put_row(self, prefix: tuple[int, ...], tokens: tuple[int, ...], k: list[torch.Tensor], v: list[torch.Tensor]) -> None:
        slot = (prefix, tokens[: self.HEAD])
        self.rows.setdefault(slot, []).append((tokens, k, v))
        self._per_prefix[prefix] = self._per_prefix.get(prefix, 0) + 1
        self._order.append((slot, tokens))
        self.bytes += self._size(k) + self._size(v)
        while self.bytes > self.max_bytes and self._order:
            self._evict(*self._order.pop(0))

    def _evict(self, slot: tuple, tokens: tuple[int, ...]) -> None:
        entries = self.rows.get(slot, [])
        for k, e in enumerate(entries):
            if e[0] == tokens:
                self.bytes -= self._size(e[1]) + self._size(e[2])
                del entries[k]
                break
        if not entries:
            self.rows.pop(slot, None)
        prefix = slot[0]
        self._per_prefix[prefix] -= 1
        if self._per_prefix[prefix] <= 0:  # the prefix's last row went: the prefix goes too
            del self._per_prefix[prefix]
            if prefix in self.prefixes:
                k0, v0 = self.prefixes.pop(prefix)
                self.bytes -= self._size(k0) + self._size(v0)

    def best_row(self, prefix: tuple[int, ...], row: list[int]):
        """The cached row sharing the longest start with ``row`` (leaving it at least one
        token to compute, and at least 16 shared): (shared length, keys, values), or None."""
        best, found = 0, None
        for toks, k, v in self.rows.get((prefix, tuple(row[: self.HEAD])), ()):
            n = min(len(toks), len(row) - 1)
            m = 0
            while m < n and toks[m] == row[m]:
                m += 1
            if m > best:
                best, found = m, (k, v)
        return (best, *found) if found is not None and best >= 16 else None
