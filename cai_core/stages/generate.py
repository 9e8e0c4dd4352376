"""Stage: prompts -> first answers."""
from __future__ import annotations

from typing import Callable, Sequence

from ..backends.base import Backend, Completion, GenerationParams, Request, chat
from ..ids import stable_id
from ..quality import output_flags
from ..types import Generation, Prompt
from .restate import TASK_PLACEHOLDER, restate_task
from .sentences import TRIMMED, complete_part

__all__ = ["generation_id", "answer_opening", "render_answer", "parse_answer", "first_answers", "side_by_side"]


def generation_id(run_id: str, prompt_id: str) -> str:
    return stable_id("generation", run_id, prompt_id)


def answer_opening(prompt: Prompt, opening: str) -> str:
    """A forced answer opening for this prompt, ``{task}`` filled with the request restated."""
    return opening.replace(TASK_PLACEHOLDER, restate_task(prompt.text)) if TASK_PLACEHOLDER in opening else opening


def render_answer(prompt: Prompt, params: GenerationParams, opening: str = "") -> Request:
    """The request alone; with ``opening``, the answer is made to start with it (the model
    continues it: e.g. a trained model's own refusal of a benign request, for contrast pairs)."""
    forced = answer_opening(prompt, opening)
    return Request(chat(("user", prompt.text)), params, continuation=forced) if forced else Request(chat(("user", prompt.text)), params)


def parse_answer(prompt: Prompt, out: Completion, *, run_id: str, backend_id: str, params: GenerationParams,
                 trim_truncated: bool = False, opening: str = "") -> Generation:
    """``trim_truncated``: an answer the token cap cut off mid-sentence is cut back to its last
    complete sentence (finish_reason ``trimmed``) when that keeps most of it, instead of being
    flagged ``truncated``. ``opening``: the forced opening, part of the answer."""
    text, finish = out.text.strip(), out.finish_reason
    forced = answer_opening(prompt, opening)
    if forced:
        text = f"{forced} {text}".strip() if text else ""
    if trim_truncated and finish == "length":
        kept = complete_part(text)
        if kept is not None:
            text, finish = kept, TRIMMED
    return Generation(
        id=generation_id(run_id, prompt.id),
        run_id=run_id,
        prompt_id=prompt.id,
        text=text,
        finish_reason=finish,
        flags=output_flags(text, finish_reason=finish, echo_of=(prompt.text,)),
        model=backend_id,
        params=params.as_dict(),
        prompt_tokens=out.prompt_tokens,
        completion_tokens=out.completion_tokens,
    )


def first_answers(
    prompts: Sequence[Prompt], backend: Backend, params: GenerationParams, *, run_id: str, trim_truncated: bool = False,
    opening: str = "",
) -> list[tuple[Prompt, Completion, Generation | None]]:
    """One batched call; failed items come back with ``None`` instead of a record."""
    outs = backend.generate([render_answer(p, params, opening) for p in prompts])
    return [
        (p, o, parse_answer(p, o, run_id=run_id, backend_id=backend.id, params=params, trim_truncated=trim_truncated,
                            opening=opening)
         if o.ok else None)
        for p, o in zip(prompts, outs)
    ]


def side_by_side(backends: dict[str, Callable[[], Backend]], prompt: str, *, max_new_tokens: int = 160) -> dict[str, str]:
    """The same prompt to several models (greedy, the same settings): name -> answer (or the
    error). ``backends``: name -> a function loading the model."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise ValueError("type a prompt first")
    req = Request(chat(("user", prompt)), GenerationParams(max_new_tokens=int(max_new_tokens), repetition_penalty=1.1))
    out: dict[str, str] = {}
    for name, load in backends.items():
        c = load().generate([req])[0]
        out[name] = c.text if c.ok else f"[error: {c.error}]"
    return out
