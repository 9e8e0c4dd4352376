"""Constitution versions: save an edited constitution as a new version (older versions stay
in DuckDB, and every record keeps pointing at the version that produced it), diff two
versions, and a what-if that re-judges stored comparisons with a draft before it is saved."""
from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..backends.base import Backend
from ..constitutions import parse_constitution
from ..store import Store
from ..types import Comparison, Constitution

__all__ = ["record_version", "save_version", "versions_of", "version_source", "diff_versions", "WhatIfRow", "what_if"]


def record_version(store: Store, c: Constitution) -> None:
    store.insert("constitutions", [{"version": c.version, "name": c.name, "title": c.title, "source": c.source}])


def save_version(store: Store, name: str, text: str, folder: str | Path) -> Constitution:
    """Validate ``text`` and make it the current version of ``name`` (file written atomically
    in ``folder``, which is searched before the shipped constitutions)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad constitution name {name!r}")
    c = parse_constitution(text, name=name, where=f"{name}.toml")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, folder / f"{name}.toml")
    record_version(store, c)
    return c


def versions_of(store: Store, name: str) -> list[dict]:
    return store.query("SELECT version, title, created_at FROM constitutions WHERE name = ? ORDER BY created_at DESC", [name])


def version_source(store: Store, version: str) -> str:
    rows = store.query("SELECT source FROM constitutions WHERE version = ?", [version])
    if not rows:
        raise KeyError(f"no stored constitution version {version!r}")
    return rows[0]["source"]


def diff_versions(old_text: str, new_text: str) -> str:
    """A unified line diff (plain text: the UI shows it in a code box, never as HTML)."""
    lines = difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), "old", "new", lineterm="", n=2)
    return "\n".join(lines) or "(no differences)"


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    comparison_id: str
    prompt: str
    principle_id: str
    old_vote: str | None
    old_p_a: float | None
    new_vote: str | None
    new_p_a: float | None
    flipped: bool
    """The label for this principle changes under the draft."""


def _changed_principles(saved: Constitution | None, draft: Constitution) -> list[str]:
    if saved is None:
        return [p.id for p in draft.principles]
    old = {p.id: p.preference for p in saved.principles}
    return [p.id for p in draft.principles if old.get(p.id) != p.preference]


def what_if(store: Store, judge_backend: Backend, draft: Constitution, *, saved: Constitution | None = None,
            principle_ids: Sequence[str] | None = None, sample: int = 8, mode: str = "logprob") -> list[WhatIfRow]:
    """Re-judge up to ``sample`` stored comparisons per changed principle with the draft's
    wording (both orders, nothing written) and report which labels would flip."""
    from ..stages.judge import aggregate, judge
    from .audits import load_verdicts

    ids = list(principle_ids) if principle_ids else _changed_principles(saved, draft)
    rows: list[WhatIfRow] = []
    for pid in ids:
        principle = draft.principle(pid)
        cands = store.query(
            "SELECT DISTINCT c.id, c.run_id, c.prompt_id, c.source, c.answer_a, c.answer_b, c.model_a, c.model_b, "
            "c.parent_a, c.parent_b, p.text AS prompt FROM comparisons c JOIN prompts p ON p.id = c.prompt_id "
            "JOIN verdicts v ON v.comparison_id = c.id WHERE v.principle_id = ? ORDER BY c.id LIMIT ?", [pid, int(sample)])
        if not cands:
            continue
        comps = [Comparison(**{k: r[k] for k in r if k != "prompt"}) for r in cands]
        prompts = {r["prompt_id"]: r["prompt"] for r in cands}
        old = aggregate(v for v in load_verdicts(store, comparison_ids=[c.id for c in comps]) if v.principle_id == pid)
        new = aggregate(judge(comps, prompts, {c.id: [principle] for c in comps}, judge_backend, mode=mode,
                              constitution_version=draft.version, run_id="what-if"))
        for c in comps:
            o, n = old.get(c.id), new.get(c.id)
            rows.append(WhatIfRow(c.id, prompts[c.prompt_id], pid, o.vote if o else None, o.p_a if o else None,
                                  n.vote if n else None, n.p_a if n else None,
                                  (o.vote if o else None) != (n.vote if n else None)))
    return rows
