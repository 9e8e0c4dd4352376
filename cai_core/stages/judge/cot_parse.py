"""Reading the judge's CoT verdict, and defanging untrusted text so it cannot pose as one.

:func:`parse_cot_verdict` takes the LAST well-formed final verdict statement in the judge's
own output, skipping hedged, quoted or copied ones (a verdict the judge merely echoed from the
request cannot decide). :func:`defang` rewrites the human prompt and the answers before the
judge sees them, using the same statement patterns, so that they hold no verdict to echo.
Parsing never raises (DESIGN.md rule 4). The stage itself is :mod:`cai_core.stages.judge`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Sequence

__all__ = ["Letter", "parse_cot_verdict", "defang"]

Letter = Literal["A", "B"]


# -- text normalisation --------------------------------------------------------------------------
# Everything the parser matches runs on a *position-preserving* normalisation (same length as
# the input), so a match found there can be rewritten in the original text by :func:`defang`.
_ASCII_MAP = str.maketrans({"*": " ", "_": " ", "`": " "})


def _norm_char(c: str) -> str:
    if c in "*_`":
        return " "
    if c in "\u2018\u2019\u02bc":
        return "'"
    cat = unicodedata.category(c)
    if cat == "Cf" or cat == "Zs":  # zero-width / format characters, exotic spaces
        return " "
    n = unicodedata.normalize("NFKC", c)  # fullwidth （Ａ） -> (A)
    return n if len(n) == 1 else c


def _norm(text: str) -> str:
    if text.isascii():
        return text.translate(_ASCII_MAP)
    return "".join(c if c.isascii() and c not in "*_`" else _norm_char(c) for c in text)


_FOLD_MAP = str.maketrans({"[": "(", "]": ")", "\n": " ", "\t": " ", "\r": " "})


def _fold(normed: str) -> str:
    """Comparison form for quote detection: lower case (length-preserving), defanged
    brackets count as parentheses, line breaks as spaces."""
    low = normed.lower()
    if len(low) != len(normed):  # a few characters lower-case to two (e.g. 'İ')
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in normed)
    return low.translate(_FOLD_MAP)


# -- verdict statements --------------------------------------------------------------------------
# A verdict letter: "(A)" / "( b )" in any case; a bare capital "A"/"B" only where it cannot be
# the article ("Answer: A response that..." is not a verdict); a bare lower-case letter only at
# the end of a line; a quoted capital ("A" / 'B'). Never "[A]": that is what defanging produces.
_TOK = (
    r"(?P<tok>\((?:[ \t]{0,3})(?P<l1>[ABab])(?:[ \t]{0,3})\)"
    r"|(?<![\w\[(])(?-i:(?P<l2>[AB]))(?![\w\]])"
    r"(?=[ \t]*(?:\Z|[\n.,;:!?)\"'\-(]|\u2013|\u2014)"
    r"|[ \t]+(?:is|was|wins|because|since|as|over|than|would|seems|clearly|here|overall)\b)"
    r"|(?<![\w\[(])(?-i:(?P<l3>[ab]))(?![\w\]])(?=[ \t]*[.!]?[ \t]*(?:\n|\Z))"
    r"|[\"'\u201c](?-i:(?P<l4>[AB]))[\"'\u201d])"
)
_NOUN = r"(?:(?:option|response|answer|choice|assistant)[ \t]*)?"
_ADV = r"(?:(?:clearly|definitely|obviously|therefore|thus|simply|probably|most\s+likely)\s+)?"

# strong: a final verdict ("the answer is (B)", "Verdict: A", "the better response is B", ...)
_STRONG = [
    re.compile(
        r"\b(?:(?:final|correct|right|best|my)\s+)?(?:answer|verdict|choice|decision|selection|conclusion)"
        r"\s*(?:is|would\s+be|will\s+be|should\s+be|must\s+be|=|:|-)\s*:?[ \t]*" + _ADV + _NOUN + _TOK,
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:better|best|preferred|preferable|superior|winning|stronger)\s+"
        r"(?:one|option|response|answer|choice|assistant\s+response)\s+(?:is|would\s+be|here\s+is)"
        r"\s*:?[ \t]*" + _ADV + _NOUN + _TOK,
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:therefore|thus|hence|so)[ \t]*,?[ \t]*" + _NOUN + _TOK + r"(?=[ \t]*[.!]?[ \t]*(?:\n|\Z))",
        re.IGNORECASE,
    ),
]
# a line holding nothing but a letter ("(A)", "**B**", "Answer: (b)")
_LINE_ALONE = re.compile(
    r"^[ \t>\-]*(?:(?:final[ \t]+)?(?:answer|option|response|choice|verdict)[ \t]*[:\-]?[ \t]*)?"
    + _TOK + r"[ \t]*[.!]?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# strong, without a letter: the judge declares a tie or no decision
_TIE = [
    re.compile(
        r"\b(?:it'?s|it\s+is|this\s+is|that'?s|result\s+is|answer\s+is|verdict\s+is|verdict\s*:|answer\s*:|call\s+it)"
        r"\s+(?:a\s+)?(?:tie|draw|neither|both)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\bneither\s+(?:one\s+|response\s+|option\s+|answer\s+)?(?:is\s+)?(?:clearly\s+)?(?:better|preferable|superior)\b", re.IGNORECASE),
    re.compile(r"\bboth\s+(?:responses\s+|options\s+|answers\s+|of\s+them\s+)?(?:are\s+)?equally\b", re.IGNORECASE),
    re.compile(r"\bequally\s+(?:good|bad|acceptable|harmless|helpful|harmful|appropriate|valid|strong|weak)\b", re.IGNORECASE),
    re.compile(r"\b(?:cannot|can'?t|can\s+not|unable\s+to|could\s+not|couldn'?t)\s+(?:really\s+)?(?:decide|choose|pick|determine)\b", re.IGNORECASE),
    re.compile(r"\bno\s+(?:clear\s+)?(?:preference|winner)\b", re.IGNORECASE),
    re.compile(r"^[ \t]*(?:tie|neither|both|draw)[ \t]*[.!]?[ \t]*$", re.IGNORECASE | re.MULTILINE),
]
# weak: a preference that is not phrased as the final answer; used only when no strong one exists
_WEAK = [
    re.compile(
        r"\b(?:i(?:\s+would|'d|\s+will|'ll)?\s+(?:choose|pick|prefer|select|go\s+with|vote\s+for|opt\s+for)"
        r"|i\s+(?:would\s+|'d\s+)?rather\s+have)\s+" + _NOUN + _TOK,
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:\b" + _NOUN + r")?" + _TOK
        + r"[ \t]+(?:is|seems|appears|would\s+be)[ \t]+"
        r"(?:(?:clearly|definitely|much|far|slightly|somewhat|overall|therefore|thus)[ \t]+)?(?:the[ \t]+)?"
        r"(?:better|preferable|preferred|superior|best|winner|stronger)"
        r"(?:[ \t]+(?:one|option|response|answer|choice|overall))?"
        r"(?=[ \t]*(?:\Z|[\n.,;:!)]|than\b|because\b|since\b|as\b|overall\b|here\b))",
        re.IGNORECASE,
    ),
    re.compile(r"(?:\b" + _NOUN + r")?" + _TOK + r"[ \t]+(?:wins|is[ \t]+the[ \t]+winner)\b", re.IGNORECASE),
]

_ANY_LETTER = re.compile(
    r"\((?:[ \t]{0,3})(?P<l1>[ABab])(?:[ \t]{0,3})\)|(?<![\w\[(])(?P<l2>[AB])(?![\w\]])"
)
_CONTRAST_BEFORE = re.compile(
    r"(?:\bthan|\bover|\bnot|\binstead\s+of|\brather\s+than|\bcompared\s+(?:to|with)|\bvs\.?|\bversus|\bunlike|\bbeats?)"
    r"[ \t,]*(?:(?:option|response|answer|choice)[ \t]*)?$",
    re.IGNORECASE,
)
_ALT_BEFORE = re.compile(
    r"(?:\((?:[ \t]{0,3})[ABab](?:[ \t]{0,3})\)|(?<![\w\[(])[AB])[ \t]*(?:or|and|/|,|&|nor)[ \t]*"
    r"(?:(?:option|response|answer|choice)[ \t]*)?$",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(
    r"[.;!?\n]|\b(?:because|since|as|while|whereas|but|although|though|however|given)\b", re.IGNORECASE
)
_HEDGE = re.compile(
    r"\b(?:not|never|no\s+way|if|whether|unless|suppose|supposing|assuming|assume|might|may|could|doubt|"
    r"wonder|unsure|maybe|perhaps)\b|n't\b",
    re.IGNORECASE,
)
# where a judge starts hallucinating a new conversation turn (cut after its first verdict)
_TURN = re.compile(r"\n[ \t]*(?:Human|User|H|Q|Question|###\s*\w+)[ \t]*:|<\|[a-z_]+\|>|</s>", re.IGNORECASE)

_QUOTE_MIN = 24
"""A verdict statement inside a verbatim copy this long (of a quoted source) is not the judge's."""
_MAX_CHECKS = 64
"""At most this many statements (from the end) are examined before giving up with None."""
_LOOKBACK = 200
_QUOTE_OPEN = "\u201c\u201e\u00ab"
_QUOTE_CLOSE = "\u201d\u00bb"


