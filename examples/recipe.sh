#!/usr/bin/env bash
# The whole Constitutional AI loop, small, on the embedded SmolLM2-135M and a 2-core CPU:
# SL (critique -> revision) -> SFT -> pairs -> AI judge -> reward model -> PPO -> compare.
# Usage: bash examples/recipe.sh [DB]     (default: recipe.duckdb in the current folder)
# Every step is resumable: re-running the script skips what is done.
set -euo pipefail
DB=${1:-recipe.duckdb}
CAI="${CAI:-cai}"
cai() { "$CAI" --db "$DB" "$@"; }
t0=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - t0 ))" >&2; }

step "SL: 16 red-team prompts, 2 critique->revision rounds"
SL=$(cai sl --prompts red-team --constitution harmless --rounds 2 --limit 16)

step "SFT on (prompt, final revision): 16 steps"
cai train sft --max-steps 16

step "pairs: 2 samples per prompt from the SFT model, 16 prompts"
cai pairs --prompts red-team --limit 16 --model sft >/dev/null

step "judge: log-prob soft labels, 2 principles x both orders"
cai judge --constitution harmless --principles 2 --source samples >/dev/null

step "reward model on the preference snapshot (soft labels): 16 steps"
cai train reward --max-steps 16 --soft-labels

step "PPO against the reward model: 4 iterations"
cai train ppo --max-steps 4

step "compare base vs SFT vs RL on 12 held-out red-team prompts (never trained on)"
cai compare --models base,sft,rl --prompts red-team --offset 80 --limit 12 --max-new-tokens 64

step "done"
cai stats --json
cai checkpoints list
