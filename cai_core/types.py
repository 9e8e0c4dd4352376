"""Frozen record dataclasses and the project's vocabularies.

Each record names its parent, so any row traces back to its prompt, constitution version, model
and seed (DESIGN.md rule 2). Each vocabulary is a ``Literal`` type with ONE registry (the tuple
next to it): parsers, validators and the app's choices read the registry, never a copy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from .ids import stable_id

__all__ = [
    "TrainKind", "TRAIN_KINDS", "RLKind", "RL_KINDS", "PREFERENCE_KINDS", "POLICY_KINDS",
    "StageKind", "STAGE_KINDS", "RunKind", "RUN_KINDS", "train_run_kind",
    "RunStatus", "RUN_STATUSES",
    "JudgeMode", "JUDGE_MODES", "DEFAULT_JUDGE_MODE", "QueueStrategy", "QUEUE_STRATEGIES", "LOGPROB_MODES", "GoldSplit", "GOLD_SPLITS",
    "ComparisonSource", "COMPARISON_SOURCES", "PREFERENCE_SOURCES",
    "AuditAction", "AUDIT_ACTIONS", "DECISIVE_ACTIONS", "ResponseClass", "RESPONSE_CLASSES", "ResponseLabel",
    "Split", "SPLITS",
    "BackendKind", "BACKEND_KINDS",
    "Principle",
    "Example",
    "Constitution",
    "PromptSet",
    "Prompt",
    "Run",
    "Generation",
    "Critique",
    "Revision",
    "RevisionCandidate",
    "Failure",
    "Comparison",
    "Verdict",
    "Audit",
    "Checkpoint",
    "as_row",
]

# -- vocabularies ----------------------------------------------------------------------------------
TrainKind = Literal["sft", "reward", "dpo", "ppo", "rloo", "grpo"]  # RLKind's members last
TRAIN_KINDS: tuple[TrainKind, ...] = get_args(TrainKind)
RLKind = Literal["ppo", "rloo", "grpo"]
RL_KINDS: tuple[RLKind, ...] = get_args(RLKind)
"""Kinds that improve a policy against a reward model, starting from the SFT checkpoint."""
PREFERENCE_KINDS: tuple[TrainKind, ...] = ("reward", "dpo")
"""Kinds that train on a preference snapshot (chosen/rejected pairs)."""
POLICY_KINDS: tuple[TrainKind, ...] = ("dpo", *RL_KINDS)
"""Kinds that improve a policy in the RL phase, starting from the SFT checkpoint."""

StageKind = Literal["sl", "pairs", "judge", "compare", "what-if", "validate"]
STAGE_KINDS: tuple[StageKind, ...] = get_args(StageKind)
RunKind = str
"""A stage kind, or ``train-<TrainKind>`` for a training run (see :func:`train_run_kind`)."""


def train_run_kind(kind: TrainKind) -> str:
    return f"train-{kind}"


RUN_KINDS: tuple[str, ...] = (*STAGE_KINDS, *(train_run_kind(k) for k in TRAIN_KINDS))

RunStatus = Literal["running", "finished", "incomplete", "cancelled", "failed", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)

JudgeMode = Literal["logprob", "calibrated", "fewshot", "pointwise", "cot", "cot-forced"]
JUDGE_MODES: tuple[JudgeMode, ...] = get_args(JudgeMode)
"""How a judge decides (see :mod:`cai_core.stages.judge.modes`): ``logprob`` next-token P(A)/P(B);
``calibrated`` the same, minus the letter prior measured on content-free inputs; ``fewshot``
calibrated, after worked examples; ``pointwise``
P(Yes) per answer, each shown alone (no position at all); ``cot`` reasoning, then a clamped verdict;
``cot-forced`` the same, the verdict scored after the reasoning when it states none."""
DEFAULT_JUDGE_MODE: JudgeMode = "calibrated"
"""Chosen on the gold set's tune split and confirmed on its test split (bench/judge_validation.md):
the same labels as ``logprob``, with a fifth fewer verdicts that follow position, at ~10 % more
scoring. No mode of the embedded 135M judge is better than chance there."""
LOGPROB_MODES: tuple[JudgeMode, ...] = ("logprob", "calibrated", "fewshot", "pointwise")
COT_MODES: tuple[JudgeMode, ...] = ("cot", "cot-forced")
"""Modes that generate reasoning first (decoding parameters are part of their configuration)."""
"""Modes that score tokens (need a backend with log-probs) and give soft labels."""

GoldSplit = Literal["tune", "test"]
GOLD_SPLITS: tuple[GoldSplit, ...] = get_args(GoldSplit)
"""A gold set's recorded split: ``tune`` to choose judge settings on, ``test`` to report on."""

ComparisonSource = Literal["samples", "sl", "compare"]
COMPARISON_SOURCES: tuple[ComparisonSource, ...] = get_args(ComparisonSource)
PREFERENCE_SOURCES: tuple[ComparisonSource, ...] = ("samples", "sl")
"""Sources whose comparisons may become training data. ``compare`` pairs are evaluation: never."""