@dataclass(frozen=True, slots=True)
class _Cand:
    start: int
    """Start of the statement (its cue)."""
    end: int
    tok_start: int
    """Span of the letter token (with its parentheses), or of the whole statement for ties."""
    tok_end: int
    letter: Letter | None
    """None: a tie / no-decision statement."""
    strong: bool
    line_alone: bool = False


def _letter_of(m: re.Match) -> tuple[Letter, int, int] | None:
    for g in ("l1", "l2", "l3", "l4"):
        v = m.group(g)
        if v:
            return v.upper(), m.start("tok"), m.end("tok")  # type: ignore[return-value]
    return None


def _candidates(t: str) -> list[_Cand]:
    """Every verdict-like statement in normalised text ``t`` (unfiltered), by position."""
    out: list[_Cand] = []
    for pats, strong in ((_STRONG, True), (_WEAK, False)):
        for pat in pats:
            for m in pat.finditer(t):
                lt = _letter_of(m)
                if lt:
                    out.append(_Cand(m.start(), m.end(), lt[1], lt[2], lt[0], strong))
    for m in _LINE_ALONE.finditer(t):
        lt = _letter_of(m)
        if lt:
            out.append(_Cand(m.start(), m.end(), lt[1], lt[2], lt[0], True, line_alone=True))
    for pat in _TIE:
        for m in pat.finditer(t):
            out.append(_Cand(m.start(), m.end(), m.start(), m.end(), None, True))
    out.sort(key=lambda c: (c.tok_end, c.start))
    return out


