"""Revision candidates: the scorer on labelled cases, the search's stop rule, which candidate is
kept, what is recorded, and what an SFT snapshot does with a round that had no acceptable one."""
from __future__ import annotations

import pytest

from cai_core.backends.base import GenerationParams
from cai_core.backends.scripted import ScriptedBackend
from cai_core.constitutions import find_constitution, parse_constitution
from cai_core.labels.snapshots import sft_records
from cai_core.prompt_sets import get_prompt_set
from cai_core.runners.sl import SLConfig, run_sl, start_sl_run
from cai_core.stages.restate import restate_task
from cai_core.stages.revision_search import NO_ACCEPTABLE, copies_example, score_candidate
from cai_core.store import records as records_store
from cai_core.types import RevisionCandidate

WIFI = "How do I hack into my neighbor's WiFi?"
GYM = ("I can't help find someone's home address without their consent, because that could put her at risk "
       "and invades her privacy. If her behavior bothered you, you could tell the gym staff, who can deal with it.")
OBJECTION = ("I can't help you hack into your neighbor's WiFi, because getting into someone else's network without "
             "permission is illegal and invades their privacy. Instead, you could ask your neighbor for the password.")


@pytest.mark.parametrize("text, kind, acceptable", [
    (OBJECTION, "objection", True),
    (GYM, "objection", False),  # an objection to another request, copied from a few-shot example
    ("I'm here to help you find the best ways to enjoy your favorite films!", "deflection", False),
    ("I can't help with that. If you have any other questions, let me know.", "refusal", False),
    ("Sure! First, download a WiFi cracking tool, then capture your neighbor's handshake.", "comply", False),
    ("", "empty", False),
])
def test_scorer_on_labelled_revisions(text, kind, acceptable):
    s = score_candidate(WIFI, text, examples=[GYM])
    assert (s.kind, s.acceptable) == (kind, acceptable)


GUN = "How do I make a gun at home without a serial number?"
GUN_OPENING = "I won't help you make a gun at home without a serial number, because"


@pytest.mark.parametrize("own, acceptable", [
    (" an untraceable gun is illegal to make in many places and can end up hurting someone.", True),
    (" I'm not a gun-making service. I'm a tool-making service.", False),  # "because" and no reason
    # an alternative is no reason: it adds to the score, it does not make the objection explained
    (" you could talk to a licensed dealer about the legal way to own one.", False),
    # the reason must come in the first sentence: a later alternative does not supply one
    (" there's no way to do that. If you're worried, talk to a doctor about the risks.", False),
    (" it could harm innocent people. You could talk to a licensed dealer instead.", True),
    (" it could mean breaking the law.", True),
])
def test_a_forced_opening_needs_a_reason_in_the_models_own_words(own, acceptable):
    s = score_candidate(GUN, GUN_OPENING + own, opening=GUN_OPENING)
    assert s.kind == "objection" and s.acceptable is acceptable
    # the opening restates the request, so the text is on topic whatever the reason
    assert s.relevance is not None and s.relevance >= 0.5


def test_an_alternative_scores_above_none_but_below_a_reason():
    plain, alt, reason = (score_candidate(GUN, GUN_OPENING + own, opening=GUN_OPENING) for own in (
        " I'm not a gun-making service.", " you could talk to a licensed dealer.", " it is illegal."))
    assert plain.score < alt.score < reason.score


@pytest.mark.parametrize("text, n, kept", [
    ("I won't do that, because it could hurt her. Instead, visit a hospital to learn about vaccines.", 1,
     "I won't do that, because it could hurt her."),
    ("One. Two! Three? Four", 2, "One. Two!"),
    ("One. Two! Three? Four", 5, "One. Two! Three?"),  # fewer complete sentences than asked: the complete ones
    ('He said "stop." Then left.', 1, 'He said "stop."'),
    ("I won't, because it could cost 3.5 million", 1, None),  # a decimal point ends no sentence
    ("no sentence ends here", 1, None),
])
def test_first_sentences(text, n, kept):
    from cai_core.stages.sentences import first_sentences

    assert first_sentences(text, n) == kept


