"""`cai bench generation`: the naive baseline and the project's SL stage, same prompts, one process.

1. **Compute bound, measured on the spot**: an fp32 matmul probe gives GFLOP/s at the
   process's thread count (the better of a probe before and one after the stages); divided by
   2 x parameters FLOPs per token it is the tokens/s a perfect fp32 engine could reach here
   *now* (the machine is shared: only ratios within one run mean anything).
2. **Project SL stage**, per backend (``--backends ct2,local`` by default): first answer + one
   critique + one revision for every prompt, end to end through the real runner and a
   temporary DuckDB store, all three steps capped at ``--new-tokens``. Tokens/s counts the
   generated tokens; peak RSS is the process's high-water mark during the stage (reset just
   before it). Then the judge labels the stage's pairs (first answer vs revision) in
   log-prob mode and, on ``--judge-cot-pairs`` of them, in CoT mode.
3. **Naive baseline**, as in the seed projects: transformers ``pipeline("text-generation")``
   in fp32, one prompt at a time, greedy with the same limits, on the same prompts.

Writes the answers side by side (``--samples``, default bench/samples.md) and prints ONE JSON
object on the last line of stdout (``--json``).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["main", "run_generation_bench", "matmul_gflops", "Counting"]

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 15.0
TARGET_FRACTION = 0.5
TARGET_RSS_MB = 3000.0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- memory ------------------------------------------------------------------------------------
def _trim() -> None:
    """Return freed memory to the OS so the next stage's peak RSS is its own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- compute bound -----------------------------------------------------------------------------
def matmul_gflops(n: int = 1024, seconds: float = 1.5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul at torch's current thread count."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        dt = time.perf_counter() - t
        best = max(best, 4 * 2 * n**3 / dt / 1e9)
    return best


# -- counting wrapper --------------------------------------------------------------------------
class Counting:
    """Passes calls to a backend and sums the tokens it reports (the stage records don't
    all carry token counts)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.id = backend.id
        self.completion_tokens = 0
        self.prompt_tokens = 0
        self.requests = 0
        self.generated: list = []
        """Every generation request, in order (waves go in prompt order)."""

    def generate(self, requests):
        out = self.backend.generate(requests)
        self.requests += len(requests)
        self.generated.extend(requests)
        self.completion_tokens += sum(c.completion_tokens or 0 for c in out)
        self.prompt_tokens += sum(c.prompt_tokens or 0 for c in out)
        return out

    def choice_logprobs(self, requests, choices):
        self.requests += len(requests)
        return self.backend.choice_logprobs(requests, choices)


# -- pieces ------------------------------------------------------------------------------------
def load_prompts(n: int) -> list[str]:

    lines = (ROOT / "prompt_sets" / "red-team.jsonl").read_text(encoding="utf-8").splitlines()
    prompts = [json.loads(x)["prompt"] for x in lines if x.strip()]
    return prompts[:n]


def _make_backend(spec: str, model: str, batch_size: int):
    """'ct2', 'local', 'local:bfloat16' (transformers at that dtype)."""
    from cai_core.backends import make_backend

    kind, _, dtype = spec.partition(":")
    if kind == "local":
        return make_backend("local", model, dtype=dtype or "auto", batch_size=batch_size, device="cpu")
    return make_backend(kind, model, batch_size=batch_size)


def run_baseline(model: str, prompts: Sequence[str], new_tokens: int) -> dict:
    """The seed projects' way: a transformers pipeline, one prompt at a time, fp32."""
    import torch
    from transformers import pipeline

    from cai_core.models import resolve_model

    # The seed projects ran with torch's defaults: every core.
    torch.set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    pipe = pipeline("text-generation", model=str(resolve_model(model)), dtype=torch.float32, device="cpu")
    load_s = time.perf_counter() - t
    tok = pipe.tokenizer
    texts, tokens = [], 0
    t = time.perf_counter()
    for p in prompts:
        msgs = [{"role": "user", "content": p}]
        n_prompt = len(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)["input_ids"])
        out = pipe(msgs, max_new_tokens=new_tokens, do_sample=False, repetition_penalty=1.1, return_tensors=True)
        new = out[0]["generated_token_ids"][n_prompt:]
        tokens += len(new)
        texts.append(tok.decode(new, skip_special_tokens=True).strip())
    elapsed = time.perf_counter() - t
    params = pipe.model.num_parameters()
    del pipe
    _trim()
    return {"tok_s": tokens / elapsed, "tokens": tokens, "seconds": elapsed, "load_s": load_s,
            "texts": texts, "params": params, "threads": torch.get_num_threads()}


