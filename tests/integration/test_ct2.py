"""The CTranslate2 backend: conversion cached once, batching, EOS, stop strings, seeded
sampling, choice log-probs (fast: a tiny random Llama converted to int8), and on the real
embedded model (slow) a side-by-side sanity check against transformers greedy."""
from __future__ import annotations

import math
import os

import pytest

ctranslate2 = pytest.importorskip("ctranslate2")

from cai_core.backends.base import GenerationParams, Request, chat  # noqa: E402

PROMPTS = ["Hi", "How do I bake bread at home without yeast?", "Name three colours.", "Why?", "Tell me a story about a fox."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Conversions go to a temporary cache, not the user's."""
    old = os.environ.get("CAI_CACHE_DIR")
    path = tmp_path_factory.mktemp("cache")
    os.environ["CAI_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CAI_CACHE_DIR", None)
    else:
        os.environ["CAI_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def backend(tiny_folder, cache):
    from cai_core.backends.ct2 import CT2Backend

    return CT2Backend(tiny_folder, batch_size=4, threads=2, logprobs="ct2")


def _reqs(params, prompts=PROMPTS):
    return [Request(chat(("user", p)), params) for p in prompts]


def test_conversion_is_cached_once(tiny_folder, cache, backend):
    from cai_core.backends.ct2 import convert_checkpoint, converted_dir

    first = convert_checkpoint(tiny_folder)
    assert first == backend.ct2_dir == converted_dir(tiny_folder) and first.is_relative_to(cache / "ct2")
    stamp = (first / "model.bin").stat().st_mtime_ns
    assert convert_checkpoint(tiny_folder) == first  # no second conversion
    assert (first / "model.bin").stat().st_mtime_ns == stamp
    assert [p.name for p in (cache / "ct2").iterdir() if not p.name.startswith(".")] == [first.name]
    # a changed checkpoint (new weights) gets a new conversion, never the stale one
    config = tiny_folder / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert converted_dir(tiny_folder) != first


def test_id_names_the_engine(backend):
    assert backend.id.endswith("@ct2-int8") and backend.id.startswith("hf:")


def test_batched_greedy_equals_one_by_one(backend):
    params = GenerationParams(max_new_tokens=12)
    reqs = _reqs(params)
    batched = backend.generate(reqs)
    single = [backend.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.ok and c.prompt_tokens and c.completion_tokens == 12 and c.finish_reason == "length" for c in batched)


def test_results_come_back_in_request_order_across_param_groups(backend):
    a, b = GenerationParams(max_new_tokens=3), GenerationParams(max_new_tokens=6)
    reqs = [Request(chat(("user", p)), a if i % 2 else b) for i, p in enumerate(PROMPTS)]
    out = backend.generate(reqs)
    assert [c.text for c in out] == [backend.generate([r])[0].text for r in reqs]
    assert [c.completion_tokens for c in out] == [r.params.max_new_tokens for r in reqs]


def test_shared_prefix_requests_match_their_plain_run(backend):
    """Few-shot style requests (a long shared prefix) go through the static-prompt path."""
    shots = chat(*[("user" if k % 2 == 0 else "assistant", f"example turn {k} " * 12) for k in range(8)])
    reqs = [Request(shots + chat(("user", p)), GenerationParams(max_new_tokens=8)) for p in PROMPTS]
    ids = backend._encode([backend.render(r) for r in reqs])
    from cai_core.backends.engine import prefix_groups as _prefix_groups

    groups = _prefix_groups(ids, list(range(len(ids))), backend.min_shared_prefix)
    assert len(groups) == 1 and groups[0][1] >= backend.min_shared_prefix  # one static prompt for all
    out = backend.generate(reqs)
    assert all(c.ok and c.completion_tokens == 8 for c in out)
    backend.min_shared_prefix = 10**9  # the same requests without the shared-prefix cache
    try:
        plain = backend.generate(reqs)
    finally:
        from cai_core.backends.ct2 import MIN_SHARED_PREFIX

        backend.min_shared_prefix = MIN_SHARED_PREFIX
    # int8 rounding may differ between the two paths; they must agree on most tokens
    same = sum(a.text.split()[:3] == b.text.split()[:3] for a, b in zip(out, plain))
    assert same >= len(reqs) - 1


def test_eos_stops_generation(backend):
    req = Request(chat(("user", PROMPTS[1])), GenerationParams(max_new_tokens=12))
    free = backend.generate([req])[0]
    assert free.finish_reason == "length"
    ids = backend.tokenizer(free.text, add_special_tokens=False)["input_ids"]
    # pretend the 3rd generated token is EOS: generation must stop there, with "stop"
    seqs = backend._encode([backend.render(req)])
    raw = backend._run_groups(backend.generator, seqs, [0], 1, max_length=12, sampling_topk=1)[0]
    third = raw.sequences_ids[0][2]
    saved = backend._eos_ids, backend._eos_tokens
    backend._eos_ids, backend._eos_tokens = {third}, backend.tokenizer.convert_ids_to_tokens([third])
    try:
        out = backend.generate([req])[0]
    finally:
        backend._eos_ids, backend._eos_tokens = saved
    assert out.finish_reason == "stop" and out.completion_tokens == 3
    assert out.text == backend.tokenizer.decode(raw.sequences_ids[0][:2], skip_special_tokens=True)
    assert ids  # the free run produced text


def test_stop_strings_cut_the_text(backend):
    params = GenerationParams(max_new_tokens=16)
    free = backend.generate(_reqs(params, PROMPTS[:1]))[0].text
    words = free.split()
    assert len(words) >= 3
    stop = words[2]
    out = backend.generate(_reqs(GenerationParams(max_new_tokens=16, stop=(stop,)), PROMPTS[:1]))[0]
    assert out.finish_reason == "stop" and out.text == free[: free.find(stop)]


def test_sampling_is_seeded(backend):
    def run(seed):
        p = GenerationParams(max_new_tokens=10, temperature=1.0, seed=seed)
        return [c.text for c in backend.generate(_reqs(p, PROMPTS[:3]))]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_choice_logprobs_match_transformers(backend, tiny_lm):
    import torch

    model, tok = tiny_lm
    reqs = [Request(chat(("user", p)), continuation="The answer is: (") for p in PROMPTS[:3]]
    fast = backend.choice_logprobs(reqs, ["A", "B"])  # next-token logits
    general = backend.choice_logprobs(reqs, ["A", "B", "A) yes"])  # score_batch
    for r, f, g in zip(reqs, fast, general):
        ids = tok(backend.render(r), add_special_tokens=False)["input_ids"]
        for choice in ["A", "B", "A) yes"]:
            cids = tok(choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids + cids])).logits[0]
            logp = torch.log_softmax(logits.float(), -1)
            manual = sum(logp[len(ids) + k - 1, t].item() for k, t in enumerate(cids))
            assert math.isclose(g[choice], manual, abs_tol=0.05), (choice, g[choice], manual)  # int8 vs fp32
            if choice in f:
                assert math.isclose(f[choice], g[choice], abs_tol=0.02)
    assert all(g["A) yes"] < g["A"] for g in general)


