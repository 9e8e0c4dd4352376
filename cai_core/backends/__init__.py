"""Backends behind one batch-first protocol; ``make_backend`` picks one from settings."""
from __future__ import annotations

from .base import Backend, Completion, GenerationParams, LogprobsUnsupported, Message, Request, chat

__all__ = [
    "Backend", "Completion", "GenerationParams", "LogprobsUnsupported", "Message", "Request", "chat",
    "make_backend",
]


def make_backend(kind: str, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 device: str | None = None, dtype: str = "auto", batch_size: int = 64, concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 4, logprob_mode: str = "auto") -> Backend:
    if kind == "local":
        from .hf_local import HFLocalBackend

        return HFLocalBackend(model, device=device, dtype=dtype, batch_size=batch_size)
    if kind == "ct2":
        from .ct2 import CT2Backend

        # --batch-size is per call for transformers; CTranslate2 splits a call into
        # sub-batches itself, so it gets at least 32 (measured: smaller sub-batches are slower).
        return CT2Backend(model, batch_size=max(batch_size, 32))
    if kind == "openai":
        from .openai_http import OpenAIBackend

        if not base_url:
            raise ValueError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIBackend(base_url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                             max_retries=max_retries, logprob_mode=logprob_mode)
    if kind == "scripted":
        from .scripted import ScriptedBackend

        return ScriptedBackend(f"scripted:{model}")
    raise ValueError(f"unknown backend {kind!r} (local | ct2 | openai | scripted)")
