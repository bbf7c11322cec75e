#!/usr/bin/env bash
# The GPU run kit, on a machine with CUDA PyTorch and transformers but no network: installs the bundle's
# wheels (where datasets or fvcore is missing), gives the bundled backbones random weights, runs the CUDA tests, the training-throughput
# benchmark (fp32 vs bf16, eager vs SDPA), the replayed latency benchmarks (CUDA events) and the runtimes table
# (eager, torch.compile, CUDA graphs per segment, bf16: benchmarks/runtimes.py), and writes RESULTS/*_gpu.json. Make the bundle first, where the mirror and weights are:
#     python benchmarks/gpu/kit.py bundle --mirror ../shared/data --out .gpu
# Usage: benchmarks/gpu/run.sh [BUNDLE]   (from the repository root)
# Environment: DEVICE (cuda; cpu runs the same paths here), RESULTS (results/benchmarks), TESTS (1 runs the
# device tests), STEPS, ROUNDS, REPEATS, PRECISIONS (fp32,bf16).
set -euo pipefail
bundle=${1:-.gpu}
device=${DEVICE:-cuda}
results=${RESULTS:-results/benchmarks}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! python3 -c "import datasets, fvcore" 2>/dev/null && compgen -G "$bundle/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$bundle"/wheels/*.whl
fi
export PYTHONPATH="$work/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$results"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
if [[ ${TESTS:-1} == 1 ]]; then
    python3 -m pytest -q -p no:cacheprovider tests/test_latency.py tests/test_execution.py tests/test_inference.py \
        tests/test_runtimes.py
fi
python3 benchmarks/gpu/kit.py materialize "$bundle" "$work/backbones"
python3 benchmarks/gpu/kit.py run "$bundle" "$work/backbones" --device "$device" --results "$results" \
    --steps "${STEPS:-6}" --rounds "${ROUNDS:-3}" --repeats "${REPEATS:-5}" --precisions "${PRECISIONS:-fp32,bf16}"