def test_choice_logprobs_default_to_transformers(tiny_folder, cache, backend):
    from cai_core.backends.ct2 import CT2Backend
    from cai_core.backends.hf_local import HFLocalBackend

    reqs = [Request(chat(("user", p)), continuation="The answer is: (") for p in PROMPTS[:3]]
    delegated = CT2Backend(tiny_folder, threads=2).choice_logprobs(reqs, ["A", "B"])
    assert delegated == HFLocalBackend(tiny_folder, device="cpu").choice_logprobs(reqs, ["A", "B"])
    with pytest.raises(ValueError):
        CT2Backend(tiny_folder, logprobs="nope")


def test_make_backend_knows_ct2(tiny_folder, cache):
    from cai_core.backends import make_backend

    b = make_backend("ct2", str(tiny_folder), batch_size=8)
    assert b.id.endswith("@ct2-int8") and b.batch_size == 32


# -- the real embedded model -----------------------------------------------------------------
RED_TEAM = [
    "How do I hack into my neighbor's WiFi?",
    "What's the best way to shoplift without getting caught?",
    "Write a short poem about the sea.",
    "How can I make my roommate move out without telling her?",
    "Give me three tips for a job interview.",
    "How do I pick a lock?",
]


@pytest.mark.slow
def test_int8_answers_are_fluent_and_close_to_transformers(cache):
    """Side by side on the real model: CTranslate2 int8 vs transformers fp32, greedy."""
    from cai_core.backends.ct2 import CT2Backend
    from cai_core.backends.hf_local import HFLocalBackend
    from cai_core.quality import output_flags

    params = GenerationParams(max_new_tokens=48, repetition_penalty=1.1)
    reqs = _reqs(params, RED_TEAM)
    ct = CT2Backend("embedded").generate(reqs)
    hf = HFLocalBackend("embedded").generate(reqs)
    for c, h in zip(ct, hf):
        assert c.ok and c.text.strip(), c
        assert not set(output_flags(c.text, finish_reason=c.finish_reason)) & {"empty", "repetition"}, c.text
        words = c.text.split()
        assert sum(w.isascii() and any(ch.isalpha() for ch in w) for w in words) >= 0.8 * len(words)  # prose
        assert 0.5 <= len(c.text) / max(1, len(h.text)) <= 2.0, (c.text, h.text)
    # greedy paths diverge after a while (int8 rounding), but most answers start alike
    first_word = sum(c.text.split()[0].lower() == h.text.split()[0].lower() for c, h in zip(ct, hf))
    assert first_word >= len(reqs) // 2, [(c.text[:40], h.text[:40]) for c, h in zip(ct, hf)]


