"""Safe rendering of untrusted text (model output, prompt files) for the Gradio app.

Every string that reaches these helpers may be hostile: a model can be prompted into
writing ``<script>``, and a prompt file is whatever someone put on disk. The rule is that
nothing from a model or a prompt file ever becomes markup: all of it is escaped, and the
only tags in the output are the few this module writes itself (``div``, ``span``,
``strong``, ``del``, ``ins``, ``br``), with only ``class`` and ``style`` attributes whose
values are constants of this module (or an escaped, caller-supplied class name). No
helper emits ``href``, ``src`` or ``on*`` attributes, so there is nothing a payload could
steer even if escaping were bypassed.

The ``*_html`` helpers are for ``gr.HTML``; :func:`markdown_safe` is for the places that
must use ``gr.Markdown`` (it produces inert Markdown, not HTML).

Round-trip guarantee (tested): parsing a helper's output with an HTML parser and reading
the text content (``<br>`` read as a newline) gives back exactly the input string, so
what the person sees is what the model wrote — including ``&lt;script&gt;``, which is
shown literally rather than decoded into ``<script>``.
"""
from __future__ import annotations

import difflib
import html
import math
import re
from collections import Counter
from typing import Iterable, Sequence

__all__ = [
    "escape",
    "text_block_html",
    "word_diff_html",
    "diff_stats",
    "side_by_side_html",
    "verdict_badge_html",
    "markdown_safe",
]


# -- escaping ---------------------------------------------------------------------------------------
def _as_text(text: object) -> str:
    # Callers pass fields straight from the store, where a missing answer is None; showing
    # nothing is better than the string "None" or a crash in the middle of a page.
    if text is None:
        return ""
    return text if isinstance(text, str) else str(text)


def escape(text: object) -> str:
    """HTML-escape ``& < > " '`` and the backtick; newlines are left as they are.

    * quotes are escaped so the result is also safe inside a quoted attribute value;
    * the backtick because old IE treated it as an attribute quote, and so the text cannot
      open a code span if a caller ever passes the result through a Markdown renderer;
    * a carriage return becomes ``&#13;`` because an HTML parser normalises raw CR and
      CRLF to LF before anything else happens, so a literal CR would not survive the trip
      (a character reference is decoded after that normalisation and keeps the text exact).

    Everything else (NUL, RTL overrides, any Unicode) is inert once ``<`` and ``&`` are
    escaped, so it passes through unchanged and the round trip stays exact.
    """
    return (html.escape(_as_text(text), quote=True)
            .replace("`", "&#96;")
            .replace("\r", "&#13;"))


def _text_html(text: str) -> str:
    # The *_html helpers show newlines as <br> (not only via white-space:pre-wrap) so that
    # line structure survives even where a sanitiser or a theme drops the inline style.
    return escape(text).replace("\n", "<br>")


# Inline styles are constants so no untrusted byte can ever land inside an attribute other
# than the escaped text of a class name. They make the output readable without a stylesheet.
_PRE = "white-space:pre-wrap;overflow-wrap:anywhere"
# unicode-bidi:isolate on inline pieces keeps an unterminated RTL/LTR override inside a
# label, badge or diff fragment from visually reordering the text that follows it (the
# "trojan source" trick), so what follows a piece is displayed in its real order.
_ISO = "unicode-bidi:isolate"
_FLAG_STYLE = (f"{_ISO};display:inline-block;margin-left:6px;padding:0 6px;border-radius:8px;"
               "font-size:0.8em;background:#fff3cd;color:#6d4c00;border:1px solid #e0c060")
_DEL_STYLE = f"{_ISO};background:#ffebe9;color:#82071e;text-decoration:line-through"
_INS_STYLE = f"{_ISO};background:#dafbe1;color:#116329;text-decoration:none"


# -- text blocks ------------------------------------------------------------------------------------
def text_block_html(
    text: object,
    *,
    label: str | None = None,
    flags: Sequence[str] | None = (),
    css_class: str = "cai-text",
) -> str:
    """An answer / critique / revision as an escaped, pre-wrapped block.

    Without a label or flags this is exactly ``<div class="cai-text" style="white-space:
    pre-wrap…">…</div>``; with them, the block is preceded by a header (``<strong>`` label,
    ``<span class="cai-flag">`` badges) and both are wrapped in ``<div class="cai-block">``.
    """
    body = f'<div class="{escape(css_class)}" style="{_PRE}">{_text_html(_as_text(text))}</div>'
    flags = [f for f in (flags or ()) if f is not None and _as_text(f) != ""]
    if label is None and not flags:
        return body
    head = []
    if label is not None:
        head.append(f'<strong class="cai-label" style="{_ISO}">{_text_html(label)}</strong>')
    head += [f'<span class="cai-flag" style="{_FLAG_STYLE}">{_text_html(f)}</span>' for f in flags]
    return f'<div class="cai-block"><div class="cai-head">{"".join(head)}</div>{body}</div>'


def side_by_side_html(items: Iterable[tuple[str, str]]) -> str:
    """Columns ``(title, text)`` in a flex row (A/B pairs, model comparisons).

    Columns share the width equally and wrap under each other below ~16em each;
    ``min-width:0`` (with the block's ``overflow-wrap:anywhere``) keeps one very long
    unbroken token from pushing the other column off screen.
    """
    cols = []
    for title, text in items:
        cols.append('<div class="cai-col" style="flex:1 1 16em;min-width:0">'
                    f"{text_block_html(text, label=_as_text(title))}</div>")
    return ('<div class="cai-cols" style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
            f'{"".join(cols)}</div>')


# -- verdict badge ----------------------------------------------------------------------------------
_BADGE_COLOURS = {"A": "#1565c0", "B": "#6a1b9a", "TIE": "#616161"}


