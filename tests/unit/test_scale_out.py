"""Scale-out settings that cannot run on this CPU box are still checked here: the accelerate
configs in examples/accelerate load as accelerate reads them, and the RL config's vLLM fields
reach TRL's RLOO/GRPO configs (and fail clearly where they cannot work)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cai_core.training import default_config
from cai_core.training.rl import RLJobConfig, vllm_arguments

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, kind, extra", [
    ("multi_gpu.yaml", "MULTI_GPU", {}),
    ("deepspeed_zero2.yaml", "DEEPSPEED", {"zero_stage": 2}),
    ("deepspeed_zero3.yaml", "DEEPSPEED", {"zero_stage": 3}),
    ("fsdp.yaml", "FSDP", {"fsdp_version": 2}),
])
def test_accelerate_configs_load(name, kind, extra):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(ROOT / "examples" / "accelerate" / name))
    assert cfg.distributed_type.name == kind and cfg.main_training_function == "main"
    settings = {**(cfg.deepspeed_config or {}), **(cfg.fsdp_config or {})}
    assert all(settings.get(k) == v for k, v in extra.items()), settings


def _rl(**kw) -> RLJobConfig:
    return RLJobConfig(**{**default_config(kw.get("algorithm", "grpo"), model="m", output_dir="o", reward_model="r",
                                           prompts="p.jsonl"), **kw})


def test_vllm_fields_reach_the_group_trainers_configs():
    from trl import GRPOConfig, RLOOConfig

    server = vllm_arguments(_rl(use_vllm=True, vllm_server_base_url="http://gpu-box:8000"))
    colocate = vllm_arguments(_rl(algorithm="rloo", use_vllm=True, vllm_mode="colocate", vllm_tensor_parallel_size=4))
    assert server == {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://gpu-box:8000"}
    assert colocate == {"use_vllm": True, "vllm_mode": "colocate", "vllm_tensor_parallel_size": 4}
    assert vllm_arguments(_rl()) == {}
    g = GRPOConfig(output_dir="/tmp/x", use_cpu=True, report_to="none", **server)
    r = RLOOConfig(output_dir="/tmp/x", use_cpu=True, report_to="none", **colocate)
    assert (g.use_vllm, g.vllm_server_base_url) == (True, "http://gpu-box:8000")
    assert (r.vllm_mode, r.vllm_tensor_parallel_size) == ("colocate", 4)


@pytest.mark.parametrize("kw, message", [
    ({"algorithm": "ppo", "use_vllm": True}, "PPO has no vLLM path"),
    ({"use_vllm": True, "vllm_mode": "remote"}, "vllm_mode must be"),
    pytest.param({"use_vllm": True}, "needs the vllm package",
                 marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")),
])
def test_vllm_settings_fail_clearly(kw, message):
    with pytest.raises(ValueError, match=message):
        _rl(**kw).validate()
