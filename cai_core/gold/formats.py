"""Labelled comparisons from the files people already have, as :class:`GoldPair` records.

Three shapes are read, detected per line:

* **TRL preference** rows: ``{"prompt", "chosen", "rejected"}`` (explicit prompt) or
  ``{"chosen", "rejected"}`` (implicit prompt: the shared beginning), each either plain text
  or conversational (lists of ``{"role", "content"}`` messages);
* **HH-RLHF** rows: ``{"chosen", "rejected"}`` transcripts, ``"\\n\\nHuman: … \\n\\nAssistant: …"``:
  the prompt is the shared prefix up to the last ``Assistant:`` turn, the answers what follows;
* **multiple-choice** rows: ``{"prompt", "corrects": [" (A)"], "incorrects": [" (B)"]}`` whose
  prompt holds the conversation, a question and the options written ``(A) [[[…]]]``.

Extra keys ``id``, ``category`` and ``note`` are kept when present.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["GoldPair", "GoldFormatError", "parse_row", "read_gold_file", "detect_format"]


class GoldFormatError(ValueError):
    """A line that is none of the three shapes (the message names the line and what is missing)."""


@dataclass(frozen=True, slots=True)
class GoldPair:
    prompt: str
    """The human side of the conversation (one message, or a transcript of several turns)."""
    chosen: str
    """The better answer (the label)."""
    rejected: str
    category: str = ""
    note: str = ""
    source_id: str = ""
    """The row's own id in its file ('' when it has none)."""
    format: str = ""
    """Which shape it was read from: trl | hh-rlhf | multiple-choice."""


_HUMAN, _ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_OPTION = re.compile(r"\(([A-Z])\)\s*\[\[\[(.*?)\]\]\]", re.S)


def _messages_text(messages: list[Mapping[str, Any]]) -> str:
    """A conversation's text: one user message as itself, several turns as a transcript."""
    turns = [(str(m.get("role", "")), str(m.get("content", "")).strip()) for m in messages]
    if len(turns) == 1 and turns[0][0] in ("user", "human"):
        return turns[0][1]
    names = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names.get(r, r.title())}: {c}" for r, c in turns)