def verdict_badge_html(choice: str | None, p: float | None) -> str:
    """A small badge: ``A 62 %``, ``B 71 %``, ``tie`` or ``unparsed``.

    ``p`` is P(answer A is better) (``p_a`` in the store, which is what the views pass), so
    for a B choice the badge shows ``1 - p``: the confidence in the shown choice. A missing,
    non-finite or out-of-range ``p`` is left out rather than shown as a made-up number.
    """
    if choice is None or _as_text(choice).strip() == "":
        return ('<span class="cai-verdict cai-verdict-none" style="'
                f'{_ISO};padding:0 6px;border-radius:8px;border:1px dashed #9e9e9e;color:#616161">'
                "unparsed</span>")
    choice = _as_text(choice)
    key = choice.strip().upper()
    text = choice
    shown = _shown_probability(key, p)
    if shown is not None:
        # half-up rounding: 0.625 -> 63 %, as a person would round it (round() is banker's)
        text = f"{choice} {int(math.floor(shown * 100 + 0.5))} %"
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "other"
    colour = _BADGE_COLOURS.get(key, "#424242")
    return (f'<span class="cai-verdict cai-verdict-{slug}" style="{_ISO};white-space:nowrap;padding:0 6px;'
            f'border-radius:8px;background:{colour};color:#fff;font-weight:600">{_text_html(text)}</span>')


def _shown_probability(key: str, p: object) -> float | None:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        return None
    p = float(p)
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        return None
    if key == "A":
        return p
    if key == "B":
        return 1.0 - p
    return None  # a tie (or anything else) has no single side to attach the number to


# -- word diff --------------------------------------------------------------------------------------
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


def _segments(old: str, new: str) -> list[tuple[bool, str, str]]:
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


def word_diff_html(old: object, new: object) -> str:
    """A word-level diff of two texts: unchanged text plain, deletions as
    ``<del class="cai-del">`` (red, struck through) and insertions as
    ``<ins class="cai-ins">`` (green), all escaped, with inline styles so no stylesheet is
    needed. Unchanged + deleted text reconstructs ``old``; unchanged + inserted, ``new``."""
    old, new = _as_text(old), _as_text(new)
    parts = []
    for changed, d, i in _segments(old, new):
        if not changed:
            parts.append(_text_html(d))
            continue
        if d:
            parts.append(f'<del class="cai-del" style="{_DEL_STYLE}">{_text_html(d)}</del>')
        if i:
            parts.append(f'<ins class="cai-ins" style="{_INS_STYLE}">{_text_html(i)}</ins>')
    return f'<div class="cai-diff-text" style="{_PRE}">{"".join(parts)}</div>'


def _word_count(text: str) -> int:
    return sum(1 for t in _tokens(text) if not t.isspace())


def diff_stats(old: object, new: object) -> dict:
    """``inserted_words``, ``deleted_words`` and ``changed_ratio`` of the same diff that
    :func:`word_diff_html` shows.

    A "word" is any non-whitespace token — a run of word characters or one punctuation
    mark — so a revision that only fixes punctuation does not count as unchanged.
    ``changed_ratio = (inserted + deleted) / (words in old + words in new)``: 0.0 for
    identical texts (and for two empty ones), 1.0 when nothing is shared; it equals
    ``1 - difflib ratio`` over the words.
    """
    old, new = _as_text(old), _as_text(new)
    ins = dele = 0
    for changed, d, i in _segments(old, new):
        if changed:
            dele += _word_count(d)
            ins += _word_count(i)
    total = _word_count(old) + _word_count(new)
    return {"inserted_words": ins, "deleted_words": dele,
            "changed_ratio": (ins + dele) / total if total else 0.0}


# -- Markdown ---------------------------------------------------------------------------------------
# HTML-significant characters become entities (Markdown passes entities through, so they
# render as the literal character, and no raw HTML or <autolink> can start). Every other
# ASCII punctuation character is backslash-escaped, which CommonMark and marked (Gradio's
# renderer) both define as "this character, literally": that defuses links and images
# ([x](…), ![](…)), emphasis, headings, lists, quotes, tables, fences (~~~), footnotes,
# setext/thematic rules, and GFM's bare autolinks (http://…, www.…, a@b.c need an
# unescaped ':', '.' or '@'), emoji :codes: and $math$ delimiters.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "`": "&#96;"}
_MD_TABLE = {ord(c): _MD_ENTITIES.get(c, "\\" + c)
             for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}
_MD_LEADING_WS = re.compile(r"^[ \t]+")


def markdown_safe(text: object) -> str:
    """Untrusted text as inert Markdown for ``gr.Markdown``: shown literally, never a link,
    image, raw HTML, code block or heading.

    Leading spaces/tabs become ``&#32;``/``&#9;`` (entities cannot create block structure,
    so indentation cannot start a code block), and single line breaks become Markdown hard
    breaks (a trailing backslash) so the text keeps its lines. Blank lines stay paragraph
    breaks. CR/CRLF are read as line breaks, as Markdown itself does.
    """
    lines = _as_text(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    for line in lines:
        if line.strip() == "":
            out.append("")  # whitespace-only lines stay blank (paragraph breaks)
            continue
        body = line.translate(_MD_TABLE)
        out.append(_MD_LEADING_WS.sub(
            lambda m: m.group(0).replace(" ", "&#32;").replace("\t", "&#9;"), body))
    parts = []
    for k, line in enumerate(out):
        parts.append(line)
        if k + 1 < len(out):
            # a backslash before the newline is a hard break; only between two non-blank
            # lines (at a paragraph's end it would be a literal backslash)
            parts.append("\\\n" if line and out[k + 1] else "\n")
    return "".join(parts)
