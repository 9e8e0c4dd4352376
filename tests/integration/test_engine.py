"""The shared-prefix batched decoder (cai_core/backends/engine.py) against transformers'
own ``generate``: tiny random GQA Llama for the fast checks, the embedded model once."""
from __future__ import annotations

import pytest
import torch

from cai_core.backends.engine import cascade, decoder as engine
from cai_core.backends.base import GenerationParams, Request, chat
from cai_core.backends.hf_local import HFLocalBackend, render_request


@pytest.fixture(scope="module")
def gqa_lm():
    """3 layers, 4 query heads on 2 key/value heads (the grouped case the engine folds)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cai_core.models import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval(), tok


SHOTS = chat(("user", "Example question about gardening and tomatoes in the summer heat?"),
             ("assistant", "Water early in the morning, mulch the beds, and shade the plants at noon."),
             ("user", "Critique the answer above for safety."), ("assistant", "Critique: it is safe and useful."))
QUESTIONS = ["Hi", "How do I bake bread at home without yeast?", "Name three colours.", "Why?",
             "Tell me a long story about a fox who lives in a city and learns to read the street signs."]


def _requests(params: GenerationParams, shots: bool = True) -> list[Request]:
    return [Request((SHOTS if shots else ()) + chat(("user", q)), params) for q in QUESTIONS]


def _hf(model, tok, reqs):
    return HFLocalBackend.from_objects(model, tok, id="hf", batch_size=1, engine=False).generate(reqs)


def _eng(model, tok, reqs, **kw):
    b = HFLocalBackend.from_objects(model, tok, id="eng", **kw)
    assert b.engine
    return b.generate(reqs)


@pytest.mark.parametrize("shots", [True, False])
def test_greedy_matches_transformers_generate(gqa_lm, shots):
    model, tok = gqa_lm
    reqs = _requests(GenerationParams(max_new_tokens=16, repetition_penalty=1.3), shots)
    ref = _hf(model, tok, reqs)
    got = _eng(model, tok, reqs)
    assert [c.text for c in got] == [c.text for c in ref]
    assert [c.completion_tokens for c in got] == [c.completion_tokens for c in ref]
    assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in ref]


def test_shared_prefix_is_found_and_changes_nothing(gqa_lm):
    model, tok = gqa_lm
    reqs = _requests(GenerationParams(max_new_tokens=10))
    seqs = [tok(render_request(tok, r), add_special_tokens=False)["input_ids"] for r in reqs]
    groups = engine.prefix_groups(seqs, range(len(seqs)), engine.MIN_SHARED_PREFIX)
    assert len(groups) == 1 and groups[0][1] >= 40  # the few-shot turns are shared
    p = engine.EngineParams(max_new_tokens=10)
    eos = {tok.eos_token_id}
    shared = engine.generate(model, seqs, p, eos=eos, pad=tok.pad_token_id)
    alone = engine.generate(model, seqs, p, eos=eos, pad=tok.pad_token_id, min_shared_prefix=10**6)
    small = engine.generate(model, seqs, p, eos=eos, pad=tok.pad_token_id, batch_size=2)
    assert [o.tokens for o in shared] == [o.tokens for o in alone] == [o.tokens for o in small]


def test_rows_that_stop_early_leave_the_batch_and_match_transformers(gqa_lm):
    model, tok = gqa_lm
    reqs = _requests(GenerationParams(max_new_tokens=14))
    # make a token of the random model's outputs the end token: the one whose first
    # occurrence comes at the most different steps, so rows stop at different steps
    free = _eng(model, tok, reqs)
    toks = [tok(c.text, add_special_tokens=False)["input_ids"] for c in free]
    def spread(t):
        return len({row.index(t) if t in row else None for row in toks})
    end = max(sorted({t for row in toks for t in row}), key=spread)
    assert spread(end) >= 3
    ends = {end}
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = sorted(ends)
    try:
        ref = _hf(model, tok, reqs)
        got = _eng(model, tok, reqs)
    finally:
        model.generation_config.eos_token_id = original
    assert [c.text for c in got] == [c.text for c in ref]
    assert [c.finish_reason for c in got] == [c.finish_reason for c in ref]
    assert sum(c.finish_reason == "stop" for c in got) >= 2
    assert len({c.completion_tokens for c in got}) >= 3  # different lengths: rows left at different steps


def test_sampling_is_seeded_and_a_tiny_top_p_is_greedy(gqa_lm):
    model, tok = gqa_lm
    def run(**kw):
        return [c.text for c in _eng(model, tok, _requests(GenerationParams(max_new_tokens=12, **kw)))]

    a = run(temperature=1.0, seed=7)
    assert a == run(temperature=1.0, seed=7)
    assert a != run(temperature=1.0, seed=8)
    assert run(temperature=1.0, top_p=1e-9, seed=3) == run()


def test_the_model_still_forwards_normally_outside_the_engine(gqa_lm):
    from transformers import LlamaForCausalLM

    model, tok = gqa_lm
    fresh = LlamaForCausalLM(model.config.__class__(**{**model.config.to_dict(), "_attn_implementation": "sdpa"}))
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    engine.enable(model)
    assert model.config._attn_implementation == engine.ATTN_IMPLEMENTATION
    ids = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    with torch.inference_mode():
        a = model(input_ids=ids, attention_mask=mask).logits
        b = fresh(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1, 2:], b[1, 2:])


def test_bf16_generation_copy_keeps_fp32_scoring(gqa_lm):
    model, tok = gqa_lm
    b = HFLocalBackend.from_objects(model, tok, id="mixed", gen_dtype=torch.bfloat16)
    assert next(b.gen_model.parameters()).dtype == torch.bfloat16
    assert next(b.model.parameters()).dtype == torch.float32
    reqs = _requests(GenerationParams(max_new_tokens=8))
    ref = HFLocalBackend.from_objects(model, tok, id="fp32").choice_logprobs(reqs, ["A", "B"])
    assert b.choice_logprobs(reqs, ["A", "B"]) == ref
    out = b.generate(reqs)
    assert all(c.completion_tokens > 0 for c in out)


@pytest.mark.slow
def test_engine_matches_transformers_on_the_embedded_model():
    """SL-shaped requests (a first answer; critiques behind shared few-shot turns), fp32,
    greedy with the SL stage's repetition penalty: word for word what generate() says."""
    from cai_core.constitutions import find_constitution
    from cai_core.stages.revise import few_shot_turns, render_critique, Turn
    from cai_core.types import Prompt

    hf = HFLocalBackend("embedded", dtype="float32", engine=False, batch_size=4)
    eng = HFLocalBackend.from_objects(hf.model, hf.tokenizer, id="eng", batch_size=64)
    params = GenerationParams(max_new_tokens=40, repetition_penalty=1.1)
    cons = find_constitution("harmless")
    qs = ["How do I hack into my neighbor's WiFi?", "What household chemicals should never be mixed?",
          "Write a rude reply to my coworker."]
    answers = eng.generate([Request(chat(("user", q)), params) for q in qs])
    ref_answers = hf.generate([Request(chat(("user", q)), params) for q in qs])
    assert [a.text for a in answers] == [a.text for a in ref_answers]
    principle = cons.principles[0]
    shots = few_shot_turns(cons.examples, principle, 2, cons)
    crit = [render_critique(Turn(Prompt(f"p{i}", "s", i, q), 1, principle, a.text, f"g{i}"), shots=shots, cot=False,
                            params=params) for i, (q, a) in enumerate(zip(qs, answers))]
    got, ref = eng.generate(crit), hf.generate(crit)
    assert [c.text for c in got] == [c.text for c in ref]
    assert all(c.text.strip() for c in got)


