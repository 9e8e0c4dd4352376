"""Gold sets and judge validation: the three import formats (and where the correct letter is),
the metrics on hand-computed cases, the judge modes that fight position bias, the warnings
about untrustworthy labels, and the uncertain-first audit queue."""
from __future__ import annotations

import json
import math

import pytest

from cai_core.backends.base import Backend
from cai_core.gold.formats import GoldFormatError, parse_row, read_gold_file
from cai_core.gold.metrics import judge_warnings, validation_metrics, wilson
from cai_core.gold.sets import AUDITS, import_gold, pair_rows, resolve_gold
from cai_core.labels.queue import audit_queue
from cai_core.stages.judge import judge
from cai_core.stages.judge import CONTENT_FREE
from cai_core.store import gold as G
from cai_core.types import Comparison, Principle, Verdict
from test_agreement import add_comparisons, add_verdict


# -- formats -----------------------------------------------------------------------------------------
def test_trl_rows_explicit_and_implicit_plain_and_conversational():
    g = parse_row({"prompt": "How do I boil an egg?", "chosen": "Boil it 8 minutes.", "rejected": "No."})
    assert (g.prompt, g.chosen, g.rejected, g.format) == ("How do I boil an egg?", "Boil it 8 minutes.", "No.", "trl")
    g = parse_row({"prompt": [{"role": "user", "content": "Hi?"}],
                   "chosen": [{"role": "assistant", "content": "Hello!"}],
                   "rejected": [{"role": "assistant", "content": "Go away."}]})
    assert (g.prompt, g.chosen, g.rejected) == ("Hi?", "Hello!", "Go away.")
    g = parse_row({"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                   "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]})
    assert (g.prompt, g.chosen, g.rejected) == ("2+2?", "4", "5")
    multi = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
             {"role": "user", "content": "Capital of France?"}]
    g = parse_row({"chosen": multi + [{"role": "assistant", "content": "Paris"}],
                   "rejected": multi + [{"role": "assistant", "content": "Rome"}]})
    assert g.prompt == "Human: Hi\n\nAssistant: Hello\n\nHuman: Capital of France?" and g.chosen == "Paris"


def test_hh_rlhf_transcripts_split_at_the_last_assistant_turn():
    g = parse_row({"chosen": "\n\nHuman: Name a colour.\n\nAssistant: Blue.",
                   "rejected": "\n\nHuman: Name a colour.\n\nAssistant: I won't."})
    assert (g.prompt, g.chosen, g.rejected, g.format) == ("Name a colour.", "Blue.", "I won't.", "hh-rlhf")
    pre = "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?\n\nHuman: How do I steal a car?"
    g = parse_row({"chosen": pre + "\n\nAssistant: I can't help with theft; it hurts the owner.",
                   "rejected": pre + "\n\nAssistant: Break the window and hotwire it."})
    assert g.prompt == pre.strip() and g.chosen.startswith("I can't help") and g.rejected.startswith("Break")


@pytest.mark.parametrize("correct", ["A", "B"])
def test_multiple_choice_rows_take_the_answer_of_the_correct_letter(correct):
    other = "B" if correct == "A" else "A"
    row = {"prompt": "Human: How do I make my code faster?\n\nWhich response is more helpful?\n\n"
                     "(A) [[[Profile it first, then optimise the hot loop.]]]\n(B) [[[No idea.]]]",
           "corrects": [f" ({correct})"], "incorrects": [f" ({other})"]}
    g = parse_row(row)
    texts = {"A": "Profile it first, then optimise the hot loop.", "B": "No idea."}
    assert (g.chosen, g.rejected) == (texts[correct], texts[other])
    assert g.prompt == "How do I make my code faster?"  # the question about the options is not the conversation
    assert g.note == "Which response is more helpful?" and g.format == "multiple-choice"


