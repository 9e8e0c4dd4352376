"""Stage: critique -> revision rounds (the SL phase of Constitutional AI).

Each round shows the model the prompt and its current answer, asks for a critique against a
principle, then asks for a revision given that critique. Few-shot examples from the
constitution precede the conversation; they matter a lot for small models.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..backends.base import Backend, Completion, GenerationParams, Message, Request, chat
from ..ids import stable_id
from ..prompts import render
from ..quality import output_flags
from ..types import Constitution, Critique, Example, Principle, Prompt, Revision
from .restate import TASK_PLACEHOLDER, restate_task
from .sentences import TRIMMED, first_sentences

__all__ = [
    "CRITIQUE_PREFIX",
    "REVISION_PREFIX",
    "critique_id",
    "revision_id",
    "Turn",
    "shown_examples",
    "few_shot_turns",
    "render_critique",
    "parse_critique",
    "render_revision",
    "parse_revision",
    "revision_opening",
    "critique_step",
    "revision_step",
]

CRITIQUE_PREFIX = "Critique:"
REVISION_PREFIX = "Revision:"


def critique_id(run_id: str, prompt_id: str, round: int) -> str:
    return stable_id("critique", run_id, prompt_id, round)


def revision_id(run_id: str, prompt_id: str, round: int) -> str:
    return stable_id("revision", run_id, prompt_id, round)


@dataclass(frozen=True, slots=True)
class Turn:
    """One prompt's state entering a step of a round."""

    prompt: Prompt
    round: int
    principle: Principle
    answer: str
    """The answer being critiqued/revised (first answer or the last revision)."""
    parent_id: str
    """Id of the record holding ``answer``."""
    critique: Critique | None = None
    """Set for the revision step."""


def shown_examples(examples: Sequence[Example], principle: Principle, k: int) -> list[Example]:
    """The k examples shown before a critique or revision: those for the drawn principle first."""
    return sorted(examples, key=lambda e: e.principle != principle.id)[:k] if k > 0 else []


def few_shot_turns(examples: Sequence[Example], principle: Principle, k: int, constitution: Constitution) -> tuple[Message, ...]:
    """k examples, those for the drawn principle first, as earlier chat turns."""
    turns: list[tuple[str, str]] = []
    for e in shown_examples(examples, principle, k):
        p = constitution.principle(e.principle)
        turns += [
            ("user", e.prompt),
            ("assistant", e.answer),
            ("user", p.critique),
            ("assistant", f"{CRITIQUE_PREFIX} {e.critique}"),
            ("user", p.revision),
            ("assistant", f"{REVISION_PREFIX} {e.revision}"),
        ]
    return chat(*turns)


def _strip_prefix(text: str, prefix: str) -> str:
    text = text.strip()
    # models often repeat the forced prefix ("Revision: Revision: ...")
    while text.lower().startswith(prefix.lower()):
        text = text[len(prefix) :].strip()
    return text


def _critique_request(t: Turn, cot: bool) -> str:
    return render("critique_cot" if cot else "critique", request=t.principle.critique)


def render_critique(t: Turn, *, shots: tuple[Message, ...], cot: bool, params: GenerationParams) -> Request:
    msgs = shots + chat(("user", t.prompt.text), ("assistant", t.answer), ("user", _critique_request(t, cot)))
    return Request(msgs, params, continuation=CRITIQUE_PREFIX)


def parse_critique(t: Turn, out: Completion, *, run_id: str, backend_id: str, constitution: Constitution, cot: bool) -> Critique:
    text = _strip_prefix(out.text, CRITIQUE_PREFIX)
    request = _critique_request(t, cot)
    return Critique(
        id=critique_id(run_id, t.prompt.id, t.round),
        run_id=run_id,
        prompt_id=t.prompt.id,
        parent_id=t.parent_id,
        round=t.round,
        principle_id=t.principle.id,
        constitution_version=constitution.version,
        cot=cot,
        request=request,
        text=text,
        finish_reason=out.finish_reason,
        flags=output_flags(text, finish_reason=out.finish_reason, echo_of=(request, t.prompt.text)),
        model=backend_id,
    )


