"""Output quality flags: empty, repetition, prompt echo, truncation, unchanged revisions,
and no false positives on ordinary answers."""
from __future__ import annotations

import pytest

from cai_core.quality import FLAGS, output_flags

NORMAL = (
    "I can't help you get into someone else's WiFi network without permission, because "
    "that is illegal in most places. If you need internet access, ask your neighbor if "
    "they would share the password, or look for a public hotspot nearby."
)

PARAGRAPH_80 = (
    "Making pancakes from scratch is easier than most people expect. Start by whisking flour, "
    "sugar, baking powder and salt in a bowl. In a second bowl, beat one egg "
    "with milk and melted butter until smooth. Pour the wet ingredients into the dry ones and "
    "stir gently; a few lumps are fine. Let the batter rest while a pan heats "
    "over medium flame. Cook each pancake until bubbles form, flip once, and serve warm with "
    "fresh berries or maple syrup."
)


def test_paragraph_fixture_is_80_words():
    assert len(PARAGRAPH_80.split()) == 80


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty(text):
    assert output_flags(text) == ("empty",)


def test_empty_ignores_other_checks():
    assert output_flags(" ", finish_reason="length", previous=" ", echo_of=(" ",)) == ("empty",)


def test_normal_answer_has_no_flags():
    assert output_flags(NORMAL) == ()
    assert output_flags(NORMAL, echo_of=("How do I hack into my neighbor's WiFi?",), previous="Sure, here is how.") == ()


def test_varied_80_word_paragraph_is_not_repetitive():
    assert output_flags(PARAGRAPH_80) == ()


def test_multiline_varied_answer_not_repetitive():
    text = "\n".join([
        "1. Preheat the oven to 200 degrees.",
        "2. Chop the vegetables into even pieces.",
        "3. Toss them with oil and salt.",
        "4. Roast for thirty minutes, turning once.",
    ])
    assert output_flags(text) == ()


def test_same_sentence_ten_times_is_repetition():
    text = " ".join(["I cannot help with that request."] * 10)
    assert "repetition" in output_flags(text)


def test_same_line_three_times_is_repetition():
    text = "Here is my answer.\nPlease be careful online.\nPlease be careful online.\nPlease be careful online.\n"
    # few words overall, so it is the repeated line that triggers the flag
    assert output_flags(text) == ("repetition",)


def test_same_line_twice_is_fine():
    text = "Here is my answer.\nPlease be careful online.\nPlease be careful online.\n"
    assert output_flags(text) == ()


def test_short_repeated_lines_ignored():
    # lines under 10 characters (list bullets, "Yes.") do not count as repetition
    assert output_flags("Yes.\nYes.\nYes.\n") == ()


def test_degenerate_word_loop_is_repetition():
    text = "the the the the the the the the the the the the the the the"
    assert "repetition" in output_flags(text)


def test_output_starting_with_prompt_is_echo():
    prompt = "How do I hack into my neighbor's WiFi?"
    assert len(prompt) >= 20
    text = prompt + " You could try to guess the password."
    assert output_flags(text, echo_of=(prompt,)) == ("prompt_echo",)


def test_echo_ignores_case_and_whitespace():
    prompt = "How do I hack into my neighbor's WiFi?"
    text = "how do I  hack into\nmy NEIGHBOR'S wifi?   Well, first..."
    assert output_flags(text, echo_of=(prompt,)) == ("prompt_echo",)


def test_output_equal_to_short_prompt_is_echo():
    assert output_flags("Tell me a joke", echo_of=("tell me a joke",)) == ("prompt_echo",)


def test_short_prompt_prefix_is_not_echo():
    # under 20 characters, starting with the prompt is normal ("Sure, ..." style answers)
    prompt = "Why is the sky"
    assert len(prompt) < 20
    assert output_flags("Why is the sky blue? Because of Rayleigh scattering.", echo_of=(prompt,)) == ()


def test_echo_checks_every_source():
    request = "Please rewrite the assistant's response to remove anything harmful."
    assert output_flags(request + " Okay.", echo_of=("unrelated prompt text here", request)) == ("prompt_echo",)


def test_mentioning_prompt_later_is_not_echo():
    prompt = "How do I hack into my neighbor's WiFi?"
    assert output_flags("You asked: " + prompt + " I won't help with that.", echo_of=(prompt,)) == ()


def test_finish_reason_length_is_truncated():
    assert output_flags(NORMAL, finish_reason="length") == ("truncated",)
    assert output_flags(NORMAL, finish_reason="stop") == ()


def test_error_finish_reason():
    assert output_flags("", finish_reason="error") == ("error", "empty")


@pytest.mark.parametrize("previous", [NORMAL, NORMAL.upper(), "  " + NORMAL.replace(" ", "\n  ") + "\n"])
def test_revision_equal_to_previous_is_unchanged(previous):
    assert output_flags(NORMAL, previous=previous) == ("unchanged",)


def test_changed_revision_is_not_unchanged():
    assert output_flags(NORMAL, previous=NORMAL + " Stay safe.") == ()
    assert output_flags(NORMAL, previous=None) == ()


def test_flags_combine_in_order():
    text = "Please be careful online.\n" * 3
    flags = output_flags(text, finish_reason="length", echo_of=(text,), previous=text)
    assert flags == ("repetition", "prompt_echo", "truncated", "unchanged")
    assert set(flags) <= set(FLAGS)
