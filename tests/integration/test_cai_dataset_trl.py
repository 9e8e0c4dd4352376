"""The exported HF Constitutional AI dataset, loaded back with ``datasets.load_from_disk``, trains
TRL's SFTTrainer, RewardTrainer and DPOTrainer for one step each (tiny random Llama, seconds)
through ``trl_view``; and why the view exists: TRL 1.12 misreads the shape's string ``prompt``
column beside conversational ``messages`` / ``chosen``."""
from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from cai_core.backends.scripted import ScriptedBackend
from cai_core.config import Settings
from cai_core.prompt_sets import get_prompt_set, resplit
from cai_core.runners.judge import JudgeConfig
from cai_core.runners.sl import SLConfig
from cai_core.services import Services
from cai_core.training.cai_dataset import trl_view

pytest.importorskip("trl")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export of a scripted SL run (8 prompts, half held out) and its judged first-vs-final pairs."""
    import datasets

    root = tmp_path_factory.mktemp("cai-trl")
    s = Services(Settings(db=str(root / "t.duckdb"), backend="scripted", model="test"),
                 backend=ScriptedBackend("scripted:test"))
    try:
        resplit(s.store, get_prompt_set(s.store, "red-team"), held_out=0.5, seed=0)
        sl = s.sl(prompts="red-team", constitution="seed", config=SLConfig(rounds=1, limit=8, split=None))
        s.pairs_from_sl(sl.run.id)
        s.judge(constitution="harmless", config=JudgeConfig(source="sl"))
        path, cai = s.export_cai_dataset(root / "cai")
    finally:
        s.close()
    assert all(n >= 2 for n in cai.counts.values()), cai.counts
    return datasets.load_from_disk(str(path)), root


def _common(out) -> dict:
    return dict(output_dir=str(out), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3, report_to="none",
                use_cpu=True, bf16=False, fp16=False, save_strategy="no", logging_steps=1, disable_tqdm=True,
                dataloader_num_workers=0, max_length=128, seed=0)


def _sft(ds, folder, out, eval_ds=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(model=AutoModelForCausalLM.from_pretrained(folder), args=SFTConfig(**_common(out)),
                      train_dataset=ds, eval_dataset=eval_ds, processing_class=AutoTokenizer.from_pretrained(folder))


def _reward(ds, folder, out, eval_ds=None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    return RewardTrainer(model=model, args=RewardConfig(**_common(out)), train_dataset=ds, eval_dataset=eval_ds,
                         processing_class=tok)


def _dpo(ds, folder, out, eval_ds=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    return DPOTrainer(model=AutoModelForCausalLM.from_pretrained(folder), args=DPOConfig(**_common(out), beta=0.1),
                      train_dataset=ds, eval_dataset=eval_ds, processing_class=AutoTokenizer.from_pretrained(folder))


TRAINERS = {"sft": (_sft, "train_sft", "sft"), "reward": (_reward, "train_prefs", "prefs"),
            "dpo": (_dpo, "train_prefs", "prefs")}


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(TRAINERS))
def test_one_step_on_train_and_an_evaluation_on_test(name, exported, tiny_folder, tmp_path):
    """train_* trains for one real optimiser step; test_* (same schema) is the evaluation set."""
    dd, _ = exported
    make, split, kind = TRAINERS[name]
    test = split.replace("train", "test")
    assert dd[test].features == dd[split].features
    trainer = make(trl_view(dd[split], kind), str(tiny_folder), tmp_path / name, trl_view(dd[test], kind))
    assert len(trainer.train_dataset) == len(dd[split]) and len(trainer.eval_dataset) == len(dd[test])
    before = _weights(trainer.model)
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
    after = trainer.model.state_dict()
    assert any(not (before[k] == after[k]).all() for k in before), "one optimiser step changed no weight"
    assert math.isfinite(trainer.evaluate()["eval_loss"])


@pytest.mark.parametrize("name", list(TRAINERS))
def test_trl_misreads_the_string_prompt_column_without_the_view(name, exported, tiny_folder, tmp_path):
    """Why ``trl_view`` exists (TRL 1.12): a ``prompt`` column makes SFTTrainer expect
    ``completion`` and makes the reward and DPO trainers prepend a string to a conversation. If
    this starts passing, TRL reads the shape as is and the README's note can go."""
    dd, _ = exported
    make, split, _ = TRAINERS[name]
    with pytest.raises((KeyError, TypeError, AttributeError)):
        make(dd[split], str(tiny_folder), tmp_path / name).train()
