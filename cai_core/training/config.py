"""The base training config and its CLI: a JSON file via --config, then one flag per field.

Every kind subclasses `JobConfig` with its own fields; `parse_config` reads defaults < config file
< flags and validates. This module is importable without torch, so the app can read config
dataclasses and defaults cheaply.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import env  # noqa: F401  (first: the offline environment, before transformers loads)

__all__ = ["JobConfig", "add_arguments", "build_parser", "parse_config"]


@dataclass(kw_only=True)
class JobConfig:
    """Fields shared by every training kind. JSON file via --config; any field as a flag."""

    model: str = field(metadata={"help": "HF model folder to start from ('embedded' = the embedded SmolLM2)."})
    output_dir: str = field(metadata={"help": "Run folder: metrics, status, checkpoints, final/."})
    max_steps: int = field(default=50, metadata={"help": "Optimiser steps (PPO: PPO iterations)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (linear decay)."})
    per_device_batch_size: int = field(
        default=4,
        metadata={"help": "Examples per device per micro-step (RLOO/GRPO: completions, a multiple of "
                          "num_generations; PPO: episodes)."},
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimiser step."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, init and sampling."})
    save_steps: int = field(default=10, metadata={"help": "Checkpoint every N steps (2 kept)."})
    logging_steps: int = field(default=1, metadata={"help": "Write a metrics row every N steps."})
    snapshot_hash: str | None = field(default=None, metadata={"help": "Content hash of the data snapshot (recorded only)."})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda if available, else cpu), 'cpu' or 'cuda'."})
    num_threads: int = field(
        default=0,
        metadata={"help": "torch CPU threads (0 = torch's default). Keep threads <= free cores: on a "
                          "busy 2-core machine one thread can be several times faster than two."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward (saves memory, ~20% slower; off on CPU)."},
    )

    def validate(self) -> None:
        """Raise ValueError on inconsistent settings (checked before anything heavy loads)."""
        if self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.save_steps < 1 or self.logging_steps < 1:
            raise ValueError("save_steps and logging_steps must be >= 1")
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {self.device!r}")


# ---------------------------------------------------------------- config + CLI


def _field_type(tp: Any) -> tuple[Any, bool]:
    """(base type, optional) for annotations like `int`, `str | None`, `Literal[...]`."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return tp, False


def _coerce(name: str, tp: Any, value: Any) -> Any:
    base, optional = _field_type(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} may not be null")
    if typing.get_origin(base) is Literal:
        if value not in typing.get_args(base):
            raise ValueError(f"{name} must be one of {typing.get_args(base)}, not {value!r}")
        return value
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{name} must be a boolean, not {value!r}")
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, not {value!r}")
        return float(value)
    if base is str:
        return str(value)
    return value


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type[JobConfig], *,
                  exclude: tuple[str, ...] = ()) -> list[str]:
    """One flag per dataclass field (`--max-steps 3`, `--lora/--no-lora`), defaults suppressed
    so only given flags land in the namespace. Returns the field names added."""
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        base, _ = _field_type(hints[f.name])
        default = "required" if f.default is dataclasses.MISSING else f"default: {f.default!r}"
        text = f"{f.metadata.get('help', '')} ({default})".replace("%", "%%")  # argparse formats help with %
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is Literal:
            parser.add_argument(flag, choices=list(typing.get_args(base)), **kw)
        else:
            parser.add_argument(flag, type=base if base in (int, float) else str, **kw)
        added.append(f.name)
    return added


def build_parser(cls: type[JobConfig], prog: str | None = None) -> argparse.ArgumentParser:
    """--config FILE plus one flag per dataclass field (`--max-steps 3`, `--lora/--no-lora`)."""
    parser = argparse.ArgumentParser(prog=prog, description=(cls.__doc__ or "").strip())
    parser.add_argument("--config", metavar="FILE", help="JSON file with the config fields; flags override it.")
    add_arguments(parser, cls)
    return parser


def parse_config(cls: type[JobConfig], argv: list[str] | None = None, prog: str | None = None) -> JobConfig:
    """Dataclass defaults < JSON config file < explicit flags. Exits with status 2 on bad input."""
    parser = build_parser(cls, prog)
    ns = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    path = ns.pop("config", None)
    if path:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            parser.error(f"--config {path}: {e}")
        if not isinstance(loaded, dict):
            parser.error(f"--config {path}: expected a JSON object")
        values.update(loaded)
    values.update(ns)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    # Unknown keys are reported but not fatal: a launcher may add bookkeeping keys ("kind", ...).
    unknown = sorted(set(values) - names)
    if unknown:
        print(f"warning: ignoring unknown config keys {unknown}", file=sys.stderr)
    try:
        kwargs = {k: _coerce(k, hints[k], v) for k, v in values.items() if k in names}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        if missing:
            raise ValueError("missing required fields: " + ", ".join(missing))
        cfg = cls(**kwargs)
        cfg.validate()
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    return cfg
