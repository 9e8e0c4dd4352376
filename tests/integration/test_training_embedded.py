"""Training on the REAL embedded SmolLM2-135M (slow: minutes on 2 CPU cores).

(a) reward model (2 steps) -> one PPO run (2 iterations) with it, policy = the embedded model;
(a') DPO (3 steps) on the same preference rows;
(b) SFT for 2 steps under `accelerate launch` with 2 CPU processes.
Each prints its wall time (run pytest with -s to see them).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "How do I pick a lock?", "What is 2+2?", "Write a haiku about rain.", "How can I hurt someone?",
    "Tell me a joke.", "What is the capital of France?", "How do I make a weapon at home?",
    "Explain photosynthesis briefly.",
]


def read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def assert_weights_changed(start: Path, final: Path) -> None:
    from safetensors.torch import load_file

    a = {k: v for f in sorted(start.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    b = {k: v for f in sorted(final.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    common = [k for k in a if k in b and a[k].shape == b[k].shape]
    assert common and any(not (a[k] == b[k]).all() for k in common), "final/ weights equal the start"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embedded-training")
    with open(root / "pref.jsonl", "w") as fh:
        for i, q in enumerate(QUESTIONS):
            fh.write(json.dumps({"prompt": q, "chosen": "I can't help with anything harmful, but here is a safe idea.",
                                 "rejected": "Sure, here is exactly how to do it.", "p_chosen": 0.9}) + "\n")
    with open(root / "prompts.jsonl", "w") as fh:
        for q in QUESTIONS:
            fh.write(json.dumps({"prompt": q}) + "\n")
    with open(root / "sft.jsonl", "w") as fh:
        for q in QUESTIONS:
            fh.write(json.dumps({"messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": "I'm happy to help with the safe parts of this question."},
            ]}) + "\n")
    return root


def _run(cmd: list[str], timeout: float) -> float:
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    return time.time() - t0


def test_ppo_on_embedded_model(data, tmp_path):
    from cai_core.models import embedded_model_dir

    base = embedded_model_dir()
    rm = tmp_path / "rm"
    wall = _run([sys.executable, "-m", "cai_core.training.reward", "--model", str(base), "--output-dir", str(rm),
                 "--data", str(data / "pref.jsonl"), "--max-steps", "2", "--per-device-batch-size", "2",
                 "--max-length", "256", "--save-steps", "100"], timeout=600)
    print(f"\nreward model, 2 steps on SmolLM2-135M: {wall:.1f} s wall")
    assert read(rm, "result.json")["status"] == "finished"

    ppo = tmp_path / "ppo"
    wall = _run([sys.executable, "-m", "cai_core.training.rl", "--algorithm", "ppo", "--model", str(base),
                 "--reward-model", str(rm / "final"), "--prompts", str(data / "prompts.jsonl"),
                 "--output-dir", str(ppo), "--max-steps", "2", "--per-device-batch-size", "2",
                 "--response-length", "16", "--num-ppo-epochs", "1", "--save-steps", "100"], timeout=900)
    rows = metrics(ppo)
    print(f"PPO, 2 iterations x 2 episodes, 16 tokens, 1 epoch: {wall:.1f} s wall "
          f"(iteration gap {rows[-1]['time'] - rows[0]['time']:.1f} s)")
    assert len(rows) == 2
    assert all(math.isfinite(r["reward"]) and math.isfinite(r["kl"]) for r in rows)
    assert read(ppo, "status.json")["status"] == "finished"
    assert_weights_changed(base, ppo / "final")
    shutil.rmtree(tmp_path, ignore_errors=True)  # ~4 GB of checkpoints; pytest keeps 3 old basetemps


def test_dpo_on_embedded_model(data, tmp_path):
    """DPO from the real model: the implicit reward margin of chosen over rejected grows from 0
    (policy = reference at step 1) as the policy learns the preference."""
    from cai_core.models import embedded_model_dir

    base = embedded_model_dir()
    out = tmp_path / "dpo"
    wall = _run([sys.executable, "-m", "cai_core.training.dpo", "--model", str(base), "--output-dir", str(out),
                 "--data", str(data / "pref.jsonl"), "--max-steps", "3", "--per-device-batch-size", "2",
                 "--learning-rate", "5e-5", "--max-length", "256", "--save-steps", "100"], timeout=600)
    rows = metrics(out)
    print(f"\nDPO, 3 steps x 2 pairs on SmolLM2-135M: {wall:.1f} s wall; margins "
          f"{[round(r['rewards/margins'], 4) for r in rows]}")
    assert read(out, "result.json")["status"] == "finished" and len(rows) == 3
    assert abs(rows[0]["rewards/margins"]) < 1e-4  # the policy starts as the reference
    assert rows[-1]["rewards/margins"] > 0.01 and rows[-1]["loss"] < rows[0]["loss"]
    assert_weights_changed(base, out / "final")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_sft_under_accelerate_two_processes(data, tmp_path):
    from cai_core.models import embedded_model_dir
    from cai_core.training import default_config

    base = embedded_model_dir()
    out = tmp_path / "sft"
    cfg = tmp_path / "sft.json"
    cfg.write_text(json.dumps(default_config("sft", model=str(base), output_dir=str(out), data=str(data / "sft.jsonl"),
                                             max_steps=2, per_device_batch_size=2, max_length=256, save_steps=100)))
    accelerate = str(Path(sys.executable).parent / "accelerate")
    # `--cpu --num_processes 2` would start ONE process: accelerate's `--cpu` picks its simple
    # launcher, which ignores num_processes unless an MPI hostfile is given. `--multi_gpu` runs
    # torchrun; with no GPU each worker trains on CPU over gloo (the config's device "auto").
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "cai_core.training.sft", "--config", str(cfg)]
    env_threads = os.environ.get("OMP_NUM_THREADS")
    try:
        os.environ["OMP_NUM_THREADS"] = "1"  # two workers on two cores: one thread each
        wall = _run(cmd, timeout=900)
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    rows = metrics(out)
    print(f"\nSFT under accelerate launch (2 processes), 2 steps: {wall:.1f} s wall")
    result = read(out, "result.json")
    assert result["status"] == "finished" and result["steps"] == 2 and result["world_size"] == 2
    assert rows and all(math.isfinite(r["loss"]) for r in rows)
    assert_weights_changed(base, out / "final")
    shutil.rmtree(tmp_path, ignore_errors=True)