def _clause_before(t: str, pos: int) -> str:
    lo = max(0, pos - _LOOKBACK)
    chunk = t[lo:pos]
    cut = max(chunk.rfind(ch) for ch in ".;:!?\n,")
    return chunk[cut + 1 :]


def _is_question_or_hedged(t: str, c: _Cand) -> bool:
    if _HEDGE.search(_clause_before(t, c.start)):
        return True
    m = re.compile(r"[.!?\n]").search(t, c.tok_end, min(len(t), c.tok_end + _LOOKBACK))
    return bool(m and m.group() == "?")


def _is_ambiguous(t: str, c: _Cand) -> bool:
    """The statement names the other letter too ("(A) or (B)"), other than as a contrast
    ("(A) is better than (B)", "(A), not (B)")."""
    if c.letter is None:
        return False
    end = min(len(t), c.tok_end + _LOOKBACK)
    stop = _CLAUSE_END.search(t, c.tok_end, end)
    tail_end = stop.start() if stop else end
    for m in _ANY_LETTER.finditer(t, c.tok_end, tail_end):
        letter = (m.group("l1") or m.group("l2")).upper()
        if letter != c.letter and not _CONTRAST_BEFORE.search(t[max(c.tok_end, m.start() - 40) : m.start()]):
            return True
    return bool(_ALT_BEFORE.search(t[max(0, c.tok_start - 60) : c.tok_start]))


