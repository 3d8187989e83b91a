#!/usr/bin/env bash
# The segmentation table on one GPU: every variant trained with the shipped two-stage recipe
# (SGD poly, then AdamW 3e-4 poly from the SGD run's best weights), all variants at once,
# then each scored on the validation patients at source resolution (evaluate-seg).
#
#   scripts/seg_table_gpu.sh DATA_DIR RUNS_DIR [MINUTES_PER_STAGE] [EPOCHS_PER_STAGE]
#
# Each stage has a time budget (`nafv-train seg --max-minutes`): when the GPU is shared by
# many variants, the planned epochs shrink to what fits and the learning-rate schedule still
# ends at its end; the cards and RUNS_DIR/summary.{tsv,json} record the epochs each stage
# really ran. Equal minutes are not equal epochs: a slower variant runs fewer.
# VARIANTS="name ..." runs a subset. Uses `python3`, or $PYTHON. Exits 1 if any variant failed.
set -u -o pipefail
source "$(dirname "$0")/lib/runs.sh"
data_and_runs "usage: seg_table_gpu.sh DATA_DIR RUNS_DIR [MINUTES_PER_STAGE] [EPOCHS_PER_STAGE]" "$@"
MINUTES=${3:-30}
EPOCHS=${4:-60}

declare -A ARGS=(
  [nafv_lerc_s0]="--channels le+rc --size 256 --seed 0"
  [nafv_lerc_s1]="--channels le+rc --size 256 --seed 1"
  [unet_lerc_s0]="--arch unet --channels le+rc --size 256 --seed 0"
  [unet_lerc_s1]="--arch unet --channels le+rc --size 256 --seed 1"
  [noasym_lerc_s0]="--no-asym --channels le+rc --size 256 --seed 0"
  [noasym_lerc_s1]="--no-asym --channels le+rc --size 256 --seed 1"
  [nocross_lerc_s0]="--no-cross --channels le+rc --size 256 --seed 0"
  [nocross_lerc_s1]="--no-cross --channels le+rc --size 256 --seed 1"
  [nafv_rc_s0]="--channels rc --size 256 --seed 0"
  [nafv_lerc512_s0]="--channels le+rc --size 512 --seed 0"
  [unet_lerc512_s0]="--arch unet --channels le+rc --size 512 --seed 0"
)
VARIANTS=${VARIANTS:-"nafv_lerc_s0 nafv_lerc_s1 unet_lerc_s0 unet_lerc_s1 noasym_lerc_s0 noasym_lerc_s1 nocross_lerc_s0 nocross_lerc_s1 nafv_rc_s0 nafv_lerc512_s0 unet_lerc512_s0"}

pipeline() {
  local name=$1 dir=$RUNS/$1 extra
  read -ra extra <<<"${ARGS[$name]}"
  local common=(--data "$DATA" --epochs "$EPOCHS" --schedule poly --threads 1 --no-progress
                --max-minutes "$MINUTES" "${extra[@]}")
  mkdir -p "$dir"
  "$PY" -m core_model.cli.train seg --out "$dir/sgd" "${common[@]}" >"$dir/sgd.log" 2>&1 || return 1
  "$PY" -m core_model.cli.train seg --out "$dir/adamw" --optimizer adamw --lr 3e-4 \
      --init "$dir/sgd/best.safetensors" "${common[@]}" >"$dir/adamw.log" 2>&1 || return 1
  for stage in sgd adamw; do
    "$PY" -m core_model.cli.train evaluate-seg --data "$DATA" --split val --threads 1 \
        --weights "$dir/$stage/best.safetensors" --json "$dir/eval_$stage.json" >>"$dir/eval.log" 2>&1 || return 1
  done
}

check_variants
refuse_used_runs_dir "$RUNS"
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || echo "note: no CUDA device; all variants will share the CPU" >&2
mkdir -p "$RUNS"
declare -A PIDS=()
for v in $VARIANTS; do
  pipeline "$v" &
  PIDS[$v]=$!
done
failed=0
for v in "${!PIDS[@]}"; do
  wait "${PIDS[$v]}" || { echo "failed: $v (see $RUNS/$v/*.log)" >&2; failed=1; }
done

# one row per variant and stage: validation Dice / mIoU at source resolution, epochs run, seconds per epoch
"$PY" "$REPO/benchmarks/seg_table_summary.py" "$RUNS" --json "$RUNS/summary.json" | tee "$RUNS/summary.tsv" || failed=1
exit $failed
