#!/usr/bin/env bash
# The GPU checks, as one prepared script for a session that is lent a device.
#
# Runs from the repository root on a machine whose python3 already has torch,
# torchvision, timm, pluggy, rich, typer and safetensors (the project is not
# installed there: PYTHONPATH=. makes plugins/ serve as demtui.plugins; textual is not
# needed, everything is headless). tomli-w, which the headless path needs to write
# spec.toml, travels as a wheel in .whl/:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl tomli-w==1.2.0
# then, with the device tool: carry [".whl"], command "bash benchmarks/device_check.sh",
# timeout about 560 s. Each step has its own timeout and writes its figures to $OUT
# (default /tmp/demtui-device) as soon as it ends, in priority order, so a cut-short run
# still returns what it measured. Figures go to docs/benchmarks.md by hand, with the
# date and the device.
#
# DEVICE=cpu dry-runs every step anywhere at tiny sizes (small stand-in models, few
# iterations, no torch.compile): it checks the script, not the speed.
set -uo pipefail
OUT=${OUT:-/tmp/demtui-device}
DEVICE=${DEVICE:-cuda}
DATA_N=${DATA_N:-64000}      # images of the generated ImageNet-size repair set
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 DEMTUI_CACHE="$OUT/cache"
{ nvidia-smi -L || echo "no nvidia-smi"; } | tee "$OUT/device.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/device.txt"

step() {  # step NAME TIMEOUT CMD...: run, log wall time and rc, keep going whatever happens
    local name=$1 limit=$2; shift 2
    local start; start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"
    local rc=$?
    echo "$name rc=$rc wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/device.txt"
    tail -n 6 "$OUT/$name.txt"
}

if [ "$DEVICE" = cpu ]; then
    WRN=wrn:16-1; WRN_B=4; R50=torchvision:resnet18; R50_SIZE=32; R50_B=4
    LIMIT=(--iters 1 --warmup 1 --repeats 1 --batches 2 --compile off)
    QUICK=(--set dataset.train_size=1000 --set dataset.test_size=200 --set victim.epochs=1
           --set attack.iterations=10 --set defense.epochs=1 --set defense.refine_epochs=0
           --set run.eval_samples=100 --set run.attack_samples=100 --targets 1 --set run.threads=1)
    ATTACK=(--model torchvision:resnet18 --size 32 --samples 64 --full 20)
    DATA=(--n 200 --size 64 --model smallcnn --batch 64 --workers 2)
    SCALE=(--tiny)
else
    WRN=wrn:28-10; WRN_B=128; R50=torchvision:resnet50; R50_SIZE=224; R50_B=64
    LIMIT=(--iters 20 --warmup 5 --repeats 2 --batches 8)
    QUICK=()
    ATTACK=(--model torchvision:resnet50 --size 224 --samples 1024 --full 1000)
    DATA=(--n "$DATA_N" --size 224 --model resnet50 --batch 256 --workers 12 --serial)
    SCALE=()
fi

# 1. Repair at the limit (goal 1): train step and input-gradient pass (eager and
#    torch.compile, bf16, channels_last) vs demtui's repair, on WRN-28-10 @32 and ResNet-50 @224.
step limit-wrn 150 python3 benchmarks/repair_limit.py --device "$DEVICE" --model "$WRN" --batch "$WRN_B" \
    --steps 5 --header "${LIMIT[@]}"
step limit-resnet50 180 python3 benchmarks/repair_limit.py --device "$DEVICE" --model "$R50" --size "$R50_SIZE" \
    --batch "$R50_B" --steps 5 --header "${LIMIT[@]}"

# 2. DF-UAP 1000 iterations × batch 32 on ResNet-50 @224 (goal 3: under 10 s), per-iteration cost.
step attack-df-uap 120 python3 benchmarks/attack_cost.py --device "$DEVICE" --attacks df-uap "${ATTACK[@]}"

# 3. The quickstart on the device (bf16 autocast, channels_last): same quality bar as on CPU.
start=$(date +%s)
timeout 240 python3 -m demtui run --headless --json --quiet --device "$DEVICE" --out "$OUT/quickstart" "${QUICK[@]}" \
    > "$OUT/quickstart.json" 2> "$OUT/quickstart.err"
echo "quickstart rc=$? wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/device.txt"
python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['summary'], indent=1))" \
    "$OUT/quickstart.json" 2>/dev/null | tee -a "$OUT/device.txt"

# 4. N runs on N GPUs through the local executor (and 2 runs sharing one GPU).
step scaling 150 python3 benchmarks/gpu_scaling.py "${SCALE[@]}"

# 5. Memory at ImageNet scale: held vs streamed 64k-image repair set, decode rate, peak RSS / GPU memory.
step data-scale 240 python3 benchmarks/data_scale.py --device "$DEVICE" "${DATA[@]}"
