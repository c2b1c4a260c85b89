#!/usr/bin/env bash
# One prepared check on one NVIDIA GPU, at most 8 minutes, from the repository root:
#
#   bash benchmarks/gpu_check.sh [OUT]          (OUT defaults to gpu_check/)
#
# 1. smaformer benchmark-network --device cuda --compile at batch 28 and 256x256 (the trainer's batch and patch)
#    in each precision: bf16 autocast, fp16 autocast with a GradScaler (nnU-Net's default), fp32: eager and
#    torch.compile (inductor) training steps (steps/s, and how many were non-finite and skipped, the trainer's
#    rule) and inference, peak GPU memory; the bf16 run also times the unoptimised window-7 configuration.
# 2. If nnU-Net's training stack is importable (nnunetv2, SimpleITK, batchgenerators and their console
#    scripts): smaformer benchmark-scale --device cuda --quick --nnunet-benchmark, i.e. the Synapse-scale phantom
#    with nnU-Net's _Benchmark_5epochs trainers for SMAFormerV2 and stock nnU-Net, within the time left.
#
# Needs python with torch (CUDA) and timm. benchmark-network computes nnU-Net's Dice+CE loss, so it needs the
# nnunetv2 package itself but none of its dependencies: where nnunetv2 is not installed and no registry can be
# reached, put nnunetv2-*.whl (pip download --no-deps nnunetv2, about 0.3 MB) into $SMAFORMER_WHEELS
# (default: benchmarks/wheels); it is unpacked into a temporary folder, nothing is installed.
# Every step says what it skips and why; figures land in OUT/*.json and OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
PYTHON=${PYTHON:-python3}
WHEELS=${SMAFORMER_WHEELS:-benchmarks/wheels}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
START=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "[gpu_check] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

: > "$LOG"
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$LOG"; then
    say "SKIP everything: no CUDA device visible to torch ($PYTHON)"
    exit 1
fi
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import platform, torch
print(f"[gpu_check] {torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda} "
      f"| Python {platform.python_version()}")
EOF

if ! "$PYTHON" -c "import timm" 2>/dev/null; then
    say "SKIP everything: timm is not importable (pip install 'timm<1.0.23')"
    exit 1
fi

# nnU-Net's loss for benchmark-network: the installed nnunetv2, else the wheel unpacked without dependencies.
if ! "$PYTHON" -c "import nnunetv2.training.loss.compound_losses" 2>/dev/null; then
    wheel=$(ls "$WHEELS"/nnunetv2-*.whl 2>/dev/null | head -n 1)
    if [ -n "$wheel" ]; then
        site=$(mktemp -d)
        "$PYTHON" -m zipfile -e "$wheel" "$site" && export PYTHONPATH="$PYTHONPATH:$site"
        say "nnunetv2 not installed: using $(basename "$wheel") unpacked into $site (loss modules only)"
    fi
fi
if "$PYTHON" -c "import nnunetv2.training.loss.compound_losses" 2>/dev/null; then
    for amp in bf16 fp16 none; do
        baseline=--no-baseline
        [ "$amp" = bf16 ] && baseline=
        say "step 1 ($amp): benchmark-network, eager and compiled, batch 28, 256x256, 60 steps (budget $(left) s)"
        timeout "$(left)" "$PYTHON" -m nnunetv2_smaformer.cli.main benchmark-network --device cuda --amp "$amp" \
            --compile $baseline --batch-size 28 --img-size 256 --steps 60 --warmup 5 \
            -o "$OUT/benchmark_network_cuda_$amp.json" 2>&1 | tee -a "$LOG"
        status=${PIPESTATUS[0]}
        [ "$status" -eq 124 ] && say "step 1 ($amp) ran out of time (budget $BUDGET_S s)"
        [ "$status" -ne 0 ] && say "step 1 ($amp) failed (exit $status); see $LOG"
    done
else
    say "SKIP step 1: benchmark-network needs nnU-Net's Dice+CE loss (nnunetv2); install it or put" \
        "nnunetv2-*.whl into $WHEELS"
fi

missing=$("$PYTHON" - <<'EOF'
import importlib.util, shutil, sys
from pathlib import Path
need = [m for m in ("nnunetv2.run.run_training", "SimpleITK", "batchgenerators", "batchgeneratorsv2",
                    "dynamic_network_architectures", "acvl_utils") if importlib.util.find_spec(m.split(".")[0]) is None]
scripts = ("nnUNetv2_plan_and_preprocess", "nnUNetv2_train", "nnUNetv2_predict", "nnUNetv2_predict_from_modelfolder")
need += [s for s in scripts if not (Path(sys.executable).parent / s).exists() and shutil.which(s) is None]
print(" ".join(need))
EOF
)
if [ -n "$missing" ]; then
    say "SKIP step 2: benchmark-scale needs nnU-Net's whole training stack; missing: $missing"
elif [ "$(left)" -lt 240 ]; then
    say "SKIP step 2: $(left) s left of $BUDGET_S s, too little for benchmark-scale"
else
    say "step 2: benchmark-scale --quick with nnU-Net's _Benchmark_5epochs trainers (budget $(left) s)"
    timeout "$(left)" "$PYTHON" -m nnunetv2_smaformer.cli.main benchmark-scale --device cuda --quick \
        --nnunet-benchmark -o "$OUT/scale" 2>&1 | tee -a "$LOG"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 124 ] && say "step 2 ran out of time: raise GPU_CHECK_BUDGET_S or run it alone"
    [ "$status" -ne 0 ] && say "step 2 failed (exit $status); see $LOG and $OUT/scale/logs"
fi
say "done in $(( $(date +%s) - START )) s; figures in $OUT"
