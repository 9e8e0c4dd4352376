"""views.render: nothing from a model or a prompt file may ever execute as HTML/JS.

Every helper is run over a corpus of hostile inputs and its output is parsed with the
standard library's HTML parser, which checks three things at once: only the tags and
attributes the helper itself writes are present, no payload survived as markup, and the
text a person sees (the parsed text content, ``<br>`` read as a newline) is exactly the
input, so escaping neither dropped nor decoded anything.
"""
from __future__ import annotations

import html
import random
import re
import time
from html.parser import HTMLParser

import pytest

from views import word_diff
from views.render import (
    diff_stats,
    escape,
    markdown_safe,
    side_by_side_html,
    text_block_html,
    verdict_badge_html,
    word_diff_html,
)

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "img": "<img src=x onerror=alert(1)>",
    "svg": "<svg onload=alert(1)>",
    "iframe_breakout": '"><iframe src=javascript:alert(1)>',
    "md_link": "[click](javascript:alert(1))",
    "anchor": '<a href="javascript:alert(1)">x</a>',
    "entities": "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#60;img&#62; &#x3C;svg&#x3E;",
    "attr_breakout": "' onmouseover='alert(1)' x=` y=\"",
    "unicode_bidi": "abc \u202eevil.exe\u202c \u2066iso\u2069 \u200bzw \ufeffbom 👩‍💻 e\u0301 \u2028ls",
    "nul": "a\x00b<scr\x00ipt>\x00",
    "newlines": "line 1\nline 2\r\nline 3\rline 4\n\n<br>literal br",
    "comment_cdata": "<!-- x --><![CDATA[ y ]]><?php z ?><!DOCTYPE html>",
    "style_tag": "<style>*{background:url(javascript:alert(1))}</style>",
    "template_literal": "`${alert(1)}` {{ 7*7 }}",
    "empty": "",
    "whitespace": "   \t  \n ",
}
IDS = list(HOSTILE)
# A one-megabyte hostile string; every helper must stay fast on it.
BIG = ("<script>alert(1)</script><img src=x onerror=alert(1)> &lt;b&gt; \u202e\x00 word\n" * 15000)[:1_000_000]

# The only tags/attributes the helpers write themselves.
ALLOWED_TAGS = {"div", "span", "strong", "b", "del", "ins", "br"}
ALLOWED_ATTRS = {"class", "style"}
# Raw markup that must never appear in any output, whatever the input.
FORBIDDEN_RAW = ("<script", "<img", "<svg", "<iframe", "<a ", "<a>", "<style", "<object",
                 "<embed", "<link", "<meta", "<!--", "<![cdata", "<?", "<!doctype")


# -- an HTML reader that records structure and text ---------------------------------------------------
class _Doc(HTMLParser):
    """Text chunks, each with the stack of enclosing (tag, class, ordinal) elements."""

    def __init__(self, *, xhtml_br: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.xhtml_br = xhtml_br  # markdown-it writes <br />; the helpers write <br>
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[tuple[str, str, int]] = []
        self.chunks: list[tuple[str, tuple]] = []
        self.bogus: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "br":  # void element: a line break in the visible text
            self.chunks.append(("\n", tuple(self.stack)))
        else:
            self.stack.append((tag, dict(attrs).get("class") or "", len(self.tags)))

    def handle_startendtag(self, tag, attrs):
        if self.xhtml_br and tag == "br":
            return self.handle_starttag(tag, attrs)
        self.bogus.append(f"self-closing <{tag}/>")  # the helpers never write these

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1][0] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data):
        self.chunks.append((data, tuple(self.stack)))

    def handle_comment(self, data):
        self.bogus.append(f"comment {data!r}")

    def handle_decl(self, decl):
        self.bogus.append(f"decl {decl!r}")

    def handle_pi(self, data):
        self.bogus.append(f"pi {data!r}")

    def unknown_decl(self, data):
        self.bogus.append(f"unknown decl {data!r}")

    def text(self, keep=lambda stack: True) -> str:
        return "".join(t for t, stack in self.chunks if keep(stack))


