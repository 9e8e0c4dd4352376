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

import html
import math
import re
from typing import Iterable, Sequence

from .word_diff import segments, word_count

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


# -- word diff (the algorithm: :mod:`.word_diff`) ---------------------------------------------------
def word_diff_html(old: object, new: object) -> str:
    """A word-level diff of two texts: unchanged text plain, deletions as
    ``<del class="cai-del">`` (red, struck through) and insertions as
    ``<ins class="cai-ins">`` (green), all escaped, with inline styles so no stylesheet is
    needed. Unchanged + deleted text reconstructs ``old``; unchanged + inserted, ``new``."""
    old, new = _as_text(old), _as_text(new)
    parts = []
    for changed, d, i in segments(old, new):
        if not changed:
            parts.append(_text_html(d))
            continue
        if d:
            parts.append(f'<del class="cai-del" style="{_DEL_STYLE}">{_text_html(d)}</del>')
        if i:
            parts.append(f'<ins class="cai-ins" style="{_INS_STYLE}">{_text_html(i)}</ins>')
    return f'<div class="cai-diff-text" style="{_PRE}">{"".join(parts)}</div>'


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
    for changed, d, i in segments(old, new):
        if changed:
            dele += word_count(d)
            ins += word_count(i)
    total = word_count(old) + word_count(new)
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