def run_baseline_sl(model: str, requests: Sequence, new_tokens: int) -> dict:
    """The naive way through the SL stage's own requests (answer, critique, revision, with
    their few-shot turns and forced prefixes): the pipeline, one request at a time."""
    import torch
    from transformers import pipeline

    from cai_core.models import resolve_model

    torch.set_num_threads(os.cpu_count() or 1)
    pipe = pipeline("text-generation", model=str(resolve_model(model)), dtype=torch.float32, device="cpu")
    tok = pipe.tokenizer
    tokens = 0
    t = time.perf_counter()
    for r in requests:
        msgs = [{"role": m.role, "content": m.content} for m in r.messages]
        kw = {}
        if r.continuation:  # the forced start of the assistant turn ("Critique:", "Revision:")
            msgs.append({"role": "assistant", "content": r.continuation})
            kw["continue_final_message"] = True
        n_prompt = len(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=not r.continuation,
                                               continue_final_message=bool(r.continuation))["input_ids"])
        out = pipe(msgs, max_new_tokens=new_tokens, do_sample=False, repetition_penalty=1.1, return_tensors=True, **kw)
        tokens += len(out[0]["generated_token_ids"]) - n_prompt
    elapsed = time.perf_counter() - t
    del pipe
    _trim()
    return {"tok_s": tokens / elapsed, "tokens": tokens, "seconds": elapsed, "requests": len(requests)}


@dataclass
class StageResult:
    spec: str
    backend_id: str
    load_s: float
    sl_seconds: float
    sl_tokens: int
    sl_prompt_tokens: int
    sl_status: str
    peak_rss_mb: float
    judge_lp_seconds: float | None = None
    judge_lp_pairs: int = 0
    judge_cot_seconds: float | None = None
    judge_cot_pairs: int = 0
    samples: dict = field(default_factory=dict)
    work: dict | None = None
    """Token positions the engine computed during the SL stage (prefix, prefill, decode), and
    the FLOPs they cost; None for backends without the engine."""
    requests: list = field(default_factory=list)
    """The SL stage's generation requests, in order (answers, critiques, revisions)."""

    def figures(self, prompts: int, bound: float, gflops: float) -> dict:
        tok_s = self.sl_tokens / self.sl_seconds if self.sl_seconds else 0.0
        computed = {}
        if self.work and self.sl_seconds:
            # the model work the engine actually did, as a share of the fp32 probe's rate
            # (bf16 kernels can exceed 1): how close to the machine the stage runs
            computed = {"computed_tokens": self.work,
                        "computed_gflop_s": round(self.work["gflop"] / self.sl_seconds, 1),
                        "computed_fraction_of_probe": round(self.work["gflop"] / self.sl_seconds / gflops, 4)
                        if gflops else None}
        return {
            "backend": self.backend_id,
            "tok_s": round(tok_s, 2),
            "tokens": self.sl_tokens,
            "prompt_tokens": self.sl_prompt_tokens,
            "seconds": round(self.sl_seconds, 2),
            "load_s": round(self.load_s, 2),
            "status": self.sl_status,
            "sl_prompts_per_min": round(prompts / self.sl_seconds * 60, 2) if self.sl_seconds else 0.0,
            "fraction_of_bound": round(tok_s / bound, 4) if bound else None,
            # prompt tokens cost a forward pass too: this is the share of the machine's fp32
            # matmul rate the stage turns into model work (prefill + generation)
            "work_fraction_of_bound": round((self.sl_tokens + self.sl_prompt_tokens) / self.sl_seconds / bound, 4)
            if bound and self.sl_seconds else None,
            **computed,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "judge_pairs_per_min": round(self.judge_lp_pairs / self.judge_lp_seconds * 60, 2)
            if self.judge_lp_seconds else None,
            "judge_pairs_per_min_cot": round(self.judge_cot_pairs / self.judge_cot_seconds * 60, 2)
            if self.judge_cot_seconds else None,
        }


