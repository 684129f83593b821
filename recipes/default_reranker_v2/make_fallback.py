"""The shallow fallback reranker ("fast"): a 2-layer cross-encoder distilled from the shipped default v2.

``init``: a copy of the default's cross-encoder keeping only some encoder layers (default: the first and
the last, so the head still reads what it was trained on) - a far better start than random layers - and,
to fit the size budget, 256 positions and the vocabulary minus the ``[unusedN]`` placeholders and scripts
other than Latin and Greek (2,525 of 30,522 tokens; such characters become [UNK]).
``targets``: the distillation groups re-labelled with the shipped default's score (the whole ensemble:
cross-encoder + bi-encoder), z-scored within each group / ``--temperature``: the fallback learns to stand
in for the default, not for the teachers.

    python recipes/default_reranker_v2/make_fallback.py init --default src/crossrank/default_model \
        --output ../runs/v2/fast-init
    python recipes/default_reranker_v2/make_fallback.py targets --default src/crossrank/default_model \
        --examples ../runs/v2/distill.jsonl --output ../runs/v2/fast-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "sentence_bert_config.json")


def english_token(token: str) -> bool:
    """Tokens an English reranker needs: Latin scripts, Greek (science), punctuation, symbols and math;
    not the ``[unusedN]`` placeholders nor other scripts' characters (those become [UNK])."""
    if token.startswith("[unused"):
        return False
    for ch in token[2:] if token.startswith("##") else token:
        code = ord(ch)
        if not (code < 0x250 or 0x370 <= code < 0x400 or 0x2000 <= code < 0x2400):
            return False
    return True