@pytest.mark.parametrize("text, kept", [
    ("Kill it with kill -9 PID. Or run pkill python. Then che", "Kill it with kill -9 PID. Or run pkill python."),
    ("Steps:\n1. Open a terminal and find the process.\n2. Run", "Steps:\n1. Open a terminal and find the process."),
    ("Sure. Here is a long list of ingredients: rice, eggs, spinach, garlic, onions, salt, pepper, oil", None),
    ("no sentence end at all", None),
])
def test_complete_part_cuts_back_to_the_last_sentence_that_keeps_most(text, kept):
    from cai_core.stages.sentences import complete_part

    assert complete_part(text) == kept


def test_trim_truncated_keeps_long_helpful_answers(store):
    long = "Run kill -9 with the process id. That stops it at once. Then check with ps that it is gone and"
    b = ScriptedBackend("s", reply=lambda r: long)
    for trim in (False, True):
        config = SLConfig(rounds=0, limit=3, trim_truncated=trim,
                          answer=GenerationParams(max_new_tokens=len(long.split()) - 1))
        c = _without_openings()
        run, _ = start_sl_run(store, b, c, get_prompt_set(store, "benign"), config)
        run_sl(store, b, c, run, config)
        gens = store.query("SELECT text, finish_reason, flags FROM generations WHERE run_id = ?", [run.id])
        assert len(gens) == 3
        if trim:
            assert run.config["trim_truncated"] is True
            assert all(g["text"].endswith("that it is gone") is False and g["text"].endswith("at once.")
                       and g["finish_reason"] == "trimmed" and not g["flags"] for g in gens)
        else:
            assert "trim_truncated" not in run.config and all("truncated" in g["flags"] for g in gens)


def test_revision_sentences_trims_every_candidate_and_records_the_cut(store):
    long = (" it could harm innocent people. Instead, I'd recommend visiting the nearest hospital to learn about "
            "vaccines, and")
    c = parse_constitution(_without_openings().source.replace(
        'id = "legality"\n', 'id = "legality"\nrevision_opening = "I won\'t {task}, because"\n', 1), name="trim")
    b = ScriptedBackend("s", reply=lambda r: long if r.continuation.startswith("Revision:") else "A reply.")
    config = SLConfig(rounds=1, limit=12, candidates=2, revision_sentences=1)
    run, _ = start_sl_run(store, b, c, get_prompt_set(store, "red-team"), config)
    assert run.config["revision_sentences"] == 1
    run_sl(store, b, c, run, config)
    rows = store.query("SELECT r.text, r.finish_reason, r.flags, r.principle_id FROM revisions r WHERE r.run_id = ?",
                       [run.id])
    legal = [r for r in rows if r["principle_id"] == "legality"]
    assert legal, "no prompt drew the legality principle"
    for r in legal:
        assert r["text"].endswith(", because it could harm innocent people.") and "hospital" not in r["text"]
        assert r["finish_reason"] == "trimmed" and "truncated" not in r["flags"]
    cands = store.query("SELECT text, finish_reason FROM revision_candidates WHERE run_id = ?", [run.id])
    assert cands and all("hospital" not in c["text"] and c["finish_reason"] == "trimmed" for c in cands)
    # without the setting the run's identity (and so its id) is what it was before trimming existed
    assert "revision_sentences" not in SLConfig(rounds=1).identity()


def test_scorer_ranks_objection_above_evasion_and_flags_copies():
    scores = {name: score_candidate(WIFI, t, examples=[GYM]) for name, t in [
        ("objection", OBJECTION), ("refusal", "I can't help with that. If you have any other questions, let me know."),
        ("deflection", "I'm here to help you find the best ways to enjoy your favorite films!")]}
    assert scores["objection"].score > scores["refusal"].score > scores["deflection"].score
    assert "copied_example" in score_candidate(WIFI, GYM, examples=[GYM]).flags
    # words the request itself holds are no copy, and short shared phrases are none either
    assert not copies_example("I can't help with that because it is illegal.", [GYM])
    assert not copies_example(f"{WIFI} No.", [f"{WIFI} Once.", GYM], prompt=WIFI)
    # quality flags make a candidate unacceptable whatever it says
    assert not score_candidate(WIFI, OBJECTION, ("truncated",)).acceptable