def parse(out: str, *, xhtml_br: bool = False) -> _Doc:
    d = _Doc(xhtml_br=xhtml_br)
    d.feed(out)
    d.close()
    assert not d.stack, f"unclosed elements {d.stack}"
    return d


def within(cls: str):
    return lambda stack: any(c == cls for _, c, _ in stack)


def outside(tag: str):
    return lambda stack: all(t != tag for t, _, _ in stack)


def assert_safe(out: str, *, allowed_tags=ALLOWED_TAGS, xhtml_br: bool = False) -> _Doc:
    low = out.lower()
    for raw in FORBIDDEN_RAW:
        assert raw not in low, f"raw {raw!r} in output"
    # an event handler or a javascript: URL inside any tag
    for tag in re.findall(r"<[^>]*>", out):
        assert not re.search(r"\son\w+\s*=", tag, re.I), tag
        assert not re.search(r"(href|src|action|formaction|xlink:href)\s*=", tag, re.I), tag
        assert "javascript:" not in tag.lower(), tag
    d = parse(out, xhtml_br=xhtml_br)
    assert not d.bogus, d.bogus
    for tag, attrs in d.tags:
        assert tag in allowed_tags, f"unexpected tag <{tag}>"
        assert set(attrs) <= ALLOWED_ATTRS, f"unexpected attributes {attrs}"
        style = attrs.get("style") or ""
        assert re.fullmatch(r"[a-z\-]+:[a-z0-9#.%\- ]+(;[a-z\-]+:[a-z0-9#.%\- ]+)*", style) or not style, style
        assert "url(" not in style and "expression" not in style
    return d


# -- escape ---------------------------------------------------------------------------------------
def test_escape_exact():
    assert escape("<a href=\"x\">'&`") == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#96;"
    assert escape("a\nb") == "a\nb"  # newlines are left to the *_html helpers
    assert escape("&lt;script&gt;") == "&amp;lt;script&amp;gt;"  # double-escaped: shown literally
    assert escape("a\r\nb") == "a&#13;\nb"  # a raw CR would be normalised away by the parser
    assert escape(None) == "" and escape(42) == "42"


@pytest.mark.parametrize("name", IDS)
def test_escape_hostile(name):
    s = HOSTILE[name]
    out = escape(s)
    assert not set(out) & set("<>\"'`\r")
    assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt|quot|#x27|#96|#13);)*", out, re.S)
    assert html.unescape(out) == s
    assert parse(out).text() == s


# -- text_block_html ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", IDS)
def test_text_block_hostile_round_trip(name):
    s = HOSTILE[name]
    out = text_block_html(s)
    d = assert_safe(out)
    assert d.text() == s
    assert "\n" not in out  # newlines are <br>, so they survive even without pre-wrap


@pytest.mark.parametrize("name", IDS)
def test_text_block_hostile_label_and_flags(name):
    s = HOSTILE[name]
    out = text_block_html(s, label=s, flags=[s, "echo", "truncated"])
    d = assert_safe(out)
    assert d.text(within("cai-text")) == s
    assert d.text(within("cai-label")) == s
    ordinals = [o for o, (t, a) in enumerate(d.tags, 1) if a.get("class") == "cai-flag"]
    texts = [d.text(lambda st, o=o: any(x[2] == o for x in st)) for o in ordinals]
    assert texts == [f for f in (s, "echo", "truncated") if f]  # an empty flag shows no badge


def test_text_block_structure():
    assert text_block_html("a\nb") == (
        '<div class="cai-text" style="white-space:pre-wrap;overflow-wrap:anywhere">a<br>b</div>')
    out = text_block_html("x", label="Answer", flags=("echo",))
    assert out.startswith('<div class="cai-block"><div class="cai-head"><strong')
    assert text_block_html(None) == text_block_html("")
    assert text_block_html("x", flags=None) == text_block_html("x")
    assert 'class="my-box"' in text_block_html("x", css_class="my-box")


def test_text_block_css_class_cannot_break_out():
    evil = 'x" onmouseover="alert(1)" data-y="'
    d = parse(text_block_html("t", css_class=evil))
    assert d.tags == [("div", {"class": evil, "style": d.tags[0][1]["style"]})]