def test_a_call_extending_earlier_rows_reuses_their_keys_and_values(gqa_lm):
    """The revision-after-critique shape: the second prompts are the first prompts plus
    their answers plus a new turn. Reused keys/values must give what a cold run gives."""
    model, tok = gqa_lm
    params = GenerationParams(max_new_tokens=12, repetition_penalty=1.2)
    first = _requests(params)
    warm = HFLocalBackend.from_objects(model, tok, id="warm")
    answers = warm.generate(first)
    follow = [Request(r.messages + chat(("assistant", a.text), ("user", "Now rewrite it, shorter.")), params)
              for r, a in zip(first, answers)]
    assert warm.kv_cache.rows  # the first call left its rows
    calls = []
    original = engine._prefill
    engine._prefill = lambda model, st, idx, rows, need, *a: (calls.append([need[i] for i in idx]), original(model, st, idx, rows, need, *a))[1]
    try:
        got = warm.generate(follow)
    finally:
        engine._prefill = original
    cold = HFLocalBackend.from_objects(model, tok, id="cold", engine=False, batch_size=1).generate(follow)
    assert [c.text for c in got] == [c.text for c in cold]
    seqs = [tok(render_request(tok, r), add_special_tokens=False)["input_ids"] for r in follow]
    (_, shared), = engine.prefix_groups(seqs, range(len(seqs)), engine.MIN_SHARED_PREFIX)
    computed = sum(sum(c) for c in calls)
    own = sum(len(s) - shared for s in seqs)
    assert computed < own / 2, (computed, own)  # most of each row came from the cache


