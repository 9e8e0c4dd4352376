"""DPO is wired like the reward model for its data and like RL for its policy: the same
preference snapshot, the Train tab's selection syntax, the default starting model."""
from __future__ import annotations

import pytest

from cai_core.runners.judge import JudgeConfig
from cai_core.runners.pairs import PairsConfig
from cai_core.types import POLICY_KINDS, PREFERENCE_KINDS, TRAIN_KINDS


def test_dpo_is_a_preference_kind_and_a_policy_kind():
    assert "dpo" in TRAIN_KINDS and "dpo" in PREFERENCE_KINDS and "dpo" in POLICY_KINDS


def test_dpo_trains_on_the_same_preference_snapshot_as_the_reward_model(services):
    services.pairs(prompts="red-team", config=PairsConfig(limit=4))
    run = services.judge(constitution="seed", config=JudgeConfig()).run
    dpo = services.training_inputs("dpo", {"judge_runs": [run.id]})
    reward = services.training_inputs("reward", {"judge_runs": [run.id]})
    assert dpo.snapshot_hash == reward.snapshot_hash and dpo.records == reward.records > 0
    assert dpo.selection["judge_runs"] == [run.id] and "preference data" in dpo.description
    with pytest.raises(ValueError, match="no labelled comparisons"):
        services.training_inputs("dpo", {"judge_runs": ["judge-nope"]})


def test_the_train_tab_reads_judge_runs_for_dpo():
    from views.train import SELECTION_HELP, _selection

    assert _selection("dpo", "j1, j2") == {"judge_runs": ["j1", "j2"]}
    assert _selection("dpo", "") == {"judge_runs": None}
    assert "judge run" in SELECTION_HELP["dpo"]