# -- word diff --------------------------------------------------------------------------------------
def diff_parts(out: str):
    d = assert_safe(out)
    dels = [d.text(lambda st, o=o: any(x[2] == o for x in st))
            for o, (t, _) in enumerate(d.tags, 1) if t == "del"]
    ins = [d.text(lambda st, o=o: any(x[2] == o for x in st))
           for o, (t, _) in enumerate(d.tags, 1) if t == "ins"]
    for t, a in d.tags:
        if t in ("del", "ins"):
            assert a["class"] == f"cai-{t}" and "background" in a["style"]  # styled without CSS
    old, new = d.text(outside("ins")), d.text(outside("del"))
    return dels, ins, old, new


def assert_diff_reconstructs(old: str, new: str):
    dels, ins, o, n = diff_parts(word_diff_html(old, new))
    assert o == old, "unchanged + deleted text must give back the old text"
    assert n == new, "unchanged + inserted text must give back the new text"
    return dels, ins


PAIRS = [(HOSTILE[a], HOSTILE[b]) for a in IDS for b in ("script", "md_link", "empty", "unicode_bidi", "newlines")]
PAIRS += [(s, s + " appended <b>tail</b>") for s in HOSTILE.values()]
PAIRS += [("prefix &amp; <i>head</i> " + s, s) for s in HOSTILE.values()]


@pytest.mark.parametrize("old,new", PAIRS)
def test_word_diff_hostile_round_trip(old, new):
    dels, ins = assert_diff_reconstructs(old, new)
    if old == new:
        assert dels == [] and ins == []


def test_word_diff_known_example():
    dels, ins = assert_diff_reconstructs("the cat sat", "the dog sat")
    assert dels == ["cat"] and ins == ["dog"]


def test_word_diff_identical_and_empty():
    for s in ("", "same text\nhere", HOSTILE["script"]):
        out = word_diff_html(s, s)
        assert "<del" not in out and "<ins" not in out
        assert parse(out).text() == s
    assert word_diff_html(None, None) == word_diff_html("", "")


def test_word_diff_pure_insert_and_delete():
    dels, ins = assert_diff_reconstructs("", "brand new")
    assert dels == [] and ins == ["brand new"]
    dels, ins = assert_diff_reconstructs("all gone", "")
    assert dels == ["all gone"] and ins == []
    dels, ins = assert_diff_reconstructs("a b c", "a b x c")
    assert dels == [] and [t.strip() for t in ins] == ["x"]


def test_word_diff_details():
    # a whitespace-only change is shown, not swallowed
    dels, ins = assert_diff_reconstructs("a b", "a  b")
    assert (dels, ins) == ([" "], ["  "])
    # line structure is kept: only the changed word on the second line is marked
    dels, ins = assert_diff_reconstructs("line one\nline two", "line one\nline 2")
    assert (dels, ins) == (["two"], ["2"])
    # neighbouring replacements separated by single spaces read as one replacement
    dels, ins = assert_diff_reconstructs("the cat sat", "a dog stood")
    assert (dels, ins) == (["the cat sat"], ["a dog stood"])
    # markup in the texts is diffed as text
    dels, ins = assert_diff_reconstructs("<b>x</b>", "<i>x</i>")
    assert dels and ins and all("<" in t or ">" in t or t.isalpha() for t in dels + ins)


@pytest.mark.parametrize("budget", [None, 10, 0])
def test_word_diff_random_edits_reconstruct(monkeypatch, budget):
    # budget 10 / 0 forces the per-line and the wholesale fallbacks used for huge inputs
    if budget is not None:
        monkeypatch.setattr(word_diff, "_WORD_PAIR_BUDGET", budget)
        monkeypatch.setattr(word_diff, "_GAP_DIFF_BUDGET", budget)
    rng = random.Random(7)
    vocab = ["the", "a", "cat", "<b>", "&amp;", "`", "'", '"', ",", ".", "\n", "  ", "\t", "\r\n",
             "é", "\u202e", "\x00", "javascript:", "[x](y)"]
    for _ in range(60):
        old = "".join(rng.choice(vocab) + rng.choice([" ", "", "\n"]) for _ in range(rng.randint(0, 40)))
        toks = re.findall(r"\s+|\w+|[^\w\s]", old)
        new = "".join(t if rng.random() > 0.3 else rng.choice(vocab) for t in toks)
        if rng.random() < 0.3:
            new += " tail"
        assert_diff_reconstructs(old, new)
        st = diff_stats(old, new)
        assert 0.0 <= st["changed_ratio"] <= 1.0


