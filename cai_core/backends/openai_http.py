"""Backend for any OpenAI-compatible chat server (vLLM, TGI, llama.cpp, Ollama, OpenAI).

Every request is an independent ``POST {base_url}/chat/completions``; a batch is fanned out
over a thread pool.  Transient faults (connection errors, timeouts, 429, 5xx, garbled
bodies) are retried with capped exponential back-off, and an item that still fails comes
back as an error :class:`Completion` so one bad prompt never sinks a whole stage.

The API key is read from the environment at call time and never stored on the object, so
it cannot leak through ``repr``, ``id`` or error strings.

Scoring choices (``choice_logprobs``) has two modes:

* ``prefix``: the reply is forced to begin with ``Request.continuation`` through vLLM's
  ``continue_final_message`` extension, and the first generated token's ``top_logprobs`` are
  read (the token after "The answer is: (").
* ``letter``: for servers that ignore that extension (OpenAI itself, llama.cpp's servers,
  ...) and would answer "The answer is (A)", so that the first token is "The": no prefix is
  forced; the last user message asks for the option alone ("Answer with the letter of your
  choice only (A or B)."), and the first token's ``top_logprobs`` are matched against the
  choices after stripping spaces and parentheses (case-sensitive).

``auto`` (the default) probes once per backend, on its first scoring call: the first request
that has a continuation goes out in ``prefix`` mode; if the likeliest first token is one of the
choices (or the choices hold half the probability) the server honours the prefix (and that
answer is used); otherwise, or when the server rejects the request with a 4xx, every request
is scored in ``letter`` mode. ``logprob_mode`` then names the mode chosen (and a log line says
so: a warning for ``letter``).
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

import httpx

from .base import Completion, FailedScores, LogprobsUnsupported, Request

__all__ = ["OpenAIBackend", "LOGPROB_MODES", "letter_instruction"]

log = logging.getLogger(__name__)

LOGPROB_MODES = ("auto", "prefix", "letter")
"""How ``choice_logprobs`` scores: probe the server once (``auto``), force the reply prefix
(``prefix``, vLLM's ``continue_final_message``) or ask for the option alone (``letter``)."""

_SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")
R = TypeVar("R")

# The OpenAI API rejects more than four stop sequences; the rest are applied locally.
_MAX_SERVER_STOPS = 4
_TOP_LOGPROBS = 20


class _Malformed(Exception):
    """The server answered 2xx but the body is not what the API promises (worth a retry)."""


class _RequestFailed(Exception):
    """A request failed for good; the message is short and secret-free. ``retryable``: it
    failed on transient faults (the server may answer later), not on a 4xx refusal."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


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
        logprob_mode: str = "auto",
    ) -> None:
        if logprob_mode not in LOGPROB_MODES:
            raise ValueError(f"logprob_mode must be one of {', '.join(LOGPROB_MODES)}, not {logprob_mode!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = max(1, int(concurrency))
        self.id = f"openai:{model}@{_strip_userinfo(self.base_url)}"
        self._url = f"{self.base_url}/chat/completions"
        self.logprob_mode = logprob_mode
        """``prefix`` or ``letter``; ``auto`` until the first scoring call has probed the server."""
        self.logprob_mode_reason = "forced by the caller" if logprob_mode != "auto" else "not probed yet"
        self._probe_lock = threading.Lock()
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
        requests = list(requests)
        probed: dict[int, dict[str, float]] = {}
        if self.logprob_mode == "auto":
            with self._probe_lock:
                at = next((i for i, r in enumerate(requests) if r.continuation), None)
                if self.logprob_mode == "auto" and at is not None:
                    probed[at] = self._probe(requests[at], choices)
                    if self.logprob_mode == "auto":  # the server did not answer: decide next call
                        reason = getattr(probed[at], "error", "no answer")
                        return [FailedScores(choices, f"{reason} (probing the log-prob mode)") for _ in requests]
        mode = "prefix" if self.logprob_mode == "auto" else self.logprob_mode
        todo = [r for i, r in enumerate(requests) if i not in probed]
        scored = iter(self._map(lambda r: self._logprobs_one(r, choices, mode), todo))
        return [probed[i] if i in probed else next(scored) for i in range(len(requests))]

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

    def _probe(self, req: Request, choices: Sequence[str]) -> dict[str, float]:
        """Score ``req`` in prefix mode and decide the mode from the answer (see the module doc);
        the scores of ``req`` in the mode chosen, or :class:`FailedScores` when the server did not
        answer (the mode stays ``auto``). :class:`LogprobsUnsupported` propagates."""
        try:
            top = self._post(self._logprob_payload(req, choices, "prefix"), self._parse_top_logprobs)
        except _RequestFailed as e:
            if e.retryable:
                return FailedScores(choices, str(e))
            self._decide("letter", f"the server refused continue_final_message ({e})")
            return self._logprobs_one(req, choices, "letter")
        scores = _match(top, choices, "prefix")
        best = max(top, key=lambda t: t[1])[0] if top else ""
        mass = sum(math.exp(v) for v in scores.values() if math.isfinite(v))
        # A choice merely somewhere in the top 20 proves nothing: a fresh reply to a multiple-choice
        # question often has "A" there (llama.cpp, SmolLM2: "The" -1.19, "A" -2.03). After a
        # continued "The answer is: (" the choices are the likeliest tokens by far.
        if best.strip() in {c.strip() for c in choices} or mass >= 0.5:
            self._decide("prefix", "the server continues a forced reply prefix (continue_final_message): "
                                   f"first token {best!r}")
            return scores
        self._decide("letter", f"with a forced prefix {req.continuation!r} the likeliest first token was {best!r}, "
                               f"not one of {list(choices)}: the server ignores continue_final_message")
        return self._logprobs_one(req, choices, "letter")

    def _decide(self, mode: str, reason: str) -> None:
        self.logprob_mode, self.logprob_mode_reason = mode, reason
        (log.warning if mode == "letter" else log.info)(
            "%s: log-prob judging in %s mode (%s)", _strip_userinfo(self.base_url), mode, reason)

    def _logprobs_one(self, req: Request, choices: Sequence[str], mode: str) -> dict[str, float]:
        try:
            top = self._post(self._logprob_payload(req, choices, mode), self._parse_top_logprobs)
        except _RequestFailed as e:
            return FailedScores(choices, str(e))
        return _match(top, choices, mode)

    def _logprob_payload(self, req: Request, choices: Sequence[str], mode: str) -> dict[str, Any]:
        if mode == "letter":
            payload = self._payload(req, max_tokens=1, temperature=0, force_prefix=False)
            payload["messages"] = _letter_messages(req, choices)
        else:
            payload = self._payload(req, max_tokens=1, temperature=0)
        payload.update(logprobs=True, top_logprobs=_TOP_LOGPROBS)
        return payload

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

    def _payload(self, req: Request, *, max_tokens: int, temperature: float,
                 force_prefix: bool = True) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        payload: dict[str, Any] = {"model": self.model, "messages": messages,
                                   "max_tokens": max_tokens, "temperature": temperature}
        if req.continuation and force_prefix:
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
                    raise _RequestFailed(self._scrub(f"HTTP {code} (not retried)"), retryable=False)
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
        raise _RequestFailed(self._scrub(f"{reason} after {attempts} attempts"), retryable=True)

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


def _norm(token: str) -> str:
    return token.strip().strip("()").strip()


def _match(top: Sequence[tuple[str, float]], choices: Sequence[str], mode: str) -> dict[str, float]:
    """log P per choice from the first token's ``top_logprobs`` (-inf when absent).

    ``prefix``: a token equal to the choice up to surrounding spaces (tokenisers differ on
    whether the leading space is part of the token); the best such token.  ``letter``: a token
    equal to the choice up to spaces and parentheses ("A", " A", "(A", "A)"); these are
    different ways to give the same answer, so their probabilities add up."""
    key = (lambda t: t.strip()) if mode == "prefix" else _norm
    scores: dict[str, float] = {}
    for c in choices:
        hits = [lp for tok, lp in top if key(tok) == key(c)]
        if not hits:
            scores[c] = -math.inf
        elif mode == "prefix":
            scores[c] = max(hits)
        else:
            m = max(hits)
            scores[c] = m + math.log(sum(math.exp(h - m) for h in hits)) if math.isfinite(m) else m
    return scores


def letter_instruction(choices: Sequence[str]) -> str:
    """What ``letter`` mode asks for instead of forcing "The answer is: (": the option alone."""
    labels = [_norm(c) for c in choices]
    options = " or ".join(labels)
    if all(len(x) == 1 and x.isalpha() for x in labels):
        return f"Answer with the letter of your choice only ({options})."
    return f"Answer with {options} only."


def _letter_messages(req: Request, choices: Sequence[str]) -> list[dict[str, str]]:
    """The chat of ``letter`` mode.  A continuation's last line is the forced stub ("The answer
    is: (", "Answer:"), replaced by :func:`letter_instruction` at the end of the last user
    message; what comes before that line (reasoning already written, as in ``cot-forced``)
    becomes the assistant's turn, followed by a user turn with the instruction."""
    messages = [{"role": m.role, "content": m.content} for m in req.messages]
    head, _, _stub = req.continuation.rpartition("\n")
    instruction = letter_instruction(choices)
    if head.strip():
        messages += [{"role": "assistant", "content": head.rstrip()},
                     {"role": "user", "content": f"So which is your answer? {instruction}"}]
        return messages
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        return [*messages, {"role": "user", "content": instruction}]
    last = users[-1]
    messages[last] = {**messages[last], "content": f"{messages[last]['content'].rstrip()}\n\n{instruction}"}
    return messages


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
