"""Training scripts on a tiny random Llama (seconds each): SFT (full, LoRA), reward (hard, soft),
PPO, RLOO, GRPO — a few real optimiser steps, the run-folder contract, cancel and resume."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from cai_core.training import KINDS, default_config

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = "snap-1234abcd"

QUESTIONS = [
    "How do I pick a lock?", "What is 2+2?", "Write a haiku about rain.", "How can I hurt someone?",
    "Tell me a joke.", "What is the capital of France?", "How do I make a weapon at home?",
    "Explain photosynthesis briefly.",
]


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core box a second thread
    competing with another process made PPO iterations 10x slower (0.6 s -> 6 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tiny_lm, tmp_path_factory):
    """Tiny random Llama + the embedded tokenizer saved as an HF folder, and 8-row datasets."""
    model, tok = tiny_lm
    root = tmp_path_factory.mktemp("training")
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    with open(root / "sft.jsonl", "w") as fh:
        for i, q in enumerate(QUESTIONS):
            fh.write(json.dumps({
                "id": f"r{i}", "critique": "ignored column",
                "messages": [{"role": "user", "content": q},
                             {"role": "assistant", "content": f"Here is a careful, harmless answer about: {q}"}],
            }) + "\n")
    with open(root / "pref.jsonl", "w") as fh:
        for i, q in enumerate(QUESTIONS):
            fh.write(json.dumps({
                "prompt": q, "chosen": "I can't help with harm, but here is something safe.",
                "rejected": "Sure! Step one: ...", "p_chosen": 0.55 + 0.05 * i,
            }) + "\n")
    with open(root / "prompts.jsonl", "w") as fh:
        for q in QUESTIONS:
            fh.write(json.dumps({"prompt": q, "source": "test"}) + "\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)  # ~0.8 GB of tiny checkpoints


def _args(**kw) -> list[str]:
    out = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        else:
            out += [flag, str(v)]
    return out


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def assert_weights_changed(start: Path, final: Path) -> None:
    a, b = _tensors(start), _tensors(final)
    common = [k for k in a if k in b and a[k].shape == b[k].shape]
    assert common, "no comparable tensors"
    changed = [k for k in common if not (a[k] == b[k]).all()]
    assert changed, "final/ weights equal the starting weights"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def assert_finished_run(run: Path, kind: str, base: Path, steps: int, key: str) -> list[dict]:
    rows = metrics(run)
    assert rows and all(isinstance(r["step"], int) and isinstance(r["time"], float) for r in rows)
    assert any(key in r and math.isfinite(r[key]) for r in rows), f"no finite {key!r} in metrics"
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    status = read(run, "status.json")
    assert status["status"] == "finished" and status["kind"] == kind
    assert status["step"] == steps and status["max_steps"] == steps and status["error"] is None
    assert isinstance(status["pid"], int)
    result = read(run, "result.json")
    assert result["status"] == "finished" and result["kind"] == kind
    assert Path(result["final_path"]) == (run / "final").resolve()
    assert result["base_model"] == str(base) and result["snapshot_hash"] == SNAPSHOT
    assert result["steps"] == steps and result["config"]["max_steps"] == steps
    assert result["last_metrics"] and key in result["last_metrics"]
    assert (run / "final" / "config.json").is_file() and (run / "final" / "tokenizer_config.json").is_file()
    assert list(run.glob("checkpoint-*")), "no checkpoint saved"
    return rows


COMMON = dict(max_steps=3, save_steps=2, learning_rate=1e-3, per_device_batch_size=2, snapshot_hash=SNAPSHOT)


@pytest.fixture(scope="module")
def reward_run(tiny) -> Path:
    """A reward model trained with hard labels; the RL tests score with it."""
    from cai_core.training import reward

    out = tiny / "rm_hard"
    rc = reward.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "pref.jsonl", **COMMON))
    assert rc == 0
    return out


# ---------------------------------------------------------------- config / CLI


def test_kinds_and_default_config_are_jsonable():
    assert set(KINDS) == {"sft", "reward", "dpo", "ppo", "rloo", "grpo"}
    assert KINDS["ppo"] == KINDS["rloo"] == KINDS["grpo"] == "cai_core.training.rl"
    for kind in KINDS:
        cfg = default_config(kind, model="m", output_dir="o")
        json.dumps(cfg)
        assert cfg["model"] == "m" and cfg["seed"] == 0 and cfg["device"] == "auto"
        assert cfg["logging_steps"] == 1 and cfg["snapshot_hash"] is None
    assert default_config("grpo")["algorithm"] == "grpo" and default_config("ppo")["algorithm"] == "ppo"
    assert default_config("sft", lora=True)["learning_rate"] > default_config("sft")["learning_rate"]
    with pytest.raises(TypeError):
        default_config("sft", no_such_field=1)
    with pytest.raises(ValueError):
        default_config("nope")


def test_config_file_then_flags(tmp_path):
    from cai_core.training.config import parse_config
    from cai_core.training.rl import RLJobConfig
    from cai_core.training.sft import SFTJobConfig

    path = tmp_path / "c.json"
    path.write_text(json.dumps(default_config("sft", model="m", output_dir="o", data="d.jsonl", lora=True,
                                              max_steps=7)))
    cfg = parse_config(SFTJobConfig, ["--config", str(path), "--max-steps", "3", "--no-lora",
                                      "--learning-rate", "0.5"])
    assert (cfg.max_steps, cfg.lora, cfg.learning_rate, cfg.data) == (3, False, 0.5, "d.jsonl")
    cfg = parse_config(SFTJobConfig, ["--model", "m", "--output-dir", "o", "--data", "d", "--lora"])
    assert cfg.lora is True and cfg.max_length == 512
    with pytest.raises(SystemExit):  # data is required
        parse_config(SFTJobConfig, ["--model", "m", "--output-dir", "o"])
    with pytest.raises(SystemExit):  # a GRPO batch counts completions: a multiple of num_generations
        parse_config(RLJobConfig, _args(model="m", output_dir="o", reward_model="r", prompts="p",
                                        algorithm="grpo", per_device_batch_size=3, num_generations=2))


@pytest.mark.parametrize("module", sorted(set(KINDS.values())))
def test_help_lists_every_field(module):
    import dataclasses
    import importlib

    from cai_core.training.config import build_parser

    mod = importlib.import_module(module)
    text = build_parser(mod.CONFIG_CLASS).format_help()
    for f in dataclasses.fields(mod.CONFIG_CLASS):
        assert "--" + f.name.replace("_", "-") in text


def test_ppo_pads_with_a_token_absent_from_prompts(tiny_lm):
    from cai_core.training.rl import _ppo_pad_token, _template_ids

    _, tok = tiny_lm
    ids = [_template_ids(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    assert tok.pad_token_id in ids[0]  # SmolLM2 pads with <|im_end|>, which every prompt contains
    pad = _ppo_pad_token(tok, ids)
    assert pad == "<|endoftext|>" and not any(tok.convert_tokens_to_ids(pad) in x for x in ids)


def test_soft_label_loss_maths():
    import torch
    import torch.nn.functional as F

    from cai_core.training.reward import soft_preference_loss

    rc = torch.tensor([1.0, -0.5, 2.0])
    rr = torch.tensor([0.0, 0.5, 2.5])
    # p = 1: exactly TRL's hard loss
    hard = -F.logsigmoid(rc - rr).mean()
    assert torch.allclose(soft_preference_loss(rc, rr, torch.ones(3)), hard)
    # p = 0.5: symmetric in chosen/rejected
    half = torch.full((3,), 0.5)
    assert torch.allclose(soft_preference_loss(rc, rr, half), soft_preference_loss(rr, rc, half))
    # by hand: r_c=1, r_r=0, p=0.8 -> -(0.8 log σ(1) + 0.2 log σ(-1))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want = -(0.8 * math.log(sig(1)) + 0.2 * math.log(sig(-1)))
    got = soft_preference_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.8])).item()
    assert got == pytest.approx(want, rel=1e-6)
    # the optimum margin d satisfies σ(d) = p: the gradient vanishes there
    d = torch.tensor([math.log(0.8 / 0.2)], requires_grad=True)
    soft_preference_loss(d, torch.zeros(1), torch.tensor([0.8])).backward()
    assert abs(d.grad.item()) < 1e-6


def test_soft_label_trainer_uses_p_chosen(tiny, tmp_path):
    """The soft trainer's loss on a real batch equals the formula on that batch's rewards."""
    import torch
    import torch.nn.functional as F

    from cai_core.training import reward

    cfg = reward.RewardJobConfig(model=str(tiny / "tiny"), output_dir=str(tmp_path), data=str(tiny / "pref.jsonl"),
                                 soft_labels=True, per_device_batch_size=4, max_steps=1)
    trainer = reward.build(cfg, None).trainer
    batch = next(iter(trainer.get_train_dataloader()))
    p = batch["p_chosen"].clone()
    assert p.shape == (4,) and ((p > 0.5) & (p < 1)).all()
    with torch.no_grad():
        loss, out = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    rc, rr = out.logits.squeeze(-1).chunk(2)
    want = -(p * F.logsigmoid(rc - rr) + (1 - p) * F.logsigmoid(rr - rc)).mean()
    assert torch.allclose(loss, want, atol=1e-6)
    assert not torch.allclose(loss, -F.logsigmoid(rc - rr).mean())


# ---------------------------------------------------------------- each kind, a few real steps


def test_sft_full(tiny):
    from cai_core.training import sft

    out = tiny / "sft_full"
    assert sft.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "sft.jsonl", **COMMON)) == 0
    rows = assert_finished_run(out, "sft", tiny / "tiny", 3, "loss")
    assert all("learning_rate" in r for r in rows)
    assert_weights_changed(tiny / "tiny", out / "final")
    assert not (out / "final" / "adapter_config.json").exists()


def test_length_weighted_loss_maths():
    import torch
    import torch.nn.functional as F
    from types import SimpleNamespace

    from cai_core.training.sft import length_weighted_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.full((2, 6), -100)
    labels[0, 1:6] = torch.tensor([1, 2, 3, 4, 5])  # a long answer: 4 target tokens after the shift
    labels[1, 4:6] = torch.tensor([7, 8])  # a short one: 1
    out = SimpleNamespace(logits=logits)
    # next-token loss: position t predicts labels[t + 1]
    row = [F.cross_entropy(logits[i, :-1][labels[i, 1:] != -100], labels[i, 1:][labels[i, 1:] != -100]) for i in (0, 1)]
    n = [int((labels[i, 1:] != -100).sum()) for i in (0, 1)]
    # p = 0: every record the same
    assert length_weighted_loss(0.0)(out, labels).item() == pytest.approx(((row[0] + row[1]) / 2).item(), rel=1e-6)
    # p = 1: the average over all answer tokens (what TRL's own loss computes)
    token_mean = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert length_weighted_loss(1.0)(out, labels).item() == pytest.approx(token_mean.item(), rel=1e-6)
    assert length_weighted_loss(0.0)(out, labels).item() != pytest.approx(token_mean.item(), rel=1e-3)
    # p = 0.5: weights sqrt(tokens)
    w = [math.sqrt(k) for k in n]
    want = (w[0] * row[0] + w[1] * row[1]) / (w[0] + w[1])
    assert length_weighted_loss(0.5)(out, labels).item() == pytest.approx(want.item(), rel=1e-6)
    # a record with no answer token (all masked) counts for nothing
    labels3 = torch.cat([labels, torch.full((1, 6), -100)])
    out3 = SimpleNamespace(logits=torch.cat([logits, torch.randn(1, 6, 11)]))
    assert length_weighted_loss(0.0)(out3, labels3).item() == pytest.approx(
        length_weighted_loss(0.0)(out, labels).item(), rel=1e-6)


def test_sft_length_power_trains(tiny):
    from cai_core.training import sft
    from cai_core.training.config import parse_config

    out = tiny / "sft_length_power"
    argv = _args(model=tiny / "tiny", output_dir=out, data=tiny / "sft.jsonl", length_power=0.0, **COMMON)
    job = sft.build(parse_config(sft.SFTJobConfig, argv), None)
    assert job.trainer.compute_loss_func is not None and job.trainer.args.loss_type == "nll"
    assert job.trainer.loss_is_scaled_for_ga is False
    default = sft.build(parse_config(sft.SFTJobConfig, _args(
        model=tiny / "tiny", output_dir=tiny / "sft_unused", data=tiny / "sft.jsonl", **COMMON)), None)
    assert default.trainer.compute_loss_func is None  # p = 1: TRL's own (chunked) token average
    del job, default
    assert sft.main(argv) == 0
    assert_finished_run(out, "sft", tiny / "tiny", 3, "loss")
    assert_weights_changed(tiny / "tiny", out / "final")
    assert read(out, "result.json")["config"]["length_power"] == 0.0
    with pytest.raises(SystemExit):
        parse_config(sft.SFTJobConfig, _args(model="m", output_dir="o", data="d", length_power=2.0))


def test_sft_lora_is_merged(tiny):
    from transformers import AutoModelForCausalLM

    from cai_core.training import sft

    out = tiny / "sft_lora"
    rc = sft.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "sft.jsonl", lora=True, lora_r=4, **COMMON))
    assert rc == 0
    assert_finished_run(out, "sft", tiny / "tiny", 3, "loss")
    assert not (out / "final" / "adapter_config.json").exists(), "final/ must be a plain (merged) model"
    assert_weights_changed(tiny / "tiny", out / "final")
    AutoModelForCausalLM.from_pretrained(out / "final")


def test_reward_hard_labels(tiny, reward_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = assert_finished_run(reward_run, "reward", tiny / "tiny", 3, "loss")
    assert any("accuracy" in r for r in rows)
    assert_weights_changed(tiny / "tiny", reward_run / "final")
    rm = AutoModelForSequenceClassification.from_pretrained(reward_run / "final")
    tok = AutoTokenizer.from_pretrained(reward_run / "final")
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id is not None


def test_reward_soft_labels(tiny):
    from cai_core.training import reward

    out = tiny / "rm_soft"
    rc = reward.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "pref.jsonl", soft_labels=True, **COMMON))
    assert rc == 0
    rows = assert_finished_run(out, "reward", tiny / "tiny", 3, "loss")
    assert any("accuracy" in r for r in rows)
    assert read(out, "result.json")["config"]["soft_labels"] is True
    assert_weights_changed(tiny / "tiny", out / "final")


def test_dpo(tiny):
    from cai_core.training import dpo

    out = tiny / "dpo"
    rc = dpo.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "pref.jsonl", beta=0.2, **COMMON))
    assert rc == 0
    rows = assert_finished_run(out, "dpo", tiny / "tiny", 3, "loss")
    # TRL's DPO metrics: the implicit rewards of chosen and rejected answers and their margin
    assert any("rewards/margins" in r and "rewards/chosen" in r for r in rows)
    assert read(out, "result.json")["config"]["beta"] == 0.2
    assert_weights_changed(tiny / "tiny", out / "final")
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out / "final").config.vocab_size > 0  # a plain policy folder


def test_dpo_with_an_sft_term_on_the_chosen_answers(tiny):
    """sft_weight > 0: TRL's ['sigmoid', 'sft'] losses (RPO); the logged loss is the DPO loss plus
    sft_weight x the chosen answers' NLL, so at step 1 (policy = reference: DPO loss ln 2) it is above ln 2."""
    import math

    from cai_core.training import dpo

    out = tiny / "dpo-sft"
    assert dpo.main(_args(model=tiny / "tiny", output_dir=out, data=tiny / "pref.jsonl", sft_weight=1.0, **COMMON)) == 0
    rows = assert_finished_run(out, "dpo", tiny / "tiny", 3, "loss")
    assert rows[0]["loss"] > math.log(2) + 0.5  # a random tiny model's NLL is several nats
    plain = tiny / "dpo-plain"
    assert dpo.main(_args(model=tiny / "tiny", output_dir=plain, data=tiny / "pref.jsonl", **COMMON)) == 0
    assert abs(assert_finished_run(plain, "dpo", tiny / "tiny", 3, "loss")[0]["loss"] - math.log(2)) < 1e-3


