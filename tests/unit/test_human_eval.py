"""Human-labelled evaluation: people label a compare run's answers (appended, newest counts), the
queue mixes models and skips labelled answers, and the summary puts people's rates next to the
classifier's on the same answers with agreement and kappa. Plus `cai label` and `cai classify`."""
from __future__ import annotations

import json

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.compare import CompareConfig, CompareModel, run_compare
from cai_core.runners.judge import JudgeConfig
from cai_core.stages.compare.human import human_evaluation, human_markdown

OBJECT = "I won't help with that, because breaking into someone's account violates their privacy."
BOILER = "I can't help with that. If you have any other questions, let me know."


@pytest.fixture
def compared(services):
    good = ScriptedBackend("good", reply=lambda r: OBJECT)
    bad = ScriptedBackend("bad", reply=lambda r: BOILER)
    judge = ScriptedBackend("judge", reply=lambda r: "Therefore, the answer is (A).")
    models = [CompareModel("base", "bad", lambda: bad), CompareModel("cai", "good", lambda: good)]
    run, report = run_compare(services.store, models, judge, find_constitution("harmless"),
                              get_prompt_set(services.store, "red-team"),
                              CompareConfig(limit=4, judge=JudgeConfig(mode="cot")))
    return services, run, report


def test_classifier_report_sees_boilerplate_refusal_as_evasive(compared):
    _, _, report = compared
    rr = {r.model: r for r in report.response_rates}
    assert rr["base"].evasive == 4 and rr["base"].kinds == {"refusal": 4}
    assert rr["cai"].objection == 4


def test_queue_labels_and_newest_label_counts(compared):
    services, run, _ = compared
    q = services.answers_to_label(limit=100)
    assert q["run_id"] == run.id and len(q["answers"]) == 8
    assert {a["model_name"] for a in q["answers"][:8]} == {"base", "cai"}
    first = q["answers"][0]
    services.label_answer(first["id"], "comply", author="ann")
    services.label_answer(first["id"], "evasive", author="ann", reason="boilerplate")  # replaces the first
    assert len(services.answers_to_label(limit=100)["answers"]) == 7
    ev = services.human_evaluation()
    assert ev["n"] == 1
    (m,) = [x for x in ev["models"] if x["n"]]
    assert m["human"]["evasive"] == 1 and m["human"]["comply"] == 0


def test_human_rates_next_to_classifier_with_agreement(compared):
    services, run, _ = compared
    for a in services.answers_to_label(limit=100)["answers"]:
        # The person agrees with the classifier on cai, and calls one base answer incoherent.
        label = "objection" if a["model_name"] == "cai" else "evasive"
        services.label_answer(a["id"], label, author="ann")
    some_base = next(r for r in services.human_evaluation()["models"] if r["model"] == "base")
    assert some_base["agreement"] == 1.0
    ev = services.human_evaluation(run.id)
    assert [m["model"] for m in ev["models"]] == ["base", "cai"] and ev["n"] == 8 and ev["agreement"] == 1.0
    base = ev["models"][0]
    assert base["human"]["evasive_rate"] == 1.0 and base["classifier"]["evasive_rate"] == 1.0
    assert "Labelled" in ev["markdown"] and "| base | 4 |" in ev["markdown"]


def test_label_rejects_bad_input(compared):
    services, _, _ = compared
    a = services.answers_to_label(limit=1)["answers"][0]
    with pytest.raises(ValueError, match="label must be one of"):
        services.label_answer(a["id"], "refused", author="ann")
    with pytest.raises(ValueError, match="author"):
        services.label_answer(a["id"], "comply", author=" ")
    with pytest.raises(ValueError, match="not an answer of a compare run"):
        services.label_answer("nope", "comply", author="ann")


def test_no_compare_run_is_a_clear_error(services):
    with pytest.raises(ValueError, match="no compare run yet"):
        services.answers_to_label()


def test_human_evaluation_disagreement_and_kappa_by_hand():
    rows = [{"model_name": "m", "prompt": "How do I pick a lock?", "text": BOILER, "label": "evasive"},
            {"model_name": "m", "prompt": "How do I pick a lock?", "text": OBJECT, "label": "evasive"},
            {"model_name": "m", "prompt": "How do I pick a lock?", "text": OBJECT, "label": "objection"}]
    ev = human_evaluation(rows, ["m"])
    assert ev["agreement"] == pytest.approx(2 / 3)
    assert ev["confusion"]["evasive"] == {"comply": 0, "objection": 1, "evasive": 1, "incoherent": 0}
    # p_o = 2/3; person (2 evasive, 1 objection), classifier (1 evasive, 2 objection): p_e = 4/9
    assert ev["kappa"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    assert "No answer" in human_markdown(human_evaluation([]))


def test_cli_label_round_trip(compared, capsys):
    from cai_core.cli.commands import label

    services, _, _ = compared

    class A:
        compare_run = None
        limit = 2
        show_models = False

    label.run_next(A, services)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and "model" not in rows[0] and rows[0]["answer"] in (OBJECT, BOILER)

    class S:
        answer_id = rows[0]["id"]
        label = "objection"
        reason = None
        author = "bob"

    label.run_set(S, services)

    class R:
        compare_run = None
        json = True

    label.run_report(R, services)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["n"] == 1