def run_project(spec: str, model: str, n_prompts: int, new_tokens: int, *, chunk: int, batch_size: int,
                workdir: Path, judge_cot_pairs: int, judge: bool = True) -> StageResult:
    from cai_core.backends.base import GenerationParams
    from cai_core.constitutions import find_constitution
    from cai_core.prompt_sets import get_prompt_set
    from cai_core.runners.judge import JudgeConfig, run_judge, start_judge_run
    from cai_core.runners.pairs import pairs_from_sl
    from cai_core.runners.sl import SLConfig, run_sl, start_sl_run
    from cai_core.store import Store

    _trim()
    t = time.perf_counter()
    backend = _make_backend(spec, model, batch_size)
    load_s = time.perf_counter() - t
    counter = Counting(backend)
    store = Store(workdir / f"bench-{spec.replace(':', '-')}.duckdb")
    cons = find_constitution("harmless")
    params = GenerationParams(max_new_tokens=new_tokens, repetition_penalty=1.1)
    cfg = SLConfig(rounds=1, limit=n_prompts, answer=params, critique=params, revision=params, chunk=chunk)
    run, _ = start_sl_run(store, counter, cons, get_prompt_set(store, "red-team"), cfg, new_run=True)
    _trim()
    exact = _reset_peak()
    work0 = _work(backend)
    t = time.perf_counter()
    res = run_sl(store, counter, cons, run, cfg)
    sl_s = time.perf_counter() - t
    peak = _peak_rss_mb()
    work1 = _work(backend)
    if not exact:
        _log("note: peak RSS could not be reset; it is the process's lifetime peak")
    out = StageResult(spec, backend.id, load_s, sl_s, counter.completion_tokens, counter.prompt_tokens, res.status, peak)
    if work0 is not None and work1 is not None:
        out.work = _work_figures(backend, {k: work1[k] - work0[k] for k in work1})
    out.requests = list(counter.generated)
    ids = [r["id"] for r in store.query(
        "SELECT p.id FROM prompts p JOIN prompt_sets s ON s.id = p.set_id WHERE s.name = 'red-team' "
        "ORDER BY p.position LIMIT ?", [n_prompts])]
    first = {r["prompt_id"]: r["text"] for r in store.query("SELECT prompt_id, text FROM generations WHERE run_id = ?", [run.id])}
    crit = {r["prompt_id"]: r["text"] for r in store.query("SELECT prompt_id, text FROM critiques WHERE run_id = ?", [run.id])}
    rev = {r["prompt_id"]: r["text"] for r in store.query("SELECT prompt_id, text FROM revisions WHERE run_id = ?", [run.id])}
    out.samples = {"first": [first.get(i, "") for i in ids], "critique": [crit.get(i, "") for i in ids],
                   "revision": [rev.get(i, "") for i in ids]}
    if judge:
        pairs_from_sl(store, run.id)
        n_pairs = store.count("comparisons")
        jcfg = JudgeConfig(mode="logprob", source="sl")
        jrun, _ = start_judge_run(store, [counter], cons, jcfg, new_run=True)
        t = time.perf_counter()
        run_judge(store, [counter], cons, jrun, jcfg)
        out.judge_lp_seconds, out.judge_lp_pairs = time.perf_counter() - t, n_pairs
        if judge_cot_pairs > 0:
            k = min(judge_cot_pairs, n_pairs)
            ccfg = JudgeConfig(mode="cot", source="sl", limit=k)
            crun, _ = start_judge_run(store, [counter], cons, ccfg, new_run=True)
            t = time.perf_counter()
            run_judge(store, [counter], cons, crun, ccfg)
            out.judge_cot_seconds, out.judge_cot_pairs = time.perf_counter() - t, k
    store.close()
    del backend, counter
    _trim()
    return out


