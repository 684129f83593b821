#!/usr/bin/env bash
# Default reranker v2 on a GPU machine (device tool), in one call of about 10 minutes. The GPU machine's image
# has torch, transformers, tokenizers, safetensors, typer and rich; crossrank runs from src/ without installing;
# the metrics' two wheels travel in .gpu-v2/wheels. Here, first (needs ../shared and the teachers' pool):
#   python recipes/default_reranker_v2/build_pool.py --teachers-dir ../runs/teachers --quora-queries 20000 --output ../runs/v2b/pool-quora.jsonl
#   python recipes/default_reranker_v2/gpu_v2.py pack --pool ../runs/v2b/pool-quora.jsonl      # .gpu-v2, ~9 MB
#   bash benchmarks/device_tree.sh slim       # fast_model does not travel: the tree must stay under 64 MiB
# then run there, carrying .gpu-v2:   bash recipes/default_reranker_v2/gpu_v2.sh
# and here, after:  bash benchmarks/device_tree.sh restore
#   python recipes/default_reranker_v2/gpu_v2.py join --parts <files_at>/model.tar.part* --output ../runs/v2b/gpu-stage2
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=${OUT:-/tmp/v2-gpu-out}
mkdir -p "$RESULTS"
if ! python3 -c "import ir_measures" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu-v2/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" || exit 1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || true
timeout ${V2_TIMEOUT:-540} python3 recipes/default_reranker_v2/gpu_v2.py train --pack .gpu-v2 --out "$RESULTS" "$@" \
  2>&1 | tee "$RESULTS/train.log"
