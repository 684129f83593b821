#!/usr/bin/env bash
# Domain fine-tuning of crossrank's default reranker on SciFact and NFCorpus train splits, then the test
# figures in benchmarks/results/domain_finetune_<dataset>.md. Run from the repository root, venv active.
# The two trainings run side by side, one CPU thread each (about 50 min together on a 2-core machine);
# evaluation adds about 40 min (CPU cross-encoder scoring of 2 x 30k test pairs at 256 tokens).
# On a CPU with bf16 units (AMX / AVX512-BF16) add --precision bf16 to each crossrank train: one SciFact run
# then takes 18 min (SciFact) or 23 min (NFCorpus) on 2 threads (measured; benchmarks/results/domain_finetune_*_bf16.md).
set -euo pipefail
DATA=${DATA:-../shared/data}
WORK=${WORK:-/tmp/dom}
mkdir -p "$WORK"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# SciFact has no dev split: hold out 100 train queries to fit the ensemble and fusion weights on.
python recipes/domain_finetune/split_holdout.py --data "$DATA/scifact" --output "$WORK/scifact" --holdout 100

crossrank train -m src/crossrank/default_model --data "$WORK/scifact" --split train_fit -o "$WORK/ce-scifact" \
  --loss listwise --negatives 7 --rank-range 3 100 --epochs 1.5 --lr 4e-5 --batch-groups 8 --max-length 256 \
  --checkpoint-every 40 --seed 0 &
crossrank train -m src/crossrank/default_model --data "$DATA/nfcorpus" --split train -o "$WORK/ce-nfcorpus" \
  --loss listwise --negatives 7 --rank-range 10 100 --max-positives 2 --positive-depth 100 --epochs 0.4 --lr 4e-5 --batch-groups 8 --max-length 256 \
  --checkpoint-every 40 --seed 0 &
wait

export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
python benchmarks/domain_finetune.py --dataset scifact --trained "$WORK/ce-scifact/final" \
  --fit "$WORK/scifact:holdout" --output-model "$WORK/scifact-model"
python benchmarks/domain_finetune.py --dataset nfcorpus --trained "$WORK/ce-nfcorpus/final" \
  --fit nfcorpus:dev --output-model "$WORK/nfcorpus-model"
