#!/usr/bin/env bash
# The GPU session in one command (the GPU issue): everything it does lands under $OUT as it goes, so a
# run cut off by its time limit still returns what it did.
#
#   1. tests/test_gpu.py, then benchmarks/train_speed.py (eager, graph, compile+graph; two models in one
#      group), device named;
#   2. the paper's 5-layer VAE+BN+WU and LVAE+BN+WU trained together (`reproduce --group 2`) in the mode
#      that reaches the most epochs in the time left, 2000 epochs with warm-up over 200, stopped cleanly
#      (both checkpointed) at the time limit: the epochs reached are what is reported;
#   3. IW-5000 on the 10k test images for both (BN statistics recomputed), exported weights only, packed;
#   4. with minutes left, the NVAE at a larger (paper-like) size for what remains, evaluated and exported.
#
# On the device machine (the data copied into an ignored folder that the call carries):
#   OUT=$OUT BUDGET=540 bash benchmarks/gpu_session.sh
# A dry run here on the CPU (same steps, tiny sizes):
#   OUT=/tmp/gpu-dry EPOCHS=2 WARMUP=1 EVAL_K=10 SPEED_STEPS=5 BUDGET=400 \
#     NVAE_SIZE='--groups 1,1 --latent-channels 2 --channels 8 --expand 1' bash benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
DATA=${DATA:-gpu_data/mnist}        # the four MNIST IDX files
WORK=${WORK:-gpu_work}              # run folders (kept on a warm machine between calls, for a rerun)
BUDGET=${BUDGET:-540}               # seconds for the whole script
EPOCHS=${EPOCHS:-2000}
WARMUP=${WARMUP:-200}
EVAL_K=${EVAL_K:-5000}
SPEED_STEPS=${SPEED_STEPS:-200}
RESERVE=${RESERVE:-100}              # seconds kept after training for the evaluation, export and packing
NVAE_SIZE=${NVAE_SIZE:---groups 5,10 --latent-channels 20 --channels 32 --cells 2 --expand 6}  # NVAE's MNIST
export PYTHONUNBUFFERED=1
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
stamp() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/session.log"; }
mkdir -p "$OUT" "$WORK"

stamp "device"
{ nvidia-smi || true; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"; } \
  >"$OUT/device.txt" 2>&1

stamp "1. tests/test_gpu.py"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15 | tee -a "$OUT/session.log"
stamp "1. train_speed"
timeout 90 python3 benchmarks/train_speed.py --steps "$SPEED_STEPS" --modes eager,graph,compile+graph --group 2 \
  --json "$OUT/train_speed.json" 2>&1 | tee -a "$OUT/session.log"

# The mode that reaches the most epochs in the time left: (time - its compilation) / its pair step.
TRAIN_S=$(($(left) - RESERVE))
MODE=$(python3 - "$OUT/train_speed.json" "$TRAIN_S" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("auto"); sys.exit()
seconds = float(sys.argv[2])
per_model = {g["mode"]: g["ms_per_step_per_model"] for g in r.get("group", []) if g["models"] == 2} or r["modes"]
first = r.get("first_step_s", {})
epochs = {m: (seconds - 2 * first.get(m, 0)) / (2 * ms * 234 / 1e3) for m, ms in per_model.items()}
best = max(epochs, key=epochs.get)
print({"compile+graph": "compile"}.get(best, best))
EOF
)
stamp "2. the pair, step mode $MODE, ${TRAIN_S} s"
python3 -m training reproduce --dataset mnist --data-dir "$DATA" --out "$WORK/paper" --models vae+bn+wu,lvae+bn+wu \
  --layers 5 --group 2 --step-mode "$MODE" --epochs "$EPOCHS" --warmup-epochs "$WARMUP" --eval-samples "$EVAL_K" \
  --time-limit "$TRAIN_S" 2>&1 | tee -a "$OUT/session.log"

stamp "3. IW-$EVAL_K and export"
mkdir -p "$WORK/export"
for run in "$WORK"/paper/runs/*; do
  name=$(basename "$run")
  rm -rf "$WORK/export/$name"
  python3 -m training export "$run" "$WORK/export/$name" --dtype float16 --iw-samples "$EVAL_K" --data-dir "$DATA" \
    --snapshots 11 2>&1 | tee -a "$OUT/session.log"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], 'epochs', r['epochs'], 'IW', r['iw_samples'], round(r['iw_ll'], 3), 'ELBO', round(r['test_elbo'], 3), 'AU', r['active_units'], r['device'], round(r['seconds'], 1), 's')" \
    "$WORK/export/$name/eval.json" "$name" 2>&1 | tee -a "$OUT/session.log"
  tar czf "$OUT/$name.tgz" -C "$WORK/export" "$name"
done
cp "$WORK"/paper/paper-mnist.* "$OUT/" 2>/dev/null

NVAE_S=$(($(left) - 75))
if [ "$NVAE_S" -gt 90 ]; then
  stamp "4. NVAE ($NVAE_SIZE), ${NVAE_S} s"
  # The time limit is checked at epoch ends: the timeout catches a long epoch, the last checkpoint stays.
  timeout $((NVAE_S + 20)) python3 -m training train --family nvae --dataset mnist --data-dir "$DATA" $NVAE_SIZE \
    --epochs 400 --warmup-epochs 120 --lr 1e-2 --batch-size 200 --checkpoint-every 1 --eval-every 1000 \
    --snapshot-every 1000 --step-mode eager --no-progress --time-limit "$NVAE_S" --out "$WORK/nvae-large" 2>&1 \
    | tail -5 | tee -a "$OUT/session.log"
  rm -rf "$WORK/export/nvae-large"
  timeout 45 python3 -m training export "$WORK/nvae-large" "$WORK/export/nvae-large" --iw-samples 10 \
    --data-dir "$DATA" --snapshots 2 2>&1 | tail -3 | tee -a "$OUT/session.log" \
    && tar czf "$OUT/nvae-large.tgz" -C "$WORK/export" nvae-large
else
  stamp "4. no minutes left for the NVAE (${NVAE_S} s)"
fi
stamp "done"
