"""Backend for any OpenAI-compatible chat server (vLLM, TGI, llama.cpp, Ollama, OpenAI).

Every request is an independent ``POST {base_url}/chat/completions``; a batch is fanned out
over a thread pool.  Transient faults (connection errors, timeouts, 429, 5xx, garbled
bodies) are retried with capped exponential back-off, and an item that still fails comes
back as an error :class:`Completion` so one bad prompt never sinks a whole stage.

The API key is read from the environment at call time and never stored on the object, so
it cannot leak through ``repr``, ``id`` or error strings.
"""
from __future__ import annotations

import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

import httpx

from .base import Completion, FailedScores, LogprobsUnsupported, Request

__all__ = ["OpenAIBackend"]

_SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")
R = TypeVar("R")

# The OpenAI API rejects more than four stop sequences; the rest are applied locally.
_MAX_SERVER_STOPS = 4
_TOP_LOGPROBS = 20


class _Malformed(Exception):
    """The server answered 2xx but the body is not what the API promises (worth a retry)."""


class _RequestFailed(Exception):
    """A request failed for good; the message is short and secret-free."""


def _strip_userinfo(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except Exception:  # an unparsable URL has no userinfo we can find; show it as given
        return url
    if not parsed.userinfo:
        return url
    return str(parsed.copy_with(username=None, password=None))


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class OpenAIBackend:
    """Batch backend speaking the OpenAI ``/chat/completions`` protocol."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        concurrency: int = 8,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = max(1, int(concurrency))
        self.id = f"openai:{model}@{_strip_userinfo(self.base_url)}"
        self._url = f"{self.base_url}/chat/completions"
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=max(self.concurrency, 10)),
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(id={self.id!r}, api_key_env={self.api_key_env!r})"

    # -- public API ---------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self._map(self._generate_one, requests)

    def choice_logprobs(
        self, requests: Sequence[Request], choices: Sequence[str]
    ) -> list[dict[str, float]]:
        return self._map(lambda r: self._logprobs_one(r, choices), requests)

    def close(self) -> None:
        # A caller-supplied client may be shared, so only close the one we made.
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- per-item work ------------------------------------------------------------------

    def _generate_one(self, req: Request) -> Completion:
        p = req.params
        payload = self._payload(req, max_tokens=p.max_new_tokens, temperature=p.temperature)
        payload["top_p"] = p.top_p
        if p.seed is not None:
            payload["seed"] = p.seed
        if p.stop:
            payload["stop"] = list(p.stop[:_MAX_SERVER_STOPS])
        try:
            body = self._post(payload, _check_message)
        except _RequestFailed as e:
            return Completion(text="", finish_reason="error", error=str(e))
        except Exception as e:  # a per-item bug must not take down the batch
            return Completion(text="", finish_reason="error", error=self._scrub(type(e).__name__))
        choice = body["choices"][0]
        # A lone surrogate ("\ud800" in the JSON) is not text: it could be neither stored nor
        # sent back in the next request, so it becomes U+FFFD here.
        text: str = _SURROGATE.sub("\ufffd", choice["message"]["content"])
        # Some servers echo the forced prefix back, others return only what follows it.
        if req.continuation and text.startswith(req.continuation):
            text = text[len(req.continuation):]
        # Servers may ignore or truncate the stop list, so enforce it here as well.
        text, cut = _cut_at_stop(text, p.stop)
        finish = "length" if choice.get("finish_reason") == "length" and not cut else "stop"
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )

    def _logprobs_one(self, req: Request, choices: Sequence[str]) -> dict[str, float]:
        payload = self._payload(req, max_tokens=1, temperature=0)
        payload.update(logprobs=True, top_logprobs=_TOP_LOGPROBS)
        try:
            top = self._post(payload, self._parse_top_logprobs)
        except _RequestFailed as e:
            return FailedScores(choices, str(e))
        scores: dict[str, float] = {}
        for c in choices:
            # Tokenisers differ on whether the leading space is part of the token.
            hits = [lp for tok, lp in top if tok.strip() == c.strip()]
            scores[c] = max(hits) if hits else -math.inf
        return scores

    def _parse_top_logprobs(self, body: Any) -> list[tuple[str, float]]:
        choice = _check_choice(body)
        lp = choice.get("logprobs")
        if not lp:
            raise LogprobsUnsupported(
                f"server at {_strip_userinfo(self.base_url)} returned no logprobs; "
                "it does not support logprobs/top_logprobs for chat completions"
            )
        try:
            content = lp.get("content")
            if isinstance(content, list):
                return [(t["token"], float(t["logprob"])) for t in content[0]["top_logprobs"]]
            legacy = lp["top_logprobs"]  # completions shape: [{token: logprob}, ...]
            return [(tok, float(v)) for tok, v in legacy[0].items()]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise _Malformed(f"bad logprobs ({type(e).__name__})") from None

    # -- plumbing -----------------------------------------------------------------------

    def _payload(self, req: Request, *, max_tokens: int, temperature: float) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        payload: dict[str, Any] = {"model": self.model, "messages": messages,
                                   "max_tokens": max_tokens, "temperature": temperature}
        if req.continuation:
            # vLLM's extension to force the reply prefix; other servers ignore the flags.
            messages.append({"role": "assistant", "content": req.continuation})
            payload.update(continue_final_message=True, add_generation_prompt=False)
        return payload

    def _post(self, payload: dict[str, Any], parse: Callable[[Any], R]) -> R:
        attempts = self.max_retries + 1
        reason = "no attempt made"
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                resp = self._client.post(self._url, json=payload, headers=self._headers())
            except httpx.TimeoutException:
                reason = "timeout"
            except httpx.RequestError as e:
                # Exception text can carry the URL (and its userinfo); the type name can't.
                reason = f"connection error ({type(e).__name__})"
            else:
                code = resp.status_code
                if code == 429 or code >= 500:
                    reason = f"HTTP {code}"
                    retry_after = _parse_retry_after(resp.headers.get("retry-after"))
                elif code >= 300:
                    raise _RequestFailed(self._scrub(f"HTTP {code} (not retried)"))
                else:
                    try:
                        return parse(resp.json())
                    except ValueError:  # json.JSONDecodeError and friends
                        reason = "malformed response (invalid JSON)"
                    except _Malformed as e:
                        reason = f"malformed response ({e})"
            if attempt + 1 < attempts:
                delay = retry_after if retry_after is not None else self.backoff * 2**attempt
                time.sleep(max(0.0, min(delay, self.max_backoff)))
        raise _RequestFailed(self._scrub(f"{reason} after {attempts} attempts"))

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _scrub(self, text: str) -> str:
        # Belt and braces: no error message we build should contain the key, but make sure.
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)))
        try:
            futures = [pool.submit(fn, item) for item in items]
            return [f.result() for f in futures]
        except BaseException:
            # e.g. LogprobsUnsupported: every other item would fail the same way, so stop.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # the HTTP-date form is rare for APIs; fall back to back-off
        return None


def _check_choice(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise _Malformed("missing choices")
    if not body["choices"] or not isinstance(body["choices"][0], dict):
        raise _Malformed("empty choices")
    return body["choices"][0]


def _check_message(body: Any) -> Any:
    message = _check_choice(body).get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise _Malformed("choice without message content")
    return body