def test_word_diff_stats_match_the_rendered_diff():
    old = "The quick brown fox jumps over the lazy dog. It was <b>fun</b>!"
    new = "The quick red fox leaps over the lazy dog; it was fun!"
    dels, ins = assert_diff_reconstructs(old, new)
    words = lambda ts: sum(len(re.findall(r"\w+|[^\w\s]", t)) for t in ts)  # noqa: E731
    st = diff_stats(old, new)
    assert st["deleted_words"] == words(dels) and st["inserted_words"] == words(ins)


def test_diff_stats_numbers():
    assert diff_stats("the cat sat", "the dog sat") == {
        "inserted_words": 1, "deleted_words": 1, "changed_ratio": pytest.approx(2 / 6)}
    assert diff_stats("same", "same") == {"inserted_words": 0, "deleted_words": 0, "changed_ratio": 0.0}
    assert diff_stats("", "") == {"inserted_words": 0, "deleted_words": 0, "changed_ratio": 0.0}
    assert diff_stats("", "a b") == {"inserted_words": 2, "deleted_words": 0, "changed_ratio": 1.0}
    assert diff_stats("a b c", "") == {"inserted_words": 0, "deleted_words": 3, "changed_ratio": 1.0}
    # punctuation counts as a word: a punctuation-only fix is not "unchanged"
    assert diff_stats("a, b.", "a; b.") == {"inserted_words": 1, "deleted_words": 1, "changed_ratio": 0.25}
    # whitespace-only changes are not word changes
    assert diff_stats("a b", "a\n\nb")["changed_ratio"] == 0.0


# -- side by side ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", IDS)
def test_side_by_side_hostile(name):
    s = HOSTILE[name]
    items = [(s, s), ("B (model <x>)", "plain & simple"), ("", "")]
    d = assert_safe(side_by_side_html(items))
    assert "display:flex" in d.tags[0][1]["style"]
    cols = [o for o, (t, a) in enumerate(d.tags, 1) if a.get("class") == "cai-col"]
    assert len(cols) == 3
    for o, (title, text) in zip(cols, items):
        in_col = lambda st, o=o: any(x[2] == o for x in st)  # noqa: E731
        assert d.text(lambda st: in_col(st) and within("cai-label")(st)) == title
        assert d.text(lambda st: in_col(st) and within("cai-text")(st)) == text


def test_side_by_side_empty():
    d = assert_safe(side_by_side_html([]))
    assert [t for t, _ in d.tags] == ["div"] and d.text() == ""


# -- verdict badge --------------------------------------------------------------------------------
@pytest.mark.parametrize("choice,p,text", [
    ("A", 0.62, "A 62 %"),
    ("B", 0.29, "B 71 %"),  # p is P(A better): a B badge shows 1 - p
    ("A", 0.625, "A 63 %"),
    ("A", None, "A"),
    ("B", float("nan"), "B"),
    ("A", 1.5, "A"),
    ("tie", 0.5, "tie"),
    (None, 0.7, "unparsed"),
    ("", None, "unparsed"),
])
def test_verdict_badge(choice, p, text):
    d = assert_safe(verdict_badge_html(choice, p))
    assert [t for t, _ in d.tags] == ["span"]
    assert d.text() == text


@pytest.mark.parametrize("name", IDS)
def test_verdict_badge_hostile(name):
    s = HOSTILE[name]
    d = assert_safe(verdict_badge_html(s, 0.9))
    assert d.text() == (s if s.strip() else "unparsed")
    assert re.fullmatch(r"cai-verdict cai-verdict-[a-z0-9-]+", d.tags[0][1]["class"])