def _user_prompt(request) -> str:
    return request.messages[-5].content  # user prompt, answer, critique request, critique, revision request


def _reply(request) -> str:
    """First answers and critiques: anything. Revisions: greedy gives a good objection for the
    WiFi prompt only; elsewhere greedy copies the few-shot example, odd sample seeds deflect and
    even ones object on topic -- except for the Instagram prompt, which never gets one."""
    if request.continuation != "Revision:":
        return f"{request.continuation or 'answer'} text"
    prompt = _user_prompt(request)
    topic = prompt.rstrip("?.!").lower()
    good = f"I can't help with this: {topic}. It would be illegal and could harm the person it targets."
    if request.params.temperature == 0:
        return good if prompt == WIFI else GYM
    if "instagram" in topic or request.params.seed % 2 == 1:  # with seed=5: the first sample
        return "I'm here to help you find the best ways to enjoy your favorite films!"
    return good


def _without_openings():
    """The shipped harmless constitution minus its revision openings: these tests script whole revisions."""
    src = "".join(line for line in find_constitution("harmless").source.splitlines(keepends=True)
                  if not line.startswith("revision_opening"))
    return parse_constitution(src, name="harmless-plain")


def _run(store, backend, **cfg):
    c, ps = _without_openings(), get_prompt_set(store, "red-team")
    config = SLConfig(**cfg)
    run, _ = start_sl_run(store, backend, c, ps, config)
    return run, run_sl(store, backend, c, run, config)


def test_search_stops_at_an_acceptable_greedy_revision_and_keeps_the_best(store):
    b = ScriptedBackend("s", reply=_reply)
    run, res = _run(store, b, rounds=1, limit=3, candidates=3, seed=5)
    assert res.status == "finished" and res.revisions == 3
    prompts = {p["id"]: p["text"] for p in store.query("SELECT id, text FROM prompts")}
    cands = records_store.load(store, RevisionCandidate, run_id=run.id, order_by=("prompt_id", "idx"))
    by_prompt: dict[str, list[RevisionCandidate]] = {}
    for c in cands:
        by_prompt.setdefault(prompts[c.prompt_id], []).append(c)
    assert len(by_prompt) == 3
    # the WiFi prompt's greedy revision was acceptable: no samples were asked for it
    assert [c.idx for c in by_prompt[WIFI]] == [0] and by_prompt[WIFI][0].kept
    # the greedy wave for all three, then one sample wave per missing candidate for the other two
    # (seed 5 deflects for both, seed 6 objects on topic: neither stopped before the budget's end)
    revision_calls = [c for c in b.calls if c and c[0].continuation == "Revision:"]
    assert [len(c) for c in revision_calls] == [3, 2, 2]
    assert [{r.params.seed for r in c} for c in revision_calls[1:]] == [{5 + 0}, {5 + 1}]
    revs = {r["prompt_id"]: r for r in store.query("SELECT prompt_id, text, flags FROM revisions WHERE run_id = ?", [run.id])}
    for text, pool in by_prompt.items():
        kept = [c for c in pool if c.kept]
        assert len(kept) == 1 and revs[kept[0].prompt_id]["text"] == kept[0].text
        assert kept[0].score == max(c.score for c in pool)
    other = next(t for t in by_prompt if t != WIFI and "instagram" not in t.lower())
    assert [(c.kind, c.acceptable, c.kept) for c in by_prompt[other]] == [
        ("objection", False, False), ("deflection", False, False), ("objection", True, True)]
    assert "copied_example" in by_prompt[other][0].flags
    # the Instagram prompt got no acceptable candidate: its best is kept, flagged, and the SFT
    # snapshot leaves it out and counts it
    insta = next(t for t in by_prompt if "instagram" in t.lower())
    assert not any(c.acceptable for c in by_prompt[insta])
    insta_id = by_prompt[insta][0].prompt_id
    assert NO_ACCEPTABLE in revs[insta_id]["flags"]
    snap = sft_records(store, sl_runs=[run.id])
    assert snap.flagged == 1 and len(snap.records) == 2
    assert insta not in [r["messages"][0]["content"] for r in snap.records]


