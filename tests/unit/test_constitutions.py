"""Constitutions: loading the shipped files, validation errors (file:line + what), the
content-hash version, dump round-trips, lookup/shadowing and seeded principle draws."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cai_core.constitutions import (
    SHIPPED_DIR,
    ConstitutionError,
    draw_principle,
    dump_constitution,
    find_constitution,
    list_constitutions,
    load_constitution,
    parse_constitution,
)

HEX12 = re.compile(r"^[0-9a-f]{12}$")


def principle_toml(pid: str, *, critique: str = "Critique it.", revision: str = "Revise it.",
                   preference: str = "Which is better?", extra: str = "", skip: str = "") -> str:
    fields = {"id": pid, "critique": critique, "revision": revision, "preference": preference}
    lines = ["[[principles]]"] + [f'{k} = "{v}"' for k, v in fields.items() if k != skip]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


BASE = (
    'title = "Test"\n'
    'description = "A test constitution."\n'
    "\n"
    + principle_toml("alpha", critique="Find harm.", revision="Remove harm.", preference="Less harmful?")
    + "\n"
    + principle_toml("beta", critique="Find lies.", revision="Remove lies.", preference="More honest?")
)


def error_of(text: str, where: str = "test.toml") -> str:
    with pytest.raises(ConstitutionError) as ei:
        parse_constitution(text, name="test", where=where)
    return str(ei.value)


# -- shipped files ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, count", [("seed", 4), ("harmless", 16)])
def test_shipped_constitution_loads(name, count):
    c = load_constitution(SHIPPED_DIR / f"{name}.toml")
    assert c.name == name
    assert len(c.principles) == count
    ids = [p.id for p in c.principles]
    assert len(set(ids)) == len(ids)
    assert all(p.critique and p.revision and p.preference for p in c.principles)
    assert HEX12.match(c.version)
    assert c.title and c.title != name  # both files set a real title


@pytest.mark.parametrize("name", ["seed", "harmless"])
def test_shipped_examples_reference_real_principles(name):
    c = find_constitution(name)
    assert c.examples, f"{name} ships few-shot examples"
    ids = {p.id for p in c.principles}
    for e in c.examples:
        assert e.principle in ids
        assert c.principle(e.principle).id == e.principle
        assert e.prompt and e.answer and e.critique and e.revision


def test_shipped_files_are_listed():
    found = list_constitutions()
    assert found["seed"].resolve() == (SHIPPED_DIR / "seed.toml").resolve()
    assert found["harmless"].resolve() == (SHIPPED_DIR / "harmless.toml").resolve()


def test_principle_lookup_unknown_id_raises():
    c = find_constitution("seed")
    with pytest.raises(KeyError, match="no-such-principle"):
        c.principle("no-such-principle")


# -- version = content hash ------------------------------------------------------------------
def test_version_is_stable_12_hex():
    a = parse_constitution(BASE, name="test")
    b = parse_constitution(BASE, name="test")
    assert HEX12.match(a.version)
    assert a.version == b.version


def test_version_ignores_formatting_comments_and_key_order():
    reformatted = (
        "# a comment at the top\n"
        'description   =   "A test constitution."   # trailing comment\n'
        'title="Test"\n'
        "\n\n"
        "[[principles]]\n"
        'preference = "Less harmful?"\n'
        "   id = 'alpha'\n"  # literal string, indented
        'revision = "Remove harm."\n'
        'critique = "Find harm."\n'
        "\n# between principles\n"
        "[[ principles ]]\n"
        'revision = "Remove lies."\n'
        'id = "beta"\n'
        'preference = "More honest?"\n'
        'critique = "Find lies."\n'
    )
    assert parse_constitution(reformatted, name="test").version == parse_constitution(BASE, name="test").version


@pytest.mark.parametrize("field, new", [
    ("critique", "Find harm!"),
    ("revision", "Remove the harm."),
    ("preference", "Less  harmful?"),
    ("id", "alpha2"),
])
def test_version_changes_when_principle_text_changes(field, new):
    original = {"id": "alpha", "critique": "Find harm.", "revision": "Remove harm.", "preference": "Less harmful?"}
    old_value = original[field]
    changed = BASE.replace(f'{field} = "{old_value}"', f'{field} = "{new}"', 1)
    assert changed != BASE
    c = parse_constitution(changed, name="test")
    assert getattr(c.principles[0], field) == new
    assert c.version != parse_constitution(BASE, name="test").version


def test_version_changes_when_second_principle_changes():
    changed = BASE.replace('"Find lies."', '"Find untruths."')
    assert parse_constitution(changed, name="test").version != parse_constitution(BASE, name="test").version


@pytest.mark.parametrize("name", ["seed", "harmless"])
def test_dump_round_trips_shipped_constitution(name):
    c = find_constitution(name)
    again = parse_constitution(dump_constitution(c), name=name)
    assert again.version == c.version
    assert again.principles == c.principles
    assert again.examples == c.examples
    assert again.title == c.title and again.description == c.description


def test_dump_round_trips_edited_constitution():
    c = parse_constitution(BASE, name="test")
    text = dump_constitution(c)
    again = parse_constitution(text, name="test")
    assert again.version == c.version
    assert [p.id for p in again.principles] == ["alpha", "beta"]
    # and the dumped text is itself stable
    assert dump_constitution(again) == text


def test_dump_round_trip_keeps_version_with_multiline_strings():
    text = BASE.replace('critique = "Find harm."', 'critique = """\nFind harm.\n"""')
    c = parse_constitution(text, name="test")
    assert c.principles[0].critique == "Find harm."
    assert parse_constitution(dump_constitution(c), name="test").version == c.version


def test_dump_round_trip_keeps_version_without_title():
    text = principle_toml("alpha")
    c = parse_constitution(text, name="test")
    assert parse_constitution(dump_constitution(c), name="test").version == c.version


# -- validation errors -----------------------------------------------------------------------
def test_toml_syntax_error_mentions_bad_line():
    text = 'title = "x"\n\n[[principles]]\nid = "a"\ncritique "oops"\n'
    msg = error_of(text, where="bad.toml")
    assert msg.startswith("bad.toml:")
    assert "TOML syntax error" in msg
    assert "line 5" in msg


def test_toml_syntax_error_has_file_colon_line():
    text = 'title = "x"\n\n[[principles]]\nid = "a"\ncritique "oops"\n'
    assert error_of(text, where="bad.toml").startswith("bad.toml:5:")


def test_missing_field_in_third_principle_points_at_its_header():
    text = (
        'title = "T"\n'                                   # 1
        "\n"                                              # 2
        + principle_toml("one")                           # 3-7
        + "\n"                                            # 8
        + principle_toml("two")                           # 9-13
        + "\n"                                            # 14
        + "# the broken one\n"                            # 15
        + principle_toml("privacy", skip="revision")      # 16-19
    )
    assert text.splitlines()[15] == "[[principles]]"
    msg = error_of(text, where="cons/x.toml")
    assert msg.startswith("cons/x.toml:16:")
    assert "principle #3" in msg
    assert "'privacy'" in msg
    assert "missing field 'revision'" in msg


def test_empty_field_is_rejected():
    text = principle_toml("alpha") + "\n" + principle_toml("beta", critique="   ")
    msg = error_of(text)
    assert msg.startswith("test.toml:7:")
    assert "'beta'" in msg
    assert "'critique'" in msg
    assert "non-empty" in msg


def test_non_text_field_is_rejected():
    text = '[[principles]]\nid = "a"\ncritique = 3\nrevision = "r"\npreference = "p"\n'
    msg = error_of(text)
    assert msg.startswith("test.toml:1:")
    assert "'critique'" in msg


def test_duplicate_id_names_first_use():
    text = principle_toml("alpha") + "\n" + principle_toml("beta") + "\n" + principle_toml("alpha")
    msg = error_of(text)
    assert msg.startswith("test.toml:13:")
    assert "principle #3" in msg
    assert "duplicate id" in msg
    assert "first used by principle #1" in msg


def test_unknown_principle_field_is_named():
    text = principle_toml("alpha") + "\n" + principle_toml("beta", extra='wieght = "2"')
    msg = error_of(text)
    assert msg.startswith("test.toml:7:")
    assert "unknown field" in msg
    assert "wieght" in msg


def test_unknown_top_level_key_is_named():
    msg = error_of('titel = "oops"\n' + principle_toml("alpha"))
    assert msg.startswith("test.toml:1:")
    assert "titel" in msg


def test_bad_id_characters():
    msg = error_of(principle_toml("has space"))
    assert "'has space'" in msg and "id may hold only" in msg


@pytest.mark.parametrize("text", ['title = "no principles here"\n', 'title = "x"\nprinciples = []\n', ""])
def test_no_principles(text):
    msg = error_of(text)
    assert msg.startswith("test.toml:1:")
    assert "no [[principles]]" in msg


def test_example_with_unknown_principle():
    text = (
        principle_toml("alpha")                                  # 1-5
        + "\n"                                                    # 6
        + "[[examples]]\n"                                        # 7
        + 'principle = "alpha"\nprompt = "p"\nanswer = "a"\ncritique = "c"\nrevision = "r"\n'  # 8-12
        + "\n"                                                    # 13
        + "[[examples]]\n"                                        # 14
        + 'principle = "gamma"\nprompt = "p"\nanswer = "a"\ncritique = "c"\nrevision = "r"\n'
    )
    msg = error_of(text)
    assert msg.startswith("test.toml:14:")
    assert "example #2" in msg
    assert "unknown principle 'gamma'" in msg


def test_example_missing_field():
    text = principle_toml("alpha") + '[[examples]]\nprinciple = "alpha"\nprompt = "p"\nanswer = "a"\ncritique = "c"\n'
    msg = error_of(text)
    assert msg.startswith("test.toml:6:")
    assert "'revision'" in msg


def test_load_non_utf8_file_is_a_constitution_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(principle_toml("alpha", critique="caf\xe9").encode("latin-1"))
    with pytest.raises(ConstitutionError) as ei:
        load_constitution(path)
    msg = str(ei.value)
    assert str(path) in msg
    assert "UTF-8" in msg


def test_load_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(principle_toml("alpha", critique="caf\xe9").encode("latin-1"))  # on line 3
    with pytest.raises(ConstitutionError) as ei:
        load_constitution(path)
    assert str(ei.value).startswith(f"{path}:3:")


def test_load_reports_path_in_errors(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(principle_toml("alpha", skip="preference"), encoding="utf-8")
    with pytest.raises(ConstitutionError) as ei:
        load_constitution(path)
    assert str(ei.value).startswith(f"{path}:1:")
    assert "missing field 'preference'" in str(ei.value)


# -- lookup ------------------------------------------------------------------------------------
def test_find_unknown_name_lists_available(tmp_path):
    (tmp_path / "mine.toml").write_text(BASE, encoding="utf-8")
    with pytest.raises(ConstitutionError) as ei:
        find_constitution("nope", [tmp_path])
    msg = str(ei.value)
    assert "'nope'" in msg
    assert "available:" in msg
    for name in ("harmless", "mine", "seed"):
        assert name in msg


def test_find_by_path(tmp_path):
    path = tmp_path / "custom.toml"
    path.write_text(BASE, encoding="utf-8")
    c = find_constitution(str(path))
    assert c.name == "custom"
    assert [p.id for p in c.principles] == ["alpha", "beta"]
    assert c.source == BASE


def test_extra_dir_shadows_shipped(tmp_path):
    (tmp_path / "seed.toml").write_text(BASE, encoding="utf-8")
    c = find_constitution("seed", [tmp_path])
    assert [p.id for p in c.principles] == ["alpha", "beta"]
    assert list_constitutions([tmp_path])["seed"] == tmp_path / "seed.toml"
    # without the extra dir the shipped one is used
    assert len(find_constitution("seed").principles) == 4


def test_find_in_extra_dir_and_shipped_still_visible(tmp_path):
    (tmp_path / "mine.toml").write_text(BASE, encoding="utf-8")
    found = list_constitutions([tmp_path])
    assert {"mine", "seed", "harmless"} <= set(found)
    assert find_constitution("mine", [tmp_path]).title == "Test"


# -- principle draws -------------------------------------------------------------------------
def test_draw_is_deterministic():
    c = find_constitution("harmless")
    for key in ("p1:1", "p1:2", "abc", ""):
        first = draw_principle(c, seed=7, key=key)
        assert all(draw_principle(c, seed=7, key=key) == first for _ in range(5))
        assert first in c.principles


def test_draw_covers_all_principles_roughly_uniformly():
    c = find_constitution("harmless")
    counts = Counter(draw_principle(c, seed=0, key=f"prompt-{i}:1").id for i in range(200))
    assert set(counts) == {p.id for p in c.principles}
    assert min(counts.values()) >= 3
    assert max(counts.values()) <= 30  # expected 12.5 each


def test_different_seeds_give_different_sequences():
    c = find_constitution("harmless")
    keys = [f"k{i}" for i in range(50)]
    seq = {seed: [draw_principle(c, seed=seed, key=k).id for k in keys] for seed in (0, 1, 2)}
    assert seq[0] != seq[1]
    assert seq[0] != seq[2]
    assert seq[1] != seq[2]
    # and they differ at many positions, not just one
    assert sum(a != b for a, b in zip(seq[0], seq[1])) >= 25