# -- markdown_safe --------------------------------------------------------------------------------
MD_HOSTILE = dict(HOSTILE, **{
    "image": "![](x) ![alt](javascript:alert(1))",
    "autolink": "<javascript:alert(1)> <https://evil.example> <a@b.co>",
    "bare_autolink": "see http://evil.example and www.evil.example or mail a@evil.co",
    "reference": "[a]: javascript:alert(1)\n\n[a] and [b][a]",
    "angle_dest": "[x](<javascript:alert(1)>)",
    "entity_js": "[x](&#106;avascript:alert(1))",
    "user_backslashes": "\\[x\\](javascript:alert(1)) \\<script>",
    "blocks": "# heading\n> quote\n- item\n1. item\n    indented code\n\n\tcode\n```\nfence\n```\n~~~\nf\n~~~",
    "table": "| a | b |\n|---|---|\n| c | d |",
    "emphasis": "*em* __strong__ ~~strike~~ `code` ***",
    "setext": "Title\n=====\nSub\n-----",
    "math_emoji": "$$x$$ $y$ :smile:",
    "trailing_backslash": "line\\\nnext\\",
})


def _md():
    markdown_it = pytest.importorskip("markdown_it")
    # html=True: even a renderer that allows raw HTML must get none from markdown_safe
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _norm(s: str) -> str:
    # Markdown joins lines and collapses spaces, and CommonMark maps NUL to U+FFFD
    return " ".join(s.replace("\x00", "\ufffd").split())


@pytest.mark.parametrize("name", list(MD_HOSTILE))
def test_markdown_safe_is_inert(name):
    s = MD_HOSTILE[name]
    out = markdown_safe(s)
    assert "<" not in out and ">" not in out and "`" not in out
    assert "](" not in out.replace("\\](", "") and "![" not in out.replace("\\![", "")
    assert not re.search(r"(?i)(https?|ftp|javascript|mailto):", out)
    assert "www." not in out and re.search(r"(?<!\\)@", out) is None
    rendered = _md().render(out)
    d = assert_safe(rendered, allowed_tags={"p", "br"}, xhtml_br=True)
    assert _norm(d.text()) == _norm(s)


def test_markdown_safe_keeps_lines_and_paragraphs():
    md = _md()
    assert md.render(markdown_safe("one\ntwo\n\nthree")) == "<p>one<br />\ntwo</p>\n<p>three</p>\n"
    assert md.render(markdown_safe("&lt;script&gt;")) == "<p>&amp;lt;script&amp;gt;</p>\n"
    # leading indentation stays text (not a code block)
    assert md.render(markdown_safe("    x = 1")) == "<p>    x = 1</p>\n"


# -- 1 MB --------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_one_megabyte_is_fast_and_safe():
    edited = BIG[:500_000] + "<b>EDIT</b>" + BIG[500_010:]
    other = BIG[::-1]
    jobs = {
        "escape": lambda: escape(BIG),
        "text_block": lambda: text_block_html(BIG, label="big", flags=["huge"]),
        "side_by_side": lambda: side_by_side_html([("A", BIG), ("B", BIG)]),
        "diff_identical": lambda: word_diff_html(BIG, BIG),
        "diff_small_edit": lambda: word_diff_html(BIG, edited),
        "diff_unrelated": lambda: word_diff_html(BIG, other),
        "diff_stats": lambda: diff_stats(BIG, edited),
        "markdown": lambda: markdown_safe(BIG),
        "badge": lambda: verdict_badge_html(BIG, 0.5),
    }
    outs = {}
    for name, job in jobs.items():
        t0 = time.perf_counter()
        outs[name] = job()
        assert time.perf_counter() - t0 < 10, f"{name} too slow"
    assert parse(outs["escape"]).text() == BIG
    assert assert_safe(outs["text_block"]).text(within("cai-text")) == BIG
    for name, new in (("diff_identical", BIG), ("diff_small_edit", edited), ("diff_unrelated", other)):
        _, _, o, n = diff_parts(outs[name])
        assert (o, n) == (BIG, new), name
    dels, ins, _, _ = diff_parts(outs["diff_small_edit"])
    assert len("".join(dels)) < 100 and len("".join(ins)) < 100  # the edit, not the whole text
    assert "<" not in outs["markdown"]
