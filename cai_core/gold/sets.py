"""Gold sets in the store: imported from a file, the shipped ones (``gold_sets/*.jsonl``), or made
from people's audits. Each pair's id, the side its better answer is shown on (A or B) and its
tune / test split are seeded hashes of its texts, so re-importing a file changes nothing and
the correct letter is A for about half the pairs."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from ..ids import stable_id
from ..store import Store
from ..store import gold as G
from ..store.browse import comparison_texts
from ..types import GoldSplit
from .formats import GoldPair, read_gold_file

__all__ = ["SHIPPED_DIR", "AUDITS", "DEFAULT_TUNE_FRACTION", "DEFAULT_GOLD_SEED", "shipped_gold_sets", "pair_rows",
           "import_gold", "audits_gold", "resolve_gold", "list_gold_sets"]

SHIPPED_DIR = Path(__file__).resolve().parent.parent.parent / "gold_sets"
AUDITS = "audits"
"""The gold set made from people's decisions (overrides, and accepts of A/B labels)."""
DEFAULT_TUNE_FRACTION = 0.4
"""Share of a file's pairs in the tune split (choose judge settings there, report on test)."""
DEFAULT_GOLD_SEED = 0


def shipped_gold_sets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.jsonl"))}


def _unit(*parts: object) -> float:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16**12


def _split(gp: GoldPair, tune_fraction: float, seed: int) -> GoldSplit:
    return "tune" if _unit("gold-split", seed, gp.prompt, gp.chosen, gp.rejected) < tune_fraction else "test"


def pair_rows(name: str, pairs: Sequence[GoldPair], *, tune_fraction: float, seed: int) -> list[dict[str, Any]]:
    """Store rows for a set's pairs: the better answer on side A or B by a seeded hash."""
    rows, seen = [], set()
    for gp in pairs:
        pid = stable_id("gold", name, gp.prompt, gp.chosen, gp.rejected)
        if pid in seen:
            continue  # the same labelled pair twice in a file counts once
        seen.add(pid)
        correct = "A" if _unit("gold-side", seed, pid) < 0.5 else "B"
        a, b = (gp.chosen, gp.rejected) if correct == "A" else (gp.rejected, gp.chosen)
        rows.append({"id": pid, "set_name": name, "prompt": gp.prompt, "answer_a": a, "answer_b": b, "correct": correct,
                     "category": gp.category, "note": gp.note, "source_id": gp.source_id, "format": gp.format,
                     "split": _split(gp, tune_fraction, seed)})
    return rows


def _counts(store: Store, name: str) -> dict[str, Any]:
    return next(s for s in G.gold_sets(store) if s["name"] == name)


def import_gold(store: Store, path: str | Path, *, name: str | None = None,
                tune_fraction: float = DEFAULT_TUNE_FRACTION, seed: int = DEFAULT_GOLD_SEED) -> dict[str, Any]:
    """Read a file of labelled comparisons (TRL preference, HH-RLHF or multiple choice) into a
    gold set (named after the file unless ``name``). Returns the set with its split counts."""
    if not 0.0 <= tune_fraction < 1.0:
        raise ValueError(f"the tune share must be in [0, 1), not {tune_fraction}")
    p = Path(path)
    name = name or p.stem
    if name == AUDITS:
        raise ValueError(f"{AUDITS!r} is the gold set of people's audits; name the file's set otherwise")
    G.save_gold_set(store, name, str(p), tune_fraction, seed,
                    pair_rows(name, read_gold_file(p), tune_fraction=tune_fraction, seed=seed))
    return _counts(store, name)


def audits_gold(store: Store) -> dict[str, Any]:
    """The gold set of people's standing decisions: overrides A/B, and accepts of an A/B label
    (category ``override`` / ``accept``; ties are no gold). All in the test split. Rebuilt on
    each call, so it follows the audits."""
    from ..labels.audits import human_decisions  # labels sit above the gold sets' storage

    decisions = {cid: d for cid, d in human_decisions(store).items()
                 if (d.action in ("A", "B")) or (d.action == "accept" and d.label in ("A", "B"))}
    texts = comparison_texts(store, sorted(decisions))
    rows = []
    for cid, d in sorted(decisions.items()):
        t = texts.get(cid)
        if t is None or not t["prompt"]:
            continue
        correct = d.action if d.action in ("A", "B") else d.label
        rows.append({"id": stable_id("gold", AUDITS, cid), "set_name": AUDITS, "prompt": t["prompt"],
                     "answer_a": t["answer_a"], "answer_b": t["answer_b"], "correct": correct,
                     "category": "override" if d.action in ("A", "B") else "accept",
                     "note": d.reason or f"audited by {d.author}", "source_id": cid, "format": "audit", "split": "test"})
    G.save_gold_set(store, AUDITS, AUDITS, 0.0, 0, rows)
    return _counts(store, AUDITS)


def resolve_gold(store: Store, spec: str) -> str:
    """The gold set that ``spec`` names: ``audits``; a file (imported, or re-imported: same
    rows, same ids); a set in the store; a shipped set (imported on first use)."""
    if spec == AUDITS:
        return audits_gold(store)["name"]
    p = Path(spec)
    if p.suffix in (".jsonl", ".json") or p.is_file():
        return import_gold(store, p)["name"]
    shipped = shipped_gold_sets()
    if spec in shipped:
        return import_gold(store, shipped[spec], name=spec)["name"]
    if G.gold_set(store, spec) is not None:
        return spec
    have = sorted({*shipped, *(s["name"] for s in G.gold_sets(store)), AUDITS})
    raise ValueError(f"no gold set or file {spec!r}; known sets: {', '.join(have)}")


def list_gold_sets(store: Store) -> list[dict[str, Any]]:
    """The store's gold sets with split counts, and shipped sets not imported yet (n = None)."""
    have = G.gold_sets(store)
    names = {s["name"] for s in have}
    return have + [{"name": n, "origin": str(p), "tune_fraction": DEFAULT_TUNE_FRACTION, "seed": DEFAULT_GOLD_SEED,
                    "n": None, "tune": None, "test": None} for n, p in shipped_gold_sets().items() if n not in names]
