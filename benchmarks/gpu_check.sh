#!/usr/bin/env bash
# Everything issue 20 needs from a GPU, in one go (a few minutes on an H100/H200), for the `device` tool:
# the CUDA tests, then benchmarks/gpu.py. The GPU machine's image has torch, transformers, tokenizers and
# sentence-transformers; crossrank runs from src/ without installing. Prepare here, once:
#   python benchmarks/gpu.py --write-pairs .gpu-pairs      (needs ../shared; .gpu-pairs is git-ignored)
#   bash benchmarks/device_tree.sh slim                 (the tracked tree is 79 MB, over the tool's 64 MiB:
#                                                        fast_model stays here; `restore` after the run)
# then run there:  bash benchmarks/gpu_check.sh   (carry .gpu-pairs; results land in $OUT, or benchmarks/results)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD/benchmarks:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>/dev/null || true
# CUDA tests (the HTTP one needs the serve extra, not installed there).
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_packed.py \
  -k "not rerank_run_and_serve" 2>&1 | tee "$RESULTS/gpu_tests.log"
timeout 420 python3 benchmarks/gpu.py --pairs-dir .gpu-pairs --out "$RESULTS" 2>&1 | tee "$RESULTS/gpu_run.log"
