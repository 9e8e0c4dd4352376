"""Preference pairs by construction, no judge: the shape of the Hugging Face Constitutional AI
dataset's ``train_prefs`` (chosen = the revision, rejected = the first answer), plus a benign side
so the policy also learns what not to refuse.

* **Harmful** (``sl_runs``): for each prompt of an SL run, its final revision (acceptable: not
  flagged, so an on-topic explained objection when revision search ran) is chosen over the
  model's first answer to it (a compliance, or a bare refusal).
* **Benign** (``helpful_runs`` + ``refusal_runs``): for each benign prompt that a trained model
  refused (an answers-only SL run of that model, ``cai --model sft sl --prompts benign --rounds
  0``; the response classifier reads its answer as objection or evasive), the base model's
  helpful answer (a helpful sample, as SFT mixes in) is chosen over that refusal.

* **Reasons** (``harmful_rejected`` with ``bare``): the revision over the same refusal with its
  reason cut off ("I won't help you X, because it could harm innocent people." over "I won't help
  you X."): both sides refuse, so the pair teaches explaining an objection, not refusing more.

Every pair names the records it came from; the same selection gives the same records and hash.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from ..prompt_sets import text_key
from ..store import Store
from ..store.runs import run_kind
from ..store.sl import answers_of_runs, final_revisions

__all__ = ["ContrastSnapshot", "contrast_records"]

HARMFUL_REJECTED = ("first", "bare")
"""What a revision is preferred over: the first answer, or the revision without its reason."""
_REASON = re.compile(r",?\s+because\b", re.IGNORECASE)

LABEL_SOURCE = "construction"
"""``label_source`` of these pairs: chosen by how they were made, not by a judge or a person."""


@dataclass(frozen=True, slots=True)
class ContrastSnapshot:
    records: list[dict]
    """TRL preference format (prompt, chosen, rejected; p_chosen 1) plus where each side came from."""
    content_hash: str
    selection: dict = field(default_factory=dict)
    harmful: int = 0
    """Pairs of the SL runs (revision over first answer)."""
    benign: int = 0
    """Pairs of the benign side (helpful answer over a refusal of it)."""
    left_out: dict = field(default_factory=dict)
    """Why candidates did not become pairs: flagged_revision (no acceptable revision), same_text,
    answered (the trained model did not refuse), incoherent, flagged_answer, no_helpful_answer,
    no_reason_clause (a revision with no "because" to cut), over_ratio."""

    @property
    def prompt_keys(self) -> list[str]:
        return sorted({text_key(r["prompt"]) for r in self.records})


def _check_sl(store: Store, runs: Sequence[str], what: str) -> None:
    for run in runs:
        if run_kind(store, run) != "sl":
            raise ValueError(f"{run}: not an SL run ({what})")


def _pair(prompt: str, chosen: str, rejected: str, source: str, **ids) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "p_chosen": 1.0, "margin": 1.0,
            "label_source": LABEL_SOURCE, "source": source, **ids}


def without_reason(revision: str) -> str | None:
    """The refusal with its reason cut off: the text before the first "because", closed with a
    full stop; None when there is no "because" (or nothing before it)."""
    m = _REASON.search(revision)
    head = revision[:m.start()].rstrip(" ,;:") if m else ""
    return f"{head}." if head else None


def _harmful_pairs(store: Store, sl_runs: Sequence[str], harmful_rejected: tuple[str, ...],
                   drop) -> list[dict]:
    """Each acceptable final revision over its first answer and/or over itself without its reason."""
    firsts = {(a["run_id"], a["prompt_id"]): a for a in answers_of_runs(store, list(sl_runs))}
    records = []
    for r in final_revisions(store, list(sl_runs)):
        first = firsts.get((r["run_id"], r["prompt_id"]))
        if first is None or r["round"] < 1:
            continue
        if r["flags"]:
            drop("flagged_revision")
            continue
        ids = dict(run_id=r["run_id"], prompt_id=r["prompt_id"], chosen_id=r["revision_id"])
        if "first" in harmful_rejected:
            if r["revision"].strip() == first["answer"].strip():
                drop("same_text")
            else:
                records.append(_pair(r["prompt"], r["revision"], first["answer"], "sl", **ids,
                                     rejected_id=first["generation_id"]))
        if "bare" in harmful_rejected:
            bare = without_reason(r["revision"])
            if bare is None:
                drop("no_reason_clause")
            else:
                records.append(_pair(r["prompt"], r["revision"], bare, "sl-bare", **ids, rejected_id=r["revision_id"]))
    return records


def _benign_pairs(store: Store, helpful_runs: Sequence[str], refusal_runs: Sequence[str], drop) -> list[dict]:
    """A helpful answer over each refusal (objection or evasive) of the same benign prompt, in a
    fixed order (by the refusal's id hash)."""
    from ..ids import stable_id

    from ..stages.compare.response_class import classify_response, response_class_of
    from .snapshots import helpful_answers

    helpful: dict[str, dict] = {}
    for h in helpful_answers(store, helpful_runs)[0]:  # in a fixed order: the first per prompt wins
        helpful.setdefault(text_key(h["messages"][0]["content"]), h)
    benign = []
    for a in answers_of_runs(store, list(refusal_runs)):
        cls = response_class_of(classify_response(a["answer"], a["prompt"]))
        if cls == "comply":
            drop("answered")
        elif cls == "incoherent":
            drop("incoherent")
        elif a["flags"]:
            drop("flagged_answer")
        elif (h := helpful.get(text_key(a["prompt"]))) is None:
            drop("no_helpful_answer")
        else:
            benign.append(_pair(a["prompt"], h["messages"][1]["content"], a["answer"], "helpful",
                                run_id=a["run_id"], prompt_id=a["prompt_id"], chosen_id=h["generation_id"],
                                rejected_id=a["generation_id"]))
    return sorted(benign, key=lambda r: stable_id("contrast", r["rejected_id"]))


def contrast_records(store: Store, *, sl_runs: Sequence[str], helpful_runs: Sequence[str] = (),
                     refusal_runs: Sequence[str] = (), benign_ratio: float | None = None,
                     harmful_rejected: Sequence[str] = ("first",)) -> ContrastSnapshot:
    """Pairs by construction from the selected runs (see the module docstring). ``benign_ratio``:
    at most that many benign pairs per harmful pair (None: all), kept in a fixed order (by answer
    id hash), so the same selection gives the same records. ``harmful_rejected``: what each
    acceptable revision is preferred over, ``first`` (its first answer) and/or ``bare`` (itself
    without its reason)."""
    if benign_ratio is not None and benign_ratio < 0:
        raise ValueError("benign_ratio must be 0 or more")
    harmful_rejected = tuple(dict.fromkeys(harmful_rejected))
    if not harmful_rejected or set(harmful_rejected) - set(HARMFUL_REJECTED):
        raise ValueError(f"harmful_rejected must be some of {', '.join(HARMFUL_REJECTED)}, not {list(harmful_rejected)}")
    if bool(helpful_runs) != bool(refusal_runs):
        raise ValueError("the benign side needs both helpful runs (chosen) and refusal runs (rejected)")
    _check_sl(store, sl_runs, "harmful pairs are an SL run's revisions over its first answers")
    _check_sl(store, refusal_runs, "refusal runs are a trained model's answers to benign prompts: "
                                   "`cai --model sft sl --prompts benign --rounds 0`")
    left_out: dict[str, int] = {}

    def drop(why: str) -> None:
        left_out[why] = left_out.get(why, 0) + 1

    records = _harmful_pairs(store, sl_runs, harmful_rejected, drop)
    harmful = len(records)
    benign = _benign_pairs(store, helpful_runs, refusal_runs, drop) if refusal_runs else []
    if benign_ratio is not None and len(benign) > (cap := int(benign_ratio * harmful)):
        left_out["over_ratio"] = len(benign) - cap
        benign = benign[:cap]
    records += benign
    selection = {"contrast": True, "sl_runs": list(sl_runs), "helpful_runs": list(helpful_runs),
                 "refusal_runs": list(refusal_runs)}
    if benign_ratio is not None:
        selection["benign_ratio"] = benign_ratio
    if harmful_rejected != ("first",):  # the default: the same selection as before the option existed
        selection["harmful_rejected"] = list(harmful_rejected)
    body = json.dumps([[x["prompt"], x["chosen"], x["rejected"]] for x in records], ensure_ascii=False)
    return ContrastSnapshot(records, hashlib.sha256(body.encode()).hexdigest()[:16], selection, harmful,
                            len(records) - harmful, dict(sorted(left_out.items())))