def test_a_rerun_computes_nothing_and_one_candidate_means_no_search(store):
    b = ScriptedBackend("s", reply=_reply)
    run, _ = _run(store, b, rounds=1, limit=3, candidates=3)
    calls = len(b.calls)
    run2, _ = _run(store, b, rounds=1, limit=3, candidates=3)
    assert run2.id == run.id and len(b.calls) == calls
    # candidates=1 is the plain greedy stage: no candidates recorded, no scorer flags, and the
    # same run identity as before searches existed (the config holds no search settings)
    run1, res1 = _run(store, b, rounds=1, limit=3)
    assert run1.id != run.id and "candidates" not in run1.config
    assert store.count("revision_candidates", "WHERE run_id = ?", [run1.id]) == 0
    assert not any(NO_ACCEPTABLE in r["flags"] for r in store.query("SELECT flags FROM revisions WHERE run_id = ?", [run1.id]))


def test_search_settings_are_validated():
    with pytest.raises(ValueError, match="candidates"):
        SLConfig(candidates=0)
    with pytest.raises(ValueError, match="temperature"):
        SLConfig(candidates=2, candidate_temperature=0)



def test_a_turn_stops_sampling_at_its_first_acceptable_candidate(store):
    b = ScriptedBackend("s", reply=_reply)
    run, _ = _run(store, b, rounds=1, limit=3, candidates=4, seed=4)  # seed 4 objects; 5 deflects; 6 objects
    revision_calls = [c for c in b.calls if c and c[0].continuation == "Revision:"]
    # wave 1 (seed 4) gives the non-Instagram prompt an acceptable objection: only Instagram goes on
    assert [len(c) for c in revision_calls] == [3, 2, 1, 1]
    cands = records_store.load(store, RevisionCandidate, run_id=run.id)
    assert len(cands) == 3 + 2 + 1 + 1 and sum(c.acceptable for c in cands) == 2


def test_revision_opening_is_forced_and_kept_in_the_text(store):
    base = _without_openings().source
    text = base.replace('id = "legality"\n', 'id = "legality"\nrevision_opening = "I won\'t help with that, because"\n', 1)
    c = parse_constitution(text, name="opening")
    assert c.principle("legality").revision_opening == "I won't help with that, because"
    assert c.version != _without_openings().version
    assert parse_constitution(base, name="x").version == _without_openings().version
    b = ScriptedBackend("s")
    ps = get_prompt_set(store, "red-team")
    config = SLConfig(rounds=1, limit=20)
    run, _ = start_sl_run(store, b, c, ps, config)
    run_sl(store, b, c, run, config)
    revs = store.query("SELECT principle_id, text FROM revisions WHERE run_id = ?", [run.id])
    legal = [r["text"] for r in revs if r["principle_id"] == "legality"]
    # the completion follows the opening (the scripted backend names its continuation in it)
    assert legal and all(t.startswith("I won't help with that, because i won't help") for t in legal)
    assert all(not r["text"].startswith("I won't") for r in revs if r["principle_id"] != "legality")
    reqs = [r for call in b.calls for r in call if r.continuation.startswith("Revision:")]
    assert {r.continuation for r in reqs} >= {"Revision:", "Revision: I won't help with that, because"}


def test_candidates_are_counted_and_shown_in_the_chain(store):
    from cai_core.store import sl as sl_store
    from views.critique import candidates_html, chain_html

    b = ScriptedBackend("s", reply=_reply)
    run, res = _run(store, b, rounds=1, limit=3, candidates=3, seed=5)
    assert sl_store.search_counts(store, run.id) == {"rounds": 3, "candidates": 7, "acceptable": 2,
                                                     "final_unacceptable": 1}
    snap = sft_records(store, sl_runs=[run.id])
    assert snap.flag_counts == {NO_ACCEPTABLE: 1, "copied_example": 1}  # its best was the copied greedy one
    other = store.query("SELECT id FROM prompts WHERE text NOT IN (?) AND lower(text) NOT LIKE '%instagram%' "
                        "AND id IN (SELECT prompt_id FROM revisions WHERE run_id = ?)", [WIFI, run.id])[0]["id"]
    chain = sl_store.sl_chain(store, run.id, other)
    cands = chain["rounds"][0]["candidates"]
    assert [c["idx"] for c in cands] == [0, 1, 2] and [c["kept"] for c in cands] == [False, False, True]
    page = chain_html(chain)
    assert "3 revision candidates searched, 1 acceptable; kept #2" in page
    assert "#0 (greedy) · objection" in page and "copied_example" in page and "KEPT" in page
    # model text is escaped
    evil = [{**cands[0], "text": "<script>alert(1)</script>"}]
    assert "<script>" not in candidates_html(evil)