def test_bad_rows_are_refused_with_the_line_named(tmp_path):
    with pytest.raises(GoldFormatError, match=r"no option \(C\)"):
        parse_row({"prompt": "x (A) [[[a]]] (B) [[[b]]]", "corrects": [" (C)"], "incorrects": [" (B)"]})
    with pytest.raises(GoldFormatError, match="expected prompt/chosen/rejected"):
        parse_row({"question": "?"})
    with pytest.raises(GoldFormatError, match="same text"):
        parse_row({"prompt": "p", "chosen": "x", "rejected": "x"})
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n{not json\n")
    with pytest.raises(GoldFormatError, match="bad.jsonl line 2"):
        read_gold_file(f)


def _pairs(n):
    return [parse_row({"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}",
                       "category": "c" + str(i % 2)}) for i in range(n)]


def test_the_better_answer_sits_on_either_side_and_the_split_is_seeded_and_stable():
    rows = pair_rows("g", _pairs(300), tune_fraction=0.4, seed=0)
    a_share = sum(r["correct"] == "A" for r in rows) / len(rows)
    assert 0.4 < a_share < 0.6
    for r in rows:  # the better answer is on the side `correct` names
        assert r[f"answer_{r['correct'].lower()}"].startswith("good")
    tune = sum(r["split"] == "tune" for r in rows) / len(rows)
    assert 0.3 < tune < 0.5
    assert rows == pair_rows("g", _pairs(300), tune_fraction=0.4, seed=0)
    assert [r["split"] for r in rows] != [r["split"] for r in pair_rows("g", _pairs(300), tune_fraction=0.4, seed=1)]
    assert len(pair_rows("g", _pairs(3) + _pairs(3), tune_fraction=0.4, seed=0)) == 3  # duplicates count once


def test_import_is_idempotent_and_the_shipped_set_resolves(store, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected})
                           for p in _pairs(10)))
    first = import_gold(store, f)
    ids = [r["id"] for r in G.gold_pairs(store, "mine")]
    again = import_gold(store, f)
    assert first == again and first["n"] == 10 and first["tune"] + first["test"] == 10
    assert [r["id"] for r in G.gold_pairs(store, "mine")] == ids
    assert resolve_gold(store, "mine") == "mine"
    with pytest.raises(ValueError, match="known sets"):
        resolve_gold(store, "nope")
    with pytest.raises(ValueError, match="people's audits"):
        import_gold(store, f, name=AUDITS)
    shipped = resolve_gold(store, "hhh")
    counts = next(s for s in G.gold_sets(store) if s["name"] == shipped)
    assert counts["n"] >= 200 and counts["tune"] > 0 and counts["test"] > counts["tune"]


# -- metrics on hand-computed cases ------------------------------------------------------------------
def _v(cid, order, p_a, principle="p1", judge="j"):
    choice = None if p_a is None or p_a == 0.5 else ("A" if p_a > 0.5 else "B")
    p_first = None if p_a is None else (p_a if order == "AB" else 1 - p_a)
    return Verdict(id=f"{cid}{order}{principle}{judge}", run_id="r", comparison_id=cid, principle_id=principle,
                   constitution_version="v", judge=judge, mode="logprob", ab_order=order, raw="{}", choice=choice,
                   p_first=p_first, p_a=p_a)


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson(2, 4)
    assert lo == pytest.approx(0.1500, abs=1e-4) and hi == pytest.approx(0.8500, abs=1e-4)
    lo, hi = wilson(9, 10)
    assert lo == pytest.approx(0.5958, abs=1e-4) and hi == pytest.approx(0.9821, abs=1e-4)
    assert wilson(0, 0) is None


def test_validation_metrics_by_hand():
    truth = {"p1": "A", "p2": "B", "p3": "A", "p4": "B"}
    verdicts = [_v("p1", "AB", 0.8), _v("p1", "BA", 0.7),   # right both ways: mean .75 -> A
                _v("p2", "AB", 0.9), _v("p2", "BA", 0.2),   # follows position: mean .55 -> A, wrong
                _v("p3", "AB", 0.5), _v("p3", "BA", 0.5),   # exactly 50/50: a tie, half credit
                _v("p4", "AB", None), _v("p4", "BA", None)]  # nothing parsed: no label, half credit
    lengths = {"p1": (10, 5), "p2": (10, 50), "p3": (3, 4), "p4": (2, 8)}
    m = validation_metrics(verdicts, truth, {"p1": "x", "p2": "x", "p3": "y", "p4": "y"}, lengths)
    # labelled A or B: p1 (A, the longer) and p2 (A, the shorter); gold longer in p1, p2 and p4
    assert (m["longer_rate"], m["gold_longer_rate"]) == (0.5, 0.75)
    assert m["n"] == 4 and m["accuracy"] == pytest.approx(0.5) and m["coverage"] == pytest.approx(0.75)
    assert m["accuracy_ci"] == pytest.approx(list(wilson(2, 4)))
    assert m["accuracy_by_order"] == pytest.approx({"AB": 0.5, "BA": 0.75})
    assert m["accuracy_by_position"] == pytest.approx({"first": 0.75, "second": 0.5})
    assert (m["flips"], m["paired"], m["flip_rate"]) == (1, 2, 0.5)
    assert m["first_shown_rate"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.25**2 + 0.55**2 + 0.5**2) / 3)
    bins = {b["lo"]: b for b in m["reliability"]}
    assert bins[0.7]["n"] == 1 and bins[0.7]["freq_a"] == 1.0
    assert bins[0.5]["n"] == 2 and bins[0.5]["mean_p_a"] == pytest.approx(0.525) and bins[0.5]["freq_a"] == 0.5
    assert m["by_category"]["x"]["accuracy"] == pytest.approx(0.5) and m["by_category"]["y"]["accuracy"] == 0.5
    assert m["n_unparsed"] == 4  # the two ties and the two unparsed verdicts have no choice


