"""Import the Constitutional AI paper's released prompt files as a constitution (pure Python).

Bai et al. (2022) released their prompts as JSON files in three shapes. Each file's shape is
detected from its content, never from its name:

* **critique/revision instructions**: a JSON object ``{"harmful0": {"prompt": ["\\n\\nCritiqueRequest:
  …\\n\\nCritique:"], "edit_request": "\\n\\nRevisionRequest: …\\n\\nRevision:"}, …}``. Each key becomes one
  principle (its id: the key, with any character an id may not hold turned into ``-``); its critique
  is the request without the ``CritiqueRequest:`` / ``Critique:`` scaffolding, its revision the edit
  request without ``RevisionRequest:`` / ``Revision:``.
* **few-shot examples**: a JSON list of strings ``"\\n\\nHuman: …\\n\\nAssistant: …\\n\\nCritiqueRequest: …
  \\n\\nCritique: …\\n\\nRevisionRequest: …\\n\\nRevision: …"``, one or more Human/Assistant turns before one
  critique and one revision. They become the constitution's ``[[examples]]``.
* **RL-phase instructions**: a JSON list of preference questions, each ending ``Options:``. They
  become the principles' ``preference`` questions (``Options:`` removed: the judge template adds it).

Decisions (the README's "Importing the paper's files and HH-RLHF prompts" says the same):

* **Pairing.** Preference question *i* goes with critique principle *i* (file order), and the
  counts must match (the paper has 16 of each). Otherwise the import fails and says both counts:
  a :class:`~cai_core.types.Principle` needs a critique, a revision *and* a preference question
  (the SL phase draws every principle, so a preference-only principle would have no critique to
  ask, and a critique-only one nothing for ``cai judge`` to ask). For the same reason both files
  are required; the few-shot file is optional.
* **Multi-turn few-shot examples.** :class:`~cai_core.types.Example` holds one prompt and one
  answer, not a conversation. The answer is the last Assistant turn; the earlier turns are kept
  in the prompt as a transcript (``Human: …\\n\\nAssistant: …\\n\\nHuman: …``, the same form the gold
  importer gives a multi-turn prompt), so nothing the critique refers to is lost.
* **Which principle an example shows.** An example belongs to one principle, and it is shown with
  *that principle's* critique and revision requests (the type keeps no request of its own). It
  goes to the principle whose critique request is the same text (case and spacing aside), else to
  the one whose requests share most words with its own; the second case is reported in
  :attr:`PaperImport.notes` (the paper's few-shot requests are not among its 16 principles).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from .constitutions import ConstitutionError, dump_constitution, parse_constitution
from .types import Constitution, Example, Principle

__all__ = [
    "PaperImportError", "Shape", "SHAPES", "FewShot", "PaperFile", "PaperImport",
    "read_json", "detect_shape", "parse_critique_revisions", "parse_few_shots", "parse_preferences",
    "read_paper_file", "paper_constitution", "import_paper_files",
]

Shape = Literal["critique-revision", "few-shot", "preference"]
SHAPES: tuple[Shape, ...] = ("critique-revision", "few-shot", "preference")
_TAGS = ("Human", "Assistant", "CritiqueRequest", "Critique", "RevisionRequest", "Revision")
_SPLIT = re.compile(r"(?:^|\n\n)(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_WORD = re.compile(r"[a-z0-9']+")
_OPTIONS = "Options:"


class PaperImportError(ConstitutionError):
    """A paper prompt file that cannot be imported; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class FewShot:
    """One few-shot example as the paper writes it."""

    turns: tuple[tuple[str, str], ...]
    """(``Human`` | ``Assistant``, text) in order; the last one is the Assistant answer critiqued."""
    critique_request: str
    critique: str
    revision_request: str
    revision: str


@dataclass(frozen=True, slots=True)
class PaperFile:
    path: str
    shape: Shape
    items: tuple
    """(id, critique, revision) triples | :class:`FewShot` | preference questions, per shape."""


@dataclass(frozen=True, slots=True)
class PaperImport:
    constitution: Constitution
    toml: str
    """The constitution's TOML text (what is saved; it parses back to ``constitution``)."""
    files: tuple[PaperFile, ...]
    notes: tuple[str, ...] = ()
    """Things the person should know (an example attached to the closest principle)."""


