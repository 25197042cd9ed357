#!/usr/bin/env bash
# After a GPU training run (logs in $1, default /tmp/logs): learning curve from every checkpoint, the best
# checkpoint exported as weights, its 20-episode evaluation and a GIF, all copied to $OUT (at most 8 files).
set -uo pipefail
logs=${1:-/tmp/logs}
run=$(ls -d "$logs"/ddqn/SuperMarioBros-1-1-v0_* | sort -V | tail -1)
out=${OUT:-/tmp/out}; mkdir -p "$out"
python3 scripts/learning_curve.py "$run" --episodes 20 --out "$out/learning_curve.png" --csv "$out/learning_curve.csv" \
  --processes 16 > "$out/curve.log" 2>&1
best=$(python3 - "$out/learning_curve.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
best = max(rows, key=lambda r: (float(r["clear_rate"]), float(r["mean_max_x_pos"]), int(r["steps"])))
print(best["steps"])
PY
)
python3 - "$run" "$best" "$out" <<'PY'
import sys
from sb3_mario import DoubleDQN
from sb3_mario.saving import export_weights, zoo_pipeline
from pathlib import Path
run, steps, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model = DoubleDQN.load(run / f"rl_model_{steps}_steps.zip", device="cpu")
pipe = zoo_pipeline(run / "x.zip")
export_weights(model, f"{out}/mario_ddqn", env_id="SuperMarioBros-1-1-v0", wrapper_kwargs=pipe.get("wrapper_kwargs"),
               frame_stack=pipe.get("frame_stack", 4))
PY
python3 -m sb3_mario.evaluate "$out/mario_ddqn.pt" -n 20 > "$out/evaluate.log" 2>&1
python3 -m sb3_mario.record "$out/mario_ddqn.pt" --out "$out/mario.gif" --seed 0 >> "$out/evaluate.log" 2>&1
tar czf "$out/run_logs.tar.gz" -C "$run" --exclude='*.zip' --exclude='*.pkl' . /tmp/train.log 2>/dev/null
tail -3 "$out/evaluate.log"; cat "$out/learning_curve.csv"
