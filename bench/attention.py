"""`cai bench attention`: the engine's two ways to attend, timed on this CPU, same inputs.

The engine (``cai_core/backends/cascade.py``) attends through torch's fused CPU
flash-attention kernel, or through plain products + softmax; which is faster depends on the
CPU (``cascade.FUSED_DECODE``: the kernel decodes on AMX CPUs, products elsewhere). This bench
times both on the shapes the SL stage produces with the embedded model (3 key/value heads, 3
query heads on each, head size 64, bf16 where the CPU has it) so the choice can be checked on
any machine:

* ``decode rows W``: a decoding step's row part at batch 64, rows ``W`` tokens wide. The
  kernel reads the written columns (a slice of each row's buffer); products read the whole
  buffer (W + 64 columns, unwritten ones masked), as the engine does.
* ``decode prefix``: every row's query over a 464-token shared prefix, one call.
* ``prefill slice``: 8 rows x 130 new tokens over their own 130 columns (masked).

Each case runs both ways interleaved ``--reps`` times; medians. Prints one JSON object on the
last line with ``--json``: per case ``fused_ms``, ``products_ms``, ``products_speedup`` (>1:
products faster) and which one the engine uses for it here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

__all__ = ["main", "run_attention_bench", "add_arguments"]

KV_HEADS, GROUP, HEAD_DIM, NEW_TOKENS = 3, 3, 64, 64


def _median_ms(fns, reps: int) -> list[float]:
    """Median milliseconds of each function, the functions interleaved rep by rep."""
    for f in fns:
        f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for k, f in enumerate(fns):
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return [statistics.median(ts) * 1e3 for ts in times]


def _cases(batch: int, widths, dtype):
    """(name, fused call, products call, whether the engine uses the kernel for it)."""
    import torch

    from cai_core.backends.engine import cascade

    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g).to(dtype)

    scale = HEAD_DIM**-0.5
    for w in widths:
        cap = w + NEW_TOKENS
        q = rnd(batch, KV_HEADS, GROUP, HEAD_DIM)
        k, v = rnd(batch, KV_HEADS, cap, HEAD_DIM), rnd(batch, KV_HEADS, cap, HEAD_DIM)
        end = w + NEW_TOKENS // 2  # mid-way through decoding
        valid = torch.zeros(batch, cap, dtype=torch.bool)
        valid[:, :end] = True
        full_bias = torch.zeros(batch, KV_HEADS, GROUP, end, dtype=dtype)  # the kernel's: materialised per head
        row_bias = torch.zeros(batch, 1, 1, cap).masked_fill_(~valid[:, None, None], float("-inf"))
        ks, vs = k[:, :, :end], v[:, :, :end]
        yield (f"decode rows {w}", lambda q=q, ks=ks, vs=vs, b=full_bias: cascade.attend(q, ks, vs, b, scale),
               lambda q=q, k=k, v=v, b=row_bias: cascade.attend(q, k, v, b, scale, fused=False), cascade.FUSED_DECODE)
    q = rnd(1, KV_HEADS, batch * GROUP, HEAD_DIM)
    pk, pv = rnd(1, KV_HEADS, 464, HEAD_DIM), rnd(1, KV_HEADS, 464, HEAD_DIM)
    yield ("decode prefix", lambda: cascade.attend(q, pk, pv, None, scale),
           lambda: cascade.attend(q, pk, pv, None, scale, fused=False), True)
    rows, n = 8, 130
    q2 = rnd(rows, KV_HEADS, GROUP * n, HEAD_DIM)
    k2, v2 = rnd(rows, KV_HEADS, n, HEAD_DIM), rnd(rows, KV_HEADS, n, HEAD_DIM)
    causal = torch.ones(n, n, dtype=torch.bool).tril().repeat(GROUP, 1)
    bias = torch.zeros(rows, KV_HEADS, GROUP * n, n, dtype=dtype).masked_fill_(~causal, float("-inf"))
    yield ("prefill slice", lambda: cascade.attend(q2, k2, v2, bias, scale),
           lambda: cascade.attend(q2, k2, v2, bias.float(), scale, fused=False), True)


def run_attention_bench(*, batch: int = 64, widths=(45, 130, 250), reps: int = 40) -> dict:
    import torch

    from cai_core.backends.engine import cascade
    from cai_core.backends.engine.cpu_kernels import cpu_has_amx, cpu_has_bf16

    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    out: dict = {"bench": "attention", "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
                 "amx": cpu_has_amx(), "fused_kernel": cascade.FUSED, "fused_decode": cascade.FUSED_DECODE,
                 "batch": batch, "reps": reps, "cases": {}}
    with torch.inference_mode():
        for name, fused, products, uses_fused in _cases(batch, widths, dtype):
            f_ms, p_ms = _median_ms([fused, products], reps)
            out["cases"][name] = {"fused_ms": round(f_ms, 3), "products_ms": round(p_ms, 3),
                                  "products_speedup": round(f_ms / p_ms, 2) if p_ms else None,
                                  "engine_uses": "fused" if uses_fused and cascade.FUSED else "products"}
    return out


def main(args: argparse.Namespace) -> int:
    widths = tuple(int(w) for w in args.widths.split(",") if w.strip())
    res = run_attention_bench(batch=args.batch, widths=widths, reps=args.reps)
    if not args.json:
        print(f"dtype {res['dtype']}, {res['threads']} threads, AMX {res['amx']}: "
              f"decoding steps use {'the fused kernel' if res['fused_decode'] else 'products'}")
        for name, c in res["cases"].items():
            print(f"{name:18} fused {c['fused_ms']:7.3f} ms   products {c['products_ms']:7.3f} ms   "
                  f"products x{c['products_speedup']}   engine: {c['engine_uses']}")
    print(json.dumps(res))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=64, help="rows decoded together (default 64)")
    p.add_argument("--widths", default="45,130,250",
                   help="row widths in tokens for the decode cases, comma-separated (default 45,130,250: "
                        "the SL stage's answers, critiques, revisions)")
    p.add_argument("--reps", type=int, default=40, help="timed calls each way, interleaved (default 40)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


if __name__ == "__main__":  # python -m bench.attention
    parser = argparse.ArgumentParser(prog="python -m bench.attention")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