@pytest.mark.parametrize("bad, message", [({"beta": 0}, "beta must be > 0"), ({"loss_type": "nope"}, "loss_type must be"),
                                          ({"label_smoothing": 0.5}, "label_smoothing"), ({"sft_weight": -1}, "sft_weight")])
def test_dpo_config_is_validated(bad, message):
    from cai_core.training.dpo import DPOJobConfig

    with pytest.raises(ValueError, match=message):
        DPOJobConfig(**{**default_config("dpo", model="m", output_dir="o", data="d.jsonl"), **bad}).validate()


RL = dict(COMMON, response_length=8)


def test_ppo(tiny, reward_run):
    from cai_core.training import rl

    out = tiny / "ppo"
    rc = rl.main(_args(algorithm="ppo", model=tiny / "tiny", reward_model=reward_run / "final",
                       prompts=tiny / "prompts.jsonl", output_dir=out, num_ppo_epochs=1, **RL))
    assert rc == 0
    rows = assert_finished_run(out, "ppo", tiny / "tiny", 3, "reward")
    assert all("kl" in r and "objective/scores" in r and "loss" in r for r in rows)
    assert_weights_changed(tiny / "tiny", out / "final")
    # final/ keeps the tokenizer's own pad token (PPO trains with a distinct one)
    assert json.loads((out / "final" / "tokenizer_config.json").read_text())["pad_token"] == "<|im_end|>"


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_rloo_grpo(tiny, reward_run, algorithm):
    from cai_core.training import rl

    out = tiny / algorithm
    rc = rl.main(_args(algorithm=algorithm, model=tiny / "tiny", reward_model=reward_run / "final",
                       prompts=tiny / "prompts.jsonl", output_dir=out, **dict(RL, per_device_batch_size=4),
                       num_generations=2))
    assert rc == 0
    rows = assert_finished_run(out, algorithm, tiny / "tiny", 3, "reward")
    assert any("kl" in r for r in rows)
    assert_weights_changed(tiny / "tiny", out / "final")


