"""Restate a request as what the assistant would be doing for the person: the ``{task}`` of a
principle's ``revision_opening`` ("I won't {task}, because").

A 135M model asked to revise an answer rarely stays on topic; forced to begin with an opening
that names the request ("I won't help you hack into your neighbor's WiFi, because"), it writes
a reason about *that* request far more often (measured in the README). The restatement is a small
English rule set, tested on labelled cases:

* "How do/can I X?", "Help me X", "What's the best way to X?", "Where can I X?" -> "help you X"
* an imperative ("Write me a virus that ...", "Give me a trick ...") -> "write you a virus that ..."
* a wh-question -> "tell you" + the question as a clause: "What can I X?" -> "tell you what you
  can X", "How many pills would it take?" -> "tell you how many pills it would take", "What's the
  most painless way to X?" -> "tell you the most painless way to X", "Which pill is strongest?"
  -> "tell you which pill is strongest"
* first-person words become second-person ("my" -> "your", "I'm" -> "you're")
* anything else (a statement, "Why are they ...?", a yes/no question) -> "help with that", which
  never misquotes.
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
_WH = r"(?:what|which|where|when|who|whom|how\s+(?:much|many|hard|long|far|often|strong|big|fast|high))"
# "What can I throw ...", "How many pills would it take ...": an auxiliary before a pronoun subject
_WH_INVERTED = re.compile(
    rf"^({_WH}(?:\s+[^\s]+){{0,6}}?)\s+(can|could|should|would|will|do|am|is|are)\s+(i|we|you|it|someone)(?:\s+(\S.*))?$",
    re.IGNORECASE,
)
# "Where is the nearest gun shop": a copula before a noun phrase
_WH_COPULA = re.compile(r"^(where|what|who|when)\s+(is|are)\s+((?:the|a|an|my|your|his|her|their|our)\s+\S.*)$",
                        re.IGNORECASE)
# "What's the most painless way to ...": the thing asked for
_WHAT_IS_THE = re.compile(r"^what(?:'s|\s+is|\s+are)\s+((?:the|a|an|some)\s+\S.*)$", re.IGNORECASE)
# "Which pill is strongest", "What poison would be hardest to detect": the wh-word is the subject
_WH_SUBJECT = re.compile(
    rf"^{_WH}\s+(?!(?:do|does|did|can|could|should|would|will|am|is|are|i|we|you)\b)\S+\s+\S.*$"
    r"|^(?:what|who|which)\s+(?:would|could|will|can)\s+\S.*$", re.IGNORECASE)
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
    return _wh_clause(s)


def _wh_clause(s: str) -> str | None:
    """A wh-question as what the assistant would tell: "tell you what you can X"."""
    s = s[:1].lower() + s[1:]
    m = _WH_INVERTED.match(s)
    if m:  # "what can I X" -> "what you can X"; "what do I X" -> "what you X"
        wh, aux, subj, rest = m.groups()
        aux = {"do": "", "am": "are"}.get(aux.lower(), aux.lower())
        words = [*wh.split(), _SWAP.get(subj.lower(), subj.lower()), *aux.split(), *(rest or "").split()]
    elif m := _WHAT_IS_THE.match(s):  # "what's the best X" -> "the best X"
        words = m.group(1).split()
    elif (m := _WH_COPULA.match(s)) and not re.search(r"\w+ing\b", m.group(3)):  # "where is the shop" ->
        wh, aux, np = m.groups()  # "where the shop is" ("where is my ex living": not a noun phrase)
        words = [wh.lower(), *np.split(), aux.lower()]
    elif _WH_SUBJECT.match(s):  # "which pill is strongest" as it is
        words = s.split()
    else:
        return None
    return "tell you " + " ".join(_swap(words))


def restate_task(request: str) -> str:
    """``request`` as a clause after "I won't": the first sentence of it that the rules know,
    else :data:`FALLBACK_TASK`."""
    for sentence in _SENTENCE.findall(request or ""):
        task = _clause(sentence)
        if task:
            return task
    return FALLBACK_TASK
