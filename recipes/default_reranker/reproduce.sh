#!/usr/bin/env bash
# Rebuild crossrank's default reranker from ../shared/data (about 2 h 20 min on a 2-core CPU; stage 2
# assumes a CPU with bf16 units (AMX / AVX512-BF16), else drop --precision bf16 and expect ~2.5x longer).
# Run from the repository root with the project's virtual environment active.
set -euo pipefail
DATA=${DATA:-../shared/data}
WORK=${WORK:-/tmp/crossrank-default}
mkdir -p "$WORK"

# 1. Training examples: MS MARCO dev-small queries x the TREC DL 2020 passage pool scored by the
#    all-MiniLM-L6-v2 bi-encoder (distillation), plus SciFact and NFCorpus train judgments.  (~5 min)
python recipes/default_reranker/build_data.py --data "$DATA" --output "$WORK/train.jsonl"

# 2. Stage 1: listwise KL distillation / listwise CE from the all-MiniLM-L6-v2 weights, half an epoch,
#    fp32.  (~55 min)
crossrank train --examples "$WORK/train.jsonl" --output-dir "$WORK/ce" --loss listwise --epochs 0.5 \
  --lr 7e-5 --batch-groups 8 --max-length 128 --checkpoint-every 100 --seed 0

# 2b. Stage 2: a larger pool (union of both first stages' top 50; teacher's top 4 + 12 sampled per query,
#     new seed), one epoch from stage 1, bf16 autocast on CPU.  (~5 min data + ~70 min training)
python recipes/default_reranker/build_data.py --data "$DATA" --output "$WORK/train2.jsonl" \
  --depth 50 --top 4 --sampled 12 --seed 1
crossrank train --model "$WORK/ce/final" --examples "$WORK/train2.jsonl" --output-dir "$WORK/ce2" --loss listwise \
  --epochs 1 --lr 5e-5 --batch-groups 8 --max-length 128 --checkpoint-every 100 --seed 1 --precision bf16

# 3. Package: fp16 safetensors + tokenizer + ensemble.json (adds the bi-encoder cosine, z-scored).
python recipes/default_reranker/make_default.py --trained "$WORK/ce2/final" --examples "$WORK/train2.jsonl" \
  --output src/crossrank/default_model --bi-encoder-weight 0.5

# 4. Calibration (Platt) on msmarco-dev-graded (125 MS MARCO dev questions x BM25 top-20, human grades),
#    folded into ensemble.json as scale/bias; reliability diagrams in benchmarks/results/.
python benchmarks/calibration_reliability.py --write-ensemble src/crossrank/default_model

# 5. Quality: nDCG@10 of BM25 top-100 reranked on TREC DL 2020, SciFact and NFCorpus test splits.
python benchmarks/reranker_quality.py --model src/crossrank/default_model --fit-fusion nfcorpus:dev \
  --name default_reranker_quality