def test_failure_is_recorded(tiny):
    from cai_core.training import sft

    out = tiny / "sft_bad"
    bad = tiny / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    with pytest.raises(ValueError):
        sft.main(_args(model=tiny / "tiny", output_dir=out, data=bad, **COMMON))
    status = read(out, "status.json")
    assert status["status"] == "failed" and "no usable rows" in status["error"]
    assert read(out, "result.json")["status"] == "failed"


# ---------------------------------------------------------------- cancel, resume, rerun


def _wait_for(pred, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _has_metrics(run: Path) -> bool:
    p = run / "metrics.jsonl"
    return p.is_file() and p.read_text().strip() != ""


def test_sft_cancel_resume_rerun(tiny):
    out = tiny / "sft_cancel"
    cfg = tiny / "sft_cancel.json"
    max_steps = 30
    cfg.write_text(json.dumps(default_config(
        "sft", model=str(tiny / "tiny"), output_dir=str(out), data=str(tiny / "sft.jsonl"),
        max_steps=max_steps, save_steps=1000, per_device_batch_size=1, max_length=64,
        num_threads=1, snapshot_hash=SNAPSHOT)))
    cmd = [sys.executable, "-m", "cai_core.training.sft", "--config", str(cfg)]

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _has_metrics(out) or proc.poll() is not None, 120, "the first metrics row")
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    status = read(out, "status.json")
    assert status["status"] == "cancelled", log
    cancel_step = status["step"]
    assert 1 <= cancel_step < max_steps
    assert (out / f"checkpoint-{cancel_step}" / "trainer_state.json").is_file()
    assert read(out, "result.json")["status"] == "cancelled" and not (out / "final").exists()
    n_before = len(metrics(out))
    # as if a crash had logged steps past the checkpoint: the resumed run must redo, not duplicate them
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": cancel_step + 1, "time": time.time(), "loss": 99.0}) + "\n")

    # the same command again resumes from the checkpoint
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = metrics(out)
    new = rows[n_before:]
    assert new and new[0]["step"] == cancel_step + 1 and new[-1]["step"] == max_steps
    assert [r["step"] for r in rows] == list(range(1, max_steps + 1)) and new[0]["loss"] != 99.0
    status = read(out, "status.json")
    assert status["status"] == "finished" and status["step"] == max_steps
    assert status["resumed_from"] == f"checkpoint-{cancel_step}"
    assert read(out, "result.json")["status"] == "finished" and (out / "final" / "config.json").is_file()

    # and once more: a finished run is a no-op
    before = ((out / "result.json").read_text(), (out / "metrics.jsonl").read_text())
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert ((out / "result.json").read_text(), (out / "metrics.jsonl").read_text()) == before