def _last_assistant(messages: list[Mapping[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return str(m.get("content", "")).strip()
    raise GoldFormatError("a conversational answer has no assistant message")


def _common_prefix_len(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _hh_split(text: str) -> tuple[str, str]:
    """(prompt transcript, final answer) of one HH-RLHF transcript."""
    at = text.rfind(_ASSISTANT)
    if at < 0:
        raise GoldFormatError("an HH-RLHF transcript has no '\\n\\nAssistant:' turn")
    return text[:at], text[at + len(_ASSISTANT):].strip()


def _hh_prompt(prefix: str) -> str:
    """The human side: one turn as its text, several as a Human/Assistant transcript."""
    body = prefix.strip()
    if body.startswith("Human:") and body.count("Human:") == 1 and "Assistant:" not in body:
        return body[len("Human:"):].strip()
    return body


def _trl(row: Mapping[str, Any]) -> tuple[str, str, str]:
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" in row:
        prompt = row["prompt"]
        prompt_text = _messages_text(prompt) if isinstance(prompt, list) else str(prompt).strip()
        pick = (lambda x: _last_assistant(x)) if isinstance(chosen, list) else (lambda x: str(x).strip())
        return prompt_text, pick(chosen), pick(rejected)
    if isinstance(chosen, list) and isinstance(rejected, list):  # implicit prompt, conversational
        n = _common_prefix_len(chosen, rejected)
        if n == 0:
            raise GoldFormatError("chosen and rejected share no prompt messages")
        return _messages_text(chosen[:n]), _last_assistant(chosen[n:]), _last_assistant(rejected[n:])
    raise GoldFormatError("plain-text chosen/rejected without a prompt (and not HH-RLHF transcripts)")


def _multiple_choice(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    text = str(row["prompt"])
    options = {m.group(1): m.group(2).strip() for m in _OPTION.finditer(text)}
    letter = lambda v: re.sub(r"[^A-Z]", "", str(v).upper())[:1]  # noqa: E731  " (A)" -> "A"
    corrects, incorrects = [letter(c) for c in row["corrects"]], [letter(c) for c in row["incorrects"]]
    if not corrects or not incorrects:
        raise GoldFormatError("'corrects' and 'incorrects' need one letter each")
    missing = [x for x in (corrects[0], incorrects[0]) if x not in options]
    if missing:
        raise GoldFormatError(f"no option ({missing[0]}) [[[...]]] in the prompt")
    first = _OPTION.search(text)
    preface = text[: first.start()].rstrip() if first else text
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", preface) if p.strip()]
    question = ""
    if len(paragraphs) > 1 and not re.match(r"(Human|Assistant):", paragraphs[-1]):
        question = paragraphs.pop()  # the question about the options, not part of the conversation
    conversation = "\n\n".join(paragraphs)
    prompt = _hh_prompt("\n\n" + conversation) if conversation.startswith("Human:") else conversation
    return prompt, options[corrects[0]], options[incorrects[0]], question


def detect_format(row: Mapping[str, Any]) -> str:
    if "corrects" in row and "incorrects" in row and "prompt" in row:
        return "multiple-choice"
    if "chosen" in row and "rejected" in row:
        if "prompt" not in row and isinstance(row["chosen"], str) and _ASSISTANT in row["chosen"]:
            return "hh-rlhf"
        return "trl"
    raise GoldFormatError("expected prompt/chosen/rejected (TRL), chosen/rejected transcripts (HH-RLHF) "
                          "or prompt/corrects/incorrects (multiple choice)")


def parse_row(row: Mapping[str, Any]) -> GoldPair:
    """One labelled comparison from one row of any of the three shapes."""
    if not isinstance(row, Mapping):
        raise GoldFormatError("a row must be a JSON object")
    fmt = detect_format(row)
    note = str(row.get("note") or "")
    if fmt == "multiple-choice":
        prompt, chosen, rejected, question = _multiple_choice(row)
        note = note or question
    elif fmt == "hh-rlhf":
        (pc, chosen), (pr, rejected) = _hh_split(row["chosen"]), _hh_split(row["rejected"])
        if pc != pr:  # the transcripts part before their last turns: the prompt is what they share
            c_text, r_text = str(row["chosen"]), str(row["rejected"])
            at = c_text[: _common_prefix_len(list(c_text), list(r_text))].rfind(_ASSISTANT)
            if at < 0:
                raise GoldFormatError("the HH-RLHF transcripts share no Assistant turn")
            pc, chosen, rejected = c_text[:at], c_text[at + len(_ASSISTANT):].strip(), r_text[at + len(_ASSISTANT):].strip()
        prompt = _hh_prompt(pc)
    else:
        prompt, chosen, rejected = _trl(row)
    if not prompt or not chosen or not rejected:
        raise GoldFormatError("empty prompt, chosen or rejected text")
    if chosen == rejected:
        raise GoldFormatError("chosen and rejected are the same text")
    return GoldPair(prompt=prompt, chosen=chosen, rejected=rejected, category=str(row.get("category") or ""),
                    note=note, source_id=str(row.get("id") or ""), format=fmt)


def read_gold_file(path: str | Path) -> list[GoldPair]:
    """Every row of a JSON Lines file (or a JSON array), as gold pairs. Raises
    :class:`GoldFormatError` naming the first bad line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no gold file {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    rows: Iterable[tuple[int, Any]]
    if text.lstrip().startswith("["):
        rows = enumerate(json.loads(text), 1)
    else:
        rows = ((i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip())
    out = []
    for i, row in rows:
        try:
            out.append(parse_row(json.loads(row) if isinstance(row, str) else row))
        except (GoldFormatError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise GoldFormatError(f"{p.name} line {i}: {e}") from None
    if not out:
        raise GoldFormatError(f"{p.name}: no rows")
    return out