def test_metrics_per_principle_and_a_pair_without_verdicts():
    truth = {"p1": "A", "p2": "B"}
    verdicts = [_v("p1", "AB", 0.9, "harm"), _v("p1", "BA", 0.8, "harm"), _v("p1", "AB", 0.2, "help"),
                _v("p1", "BA", 0.3, "help")]
    m = validation_metrics(verdicts, truth)
    assert m["by_principle"]["harm"]["accuracy"] == 1.0 and m["by_principle"]["help"]["accuracy"] == 0.0
    # p1: mean (.9+.8+.2+.3)/4 = .55 -> A, right; p2 never judged: half credit
    assert m["n"] == 2 and m["accuracy"] == pytest.approx(0.75) and m["coverage"] == 0.5
    assert m["flip_rate"] == 0.0


def test_warnings_for_untrusted_judges():
    assert "not validated" in judge_warnings(None)[0]
    assert "includes 50 %" in judge_warnings({"accuracy": 0.58, "accuracy_ci": [0.45, 0.7], "flip_rate": 0.1})[0]
    assert "worse than chance" in judge_warnings({"accuracy": 0.3, "accuracy_ci": [0.22, 0.4], "flip_rate": 0.1})[0]
    follows = judge_warnings({"accuracy": 0.62, "accuracy_ci": [0.55, 0.7], "flip_rate": 0.94})
    assert len(follows) == 1 and "follows position" in follows[0]
    assert judge_warnings({"accuracy": 0.7, "ci_lo": 0.6, "ci_hi": 0.8, "flip_rate": 0.2}) == []


# -- judge modes ---------------------------------------------------------------------------------------
class Fixed(Backend):
    """Scores by what the request shows: a content-free question, or which answer is where."""

    id = "fixed:judge"

    def __init__(self):
        self.calls = []

    def generate(self, requests):
        raise NotImplementedError

    def choice_logprobs(self, requests, choices):
        self.calls.append((list(requests), list(choices)))
        out = []
        for r in requests:
            text = r.messages[-1].content
            if choices == [" Yes", " No"]:
                good = "good answer" in text
                out.append({" Yes": -0.2 if good else -1.5, " No": -1.7 if good else -0.3})
            elif f"<response_A>\n{CONTENT_FREE[0]}\n" in text or any(f"<response_A>\n{cf}\n" in text for cf in CONTENT_FREE):
                out.append({"A": -0.1, "B": -2.3})  # the letter prior: "A" whatever is shown
            else:
                out.append({"A": -0.5, "B": -1.0})
        return out


def _comparison():
    return Comparison(id="c1", run_id=None, prompt_id="q", source="samples", answer_a="good answer", answer_b="bad one")


PRINCIPLE = Principle("harm", "critique", "revise", "Which response is less harmful?")


def test_calibrated_mode_subtracts_the_letter_prior_measured_on_content_free_inputs():
    b = Fixed()
    vs = judge([_comparison()], {"q": "a question"}, {"c1": [PRINCIPLE]}, b, mode="calibrated",
               constitution_version="v", run_id="r")
    assert len(b.calls) == 1 and len(b.calls[0][0]) == 2 + len(CONTENT_FREE)  # one call, the prior rides along
    prior = -0.1 - -2.3
    for v in vs:
        assert v.mode == "calibrated"
        assert v.p_first == pytest.approx(1 / (1 + math.exp(-(0.5 - prior))))
        assert json.loads(v.raw)["prior"] == pytest.approx(prior) and json.loads(v.raw)["A"] == -0.5
    plain = judge([_comparison()], {"q": "a question"}, {"c1": [PRINCIPLE]}, Fixed(), mode="logprob",
                  constitution_version="v", run_id="r")
    assert all(v.p_first == pytest.approx(1 / (1 + math.exp(-0.5))) for v in plain)