def trim_tokenizer(source: Path, output: Path, keep: Callable[[str], bool]) -> list[int]:
    """Write ``source``'s tokenizer files to ``output`` without the tokens ``keep`` rejects (special tokens
    always stay), ids renumbered in their old order; returns the kept old ids (the embedding rows to keep).
    The tokenizer's own files only: what every tokenizers/transformers version reads, nothing custom."""
    tok = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    specials = {added["content"] for added in tok["added_tokens"]}
    ordered = sorted((i, t) for t, i in tok["model"]["vocab"].items())
    kept = [(i, t) for i, t in ordered if t in specials or keep(t)]
    new_id = {old: new for new, (old, _) in enumerate(kept)}
    tok["model"]["vocab"] = {t: new_id[i] for i, t in kept}
    for added in tok["added_tokens"]:
        added["id"] = new_id[added["id"]]
    for special in (tok.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    if tok.get("padding"):
        tok["padding"]["pad_id"] = new_id[tok["padding"]["pad_id"]]
    output.mkdir(parents=True, exist_ok=True)
    (output / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    config_path = source / "tokenizer_config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if "added_tokens_decoder" in config:
            config["added_tokens_decoder"] = {str(new_id[int(k)]): v for k, v in config["added_tokens_decoder"].items()}
        (output / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in ("special_tokens_map.json", "sentence_bert_config.json"):
        if (source / name).is_file():
            shutil.copy(source / name, output / name)
    if (source / "vocab.txt").is_file():  # the slow tokenizer's copy of the vocabulary, renumbered too
        (output / "vocab.txt").write_text("".join(t + "\n" for _, t in kept), encoding="utf-8")
    return [i for i, _ in kept]


def keep_layers(source: Path, output: Path, layers: list[int], max_positions: int | None = None,
                keep_token: Callable[[str], bool] | None = None) -> Path:
    """Save ``source`` (a BERT-style sequence classifier) with only ``layers`` of its encoder, in fp32;
    optionally only the first ``max_positions`` positions and the vocabulary ``keep_token`` accepts (the
    embedding matrix is most of a 2-layer model's size)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32)
    blocks = model.base_model.encoder.layer
    if not layers or any(i < 0 or i >= len(blocks) for i in layers):
        raise ValueError(f"layers {layers} out of range: the model has {len(blocks)}")
    model.base_model.encoder.layer = torch.nn.ModuleList(blocks[i] for i in layers)
    config = model.config
    config.num_hidden_layers = len(layers)
    if hasattr(config, "layer_types") and config.layer_types is not None:
        config.layer_types = [config.layer_types[i] for i in layers]
    output.mkdir(parents=True, exist_ok=True)
    trim_embeddings(model.base_model.embeddings, config, source, output, max_positions, keep_token)
    model.save_pretrained(output, safe_serialization=True)
    return output


def trim_embeddings(embeddings, config, source: Path, output: Path, max_positions: int | None,
                    keep_token: Callable[[str], bool] | None) -> int:
    """Cut a BERT-style embedding layer (in place, ``config`` updated) to ``max_positions`` positions and the
    vocabulary ``keep_token`` accepts, writing the matching tokenizer files to ``output``; the vocabulary size."""
    import torch

    if max_positions is not None and max_positions < config.max_position_embeddings:
        old = embeddings.position_embeddings.weight.data
        embeddings.position_embeddings = torch.nn.Embedding.from_pretrained(old[:max_positions].clone(), freeze=False)
        for name in ("position_ids", "token_type_ids"):
            if hasattr(embeddings, name):
                setattr(embeddings, name, getattr(embeddings, name)[:, :max_positions].clone())
        config.max_position_embeddings = max_positions
    if keep_token is None:
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy(source / name, output / name)
        return config.vocab_size
    rows = trim_tokenizer(source, output, keep_token)
    old = embeddings.word_embeddings.weight.data
    embeddings.word_embeddings = torch.nn.Embedding.from_pretrained(old[rows].clone(), freeze=False,
                                                                    padding_idx=config.pad_token_id)
    config.vocab_size = len(rows)
    return len(rows)


def relabel(examples: Path, output: Path, default: Path, temperature: float, sources: set[str],
            limit: int | None) -> dict:
    """Score every document of the chosen groups with the shipped default; write z(score) / T labels."""
    from tqdm import tqdm

    from crossrank.cross_encoder import CrossEncoder

    groups = [json.loads(line) for line in open(examples, encoding="utf-8") if line.strip()]
    groups = [g for g in groups if g["source"] in sources][:limit]
    model = CrossEncoder(str(default), dtype="bfloat16")
    out = []
    with tqdm(total=len(groups), desc="default scores", unit="group") as bar:
        for start in range(0, len(groups), 64):  # many groups per call: full batches
            chunk = groups[start:start + 64]
            flat = np.asarray(model.predict([(g["query"], d) for g in chunk for d in g["documents"]]),
                              dtype=np.float64)
            offset = 0
            for group in chunk:
                scores = flat[offset:offset + len(group["documents"])]
                offset += len(group["documents"])
                z = (scores - scores.mean()) / (scores.std() + 1e-9)
                out.append({**group, "labels": [round(float(x / temperature), 4) for x in z],
                            "source": "default-v2"})
            bar.update(len(chunk))
    with open(output, "w", encoding="utf-8") as handle:
        for g in out:
            handle.write(json.dumps(g) + "\n")
    return {"groups": len(out), "pairs": sum(len(g["documents"]) for g in out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="keep some layers of the default's cross-encoder")
    init.add_argument("--default", type=Path, required=True)
    init.add_argument("--output", type=Path, required=True)
    init.add_argument("--layers", type=int, nargs="+", default=[0, 5])
    init.add_argument("--max-positions", type=int, default=256, help="position embeddings kept")
    init.add_argument("--all-tokens", action="store_true", help="keep the whole vocabulary")
    targets = sub.add_parser("targets", help="label distillation groups with the default's scores")
    targets.add_argument("--default", type=Path, required=True)
    targets.add_argument("--examples", type=Path, required=True)
    targets.add_argument("--output", type=Path, required=True)
    targets.add_argument("--temperature", type=float, default=0.4)
    targets.add_argument("--sources", nargs="+", default=["msmarco-distill", "scifact", "nfcorpus"])
    targets.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if args.command == "init":
        out = keep_layers(args.default, args.output, args.layers, args.max_positions,
                          None if args.all_tokens else english_token)
        print(json.dumps({"output": str(out), "megabytes": round((out / "model.safetensors").stat().st_size / 1e6, 1)}))
    else:
        print(json.dumps(relabel(args.examples, args.output, args.default, args.temperature, set(args.sources),
                                 args.limit)))


if __name__ == "__main__":
    main()
