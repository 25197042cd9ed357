#!/usr/bin/env bash
# On a box with one or more GPUs: one training run per GPU, each pinned to its GPU and to its own share of the
# physical CPU cores, all for the same wall-clock budget; then their checkpoints as weights-only tars.
#   scripts/device_train.sh start SECONDS ALGO:ENV_ID:SEED [ALGO:ENV_ID:SEED ...] [-- ARGS FOR EVERY RUN]
#       e.g.  scripts/device_train.sh start 720 ddqn:SuperMarioBros-1-1-v0:0 -- --conf-file my.yml
#       detached (setsid): run k gets GPU k and core group k; logs in /tmp/logs/<algo>/<env>_<n>,
#       stdout in /tmp/train_<algo>_<env>_<seed>.log
#   scripts/device_train.sh status                 # the last log line of each run
#   scripts/device_train.sh export [--final]       # new checkpoints of every run, as tars in $OUT, as many as
#       one device call brings back (8 files, 64 MiB): the others on the next export
#   scripts/device_train.sh wait SECONDS           # until every run has ended or SECONDS have passed, then
#       status and export (--final once they have ended): one call that keeps a lent machine busy while it polls
set -uo pipefail
LOGS=${LOGS:-/tmp/logs}
case "${1:-}" in
start)
  budget=$2
  shift 2
  runs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do runs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$gpus" -ge 1 ] || gpus=1
  if [ "${#runs[@]}" -gt "$gpus" ]; then
    echo "device_train.sh: ${#runs[@]} runs but $gpus GPU(s): give at most one run per GPU" >&2
    exit 2
  fi
  # logical CPUs grouped by physical core, the cores split into one equal group per run
  mapfile -t cores < <(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -k1,1n |
    awk -F, '{c[$2]=c[$2] (c[$2]?",":"") $1} END {for (k in c) print k" "c[k]}' | sort -n | cut -d' ' -f2)
  share=$(( ${#cores[@]} / ${#runs[@]} ))
  # the same code and config run at other speeds on other machines of one kind: say which machine this is
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), ${#cores[@]} cores;" \
    "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  for k in "${!runs[@]}"; do
    IFS=: read -r algo env_id seed <<< "${runs[$k]}"
    cpus=$(IFS=,; echo "${cores[*]:$((k * share)):share}")
    log="/tmp/train_${algo}_${env_id}_${seed}.log"
    echo "run $k: $algo on $env_id, seed $seed: GPU $k, CPUs $cpus, ${budget} s; log $log"
    CUDA_VISIBLE_DEVICES=$k setsid nohup taskset -c "$cpus" timeout -s INT "$budget" python -m sb3_mario.train \
      --algo "$algo" --env "$env_id" --seed "$seed" -f "$LOGS" --save-freq 100000 --eval-freq -1 -tb /tmp/runs "$@" \
      > "$log" 2>&1 < /dev/null &
  done
  ;;
status)
  for log in /tmp/train_*.log; do echo "$log: $(grep -E 'total_timesteps|fps' "$log" | tail -2 | tr -s ' ' | tr '\n' ' ')"; done
  ;;
export)
  for run in "$LOGS"/*/*_[0-9]*; do
    [ -d "$run" ] || continue
    algo=$(basename "$(dirname "$run")")
    env_id=$(basename "$run" | sed 's/_[0-9]*$//')
    python scripts/export_checkpoints.py "$run" --algo "$algo" --env "$env_id" --out "$OUT" --per-tar 2 \
      --max-files 8 --max-mib 63 ${2:-}
  done
  ;;
wait)
  limit=${2:?wait SECONDS}
  waited=0
  while pgrep -f "[s]b3_mario.train" > /dev/null && [ "$waited" -lt "$limit" ]; do sleep 5; waited=$((waited + 5)); done
  bash "$0" status
  if pgrep -f "[s]b3_mario.train" > /dev/null; then bash "$0" export; else bash "$0" export --final; fi
  ;;
*)
  sed -n '2,12p' "$0"
  exit 2
  ;;
esac