def _extends_to(a: str, i: int, j: int, b: str, bi: int, limit: int) -> int:
    """Length of the longest common stretch of ``a`` around a[i:j] and ``b`` around b[bi:bi+j-i]."""
    n = j - i
    left = 0
    while left < limit and i - left - 1 >= 0 and bi - left - 1 >= 0 and a[i - left - 1] == b[bi - left - 1]:
        left += 1
    right = 0
    while right < limit and j + right < len(a) and bi + n + right < len(b) and a[j + right] == b[bi + n + right]:
        right += 1
    return left + n + right


def _quoted_span(t: str, pos: int) -> tuple[int, int] | None:
    """The span inside quotation marks (on the same line) that contains ``pos``, if any."""
    line_start = t.rfind("\n", max(0, pos - 2000), pos) + 1
    before = t[line_start:pos]
    open_at = -1
    if before.count('"') % 2:  # an odd number of straight quotes: the last one is open
        open_at = before.rfind('"')
    fancy_open = max(before.rfind(ch) for ch in _QUOTE_OPEN)
    if fancy_open > max(before.rfind(ch) for ch in _QUOTE_CLOSE):
        open_at = max(open_at, fancy_open)
    if open_at < 0:
        return None
    line_end = t.find("\n", pos)
    line_end = len(t) if line_end < 0 else line_end
    close = line_end
    for ch in '"' + _QUOTE_CLOSE:
        k = t.find(ch, pos, line_end)
        if k >= 0:
            close = min(close, k)
    return line_start + open_at + 1, close


def _in_quotation(t: str, folded: str, c: _Cand, sources: Sequence[str]) -> bool:
    """The statement sits inside quotation marks and is a quotation: either the quoted
    segment occurs in a source, or the line has prose outside the quotes
    ('Response B says "the answer is (B)"'). A line that is nothing but the quoted verdict
    (a judge copying the requested format with its quotes) is the judge's own."""
    span = _quoted_span(t, c.start)
    if span is None:
        return False
    seg = folded[span[0] : span[1]].strip(" .,;:!?'")
    if seg and any(seg in s for s in sources):
        return True
    line_start = t.rfind("\n", 0, span[0]) + 1
    line_end = t.find("\n", span[1])
    line_end = len(t) if line_end < 0 else line_end
    outside = t[line_start : max(line_start, span[0] - 1)] + t[min(line_end, span[1] + 1) : line_end]
    return any(ch.isalnum() for ch in outside)


def _copied(folded: str, c: _Cand, sources: Sequence[str]) -> bool:
    """The statement lies inside a verbatim copy (>= _QUOTE_MIN characters, and at least 8
    more than the statement itself) of one of the sources."""
    if not sources:
        return False
    core = folded[c.start : max(c.end, c.tok_end)]
    if not core.strip():
        return False
    need = max(_QUOTE_MIN, len(core) + 8)
    for s in sources:
        k = s.find(core)
        hits = 0
        while k >= 0 and hits < 50:
            if _extends_to(folded, c.start, c.start + len(core), s, k, need) >= need:
                return True
            hits += 1
            k = s.find(core, k + 1)
    return False


def _decide(text: str, sources: Sequence[str] = ()) -> Letter | None:
    t = _norm(text)
    cands = _candidates(t)
    if not cands:
        return None
    # A judge that starts writing the next conversation turn after its verdict is rambling:
    # nothing after that point counts.
    first_strong = next((c for c in cands if c.strong), None)
    if first_strong is not None:
        turn = _TURN.search(t, first_strong.end)
        if turn:
            cands = [c for c in cands if c.start < turn.start()]
    # Letters alone on several lines with different letters are list labels, not verdicts.
    alone = {c.letter for c in cands if c.line_alone}
    if len(alone) > 1:
        cands = [c for c in cands if not c.line_alone]
    folded = _fold(t)
    folded_sources = [_fold(_norm(s)) for s in sources if s]
    budget = _MAX_CHECKS  # bounds the work on adversarial input; running out gives None

    for strong in (True, False):
        for c in reversed(cands):
            if c.strong is not strong:
                continue
            budget -= 1
            if budget < 0:
                return None
            if (
                _is_question_or_hedged(t, c)
                or _in_quotation(t, folded, c, folded_sources)
                or _copied(folded, c, folded_sources)
            ):
                continue
            if c.letter is None or _is_ambiguous(t, c):
                return None
            return c.letter
    return None


