"""Shared fixtures: in-memory stores, scripted services, a tiny random model."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAI = str(Path(sys.executable).parent / "cai")


@pytest.fixture
def store():
    from cai_core.store import Store

    s = Store()
    yield s
    s.close()


@pytest.fixture
def scripted():
    from cai_core.backends.scripted import ScriptedBackend

    return ScriptedBackend("scripted:test")


@pytest.fixture
def services(tmp_path, scripted):
    from cai_core.config import Settings
    from cai_core.services import Services

    s = Services(Settings(db=str(tmp_path / "t.duckdb"), backend="scripted", model="test"), backend=scripted)
    yield s
    s.close()


@pytest.fixture(scope="session")
def tiny_lm():
    """A 2-layer random Llama with the embedded model's tokenizer (seconds to build)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cai_core.models import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def tiny_folder(tiny_lm, tmp_path_factory):
    """The tiny random Llama saved as a local HF folder (for backends that load from disk)."""
    model, tok = tiny_lm
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def cli_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAI_")}
    env.update(extra)
    return env