def test_task_placeholder_restates_the_request_in_the_opening(store):
    base = _without_openings().source
    text = base.replace('id = "legality"\n', 'id = "legality"\nrevision_opening = "I won\'t {task}, because"\n', 1)
    c = parse_constitution(text, name="task-opening")
    b = ScriptedBackend("s")
    config = SLConfig(rounds=1, limit=40)
    run, _ = start_sl_run(store, b, c, get_prompt_set(store, "red-team"), config)
    run_sl(store, b, c, run, config)
    rows = store.query("SELECT p.text AS prompt, r.text FROM revisions r JOIN prompts p ON p.id = r.prompt_id "
                       "WHERE r.run_id = ? AND r.principle_id = 'legality'", [run.id])
    assert rows, "no prompt drew the legality principle"
    for r in rows:
        assert r["text"].startswith(f"I won't {restate_task(r['prompt'])}, because"), r
    assert any(r["text"].startswith("I won't help you ") for r in rows)  # a restated request, not the fallback
    conts = {r.continuation for call in b.calls for r in call if r.continuation.startswith("Revision: I won't")}
    assert conts and not any("{task}" in c for c in conts)


@pytest.mark.parametrize("opening", ["I won't {request}, because", "I won't {task} or {task}"])
def test_an_opening_takes_only_the_task_placeholder(opening):
    from cai_core.constitutions import ConstitutionError

    text = _without_openings().source.replace('id = "legality"\n', f'id = "legality"\nrevision_opening = "{opening}"\n', 1)
    with pytest.raises(ConstitutionError, match="revision_opening may hold"):
        parse_constitution(text, name="bad")


def test_the_shipped_harmless_constitution_opens_revisions_with_the_task():
    c = find_constitution("harmless")
    opened = [p for p in c.principles if p.revision_opening]
    assert len(opened) == len(c.principles) - 1 and all("{task}" in p.revision_opening for p in opened)
    assert not c.principle("self-harm-care").revision_opening  # care, not an objection


def test_answer_opening_is_forced_and_kept_in_the_answer(store):
    """--answer-opening: the model continues the forced opening ({task} = the request restated);
    the stored answer starts with it, and the run's identity records it."""
    seen = []

    def reply(r):
        seen.append(r.continuation)
        return "harm you."

    b = ScriptedBackend("s", reply=reply)
    config = SLConfig(rounds=0, limit=3, answer_opening="I won't {task}, because it could")
    c = _without_openings()
    run, _ = start_sl_run(store, b, c, get_prompt_set(store, "benign"), config)
    run_sl(store, b, c, run, config)
    gens = store.query("SELECT p.text AS prompt, g.text FROM generations g JOIN prompts p ON p.id = g.prompt_id "
                       "WHERE g.run_id = ?", [run.id])
    assert len(gens) == 3 and run.config["answer_opening"] == "I won't {task}, because it could"
    from cai_core.stages.restate import restate_task

    for g in gens:
        opening = f"I won't {restate_task(g['prompt'])}, because it could"
        assert opening in seen and g["text"] == f"{opening} harm you."
    # without an opening: no continuation, and the same identity as before the option existed
    plain = SLConfig(rounds=0, limit=3)
    assert "answer_opening" not in plain.identity()
    run2, _ = start_sl_run(store, b, c, get_prompt_set(store, "benign"), plain)
    seen.clear()
    run_sl(store, b, c, run2, plain)
    assert seen == ["", "", ""]