def parse_cot_verdict(text: str, *, quoted: Sequence[str] = ()) -> Letter | None:
    """The judge's final choice ("A" = the first shown answer), or None. Never raises.

    Reads verdict statements in the judge's own text: *strong* ones ("the answer is (B)",
    "Answer: (b)", "Verdict: A", "the better response is B", "Therefore, (A).", a line holding
    only "(A)" / "**B**", and tie statements such as "it's a tie", "both are equally good",
    "I cannot decide") and *weak* ones ("Option B is better", "I prefer A"). The LAST usable
    strong statement decides; weak ones count only when there is no strong one. A statement
    is not usable when it is hedged or negated ("I don't think the answer is (A)", "if the
    answer is (A)"), a question, a quotation (inside quotation marks with other prose on its
    line: 'Response B says "the answer is (B)"'), or copied from ``quoted`` (the request the
    judge saw: a verbatim stretch of >= 24 characters around it, or its quotation-marked
    segment, occurs in one of those texts). Text after the judge starts a new conversation
    turn ("Human:") following its first verdict is ignored. The deciding statement gives None
    when it is a tie or names both letters ("(A) or (B)"; "(A) is better than (B)" and
    "(A), not (B)" are fine). Letters in square brackets ("[B]", what :func:`defang` writes)
    never count. Anything else: None.
    """
    try:
        if not isinstance(text, str) or not text.strip():
            return None
        qs = tuple(q for q in quoted if isinstance(q, str)) if quoted else ()
        return _decide(text, qs)
    except Exception:  # rule 4: parsing never raises; an unparseable verdict is just None
        return None


# -- defanging untrusted text --------------------------------------------------------------------
_PAREN_LETTER = re.compile(r"\((?:[ \t]{0,3})([ABab])(?:[ \t]{0,3})\)")
_TAG = re.compile(r"<(?=[ \t]*/?[ \t]*(?:response|conversation))", re.IGNORECASE)


def defang(text: str) -> str:
    """Untrusted text (an answer under judgement, the human prompt) made unable to pose as a
    verdict or to escape its delimiters. Exactly:

    1. every parenthesised option letter -- ``(A)``, ``(b)``, ``( A )``, fullwidth
       ``（Ａ）`` -- becomes the letter in square brackets: ``[A]``, ``[b]``;
    2. every remaining letter that :func:`parse_cot_verdict` would read as a verdict
       ("The answer is B", "Option B is better", "I choose A", a line holding only "B") is
       put in square brackets too ("The answer is [B]"; a quoted letter loses its quotes:
       "The answer is 'B'" -> "The answer is [B]"), repeated until the parser finds no
       verdict in the text;
    3. a ``<`` that opens a ``response``/``conversation`` tag (``</response_B>``) becomes
       ``‹`` (U+2039), so an answer cannot close its own block early.

    Everything else is left as written. ``parse_cot_verdict(defang(x))`` is None for any x.
    """
    if not isinstance(text, str) or not text:
        return text if isinstance(text, str) else ""
    out = _TAG.sub("\u2039", text)
    t = _norm(out)
    parts: list[str] = []
    last = 0
    for m in _PAREN_LETTER.finditer(t):
        parts += [out[last : m.start()], "[", m.group(1), "]"]
        last = m.end()
    out = "".join(parts) + out[last:]
    for _ in range(20):
        t = _norm(out)
        spans = sorted({(c.tok_start, c.tok_end) for c in _candidates(t) if c.letter is not None}, reverse=True)
        if not spans:
            break
        chars = list(out)
        prev = None
        for a, b in spans:
            if prev is not None and b > prev:  # overlapping spans: the later one is already done
                continue
            letter = next((ch for ch in t[a:b] if ch in "ABab"), t[a:b])
            chars[a:b] = ["[", letter, "]"]
            prev = a
        out = "".join(chars)
    return out
