"""Frozen record dataclasses. Each record names its parent, so any row traces back to its
prompt, constitution version, model and seed (DESIGN.md rule 2)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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


def as_row(record: Any) -> dict[str, Any]:
    """A record as a dict of column values (tuples become lists for DuckDB)."""
    row = asdict(record)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
