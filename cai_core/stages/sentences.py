"""Cutting model text at sentence ends: a revision to its first sentences, an answer the token
cap cut off back to its last complete one. A cut is recorded as finish_reason ``trimmed``."""
from __future__ import annotations

import re

__all__ = ["TRIMMED", "first_sentences", "complete_part"]

_SENTENCE_END = re.compile(r"(?<=[^\s\d])[.!?]+[\"')\]*]*(?=\s|$)")  # not "1." of a list, not "3.5"
TRIMMED = "trimmed"
"""``finish_reason`` of text cut at a sentence end: a revision cut to its first sentences (the
model wrote more), or an answer cut back from where the token cap stopped it."""


def first_sentences(text: str, n: int) -> str | None:
    """The first ``n`` complete sentences of ``text`` (ending in . ! or ?), or None when it has
    none. A 135M model's first sentence holds its objection and reason; what follows tends to
    wander off ("Instead, I'd recommend visiting the nearest hospital to learn about vaccines")."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[min(n, len(ends)) - 1]].strip() if ends and n > 0 else None


def complete_part(text: str, *, keep: float = 0.6) -> str | None:
    """``text`` cut back to its last complete sentence, when that keeps at least ``keep`` of it
    (an answer the token cap cut off mid-sentence); None when it would keep less, or has no
    sentence end."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends and ends[-1] >= keep * len(text.rstrip()) else None