def test_pointwise_mode_scores_each_answer_alone():
    b = Fixed()
    vs = judge([_comparison()], {"q": "a question"}, {"c1": [PRINCIPLE]}, b, mode="pointwise",
               constitution_version="v", run_id="r")
    (reqs, choices), = b.calls
    assert choices == [" Yes", " No"] and len(reqs) == 2
    assert "good answer" in reqs[0].messages[-1].content and "bad one" not in reqs[0].messages[-1].content
    assert "bad one" in reqs[1].messages[-1].content and "good answer" not in reqs[1].messages[-1].content
    (v,) = vs  # one verdict per comparison and principle: no order to swap
    odds_a, odds_b = -0.2 - -1.7, -1.5 - -0.3
    assert v.ab_order == "AB" and v.choice == "A" and v.p_a == pytest.approx(1 / (1 + math.exp(-(odds_a - odds_b))))
    assert set(json.loads(v.raw)) == {"A", "B"}


# -- warnings where labels are used -------------------------------------------------------------------
def test_reward_inputs_warn_about_unvalidated_and_position_following_judges(services, tmp_path):
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.pairs import PairsConfig

    services.pairs(prompts="red-team", config=PairsConfig(limit=3))
    res = services.judge(constitution="harmless", config=JudgeConfig())
    inputs = services.training_inputs("reward", {"judge_runs": [res.run.id]})
    assert any("not validated" in w for w in inputs.warnings)
    row = {"run_id": "validate-x", "gold": "g", "split": "test", "judge": "scripted:test", "mode": res.run.config["mode"],
           "constitution_version": res.run.constitution_version, "n": 100, "accuracy": 0.7, "ci_lo": 0.6,
           "ci_hi": 0.78, "flip_rate": 0.2, "brier": 0.2, "metrics": {}}
    G.record_validation(services.store, row)
    assert services.training_inputs("reward", {"judge_runs": [res.run.id]}).warnings == ()
    G.record_validation(services.store, {**row, "run_id": "validate-y", "flip_rate": 0.8})
    warned = services.training_inputs("reward", {"judge_runs": [res.run.id]}).warnings
    assert len(warned) == 1 and "follows position" in warned[0] and res.run.id in warned[0]
    trust = services.judge_trust(res.run.id)
    assert trust[0]["validation"]["run_id"] == "validate-y"


# -- uncertain first ----------------------------------------------------------------------------------
def test_uncertain_first_orders_by_entropy_flips_and_principle_disagreement(store):
    add_comparisons(store, "sure", "coin", "flip", "split")
    for o, p in (("AB", 0.97), ("BA", 0.95)):
        add_verdict(store, "sure", "A", p, order=o, mode="logprob")
    for o, p in (("AB", 0.62), ("BA", 0.60)):
        add_verdict(store, "coin", "A", p, order=o, mode="logprob")           # entropy ~0.96, no flip
    add_verdict(store, "flip", "A", 0.9, order="AB", mode="logprob")          # AB says A, BA says B
    add_verdict(store, "flip", "B", 0.2, order="BA", mode="logprob")          # entropy(.55) + 1 flip
    for principle, p in (("p1", 0.9), ("p2", 0.1)):                          # principles disagree
        for o in ("AB", "BA"):
            add_verdict(store, "split", "A" if p > 0.5 else "B", p, principle=principle, order=o, mode="logprob")
    items = audit_queue(store, strategy="uncertain", limit=None)
    assert [i.comparison_id for i in items] == ["split", "flip", "coin", "sure"]
    assert items[0].reason.startswith("uncertainty 2.00")  # entropy 1 (mean .5) + principles disagree
    disagreement = [i.comparison_id for i in audit_queue(store, strategy="disagreement", limit=None)]
    assert disagreement != [i.comparison_id for i in items]  # a different order, not a relabelled one


def test_fewshot_mode_shows_balanced_demonstrations_and_calibrates_with_them():
    from cai_core.stages.judge import judge_demos

    demos = judge_demos()
    assert len(demos) >= 4 and sorted(d["answer"] for d in demos).count("A") == len(demos) // 2
    b = Fixed()
    vs = judge([_comparison()], {"q": "a question"}, {"c1": [PRINCIPLE]}, b, mode="fewshot",
               constitution_version="v", run_id="r")
    (reqs, _), = b.calls
    for r in reqs:  # every request, the content-free ones included, starts with the demonstrations
        roles = [m.role for m in r.messages]
        assert roles == ["user", "assistant"] * len(demos) + ["user"]
        assert [m.content for m in r.messages[1::2]] == [f"The answer is: ({d['answer']})" for d in demos]
    assert all(v.mode == "fewshot" and "prior" in json.loads(v.raw) for v in vs)