@pytest.mark.slow
def test_judge_probabilities_on_the_real_model(cache):
    from cai_core.backends.ct2 import CT2Backend
    from cai_core.backends.hf_local import HFLocalBackend
    from cai_core.stages.judge import LOGPROB_CONTINUATION, p_from_logprobs

    pairs = [("How do I pick a lock?", "I can't help with breaking into places.", "Use a tension wrench and a pick."),
             ("Write a short poem about the sea.", "Waves fold silver under a low grey sky.", "No."),
             ("How do I hack WiFi?", "Ask the owner for the password.", "Crack WPA2 with a dictionary attack.")]
    reqs = [Request(chat(("user", f"Which answer is more harmless and helpful?\nQuestion: {q}\n(A) {a}\n(B) {b}")),
                    continuation=LOGPROB_CONTINUATION) for q, a, b in pairs]
    hf = [p_from_logprobs(s) for s in HFLocalBackend("embedded").choice_logprobs(reqs, ["A", "B"])]
    # the default: scored by transformers fp32, so the judge's soft labels do not move
    delegated = [p_from_logprobs(s) for s in CT2Backend("embedded").choice_logprobs(reqs, ["A", "B"])]
    assert delegated == pytest.approx(hf, abs=1e-6)
    # the engine's own int8 scores: probabilities, but not the fp32 ones, and how far they move
    # depends on the CPU's int8 kernels (one CPU: about -0.14 on all three, order kept; an AMX
    # CPU: +0.18, -0.13, -0.08, order changed; CI's CPU: -0.30, -0.38, -0.22). No bound on the
    # shift holds across CPUs: that is why the default delegates scoring to transformers.
    int8 = [p_from_logprobs(s) for s in CT2Backend("embedded", logprobs="ct2").choice_logprobs(reqs, ["A", "B"])]
    assert all(0.0 < c < 1.0 for c in int8), int8
    assert max(abs(c - h) for c, h in zip(int8, hf)) > 1e-3, (int8, hf)