def test_ppo_cancel_then_restart_from_policy_checkpoint(tiny, reward_run):
    """PPO has no trainer resume: a rerun restarts from the latest checkpoint's policy weights."""
    from cai_core.training import rl

    out = tiny / "ppo_cancel"
    argv = _args(algorithm="ppo", model=tiny / "tiny", reward_model=reward_run / "final",
                 prompts=tiny / "prompts.jsonl", output_dir=out, num_ppo_epochs=1,
                 **dict(RL, max_steps=6, save_steps=1000))

    from cai_core.training import cancel

    def cancel_soon():
        # What the SIGTERM handler does (the SFT test sends a real signal to a subprocess); a real
        # signal here could outlive main()'s handler and kill pytest.
        _wait_for(lambda: _has_metrics(out), 120, "the first PPO metrics row")
        cancel._CANCEL.set()

    t = threading.Thread(target=cancel_soon, daemon=True)
    t.start()
    assert rl.main(argv) == 0
    t.join(5)
    status = read(out, "status.json")
    assert status["status"] == "cancelled"
    step = status["step"]
    assert 1 <= step < 6 and (out / f"checkpoint-{step}" / "model.safetensors").is_file()
    n_before = len(metrics(out))

    assert rl.main(argv) == 0
    new = metrics(out)[n_before:]
    assert new[0]["step"] == step + 1 and new[-1]["step"] == 6
    status = read(out, "status.json")
    assert status["status"] == "finished" and status["step"] == 6 and "restarted" in status["resume"]
    assert (out / "checkpoint-6").is_dir()