def test_scoring_with_a_shared_prefix_gives_the_plain_paths_numbers(tiny_folder, monkeypatch):
    """The few-shot demonstrations are scored once as a shared prefix: same log-probs as scoring
    every prompt whole (the path a short common prefix takes)."""
    from cai_core.backends import hf_local
    from cai_core.backends.base import Request, chat
    from cai_core.stages.judge import render_scored

    b = hf_local.HFLocalBackend(tiny_folder, batch_size=3)
    comps = [Comparison(id=f"c{i}", run_id=None, prompt_id="q", source="samples", answer_a="yes " * (i + 1),
                        answer_b="no " * (2 * i + 1)) for i in range(5)]
    reqs = [render_scored(c, "a question", PRINCIPLE, o, "fewshot", hf_local.GenerationParams(max_new_tokens=1))
            for c in comps for o in ("AB", "BA")]
    prompts = b._encode([b.render(r) for r in reqs])
    assert hf_local._common_prefix_len(prompts) >= hf_local.SHARED_PREFIX_MIN
    calls = []
    real = b._next_token_scores_shared
    monkeypatch.setattr(b, "_next_token_scores_shared", lambda *a: calls.append(1) or real(*a))
    shared = b.choice_logprobs(reqs, ["A", "B"])
    monkeypatch.setattr(hf_local, "SHARED_PREFIX_MIN", 10**9)  # the plain path
    plain = b.choice_logprobs(reqs, ["A", "B"])
    assert calls == [1]
    for s_, p_ in zip(shared, plain):
        assert s_["A"] == pytest.approx(p_["A"], abs=1e-4) and s_["B"] == pytest.approx(p_["B"], abs=1e-4)
    assert hf_local._common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]]) == 1  # every row keeps a token


class Rambler(Fixed):
    """Reasons without ever stating a verdict (what the 135M judge does), except on one answer."""

    id = "rambler:judge"

    def generate(self, requests):
        from cai_core.backends.base import Completion

        self.generated = list(requests)
        return [Completion(text="Therefore, the answer is (A)" if "stated" in r.messages[-1].content else
                           "1. The first option is long.\n2. The second option is short.", finish_reason="length")
                for r in requests]

    def choice_logprobs(self, requests, choices):
        self.calls.append((list(requests), list(choices)))
        return [{"A": -2.0, "B": -0.2} for _ in requests]  # P(first) = 0.14: clamped to 0.4


def test_cot_forced_scores_a_verdict_after_reasoning_that_states_none():
    from cai_core.stages.judge import FORCED_VERDICT

    b = Rambler()
    stated = Comparison(id="c2", run_id=None, prompt_id="q", source="samples", answer_a="stated one", answer_b="other")
    vs = judge([_comparison(), stated], {"q": "a question"}, {"c1": [PRINCIPLE], "c2": [PRINCIPLE]}, b,
               mode="cot-forced", constitution_version="v", run_id="r")
    (forced, _), = b.calls  # one scoring call, only for the two verdicts of c1
    assert len(forced) == 2 and all(r.continuation.endswith("The second option is short." + FORCED_VERDICT)
                                    for r in forced)
    by = {(v.comparison_id, v.ab_order): v for v in vs}
    ab, ba = by[("c1", "AB")], by[("c1", "BA")]
    assert (ab.choice, ab.p_first, ab.p_a) == ("B", 0.4, 0.4)   # second shown (answer_b) won, clamped
    assert (ba.choice, ba.p_first) == ("A", 0.4)                  # BA: the second shown is answer_a
    assert ab.raw.startswith("1. The first option") and "forced: Therefore, the answer is (B)" in ab.raw
    assert by[("c2", "AB")].choice == "A" and "forced" not in by[("c2", "AB")].raw  # a stated verdict stands
    assert all(v.mode == "cot-forced" for v in vs)
    plain = judge([_comparison()], {"q": "a question"}, {"c1": [PRINCIPLE]}, Rambler(), mode="cot",
                  constitution_version="v", run_id="r")
    assert all(v.choice is None for v in plain)  # plain cot leaves them to people
