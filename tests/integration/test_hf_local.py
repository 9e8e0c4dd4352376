"""The local transformers backend on a tiny random Llama (fast) — batching, padding, EOS,
stop strings, seeded sampling, and choice log-probs against a hand computation."""
from __future__ import annotations

import math

import pytest
import torch

from cai_core.backends.base import GenerationParams, Request, chat
from cai_core.backends.hf_local import HFLocalBackend, cut_at_stop


@pytest.fixture
def backend(tiny_lm):
    model, tok = tiny_lm
    return HFLocalBackend.from_objects(model, tok, id="tiny", batch_size=4)


PROMPTS = ["Hi", "How do I bake bread at home without yeast?", "Name three colours.", "Why?", "Tell me a story about a fox."]


def test_batched_equals_one_by_one(backend):
    params = GenerationParams(max_new_tokens=12)
    reqs = [Request(chat(("user", p)), params) for p in PROMPTS]
    batched = backend.generate(reqs)
    single = [backend.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.completion_tokens and c.prompt_tokens for c in batched)
    # a random model never emits EOS in 12 tokens -> length
    assert {c.finish_reason for c in batched} <= {"length", "stop"}


def test_results_come_back_in_request_order_across_param_groups(backend):
    a = GenerationParams(max_new_tokens=3)
    b = GenerationParams(max_new_tokens=6)
    reqs = [Request(chat(("user", p)), a if i % 2 else b) for i, p in enumerate(PROMPTS)]
    out = backend.generate(reqs)
    expected = [backend.generate([r])[0].text for r in reqs]
    assert [c.text for c in out] == expected
    assert [c.completion_tokens for c in out] == [r.params.max_new_tokens for r in reqs]


def test_eos_stops_generation(tiny_lm):
    model, tok = tiny_lm
    # Make EOS the overwhelmingly likely next token: the answer must end at once with "stop".
    import copy

    m = copy.deepcopy(model)
    head = torch.nn.Linear(m.config.hidden_size, m.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[tok.eos_token_id] = 10.0
    m.lm_head = head
    b = HFLocalBackend.from_objects(m, tok, id="eos")
    out = b.generate([Request(chat(("user", "hi")), GenerationParams(max_new_tokens=20))])[0]
    assert out.finish_reason == "stop" and out.text == "" and out.completion_tokens == 1


def test_sampling_is_seeded(backend):
    def run(seed):
        p = GenerationParams(max_new_tokens=10, temperature=1.0, seed=seed)
        return [c.text for c in backend.generate([Request(chat(("user", x)), p) for x in PROMPTS[:3]])]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_continuation_is_rendered_after_the_generation_prompt(backend):
    r = Request(chat(("user", "Which?")), continuation="The answer is: (")
    text = backend.render(r)
    assert text.endswith("assistant\nThe answer is: (")
    assert "<|im_start|>user\nWhich?<|im_end|>" in text


def test_choice_logprobs_match_a_manual_forward_pass(backend, tiny_lm):
    model, tok = tiny_lm
    reqs = [Request(chat(("user", p)), continuation="The answer is: (") for p in PROMPTS[:3]]
    scores = backend.choice_logprobs(reqs, ["A", "B", "A) yes"])
    for r, s in zip(reqs, scores):
        ids = tok(backend.render(r), add_special_tokens=False)["input_ids"]
        for choice in ["A", "B", "A) yes"]:
            cids = tok(choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids + cids])).logits[0]
            logp = torch.log_softmax(logits.float(), -1)
            manual = sum(logp[len(ids) + k - 1, t].item() for k, t in enumerate(cids))
            assert math.isclose(s[choice], manual, abs_tol=1e-3), (choice, s[choice], manual)
    # multi-token choices are less likely than their first token alone
    assert all(s["A) yes"] < s["A"] for s in scores)


def test_cut_at_stop():
    assert cut_at_stop("abc\nUser: x", ["\nUser:"]) == ("abc", True)
    assert cut_at_stop("abc", ["zz", ""]) == ("abc", False)
    assert cut_at_stop("a1b2", ["2", "1"]) == ("a", True)


def test_sl_stage_runs_on_the_tiny_model(store, tiny_lm):
    """The whole SL stage through the real transformers path (a random model: fast)."""
    from cai_core.constitutions import find_constitution
    from cai_core.prompt_sets import get_prompt_set
    from cai_core.runners.sl import SLConfig, run_sl, start_sl_run

    model, tok = tiny_lm
    b = HFLocalBackend.from_objects(model, tok, id="tiny")
    small = GenerationParams(max_new_tokens=8)
    cfg = SLConfig(rounds=1, limit=3, answer=small, critique=small, revision=small)
    c = find_constitution("seed")
    run, _ = start_sl_run(store, b, c, get_prompt_set(store, "benign"), cfg)
    res = run_sl(store, b, c, run, cfg)
    assert (res.status, res.generations, res.critiques, res.revisions) == ("finished", 3, 3, 3)
    assert store.scalar("SELECT count(DISTINCT model) FROM revisions") == 1


def test_single_token_fast_path_matches_the_general_path(backend):
    reqs = [Request(chat(("user", p)), continuation="The answer is: (") for p in PROMPTS]
    fast = backend.choice_logprobs(reqs, ["A", "B"])  # one forward per prompt
    general = backend.choice_logprobs(reqs, ["A", "B", "A) yes"])  # one forward per (prompt, choice)
    for f, g in zip(fast, general):
        assert f["A"] == pytest.approx(g["A"], abs=1e-4) and f["B"] == pytest.approx(g["B"], abs=1e-4)