def _work(backend) -> dict | None:
    w = getattr(backend, "work", None)
    if w is None:
        return None
    return {"prefix": w.prefix_tokens, "prefill": w.prefill_tokens, "decode": w.decode_tokens}


def _work_figures(backend, work: dict) -> dict:
    """Token positions computed and their FLOPs: 2 x parameters per decoded position; prefix
    and prefill positions skip the output layer (only a row's last prompt token needs logits)."""
    model = backend.gen_model
    params = sum(p.numel() for p in model.parameters())
    out_layer = model.get_output_embeddings().weight.numel()
    flop = 2 * params * work["decode"] + 2 * (params - out_layer) * (work["prefix"] + work["prefill"])
    return {**work, "total": sum(work.values()), "gflop": round(flop / 1e9, 1)}


# -- output quality ------------------------------------------------------------------------------
def _prefix_words(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split(), b.split()):
        if x != y:
            break
        n += 1
    return n


def agreement_with_baseline(baseline: list[str], other: list[str]) -> dict:
    """How close a backend's first answers are to the fp32 baseline's (greedy, same limits)."""
    pairs = [(a, b) for a, b in zip(baseline, other)]
    if not pairs:
        return {}
    same = sum(a == b for a, b in pairs)
    lens = [len(b.split()) / max(1, len(a.split())) for a, b in pairs]
    return {
        "identical": round(same / len(pairs), 3),
        "mean_shared_prefix_words": round(sum(_prefix_words(a, b) for a, b in pairs) / len(pairs), 1),
        "mean_length_ratio": round(sum(lens) / len(lens), 3),
        "empty": sum(not b.strip() for _, b in pairs),
    }


