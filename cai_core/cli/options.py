"""What every `cai` command shares: the global options, settings from them, the progress bar."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..types import BACKEND_KINDS

__all__ = ["global_options", "settings_from", "progress_bar", "csv_list", "add_helpful_options", "SETTING_KEYS"]

SETTING_KEYS = ("db", "model", "backend", "base_url", "api_key_env", "device", "batch_size", "timeout", "max_retries",
                "logprob_mode")


def global_options() -> argparse.ArgumentParser:
    """The options that may come before or after any subcommand (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    S = argparse.SUPPRESS
    g.add_argument("--db", default=S, help="DuckDB file (default ./cai.duckdb, or $CAI_DB)")
    g.add_argument("--model", default=S, help="'embedded' (default), a local HF folder, or a served model name")
    g.add_argument("--backend", default=S, choices=list(BACKEND_KINDS),
                   help="local transformers with the batched engine (default; bf16 where the CPU has it), the same "
                        "model on CTranslate2 int8 (ct2), an OpenAI-compatible server, or a deterministic fake")
    g.add_argument("--base-url", default=S, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default=S, help="name of the environment variable holding the API key (default OPENAI_API_KEY)")
    g.add_argument("--device", default=S, help="cuda | cpu | mps (default: cuda when present)")
    g.add_argument("--batch-size", type=int, default=S, help="local backend batch size (default 64)")
    g.add_argument("--timeout", type=float, default=S, help="openai backend: seconds per request before it counts as failed (default 60)")
    g.add_argument("--max-retries", type=int, default=S, help="openai backend: retries of a timeout, 429, 5xx or garbled answer (default 4)")
    g.add_argument("--logprob-mode", default=S, choices=["auto", "prefix", "letter"],
                   help="openai backend, log-prob judging: probe the server (auto, default), force the answer prefix "
                        "with continue_final_message (prefix: vLLM), or ask for the letter alone (letter)")
    g.add_argument("--settings", default=S, help="settings file (default ./cai.toml when present)")
    return p


def settings_from(args: argparse.Namespace):
    """Settings: defaults < cai.toml < environment < the global options given."""
    from ..config import load_settings

    return load_settings(getattr(args, "settings", None), **{k: getattr(args, k, None) for k in SETTING_KEYS})


def csv_list(text: str | None) -> list[str] | None:
    """'a, b,c' -> ['a', 'b', 'c']; empty -> None."""
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    return items or None


def add_helpful_options(parser) -> None:
    """--helpful-runs / --helpful-ratio: the helpful samples an SFT snapshot mixes in."""
    parser.add_argument("--helpful-runs",
                        help="comma-separated SL runs whose first answers are mixed in as helpful samples (e.g. of "
                             "`cai sl --prompts benign --rounds 0`): those the classifier reads as helpful, unflagged")
    parser.add_argument("--helpful-ratio", type=float, default=1.0,
                        help="at most this many helpful samples per harmless revision (default 1.0)")


def progress_bar() -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    """(update(done, total, what), close()) of a tqdm bar on stderr, made on the first update."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True)
        bar.set_description(what)
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close
