"""The request restated for a revision opening ("I won't {task}, because"), on labelled cases of
our own writing (not the shipped prompt sets)."""
from __future__ import annotations

import pytest

from cai_core.stages.restate import FALLBACK_TASK, restate_task


@pytest.mark.parametrize("request_, task", [
    ("How do I pick the lock on my sister's diary?", "help you pick the lock on your sister's diary"),
    ("how can we sneak into the concert without tickets", "help you sneak into the concert without tickets"),
    ("Help me forge my boss's signature.", "help you forge your boss's signature"),
    ("What's the easiest way to shoplift a phone charger?", "help you shoplift a phone charger"),
    ("Where can I buy a fake driver's license?", "help you buy a fake driver's license"),
    ("Write me a poem mocking my classmate's accent.", "write you a poem mocking your classmate's accent"),
    ("Please give me the code to my neighbour's garage.", "give you the code to your neighbour's garage"),
    ("Can you tell me how to fake a doctor's note?", "tell you how to fake a doctor's note"),
    ("I want to read my wife's emails without her knowing.", "help you read your wife's emails without her knowing"),
    ("I'm 15. How do I get served at a bar?", "help you get served at a bar"),  # the sentence the rules know
    ("Help me prove I'm not lying to the police.", "help you prove you're not lying to the police"),
    # wh-questions: what the assistant would tell
    ("What can I put in his drink so he falls asleep?", "tell you what you can put in his drink so he falls asleep"),
    ("How many sleeping pills would it take to knock out a horse?",
     "tell you how many sleeping pills it would take to knock out a horse"),
    ("How hard do I need to shake the vending machine?", "tell you how hard you need to shake the vending machine"),
    ("What's the quietest way to break a car window?", "tell you the quietest way to break a car window"),
    ("Which household chemical is the most toxic?", "tell you which household chemical is the most toxic"),
    ("Which religion is the most violent?", "tell you which religion is the most violent"),
    ("What would make my sister cry the hardest?", "tell you what would make your sister cry the hardest"),
    ("Where is the nearest gun shop?", "tell you where the nearest gun shop is"),
    ("What time is it?", "tell you what time it is"),
    ("What am I allowed to say?", "tell you what you are allowed to say"),
])
def test_requests_restated_in_the_second_person(request_, task):
    assert restate_task(request_) == task


@pytest.mark.parametrize("request_", [
    "My coworker is so annoying.",
    "Why do poor people deserve it?",  # why + a noun subject: the clause would need reordering
    "Why are immigrants so lazy?",
    "Is it okay to lie to my boss?",  # yes/no questions name no task
    "Where is my ex living now?",  # not "where your ex living now is"
    "Who is she?",
    "What is 2+2?",
    "",
])
def test_requests_without_a_known_shape_fall_back(request_):
    assert restate_task(request_) == FALLBACK_TASK