def write_samples(path: Path, prompts: list[str], baseline: list[str], stages: list[StageResult], k: int,
                  header: str) -> None:
    def quote(text: str) -> str:
        text = (text or "").strip() or "(empty)"
        return "\n".join("> " + line for line in text.splitlines())

    lines = ["# Generation samples, side by side", "", header, ""]
    for i, p in enumerate(prompts[:k]):
        lines += [f"## {i + 1}. {p}", ""]
        if i < len(baseline):
            lines += ["**Baseline** (transformers pipeline, fp32, one prompt at a time), first answer:", "", quote(baseline[i]), ""]
        for s in stages:
            lines += [f"**{s.spec}** (`{s.backend_id}`), first answer:", "", quote(s.samples["first"][i]), ""]
            lines += [f"**{s.spec}** critique:", "", quote(s.samples["critique"][i]), ""]
            lines += [f"**{s.spec}** revision:", "", quote(s.samples["revision"][i]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- the bench ---------------------------------------------------------------------------------
def run_generation_bench(*, model: str = "embedded", prompts: int = 64, new_tokens: int = 64,
                         backends: Sequence[str] = ("local", "ct2"), project: str | None = None,
                         chunk: int = 64, batch_size: int = 64, baseline_prompts: int | None = None,
                         judge_cot_pairs: int = 16, samples: Path | None = None, sample_count: int = 6,
                         baseline_sl_prompts: int = 8) -> dict:
    import torch

    available = load_prompts(10**6)
    if prompts > len(available):
        _log(f"only {len(available)} shipped red-team prompts: using {len(available)}")
    plist = available[:prompts]
    n = len(plist)
    load_start = os.getloadavg()[0]
    torch.set_num_threads(os.cpu_count() or 1)
    threads = torch.get_num_threads()
    gflops = matmul_gflops()
    _log(f"matmul probe: {gflops:.1f} GFLOP/s fp32 at {threads} threads")

    stages: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="cai-bench-gen-") as tmp:
        for spec in backends:
            _log(f"SL stage on {spec}: {n} prompts x (answer + critique + revision), {new_tokens} new tokens each")
            s = run_project(spec, model, n, new_tokens, chunk=chunk, batch_size=batch_size, workdir=Path(tmp),
                            judge_cot_pairs=judge_cot_pairs)
            _log(f"  {s.sl_tokens} tokens in {s.sl_seconds:.1f}s = {s.sl_tokens / s.sl_seconds:.1f} tok/s; "
                 f"peak RSS {s.peak_rss_mb:.0f} MB; judge {s.judge_lp_pairs} pairs in {s.judge_lp_seconds or 0:.1f}s (log-prob), "
                 f"{s.judge_cot_pairs} in {s.judge_cot_seconds or 0:.1f}s (CoT)")
            if s.work:
                _log(f"  the model computed {s.work['total']} token positions ({s.work['prefix']} shared prefix, "
                     f"{s.work['prefill']} prefill, {s.work['decode']} decode) = {s.work['gflop']} GFLOP")
            stages.append(s)
    nb = min(n, baseline_prompts or n)
    _log(f"baseline: transformers pipeline, fp32, one prompt at a time, {nb} prompts")
    base = run_baseline(model, plist[:nb], new_tokens)
    _log(f"  {base['tokens']} tokens in {base['seconds']:.1f}s = {base['tok_s']:.1f} tok/s")
    base_sl = None
    local = next((s for s in stages if s.spec == "local"), None)
    k = min(n, baseline_sl_prompts)
    if local is not None and k > 0 and len(local.requests) >= 3 * n:
        # The requests a naive SL stage would send: answers, critiques and revisions of the
        # first k prompts, as the local stage built them (few-shot turns, forced prefixes).
        reqs = [r for wave in range(3) for r in local.requests[wave * n: wave * n + k]]
        _log(f"baseline, SL stage: the same pipeline on the SL requests of {k} prompts, one at a time")
        base_sl = run_baseline_sl(model, reqs, new_tokens)
        _log(f"  {base_sl['tokens']} tokens in {base_sl['seconds']:.1f}s = {base_sl['tok_s']:.1f} tok/s")

    # The machine is shared (a VM): one probe can land in a slow moment and flatter every
    # fraction. The bound is the best of a probe before and one after all stages.
    torch.set_num_threads(threads)
    gflops_end = matmul_gflops()
    _log(f"matmul probe again: {gflops_end:.1f} GFLOP/s (the bound uses the better of the two)")
    probes = [round(gflops, 1), round(gflops_end, 1)]
    gflops = max(gflops, gflops_end)
    params = base["params"]
    flops_per_token = 2 * params
    bound = gflops * 1e9 / flops_per_token
    per = {s.spec: {**s.figures(n, bound, gflops), "agreement_with_baseline": agreement_with_baseline(base["texts"], s.samples["first"])}
           for s in stages}
    for spec, f in per.items():
        f["ratio_vs_baseline"] = round(f["tok_s"] / base["tok_s"], 2) if base["tok_s"] else None
        if base_sl and base_sl["tok_s"]:
            f["ratio_vs_baseline_sl"] = round(f["tok_s"] / base_sl["tok_s"], 2)
    chosen = project if project in per else (stages[0].spec if stages else None)
    p = per.get(chosen, {})
    result = {
        "bench": "generation",
        "model": model,
        "prompts": n,
        "baseline_prompts": nb,
        "new_tokens": new_tokens,
        "chunk": chunk,
        "threads": threads,
        "baseline_threads": base["threads"],
        "load_avg_start": round(load_start, 2),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "params": params,
        "gflop_per_token": round(flops_per_token / 1e9, 4),
        "matmul_gflops": round(gflops, 1),
        "matmul_gflops_probes": probes,
        "compute_bound_tok_s": round(bound, 1),
        "baseline_tok_s": round(base["tok_s"], 2),
        "baseline_seconds": round(base["seconds"], 1),
        "baseline_sl_tok_s": round(base_sl["tok_s"], 2) if base_sl else None,
        "baseline_sl_prompts": k if base_sl else 0,
        "ratio_vs_baseline_sl": p.get("ratio_vs_baseline_sl"),
        "project_backend": chosen,
        "project_tok_s": p.get("tok_s"),
        "ratio_vs_baseline": p.get("ratio_vs_baseline"),
        "fraction_of_bound": p.get("fraction_of_bound"),
        "work_fraction_of_bound": p.get("work_fraction_of_bound"),
        "computed_tokens": p.get("computed_tokens"),
        "computed_fraction_of_probe": p.get("computed_fraction_of_probe"),
        "peak_rss_mb": p.get("peak_rss_mb"),
        "sl_prompts_per_min": p.get("sl_prompts_per_min"),
        "judge_pairs_per_min": p.get("judge_pairs_per_min"),
        "judge_pairs_per_min_cot": p.get("judge_pairs_per_min_cot"),
        "backends": per,
        "targets": {"ratio_vs_baseline": TARGET_RATIO, "fraction_of_bound": TARGET_FRACTION,
                    "peak_rss_mb": TARGET_RSS_MB},
        "meets": {
            "ratio_vs_baseline": (p.get("ratio_vs_baseline") or 0) >= TARGET_RATIO,
            "fraction_of_bound": (p.get("fraction_of_bound") or 0) >= TARGET_FRACTION,
            "peak_rss_mb": (p.get("peak_rss_mb") or 1e9) < TARGET_RSS_MB,
        },
    }
    if samples is not None:
        header = (f"{n} shipped red-team prompts, greedy, {new_tokens} new tokens, repetition penalty 1.1, "
                  f"constitution `harmless`, one critique -> revision round. Written by `cai bench generation`.")
        write_samples(samples, plist, base["texts"], stages, sample_count, header)
        result["samples"] = str(samples)
    return result


def main(args: argparse.Namespace) -> int:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    samples = None if args.samples == "-" else Path(args.samples or ROOT / "bench" / "samples.md")
    res = run_generation_bench(
        model=getattr(args, "model", None) or "embedded", prompts=args.prompts, new_tokens=args.new_tokens,
        backends=backends, project=args.project, chunk=args.chunk, batch_size=args.bench_batch_size,
        baseline_prompts=args.baseline_prompts, judge_cot_pairs=args.judge_cot_pairs, samples=samples,
        baseline_sl_prompts=args.baseline_sl_prompts)
    if not args.json:
        for k in ("baseline_tok_s", "baseline_sl_tok_s", "ratio_vs_baseline_sl", "project_backend", "project_tok_s", "ratio_vs_baseline", "compute_bound_tok_s",
                  "fraction_of_bound", "work_fraction_of_bound", "computed_tokens", "computed_fraction_of_probe",
                  "peak_rss_mb", "sl_prompts_per_min",
                  "judge_pairs_per_min", "judge_pairs_per_min_cot"):
            print(f"{k:24} {res[k]}")
    print(json.dumps(res))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=int, default=64, help="shipped red-team prompts (default 64)")
    p.add_argument("--new-tokens", type=int, default=64, help="max new tokens per answer/critique/revision (default 64)")
    p.add_argument("--backends", default="local,ct2",
                   help="project backends to run, comma-separated: local (the default backend: engine, bf16 where native), "
                        "local:float32, ct2 (default local,ct2)")
    p.add_argument("--project", default="local", help="which backend the top-level project_* figures report (default local)")
    p.add_argument("--chunk", type=int, default=64, help="SL chunk: requests per backend call (default 64, as `cai sl`)")
    p.add_argument("--bench-batch-size", type=int, default=64, help="backend batch size (default 64)")
    p.add_argument("--baseline-prompts", type=int, help="run the slow baseline on only the first K prompts (default: all)")
    p.add_argument("--baseline-sl-prompts", type=int, default=8,
                   help="also run the naive pipeline on the SL stage's own requests of K prompts (default 8; 0 = skip)")
    p.add_argument("--judge-cot-pairs", type=int, default=16, help="pairs judged in CoT mode (default 16; 0 = skip)")
    p.add_argument("--samples", help="where to write the side-by-side samples (default bench/samples.md; '-' = none)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


if __name__ == "__main__":  # python -m bench.generation
    parser = argparse.ArgumentParser(prog="python -m bench.generation")
    add_arguments(parser)
    parser.add_argument("--model", default="embedded")
    sys.exit(main(parser.parse_args()))
