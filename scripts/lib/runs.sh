# Shared by the scripts that train a table of variants (seg_encoder_ablation.sh, seg_table_gpu.sh):
# the interpreter, this repository on PYTHONPATH, the variant-name check and the fresh-folder check.
# Sourced, not run: the caller defines the ARGS array (variant -> extra training arguments) and VARIANTS.
PY=${PYTHON:-python3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# USAGE "$@": DATA and RUNS from the first two arguments; without them, the usage line and exit 1.
data_and_runs() {
  local usage=$1
  shift
  (( $# >= 2 )) || { echo "$usage" >&2; exit 1; }
  DATA=$1
  RUNS=$2
}

# Every name in $VARIANTS is checked before anything starts, so a typo cannot cost a half-run table.
check_variants() {
  local v
  for v in $VARIANTS; do
    [[ -n "${ARGS[$v]:-}" ]] || { echo "unknown variant: $v (known: ${!ARGS[*]})" >&2; exit 2; }
  done
}

# A table is written into a new folder only, so old runs cannot mix into it.
refuse_used_runs_dir() {
  if [[ -d "$1" && -n "$(ls -A "$1")" ]]; then
    echo "$1 is not empty: give a new folder, so old runs cannot mix into this table" >&2
    exit 2
  fi
}
