#!/usr/bin/env bash
# On a 2-GPU box: train DoubleDQN (--algo ddqn) and SB3 DQN (--algo dqn) on World 1-1 side by side, each
# with its own GPU and half of the CPU cores (by physical core), for the same wall-clock budget.
#   scripts/device_train_pair.sh start SECONDS     # detached; logs in /tmp/logs, /tmp/train_<algo>.log
#   scripts/device_train_pair.sh export [--final]  # new checkpoints as weights-only tars in $OUT
set -uo pipefail
case "$1" in
start)
  budget=$2
  # logical CPUs grouped by physical core; the first half of the cores for ddqn, the second for dqn
  mapfile -t cores < <(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -k1,1n | awk -F, '{c[$2]=c[$2] (c[$2]?",":"") $1} END {for (k in c) print k" "c[k]}' | sort -n | cut -d' ' -f2)
  half=$(( ${#cores[@]} / 2 ))
  a=$(IFS=,; echo "${cores[*]:0:half}"); b=$(IFS=,; echo "${cores[*]:half}")
  echo "ddqn on GPU 0, CPUs $a; dqn on GPU 1, CPUs $b"
  for run in "ddqn 0 $a" "dqn 1 $b"; do
    set -- $run
    CUDA_VISIBLE_DEVICES=$2 setsid nohup taskset -c "$3" timeout -s INT "$budget" python -m sb3_mario.train \
      --algo "$1" --env SuperMarioBros-1-1-v0 --vec-env subproc --seed 0 -f /tmp/logs --save-freq 100000 \
      --eval-freq -1 -tb /tmp/runs > "/tmp/train_$1.log" 2>&1 < /dev/null &
  done
  ;;
export)
  for algo in ddqn dqn; do
    run=$(ls -d /tmp/logs/$algo/SuperMarioBros-1-1-v0_* 2>/dev/null | sort -V | tail -1)
    [ -n "$run" ] && python scripts/export_checkpoints.py "$run" --algo "$algo" --out "$OUT" --per-tar 2 \
      --max-files 8 --max-mib 63 ${2:-}
    grep -E "fps|total_timesteps" "/tmp/train_$algo.log" | tail -2
  done
  ;;
esac
