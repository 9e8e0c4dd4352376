"""Read prompt sets from JSONL, CSV/TSV, plain text (one prompt a line) or a local HF
``datasets`` folder; normalise and dedupe. Errors name the file, the line and the problem.

JSONL (or a file holding one JSON array of rows) also takes the HH-RLHF shapes: rows of
``{"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": …}`` and red-team attempts (a
``transcript`` in the same form). The prompt is the transcript's first Human turn; later turns of
a multi-turn transcript are not kept, because a :class:`~cai_core.types.Prompt` is one user message.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .store import prompts as SP
from .types import SPLITS, Prompt, PromptSet, Split

__all__ = [
    "PromptFileError",
    "PromptRow",
    "read_prompt_file",
    "prompt_id",
    "normalise",
    "SHIPPED_DIR",
    "shipped_prompt_sets",
    "MAX_PROMPT_CHARS",
    "import_prompt_set",
    "add_prompt",
    "get_prompt_set",
    "list_prompt_sets",
    "prompts_of",
    "DEFAULT_HELD_OUT",
    "text_key",
    "split_of",
    "ensure_split",
    "resplit",
]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "prompt_sets"
MAX_PROMPT_CHARS = 20_000
"""Longer 'prompts' are almost always a broken file (a missing newline, a binary blob)."""
_CANDIDATE_COLUMNS = ("prompt", "text", "question", "instruction", "input", "query")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone UTF-16 half (a JSON "\\ud800" escape): not encodable text


class PromptFileError(ValueError):
    """A prompt file that cannot be imported; the message says where and why."""


@dataclass(frozen=True, slots=True)
class PromptRow:
    text: str
    category: str | None
    line: int
    """Where it came from (line or row number, 1-based), for error messages."""


def normalise(text: str) -> str:
    """The form used to detect duplicates: whitespace folded, case folded."""
    return " ".join(text.split()).casefold()


def prompt_id(set_id: str, text: str) -> str:
    return hashlib.sha256(f"{set_id}\n{normalise(text)}".encode()).hexdigest()[:16]


def shipped_prompt_sets() -> dict[str, Path]:
    """Prompt sets that ship with the project (name = file name without extension)."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.jsonl"))}


def _clean(text: str, where: str) -> str:
    text = _CONTROL.sub("", text).strip()  # NUL and other control bytes never reach the store
    if _SURROGATE.search(text):
        raise PromptFileError(f"{where}: invalid text (a lone surrogate escape such as \\ud800); fix that line")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptFileError(f"{where}: prompt is {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return text


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PromptFileError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "re-save the file as UTF-8"
        ) from None


def _pick_column(columns: list[str], column: str | None, where: str) -> str:
    if column:
        if column not in columns:
            raise PromptFileError(f"{where}: no column {column!r}; columns are: {', '.join(columns) or 'none'}")
        return column
    for c in _CANDIDATE_COLUMNS:
        if c in columns:
            return c
    raise PromptFileError(
        f"{where}: no prompt column found (looked for {', '.join(_CANDIDATE_COLUMNS)}); "
        f"columns are: {', '.join(columns) or 'none'}; choose one with --column"
    )


_HH_FIELDS = ("chosen", "rejected", "transcript")
"""HH-RLHF fields holding a ``\\n\\nHuman: … \\n\\nAssistant: …`` transcript, not a prompt."""
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def _first_human(text: str, where: str, field: str) -> str:
    """The first Human turn of an HH-RLHF transcript. A prompt is one user message (Prompt.text,
    sent as a single chat turn), so the later turns of a multi-turn transcript are not kept."""
    parts = _HH_TURN.split(text.strip())
    if parts[0].strip() or len(parts) < 3 or parts[1] != "Human":
        raise PromptFileError(f"{where}: {field!r} is not a Human/Assistant transcript (it should start '\\n\\nHuman:')")
    if not parts[2].strip():
        raise PromptFileError(f"{where}: the first Human turn of {field!r} is empty")
    return parts[2]


def _hh_prompt(obj: dict, where: str) -> str | None:
    """The prompt of an HH-RLHF row (chosen/rejected pair, or a red-team attempt's transcript),
    or None when the row is neither."""
    if isinstance(obj.get("chosen"), str) and isinstance(obj.get("rejected"), str):
        first = _first_human(obj["chosen"], where, "chosen")
        if normalise(first) != normalise(_first_human(obj["rejected"], where, "rejected")):
            raise PromptFileError(f"{where}: 'chosen' and 'rejected' start with different Human turns")
        return first
    if isinstance(obj.get("transcript"), str):
        return _first_human(obj["transcript"], where, "transcript")
    return None


