"""Deterministic ids: the same inputs always give the same id, which is what makes a resumed
run idempotent (a record that exists is never written twice)."""
from __future__ import annotations

import hashlib

__all__ = ["stable_id"]


def stable_id(*parts: object, n: int = 16) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:n]
