"""Frozen record dataclasses. Each record names its parent, so any row traces back to its
prompt, constitution version, model and seed (DESIGN.md rule 2)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "Principle",
    "Example",
    "Constitution",
    "PromptSet",
    "Prompt",
    "Run",
    "Generation",
    "Critique",
    "Revision",
    "Failure",
    "Comparison",
    "Verdict",
    "Audit",
    "Checkpoint",
    "as_row",
]


@dataclass(frozen=True, slots=True)
class Principle:
    id: str
    """Unique within its constitution (kebab-case)."""
    critique: str
    """Critique request shown to the model after its answer."""
    revision: str
    """Revision request shown after the critique."""
    preference: str
    """A/B question for the judge in the RL phase."""


@dataclass(frozen=True, slots=True)
class Example:
    principle: str
    """Id of the principle this few-shot example demonstrates."""
    prompt: str
    answer: str
    critique: str
    revision: str


@dataclass(frozen=True, slots=True)
class Constitution:
    name: str
    """File name without ``.toml``."""
    version: str
    """Content hash (12 hex chars) of the canonical parsed content."""
    title: str
    description: str
    principles: tuple[Principle, ...]
    examples: tuple[Example, ...] = ()
    source: str = ""
    """The TOML text it was parsed from (kept so any version can be shown and reloaded)."""

    def principle(self, principle_id: str) -> Principle:
        for p in self.principles:
            if p.id == principle_id:
                return p
        raise KeyError(f"constitution {self.name!r} has no principle {principle_id!r}")


@dataclass(frozen=True, slots=True)
class PromptSet:
    id: str
    name: str
    """Unique human name (``--prompts NAME``)."""
    source: str
    """Where it was imported from (file path or dataset folder and column)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    """Hash of (set id, normalised text): re-importing the same text is a no-op."""
    set_id: str
    position: int
    """Order within the set (first occurrence wins on duplicates)."""
    text: str
    category: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    kind: str
    """Stage that the run executes, e.g. ``sl``."""
    config_hash: str
    """Hash of the settings that define the run; the same command finds the same run."""
    config: dict[str, Any]
    model: str
    """Backend id of the model that generated."""
    constitution_version: str | None
    prompt_set_id: str | None
    seed: int
    status: str = "running"
    """running | finished | incomplete (some items failed) | cancelled | failed."""


@dataclass(frozen=True, slots=True)
class Generation:
    id: str
    run_id: str
    prompt_id: str
    text: str
    """The model's first answer."""
    finish_reason: str
    flags: tuple[str, ...] = ()
    """Quality flags (empty, repetition, prompt_echo, truncated): flagged, never dropped."""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Critique:
    id: str
    run_id: str
    prompt_id: str
    parent_id: str
    """The generation (round 1) or revision (later rounds) being critiqued."""
    round: int
    """1-based critique/revision round."""
    principle_id: str
    """Drawn at random per round from the run's seed; recorded for reproduction."""
    constitution_version: str
    cot: bool
    request: str
    """The critique request exactly as sent."""
    text: str
    finish_reason: str
    flags: tuple[str, ...] = ()
    model: str = ""


@dataclass(frozen=True, slots=True)
class Revision:
    id: str
    run_id: str
    prompt_id: str
    critique_id: str
    round: int
    principle_id: str
    request: str
    """The revision request exactly as sent."""
    text: str
    """The revised answer (prefix such as ``Revision:`` removed)."""
    finish_reason: str
    flags: tuple[str, ...] = ()
    model: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    id: str
    run_id: str
    item: str
    """The id the missing record would have had; a rerun retries it."""
    stage: str
    error: str


@dataclass(frozen=True, slots=True)
class Comparison:
    id: str
    run_id: str | None
    """The run that made the pair (sampling run, or the SL run for first-vs-revision pairs)."""
    prompt_id: str
    source: str
    """``samples`` (two samples of one model) | ``sl`` (first answer vs final revision) | ``compare``."""
    answer_a: str
    answer_b: str
    model_a: str | None = None
    model_b: str | None = None
    parent_a: str | None = None
    """Id of the record answer A came from (generation/revision), when there is one."""
    parent_b: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    id: str
    """Deterministic: (run, comparison, principle, judge, mode, order) -> one verdict."""
    run_id: str | None
    comparison_id: str
    """The pair of answers being judged."""
    principle_id: str
    constitution_version: str
    judge: str
    """Backend id of the judge model."""
    mode: Literal["logprob", "cot"]
    ab_order: Literal["AB", "BA"]
    """``AB``: answer_a shown first; ``BA``: answer_b shown first (cancels position bias)."""
    raw: str
    """The judge's full text (CoT) or its choice log-probs as JSON; kept even when parsing fails."""
    choice: Literal["A", "B"] | None
    """The better answer *of the comparison* (A = answer_a), or None when unparseable."""
    p_first: float | None
    """P(first shown answer is better), from log-probs or a clamped CoT verdict."""
    p_a: float | None
    """P(answer_a is better), i.e. p_first mapped through the order."""


@dataclass(frozen=True, slots=True)
class Audit:
    id: str
    comparison_id: str
    verdict_id: str | None
    """The verdict the person looked at (None: a judgement of the pair as a whole)."""
    author: str
    action: Literal["accept", "A", "B", "tie", "skip", "undo"]
    """``accept`` keeps the AI label; A/B/tie override it; ``undo`` cancels the author's last action."""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    run_id: str
    """The training run that produced it."""
    path: str
    base_model: str
    """The model the run started from (a name or folder)."""
    kind: str
    """sft | reward | ppo | rloo | grpo."""
    snapshot_hash: str | None
    config: dict[str, Any] = field(default_factory=dict)


def as_row(record: Any) -> dict[str, Any]:
    """A record as a dict of column values (tuples become lists for DuckDB)."""
    row = asdict(record)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
