"""The batch-first backend protocol every model source implements.

A stage builds a list of :class:`Request` and calls ``backend.generate(requests)`` once
(rule 1 of DESIGN.md); a backend decides itself how to batch, pad, parallelise or retry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

__all__ = [
    "Message",
    "GenerationParams",
    "Request",
    "Completion",
    "Backend",
    "LogprobsUnsupported",
    "FailedScores",
    "chat",
]


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant"]
    """Who speaks: chat-template role."""
    content: str
    """What is said (untrusted text when it comes from a model or a prompt file)."""


def chat(*turns: tuple[str, str]) -> tuple[Message, ...]:
    """``chat(("user", "hi"), ("assistant", "hello"))`` -> a tuple of messages."""
    return tuple(Message(role, content) for role, content in turns)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_new_tokens: int = 128
    """Upper bound on generated tokens."""
    temperature: float = 0.0
    """0 means greedy decoding; > 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass (only when sampling)."""
    repetition_penalty: float = 1.0
    """>1 discourages repeats (local backend; ignored by servers that lack it)."""
    seed: int | None = None
    """Sampling seed; recorded with every output so a run can be reproduced."""
    stop: tuple[str, ...] = ()
    """Cut the completion before the first of these strings."""

    def as_dict(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class Request:
    messages: tuple[Message, ...]
    """The conversation so far, ending with a user turn."""
    params: GenerationParams = field(default_factory=GenerationParams)
    """How to decode."""
    continuation: str = ""
    """Text the assistant's reply is forced to begin with (e.g. ``"The answer is: ("``);
    the completion holds only what comes after it."""


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    """Generated text after ``Request.continuation`` (stop strings removed)."""
    finish_reason: Literal["stop", "length", "error"]
    """``stop``: EOS or a stop string; ``length``: hit max_new_tokens; ``error``: failed."""
    prompt_tokens: int | None = None
    """Tokens in the rendered prompt, when the backend knows."""
    completion_tokens: int | None = None
    """Tokens generated, when the backend knows."""
    error: str | None = None
    """Why the request failed (only with ``finish_reason == "error"``); never a secret."""

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"


class FailedScores(dict):
    """What ``choice_logprobs`` returns for an item that failed for good: NaN for every
    choice (still a ``dict[str, float]``), carrying the reason in ``error``."""

    def __init__(self, choices: Sequence[str], error: str) -> None:
        super().__init__({c: float("nan") for c in choices})
        self.error = error


class LogprobsUnsupported(RuntimeError):
    """The backend (or the server behind it) cannot score choice strings."""


@runtime_checkable
class Backend(Protocol):
    id: str
    """Stable name of the model behind the backend, recorded on every record it makes."""

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """One completion per request, in order. Must not raise for a single bad item:
        a failed item comes back with ``finish_reason="error"``."""
        ...

    def choice_logprobs(
        self, requests: Sequence[Request], choices: Sequence[str]
    ) -> list[dict[str, float]]:
        """For each request, log P(choice | rendered prompt + continuation) per choice.
        An item that failed for good comes back with NaN for every choice (never raises for
        one item). Raises :class:`LogprobsUnsupported` when the backend cannot score."""
        ...
