"""A deterministic scripted backend for fast tests and dry runs (no model involved).

Replies are a pure function of the request, so a rerun produces identical text. Optional
``delay`` (seconds per generate call, also from $CAI_SCRIPTED_DELAY) makes a run slow enough
to be interrupted by a test; ``fail`` makes chosen requests come back as errors.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from typing import Callable, Sequence

from .base import Completion, Request

__all__ = ["ScriptedBackend"]


def _digest(request: Request) -> str:
    body = "\x1e".join(f"{m.role}:{m.content}" for m in request.messages) + "\x1e" + request.continuation
    if request.params.temperature > 0:  # sampling: the seed picks the "sample"
        body += f"\x1eseed={request.params.seed}"
    return hashlib.sha256(body.encode()).hexdigest()


class ScriptedBackend:
    def __init__(
        self,
        id: str = "scripted",
        *,
        reply: Callable[[Request], str] | None = None,
        delay: float | None = None,
        fail: Callable[[Request], bool] | None = None,
    ) -> None:
        self.id = id
        self._reply = reply
        self.delay = float(os.environ.get("CAI_SCRIPTED_DELAY", "0")) if delay is None else delay
        self._fail = fail
        self.calls: list[list[Request]] = []
        """Every batch received, for tests that check batching."""

    def __repr__(self) -> str:
        return f"ScriptedBackend(id={self.id!r})"

    def default_reply(self, request: Request) -> str:
        last = request.messages[-1].content if request.messages else ""
        tag = _digest(request)[:6]
        kind = request.continuation.rstrip(":").lower() or "answer"
        return f"{kind} {tag} to: {' '.join(last.split()[:8])}"

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls.append(list(requests))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for r in requests:
            if self._fail and self._fail(r):
                out.append(Completion("", "error", error="scripted failure"))
                continue
            text = (self._reply or self.default_reply)(r)
            words = text.split()
            if len(words) > r.params.max_new_tokens:
                out.append(Completion(" ".join(words[: r.params.max_new_tokens]), "length", 0, r.params.max_new_tokens))
            else:
                out.append(Completion(text, "stop", 0, len(words)))
        return out

    def choice_logprobs(self, requests: Sequence[Request], choices: Sequence[str]) -> list[dict[str, float]]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            weights = [int(hashlib.sha256((_digest(r) + c).encode()).hexdigest()[:8], 16) + 1 for c in choices]
            total = sum(weights)
            out.append({c: math.log(w / total) for c, w in zip(choices, weights)})
        return out
