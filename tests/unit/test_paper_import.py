"""Importing the Constitutional AI paper's prompt files (critique/revision instructions, few-shot
examples, RL-phase preference questions) as a constitution: shapes read from content, the
pairing rule, multi-turn examples, round-trip through TOML, clear errors, and the three faces
(facade, CLI, app handler) saving through the one "new version" path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cai_core.constitutions import dump_constitution, load_constitution, parse_constitution
from cai_core.paper_import import PaperImportError, detect_shape, import_paper_files, read_paper_file

PAPER = Path(__file__).resolve().parents[1] / "fixtures" / "paper"
CRIT, FEW, PREF = PAPER / "critique_revision.json", PAPER / "few_shot.json", PAPER / "preferences.json"
IDS = ["rude0", "risky1", "false2", "private3"]


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def error_of(*paths, name="paper") -> str:
    with pytest.raises(PaperImportError) as ei:
        import_paper_files(list(paths), name=name)
    return str(ei.value)


# -- the fixtures, as a constitution ----------------------------------------------------------------
def test_fixtures_become_four_principles_paired_in_order_and_two_examples():
    res = import_paper_files([CRIT, PREF, FEW], name="paper")
    c = res.constitution
    assert [p.id for p in c.principles] == IDS
    rude = c.principle("rude0")
    # the scaffolding is gone, the request text stays exactly
    assert rude.critique == "Point out every place where the assistant's last reply is rude, mocking or insulting toward anyone."
    assert rude.revision == "Rewrite the assistant's reply so that it is courteous and insults nobody."
    assert rude.preference == "Which of the two replies is more polite and less insulting?"
    assert c.principle("private3").preference == "Which reply does a better job of protecting other people's personal details?"
    assert not any("Request:" in p.critique + p.revision or p.preference.endswith("Options:") for p in c.principles)
    assert [f.shape for f in res.files] == ["critique-revision", "preference", "few-shot"]
    one, multi = c.examples
    # single turn: its request is principle rude0's word for word -> attached there, no note
    assert (one.principle, one.prompt) == ("rude0", "My roommate keeps eating my food. What's a good insult to really hurt him?")
    assert one.answer == "Call him a useless freeloading pig in front of all your friends."
    assert one.revision.startswith("I won't write an insult")
    # multi-turn: earlier turns kept in the prompt as a transcript; the answer is the last Assistant turn
    assert multi.prompt == ("Human: Which mushrooms in my garden are safe to eat?\n\nAssistant: Most white mushrooms "
                            "are fine, just fry them well.\n\nHuman: Great, so I can pick the white ones by the fence "
                            "for dinner tonight?")
    assert multi.answer == "Yes, go ahead, white ones are always safe."
    assert multi.critique.startswith("The assistant claims white mushrooms are always safe")
    # its request is none of the principles': the closest wording (physical harm), and a note says so
    assert multi.principle == "risky1"
    assert len(res.notes) == 1 and "few-shot example #2" in res.notes[0] and "'risky1'" in res.notes[0]


def test_the_toml_round_trips_to_the_same_constitution(tmp_path):
    res = import_paper_files([CRIT, FEW, PREF], name="paper")
    back = parse_constitution(res.toml, name="paper")
    assert back == res.constitution
    assert dump_constitution(back) == res.toml
    saved = load_constitution(write(tmp_path / "paper.toml", res.toml))
    assert (saved.version, saved.principles, saved.examples) == (back.version, back.principles, back.examples)


def test_shapes_are_read_from_content_not_names_and_file_order_does_not_matter(tmp_path):
    # misleading names: each file carries another shape's name
    crit = Path(shutil.copy(CRIT, tmp_path / "preferences.json"))
    pref = Path(shutil.copy(PREF, tmp_path / "few_shot.json"))
    few = Path(shutil.copy(FEW, tmp_path / "critique_revision.json"))
    assert [read_paper_file(p).shape for p in (crit, pref, few)] == ["critique-revision", "preference", "few-shot"]
    a = import_paper_files([few, pref, crit], name="paper").constitution
    b = import_paper_files([CRIT, PREF, FEW], name="paper").constitution
    assert a.principles == b.principles and a.examples == b.examples and a.version == b.version


def test_few_shot_file_is_optional():
    c = import_paper_files([PREF, CRIT], name="bare").constitution
    assert [p.id for p in c.principles] == IDS and c.examples == ()


def test_keys_become_valid_ids_and_a_plain_string_prompt_is_accepted(tmp_path):
    crit = write(tmp_path / "c.json", {"harm ful/0": {"prompt": "CritiqueRequest: Is it cruel?\n\nCritique:",
                                                      "edit_request": "RevisionRequest: Make it kind."}})
    pref = write(tmp_path / "p.json", ["Which is kinder?\n\nOptions:"])
    (p,) = import_paper_files([crit, pref], name="x").constitution.principles
    assert (p.id, p.critique, p.revision, p.preference) == ("harm-ful-0", "Is it cruel?", "Make it kind.", "Which is kinder?")


# -- errors name the file and the problem ------------------------------------------------------------
def test_preference_count_that_cannot_be_paired(tmp_path):
    pref = write(tmp_path / "prefs.json", json.loads(PREF.read_text())[:3])
    msg = error_of(CRIT, pref)
    assert str(CRIT) in msg and str(pref) in msg
    assert "4 critique/revision principles" in msg and "3 preference questions" in msg and "counts must match" in msg


def test_both_instruction_files_are_required(tmp_path):
    msg = error_of(CRIT, FEW)
    assert "none of the files holds preference instructions" in msg and "cai judge" in msg
    msg = error_of(PREF, FEW)
    assert "none of the files holds critique-revision instructions" in msg
    twice = Path(shutil.copy(CRIT, tmp_path / "again.json"))
    assert "two files hold critique-revision instructions" in error_of(CRIT, twice, PREF)
    assert "no files given" in error_of()


BAD_FILES = [
    # name, content, substrings of the error (after the file's path)
    ("empty.json", "  \n", ["the file is empty"]),
    ("broken.json", '{"a": 1,\n "b": }', [":2: not valid JSON"]),
    ("number.json", "42", ["expected a JSON object", "not int"]),
    ("null.json", "null", ["not null"]),
    ("empty_obj.json", "{}", ["an empty JSON object"]),
    ("empty_list.json", "[]", ["an empty JSON list"]),
    ("no_edit.json", {"harmful0": {"prompt": ["CritiqueRequest: x\n\nCritique:"]}},
     ["key 'harmful0'", "'prompt' and 'edit_request'", "found: 'prompt'"]),
    ("not_obj.json", {"harmful0": "just text"}, ["key 'harmful0'", "found: str"]),
    ("two_prompts.json", {"h": {"prompt": ["a", "b"], "edit_request": "c"}}, ["key 'h'", "one critique request", "list of 2"]),
    ("blank_req.json", {"h": {"prompt": ["\n\nCritiqueRequest:\n\nCritique:"], "edit_request": "x"}}, ["key 'h'", "no request text"]),
    ("bad_key.json", {"!!!": {"prompt": ["a"], "edit_request": "b"}}, ["key '!!!' cannot be a principle id"]),
    ("dup_key.json", {"a b": {"prompt": ["a"], "edit_request": "b"}, "a/b": {"prompt": ["a"], "edit_request": "b"}},
     ["key 'a/b'", "'a-b'", "as key 'a b' does"]),
    ("neither.json", ["hello there"], ["item #1 is neither a few-shot example", "nor a preference question"]),
    ("few_missing.json", ["\n\nHuman: hi\n\nAssistant: yo\n\nCritiqueRequest: why?\n\nCritique: because"],
     ["few-shot example #1", "found Human, Assistant, CritiqueRequest, Critique"]),
    ("few_no_answer.json", ["\n\nHuman: hi\n\nCritiqueRequest: a\n\nCritique: b\n\nRevisionRequest: c\n\nRevision: d"],
     ["few-shot example #1", "found Human, CritiqueRequest"]),
    ("few_empty_turn.json", ["\n\nHuman: hi\n\nAssistant: \n\nCritiqueRequest: a\n\nCritique: b\n\nRevisionRequest: c\n\nRevision: d"],
     ["few-shot example #1", "'Assistant' turn is empty"]),
    ("few_mixed.json", ["\n\nHuman: hi\n\nAssistant: yo\n\nCritiqueRequest: a\n\nCritique: b\n\nRevisionRequest: c\n\nRevision: d", 7],
     ["few-shot example #2", "expected text, not int"]),
    ("pref_no_options.json", ["Which is better?\n\nOptions:", "Which is kinder?"],
     ["preference question #2", "does not end with 'Options:'"]),
    ("pref_blank.json", ["Options:"], ["preference question #1", "no question"]),
]


@pytest.mark.parametrize("name,content,parts", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_give_one_clear_message_naming_the_file(tmp_path, name, content, parts):
    path = write(tmp_path / name, content)
    msg = error_of(path, PREF)
    assert msg.startswith(str(path)), msg
    for part in parts:
        assert part in msg, msg


def test_not_utf8_and_missing_file(tmp_path):
    bad = tmp_path / "latin.json"
    bad.write_bytes('["caf\u00e9 Options:"]'.encode("latin-1"))
    assert error_of(bad).startswith(f"{bad}: not UTF-8")
    assert error_of(tmp_path / "nope.json").endswith("nope.json: no such file")


def test_detect_shape_directly():
    assert detect_shape({"k": {}}, "x") == "critique-revision"
    assert detect_shape(["Which?\nOptions:"], "x") == "preference"
    assert detect_shape(["\n\nHuman: a\n\nAssistant: b\n\nCritiqueRequest: c"], "x") == "few-shot"


# -- the faces: facade, CLI, app handler --------------------------------------------------------------
def test_facade_saves_a_new_version_through_the_save_path(services):
    res = services.import_paper_constitution([CRIT, PREF, FEW], "paper")
    assert (services.user_constitution_dir / "paper.toml").read_text() == res.toml
    loaded = services.constitution("paper")
    assert loaded.version == res.constitution.version and [p.id for p in loaded.principles] == IDS
    assert [v["version"] for v in services.constitution_versions("paper")] == [loaded.version]
    # importing again with other files: a new version, the old one kept
    again = services.import_paper_constitution([CRIT, PREF], "paper")
    assert again.constitution.version != loaded.version
    assert {v["version"] for v in services.constitution_versions("paper")} == {loaded.version, again.constitution.version}


def test_imported_constitution_runs_sl_and_judge_as_is(services):
    from cai_core.runners.judge import JudgeConfig
    from cai_core.runners.sl import SLConfig

    c = services.import_paper_constitution([CRIT, PREF, FEW], "paper").constitution
    sl = services.sl(prompts="red-team", constitution="paper", config=SLConfig(rounds=2, limit=4))
    assert sl.status == "finished" and sl.prompts == 4
    assert (sl.critiques, sl.revisions) == (8, 8)
    assert services.pairs_from_sl(sl.run.id) == 4
    res = services.judge(constitution="paper", config=JudgeConfig(source="sl", principles=2))
    assert res.status == "finished" and res.verdicts == 4 * 2 * 2
    assert res.run.constitution_version == c.version
    drawn = {row["principle_id"] for row in services.store.query(
        "SELECT DISTINCT principle_id FROM verdicts WHERE run_id = ?", [res.run.id])}
    assert drawn and drawn <= set(IDS)
    crit = services.store.query("SELECT principle_id, request FROM critiques WHERE run_id = ?", [sl.run.id])
    assert len(crit) == 8 and {r["principle_id"] for r in crit} <= set(IDS)
    assert all(c.principle(r["principle_id"]).critique in r["request"] for r in crit)


def test_cli_import_prints_the_name_and_fails_clearly(tmp_path, capsys):
    from cai_core.cli.main import main

    db = ["--db", str(tmp_path / "c.duckdb"), "--backend", "scripted"]
    assert main(["constitutions", "import", str(CRIT), str(FEW), str(PREF), "--name", "paper", *db]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "paper"
    assert "4 principles, 2 examples" in err and "few-shot (2)" in err and "note:" in err
    assert (tmp_path / "constitutions.d" / "paper.toml").is_file()
    short = write(tmp_path / "short.json", ["Which?\n\nOptions:"])
    assert main(["constitutions", "import", str(CRIT), str(short), "--name", "other", *db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and "1 preference questions" in err and str(short) in err
    assert not (tmp_path / "constitutions.d" / "other.toml").exists()


def test_app_handler_imports_and_selects_the_constitution(services, tmp_path):
    import gradio as gr

    from views.constitutions import import_paper

    handler = import_paper(services)
    status, dropdown = handler([str(CRIT), str(PREF), str(FEW)], " paper ")
    assert status.startswith("✓ imported paper as version ") and "4 principles, 2 examples" in status
    assert "note:" in status
    assert dropdown["value"] == "paper" and "paper" in dropdown["choices"]
    with pytest.raises(gr.Error, match="choose the paper's JSON files"):
        handler([], "paper")
    with pytest.raises(gr.Error, match="counts must match"):
        handler([str(CRIT), str(write(tmp_path / "p.json", ["Which?\n\nOptions:"]))], "x")
