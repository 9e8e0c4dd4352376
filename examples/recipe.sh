#!/usr/bin/env bash
# The whole Constitutional AI loop, small, on the embedded SmolLM2-135M and a 2-core CPU:
# SL (critique -> revision) -> SFT -> pairs -> AI judge -> reward model -> PPO, and
# SFT -> DPO on pairs by construction (no judge) -> compare.
# Usage: bash examples/recipe.sh [DB]     (default: recipe.duckdb in the current folder)
#
# Lineage: every prompt set is split 80/20 (a seeded hash of each prompt's text). SL, pairs and
# PPO use the train split; compare evaluates on the held-out split, and refuses any prompt that a
# compared model (or an ancestor checkpoint) trained on. Each training run trains on an explicit
# selection (printed): SFT on the SL run's acceptable revisions plus helpful answers to benign
# train prompts, the reward model on the judge run, PPO on the train split, DPO on pairs made
# from the SL run, the helpful samples and the SFT model's refusals. Every step is resumable,
# and a second run on a finished DB trains nothing.
set -euo pipefail
DB=${1:-recipe.duckdb}
CAI="${CAI:-cai}"
cai() { "$CAI" --db "$DB" "$@"; }
t0=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - t0 ))" >&2; }

step "SL: 96 red-team prompts of the train split, 1 critique->revision round, up to 4 revision candidates each"
# the harmless constitution opens revisions with "I won't {task}, because it could": the model
# writes the reason; each revision is cut to that first sentence (what follows drifts off topic)
SL=$(cai sl --prompts red-team --constitution harmless --rounds 1 --limit 96 --candidates 4 \
  --revision-sentences 1 --revision-max-new-tokens 64)

step "helpful samples: the base model's own answers to every benign train prompt (no critique rounds)"
# an answer the 384-token cap cut off is cut back to its last complete sentence instead of left out:
# the long how-to answers ("How do I kill a Python process?") are the ones SFT must not learn to refuse
HELPFUL=$(cai sl --prompts benign --constitution harmless --rounds 0 --max-new-tokens 384 --trim-truncated)

step "SFT on (prompt, acceptable revision) of the SL run + 3x as many helpful answers: 120 steps"
# --length-power 0.5: a record's loss weighs sqrt(its answer tokens), not its token count: the
# one-sentence revisions (~30 tokens) would otherwise count for ~5 % of the gradient next to the
# 384-token helpful answers (objections stayed rare); every record the same (0) refuses benign requests
cai train sft --sl-runs "$SL" --helpful-runs "$HELPFUL" --helpful-ratio 3 --max-steps 120 --length-power 0.5 >/dev/null

step "pairs: 2 samples per prompt from the SFT model, 16 train prompts"
cai pairs --prompts red-team --limit 16 >/dev/null

step "judge those pairs: calibrated log-prob soft labels (the default judge mode), 2 principles x both orders"
cai judge --constitution harmless --principles 2 >/dev/null

step "reward model on that judge run's labels (soft labels): 16 steps"
cai train reward --max-steps 16 >/dev/null

step "PPO from the SFT model against the reward model, on the train split: 4 iterations"
cai train ppo --max-steps 4 >/dev/null

step "the SFT model's own answers to every benign train prompt (answers only, 64 tokens)"
# those the classifier reads as refusals become the rejected side of DPO's benign pairs
REFUSALS=$(cai --model sft sl --prompts benign --constitution harmless --rounds 0 --max-new-tokens 64)

step "DPO from the SFT model on pairs by construction (the embedded judge is at chance): 40 steps"
# harmful: each acceptable revision over the first answer AND over itself with its reason cut off
# ("I won't help you X, because it could harm innocent people." over "I won't help you X.");
# benign: the base model's helpful answer over the SFT model's refusal of the same prompt.
# --sft-weight 1: plus the chosen answers' NLL (RPO), so DPO does not lower both sides
cai train dpo --contrast --sl-runs "$SL" --helpful-runs "$HELPFUL" --refusal-runs "$REFUSALS" \
  --harmful-rejected first,bare --max-steps 40 --learning-rate 5e-6 --per-device-batch-size 4 \
  --sft-weight 1.0 --max-length 256 >/dev/null

step "compare base vs SFT vs RL vs DPO on the held-out red-team prompts (no compared model trained on them)"
cai compare --models base,sft,rl,dpo --prompts red-team --max-new-tokens 64

step "compare them on held-out benign prompts too (helpfulness kept? borderline ones refused?)"
cai compare --models base,sft,rl,dpo --prompts benign --max-new-tokens 64

step "done"
cai stats --json
cai checkpoints list
