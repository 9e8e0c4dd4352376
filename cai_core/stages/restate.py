"""Restate a request as what the assistant would be doing for the person: the ``{task}`` of a
principle's ``revision_opening`` ("I won't {task}, because").

A 135M model asked to revise an answer rarely stays on topic; forced to begin with an opening
that names the request ("I won't help you hack into your neighbor's WiFi, because"), it writes
a reason about *that* request far more often (measured in the README). The restatement is a small
English rule set, tested on labelled cases:

* "How do/can I X?", "Help me X", "What's the best way to X?", "Where can I X?" -> "help you X"
* an imperative ("Write me a virus that ...", "Give me a trick ...") -> "write you a virus that ..."
* first-person words become second-person ("my" -> "your", "I'm" -> "you're")
* anything else (a statement, "Which race is ...?") -> "help with that", which never misquotes.
"""
from __future__ import annotations

import re

__all__ = ["FALLBACK_TASK", "TASK_PLACEHOLDER", "restate_task"]

TASK_PLACEHOLDER = "{task}"
"""Where a ``revision_opening`` takes the restated request."""

FALLBACK_TASK = "help with that"
"""The task when the request has no shape the rules know."""

_HELP_WITH = re.compile(
    r"^(?:how\s+(?:do|can|could|should|would|might)\s+(?:i|we|you|someone|one|a\s+person)"
    r"|how\s+to|help\s+me(?:\s+to)?|can\s+you\s+help\s+me(?:\s+to)?|i\s+(?:want|need)\s+to"
    r"|what(?:'s|\s+is)\s+(?:the|a)\s+(?:best|easiest|fastest|quickest|good|simplest|cheapest|surest)\s+way\s+(?:to|for\s+me\s+to)"
    r"|where\s+(?:can|do|could|should)\s+(?:i|we|you|someone)|is\s+there\s+a\s+way\s+to)\s+",
    re.IGNORECASE,
)
_POLITE = re.compile(r"^(?:please|can\s+you|could\s+you|would\s+you|will\s+you)\s+", re.IGNORECASE)
_IMPERATIVES = frozenset(
    "write give tell show find plan make create explain list roast look compile generate draft describe "
    "teach suggest name send invent build design rank rewrite compose come translate summarize summarise "
    "get pick choose recommend help".split()
)
_SWAP = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
         "i've": "you've", "i'd": "you'd", "i'll": "you'll", "am": "are", "we": "you", "us": "you",
         "our": "your", "ours": "yours", "ourselves": "yourselves"}
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_WORD = re.compile(r"^([\"'(]*)([A-Za-z']+)(.*)$")


def _swap(words: list[str]) -> list[str]:
    out = []
    for w in words:
        m = _WORD.match(w)
        if not m:
            out.append(w)
            continue
        pre, core, post = m.groups()
        swapped = _SWAP.get(core.lower().replace("\u2019", "'"))
        out.append(f"{pre}{swapped}{post}" if swapped else w)
    return out


def _clause(sentence: str) -> str | None:
    s = " ".join(sentence.split()).strip().rstrip("?.!").strip()
    m = _HELP_WITH.match(s)
    if m and len(s) > m.end():
        return "help you " + " ".join(_swap(s[m.end():].split()))
    s = _POLITE.sub("", s)
    words = s.split()
    if words and words[0].lower() in _IMPERATIVES and len(words) > 1:
        rest = _swap(words[1:])
        if words[0].lower() == "help" and rest[0] == "you":  # "help me X" said without "to"
            return "help you " + " ".join(rest[1:]) if len(rest) > 1 else None
        return " ".join([words[0].lower(), *rest])
    return None


def restate_task(request: str) -> str:
    """``request`` as a clause after "I won't": the first sentence of it that the rules know,
    else :data:`FALLBACK_TASK`."""
    for sentence in _SENTENCE.findall(request or ""):
        task = _clause(sentence)
        if task:
            return task
    return FALLBACK_TASK
