#!/usr/bin/env bash
# Pretrained vs from-scratch encoder for NaFV-Net segmentation on a CPU: the same recipe, two
# seeds each, run one after another, then each scored on the validation patients at source
# resolution (evaluate-seg). The recipe is one AdamW 3e-4 poly stage on the real images only,
# sized for a 2-core machine (it is not the shipped recipe; the two rows share it).
#
#   scripts/seg_encoder_ablation.sh DATA_DIR RUNS_DIR [EPOCHS] [SIZE] [THREADS]
#
# Each variant writes RUNS_DIR/<variant>/adamw/ (run folder with cards) and eval_adamw.json;
# benchmarks/seg_table_summary.py RUNS_DIR --stages adamw then gives the table.
# VARIANTS="name ..." runs a subset. Uses `python3`, or $PYTHON. Exits 1 if any variant failed.
set -u -o pipefail
source "$(dirname "$0")/lib/runs.sh"
data_and_runs "usage: seg_encoder_ablation.sh DATA_DIR RUNS_DIR [EPOCHS] [SIZE] [THREADS]" "$@"
EPOCHS=${3:-8}
SIZE=${4:-192}
THREADS=${5:-1}

declare -A ARGS=()
for seed in 0 1; do  # the two encoders, each with two seeds
  ARGS[pretrained_s$seed]="--seed $seed"
  ARGS[scratch_s$seed]="--scratch --seed $seed"
done
VARIANTS=${VARIANTS:-"pretrained_s0 scratch_s0 pretrained_s1 scratch_s1"}
check_variants
refuse_used_runs_dir "$RUNS"
mkdir -p "$RUNS"
failed=0
for v in $VARIANTS; do
  dir=$RUNS/$v
  read -ra extra <<<"${ARGS[$v]}"
  mkdir -p "$dir"
  if "$PY" -m core_model.cli.train seg --data "$DATA" --out "$dir/adamw" --channels le+rc --size "$SIZE" \
        --optimizer adamw --lr 3e-4 --schedule poly --epochs "$EPOCHS" --threads "$THREADS" --no-progress \
        "${extra[@]}" >"$dir/adamw.log" 2>&1 \
     && "$PY" -m core_model.cli.train evaluate-seg --data "$DATA" --split val --threads "$THREADS" \
        --weights "$dir/adamw/best.safetensors" --json "$dir/eval_adamw.json" >"$dir/eval.log" 2>&1; then
    echo "done: $v"
  else
    echo "failed: $v (see $dir/*.log)" >&2
    failed=1
  fi
done
"$PY" "$REPO/benchmarks/seg_table_summary.py" "$RUNS" --stages adamw --json "$RUNS/summary.json" \
  --what "validation lesion Dice/mIoU at source resolution (nafv-train evaluate-seg --split val); pretrained (ImageNet) vs random-init EfficientNet-Lite0 encoder, same recipe: real CDD-CESM subset only, LE+RC, ${SIZE} px, AdamW 3e-4 poly, ${EPOCHS} epochs, batch 4 breasts (scripts/seg_encoder_ablation.sh)" \
  | tee "$RUNS/summary.tsv" || failed=1
exit $failed