# -- reading ---------------------------------------------------------------------------------------
def read_json(path: str | Path) -> object:
    """The parsed JSON of a file; errors name the file (and line) and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PaperImportError(f"{path}: no such file")
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PaperImportError(f"{path}: not UTF-8 (byte offset {e.start}); re-save the file as UTF-8") from None
    if not text.strip():
        raise PaperImportError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PaperImportError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise PaperImportError(f"{path}: not valid JSON (nested too deeply)") from None


def _looks_like_few_shot(item: object) -> bool:
    return isinstance(item, str) and "Human:" in item and "CritiqueRequest:" in item


def _looks_like_preference(item: object) -> bool:
    return isinstance(item, str) and item.strip().endswith(_OPTIONS)


def detect_shape(data: object, where: str) -> Shape:
    """Which of the three shapes ``data`` is (from the content only)."""
    if isinstance(data, dict):
        if not data:
            raise PaperImportError(f"{where}: an empty JSON object: no critique/revision instructions in it")
        return "critique-revision"
    if isinstance(data, list):
        if not data:
            raise PaperImportError(f"{where}: an empty JSON list: no few-shot examples or preference questions in it")
        first = data[0]
        if _looks_like_few_shot(first):
            return "few-shot"
        if _looks_like_preference(first):
            return "preference"
        raise PaperImportError(
            f"{where}: item #1 is neither a few-shot example (text with 'Human:', 'Assistant:', "
            f"'CritiqueRequest:', ... turns) nor a preference question (text ending '{_OPTIONS}')")
    raise PaperImportError(
        f"{where}: expected a JSON object (critique/revision instructions) or a JSON list (few-shot examples "
        f"or preference questions), not {type(data).__name__ if data is not None else 'null'}")


# -- the three shapes ------------------------------------------------------------------------------
def _unwrap(text: str, opening: str, closing: str) -> str:
    """``\\n\\nCritiqueRequest: X\\n\\nCritique:`` -> ``X``."""
    text = text.strip()
    if text.startswith(opening):
        text = text[len(opening):].strip()
    if text.endswith(closing):
        text = text[: -len(closing)].strip()
    return text


def _principle_id(key: str, where: str) -> str:
    pid = _BAD_ID_CHARS.sub("-", key.strip()).strip("-_.")
    if not pid:
        raise PaperImportError(f"{where}: key {key!r} cannot be a principle id (it needs a letter or digit)")
    return pid


def _request_text(value: object, label: str) -> str:
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], str):
            raise PaperImportError(f"{label}: expected one critique request (a list holding one string), "
                                   f"got a list of {len(value)}")
        value = value[0]
    if not isinstance(value, str):
        raise PaperImportError(f"{label}: expected text, not {type(value).__name__}")
    return value


def parse_critique_revisions(data: dict, where: str) -> list[tuple[str, str, str]]:
    """(principle id, critique request, revision request) per key, in file order."""
    out: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    for key, value in data.items():
        label = f"{where}: key {key!r}"
        if not isinstance(value, dict) or "prompt" not in value or "edit_request" not in value:
            found = ", ".join(map(repr, value)) if isinstance(value, dict) else type(value).__name__
            raise PaperImportError(f"{label}: expected an object with 'prompt' and 'edit_request' (found: {found or 'nothing'})")
        critique = _unwrap(_request_text(value["prompt"], f"{label}: 'prompt'"), "CritiqueRequest:", "Critique:")
        revision = _unwrap(_request_text(value["edit_request"], f"{label}: 'edit_request'"), "RevisionRequest:", "Revision:")
        for field, text in (("prompt", critique), ("edit_request", revision)):
            if not text:
                raise PaperImportError(f"{label}: {field!r} holds no request text")
        pid = _principle_id(key, where)
        if pid in seen:
            raise PaperImportError(f"{label}: gives the principle id {pid!r}, as key {seen[pid]!r} does")
        seen[pid] = key
        out.append((pid, critique, revision))
    return out


def _few_shot(text: str, label: str) -> FewShot:
    parts = _SPLIT.split(text.strip())
    if parts[0].strip():
        raise PaperImportError(f"{label}: text before the first 'Human:' turn ({parts[0].strip()[:40]!r})")
    pairs = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts), 2)]
    tags = [t for t, _ in pairs]
    n = len(tags) - 4
    dialogue_ok = n >= 2 and n % 2 == 0 and tags[:n] == ["Human", "Assistant"] * (n // 2)
    if not dialogue_ok or tags[n:] != list(_TAGS[2:]):
        raise PaperImportError(
            f"{label}: expected Human/Assistant turns, then one each of CritiqueRequest, Critique, "
            f"RevisionRequest, Revision; found {', '.join(tags) or 'no turns'}")
    empty = [t for t, body in pairs if not body]
    if empty:
        raise PaperImportError(f"{label}: the {empty[0]!r} turn is empty")
    bodies = [body for _, body in pairs[n:]]
    return FewShot(tuple(pairs[:n]), *bodies)


def _texts(data: list, where: str, what: str):
    """(label, text) of each item of a JSON list that must hold text only."""
    for i, item in enumerate(data, 1):
        label = f"{where}: {what} #{i}"
        if not isinstance(item, str):
            raise PaperImportError(f"{label}: expected text, not {type(item).__name__}")
        yield label, item


def parse_few_shots(data: list, where: str) -> list[FewShot]:
    return [_few_shot(item.replace("\r\n", "\n"), label) for label, item in _texts(data, where, "few-shot example")]


def _question(item: str, label: str) -> str:
    if not _looks_like_preference(item):
        raise PaperImportError(f"{label}: does not end with {_OPTIONS!r} ({item.strip()[-40:]!r})")
    question = item.strip()[: -len(_OPTIONS)].strip()
    if not question:
        raise PaperImportError(f"{label}: holds no question before {_OPTIONS!r}")
    return question


def parse_preferences(data: list, where: str) -> list[str]:
    return [_question(item, label) for label, item in _texts(data, where, "preference question")]


_PARSERS = {"critique-revision": parse_critique_revisions, "few-shot": parse_few_shots, "preference": parse_preferences}


def read_paper_file(path: str | Path) -> PaperFile:
    data = read_json(path)
    shape = detect_shape(data, str(path))
    return PaperFile(str(path), shape, tuple(_PARSERS[shape](data, str(path))))  # type: ignore[operator]


# -- to a constitution -----------------------------------------------------------------------------
def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _principle_for(shot: FewShot, principles: Sequence[Principle]) -> tuple[Principle, bool]:
    """(principle, exact): the principle with the same critique request, else the closest wording."""
    for p in principles:
        if _fold(p.critique) == _fold(shot.critique_request):
            return p, True
    mine = _words(f"{shot.critique_request} {shot.revision_request}")

    def overlap(p: Principle) -> float:
        theirs = _words(f"{p.critique} {p.revision}")
        return len(mine & theirs) / (len(mine | theirs) or 1)
    return max(principles, key=overlap), False  # max keeps the first of equals


def _example(shot: FewShot, principle: Principle) -> Example:
    *earlier, (_, answer) = shot.turns
    if len(earlier) == 1:
        prompt = earlier[0][1]
    else:  # a conversation: the transcript up to the last Human turn (Example holds one prompt)
        prompt = "\n\n".join(f"{role}: {text}" for role, text in earlier)
    return Example(principle=principle.id, prompt=prompt, answer=answer, critique=shot.critique,
                   revision=shot.revision)


def _one(files: Sequence[PaperFile], shape: Shape, needed_for: str) -> PaperFile:
    found = [f for f in files if f.shape == shape]
    if not found:
        raise PaperImportError(f"none of the files holds {shape} instructions ({needed_for}); "
                               f"given: {', '.join(f'{f.path} ({f.shape})' for f in files)}")
    if len(found) > 1:
        raise PaperImportError(f"two files hold {shape} instructions ({found[0].path} and {found[1].path}); give one")
    return found[0]


def _paired(crit: PaperFile, pref: PaperFile) -> list[Principle]:
    if len(crit.items) != len(pref.items):
        raise PaperImportError(
            f"{crit.path} has {len(crit.items)} critique/revision principles but {pref.path} has "
            f"{len(pref.items)} preference questions: they are paired in order, so the counts must match "
            "(every principle needs a critique, a revision and a preference question)")
    return [Principle(id=pid, critique=c, revision=r, preference=q)
            for (pid, c, r), q in zip(crit.items, pref.items)]


def paper_constitution(files: Sequence[PaperFile], *, name: str, title: str | None = None) -> PaperImport:
    """The constitution the parsed files make, round-tripped through its TOML text."""
    crit = _one(files, "critique-revision", "every principle needs its critique and revision requests")
    pref = _one(files, "preference", "`cai judge` asks each principle's preference question")
    principles = _paired(crit, pref)
    examples, notes = [], []
    for f in (f for f in files if f.shape == "few-shot"):
        for i, shot in enumerate(f.items, 1):
            principle, exact = _principle_for(shot, principles)
            examples.append(_example(shot, principle))
            if not exact:
                notes.append(f"{f.path}: few-shot example #{i}: its critique request is none of the principles'; "
                             f"attached to {principle.id!r} (closest wording), shown with that principle's requests")
    # no file names in the text: the same content imported from anywhere is the same version
    draft = Constitution(
        name=name, version="", title=title or name, principles=tuple(principles), examples=tuple(examples),
        description=f"Imported from the Constitutional AI paper's prompt files: {len(principles)} critique/revision "
                    f"principles paired in order with {len(principles)} preference questions, {len(examples)} "
                    "few-shot examples.")
    text = dump_constitution(draft)
    return PaperImport(parse_constitution(text, name=name, where=f"{name}.toml"), text, tuple(files), tuple(notes))


def import_paper_files(paths: Sequence[str | Path], *, name: str, title: str | None = None) -> PaperImport:
    """Read, check and convert the paper's files (any order, shapes detected) into a constitution."""
    if not paths:
        raise PaperImportError("no files given: pass the critique/revision, preference (and optionally few-shot) files")
    if not name or not name.strip():
        raise PaperImportError("name the constitution (--name NAME)")
    return paper_constitution([read_paper_file(p) for p in paths], name=name.strip(), title=title)