def _json_row(obj: object, column: str | None, where: str, n: int) -> PromptRow:
    if isinstance(obj, str):
        return PromptRow(_clean(obj, where), None, n)
    if not isinstance(obj, dict):
        raise PromptFileError(f"{where}: expected a JSON object or string")
    cat = obj.get("category")
    cat = cat if isinstance(cat, str) else None
    if column is None and not any(c in obj for c in _CANDIDATE_COLUMNS):
        hh = _hh_prompt(obj, where)
        if hh is not None:
            return PromptRow(_clean(hh, where), cat, n)
    key = _pick_column(list(obj), column, where)
    value = obj[key]
    if not isinstance(value, str):
        raise PromptFileError(f"{where}: {key!r} is not text")
    if key in _HH_FIELDS:  # --column chosen / transcript: the transcript's first Human turn
        value = _first_human(value, where, key)
    return PromptRow(_clean(value, where), cat, n)


def _json_array(text: str) -> list | None:
    """The rows of a file holding one JSON array (as some released HH-RLHF files do), else None."""
    if not text.lstrip().startswith("["):
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None  # read line by line: the error then names its line
    return data if isinstance(data, list) else None


def _read_jsonl(path: Path, column: str | None) -> list[PromptRow]:
    text = _decode(path)
    array = _json_array(text)
    if array is not None:
        return [_json_row(obj, column, f"{path}[{n}]", n) for n, obj in enumerate(array, 1)]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptFileError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        except RecursionError:  # json recurses per nesting level; a hostile line can exhaust the stack
            raise PromptFileError(f"{path}:{n}: not valid JSON (nested too deeply)") from None
        rows.append(_json_row(obj, column, f"{path}:{n}", n))
    return rows


def _read_csv(path: Path, column: str | None) -> list[PromptRow]:
    text = _decode(path)
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    # Let csv read any field size so our own length check reports it with its line.
    csv.field_size_limit(2**31 - 1)
    try:
        reader = csv.DictReader(io.StringIO(text), dialect=dialect)
        key = _pick_column(list(reader.fieldnames or []), column, str(path))
        rows = []
        for rec in reader:
            value = rec.get(key)
            if value is None or not value.strip():
                continue
            rows.append(PromptRow(_clean(value, f"{path}:{reader.line_num}"), rec.get("category") or None, reader.line_num))
        return rows
    except csv.Error as e:
        raise PromptFileError(f"{path}: CSV error: {e}") from None


def _read_text(path: Path) -> list[PromptRow]:
    return [
        PromptRow(_clean(line, f"{path}:{n}"), None, n)
        for n, line in enumerate(_decode(path).splitlines(), 1)
        if line.strip()
    ]


def _read_dataset(path: Path, column: str | None) -> list[PromptRow]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception:
        try:  # a folder of data files (parquet/json/csv) that load_dataset understands
            ds = datasets.load_dataset(str(path))
        except Exception as e:
            raise PromptFileError(f"{path}: not a datasets folder ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    key = _pick_column(list(ds.column_names), column, str(path))
    cats = ds["category"] if "category" in ds.column_names else [None] * len(ds)
    rows = []
    for n, (value, cat) in enumerate(zip(ds[key], cats), 1):
        if isinstance(value, str) and value.strip():
            rows.append(PromptRow(_clean(value, f"{path}[{n}]"), cat if isinstance(cat, str) else None, n))
    return rows


def read_prompt_file(path: str | Path, *, column: str | None = None) -> list[PromptRow]:
    """Rows of a prompt file, deduplicated (first occurrence wins). Raises PromptFileError."""
    path = Path(path)
    if not path.exists():
        raise PromptFileError(f"{path}: no such file or folder")
    if path.is_dir():
        rows = _read_dataset(path, column)
    else:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            rows = _read_jsonl(path, column)
        elif suffix in (".csv", ".tsv"):
            rows = _read_csv(path, column)
        elif suffix in (".txt", ".text", ""):
            rows = _read_text(path)
        else:
            raise PromptFileError(f"{path}: unknown format {suffix!r} (use .jsonl, .csv, .tsv, .txt or a datasets folder)")
    seen: set[str] = set()
    unique = []
    for r in rows:
        key = normalise(r.text)
        if key and key not in seen:
            seen.add(key)
            unique.append(r)
    if not unique:
        raise PromptFileError(f"{path}: no prompts found (the file is empty or every row is blank)")
    return unique


# -- prompt sets in the store ------------------------------------------------------------
def import_prompt_set(store, path: str | Path, *, name: str | None = None, column: str | None = None) -> tuple["PromptSet", int, int]:
    """Import a file into the set ``name`` (default: the file's stem), creating it if new.
    Returns (set, prompts added, prompts already present). New prompts get their split from
    the set's recorded split rule (see :func:`ensure_split`)."""
    path = Path(path)
    rows = read_prompt_file(path, column=column)
    name = name or path.stem
    ps = SP.prompt_set_by_name(store, name)
    if ps is None:
        ps = PromptSet(id=hashlib.sha256(name.encode()).hexdigest()[:12], name=name, source=str(path) + (f"#{column}" if column else ""))
        SP.add_prompt_set(store, ps)
    start = SP.next_position(store, ps.id)
    before = SP.count_prompts(store, ps.id)
    seen = SP.prompt_ids(store, ps.id)
    new: list[Prompt] = []
    for r in rows:
        pid = prompt_id(ps.id, r.text)
        if pid not in seen:  # only new prompts take positions, so positions stay contiguous
            seen.add(pid)
            new.append(Prompt(id=pid, set_id=ps.id, position=start + len(new), text=r.text, category=r.category))
    SP.add_prompts(store, new)
    ensure_split(store, ps)
    added = SP.count_prompts(store, ps.id) - before
    return ps, added, len(rows) - added


def add_prompt(store, set_name: str, text: str) -> int:
    """Add one prompt by hand (into a new or existing set), read and checked like a file's.
    Returns how many were added (0: already in the set)."""
    import tempfile

    text = (text or "").strip()
    if not text:
        raise ValueError("the prompt is empty")
    if not set_name or not set_name.strip():
        raise ValueError("choose or name a prompt set")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        f.write(json.dumps({"prompt": text}) + "\n")
    try:
        _, added, _ = import_prompt_set(store, f.name, name=set_name.strip())
    finally:
        Path(f.name).unlink(missing_ok=True)
    return added


def get_prompt_set(store, name: str, *, auto_import_shipped: bool = True) -> PromptSet:
    """A prompt set by name; a shipped set (e.g. ``red-team``) is imported on first use."""
    ps = SP.prompt_set_by_name(store, name)
    if ps is not None:
        return ps
    shipped = shipped_prompt_sets()
    if auto_import_shipped and name in shipped:
        return import_prompt_set(store, shipped[name], name=name)[0]
    known = sorted(set(SP.prompt_set_names(store)) | set(shipped))
    raise KeyError(f"no prompt set named {name!r}; known: {', '.join(known) or 'none'} (import one with `cai prompts import FILE`)")


def list_prompt_sets(store) -> list[dict]:
    return SP.list_prompt_sets(store)


def prompts_of(store, set_id: str, *, split: Split | None = None, limit: int | None = None,
               offset: int = 0) -> list[Prompt]:
    """The set's prompts in order, only ``split`` when given (``None`` = every prompt); then
    ``offset`` skips the first ones and ``limit`` keeps the next K."""
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)} (or all)")
        ensure_split(store, set_id)
    return SP.prompts_of(store, set_id, split=split, limit=limit, offset=offset)