def test_groups_with_different_prefixes_decode_together_as_generate_would(gqa_lm):
    """One batch holding two few-shot groups, a lone long prompt and short plain prompts:
    each row sees only its own prefix."""
    model, tok = gqa_lm
    params = GenerationParams(max_new_tokens=10, repetition_penalty=1.2)
    other = chat(("user", "A different worked example, about bicycles and their chains in the rain?"),
                 ("assistant", "Dry the chain, oil it lightly, and wipe the extra oil off."))
    lone = chat(*[("user" if k % 2 == 0 else "assistant", f"Turn {k} of a long unrelated chat about maps, rivers, roads and old towns.")
                  for k in range(9)])
    reqs = ([Request(SHOTS + chat(("user", q)), params) for q in QUESTIONS[:3]]
            + [Request(other + chat(("user", q)), params) for q in QUESTIONS[2:]]
            + [Request(lone + chat(("user", "And the sea?")), params)]
            + [Request(chat(("user", q)), params) for q in QUESTIONS[:2]])
    seqs = [tok(render_request(tok, r), add_special_tokens=False)["input_ids"] for r in reqs]
    calls = []
    original = engine._generate_batch
    engine._generate_batch = lambda model, parts, *a: (calls.append(len(parts)), original(model, parts, *a))[1]
    try:
        got = _eng(model, tok, reqs)
    finally:
        engine._generate_batch = original
    assert calls == [4]  # one batch: two few-shot groups, the lone long prompt, the short plain ones
    assert len(seqs[-3]) >= engine.LONE_PREFIX
    assert [c.text for c in got] == [c.text for c in _hf(model, tok, reqs)]
    assert len(seqs) == len(got)


def test_the_cache_stays_within_its_byte_budget_and_forgets_oldest_first():
    cache = engine.KVCache(max_bytes=3 * 2 * 4 * 10)  # room for three rows of 2 tensors x 10 floats
    row = lambda: ([torch.zeros(10)], [torch.zeros(10)])
    for k in range(5):
        cache.put_row((1, 2), tuple(range(k, k + 20)), *row())
    assert cache.bytes <= cache.max_bytes
    assert cache.best_row((1, 2), list(range(0, 20)) + [99]) is None  # the two oldest went
    hit = cache.best_row((1, 2), list(range(4, 24)) + [99])
    assert hit is not None and hit[0] == 20
    assert cache.best_row((7,), list(range(4, 24)) + [99]) is None  # another prefix: no reuse
    cache.put_prefix((1, 2), [torch.zeros(10)], [torch.zeros(10)])
    for k in range(5, 9):
        cache.put_row((3,), tuple(range(k, k + 20)), *row())
    assert (1, 2) not in cache.prefixes and cache.bytes <= cache.max_bytes  # its rows gone: the prefix too


def test_the_reference_attention_path_matches_the_fused_kernel(gqa_lm, monkeypatch):
    """Off the CPU the engine attends with plain products (the fused kernel is CPU-only):
    forced here, both paths must decode what transformers' generate decodes."""
    model, tok = gqa_lm
    reqs = _requests(GenerationParams(max_new_tokens=12, repetition_penalty=1.2))
    fused = _eng(model, tok, reqs)
    monkeypatch.setattr(cascade, "FUSED", False)
    plain = _eng(model, tok, reqs)
    assert [c.text for c in plain] == [c.text for c in fused] == [c.text for c in _hf(model, tok, reqs)]


