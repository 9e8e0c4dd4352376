"""The `cai` command line's arguments: global options, subcommands and their options
(:mod:`.cli` runs them)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "bench_modules"]

EPILOG = """examples:
  cai prompts import my_prompts.jsonl --name mine
  cai sl --prompts red-team --constitution harmless --rounds 2 --limit 4
  cai export sft --out sft.jsonl
  cai train sft --max-steps 20
  cai pairs --prompts red-team --limit 16 --model sft
  cai judge --constitution harmless --mode logprob
  cai export preferences --out prefs.jsonl
  cai train reward --max-steps 20 && cai train ppo --max-steps 2
  cai compare --models base,sft,rl --prompts benign
  cai stats --json
  cai bench generation --prompts 64 --new-tokens 64 --json
  cai bench store --verdicts 1000000 --json
  cai app --port 7860

shipped prompt sets (imported on first use): red-team, benign
shipped constitutions: seed, harmless (see `cai constitutions list`)
"""


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    S = argparse.SUPPRESS
    g.add_argument("--db", default=S, help="DuckDB file (default ./cai.duckdb, or $CAI_DB)")
    g.add_argument("--model", default=S, help="'embedded' (default), a local HF folder, or a served model name")
    g.add_argument("--backend", default=S, choices=["local", "ct2", "openai", "scripted"], help="local transformers with the batched engine (default; bf16 where the CPU has it), the same model on CTranslate2 int8, an OpenAI-compatible server, or a deterministic fake")
    g.add_argument("--base-url", default=S, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default=S, help="name of the environment variable holding the API key (default OPENAI_API_KEY)")
    g.add_argument("--device", default=S, help="cuda | cpu | mps (default: cuda when present)")
    g.add_argument("--batch-size", type=int, default=S, help="local backend batch size (default 64)")
    g.add_argument("--timeout", type=float, default=S, help="openai backend: seconds per request before it counts as failed (default 60)")
    g.add_argument("--max-retries", type=int, default=S, help="openai backend: retries of a timeout, 429, 5xx or garbled answer (default 4)")
    g.add_argument("--settings", default=S, help="settings file (default ./cai.toml when present)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="cai", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Constitutional AI end to end: red-team prompts -> critique -> revision -> training data, every step stored in DuckDB.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, help, **kw):
        return sub.add_parser(name, parents=[common], help=help, description=help, **kw)

    # prompts
    pr = add("prompts", "import and list prompt sets")
    prs = pr.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = prs.add_parser("import", parents=[common], help="import JSONL, CSV/TSV, TXT (one per line) or a datasets folder")
    imp.add_argument("file", help="file or local datasets folder")
    imp.add_argument("--name", help="prompt set name (default: file name without extension)")
    imp.add_argument("--column", help="column/field holding the prompt (default: prompt, text, question, ...)")
    prs.add_parser("list", parents=[common], help="list prompt sets with counts")
    show = prs.add_parser("show", parents=[common], help="print a set's prompts")
    show.add_argument("name")
    show.add_argument("--limit", type=int, default=20)

    # constitutions
    co = add("constitutions", "list, show and validate constitutions")
    cos = co.add_subparsers(dest="action", required=True, metavar="ACTION")
    cos.add_parser("list", parents=[common], help="constitutions found (name, version, principles, file)")
    cshow = cos.add_parser("show", parents=[common], help="print a constitution's principles")
    cshow.add_argument("name")
    val = cos.add_parser("validate", parents=[common], help="check TOML files; exit 1 on the first error")
    val.add_argument("files", nargs="+")

    # sl
    sl = add("sl", "run (or resume) the SL phase: first answer, then critique -> revision rounds")
    sl.add_argument("--prompts", required=True, help="prompt set name (e.g. red-team)")
    sl.add_argument("--constitution", required=True, help="constitution name (file name without .toml) or path")
    sl.add_argument("--rounds", type=int, default=2, help="critique -> revision rounds (default 2)")
    sl.add_argument("--limit", type=int, help="use only the first K prompts")
    sl.add_argument("--cot", action="store_true", help="chain-of-thought critiques")
    sl.add_argument("--few-shot", type=int, default=2, help="constitution examples shown first (default 2, 0 = none)")
    sl.add_argument("--seed", type=int, default=0, help="seeds principle draws and sampling (default 0)")
    sl.add_argument("--max-new-tokens", type=int, help="cap for answers and revisions (default 160; critiques 96)")
    sl.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    sl.add_argument("--chunk", type=int, default=64, help="requests per backend call and per write (default 64)")
    sl.add_argument("--new-run", action="store_true", help="start a fresh run even if one with these settings exists")

    # RL phase
    pa = add("pairs", "sample two (or n) answers per prompt from a model -> comparisons to judge")
    pa.add_argument("--prompts", help="prompt set name (e.g. red-team)")
    pa.add_argument("--from-sl", metavar="RUN", help="instead: pair an SL run's first answers with their final revisions")
    pa.add_argument("--n", type=int, default=2, help="samples per prompt (default 2)")
    pa.add_argument("--limit", type=int, help="use only the first K prompts")
    pa.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (default 0)")
    pa.add_argument("--temperature", type=float, default=0.9, help="sampling temperature (default 0.9)")
    pa.add_argument("--max-new-tokens", type=int, default=128)
    pa.add_argument("--new-run", action="store_true")

    ju = add("judge", "label comparisons with AI judges (both A/B orders, k principles, several judges)")
    ju.add_argument("--constitution", default="harmless", help="constitution whose preference questions are asked (default harmless)")
    ju.add_argument("--mode", choices=["logprob", "cot"], default="logprob", help="log-prob soft labels (default) or chain of thought, clamped")
    ju.add_argument("--principles", type=int, default=1, help="principles drawn per comparison (default 1)")
    ju.add_argument("--orders", choices=["both", "AB", "BA"], default="both", help="A/B orders judged (default both)")
    ju.add_argument("--judges", help="comma-separated judge models (default: --model); 'base', a checkpoint id, a folder")
    ju.add_argument("--source", choices=["samples", "sl", "compare"], help="only comparisons of this source")
    ju.add_argument("--pairs-run", help="only comparisons made by this run")
    ju.add_argument("--limit", type=int, help="judge only the first K comparisons")
    ju.add_argument("--seed", type=int, default=0)
    ju.add_argument("--clamp", default="0.4,0.6", help="CoT probability clamp LO,HI (default 0.4,0.6)")
    ju.add_argument("--new-run", action="store_true")

    tr = add("train", "train SFT / reward / PPO / RLOO / GRPO as a subprocess job (resumes when re-issued)")
    tr.add_argument("kind", choices=["sft", "reward", "ppo", "rloo", "grpo"])
    tr.add_argument("--config", dest="train_config", metavar="FILE", help="JSON file of training settings (see cai_core/training)")
    tr.add_argument("--max-steps", type=int, help="optimiser steps (PPO: iterations)")
    tr.add_argument("--base", help="model to start from: 'base', a checkpoint id, a folder (default: base for sft/reward, latest SFT for RL)")
    tr.add_argument("--reward-model", help="RL only: reward checkpoint id or folder (default: latest reward checkpoint)")
    tr.add_argument("--prompts", help="RL only: prompt set (default red-team)")
    tr.add_argument("--soft-labels", action="store_true", help="reward only: train on the judge's soft probabilities")
    tr.add_argument("--lora", action="store_true", help="sft only: LoRA instead of a full fine-tune")
    tr.add_argument("--num-processes", type=int, default=1, help="data-parallel processes via accelerate launch")
    tr.add_argument("--new-run", action="store_true")
    tr.add_argument("--detach", action="store_true", help="start the job and return at once (prints the run id)")

    cm = add("compare", "before/after: the same prompts through several models, judged pairwise -> win rates, refusal/evasion")
    cm.add_argument("--models", required=True, help="comma-separated: base, sft, rl, reward, a checkpoint id, a folder")
    cm.add_argument("--prompts", required=True, help="held-out prompt set (e.g. benign or red-team)")
    cm.add_argument("--constitution", default="harmless")
    cm.add_argument("--judge", help="judge model (default: --model)")
    cm.add_argument("--mode", choices=["logprob", "cot"], default="logprob")
    cm.add_argument("--principles", type=int, default=1)
    cm.add_argument("--limit", type=int, help="only K prompts")
    cm.add_argument("--offset", type=int, default=0, help="skip the set's first N prompts (hold out training prompts)")
    cm.add_argument("--max-new-tokens", type=int, default=128)
    cm.add_argument("--seed", type=int, default=0)
    cm.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    cm.add_argument("--new-run", action="store_true")

    ck = add("checkpoints", "list trained checkpoints")
    cks = ck.add_subparsers(dest="action", required=True, metavar="ACTION")
    cks.add_parser("list", parents=[common], help="id, kind, run, snapshot, path")

    runs = add("runs", "list runs")
    runs.add_argument("--kind", help="only runs of this kind (e.g. sl)")

    # export
    ex = add("export", "export training data")
    exs = ex.add_subparsers(dest="what", required=True, metavar="WHAT")
    sft = exs.add_parser("sft", parents=[common], help="(prompt, final revision) in TRL messages format")
    sft.add_argument("--out", required=True, help=".jsonl, .parquet or .csv")
    sft.add_argument("--run", help="only this run (default: all SL runs)")
    sft.add_argument("--include-flagged", action="store_true", help="keep revisions flagged as empty/repetitive/echo")
    pref = exs.add_parser("preferences", parents=[common], help="prompt/chosen/rejected (+ p_chosen, margin); human overrides win")
    pref.add_argument("--out", required=True, help=".jsonl, .parquet or .csv")
    pref.add_argument("--judge-run", help="only verdicts of this judge run")
    pref.add_argument("--source", choices=["samples", "sl", "compare"])
    pref.add_argument("--min-confidence", type=float, default=0.0, help="drop AI labels with |2p-1| below this")

    st = add("stats", "counts of every record kind")
    st.add_argument("--json", action="store_true", help="one JSON object on stdout")

    mo = add("model", "prepare the embedded model")
    mos = mo.add_subparsers(dest="action", required=True, metavar="ACTION")
    mos.add_parser("prepare", parents=[common], help="convert the embedded GGUF to a cached HF folder (once)")

    be = add("bench", "benchmarks (source checkout): generation speed vs a naive baseline; store queries at scale; "
                      "the engine's attention paths")
    bes = be.add_subparsers(dest="action", required=True, metavar="ACTION")
    bg = bes.add_parser("generation", parents=[common], help="naive pipeline baseline vs the SL stage (+ judge), same prompts, one process")
    bs = bes.add_parser("store", parents=[common], help="app queries on a synthetic database: p50/p95 latency")
    ba = bes.add_parser("attention", parents=[common],
                        help="the engine's fused-kernel vs products attention on this CPU (which one decodes faster here)")
    bench = bench_modules()
    if bench is not None:  # the options live with the benchmarks themselves
        bench[0].add_arguments(bg)
        bench[1].add_arguments(bs)
        bench[2].add_arguments(ba)

    app = add("app", "start the Gradio app")
    app.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    app.add_argument("--port", type=int, help="port (default $GRADIO_SERVER_PORT or 7860)")
    return parser


def bench_modules():
    """(bench.generation, bench.store, bench.attention) from the source checkout, or None when installed
    without one (bench/ lives beside cai_core/ and is not packaged)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "__init__.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench import attention, generation, store

    return generation, store, attention