# -- splits: recorded, seeded, by the text -----------------------------------------------
DEFAULT_HELD_OUT = 0.2
"""Share of a set held out for evaluation unless the set was split otherwise."""
DEFAULT_SPLIT_SEED = 0


def text_key(text: str) -> str:
    """A prompt's identity across sets: the hash of its normalised text. Lineage checks use it,
    so a prompt imported twice (in two sets) is still recognised as trained on."""
    return hashlib.sha256(f"text\n{normalise(text)}".encode()).hexdigest()[:16]


def split_of(text: str, *, held_out: float, seed: int) -> Split:
    """The split of one prompt: a seeded hash of its normalised text, so adding prompts to a set
    never moves the others, and the same text lands in the same split in every set."""
    h = int(hashlib.sha256(f"split\x1f{seed}\x1f{normalise(text)}".encode()).hexdigest()[:12], 16) / 16**12
    return "held-out" if h < held_out else "train"


def _set_id(ps: PromptSet | str) -> str:
    return ps if isinstance(ps, str) else ps.id


def ensure_split(store, ps: PromptSet | str) -> tuple[float, int]:
    """Record the set's split (the default rule on first use) and give every prompt that has
    none its split. Returns (held-out share, seed)."""
    set_id = _set_id(ps)
    spec = SP.split_spec(store, set_id)
    if spec is None:
        spec = (DEFAULT_HELD_OUT, DEFAULT_SPLIT_SEED)
        SP.set_split_spec(store, set_id, *spec)
    todo = SP.unsplit_prompts(store, set_id)
    if todo:
        SP.assign_splits(store, set_id, {p.id: split_of(p.text, held_out=spec[0], seed=spec[1]) for p in todo})
    return spec


def resplit(store, ps: PromptSet | str, *, held_out: float = DEFAULT_HELD_OUT, seed: int = DEFAULT_SPLIT_SEED) -> dict[str, int]:
    """Split the set anew (another share or seed). Training lineage is unaffected: a snapshot
    records the prompts it trained on, so evaluation still refuses prompts a model has seen."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"the held-out share must be between 0 and 1 (exclusive), not {held_out}")
    set_id = _set_id(ps)
    SP.set_split_spec(store, set_id, held_out, seed)
    prompts = SP.prompts_of(store, set_id)
    SP.replace_splits(store, set_id, {p.id: split_of(p.text, held_out=held_out, seed=seed) for p in prompts})
    return SP.split_counts(store, set_id)