def _revision_request(t: Turn) -> str:
    return render("revision", request=t.principle.revision)


def render_revision(t: Turn, *, shots: tuple[Message, ...], params: GenerationParams) -> Request:
    assert t.critique is not None
    msgs = shots + chat(
        ("user", t.prompt.text),
        ("assistant", t.answer),
        ("user", t.critique.request),
        ("assistant", f"{CRITIQUE_PREFIX} {t.critique.text}"),
        ("user", _revision_request(t)),
    )
    opening = revision_opening(t)
    return Request(msgs, params, continuation=f"{REVISION_PREFIX} {opening}" if opening else REVISION_PREFIX)


def revision_opening(t: Turn) -> str:
    """The principle's forced revision opening for this turn, ``{task}`` filled with the request
    restated (:func:`~cai_core.stages.restate.restate_task`); "" when the principle has none."""
    opening = t.principle.revision_opening
    return opening.replace(TASK_PLACEHOLDER, restate_task(t.prompt.text)) if TASK_PLACEHOLDER in opening else opening


_LEADING_LABEL = re.compile(r"^(?:assistant|response)\s*:\s*", re.IGNORECASE)
def parse_revision(t: Turn, out: Completion, *, run_id: str, backend_id: str, sentences: int = 0) -> Revision:
    """``sentences`` > 0: keep only the revision's first that many complete sentences (the cut is
    recorded as finish_reason ``trimmed``; text without a complete sentence is kept whole)."""
    assert t.critique is not None
    text = _LEADING_LABEL.sub("", _strip_prefix(out.text, REVISION_PREFIX))
    opening = revision_opening(t)
    if opening:  # the forced opening is part of the revision
        text = f"{opening} {text}".strip() if text else ""
    finish = out.finish_reason
    kept = first_sentences(text, sentences) if sentences and finish != "error" else None
    if kept is not None and kept != text.strip():
        text, finish = kept, TRIMMED
    request = _revision_request(t)
    return Revision(
        id=revision_id(run_id, t.prompt.id, t.round),
        run_id=run_id,
        prompt_id=t.prompt.id,
        critique_id=t.critique.id,
        round=t.round,
        principle_id=t.principle.id,
        request=request,
        text=text,
        finish_reason=finish,
        flags=output_flags(
            text, finish_reason=finish, echo_of=(request, t.prompt.text, t.critique.text), previous=t.answer
        ),
        model=backend_id,
    )


def critique_step(
    turns: Sequence[Turn], backend: Backend, constitution: Constitution, *, run_id: str,
    cot: bool, few_shot: int, params: GenerationParams,
) -> list[tuple[Turn, Completion, Critique | None]]:
    reqs = [
        render_critique(t, shots=few_shot_turns(constitution.examples, t.principle, few_shot, constitution), cot=cot, params=params)
        for t in turns
    ]
    outs = backend.generate(reqs)
    return [
        (t, o, parse_critique(t, o, run_id=run_id, backend_id=backend.id, constitution=constitution, cot=cot) if o.ok else None)
        for t, o in zip(turns, outs)
    ]


def revision_step(
    turns: Sequence[Turn], backend: Backend, constitution: Constitution, *, run_id: str,
    few_shot: int, params: GenerationParams, sentences: int = 0,
) -> list[tuple[Turn, Completion, Revision | None]]:
    reqs = [
        render_revision(t, shots=few_shot_turns(constitution.examples, t.principle, few_shot, constitution), params=params)
        for t in turns
    ]
    outs = backend.generate(reqs)
    return [
        (t, o, parse_revision(t, o, run_id=run_id, backend_id=backend.id, sentences=sentences) if o.ok else None)
        for t, o in zip(turns, outs)
    ]