AuditAction = Literal["accept", "A", "B", "tie", "skip", "undo"]
AUDIT_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)
DECISIVE_ACTIONS: tuple[AuditAction, ...] = ("accept", "A", "B", "tie")

ResponseClass = Literal["comply", "objection", "evasive", "incoherent"]
"""What an answer did, as people label it and reports count it: complied (with or without a
disclaimer), gave an explained objection, evaded (boilerplate refusal or deflection), or is
incoherent / empty. The classifier's finer kinds roll up into these."""
RESPONSE_CLASSES: tuple[ResponseClass, ...] = get_args(ResponseClass)
"""Actions that decide a label (a skip decides nothing, an undo cancels)."""

QueueStrategy = Literal["random", "stratified", "disagreement", "uncertain"]
QUEUE_STRATEGIES: tuple[QueueStrategy, ...] = get_args(QueueStrategy)
"""How the audit queue orders comparisons (see :mod:`cai_core.labels.queue`)."""

Split = Literal["train", "held-out"]
SPLITS: tuple[Split, ...] = get_args(Split)

BackendKind = Literal["local", "ct2", "openai", "scripted"]
BACKEND_KINDS: tuple[BackendKind, ...] = get_args(BackendKind)


# -- records ---------------------------------------------------------------------------------------
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
    revision_opening: str = ""
    """Optional words every revision for this principle starts with (forced after
    ``Revision:``), e.g. "I won't help with that, because": a format a small model can follow."""


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
    status: RunStatus = "running"
    """incomplete: some items failed; interrupted: a training process gone without a verdict."""


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
class RevisionCandidate:
    """One of the revisions sampled for a (prompt, round) when an SL run searches several: its
    text, the scorer's reading of it, and whether it became the round's :class:`Revision`."""

    id: str
    run_id: str
    prompt_id: str
    round: int
    revision_id: str
    """The round's revision (its text is the kept candidate's)."""
    idx: int
    """0 = the greedy revision; 1.. = samples at ``temperature``."""
    temperature: float
    text: str
    finish_reason: str
    flags: tuple[str, ...] = ()
    """Quality flags of the text, plus the scorer's (e.g. ``copied_example``)."""
    kind: str = ""
    """The response classifier's kind (objection, refusal, deflection, ...)."""
    relevance: float | None = None
    """Share of the request's content words the text uses (None: too few to tell)."""
    score: float = 0.0
    acceptable: bool = False
    """Good enough to train on: the search stops at the first acceptable candidate."""
    kept: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """An item a backend failed on (after its retries). Kept as history; a rerun retries the
    item because its record is still missing. Build one with :meth:`of` (the one id recipe)."""

    id: str
    run_id: str
    item: str
    """The id the missing record would have had; a rerun retries it."""
    stage: str
    error: str

    @classmethod
    def of(cls, run_id: str, item: str, stage: str, error: str | None) -> "Failure":
        """The same failure (run, stage, item, error) always gets the same id: recording it
        again is a no-op, a different error on a retry is a new row."""
        error = error or "unknown error"
        return cls(stable_id("failure", run_id, stage, item, error), run_id, item, stage, error)


@dataclass(frozen=True, slots=True)
class Comparison:
    id: str
    run_id: str | None
    """The run that made the pair (sampling run, or the SL run for first-vs-revision pairs)."""
    prompt_id: str
    source: ComparisonSource
    """``samples`` (two samples of one model) | ``sl`` (first answer vs final revision) |
    ``compare`` (evaluation pairs: never training data)."""
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
    mode: JudgeMode
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
    action: AuditAction
    """``accept`` confirms the AI label; A/B/tie override it; ``undo`` cancels the author's last action."""
    reason: str | None = None
    label: Literal["A", "B", "tie"] | None = None
    """``accept`` only: the AI label the person saw and confirmed (what training then uses)."""
    p_a: float | None = None
    """``accept`` only: that label's P(answer_a is better)."""
    judge_runs: tuple[str, ...] = ()
    """``accept`` only: the judge runs whose verdicts made that label."""


@dataclass(frozen=True, slots=True)
class ResponseLabel:
    """A person's label of one evaluation answer. Appended, never updated: the newest label of
    an answer counts."""

    id: str
    generation_id: str
    """The answer labelled (a compare run's generation)."""
    run_id: str
    """The compare run it belongs to."""
    model_name: str
    """The name the model was compared under (base, sft, ...)."""
    author: str
    label: ResponseClass
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    run_id: str
    """The training run that produced it."""
    path: str
    base_model: str
    """The model the run started from (a name or folder)."""
    kind: TrainKind
    snapshot_hash: str | None
    config: dict[str, Any] = field(default_factory=dict)


def as_row(record: Any) -> dict[str, Any]:
    """A record as a dict of column values (tuples become lists for DuckDB)."""
    row = asdict(record)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
