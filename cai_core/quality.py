"""Flags for unusable model output. Flagged output is stored and shown, never dropped."""
from __future__ import annotations

from collections import Counter

__all__ = ["output_flags", "FLAGS"]

FLAGS = ("empty", "repetition", "prompt_echo", "truncated", "unchanged", "error")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _repetitive(text: str) -> bool:
    words = text.split()
    if len(words) >= 12:
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(set(grams)) / len(grams) < 0.5:
            return True
    lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 10]
    return bool(lines) and Counter(lines).most_common(1)[0][1] >= 3


def output_flags(
    text: str,
    *,
    finish_reason: str = "stop",
    echo_of: tuple[str, ...] = (),
    previous: str | None = None,
) -> tuple[str, ...]:
    """Which of FLAGS apply. ``echo_of``: texts the output must not merely repeat (the user
    prompt, the request); ``previous``: the answer a revision should change."""
    flags = []
    norm = _norm(text)
    if finish_reason == "error":
        flags.append("error")
    if not norm:
        flags.append("empty")
        return tuple(flags)
    if _repetitive(text):
        flags.append("repetition")
    for source in echo_of:
        s = _norm(source)
        if s and (norm == s or (len(s) >= 20 and norm.startswith(s))):
            flags.append("prompt_echo")
            break
    if finish_reason == "length":
        flags.append("truncated")
    if previous is not None and norm == _norm(previous):
        flags.append("unchanged")
    return tuple(flags)
