#!/bin/sh
# The checks that only a GPU can make, in one command (about 9-10 minutes on an H100; at most 8 files, for the device tool), so that a
# session with a GPU spends its device time on measuring, not on assembling commands:
#   - the GPU tests (bits flipped in GPU memory, CUDA graphs == eager, inert-word pruning and
#     input faults on CUDA, the native Square Attack on CUDA);
#   - bench_faults.py on resnet18 at batch 256: the faults issue's two GPU targets (weight faults
#     >= 15x PyTorchFI, activation faults >= 100k/s), interleaved repetitions;
#   - bench_attacks.py: PGD-10 and the Square Attack on the same GPU;
#   - the benchmark itself on CUDA (smoke profile, both default tasks, every pillar).
#
# usage: sh benchmarks/gpu_checks.sh [OUTDIR]    (default: $OUT, else /tmp/gpu-checks)
#
# It needs trustbench's dependencies importable (pytorchfi, torchattacks and ART for the peer
# rows) and runs in the repository root. Each step writes its own file, and a failing step does
# not stop the others; the exit status is the number of failed steps.
set -u
out=${1:-${OUT:-/tmp/gpu-checks}}
mkdir -p "$out"
export FLWR_TELEMETRY_ENABLED=0 RAY_USAGE_STATS_ENABLED=0 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
py=${PYTHON:-python3}
failed=0
step() {  # step NAME COMMAND...: run, keep its output in $out/NAME.txt, count failures
    name=$1
    shift
    echo "== $name: $*"
    start=$(date +%s)
    if "$@" >"$out/$name.txt" 2>&1; then status=ok; else status="FAILED ($?)"; failed=$((failed + 1)); fi
    echo "== $name: $status in $(($(date +%s) - start)) s"
    tail -n 4 "$out/$name.txt"
}

info=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1;
      "$py" -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())" 2>&1)
echo "$info"

step gpu-tests sh -c 'echo "$1"; shift; "$@"' _ "$info" "$py" -m pytest -q -p no:cacheprovider \
    -m gpu tests/unit/faults tests/unit/attacks
step suite "$py" -m pytest -q -p no:cacheprovider suites/ --bench-device cuda \
    --bench-profile smoke --bench-out /tmp/gpu-checks-results
step faults "$py" benchmarks/bench_faults.py --device cuda --model resnet18 --batch 256 \
    --faults 200 --reps 3 --fault-batches "" --activation-faults 25600 --activation-batch 1024 \
    --json "$out/faults.json"
step pgd "$py" benchmarks/bench_attacks.py --device cuda --model resnet18 --batch 256 \
    --json "$out/pgd.json"
step square "$py" benchmarks/bench_attacks.py --attack square --device cuda --model resnet18 \
    --batch 256 --norm linf --eps 0.0313725 --queries 1000 --json "$out/square.json"
echo "failed steps: $failed"
exit "$failed"
