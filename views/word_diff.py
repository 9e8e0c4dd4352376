"""Word-level diff of two texts, for showing a revision against what it revised.

``segments`` splits the pair into unchanged and changed parts that join back to each text
exactly, and stays fast on huge or hostile inputs (cost caps with coarser fallbacks);
:mod:`.render` turns them into escaped HTML (``word_diff_html``) and counts (``diff_stats``).
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from typing import Sequence

__all__ = ["segments", "word_count"]

# Tokens keep every character (whitespace included), so joining them gives the text back
# exactly. Line breaks are their own tokens: a change never has to swallow the indentation
# of the next line, and the fallback for very large inputs can group tokens by line.
_TOKEN = re.compile(r"\r\n|[\r\n]|[^\S\r\n]+|\w+|[^\w\s]")
_NEWLINES = frozenset({"\r\n", "\r", "\n"})

# Cost caps for difflib.SequenceMatcher, whose work grows with the number of (old, new)
# pairs of equal items it has to consider. Words are matched first; the cap (~0.5 s of
# work at worst) is far above a revision of a several-thousand-word answer in real prose,
# but a hostile text built from two alternating words hits it early. Past it, the changed
# region is diffed per line first, and a region still too big is shown as replaced
# wholesale (correct, just coarse) rather than freezing the UI on a 1 MB output.
_WORD_PAIR_BUDGET = 1_000_000
_GAP_DIFF_BUDGET = 250_000  # old x new tokens between two matched words

_Opcode = tuple[str, int, int, int, int]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _diff_opcodes(a: list[str], b: list[str]) -> list[_Opcode]:
    """difflib-style opcodes turning token list ``a`` into ``b``; fast on huge inputs."""
    if a == b:
        return [("equal", 0, len(a), 0, len(b))] if a else []
    # common prefix/suffix first: the usual revision changes a few words of a long answer,
    # and this makes a 1 MB text with a small edit as cheap as the edit itself
    n = min(len(a), len(b))
    pre = 0
    while pre < n and a[pre] == b[pre]:
        pre += 1
    suf = 0
    while suf < n - pre and a[len(a) - 1 - suf] == b[len(b) - 1 - suf]:
        suf += 1
    ops: list[_Opcode] = []
    if pre:
        ops.append(("equal", 0, pre, 0, pre))
    ops += _middle_opcodes(a, b, pre, len(a) - suf, pre, len(b) - suf)
    if suf:
        ops.append(("equal", len(a) - suf, len(a), len(b) - suf, len(b)))
    return ops


def _edge_opcodes(a0: int, a1: int, b0: int, b1: int) -> list[_Opcode] | None:
    # the trivial cases every level shares: nothing, a pure insertion, a pure deletion
    if a0 == a1 and b0 == b1:
        return []
    if a0 == a1:
        return [("insert", a0, a1, b0, b1)]
    if b0 == b1:
        return [("delete", a0, a1, b0, b1)]
    return None


def _middle_opcodes(a, b, a0, a1, b0, b1, *, by_line: bool = True) -> list[_Opcode]:
    edge = _edge_opcodes(a0, a1, b0, b1)
    if edge is not None:
        return edge
    # Match the non-whitespace tokens only. Whitespace tokens (half of all tokens, nearly
    # all equal to " ") would make the matcher several times slower and let a lone space
    # anchor an alignment; they are reconciled afterwards in the gaps between matched words.
    wa = [i for i in range(a0, a1) if not a[i].isspace()]
    wb = [j for j in range(b0, b1) if not b[j].isspace()]
    wb_counts = Counter(b[j] for j in wb)
    if sum(wb_counts[a[i]] for i in wa) <= _WORD_PAIR_BUDGET:
        # autojunk=False: with autojunk, a word in >1 % of a long text ("the", ",") is
        # ignored as a match anchor and the diff of a long answer gets visibly worse
        sm = difflib.SequenceMatcher(None, [a[i] for i in wa], [b[j] for j in wb], autojunk=False)
        out: list[_Opcode] = []
        pa, pb = a0, b0
        for i, j, size in sm.get_matching_blocks():
            for k in range(size):
                ta, tb = wa[i + k], wb[j + k]
                out += _gap_opcodes(a, b, pa, ta, pb, tb)
                out.append(("equal", ta, ta + 1, tb, tb + 1))
                pa, pb = ta + 1, tb + 1
        out += _gap_opcodes(a, b, pa, a1, pb, b1)
        return out
    if not by_line:
        return [("replace", a0, a1, b0, b1)]
    la, lb = _line_spans(a, a0, a1), _line_spans(b, b0, b1)
    keys_a = ["".join(a[s:e]) for s, e in la]
    keys_b = ["".join(b[s:e]) for s, e in lb]
    # whole lines are hashed, so this is cheap; default autojunk keeps pathological
    # repetition (the same line thousands of times) from going quadratic
    out = []
    for t, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys_a, keys_b).get_opcodes():
        # line spans are contiguous, so line k starts where line k-1 ends (or at the end)
        sa0, sa1 = _line_start(la, i1, a1), _line_start(la, i2, a1)
        sb0, sb1 = _line_start(lb, j1, b1), _line_start(lb, j2, b1)
        if t == "equal":
            out.append(("equal", sa0, sa1, sb0, sb1))
        else:
            out += _middle_opcodes(a, b, sa0, sa1, sb0, sb1, by_line=False)
    return out


def _gap_opcodes(a, b, a0, a1, b0, b1) -> list[_Opcode]:
    """Token-level diff of the (small) stretch between two matched words."""
    edge = _edge_opcodes(a0, a1, b0, b1)
    if edge is not None:
        return edge
    if (a1 - a0) * (b1 - b0) > _GAP_DIFF_BUDGET:
        return [("replace", a0, a1, b0, b1)]
    return [(t, i1 + a0, i2 + a0, j1 + b0, j2 + b0) for t, i1, i2, j1, j2 in
            difflib.SequenceMatcher(None, a[a0:a1], b[b0:b1], autojunk=False).get_opcodes()]


def _line_start(spans: Sequence[tuple[int, int]], k: int, end: int) -> int:
    return spans[k][0] if k < len(spans) else end


def _line_spans(tokens: Sequence[str], start: int, end: int) -> list[tuple[int, int]]:
    spans, s = [], start
    for i in range(start, end):
        if tokens[i] in _NEWLINES:
            spans.append((s, i + 1))
            s = i + 1
    if s < end:
        spans.append((s, end))
    return spans


def segments(old: str, new: str) -> list[tuple[bool, str, str]]:
    """The diff as ``(changed, old_part, new_part)``; unchanged parts have old == new."""
    a, b = _tokens(old), _tokens(new)
    # Runs of [changed, a0, a1, b0, b1]. Opcodes are contiguous, so merging two neighbours
    # is just extending the end indices; text is joined once at the end (linear time).
    runs: list[list] = []
    for t, i1, i2, j1, j2 in _diff_opcodes(a, b):
        changed = t != "equal"
        if runs and runs[-1][0] == changed:  # one del + one ins per change, one equal run
            runs[-1][2], runs[-1][4] = i2, j2
        else:
            runs.append([changed, i1, i2, j1, j2])
    # Readability: "the cat sat" -> "a dog stood" reads better as one replacement than as
    # three del/ins pairs separated by single spaces. A whitespace-only equal run (without a
    # line break) between two replacements is folded into one replacement.
    merged: list[list] = []
    k = 0
    while k < len(runs):
        r = runs[k]
        if (not r[0] and merged and merged[-1][0] and k + 1 < len(runs)
                and _is_replacement(merged[-1]) and _is_replacement(runs[k + 1])
                and r[2] - r[1] == 1 and a[r[1]].isspace() and a[r[1]] not in _NEWLINES):
            merged[-1][2], merged[-1][4] = runs[k + 1][2], runs[k + 1][4]
            k += 2
            continue
        merged.append(r)
        k += 1
    return [(c, "".join(a[i1:i2]), "".join(b[j1:j2])) for c, i1, i2, j1, j2 in merged]


def _is_replacement(run: list) -> bool:
    return run[1] < run[2] and run[3] < run[4]


def word_count(text: str) -> int:
    return sum(1 for t in _tokens(text) if not t.isspace())
