#!/usr/bin/env bash
# The GPU checks, as one prepared script for a session that is lent a device.
#
# Runs from the repository root on a machine whose python3 already has torch,
# torchvision, timm, pluggy, rich, typer and safetensors (the project is not
# installed there: PYTHONPATH=. makes plugins/ serve as demtui.plugins). tomli-w, which
# the headless path needs to write spec.toml, travels as a wheel in .whl/:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl tomli-w==1.2.0
# then, with the device tool: carry [".whl"], command "bash benchmarks/device_check.sh",
# timeout about 480 s. Everything it measures lands in $OUT (default /tmp/demtui-device).
# Figures go to docs/benchmarks.md by hand, with the date and the device.
set -uo pipefail
OUT=${OUT:-/tmp/demtui-device}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu dry-runs the script anywhere
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 DEMTUI_CACHE="$OUT/cache"
{ nvidia-smi -L || echo "no nvidia-smi"; } | tee "$OUT/device.txt"
python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/device.txt"

# 1. The quickstart on CUDA (bf16 autocast, channels_last): same bar as on CPU.
start=$(date +%s)
timeout 240 python3 -m demtui run --headless --json --quiet --device "$DEVICE" --out "$OUT/quickstart" \
    > "$OUT/quickstart.json" 2> "$OUT/quickstart.err"
echo "quickstart rc=$? wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/device.txt"
python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['summary'], indent=1))" \
    "$OUT/quickstart.json" 2>/dev/null | tee -a "$OUT/device.txt"

# 2. Repair throughput against plain training: the paper's CIFAR model and an ImageNet-size one.
timeout 120 python3 benchmarks/repair_throughput.py --device "$DEVICE" --model wrn:34-10 --batch 128 --repeats 3 \
    2>&1 | tee "$OUT/throughput-wrn34-10.txt"
timeout 120 python3 benchmarks/repair_throughput.py --device "$DEVICE" --model torchvision:resnet50 --size 224 \
    --batch 64 --repeats 3 2>&1 | tee "$OUT/throughput-resnet50.txt"
