"""Load, validate and save constitutions (TOML); version = content hash; seeded principle draws.

Validation errors name the file, the line and what is wrong, e.g.
``constitutions/x.toml:14: principle #2 ('privacy'): missing field 'revision'``.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import tomllib
from pathlib import Path
from typing import Iterable

import tomli_w

from .stages.restate import TASK_PLACEHOLDER
from .types import Constitution, Example, Principle

__all__ = [
    "ConstitutionError",
    "parse_constitution",
    "load_constitution",
    "find_constitution",
    "list_constitutions",
    "constitution_dirs",
    "dump_constitution",
    "draw_principle",
]

_PRINCIPLE_FIELDS = ("id", "critique", "revision", "preference")
_OPTIONAL_PRINCIPLE_FIELDS = ("revision_opening",)
_EXAMPLE_FIELDS = ("principle", "prompt", "answer", "critique", "revision")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "constitutions"


class ConstitutionError(ValueError):
    """A constitution that cannot be used; the message says where and why."""


def _header_lines(text: str, table: str) -> list[int]:
    """1-based line numbers of each ``[[table]]`` header, so errors can point at them."""
    pat = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), 1) if pat.match(line)]


def _version(data: dict) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _principles(raw_principles: object, at, where: str) -> list[Principle]:
    """The [[principles]] tables, validated (``at(i)``: where principle i starts, for errors)."""
    if not isinstance(raw_principles, list) or not raw_principles:
        raise ConstitutionError(f"{where}:1: no [[principles]] tables: a constitution needs at least one")
    principles: list[Principle] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(raw_principles):
        label = f"principle #{i + 1}" + (f" ({p.get('id')!r})" if isinstance(p.get("id"), str) else "")
        for f in _PRINCIPLE_FIELDS:
            value = p.get(f)
            if value is None:
                raise ConstitutionError(f"{at(i)}: {label}: missing field {f!r}")
            if not isinstance(value, str) or not value.strip():
                raise ConstitutionError(f"{at(i)}: {label}: field {f!r} must be non-empty text")
        for f in _OPTIONAL_PRINCIPLE_FIELDS:
            if f in p and not isinstance(p[f], str):
                raise ConstitutionError(f"{at(i)}: {label}: field {f!r} must be text")
        _check_opening(p.get("revision_opening", ""), f"{at(i)}: {label}")
        unknown = sorted(set(p) - set(_PRINCIPLE_FIELDS) - set(_OPTIONAL_PRINCIPLE_FIELDS))
        if unknown:
            raise ConstitutionError(f"{at(i)}: {label}: unknown field(s) {', '.join(unknown)}")
        if not _ID.match(p["id"]):
            raise ConstitutionError(f"{at(i)}: {label}: id may hold only letters, digits, '-', '_', '.'")
        if p["id"] in seen:
            raise ConstitutionError(
                f"{at(i)}: {label}: duplicate id (first used by principle #{seen[p['id']] + 1})"
            )
        seen[p["id"]] = i
        principles.append(Principle(**{f: p[f].strip() for f in _PRINCIPLE_FIELDS},
                                    revision_opening=str(p.get("revision_opening", "")).strip()))
    return principles


def _check_opening(opening: str, where: str) -> None:
    """A revision opening may hold one placeholder, ``{task}`` (the request restated)."""
    if not isinstance(opening, str):
        return
    others = sorted(set(re.findall(r"\{[^{}]*\}", opening)) - {TASK_PLACEHOLDER})
    if others or opening.count(TASK_PLACEHOLDER) > 1:
        raise ConstitutionError(f"{where}: revision_opening may hold {TASK_PLACEHOLDER} once (the request restated) "
                                f"and no other placeholder; found {', '.join(others) or 'it twice'}")


def parse_constitution(text: str, *, name: str, where: str | None = None) -> Constitution:
    """Parse TOML text into a validated Constitution. Raises ConstitutionError."""
    where = where or f"{name}.toml"
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's TOMLDecodeError has no lineno attribute; the message ends with it.
        m = re.search(r"at line (\d+)", str(e))
        line = getattr(e, "lineno", None) or (m.group(1) if m else None)
        if line is None and "end of document" in str(e):
            line = text.count("\n") + 1  # an unfinished last line (editors often drop the final newline)
        raise ConstitutionError(f"{where}:{line or '?'}: TOML syntax error: {e}") from None
    except RecursionError:  # tomllib recurses per nesting level; a hostile file can exhaust the stack
        raise ConstitutionError(f"{where}:?: TOML syntax error: arrays or tables nested too deeply") from None
    principle_lines = _header_lines(text, "principles")
    example_lines = _header_lines(text, "examples")

    def at(lines: list[int], i: int) -> str:
        return f"{where}:{lines[i] if i < len(lines) else '?'}"

    principles = _principles(data.get("principles"), lambda i: at(principle_lines, i), where)
    seen = {p.id for p in principles}
    examples: list[Example] = []
    for i, e in enumerate(data.get("examples") or []):
        label = f"example #{i + 1}"
        for f in _EXAMPLE_FIELDS:
            if not isinstance(e.get(f), str) or not e[f].strip():
                raise ConstitutionError(f"{at(example_lines, i)}: {label}: missing or empty field {f!r}")
        if e["principle"] not in seen:
            raise ConstitutionError(f"{at(example_lines, i)}: {label}: unknown principle {e['principle']!r}")
        examples.append(Example(**{f: e[f].strip() for f in _EXAMPLE_FIELDS}))

    unknown_top = sorted(set(data) - {"title", "description", "principles", "examples"})
    if unknown_top:
        raise ConstitutionError(f"{where}:1: unknown top-level key(s) {', '.join(unknown_top)}")
    title = str(data.get("title", name)).strip()
    description = str(data.get("description", "")).strip()
    # The version hashes the parsed, normalised content, so a save that only changes
    # formatting (quotes, whitespace, comments, key order) keeps the version.
    canonical = {
        "title": title,
        "description": description,
        # an opening is hashed only when set, so constitutions without one keep their version
        "principles": [[p.id, p.critique, p.revision, p.preference, *([p.revision_opening] if p.revision_opening else [])]
                       for p in principles],
        "examples": [[e.principle, e.prompt, e.answer, e.critique, e.revision] for e in examples],
    }
    return Constitution(
        name=name,
        version=_version(canonical),
        title=title,
        description=description,
        principles=tuple(principles),
        examples=tuple(examples),
        source=text,
    )


def constitution_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """Search order: extra folders (e.g. the user's), ./constitutions, then the shipped ones."""
    dirs = [Path(d) for d in extra] + [Path.cwd() / "constitutions", SHIPPED_DIR]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def load_constitution(path: str | Path) -> Constitution:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ConstitutionError(f"{path}:{line}: not UTF-8 text (byte offset {e.start})") from None
    return parse_constitution(text, name=path.stem, where=str(path))


def list_constitutions(extra: Iterable[Path] = ()) -> dict[str, Path]:
    """Name -> file; earlier folders shadow later ones."""
    found: dict[str, Path] = {}
    for d in constitution_dirs(extra):
        for f in sorted(d.glob("*.toml")):
            found.setdefault(f.stem, f)
    return found


def find_constitution(name_or_path: str, extra: Iterable[Path] = ()) -> Constitution:
    """A constitution by NAME (file name without .toml) or by path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return load_constitution(p)
    found = list_constitutions(extra)
    if name_or_path not in found:
        raise ConstitutionError(
            f"no constitution named {name_or_path!r}; available: {', '.join(sorted(found)) or 'none'}"
        )
    return load_constitution(found[name_or_path])


def dump_constitution(c: Constitution) -> str:
    """TOML text for a constitution (used when the app saves an edited version)."""
    data: dict = {"title": c.title, "description": c.description}
    data["principles"] = [
        {"id": p.id, "critique": p.critique, "revision": p.revision, "preference": p.preference,
         **({"revision_opening": p.revision_opening} if p.revision_opening else {})}
        for p in c.principles
    ]
    if c.examples:
        data["examples"] = [
            {f: getattr(e, f) for f in _EXAMPLE_FIELDS} for e in c.examples
        ]
    return tomli_w.dumps(data)


def draw_principle(c: Constitution, *, seed: int, key: str) -> Principle:
    """Draw a principle at random, reproducibly: the same (seed, key) always gives the same
    principle, so a resumed run re-draws exactly what it drew before."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).choice(c.principles)
