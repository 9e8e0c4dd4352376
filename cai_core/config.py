"""Settings: where things live and which model answers. Defaults < cai.toml < environment <
command-line flags. API keys are never settings: only the *name* of the variable holding one."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    db: str = "cai.duckdb"
    """DuckDB file (the store of record)."""
    model: str = "embedded"
    """'embedded', a local HF folder, or (openai backend) the served model's name."""
    backend: str = "local"
    """local | openai | scripted (deterministic fake for tests and dry runs)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    device: str | None = None
    """cuda | cpu | mps; default: cuda when present."""
    dtype: str = "auto"
    batch_size: int = 64
    concurrency: int = 8
    """Parallel requests to an OpenAI-compatible server."""
    timeout: float = 60.0
    """Seconds an OpenAI-compatible server may take to answer one request."""
    max_retries: int = 4
    """Retries of a transient failure (timeout, 429, 5xx, garbled body) before it is recorded."""
    logprob_mode: str = "auto"
    """openai backend, log-prob judging: auto (probe the server) | prefix (continue_final_message) | letter."""
    runs_dir: str = "runs"
    """Where training runs write checkpoints and metrics."""
    constitution_dirs: tuple[str, ...] = field(default_factory=tuple)
    """Extra folders searched for constitutions before the shipped ones."""


_ENV = {
    "db": "CAI_DB", "model": "CAI_MODEL", "backend": "CAI_BACKEND", "base_url": "CAI_BASE_URL",
    "device": "CAI_DEVICE", "dtype": "CAI_DTYPE", "batch_size": "CAI_BATCH_SIZE", "runs_dir": "CAI_RUNS_DIR",
    "timeout": "CAI_TIMEOUT", "max_retries": "CAI_MAX_RETRIES", "logprob_mode": "CAI_LOGPROB_MODE",
}


def _coerce(name: str, value):
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if "int" in str(kind) and not isinstance(value, int):
        return int(value)
    if "float" in str(kind) and not isinstance(value, float):
        return float(value)
    if "tuple" in str(kind) and not isinstance(value, tuple):
        return tuple(value) if isinstance(value, list) else tuple(str(value).split(os.pathsep))
    return value


def load_settings(config_file: str | Path | None = None, **overrides) -> Settings:
    values: dict = {}
    path = Path(config_file) if config_file else Path("cai.toml")
    if path.is_file():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Settings)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        values.update(data)
    elif config_file:
        raise FileNotFoundError(f"config file {config_file} not found")
    for name, env in _ENV.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