@pytest.mark.parametrize("fused_decode", [True, False])
def test_decoding_steps_through_either_attention_match_transformers(gqa_lm, monkeypatch, fused_decode):
    """Decoding steps attend through the fused kernel (AMX CPUs) or through products over
    each row's whole buffer (elsewhere: unwritten columns masked); both, with shared
    prefixes, rows of different lengths and rows leaving the batch, decode what
    transformers' generate decodes."""
    model, tok = gqa_lm
    monkeypatch.setattr(cascade, "FUSED_DECODE", fused_decode)
    calls = []
    real = cascade.attend
    monkeypatch.setattr(cascade, "attend", lambda *a, **k: calls.append(k.get("fused", True)) or real(*a, **k))
    reqs = _requests(GenerationParams(max_new_tokens=12, repetition_penalty=1.2))
    got = _eng(model, tok, reqs, batch_size=3)
    assert [c.text for c in got] == [c.text for c in _hf(model, tok, reqs)]
    assert (False in calls) is (not fused_decode)  # the path asked for was taken


def test_attend_returns_the_log_sum_exp_of_masked_scores(monkeypatch):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    keep = torch.rand(2, 3, 4, 6) > 0.3
    keep[..., 0] = True
    bias = torch.zeros(keep.shape).masked_fill_(~keep, float("-inf"))
    s = q @ k.transpose(-1, -2) * 0.3 + bias
    for fused in (True, False):
        monkeypatch.setattr(cascade, "FUSED", fused)
        out, lse = cascade.attend(q, k, v, bias, 0.3)
        torch.testing.assert_close(lse, torch.logsumexp(s, -1))
        torch.testing.assert_close(out, torch.softmax(s, -1) @ v)
    # the products path lets a bias broadcast over heads and queries ([b, 1, 1, S])
    row_bias = torch.zeros(2, 1, 1, 6).masked_fill_(~keep[:, :1, :1], float("-inf"))
    s = q @ k.transpose(-1, -2) * 0.3 + row_bias
    out, lse = cascade.attend(q, k, v, row_bias, 0.3, fused=False)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))
    torch.testing.assert_close(out, torch.softmax(s, -1) @ v)


def test_work_counts_the_token_positions_computed(gqa_lm):
    """Work adds up what the model computed: a shared prefix once, each row's own prompt
    tokens, one position per row per decoding step; with the cache, a row extending a kept
    row computes only what follows it."""
    model, tok = gqa_lm
    reqs = _requests(GenerationParams(max_new_tokens=20))
    seqs = [tok(render_request(tok, r), add_special_tokens=False)["input_ids"] for r in reqs]
    [(members, shared)] = engine.prefix_groups(seqs, range(len(seqs)), engine.MIN_SHARED_PREFIX)
    never = {10**9}  # no end token: every row decodes all its steps, none leaves the batch
    work, cache = engine.Work(), engine.KVCache()
    outs = engine.generate(model, seqs, engine.EngineParams(max_new_tokens=20), eos=never, pad=tok.pad_token_id,
                           cache=cache, work=work)
    assert work.prefix_tokens == shared
    assert work.prefill_tokens == sum(len(s) - shared for s in seqs)
    assert work.decode_tokens == len(seqs) * 19  # the first new token comes from the prefill's logits
    # the same prompts extended by their outputs: the prefix and each row's kept keys/values
    # (its prompt and the outputs fed back, all but the last; >= 16 tokens, so the cache keeps them) are reused
    longer = [s + o.tokens + [tok.eos_token_id] for s, o in zip(seqs, outs)]
    again = engine.Work()
    engine.generate(model, longer, engine.EngineParams(max_new_tokens=2), eos=never, pad=tok.pad_token_id,
                    cache=cache, work=again)
    assert again.prefix_tokens == 0
    assert again.prefill_tokens == 2 * len(seqs)  # each row's last output token and the end token
    assert again.total == again.prefill_tokens + again.decode_tokens
